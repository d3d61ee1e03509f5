/* The service socket (README: "Service socket"): each connection is handed to a forked child,
 * so a tunnel that carries a gigabyte, or a service that takes a minute to start, never holds
 * up the poll loop that serves code executions. */
#include "services.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <dirent.h>

#include "buf.h"
#include "framing.h"
#include "server.h"
#include "spawn.h"
#include "util.h"

#define REQUEST_WAIT_MS 10000 /* the request frame must arrive within this */
#define CONNECT_WAIT_MS 5000  /* connecting to a port inside the container */
#define TUNNEL_BUFFER (256 * 1024)
#define MAX_REQUEST (1u << 20)

/* ------------------------------------------------------------------ blocking helpers
 * The handler is a process of its own with one connection, so plain blocking I/O is the
 * simplest correct thing here. */

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void reply(int fd, char type, const char *text)
{
    size_t len = strlen(text);
    unsigned char head[5];
    put_be32(head, (uint32_t)len + 1);
    head[4] = (unsigned char)type;
    if (write_all(fd, head, sizeof head) == 0)
        write_all(fd, text, len);
}

static void replyf(int fd, char type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void replyf(int fd, char type, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    reply(fd, type, text);
}

/* Reads exactly len bytes before the deadline: 0, or -1 (timeout, EOF or error). */
static int read_full(int fd, void *data, size_t len, int64_t deadline)
{
    unsigned char *p = data;
    while (len > 0) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        ssize_t n = read(fd, p, len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The handler keeps only its connection: a copy of the agent's connection or of a child's pipe
 * held here would hide their EOF from the runner and the agent. */
static void close_other_descriptors(int keep)
{
    for (int fd = 3; fd < 65536; fd++) {
        if (fd == keep)
            continue;
        if (close(fd) < 0 && errno == EBADF && fd > 1024)
            break; /* past the usual limit and nothing open: stop early */
    }
}

/* ------------------------------------------------------------------ T: tunnel */

static int connect_local(int port, int *err)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (errno != EINPROGRESS) {
            *err = errno;
            close(fd);
            return -1;
        }
        struct pollfd pf = { .fd = fd, .events = POLLOUT };
        int r;
        do
            r = poll(&pf, 1, CONNECT_WAIT_MS);
        while (r < 0 && errno == EINTR);
        int so = 0;
        socklen_t sl = sizeof so;
        if (r == 0)
            so = ETIMEDOUT;
        else if (r < 0)
            so = errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0)
            so = errno;
        if (so) {
            *err = so;
            close(fd);
            return -1;
        }
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Copies both ways until both sides have ended. A side's EOF is passed on as a shutdown of the
 * other side's writing half, so half-closed protocols (scp, HTTP/1.0 clients) work. */
static void splice_both(int a, int b)
{
    static unsigned char buf[TUNNEL_BUFFER];
    int open_a = 1, open_b = 1; /* still reading from a / b */
    while (open_a || open_b) {
        struct pollfd pf[2];
        int n = 0, ia = -1, ib = -1;
        if (open_a) {
            ia = n;
            pf[n++] = (struct pollfd){ .fd = a, .events = POLLIN };
        }
        if (open_b) {
            ib = n;
            pf[n++] = (struct pollfd){ .fd = b, .events = POLLIN };
        }
        if (poll(pf, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (int k = 0; k < 2; k++) {
            int idx = k == 0 ? ia : ib;
            if (idx < 0 || !pf[idx].revents)
                continue;
            int from = k == 0 ? a : b, to = k == 0 ? b : a;
            ssize_t got = read(from, buf, sizeof buf);
            if (got < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (got <= 0) {
                shutdown(to, SHUT_WR);
                if (k == 0)
                    open_a = 0;
                else
                    open_b = 0;
                if (got < 0)
                    return; /* a reset: nothing more will flow either way */
                continue;
            }
            if (write_all(to, buf, (size_t)got) < 0)
                return;
        }
    }
}

/* A decimal number in 1..max filling the whole (NUL-terminated) payload: it, or -1. */
static long payload_number(const char *payload, size_t len, long max)
{
    if (len == 0 || len > 15)
        return -1;
    char *end;
    long n = strtol(payload, &end, 10);
    return *end || n < 1 || n > max ? -1 : n;
}

static void tunnel(int conn, const char *payload, size_t len)
{
    long port = payload_number(payload, len, 65535);
    if (port < 0) {
        if (len == 0 || len > 15)
            reply(conn, 'E', "T needs a port number (1-65535)");
        else
            replyf(conn, 'E', "T needs a port number (1-65535), not '%s'", payload);
        return;
    }
    int err = 0;
    int fd = connect_local((int)port, &err);
    if (fd < 0) {
        replyf(conn, 'E', "nothing accepts connections on port %ld in the container: %s", port, strerror(err));
        return;
    }
    reply(conn, 't', "");
    splice_both(conn, fd);
    close(fd);
}

/* ------------------------------------------------------------------ S: start a service */

/* Payload: NUL-separated fields: the log path, the working directory, then entries "E" NAME=VALUE
 * (added to the environment) and "A" ARG (argv, in order). */
static void start_service(int conn, char *payload, size_t len)
{
    char *fields[4096];
    size_t nf = 0;
    for (size_t i = 0, start = 0; i <= len && nf < sizeof fields / sizeof fields[0]; i++) {
        if (i == len || payload[i] == 0) {
            payload[i] = 0; /* the frame buffer has one spare byte past the payload */
            fields[nf++] = payload + start;
            start = i + 1;
        }
    }
    if (nf < 3) {
        reply(conn, 'E', "S needs a log path, a working directory and a command");
        return;
    }
    const char *log_path = fields[0], *cwd = fields[1];
    char *argv[4096];
    size_t argc = 0;
    for (size_t i = 2; i < nf; i++) {
        if (fields[i][0] == 'E' && strchr(fields[i] + 1, '=')) {
            putenv(fields[i] + 1);
        } else if (fields[i][0] == 'A') {
            argv[argc++] = fields[i] + 1;
        } else if (fields[i][0] != 0) {
            replyf(conn, 'E', "S: a field must start with E or A, not '%.40s'", fields[i]);
            return;
        }
    }
    if (argc == 0) {
        reply(conn, 'E', "S: the service has no command");
        return;
    }
    argv[argc] = NULL;
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        replyf(conn, 'E', "cannot open the service log %s: %s", log_path, strerror(errno));
        return;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0) {
        replyf(conn, 'E', "cannot open /dev/null: %s", strerror(errno));
        close(log);
        return;
    }
    if (*cwd && chdir(cwd) < 0 && chdir("/") < 0) {
        replyf(conn, 'E', "cannot change to %s: %s", cwd, strerror(errno));
        close(log);
        close(devnull);
        return;
    }
    int fds[3] = { devnull, log, log };
    int e = 0;
    /* Its own process group and session: an interrupt of a code execution never reaches it. */
    pid_t pid = spawn(argv[0], argv, fds, 3, SPAWN_PGRP, &e);
    close(log);
    close(devnull);
    if (pid < 0) {
        replyf(conn, 'E', "cannot run %s: %s", argv[0], strerror(e));
        return;
    }
    replyf(conn, 's', "%d", (int)pid);
}

/* ------------------------------------------------------------------ Z: is a process alive */

static void process_state(int conn, const char *payload, size_t len)
{
    long pid = payload_number(payload, len, 0x7fffffffL);
    if (pid < 0) {
        if (len == 0 || len > 15)
            reply(conn, 'E', "Z needs a process id");
        else
            replyf(conn, 'E', "Z needs a process id, not '%s'", payload);
        return;
    }
    /* A zombie is as good as gone: PID 1 reaps it a moment later. */
    char path[64], stat[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, stat, sizeof stat - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0) {
        reply(conn, 'z', "gone");
        return;
    }
    stat[n] = 0;
    const char *paren = strrchr(stat, ')');
    reply(conn, 'z', paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X') ? "gone" : "running");
}

/* ------------------------------------------------------------------ L: list a directory */

#define LIST_MAX_ENTRIES 10000

/* One line per entry: name, size, mode (octal, with the type bits), mtime, atime, ctime,
 * tab-separated; names with a tab or newline are skipped (they cannot be framed this way).
 * lstat: a symlink is listed as itself, never followed. */
static void list_directory(int conn, const char *path)
{
    DIR *dir = opendir(path);
    if (!dir) {
        replyf(conn, 'E', "cannot list %s: %s", path, strerror(errno));
        return;
    }
    struct buf out = { 0 };
    int count = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && count < LIST_MAX_ENTRIES) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || strpbrk(de->d_name, "\t\n"))
            continue;
        struct stat sb;
        if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        char line[512];
        int n = snprintf(line, sizeof line, "\t%lld\t%o\t%lld.%09ld\t%lld.%09ld\t%lld.%09ld\n", (long long)sb.st_size, (unsigned)sb.st_mode,
                         (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec, (long long)sb.st_atim.tv_sec, sb.st_atim.tv_nsec,
                         (long long)sb.st_ctim.tv_sec, sb.st_ctim.tv_nsec);
        buf_append(&out, de->d_name, strlen(de->d_name));
        buf_append(&out, line, (size_t)n);
        count++;
    }
    closedir(dir);
    buf_append(&out, "", 1);
    reply(conn, 'l', (const char *)out.p + out.off);
    buf_free(&out);
}

/* ------------------------------------------------------------------ the handler */

static void handle(int conn)
{
    int flags = fcntl(conn, F_GETFL);
    fcntl(conn, F_SETFL, flags & ~O_NONBLOCK);
    int64_t deadline = now_ms() + REQUEST_WAIT_MS;
    unsigned char head[5];
    if (read_full(conn, head, sizeof head, deadline) < 0)
        return;
    uint32_t n = get_be32(head);
    if (n < 1 || n > MAX_REQUEST) {
        replyf(conn, 'E', "bad frame: length %u (must be 1..%u)", n, MAX_REQUEST);
        return;
    }
    char *payload = malloc(n); /* n - 1 bytes and one for a terminating NUL */
    if (!payload) {
        reply(conn, 'E', "out of memory");
        return;
    }
    if (read_full(conn, payload, n - 1, deadline) < 0) {
        free(payload);
        return;
    }
    payload[n - 1] = 0;
    switch (head[4]) {
    case 'T':
        tunnel(conn, payload, n - 1);
        break;
    case 'S':
        start_service(conn, payload, n - 1);
        break;
    case 'Z':
        process_state(conn, payload, n - 1);
        break;
    case 'L':
        list_directory(conn, payload);
        break;
    case 'P':
        reply(conn, 'p', payload);
        break;
    default:
        if (head[4] >= 0x20 && head[4] < 0x7f)
            replyf(conn, 'E', "unknown service request '%c' (T, S, Z, L or P)", head[4]);
        else
            replyf(conn, 'E', "unknown service request 0x%02x (T, S, Z, L or P)", head[4]);
        break;
    }
    free(payload);
}

void services_accept(int listen_fd)
{
    int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            logmsg("accept on the service socket: %s", strerror(errno));
        return;
    }
    /* Signals stay blocked across fork so the child never runs our handlers (they write into
     * the parent's self-pipe); it resets them to their defaults first. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT };
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
            sigaction(sigs[i], &sa, NULL);
        sa.sa_handler = SIG_IGN; /* a peer that goes away is an EPIPE, not a death */
        sigaction(SIGPIPE, &sa, NULL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        close_other_descriptors(conn);
        handle(conn);
        close(conn);
        _exit(0);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        logmsg("cannot fork for a service connection: %s", strerror(errno));
        reply(conn, 'E', "the runner cannot fork");
    }
    close(conn);
}

int services_listen(const char *path) { return unix_listen(path, 128); }
