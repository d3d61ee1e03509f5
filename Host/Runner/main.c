/*
 * hangar-runner: the in-container runner of Hangar kernels.
 *
 * Bind-mounted into every kernel container and used as its entrypoint. It runs as PID 1
 * (reaps zombies, forwards SIGTERM/SIGINT/SIGHUP), optionally runs a main command and exits
 * with its status, and serves the agent over a unix stream socket: code queries in one
 * persistent Python interpreter (or /bin/sh), batch commands, input, interrupts.
 *
 * The wire protocol is specified in README.md next to this file; keep the two in step. The
 * README also maps the files of this directory.
 *
 * Single-threaded: one poll() loop (here), every descriptor of ours non-blocking and
 * close-on-exec, signals delivered through a self-pipe. Linked statically, so nothing here
 * may need NSS (no getpwnam, getaddrinfo) or dlopen.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O2 -D_GNU_SOURCE -static -o hangar-runner *.c
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "sandbox.h"
#include "services.h"
#include "spawn.h"
#include "ttyd.h"
#include "util.h"

#define RUNNER_VERSION "1"
#define DEFAULT_SOCKET "/opt/hangar/ipc/runner.sock"

/* ------------------------------------------------------------------ arguments */

struct options {
    const char *socket_path;
    const char *service_path; /* NULL: services.sock next to the socket */
    const struct language *lang; /* NULL: the shell runtime */
    const char *interpreter;     /* --interpreter, else NULL: the language's default */
    char **main_argv; /* NULL: no main command */
    const char *sandbox;     /* policy file, NULL: no filter from the runner */
    const char *sandbox_log; /* watch-mode reports */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hangar-runner [--socket PATH] [--service-socket PATH] [--runtime python|r|nodejs|shell] [--interpreter PATH] [--sandbox POLICY [--sandbox-log PATH]]\n"
            "                     [-- COMMAND...]\n"
            "  --socket PATH   unix socket to serve (default $HANGAR_RUNNER_SOCKET or " DEFAULT_SOCKET ")\n"
            "  --service-socket PATH  tunnels and services (default services.sock next to the socket)\n"
            "  --runtime KIND  what a query runs in: one persistent interpreter of python (default), r or\n"
            "                  nodejs, or a new /bin/sh -c for each query (shell)\n"
            "  --interpreter PATH  the interpreter (default /usr/bin/python3, /usr/bin/R or\n"
            "                  /usr/bin/node, else python3, R or node on PATH); --python is the same\n"
            "  --sandbox POLICY  install this seccomp policy before anything runs (exit 125 if it cannot)\n"
            "  --sandbox-log PATH  watch mode: append what the policy would deny here, one JSON line each\n"
            "  -- COMMAND...   run COMMAND too, and exit with its status when it ends\n");
}

/* --name VALUE or --name=VALUE */
static int option(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return 0;
    if (argv[*i][n] == '=') {
        *value = argv[*i] + n + 1;
        return 1;
    }
    if (argv[*i][n] != 0)
        return 0;
    if (*i + 1 >= argc) {
        logmsg("%s needs a value", name);
        usage(stderr);
        exit(EXIT_RUNNER_ERROR);
    }
    *value = argv[++*i];
    return 1;
}

static void parse_args(int argc, char **argv, struct options *o)
{
    const char *env = getenv("HANGAR_RUNNER_SOCKET");
    o->socket_path = env && *env ? env : DEFAULT_SOCKET;
    o->service_path = NULL;
    o->lang = language_named("python");
    o->interpreter = NULL;
    o->main_argv = NULL;
    o->sandbox = NULL;
    o->sandbox_log = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc)
                o->main_argv = argv + i + 1;
            break;
        } else if (option(argc, argv, &i, "--service-socket", &v)) {
            o->service_path = v;
        } else if (option(argc, argv, &i, "--socket", &v)) {
            o->socket_path = v;
        } else if (option(argc, argv, &i, "--runtime", &v)) {
            if (strcmp(v, "shell") == 0)
                o->lang = NULL;
            else if (!(o->lang = language_named(v))) {
                logmsg("unknown runtime '%s' (python, r, nodejs or shell)", v);
                exit(EXIT_RUNNER_ERROR);
            }
        } else if (option(argc, argv, &i, "--sandbox-log", &v)) {
            o->sandbox_log = v;
        } else if (option(argc, argv, &i, "--sandbox", &v)) {
            o->sandbox = v;
        } else if (option(argc, argv, &i, "--interpreter", &v) || option(argc, argv, &i, "--python", &v)) {
            o->interpreter = v;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("hangar-runner %s\n", RUNNER_VERSION);
            exit(0);
        } else {
            logmsg("unknown argument '%s' (put the main command after --)", argv[i]);
            usage(stderr);
            exit(EXIT_RUNNER_ERROR);
        }
    }
}

