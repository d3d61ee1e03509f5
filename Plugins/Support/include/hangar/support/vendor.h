/*
 * Hangar plugin support — talking to a vendor's stack: PCI devices in sysfs, vendor
 * libraries opened at run time, vendor command-line tools run with a deadline, and the JSON
 * those tools print, parsed strictly.
 *
 * Everything here fails with a message (hs_fail) instead of crashing or hanging the agent: a
 * tool that hangs is killed at its deadline, one that prints garbage or too much is refused
 * with the first bytes quoted, a library that is missing or lacks a symbol is reported by
 * name. Needs _GNU_SOURCE (pipe2) and dlopen (link the plugin with -ldl on glibc before 2.34;
 * newer glibc has it in libc).
 */
#ifndef HANGAR_SUPPORT_VENDOR_H
#define HANGAR_SUPPORT_VENDOR_H

#include <hangar/support/accelerator.h>

#include <dirent.h>
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* PCI devices in sysfs                                                      */
/* ------------------------------------------------------------------------ */

/** One PCI function as sysfs describes it under <sysfs_root>/bus/pci/devices/<address>/. */
typedef struct hs_pci_device {
    /** "0000:3b:00.0". */
    char address[32];
    /** PCI vendor and device ids (the `vendor` and `device` files). */
    uint32_t vendor, device;
    /** NUMA node, -1 when unknown. */
    int32_t numa_node;
    /** local_cpulist, "" when absent or malformed. */
    char cpu_affinity[256];
} hs_pci_device;

/** Fills the NUMA node and nearest CPUs of the PCI function at `address` (unknown when absent or malformed). */
static inline void hs_read_pci_locality(const char *sysfs_root, const char *address, int32_t *numa_node, char *cpu_affinity, size_t len)
{
    int64_t numa = hs_read_i64f(-1, "%s/bus/pci/devices/%s/numa_node", sysfs_root, address);
    *numa_node = numa >= 0 && numa < 65536 ? (int32_t)numa : -1;
    hs_read_textf(cpu_affinity, len, "%s/bus/pci/devices/%s/local_cpulist", sysfs_root, address);
    if (cpu_affinity[0] != '\0' && hs_cpulist_problem(cpu_affinity) != NULL)
        cpu_affinity[0] = '\0';
}

static inline int hs_pci_address_order(const void *a, const void *b)
{
    return strcmp(((const hs_pci_device *)a)->address, ((const hs_pci_device *)b)->address);
}

/**
 * Lists the PCI functions of one vendor (and, unless `device_id` is 0, one device id) in
 * address order, so discovery order is stable. Returns how many were found (at most `max`),
 * or -1 when <sysfs_root>/bus/pci/devices cannot be read (hs_fail says why).
 */
static inline ptrdiff_t hs_pci_scan(const char *sysfs_root, uint32_t vendor_id, uint32_t device_id, hs_pci_device *out, size_t max)
{
    char dir_path[4096];
    if (!hs_pathf(dir_path, sizeof dir_path, "%s/bus/pci/devices", sysfs_root)) {
        hs_fail(HANGAR_E_INVALID_ARGUMENT, "sysfs root %s is too long", sysfs_root);
        return -1;
    }
    DIR *dir = opendir(dir_path);
    if (dir == NULL) {
        hs_fail_errno(HANGAR_E_IO, errno, "cannot list PCI devices in %s", dir_path);
        return -1;
    }
    size_t n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && n < max) {
        size_t name_len = strlen(entry->d_name);
        if (entry->d_name[0] == '.' || name_len >= sizeof out[n].address)
            continue;
        int64_t vendor = hs_read_i64f(-1, "%s/%s/vendor", dir_path, entry->d_name);
        int64_t device = hs_read_i64f(-1, "%s/%s/device", dir_path, entry->d_name);
        if (vendor != (int64_t)vendor_id || (device_id != 0 && device != (int64_t)device_id))
            continue;
        hs_pci_device *d = &out[n++];
        memset(d, 0, sizeof *d);
        memcpy(d->address, entry->d_name, name_len + 1); /* length checked above (and gcc cannot see it through snprintf) */
        d->vendor = (uint32_t)vendor;
        d->device = (uint32_t)device;
        hs_read_pci_locality(sysfs_root, d->address, &d->numa_node, d->cpu_affinity, sizeof d->cpu_affinity);
    }
    closedir(dir);
    qsort(out, n, sizeof out[0], hs_pci_address_order);
    return (ptrdiff_t)n;
}

