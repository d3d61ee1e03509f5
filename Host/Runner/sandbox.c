/* The jail (README: "Sandbox"). The policy file is line-oriented and written by the agent:
 *
 *   hangar-sandbox 1
 *   mode enforce|watch
 *   deny NAME ERRNO [ARG MASK VALUE]
 *
 * A deny line without a condition fails every call of NAME with ERRNO; with one, only calls
 * whose argument ARG satisfies (arg & MASK) == VALUE. Everything else is allowed. In watch mode
 * an EPERM rule notifies the runner instead, which lets the call continue and reports it. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>
#include <linux/seccomp.h>

#include "util.h"

#define MAX_LINE 512

static int add_arches(scmp_filter_ctx ctx)
{
    /* A 64-bit process can still enter the kernel through the 32-bit tables (int 0x80): the
     * same rules must hold there, or the filter is a door left ajar. */
    if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
        int rc = seccomp_arch_add(ctx, SCMP_ARCH_X86);
        if (rc < 0 && rc != -EEXIST)
            return rc;
        rc = seccomp_arch_add(ctx, SCMP_ARCH_X32);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    return 0;
}

static int fail(scmp_filter_ctx ctx, FILE *f, const char *path, int line, const char *what)
{
    logmsg("sandbox policy %s:%d: %s; the kernel does not start unsandboxed", path, line, what);
    if (f)
        fclose(f);
    if (ctx)
        seccomp_release(ctx);
    return -1;
}

int sandbox_install(struct sandbox *s, const char *policy_path, const char *log_path)
{
    FILE *f = fopen(policy_path, "re");
    if (!f) {
        logmsg("cannot read the sandbox policy %s: %s; the kernel does not start unsandboxed", policy_path, strerror(errno));
        return -1;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return fail(NULL, f, policy_path, 0, "seccomp_init failed");
    /* no_new_privs (libseccomp's default, stated here because it matters: setuid binaries
     * cannot regain what the filter takes away); spec_allow as Docker does, so a filter costs
     * no speculative-store-bypass mitigation; the rules as a binary tree, not a list. */
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) < 0 || seccomp_attr_set(ctx, SCMP_FLTATR_CTL_SSB, 1) < 0 ||
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) < 0 || add_arches(ctx) < 0)
        return fail(ctx, f, policy_path, 0, "cannot set the filter's attributes");
    char line[MAX_LINE];
    int n = 0, watch = -1, header = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        line[strcspn(line, "\n")] = 0;
        if (line[0] == 0 || line[0] == '#')
            continue;
        char name[128];
        int err;
        unsigned arg;
        uint64_t mask, value;
        if (!header) {
            if (strcmp(line, "hangar-sandbox 1") != 0)
                return fail(ctx, f, policy_path, n, "not a version 1 policy (first line 'hangar-sandbox 1')");
            header = 1;
        } else if (strcmp(line, "mode enforce") == 0) {
            watch = 0;
        } else if (strcmp(line, "mode watch") == 0) {
            watch = 1;
        } else if (watch < 0) {
            return fail(ctx, f, policy_path, n, "the mode line (enforce or watch) must come before the rules");
        } else {
            int fields = sscanf(line, "deny %127s %d %u %" SCNu64 " %" SCNu64, name, &err, &arg, &mask, &value);
            if (fields != 2 && fields != 5)
                return fail(ctx, f, policy_path, n, "expected 'deny NAME ERRNO [ARG MASK VALUE]'");
            int nr = seccomp_syscall_resolve_name(name);
            if (nr == __NR_SCMP_ERROR)
                return fail(ctx, f, policy_path, n, "unknown syscall name");
            if (err <= 0 || err > 4095 || (fields == 5 && arg > 5))
                return fail(ctx, f, policy_path, n, "errno or argument out of range");
            uint32_t action = (watch && err == EPERM) ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO((uint16_t)err);
            int rc = fields == 5 ? seccomp_rule_add(ctx, action, nr, 1, SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, value))
                                 : seccomp_rule_add(ctx, action, nr, 0);
            /* -EDOM: a call this architecture does not have (umount on x86-64); nothing to filter. */
            if (rc < 0 && rc != -EDOM) {
                char what[200];
                snprintf(what, sizeof what, "cannot add the rule for %s: %s", name, strerror(-rc));
                return fail(ctx, f, policy_path, n, what);
            }
        }
    }
    fclose(f);
    if (!header || watch < 0)
        return fail(ctx, NULL, policy_path, n, "empty policy (no header or mode)");
    int rc = seccomp_load(ctx);
    if (rc < 0) {
        char what[200];
        snprintf(what, sizeof what, "seccomp_load: %s", strerror(-rc));
        return fail(ctx, NULL, policy_path, n, what);
    }
    if (watch) {
        s->notify_fd = seccomp_notify_fd(ctx);
        if (s->notify_fd >= 0) {
            fcntl(s->notify_fd, F_SETFD, FD_CLOEXEC);
            set_nonblock(s->notify_fd);
        }
        if (log_path)
            s->log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    seccomp_release(ctx); /* the filter stays loaded; the notification fd stays open */
    return 0;
}

void sandbox_watch_ready(struct sandbox *s)
{
    struct seccomp_notif *req = NULL;
    struct seccomp_notif_resp *resp = NULL;
    if (seccomp_notify_alloc(&req, &resp) < 0)
        return;
    if (seccomp_notify_receive(s->notify_fd, req) == 0) {
        resp->id = req->id;
        resp->val = 0;
        resp->error = 0;
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        char *name = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
        /* Answer first: the caller is blocked until then. */
        if (seccomp_notify_respond(s->notify_fd, resp) < 0 && errno != ENOENT)
            logmsg("sandbox watch: cannot answer a notification: %s", strerror(errno));
        char report[256];
        int len = snprintf(report, sizeof report, "{\"syscall\":\"%s\",\"pid\":%u,\"time\":%lld}\n", name ? name : "?", req->pid,
                           (long long)time(NULL));
        logmsg("sandbox watch: pid %u called %s, which the policy denies", req->pid, name ? name : "?");
        if (s->log_fd >= 0 && len > 0 && len < (int)sizeof report) {
            ssize_t w = write(s->log_fd, report, (size_t)len);
            (void)w;
        }
        free(name);
    }
    seccomp_notify_free(req, resp);
}