/* ------------------------------------------------------------------ the loop */

/* One poll() entry per descriptor, in this order. The order is part of the behaviour: within
 * one wake-up, requests are read before child output, a child's stdout before its stderr,
 * the interpreter's output before its events, and the signal pipe (reaping, which closes
 * descriptors watched above) last. Each handler checks that its descriptor is still the one
 * polled, since an earlier handler of the same wake-up may have closed it. */
enum { T_LISTEN, T_SERVICES, T_CLIENT, T_X_IN, T_X_OUT, T_X_ERR, T_P_IN, T_P_CTL, T_P_EV, T_P_OUT, T_P_ERR, T_NOTIFY, T_SIG };

static void serve(struct runner *r, struct sandbox *box)
{
    struct agent *a = &r->agent;
    struct shell *X = &r->shell;
    struct interp *P = &r->interp;
    for (;;) {
        if (a->fd >= 0 && (a->dead || (a->closing && (buf_pending(&a->out) == 0 || now_ms() >= a->close_deadline))))
            agent_close(a);
        int64_t wake = -1;
        if (supervise_shutdown_step(r, &wake))
            break;
        if (a->fd >= 0 && a->closing && (wake < 0 || a->close_deadline < wake))
            wake = a->close_deadline;

        struct pollfd pf[14];
        int tag[14];
        int n = 0;
#define WATCH(fd_, events_, tag_)                                                                                     \
    do {                                                                                                              \
        pf[n].fd = (fd_);                                                                                             \
        pf[n].events = (events_);                                                                                     \
        pf[n].revents = 0;                                                                                            \
        tag[n++] = (tag_);                                                                                            \
    } while (0)
        if (a->fd < 0 && r->server.listen_fd >= 0)
            WATCH(r->server.listen_fd, POLLIN, T_LISTEN);
        if (r->server.service_fd >= 0)
            WATCH(r->server.service_fd, POLLIN, T_SERVICES);
        if (a->fd >= 0) {
            short ev = 0;
            if (!a->closing && buf_pending(&a->out) < HIGH_WATER)
                ev |= POLLIN;
            if (buf_pending(&a->out) > 0)
                ev |= POLLOUT;
            WATCH(a->fd, ev, T_CLIENT);
        }
        /* Back-pressure: while the agent has HIGH_WATER bytes unread, leave child output in
         * its pipes (the child blocks on write). With no agent, output is read and dropped. */
        int can_out = a->fd < 0 || a->closing || buf_pending(&a->out) < HIGH_WATER;
        if (X->in_fd >= 0 && buf_pending(&X->in) > 0)
            WATCH(X->in_fd, POLLOUT, T_X_IN);
        if (X->out.fd >= 0 && can_out)
            WATCH(X->out.fd, POLLIN, T_X_OUT);
        if (X->err.fd >= 0 && can_out)
            WATCH(X->err.fd, POLLIN, T_X_ERR);
        if (P->in_fd >= 0 && buf_pending(&P->in) > 0)
            WATCH(P->in_fd, POLLOUT, T_P_IN);
        if (P->ctl_fd >= 0 && buf_pending(&P->ctl) > 0)
            WATCH(P->ctl_fd, POLLOUT, T_P_CTL);
        if (P->out.fd >= 0 && can_out)
            WATCH(P->out.fd, POLLIN, T_P_OUT);
        if (P->err.fd >= 0 && can_out)
            WATCH(P->err.fd, POLLIN, T_P_ERR);
        if (P->ev_fd >= 0)
            WATCH(P->ev_fd, POLLIN, T_P_EV);
        if (box->notify_fd >= 0)
            WATCH(box->notify_fd, POLLIN, T_NOTIFY);
        WATCH(signals_fd(), POLLIN, T_SIG); /* last: reaping may close descriptors watched above */
#undef WATCH

        int timeout = -1;
        if (wake >= 0) {
            int64_t left = wake - now_ms();
            timeout = left < 0 ? 0 : (left > 60000 ? 60000 : (int)left);
        }
        int ready = poll(pf, (nfds_t)n, timeout);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            logmsg("poll: %s", strerror(errno));
            r->sup.exit_code = EXIT_RUNNER_ERROR;
            break;
        }
        for (int i = 0; i < n; i++) {
            short re = pf[i].revents;
            if (!re)
                continue;
            int fd = pf[i].fd;
            switch (tag[i]) {
            case T_LISTEN:
                if (r->server.listen_fd == fd && a->fd < 0)
                    server_accept(r);
                break;
            case T_SERVICES:
                if (r->server.service_fd == fd)
                    services_accept(fd);
                break;
            case T_CLIENT:
                if (a->fd == fd)
                    server_client_ready(r, re);
                break;
            case T_X_IN:
                if (X->in_fd == fd)
                    buf_flush_pipe(&X->in_fd, &X->in);
                break;
            case T_P_IN:
                if (P->in_fd == fd)
                    buf_flush_pipe(&P->in_fd, &P->in);
                break;
            case T_P_CTL:
                if (P->ctl_fd == fd)
                    buf_flush_pipe(&P->ctl_fd, &P->ctl);
                break;
            case T_X_OUT:
                if (X->out.fd == fd)
                    stream_read(&X->out, a);
                break;
            case T_X_ERR:
                if (X->err.fd == fd)
                    stream_read(&X->err, a);
                break;
            case T_P_OUT:
                if (P->out.fd == fd)
                    stream_read(&P->out, a);
                break;
            case T_P_ERR:
                if (P->err.fd == fd)
                    stream_read(&P->err, a);
                break;
            case T_P_EV:
                if (P->ev_fd == fd)
                    interp_read_events(P, a);
                break;
            case T_NOTIFY:
                if (re & (POLLERR | POLLHUP | POLLNVAL))
                    close_fd(&box->notify_fd);
                else
                    sandbox_watch_ready(box);
                break;
            case T_SIG:
                supervise_signals(r);
                break;
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "ttyd") == 0)
        return ttyd_main(argc - 1, argv + 1);
    struct options opt;
    parse_args(argc, argv, &opt);
    struct runner r = {
        .server = SERVER_INIT,
        .agent = AGENT_INIT,
        .shell = SHELL_INIT,
        .interp = INTERP_INIT,
    };
    r.server.socket_path = opt.socket_path;
    r.server.runtime_interp = opt.lang != NULL;
    r.interp.lang = opt.lang ? opt.lang : language_named("python");
    r.interp.interpreter = opt.interpreter;

    if (signals_setup() < 0)
        return EXIT_RUNNER_ERROR;
    become_subreaper();
    if (server_listen(&r.server) < 0)
        return EXIT_RUNNER_ERROR;
    /* services.sock next to the socket unless named: the agent finds both in the ipc folder. */
    static char service_default[4096];
    if (!opt.service_path) {
        const char *slash = strrchr(opt.socket_path, '/');
        size_t dir = slash ? (size_t)(slash - opt.socket_path) + 1 : 0;
        snprintf(service_default, sizeof service_default, "%.*sservices.sock", (int)dir, opt.socket_path);
        opt.service_path = service_default;
    }
    r.server.service_path = opt.service_path;
    r.server.service_fd = services_listen(opt.service_path);
    if (r.server.service_fd < 0) {
        server_close(&r.server);
        return EXIT_RUNNER_ERROR;
    }
    /* The filter goes on before the first child: everything the kernel runs inherits it. */
    struct sandbox box = SANDBOX_INIT;
    if (opt.sandbox && sandbox_install(&box, opt.sandbox, opt.sandbox_log) < 0) {
        server_close(&r.server);
        return EXIT_RUNNER_ERROR;
    }

    if (opt.main_argv) {
        int e;
        pid_t pid = spawn(opt.main_argv[0], opt.main_argv, NULL, 0, 0, &e);
        if (pid < 0) {
            logmsg("cannot run %s: %s", opt.main_argv[0], strerror(e));
            server_close(&r.server);
            return e == ENOENT ? 127 : 126;
        }
        r.sup.main_pid = pid;
    }
    if (opt.lang) {
        int e = interp_start(&r.interp);
        if (e)
            logmsg("cannot start the %s interpreter (%s): %s; retrying at the first query", opt.lang->name,
                   opt.interpreter ? opt.interpreter : opt.lang->path, strerror(e));
    }

    serve(&r, &box);

    agent_final_flush(&r.agent);
    agent_close(&r.agent);
    interp_close(&r.interp, &r.agent);
    shell_close(&r.shell, &r.agent);
    server_close(&r.server);
    signals_close();
    close_fd(&box.notify_fd);
    close_fd(&box.log_fd);
    return r.sup.exit_code;
}