/** True if the path exists (any file type, symlinks followed). */
static inline bool hs_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------------------ */
/* Vendor libraries                                                          */
/* ------------------------------------------------------------------------ */

/**
 * Opens a vendor library by name or path (never linked: the plugin must load on nodes without
 * it). NULL with hs_fail(HANGAR_E_DRIVER_UNAVAILABLE, "<path> not found: <dlerror>") when it
 * cannot be opened; the caller turns that into no_device_reason.
 */
static inline void *hs_library_open(const char *path)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        hs_fail(HANGAR_E_DRIVER_UNAVAILABLE, "%s not found: %s", path, why != NULL ? why : "dlopen failed");
    }
    return handle;
}

/**
 * Looks up a symbol; NULL when absent (optional symbols simply stay NULL). For a required one,
 * check the result and report `hs_fail(HANGAR_E_INCOMPATIBLE, "<lib> lacks <symbol>")`.
 * The pointer is returned through a union, as POSIX intends, so -Wpedantic builds stay clean.
 */
static inline void (*hs_library_symbol(void *handle, const char *name))(void)
{
    union {
        void *object;
        void (*function)(void);
    } u;
    u.object = dlsym(handle, name);
    return u.function;
}

/* ------------------------------------------------------------------------ */
/* Vendor command-line tools                                                 */
/* ------------------------------------------------------------------------ */

static inline int64_t hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/** Reaps `pid` if it has exited, waiting at most until `deadline_ms`; true when reaped. */
static inline bool hs_reap_until(pid_t pid, int *status, int64_t deadline_ms)
{
    for (;;) {
        pid_t done = waitpid(pid, status, WNOHANG);
        if (done == pid)
            return true;
        if (done < 0 && errno != EINTR)
            return true; /* not our child any more (SIGCHLD ignored): nothing left to wait for */
        if (hs_now_ms() >= deadline_ms)
            return false;
        struct timespec pause = {0, 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

/**
 * Runs a vendor tool (`argv[0]` is its path; no shell, no PATH search) with stdin from
 * /dev/null and stdout captured into `out` (NUL-terminated). Stderr is captured into `err`
 * (may be NULL) for messages. The run ends when the tool exits (what it printed until then is
 * kept; a background child it left holding the pipes does not keep the caller waiting) or at
 * `timeout_ms`, when the tool and its process group are killed. A tool stuck where even
 * SIGKILL cannot reach it (uninterruptible sleep on a hung device) is abandoned after a short
 * grace rather than waited for: the caller never blocks much past its deadline. Returns
 * HANGAR_OK only for exit status 0 with output that fit; otherwise a status with hs_fail
 * saying what happened and quoting stderr:
 *   HANGAR_E_DRIVER_UNAVAILABLE  the tool does not exist or is not executable
 *   HANGAR_E_BUSY                it ran past the deadline and was killed
 *   HANGAR_E_IO                  it exited non-zero or was killed by a signal
 *   HANGAR_E_INSUFFICIENT        it printed more than out_len - 1 bytes
 * Pipes are close-on-exec, so tools started by other threads at the same time never hold them.
 */
static inline hangar_status hs_run_tool(char *const argv[], int timeout_ms, char *out, size_t out_len, char *err, size_t err_len)
{
    char no_err[1];
    if (err == NULL || err_len == 0) {
        err = no_err;
        err_len = 1;
    }
    if (out == NULL || out_len == 0)
        return hs_fail(HANGAR_E_INVALID_ARGUMENT, "hs_run_tool: no output buffer");
    out[0] = '\0';
    err[0] = '\0';
    if (access(argv[0], X_OK) != 0)
        return hs_fail_errno(HANGAR_E_DRIVER_UNAVAILABLE, errno, "%s cannot be run", argv[0]);
    int out_pipe[2], err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0)
        return hs_fail_errno(HANGAR_E_IO, errno, "cannot run %s: pipe", argv[0]);
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        int e = errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        return hs_fail_errno(HANGAR_E_IO, e, "cannot run %s: pipe", argv[0]);
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(out_pipe[0]);
        close(out_pipe[1]);
        close(err_pipe[0]);
        close(err_pipe[1]);
        return hs_fail_errno(HANGAR_E_IO, e, "cannot run %s: fork", argv[0]);
    }
    if (pid == 0) {
        /* The child: only async-signal-safe calls until execv. Its own process group, so a
         * deadline kills whatever it started too; default signal handling and mask, whatever
         * the agent set for itself. dup2 clears close-on-exec on the copies it makes. */
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        execv(argv[0], argv);
        _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    size_t got = 0, got_err = 0;
    bool overflow = false, timed_out = false, exited = false;
    int status = 0;
    int64_t deadline = hs_now_ms() + timeout_ms, drain_until = -1;
    struct pollfd fds[2] = {{.fd = out_pipe[0], .events = POLLIN}, {.fd = err_pipe[0], .events = POLLIN}};
    int open_fds = 2;
    while (open_fds > 0) {
        int64_t now = hs_now_ms();
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            drain_until = now + 100; /* what it wrote before exiting is in the pipe; a stray child may hold it open */
        }
        if (exited && now >= drain_until)
            break;
        if (!exited && now >= deadline) {
            timed_out = true;
            break;
        }
        int64_t until = exited ? drain_until : deadline;
        int wait_ms = (int)(until - now < 50 ? until - now : 50); /* wake to notice the exit */
        int ready = poll(fds, 2, wait_ms > 0 ? wait_ms : 0);
        if (ready <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[4096];
            ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
            if (n < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
                continue;
            }
            char *buf = i == 0 ? out : err;
            size_t len = i == 0 ? out_len : err_len;
            size_t *used = i == 0 ? &got : &got_err;
            size_t room = *used < len - 1 ? len - 1 - *used : 0;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(buf + *used, chunk, take);
            *used += take;
            buf[*used] = '\0';
            if (i == 0 && take < (size_t)n)
                overflow = true;
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    if (!exited && !timed_out)
        exited = hs_reap_until(pid, &status, deadline); /* both pipes closed; the tool is finishing */
    if (!exited) {
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        hs_reap_until(pid, &status, hs_now_ms() + 200);
        return hs_fail(HANGAR_E_BUSY, "%s did not finish within %d ms and was killed; check the driver (a hung device or daemon)",
                       argv[0], timeout_ms);
    }
    /* Trailing white space of stderr does not help a message. */
    while (got_err > 0 && (err[got_err - 1] == '\n' || err[got_err - 1] == ' '))
        err[--got_err] = '\0';
    if (WIFSIGNALED(status))
        return hs_fail(HANGAR_E_IO, "%s was killed by signal %d%s%.200s", argv[0], WTERMSIG(status), got_err ? ": " : "", err);
    if (WEXITSTATUS(status) == 127 && got == 0 && got_err == 0)
        return hs_fail(HANGAR_E_DRIVER_UNAVAILABLE, "%s could not be started", argv[0]);
    if (WEXITSTATUS(status) != 0)
        return hs_fail(HANGAR_E_IO, "%s exited with status %d%s%.200s", argv[0], WEXITSTATUS(status), got_err ? ": " : "", err);
    if (overflow)
        return hs_fail(HANGAR_E_INSUFFICIENT, "%s printed more than %zu bytes; its output was refused", argv[0], out_len - 1);
    return HANGAR_OK;
}

/* ------------------------------------------------------------------------ */
/* Strict JSON                                                               */
/* ------------------------------------------------------------------------ */

/** JSON value kinds. */
typedef enum hs_json_type { HS_JSON_NULL, HS_JSON_FALSE, HS_JSON_TRUE, HS_JSON_NUMBER, HS_JSON_STRING, HS_JSON_ARRAY, HS_JSON_OBJECT } hs_json_type;

/**
 * One parsed value. Strings are decoded in place into the text buffer (escapes resolved,
 * NUL-terminated); containers know their children by index: `first` child, each child's
 * `next` sibling (-1 ends), and an object's children are its values, each with its `key`.
 */
typedef struct hs_json_value {
    hs_json_type type;
    int32_t first, next, count;
    const char *key;
    const char *string;
    double number;
} hs_json_value;

/** A parsed document: the values live in `values`, strings in the text the parser was given.
 *  About 100 KiB: allocate it (malloc, or in the instance), not on the stack. */
typedef struct hs_json {
    hs_json_value values[2048];
    int32_t count;
    int depth;
} hs_json;

static inline int32_t hs_json_add(hs_json *j, hs_json_type type)
{
    if (j->count >= (int32_t)(sizeof j->values / sizeof j->values[0]))
        return -1;
    hs_json_value *v = &j->values[j->count];
    memset(v, 0, sizeof *v);
    v->type = type;
    v->first = v->next = -1;
    return j->count++;
}

static inline void hs_json_space(char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

/* Decodes a string starting after its opening quote, in place; returns its start or NULL. */
static inline char *hs_json_string(char **p)
{
    char *start = *p, *w = *p;
    for (char *r = *p;;) {
        unsigned char c = (unsigned char)*r;
        if (c == '"') {
            *w = '\0';
            *p = r + 1;
            return start;
        }
        if (c < 0x20)
            return NULL; /* control characters (and the end of the text) are not allowed in strings */
        if (c != '\\') {
            *w++ = *r++;
            continue;
        }
        r++;
        switch (*r) {
        case '"': case '\\': case '/': *w++ = *r++; break;
        case 'b': *w++ = '\b'; r++; break;
        case 'f': *w++ = '\f'; r++; break;
        case 'n': *w++ = '\n'; r++; break;
        case 'r': *w++ = '\r'; r++; break;
        case 't': *w++ = '\t'; r++; break;
        case 'u': {
            unsigned code = 0;
            for (int i = 1; i <= 4; i++) {
                char h = r[i];
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0)
                    return NULL;
                code = code * 16 + (unsigned)d;
            }
            r += 5;
            /* Vendor tools print ASCII; anything else becomes '?' rather than a wrong encoding. */
            *w++ = code < 0x80 && code != 0 ? (char)code : '?';
            break;
        }
        default: return NULL;
        }
    }
}

static inline int32_t hs_json_parse_value(hs_json *j, char **p);

static inline int32_t hs_json_parse_container(hs_json *j, char **p, bool object)
{
    int32_t self = hs_json_add(j, object ? HS_JSON_OBJECT : HS_JSON_ARRAY), last = -1;
    if (self < 0 || ++j->depth > 64)
        return -1;
    (*p)++;
    hs_json_space(p);
    if (**p == (object ? '}' : ']')) {
        (*p)++;
        j->depth--;
        return self;
    }
    for (;;) {
        const char *key = NULL;
        if (object) {
            if (**p != '"')
                return -1;
            (*p)++;
            if ((key = hs_json_string(p)) == NULL)
                return -1;
            hs_json_space(p);
            if (**p != ':')
                return -1;
            (*p)++;
        }
        int32_t child = hs_json_parse_value(j, p);
        if (child < 0)
            return -1;
        j->values[child].key = key;
        if (last < 0)
            j->values[self].first = child;
        else
            j->values[last].next = child;
        last = child;
        j->values[self].count++;
        hs_json_space(p);
        if (**p == ',') {
            (*p)++;
            hs_json_space(p);
            continue;
        }
        if (**p != (object ? '}' : ']'))
            return -1;
        (*p)++;
        j->depth--;
        return self;
    }
}

static inline int32_t hs_json_parse_value(hs_json *j, char **p)
{
    hs_json_space(p);
    char c = **p;
    if (c == '{' || c == '[')
        return hs_json_parse_container(j, p, c == '{');
    if (c == '"') {
        (*p)++;
        int32_t v = hs_json_add(j, HS_JSON_STRING);
        if (v < 0 || (j->values[v].string = hs_json_string(p)) == NULL)
            return -1;
        return v;
    }
    if (strncmp(*p, "true", 4) == 0 || strncmp(*p, "false", 5) == 0 || strncmp(*p, "null", 4) == 0) {
        hs_json_type type = c == 't' ? HS_JSON_TRUE : c == 'f' ? HS_JSON_FALSE : HS_JSON_NULL;
        *p += c == 'f' ? 5 : 4;
        return hs_json_add(j, type);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        /* JSON's number grammar, checked here: strtod alone would also take hex, inf, nan,
         * "01" and "1.", and follows the process locale. */
        const char *q = *p;
        if (*q == '-')
            q++;
        if (*q == '0')
            q++;
        else if (*q >= '1' && *q <= '9')
            while (*q >= '0' && *q <= '9')
                q++;
        else
            return -1;
        if (*q == '.') {
            q++;
            if (*q < '0' || *q > '9')
                return -1;
            while (*q >= '0' && *q <= '9')
                q++;
        }
        if (*q == 'e' || *q == 'E') {
            q++;
            if (*q == '+' || *q == '-')
                q++;
            if (*q < '0' || *q > '9')
                return -1;
            while (*q >= '0' && *q <= '9')
                q++;
        }
        char *end = NULL;
        double number = strtod(*p, &end);
        if (end != q || !(number - number == 0)) /* a different reading, or not finite (1e999) */
            return -1;
        *p = end;
        int32_t v = hs_json_add(j, HS_JSON_NUMBER);
        if (v >= 0)
            j->values[v].number = number;
        return v;
    }
    return -1;
}

/**
 * Parses `text` (modified in place: strings are decoded into it) as exactly one JSON value
 * with nothing but white space after it. On failure returns HANGAR_E_INVALID_ARGUMENT with a
 * message naming `what` (e.g. "gc-monitor -j output") and quoting where parsing stopped.
 */
static inline hangar_status hs_json_parse(hs_json *j, char *text, const char *what)
{
    j->count = 0;
    j->depth = 0;
    char *p = text;
    int32_t root = hs_json_parse_value(j, &p);
    if (root == 0) {
        hs_json_space(&p);
        if (*p == '\0')
            return HANGAR_OK;
    }
    if (j->count >= (int32_t)(sizeof j->values / sizeof j->values[0]))
        return hs_fail(HANGAR_E_INSUFFICIENT, "%s has more than %zu values; the plugin reads at most that many", what,
                       sizeof j->values / sizeof j->values[0]);
    return hs_fail(HANGAR_E_INVALID_ARGUMENT, "%s is not the JSON expected (stopped at \"%.40s\")", what, p);
}

/** The root value of a parsed document. */
static inline const hs_json_value *hs_json_root(const hs_json *j) { return j->count > 0 ? &j->values[0] : NULL; }

/** An object's member by key, or NULL (also for a non-object). */
static inline const hs_json_value *hs_json_get(const hs_json *j, const hs_json_value *object, const char *key)
{
    if (object == NULL || object->type != HS_JSON_OBJECT)
        return NULL;
    for (int32_t i = object->first; i >= 0; i = j->values[i].next)
        if (strcmp(j->values[i].key, key) == 0)
            return &j->values[i];
    return NULL;
}

/** An array's element `index`, or NULL. */
static inline const hs_json_value *hs_json_at(const hs_json *j, const hs_json_value *array, int32_t index)
{
    if (array == NULL || array->type != HS_JSON_ARRAY)
        return NULL;
    for (int32_t i = array->first, k = 0; i >= 0; i = j->values[i].next, k++)
        if (k == index)
            return &j->values[i];
    return NULL;
}

/** A member's string, or NULL when absent or not a string. */
static inline const char *hs_json_string_of(const hs_json *j, const hs_json_value *object, const char *key)
{
    const hs_json_value *v = hs_json_get(j, object, key);
    return v != NULL && v->type == HS_JSON_STRING ? v->string : NULL;
}

/** A member's number (a JSON number, or a string holding one, as some tools print), or `fallback`. */
static inline double hs_json_number_of(const hs_json *j, const hs_json_value *object, const char *key, double fallback)
{
    const hs_json_value *v = hs_json_get(j, object, key);
    if (v == NULL)
        return fallback;
    if (v->type == HS_JSON_NUMBER)
        return v->number;
    if (v->type == HS_JSON_STRING && v->string[0] != '\0') {
        char *end = NULL;
        double d = strtod(v->string, &end);
        if (*end == '\0')
            return d;
    }
    return fallback;
}

#endif /* HANGAR_SUPPORT_VENDOR_H */
