/*
 * ttyd mode (README: "ttyd mode"): `hangar-runner ttyd`, a web terminal that existing ttyd 1.7
 * web clients can use.
 *
 * One process, one poll() loop, no threads. It polls a signalfd, the listening TCP socket, and
 * per connection its socket and, once its terminal runs, the master side of its pty. Every
 * descriptor is close-on-exec and non-blocking, so a shell inherits only its pty as fds 0-2.
 *
 * A connection is plain HTTP until its request has been read: the page, /token, xterm.js and
 * errors get one response and a close; /ws upgrades to a WebSocket (RFC 6455). On the
 * WebSocket, the first message ('{' and JSON with the size) starts a shell on a new pty; after
 * it, every message is a command byte and its argument (ttyd_message). The shell's output goes
 * out in binary frames, '0' and the bytes. When the shell exits the connection is closed with
 * 1000; when the client goes, the shell's process group gets SIGHUP.
 *
 * Like the rest of the runner it is linked statically: no NSS (no getaddrinfo, getpwnam), no
 * dlopen. The bind address is parsed with inet_pton, the shell found with access().
 */
#include "ttyd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "buf.h"
#include "spawn.h"
#include "util.h"

#define DEFAULT_PORT 7681
#define DEFAULT_BIND "127.0.0.1"
#define DEFAULT_CWD "/home/work"
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#define MAX_HEADER 16384           /* request line and headers; more: 431 */
#define MAX_MESSAGE (1u << 20)     /* one WebSocket message, its fragments together; more: 1009 */
#define QUEUE_LIMIT (1u << 20)     /* back-pressure: queued for the client, or for the pty */
#define OUT_LIMIT (4u << 20)       /* stop reading a client that does not read (its pongs pile up) */
#define MAX_FILE (16u << 20)       /* xterm.js and its css are read whole */
#define HEADER_TIMEOUT_MS 30000    /* for the request's header block */
#define SEND_TIMEOUT_MS 10000      /* a closing connection that takes nothing */
#define LINGER_MS 2000             /* after our last byte, for the client's close */
#define HUP_WAIT_MS 500            /* exit: SIGHUP -> SIGKILL for shells left */
#define KILL_WAIT_MS 300           /* exit: SIGKILL -> give up waiting */
#define ACCEPT_PAUSE_MS 100        /* out of descriptors: accept again after */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Files of xterm.js, the first one present is served. Debian's node-xterm (bookworm: 3.8.1)
 * puts them in lib/, npm's xterm 4 and 5 have css/xterm.css; libjs-xterm is Debian's browser
 * copy. A file that is no browser build (bookworm's is CommonJS) defines no Terminal in the
 * page, which then falls back to its plain terminal. */
static const char *const XTERM_JS[] = {
    "/usr/share/nodejs/xterm/lib/xterm.js",
    "/usr/share/javascript/xterm/xterm.js",
    NULL,
};
static const char *const XTERM_CSS[] = {
    "/usr/share/nodejs/xterm/css/xterm.css",
    "/usr/share/nodejs/xterm/lib/xterm.css",
    "/usr/share/javascript/xterm/xterm.css",
    NULL,
};

/* ------------------------------------------------------------------ SHA-1 and base64 */

/* Only for Sec-WebSocket-Accept (RFC 6455 4.2.2), so one-shot and small. */

static uint32_t rol32(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const unsigned char *p, size_t n, unsigned char out[20])
{
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    size_t full = n / 64 * 64;
    for (size_t i = 0; i < full; i += 64)
        sha1_block(h, p + i);
    /* The rest, 0x80, zeros, and the length in bits: one block, or two if the rest is 56+. */
    unsigned char tail[128];
    size_t rest = n - full, tl = rest < 56 ? 64 : 128;
    memset(tail, 0, sizeof tail);
    if (rest)
        memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int i = 0; i < 8; i++)
        tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tl; i += 64)
        sha1_block(h, tail + i);
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* out holds 4 * ((n + 2) / 3) + 1 bytes. */
static void base64(const unsigned char *p, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = 0;
}

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (24 characters). */
static void ws_accept_key(const char *key, char out[29])
{
    char text[24 + sizeof WS_GUID];
    unsigned char digest[20];
    size_t kl = strlen(key);
    memcpy(text, key, kl);
    memcpy(text + kl, WS_GUID, sizeof WS_GUID - 1);
    sha1((const unsigned char *)text, kl + sizeof WS_GUID - 1, digest);
    base64(digest, sizeof digest, out);
}

/* ------------------------------------------------------------------ the little JSON ttyd sends */

static size_t json_space(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* Past the string that starts at s[i] (a '"'); n if it does not end. */
static size_t json_skip_string(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return n;
}

/* Past the value at s[i]: a string, an object or array with all it holds, a number, a literal. */
static size_t json_skip_value(const char *s, size_t n, size_t i)
{
    int depth = 0;
    while (i < n) {
        char ch = s[i];
        if (ch == '"') {
            i = json_skip_string(s, n, i);
            if (depth == 0)
                return i;
            continue;
        }
        if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return i;
            if (--depth == 0)
                return i + 1;
        } else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')) {
            return i;
        }
        i++;
    }
    return n;
}

/* The integer fields "columns" and "rows" of ttyd's JSON messages ({"AuthToken":"","columns":80,
 * "rows":24} first, {"columns":C,"rows":R} to resize). Other fields, nested values and
 * whitespace are skipped. A field that is absent, not a number or not in 1..65535 leaves its
 * variable as it was (a fraction counts by its integer part). Returns -1 if the text is not a
 * JSON object (fields read before the error stay set), else 0. */
static int json_size(const char *s, size_t n, unsigned *cols, unsigned *rows)
{
    size_t i = json_space(s, n, 0);
    if (i >= n || s[i] != '{')
        return -1;
    i = json_space(s, n, i + 1);
    if (i < n && s[i] == '}')
        return 0;
    while (i < n && s[i] == '"') {
        size_t key = i + 1, end = json_skip_string(s, n, i);
        if (end >= n)
            return -1;
        size_t kl = end - 1 - key;
        unsigned *field = NULL;
        if (kl == 7 && memcmp(s + key, "columns", 7) == 0)
            field = cols;
        else if (kl == 4 && memcmp(s + key, "rows", 4) == 0)
            field = rows;
        i = json_space(s, n, end);
        if (i >= n || s[i] != ':')
            return -1;
        i = json_space(s, n, i + 1);
        if (field && i < n && s[i] >= '0' && s[i] <= '9') {
            unsigned long v = 0;
            for (size_t j = i; j < n && s[j] >= '0' && s[j] <= '9'; j++)
                if (v < 1000000)
                    v = v * 10 + (unsigned long)(s[j] - '0');
            if (v >= 1 && v <= 65535)
                *field = (unsigned)v;
        }
        i = json_space(s, n, json_skip_value(s, n, i));
        if (i < n && s[i] == ',') {
            i = json_space(s, n, i + 1);
            continue;
        }
        return i < n && s[i] == '}' ? 0 : -1;
    }
    return -1;
}

/* ------------------------------------------------------------------ state */

struct ttyd_options {
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    socklen_t addr_len;
    const char *bind;
    int port;
    const char *cwd;
    const char *shell; /* NULL: $SHELL, else /bin/bash, else /bin/sh */
    int tmux;
};

enum conn_state {
    C_HTTP,    /* reading the request's header block */
    C_WS,      /* the WebSocket is open */
    C_CLOSING, /* the last response or close frame is queued: send it, then linger */
    C_LINGER,  /* our side is shut: read and drop until the client closes, so that data of its
                * we never read cannot turn our close into a reset that loses the response */
};

struct conn {
    int fd;
    enum conn_state state;
    int dead;          /* closed: freed at the top of the loop, after this wake-up's handlers */
    int64_t deadline;  /* of the state (now_ms); 0: none */
    struct buf in;     /* read from the socket, not parsed yet */
    struct buf out;    /* for the socket */
    struct buf msg;    /* the WebSocket message reassembled from its fragments so far */
    int msg_op;        /* its opcode while it waits for continuations, else 0 */
    int started;       /* the first message came: the terminal was started (or failed to) */
    int pty;           /* master side, -1 when there is none */
    pid_t pid;         /* the shell (its process group and session), until reaped or hung up */
    struct buf pty_in; /* input for the shell */
    int paused;        /* '2' PAUSE: the client asked us to stop reading the pty */
    int pty_eof;       /* the slave side has no descriptor left: the master is not polled */
    char peer[64];     /* for the log */
};

struct ttyd {
    struct ttyd_options opt;
    int listen_fd;
    int sig_fd;
    int64_t accept_resume; /* out of descriptors: accept again at this time; 0: now */
    int64_t emfile_logged;
    struct conn **conns;
    size_t nconns, cap_conns;
    pid_t *shells; /* every shell not reaped yet, those of closed connections too */
    size_t nshells, cap_shells;
    char host[256];
    int stop; /* the signal that ends the server; -1: poll failed; 0 while serving */
};

/* The array p (*cap elements of size bytes) with room for need: p itself, or where realloc
 * moved it (*cap updated), or NULL when out of memory (p is still valid then). */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(p, n * size);
    if (q)
        *cap = n;
    return q;
}

static void shells_add(struct ttyd *t, pid_t pid)
{
    pid_t *s = grow(t->shells, &t->cap_shells, t->nshells + 1, sizeof *t->shells);
    if (!s) {
        logmsg("out of memory");
        exit(1);
    }
    t->shells = s;
    t->shells[t->nshells++] = pid;
}

static void shells_remove(struct ttyd *t, pid_t pid)
{
    for (size_t i = 0; i < t->nshells; i++)
        if (t->shells[i] == pid) {
            t->shells[i] = t->shells[--t->nshells];
            return;
        }
}

/* ------------------------------------------------------------------ connections */

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9, OP_PONG = 10 };

/* Queues one unmasked final frame whose payload is a then b. */
static void ws_send(struct conn *c, int op, const void *a, size_t alen, const void *b, size_t blen)
{
    unsigned char h[10];
    size_t n = alen + blen, hl = 2;
    h[0] = (unsigned char)(0x80 | op);
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    buf_append(&c->out, h, hl);
    buf_append(&c->out, a, alen);
    buf_append(&c->out, b, blen);
}

/* A ttyd message to the client: the command byte and its argument, in a binary frame. */
static void tty_send(struct conn *c, char cmd, const void *data, size_t n)
{
    ws_send(c, OP_BINARY, &cmd, 1, data, n);
}

/* Hangs up the shell: SIGHUP to its process group and to the terminal's foreground job (a
 * shell that ignores SIGHUP would not pass it on), SIGCONT too, since a stopped job acts on
 * the hangup only once continued; then the master is closed, which hangs up the terminal. The
 * shell stays in t->shells until it is reaped. */
static void terminal_end(struct conn *c)
{
    if (c->pid > 0) {
        pid_t fg = c->pty >= 0 ? tcgetpgrp(c->pty) : -1;
        if (fg > 0 && fg != c->pid) {
            kill(-fg, SIGHUP);
            kill(-fg, SIGCONT);
        }
        kill_group(c->pid, SIGHUP);
        kill_group(c->pid, SIGCONT);
        c->pid = 0;
    }
    close_fd(&c->pty);
    buf_free(&c->pty_in);
}

static void conn_drop(struct conn *c)
{
    if (c->dead)
        return;
    close_fd(&c->fd);
    terminal_end(c);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->msg);
    c->dead = 1;
}

/* Sends what it can. A closing connection whose queue is empty shuts its side and lingers.
 * Returns -1 if the connection was dropped (the client is gone). */
static int conn_flush(struct conn *c)
{
    size_t before = buf_pending(&c->out);
    if (buf_flush(c->fd, &c->out, 1) < 0) {
        conn_drop(c);
        return -1;
    }
    if (c->state == C_CLOSING) {
        if (buf_pending(&c->out) < before)
            c->deadline = now_ms() + SEND_TIMEOUT_MS;
        if (buf_pending(&c->out) == 0) {
            shutdown(c->fd, SHUT_WR);
            c->state = C_LINGER;
            c->deadline = now_ms() + LINGER_MS;
        }
    }
    return 0;
}

/* Everything queued is the last: no more input is handled, the terminal ends, and the
 * connection closes once the queue is sent (or after SEND_TIMEOUT_MS without progress). */
static void conn_finish(struct conn *c)
{
    c->state = C_CLOSING;
    c->deadline = now_ms() + SEND_TIMEOUT_MS;
    terminal_end(c);
    buf_free(&c->in);
    buf_free(&c->msg);
    c->msg_op = 0;
    conn_flush(c);
}

/* Server-initiated close handshake (or our answer to the client's): the close frame, then
 * conn_finish. Does nothing unless the WebSocket is open. */
static void ws_close(struct conn *c, unsigned code, const char *reason)
{
    if (c->state != C_WS)
        return;
    unsigned char p[2] = { (unsigned char)(code >> 8), (unsigned char)code };
    ws_send(c, OP_CLOSE, p, 2, reason, strlen(reason));
    if (code != 1000 && code != 1001)
        logmsg("ttyd: %s: closing with %u (%s)", c->peer, code, reason);
    conn_finish(c);
}

/* ------------------------------------------------------------------ the shell */

struct command {
    char path[PATH_MAX];
    char *argv[11];
    char name[64]; /* argv[0], and what the window title says */
};

static int executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* name looked up on $PATH, with access() as the shell does it (no NSS involved). */
static int find_in_path(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = DEFAULT_PATH;
    while (path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        int n = dl ? snprintf(out, size, "%.*s/%s", (int)dl, path, name) : snprintf(out, size, "./%s", name);
        if (n > 0 && (size_t)n < size && executable(out))
            return 1;
        path = colon ? colon + 1 : NULL;
    }
    return 0;
}

/* What a new terminal runs: tmux (with --tmux, if there is one), else --shell, else $SHELL if
 * it can be run, else /bin/bash, else /bin/sh. The shell is interactive (its stdin is the
 * terminal) but not a login shell: a login shell reads /etc/profile, which on Debian resets
 * PATH and so would lose what the image's environment put there. */
static void choose_command(const struct ttyd_options *o, struct command *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    if (o->tmux && find_in_path("tmux", cmd->path, sizeof cmd->path)) {
        strcpy(cmd->name, "tmux");
        cmd->argv[0] = cmd->name;
        /* -u: UTF-8 whatever the locale says (otherwise tmux draws é as _). */
        cmd->argv[1] = (char *)"-u";
        cmd->argv[2] = (char *)"new-session";
        cmd->argv[3] = (char *)"-A";
        cmd->argv[4] = (char *)"-s";
        cmd->argv[5] = (char *)"main";
        /* No status line: the shell's terminal is then exactly the size the client asked for
         * (`stty size` in the session says what the window is). */
        cmd->argv[6] = (char *)";";
        cmd->argv[7] = (char *)"set-option";
        cmd->argv[8] = (char *)"status";
        cmd->argv[9] = (char *)"off";
        return;
    }
    const char *env = getenv("SHELL");
    if (o->shell) {
        if (strchr(o->shell, '/') || !find_in_path(o->shell, cmd->path, sizeof cmd->path))
            snprintf(cmd->path, sizeof cmd->path, "%s", o->shell);
    } else if (env && env[0] == '/' && executable(env)) {
        snprintf(cmd->path, sizeof cmd->path, "%s", env);
    } else {
        strcpy(cmd->path, executable("/bin/bash") ? "/bin/bash" : "/bin/sh");
    }
    const char *slash = strrchr(cmd->path, '/');
    snprintf(cmd->name, sizeof cmd->name, "%.*s", (int)sizeof cmd->name - 1, slash ? slash + 1 : cmd->path);
    cmd->argv[0] = cmd->name;
}

/* In the child: the terminal as its controlling terminal and fds 0-2, then exec. Does not
 * return; an error before or in exec goes to the parent through report. */
static void child_exec(int slave, int report, const struct command *cmd, const char *cwd)
{
    /* Default dispositions and an empty mask: the server blocks signals for its signalfd and
     * ignores SIGPIPE, and exec would hand both down. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int e = 0;
    /* Above 0-2 (the server may have been started with them closed), so the dup2s below
     * neither overwrite nor no-op on them. */
    if (report < 3)
        report = fcntl(report, F_DUPFD_CLOEXEC, 3);
    if (slave < 3)
        slave = fcntl(slave, F_DUPFD_CLOEXEC, 3);
    if (slave < 0 || setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
        e = errno;
    for (int fd = 0; fd < 3 && !e; fd++)
        if (dup2(slave, fd) < 0)
            e = errno;
    if (!e) {
        if (chdir(cwd) < 0 && chdir("/") < 0) {
            /* stays where the server is */
        }
        setenv("TERM", "xterm-256color", 1);
        /* A UTF-8 locale unless the image chose one: C.UTF-8 is in every glibc since 2.35. */
        if (!getenv("LANG") && !getenv("LC_ALL") && !getenv("LC_CTYPE"))
            setenv("LANG", "C.UTF-8", 1);
        execv(cmd->path, cmd->argv);
        e = errno;
    }
    ssize_t w = write(report, &e, sizeof e);
    (void)w;
    _exit(e == ENOENT ? 127 : 126);
}

/* fork + child_exec: the pid, or -1 with *err = the errno of fork or of the child's setup or
 * exec (seen through a close-on-exec pipe, so a missing shell is an error here). */
static pid_t fork_shell(int slave, const struct command *cmd, const char *cwd, int *err)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        *err = errno;
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0)
        child_exec(slave, ep[1], cmd, cwd);
    close(ep[1]);
    if (pid < 0) {
        *err = errno;
        close(ep[0]);
        return -1;
    }
    int e = 0;
    ssize_t n;
    do
        n = read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        *err = e;
        return -1;
    }
    return pid;
}

/* A new pty of cols x rows with cmd on it: 0, or an errno. */
static int pty_spawn(struct ttyd *t, struct conn *c, const struct command *cmd, unsigned cols, unsigned rows)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return errno;
    int e = 0, s = -1;
    char name[128];
    if (grantpt(m) < 0 || unlockpt(m) < 0)
        e = errno;
    else
        e = ptsname_r(m, name, sizeof name);
    if (!e && (s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0)
        e = errno;
    if (!e) {
        struct winsize wsz = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
        ioctl(m, TIOCSWINSZ, &wsz);
    }
    pid_t pid = -1;
    if (!e)
        pid = fork_shell(s, cmd, t->opt.cwd, &e);
    close_fd(&s); /* only the shell holds the slave: the master sees EIO when it is all gone */
    if (e) {
        close(m);
        return e;
    }
    set_nonblock(m);
    c->pty = m;
    c->pid = pid;
    shells_add(t, pid);
    return 0;
}

/* The first message: start the terminal with its size, then say title and preferences (as
 * ttyd does, before any output). */
static void terminal_start(struct ttyd *t, struct conn *c, const char *json, size_t n)
{
    unsigned cols = 80, rows = 24;
    json_size(json, n, &cols, &rows);
    c->started = 1;
    struct command cmd;
    choose_command(&t->opt, &cmd);
    int e = pty_spawn(t, c, &cmd, cols, rows);
    if (e) {
        char line[PATH_MAX + 128];
        int len = snprintf(line, sizeof line, "hangar-runner ttyd: cannot run %s: %s\r\n", cmd.path, strerror(e));
        logmsg("ttyd: %s: cannot run %s: %s", c->peer, cmd.path, strerror(e));
        tty_send(c, '0', line, len > 0 && (size_t)len < sizeof line ? (size_t)len : strlen(line));
        ws_close(c, 1011, "cannot start the shell");
        return;
    }
    logmsg("ttyd: %s: %s started (pid %d, %ux%u)", c->peer, cmd.path, (int)c->pid, cols, rows);
    char title[sizeof cmd.name + sizeof t->host + 4];
    snprintf(title, sizeof title, "%s (%s)", cmd.name, t->host);
    tty_send(c, '1', title, strlen(title));
    tty_send(c, '2', "{}", 2);
}

/* One read pass over the master (up to a frame of CHUNK bytes with the command byte), sent
 * as one '0' OUTPUT frame. Returns the bytes read. */
static size_t pty_read(struct conn *c)
{
    unsigned char chunk[CHUNK];
    size_t n = 1;
    chunk[0] = '0';
    while (n < sizeof chunk) {
        ssize_t r = read(c->pty, chunk + n, sizeof chunk - n);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        /* EIO (or 0): no descriptor of the slave is left, so input has nowhere to go either. */
        c->pty_eof = 1;
        buf_free(&c->pty_in);
        break;
    }
    if (n > 1)
        ws_send(c, OP_BINARY, chunk, n, NULL, 0);
    return n - 1;
}

static void pty_flush(struct conn *c)
{
    if (c->pty >= 0 && buf_flush(c->pty, &c->pty_in, 0) < 0)
        buf_free(&c->pty_in);
}

/* Reaped: what it wrote last is still in the pty (a read flushes the tty layer's buffers
 * first), so it goes out before the close. */
static void shell_exited(struct conn *c, int st)
{
    char how[96];
    describe_status(how, sizeof how, st);
    logmsg("ttyd: %s: shell %d %s", c->peer, (int)c->pid, how);
    c->pid = 0;
    for (size_t got = 0; c->pty >= 0 && !c->pty_eof && got < QUEUE_LIMIT;) {
        size_t r = pty_read(c);
        if (r == 0)
            break;
        got += r;
    }
    ws_close(c, 1000, "");
}

static void reap(struct ttyd *t)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        shells_remove(t, pid);
        for (size_t i = 0; i < t->nconns; i++) {
            struct conn *c = t->conns[i];
            if (!c->dead && c->pid == pid) {
                shell_exited(c, st);
                break;
            }
        }
    }
}

/* ------------------------------------------------------------------ ttyd's protocol */

/* A whole message from the client. Its first byte is the command (ttyd 1.7, protocol.c):
 * '{' the first message (JSON: AuthToken, columns, rows), '0' INPUT, '1' RESIZE_TERMINAL
 * (JSON: columns, rows), '2' PAUSE, '3' RESUME. Others are ignored, as ttyd does; so is input
 * before the terminal started. There is no credential, so AuthToken is not checked. */
static void ttyd_message(struct ttyd *t, struct conn *c, const unsigned char *p, size_t n)
{
    if (n == 0)
        return;
    switch (p[0]) {
    case '{':
        if (!c->started)
            terminal_start(t, c, (const char *)p, n);
        break;
    case '0':
        if (c->pty >= 0 && !c->pty_eof && n > 1) {
            buf_append(&c->pty_in, p + 1, n - 1);
            pty_flush(c);
        }
        break;
    case '1': {
        struct winsize wsz;
        if (c->pty < 0 || ioctl(c->pty, TIOCGWINSZ, &wsz) < 0)
            break;
        unsigned cols = wsz.ws_col, rows = wsz.ws_row;
        json_size((const char *)p + 1, n - 1, &cols, &rows);
        wsz.ws_col = (unsigned short)cols;
        wsz.ws_row = (unsigned short)rows;
        ioctl(c->pty, TIOCSWINSZ, &wsz); /* the kernel sends SIGWINCH to the foreground group */
        break;
    }
    case '2':
        c->paused = 1;
        break;
    case '3':
        c->paused = 0;
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------ WebSocket frames */

static int ws_fail(struct conn *c, unsigned code, const char *reason)
{
    ws_close(c, code, reason);
    return 0;
}

/* Close codes a peer may send (RFC 6455 7.4). */
static int close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* Returns 1 to go on reading frames, 0 once the connection is closing. */
static int ws_control(struct conn *c, int op, const unsigned char *p, size_t n)
{
    if (op == OP_PING) {
        ws_send(c, OP_PONG, p, n, NULL, 0);
        return 1;
    }
    if (op == OP_PONG)
        return 1;
    /* OP_CLOSE: answer with the client's code (the handshake), then close. */
    if (n == 1)
        return ws_fail(c, 1002, "bad close frame");
    unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1000;
    if (!close_code_ok(code))
        return ws_fail(c, 1002, "bad close code");
    ws_close(c, code, "");
    return 0;
}

/* Handles the frame at the head of c->in. Returns 1 when one was handled and more may follow,
 * 0 when it is not all there yet or the connection is closing. */
static int ws_frame(struct ttyd *t, struct conn *c)
{
    const unsigned char *p = c->in.p + c->in.off;
    size_t n = buf_pending(&c->in), hl = 2;
    if (n < 2)
        return 0;
    int fin = p[0] & 0x80, op = p[0] & 0x0f;
    uint64_t len = p[1] & 0x7f;
    if (p[0] & 0x70)
        return ws_fail(c, 1002, "reserved bits set");
    if (!(p[1] & 0x80))
        return ws_fail(c, 1002, "client frames must be masked");
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        hl = 10;
        if (len >> 63)
            return ws_fail(c, 1002, "bad frame length");
    }
    if (op & 8) {
        if (op > OP_PONG)
            return ws_fail(c, 1002, "unknown opcode");
        if (!fin || len > 125)
            return ws_fail(c, 1002, "bad control frame");
    } else {
        if (op > OP_BINARY)
            return ws_fail(c, 1002, "unknown opcode");
        if (op == OP_CONT && !c->msg_op)
            return ws_fail(c, 1002, "continuation without a message");
        if (op != OP_CONT && c->msg_op)
            return ws_fail(c, 1002, "new message inside a fragmented one");
        /* Before its payload is read: a message that is too big is refused at once. */
        if (len > MAX_MESSAGE - buf_pending(&c->msg))
            return ws_fail(c, 1009, "message too big");
    }
    size_t dl = (size_t)len;
    if (n - hl < 4 || n - hl - 4 < dl)
        return 0;
    const unsigned char *mask = p + hl, *data = p + hl + 4;
    if (op & 8) {
        unsigned char ctl[125];
        for (size_t i = 0; i < dl; i++)
            ctl[i] = data[i] ^ mask[i & 3];
        buf_consume(&c->in, hl + 4 + dl);
        return ws_control(c, op, ctl, dl);
    }
    size_t at = buf_pending(&c->msg);
    buf_append(&c->msg, data, dl);
    for (size_t i = 0; i < dl; i++)
        c->msg.p[c->msg.off + at + i] ^= mask[i & 3];
    buf_consume(&c->in, hl + 4 + dl);
    if (op != OP_CONT)
        c->msg_op = op;
    if (!fin)
        return 1;
    /* Text and binary alike: ttyd's page sends binary, other clients text. Text is not
     * checked for valid UTF-8: input is bytes for the pty. */
    c->msg_op = 0;
    ttyd_message(t, c, c->msg.p + c->msg.off, buf_pending(&c->msg));
    buf_consume(&c->msg, buf_pending(&c->msg));
    return c->state == C_WS;
}

/* ------------------------------------------------------------------ HTTP */

/* The page (README "ttyd mode"), one line of HTML or script per literal; the script is ES5
 * with TextEncoder/TextDecoder, and must not contain "??" (a trigraph in C11). The server puts
 * data-xterm="1" (and data-css="1") into its body tag when it has xterm.js (and its css). */
static const char PAGE_HEAD[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Terminal</title>\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<style>\n"
    "html, body { margin: 0; height: 100%; background: #000; color: #ddd; overflow: hidden; }\n"
    "#term { position: absolute; top: 0; left: 0; right: 0; bottom: 0; padding: 2px 0 0 4px; }\n"
    "#plain { position: absolute; top: 0; left: 0; right: 0; bottom: 0; display: none; flex-direction: column; }\n"
    "#out { flex: 1; margin: 0; padding: 4px; overflow: auto; white-space: pre-wrap; word-break: break-all; font: 14px monospace; }\n"
    "#line { display: flex; border-top: 1px solid #444; }\n"
    "#in { flex: 1; background: #111; color: #ddd; border: 0; padding: 6px; font: 14px monospace; outline: none; }\n"
    "#line button { background: #222; color: #ddd; border: 0; border-left: 1px solid #444; font: 13px monospace; padding: 0 10px; }\n"
    "#msg { position: fixed; left: 50%; top: 40%; transform: translate(-50%, -50%); display: none; z-index: 10;\n"
    "       background: #222; color: #eee; border: 1px solid #555; padding: 10px 16px; font: 14px sans-serif; }\n"
    "</style>\n"
    "</head>\n"
    "<body";
static const char PAGE_TAIL[] =
    ">\n"
    "<div id=\"term\"></div>\n"
    "<div id=\"plain\"><pre id=\"out\"></pre>\n"
    "<form id=\"line\"><input id=\"in\" autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\" aria-label=\"command line\"\n"
    "placeholder=\"type a line; Enter sends it\"><button type=\"button\" id=\"intr\" title=\"send Ctrl-C\">^C</button></form></div>\n"
    "<div id=\"msg\"></div>\n"
    "<script>\n"
    "(function () {\n"
    "  'use strict';\n"
    "  // ttyd 1.7's protocol: every message starts with a command byte. Client: '0' input,\n"
    "  // '1' resize {\"columns\",\"rows\"}, '2' pause, '3' resume, '{' the first message (auth + size).\n"
    "  // Server: '0' output, '1' window title, '2' preferences.\n"
    "  var body = document.body;\n"
    "  // Relative to where the page is served (a proxy may mount it under a prefix): /x/, /x and\n"
    "  // /x/index.html all talk to /x/ws.\n"
    "  var base = location.pathname.replace(/[^\\/]*\\.html?$/, '');\n"
    "  if (base.slice(-1) !== '/') base += '/';\n"
    "  var enc = new TextEncoder();\n"
    "  var msg = document.getElementById('msg');\n"
    "  var ws = null, ui = null;\n"
    "\n"
    "  function status(text) {\n"
    "    msg.textContent = text;\n"
    "    msg.style.display = text ? 'block' : 'none';\n"
    "  }\n"
    "  function send(s) { if (ws && ws.readyState === 1) ws.send(enc.encode(s)); }\n"
    "  function input(s) {\n"
    "    if (ws) send('0' + s);\n"
    "    else if (s.indexOf('\\r') >= 0) connect();\n"
    "  }\n"
    "  function resized(cols, rows) { send('1' + JSON.stringify({ columns: cols, rows: rows })); }\n"
    "\n"
    "  // The character cell of a font, to size the terminal to its box.\n"
    "  function fit(el, font, size) {\n"
    "    var s = document.createElement('span');\n"
    "    s.style.cssText = 'position:absolute;visibility:hidden;white-space:pre;font:' + size + 'px ' + font;\n"
    "    s.textContent = 'WWWWWWWWWW';\n"
    "    body.appendChild(s);\n"
    "    var r = s.getBoundingClientRect();\n"
    "    body.removeChild(s);\n"
    "    var cw = r.width / 10 || size * 0.6, ch = r.height || size * 1.2;\n"
    "    return {\n"
    "      cols: Math.max(20, Math.floor((el.clientWidth - 24) / cw)),\n"
    "      rows: Math.max(5, Math.floor((el.clientHeight - 6) / ch))\n"
    "    };\n"
    "  }\n"
    "\n"
    "  function connect() {\n"
    "    var dec = new TextDecoder(); // streaming: a UTF-8 sequence may span two messages\n"
    "    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + base + 'ws' + location.search;\n"
    "    var sock = new WebSocket(url, ['tty']);\n"
    "    ws = sock;\n"
    "    sock.binaryType = 'arraybuffer';\n"
    "    ui.reset();\n"
    "    status('Connecting...');\n"
    "    sock.onopen = function () {\n"
    "      status('');\n"
    "      var sz = ui.size();\n"
    "      send(JSON.stringify({ AuthToken: '', columns: sz.cols, rows: sz.rows }));\n"
    "      ui.focus();\n"
    "    };\n"
    "    sock.onmessage = function (ev) {\n"
    "      var d = typeof ev.data === 'string' ? enc.encode(ev.data) : new Uint8Array(ev.data);\n"
    "      if (!d.length) return;\n"
    "      var rest = d.subarray(1);\n"
    "      if (d[0] === 48) ui.write(dec.decode(rest, { stream: true }), rest.length);\n"
    "      else if (d[0] === 49) document.title = new TextDecoder().decode(rest);\n"
    "    };\n"
    "    sock.onclose = function (ev) {\n"
    "      if (ws !== sock) return;\n"
    "      ws = null;\n"
    "      status((ev.code === 1000 ? 'The shell has exited.' : 'Disconnected (' + ev.code + ').') +\n"
    "             ' Press Enter to reconnect.');\n"
    "    };\n"
    "  }\n"
    "\n"
    "  // xterm.js, as far as it is there: 3.x (term.on) and 4.x/5.x (term.onData, write callbacks).\n"
    "  function xtermUI(Terminal) {\n"
    "    var el = document.getElementById('term');\n"
    "    var font = 'Menlo, Consolas, \"DejaVu Sans Mono\", monospace', px = 15;\n"
    "    var term = new Terminal({ fontFamily: font, fontSize: px, cursorBlink: true, scrollback: 5000 });\n"
    "    term.open(el);\n"
    "    var modern = typeof term.onData === 'function';\n"
    "    function on(name, fn) {\n"
    "      if (modern) term['on' + name.charAt(0).toUpperCase() + name.slice(1)](fn);\n"
    "      else term.on(name, fn);\n"
    "    }\n"
    "    on('data', input);\n"
    "    if (modern && typeof term.onBinary === 'function') {\n"
    "      term.onBinary(function (s) {\n"
    "        var b = new Uint8Array(s.length + 1);\n"
    "        b[0] = 48;\n"
    "        for (var i = 0; i < s.length; i++) b[i + 1] = s.charCodeAt(i) & 255;\n"
    "        if (ws && ws.readyState === 1) ws.send(b);\n"
    "      });\n"
    "    }\n"
    "    on('resize', function (s) { resized(s.cols, s.rows); });\n"
    "    if (modern) { if (term.onTitleChange) term.onTitleChange(function (t) { if (t) document.title = t; }); }\n"
    "    else term.on('title', function (t) { if (t) document.title = t; });\n"
    "    var pending = 0, paused = false;\n"
    "    function size() {\n"
    "      var s = fit(el, font, px);\n"
    "      if (s.cols !== term.cols || s.rows !== term.rows) term.resize(s.cols, s.rows);\n"
    "      return { cols: term.cols, rows: term.rows };\n"
    "    }\n"
    "    window.addEventListener('resize', size);\n"
    "    return {\n"
    "      size: size,\n"
    "      focus: function () { term.focus(); },\n"
    "      reset: function () { pending = 0; paused = false; term.reset(); },\n"
    "      write: function (s, n) {\n"
    "        if (!modern) { term.write(s); return; }\n"
    "        // Flow control as ttyd's own page does it: pause the pty while xterm.js lags.\n"
    "        pending += n;\n"
    "        term.write(s, function () {\n"
    "          pending -= n;\n"
    "          if (paused && pending < 131072) { paused = false; send('3'); }\n"
    "        });\n"
    "        if (!paused && pending > 1048576) { paused = true; send('2'); }\n"
    "      }\n"
    "    };\n"
    "  }\n"
    "\n"
    "  // Without xterm.js: the output with escape sequences removed, and a line to type into.\n"
    "  function plainUI() {\n"
    "    var box = document.getElementById('plain'), out = document.getElementById('out');\n"
    "    var line = document.getElementById('in'), font = 'monospace', px = 14;\n"
    "    box.style.display = 'flex';\n"
    "    var text = '', carry = '';\n"
    "    var complete = /^\\x1b(\\[[0-?]*[ -\\/]*[@-~]|\\][^\\x07\\x1b]*(\\x07|\\x1b\\\\)|[P^_X][^\\x1b]*\\x1b\\\\|[ #%()*+\\-.\\/][\\s\\S]|[^\\[\\]P^_X #%()*+\\-.\\/])/;\n"
    "    function clean(s) {\n"
    "      s = carry + s;\n"
    "      carry = '';\n"
    "      var i = s.lastIndexOf('\\x1b');\n"
    "      if (i >= 0 && s.length - i < 256 && !complete.test(s.slice(i))) { carry = s.slice(i); s = s.slice(0, i); }\n"
    "      return s.replace(/\\x1b\\[[0-?]*[ -\\/]*[@-~]/g, '')\n"
    "        .replace(/\\x1b\\][^\\x07\\x1b]*(\\x07|\\x1b\\\\)/g, '')\n"
    "        .replace(/\\x1b[P^_X][^\\x1b]*\\x1b\\\\/g, '')\n"
    "        .replace(/\\x1b[ #%()*+\\-.\\/][\\s\\S]/g, '')\n"
    "        .replace(/\\x1b[\\s\\S]/g, '')\n"
    "        .replace(/\\r+\\n/g, '\\n');\n"
    "    }\n"
    "    function append(s) {\n"
    "      for (var i = 0; i < s.length; i++) {\n"
    "        var c = s.charAt(i), k = s.charCodeAt(i);\n"
    "        if (c === '\\r') text = text.slice(0, text.lastIndexOf('\\n') + 1);\n"
    "        else if (c === '\\b') { if (text.length && text.slice(-1) !== '\\n') text = text.slice(0, -1); }\n"
    "        else if (c === '\\n' || c === '\\t' || (k >= 32 && k !== 127)) text += c;\n"
    "      }\n"
    "      if (text.length > 200000) text = text.slice(text.length - 150000);\n"
    "    }\n"
    "    function size() { return fit(out, font, px); }\n"
    "    var last = null;\n"
    "    window.addEventListener('resize', function () {\n"
    "      var s = size();\n"
    "      if (!last || s.cols !== last.cols || s.rows !== last.rows) { last = s; resized(s.cols, s.rows); }\n"
    "    });\n"
    "    document.getElementById('line').addEventListener('submit', function (ev) {\n"
    "      ev.preventDefault();\n"
    "      input(line.value + '\\r');\n"
    "      line.value = '';\n"
    "    });\n"
    "    document.getElementById('intr').addEventListener('click', function () { input('\\x03'); line.focus(); });\n"
    "    return {\n"
    "      size: function () { last = size(); return last; },\n"
    "      focus: function () { line.focus(); },\n"
    "      reset: function () { text = ''; carry = ''; out.textContent = ''; },\n"
    "      write: function (s) {\n"
    "        var bottom = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;\n"
    "        append(clean(s));\n"
    "        out.textContent = text;\n"
    "        if (bottom) out.scrollTop = out.scrollHeight;\n"
    "      }\n"
    "    };\n"
    "  }\n"
    "\n"
    "  function start(Terminal) {\n"
    "    if (typeof Terminal !== 'function' && Terminal && typeof Terminal.Terminal === 'function')\n"
    "      Terminal = Terminal.Terminal;\n"
    "    try {\n"
    "      ui = typeof Terminal === 'function' ? xtermUI(Terminal) : plainUI();\n"
    "    } catch (e) {\n"
    "      document.getElementById('term').style.display = 'none';\n"
    "      ui = plainUI();\n"
    "    }\n"
    "    connect();\n"
    "  }\n"
    "\n"
    "  // The server says whether it has xterm.js; one that is not a browser build (Debian 12's\n"
    "  // node-xterm is CommonJS) loads but defines no Terminal, and the plain page is used.\n"
    "  if (body.getAttribute('data-xterm') === '1') {\n"
    "    if (body.getAttribute('data-css') === '1') {\n"
    "      var link = document.createElement('link');\n"
    "      link.rel = 'stylesheet';\n"
    "      link.href = base + 'xterm.css';\n"
    "      document.head.appendChild(link);\n"
    "    }\n"
    "    var script = document.createElement('script');\n"
    "    script.src = base + 'xterm.js';\n"
    "    script.onload = function () { start(window.Terminal); };\n"
    "    script.onerror = function () { start(null); };\n"
    "    document.head.appendChild(script);\n"
    "  } else {\n"
    "    start(null);\n"
    "  }\n"
    "})();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

static const char PAGE_HEADERS[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self' ws: wss:; img-src 'self' data:; "
    "font-src 'self' data:; base-uri 'none'; form-action 'none'\r\n"
    "Referrer-Policy: no-referrer\r\n";

struct request {
    char method[16];
    char path[256]; /* without the query; "" when longer (then nothing matches) */
    int upgrade;    /* Upgrade: websocket */
    int conn_up;    /* Connection: ... upgrade */
    int version;    /* Sec-WebSocket-Version: 13 if it says 13, 0 if something else, -1 absent */
    int tty;        /* Sec-WebSocket-Protocol offers "tty" */
    char key[32];   /* Sec-WebSocket-Key if it has the 24 characters of 16 bytes in base64 */
};

/* Where the header block that starts at p ends (just past its empty line), or 0 while it has
 * not all arrived. Bare LF line ends are accepted too. */
static size_t header_end(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        if (i + 1 < n && p[i + 1] == '\n')
            return i + 2;
        if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* The line at *p, NUL-terminated without its CR LF; *p moves past it. */
static char *next_line(char **p)
{
    char *s = *p, *e = strchr(s, '\n');
    if (e) {
        *e = 0;
        *p = e + 1;
    } else {
        *p = s + strlen(s);
    }
    size_t n = strlen(s);
    if (n && s[n - 1] == '\r')
        s[n - 1] = 0;
    return s;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Whether the comma-separated list v has the element tok. */
static int list_has(const char *v, const char *tok, int nocase)
{
    size_t tl = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if ((size_t)(end - v) == tl && (nocase ? strncasecmp(v, tok, tl) : strncmp(v, tok, tl)) == 0)
            return 1;
        v = e;
    }
    return 0;
}

static int parse_request_line(char *line, struct request *rq)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || (size_t)(sp1 - line) >= sizeof rq->method || sp2 == sp1 + 1)
        return -1;
    if (strcmp(sp2 + 1, "HTTP/1.1") != 0 && strcmp(sp2 + 1, "HTTP/1.0") != 0)
        return -1;
    memcpy(rq->method, line, (size_t)(sp1 - line));
    rq->method[sp1 - line] = 0;
    *sp2 = 0;
    char *target = sp1 + 1;
    /* absolute-form (http://host/path), as a proxy may send it */
    if (strncasecmp(target, "http://", 7) == 0 || strncasecmp(target, "https://", 8) == 0) {
        char *slash = strchr(strstr(target, "//") + 2, '/');
        target = slash ? slash : (char *)"/";
    }
    if (target[0] != '/')
        return -1;
    size_t pl = strcspn(target, "?#");
    if (pl < sizeof rq->path) {
        memcpy(rq->path, target, pl);
        rq->path[pl] = 0;
    }
    return 0;
}

static void parse_header(const char *name, char *value, struct request *rq)
{
    if (strcasecmp(name, "Upgrade") == 0) {
        rq->upgrade |= list_has(value, "websocket", 1);
    } else if (strcasecmp(name, "Connection") == 0) {
        rq->conn_up |= list_has(value, "upgrade", 1);
    } else if (strcasecmp(name, "Sec-WebSocket-Version") == 0) {
        rq->version = strcmp(value, "13") == 0 ? 13 : 0;
    } else if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0) {
        rq->tty |= list_has(value, "tty", 0);
    } else if (strcasecmp(name, "Sec-WebSocket-Key") == 0) {
        if (strlen(value) == 24 && strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == 24)
            strcpy(rq->key, value);
    }
}

/* h: the header block, NUL-terminated. 0, or -1 if it is malformed. */
static int parse_request(char *h, struct request *rq)
{
    memset(rq, 0, sizeof *rq);
    rq->version = -1;
    if (parse_request_line(next_line(&h), rq) < 0)
        return -1;
    while (*h) {
        char *line = next_line(&h);
        if (!*line)
            break;
        if (line[0] == ' ' || line[0] == '\t')
            return -1; /* obsolete line folding: RFC 9112 5.2 lets a server refuse it */
        char *colon = strchr(line, ':');
        if (!colon || colon == line || colon[-1] == ' ' || colon[-1] == '\t')
            return -1;
        *colon = 0;
        parse_header(line, trim(colon + 1), rq);
    }
    return 0;
}

/* Queues a whole response (Connection: close) and finishes the connection. */
static void http_reply(struct conn *c, int head, const char *status, const char *type, const char *extra,
                       const void *body, size_t len)
{
    char h[1024];
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\nConnection: close\r\n%s\r\n",
                     status, type, len, extra ? extra : "");
    buf_append(&c->out, h, n > 0 && (size_t)n < sizeof h ? (size_t)n : 0);
    if (!head)
        buf_append(&c->out, body, len);
    conn_finish(c);
}

static void http_error(struct conn *c, int head, const char *status, const char *extra)
{
    char body[128];
    snprintf(body, sizeof body, "%s\n", status);
    http_reply(c, head, status, "text/plain; charset=utf-8", extra, body, strlen(body));
}

/* The first of the files that is a readable regular file, or NULL. */
static const char *first_file(const char *const *files)
{
    for (; *files; files++) {
        struct stat st;
        if (stat(*files, &st) == 0 && S_ISREG(st.st_mode) && access(*files, R_OK) == 0)
            return *files;
    }
    return NULL;
}

static void serve_page(struct conn *c, int head)
{
    struct buf page = { 0 };
    buf_append(&page, PAGE_HEAD, sizeof PAGE_HEAD - 1);
    if (first_file(XTERM_JS)) {
        buf_append(&page, " data-xterm=\"1\"", 15);
        if (first_file(XTERM_CSS))
            buf_append(&page, " data-css=\"1\"", 13);
    }
    buf_append(&page, PAGE_TAIL, sizeof PAGE_TAIL - 1);
    http_reply(c, head, "200 OK", "text/html; charset=utf-8", PAGE_HEADERS, page.p, buf_pending(&page));
    buf_free(&page);
}

/* A file read whole (they are small, and reading once keeps the loop simple). */
static void serve_file(struct conn *c, int head, const char *const *files, const char *type)
{
    const char *path = first_file(files);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE) {
        close_fd(&fd);
        http_error(c, head, "404 Not Found", NULL);
        return;
    }
    struct buf data = { 0 };
    char chunk[CHUNK];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && buf_pending(&data) + (size_t)n <= MAX_FILE)
            buf_append(&data, chunk, (size_t)n);
    close(fd);
    if (n < 0)
        http_error(c, head, "500 Internal Server Error", NULL);
    else
        http_reply(c, head, "200 OK", type, NULL, data.p, buf_pending(&data));
    buf_free(&data);
}

/* /ws: the opening handshake (RFC 6455 4.2). Bytes after the request are already frames. */
static void ws_upgrade(struct ttyd *t, struct conn *c, const struct request *rq, int head, size_t used)
{
    if (head || !rq->upgrade || !rq->conn_up) {
        http_error(c, head, "400 Bad Request", NULL);
        return;
    }
    if (rq->version != 13) {
        http_error(c, head, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
        return;
    }
    if (!rq->key[0]) {
        http_error(c, head, "400 Bad Request", NULL);
        return;
    }
    char accept[29], h[256];
    ws_accept_key(rq->key, accept);
    int n = snprintf(h, sizeof h,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n",
                     accept, rq->tty ? "Sec-WebSocket-Protocol: tty\r\n" : "");
    buf_append(&c->out, h, (size_t)n);
    buf_consume(&c->in, used);
    c->state = C_WS;
    c->deadline = 0;
    while (c->state == C_WS && ws_frame(t, c) > 0)
        ;
}

static void http_route(struct ttyd *t, struct conn *c, const struct request *rq, size_t used)
{
    int head = strcmp(rq->method, "HEAD") == 0;
    const char *path = rq->path;
    if (!head && strcmp(rq->method, "GET") != 0)
        http_error(c, 0, "405 Method Not Allowed", "Allow: GET, HEAD\r\n");
    else if (strcmp(path, "/ws") == 0)
        ws_upgrade(t, c, rq, head, used);
    else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        serve_page(c, head);
    else if (strcmp(path, "/token") == 0)
        http_reply(c, head, "200 OK", "application/json", NULL, "{\"token\": \"\"}", 13);
    else if (strcmp(path, "/xterm.js") == 0)
        serve_file(c, head, XTERM_JS, "application/javascript; charset=utf-8");
    else if (strcmp(path, "/xterm.css") == 0)
        serve_file(c, head, XTERM_CSS, "text/css; charset=utf-8");
    else
        http_error(c, head, "404 Not Found", NULL);
}

/* Waits for the whole header block, then answers it. Empty lines before the request line are
 * skipped (RFC 9112 2.2). */
static void http_input(struct ttyd *t, struct conn *c)
{
    const char *p = (const char *)c->in.p + c->in.off;
    size_t n = buf_pending(&c->in), skip = 0;
    while (skip < n && (p[skip] == '\r' || p[skip] == '\n'))
        skip++;
    size_t end = header_end(p + skip, n - skip);
    if (end == 0 ? n >= MAX_HEADER : skip + end > MAX_HEADER) {
        http_error(c, 0, "431 Request Header Fields Too Large", NULL);
        return;
    }
    if (end == 0)
        return;
    char h[MAX_HEADER + 1];
    memcpy(h, p + skip, end);
    h[end] = 0;
    struct request rq;
    if (parse_request(h, &rq) < 0)
        http_error(c, 0, "400 Bad Request", NULL);
    else
        http_route(t, c, &rq, skip + end);
}

/* ------------------------------------------------------------------ the loop */

static void conn_read(struct ttyd *t, struct conn *c)
{
    unsigned char chunk[CHUNK];
    ssize_t n = recv(c->fd, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* EOF or error. A WebSocket client that leaves without a close frame ends its
         * terminal all the same. */
        conn_drop(c);
        return;
    }
    if (c->state != C_HTTP && c->state != C_WS)
        return; /* lingering: dropped */
    buf_append(&c->in, chunk, (size_t)n);
    if (c->state == C_HTTP)
        http_input(t, c);
    else
        while (c->state == C_WS && ws_frame(t, c) > 0)
            ;
    if (!c->dead && buf_pending(&c->out) > 0)
        conn_flush(c);
}

static void conn_ready(struct ttyd *t, struct conn *c, short re)
{
    if (re & (POLLERR | POLLNVAL)) {
        conn_drop(c);
        return;
    }
    if ((re & POLLOUT) && conn_flush(c) < 0)
        return;
    if (re & (POLLIN | POLLHUP))
        conn_read(t, c);
}

static void pty_ready(struct conn *c, short re)
{
    if (re & POLLOUT)
        pty_flush(c);
    /* POLLHUP without POLLIN asked for (paused): read all the same, the slave side is gone
     * and what is left is bounded; not reading would make poll report it forever. */
    if (c->pty >= 0 && (re & (POLLIN | POLLHUP | POLLERR)) && pty_read(c) > 0)
        conn_flush(c);
}

static short conn_events(const struct conn *c)
{
    switch (c->state) {
    case C_HTTP:
    case C_LINGER:
        return POLLIN;
    case C_CLOSING:
        return POLLOUT;
    case C_WS:
        break;
    }
    short ev = 0;
    /* Back-pressure: input stays in the socket while the pty has not taken what came before.
     * OUT_LIMIT only stops a client that sends pings and reads no pongs. */
    if (buf_pending(&c->pty_in) <= QUEUE_LIMIT && buf_pending(&c->out) <= OUT_LIMIT)
        ev |= POLLIN;
    if (buf_pending(&c->out) > 0)
        ev |= POLLOUT;
    return ev;
}

static short pty_events(const struct conn *c)
{
    short ev = 0;
    /* Back-pressure: the shell blocks on write while the client has not taken its output. */
    if (c->state == C_WS && !c->paused && buf_pending(&c->out) <= QUEUE_LIMIT)
        ev |= POLLIN;
    if (buf_pending(&c->pty_in) > 0)
        ev |= POLLOUT;
    return ev;
}

static void accept_ready(struct ttyd *t)
{
    for (int i = 0; i < 64; i++) {
        union {
            struct sockaddr sa;
            struct sockaddr_in in4;
            struct sockaddr_in6 in6;
        } peer;
        socklen_t len = sizeof peer;
        int fd = accept4(t->listen_fd, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The connection waits in the backlog; polling the listener now would spin. */
                int64_t now = now_ms();
                t->accept_resume = now + ACCEPT_PAUSE_MS;
                if (now - t->emfile_logged >= 10000) {
                    logmsg("ttyd: accept: %s; pausing", strerror(errno));
                    t->emfile_logged = now;
                }
            }
            return;
        }
        struct conn *c = calloc(1, sizeof *c);
        struct conn **all = c ? grow(t->conns, &t->cap_conns, t->nconns + 1, sizeof *t->conns) : NULL;
        if (!all) {
            free(c);
            close(fd);
            return;
        }
        t->conns = all;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* keystrokes, echoes */
        c->fd = fd;
        c->pty = -1;
        c->state = C_HTTP;
        c->deadline = now_ms() + HEADER_TIMEOUT_MS;
        char ip[INET6_ADDRSTRLEN] = "?";
        if (peer.sa.sa_family == AF_INET6)
            inet_ntop(AF_INET6, &peer.in6.sin6_addr, ip, sizeof ip);
        else if (peer.sa.sa_family == AF_INET)
            inet_ntop(AF_INET, &peer.in4.sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip,
                 (unsigned)ntohs(peer.sa.sa_family == AF_INET6 ? peer.in6.sin6_port : peer.in4.sin_port));
        t->conns[t->nconns++] = c;
    }
}

static void signals_ready(struct ttyd *t)
{
    struct signalfd_siginfo si;
    int chld = 0;
    while (read(t->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            chld = 1;
        else if (!t->stop)
            t->stop = (int)si.ssi_signo;
    }
    if (chld)
        reap(t);
}

/* Drops connections past their deadline and frees the dropped ones. */
static void sweep(struct ttyd *t, int64_t now)
{
    for (size_t i = 0; i < t->nconns;) {
        struct conn *c = t->conns[i];
        if (!c->dead && c->deadline && now >= c->deadline)
            conn_drop(c);
        if (c->dead) {
            free(c);
            t->conns[i] = t->conns[--t->nconns];
            continue;
        }
        i++;
    }
}

/* What one pollfd entry stands for: the signalfd or the listener (c NULL), or a connection's
 * socket or pty. Handlers check that the descriptor is still the one polled, since an earlier
 * handler of the same wake-up may have closed it (reaping, a close). */
struct slot {
    struct conn *c;
    int is_pty;
};

static void serve(struct ttyd *t)
{
    struct pollfd *pf = NULL;
    struct slot *sl = NULL;
    size_t cap_pf = 0, cap_sl = 0;
    while (!t->stop) {
        int64_t now = now_ms(), wake = -1;
        sweep(t, now);
        size_t need = 2 + 2 * t->nconns, n = 0;
        struct pollfd *npf = grow(pf, &cap_pf, need, sizeof *pf);
        if (npf)
            pf = npf;
        struct slot *nsl = npf ? grow(sl, &cap_sl, need, sizeof *sl) : NULL;
        if (!nsl) {
            logmsg("out of memory");
            t->stop = -1;
            break;
        }
        sl = nsl;
#define WATCH(fd_, ev_, c_, pty_)                                                                                      \
    do {                                                                                                               \
        pf[n].fd = (fd_);                                                                                              \
        pf[n].events = (ev_);                                                                                          \
        pf[n].revents = 0;                                                                                             \
        sl[n].c = (c_);                                                                                                \
        sl[n++].is_pty = (pty_);                                                                                       \
    } while (0)
        if (t->accept_resume <= now) {
            t->accept_resume = 0;
            WATCH(t->listen_fd, POLLIN, NULL, 0);
        } else {
            wake = t->accept_resume;
        }
        for (size_t i = 0; i < t->nconns; i++) {
            struct conn *c = t->conns[i];
            WATCH(c->fd, conn_events(c), c, 0); /* with no events too: POLLHUP/POLLERR come */
            if (c->deadline && (wake < 0 || c->deadline < wake))
                wake = c->deadline;
            short pev = c->pty >= 0 && !c->pty_eof ? pty_events(c) : 0;
            if (pev)
                WATCH(c->pty, pev, c, 1);
        }
        WATCH(t->sig_fd, POLLIN, NULL, 0); /* last: reaping closes descriptors watched above */
#undef WATCH
        int timeout = -1;
        if (wake >= 0)
            timeout = wake <= now ? 0 : (wake - now > 60000 ? 60000 : (int)(wake - now));
        if (poll(pf, (nfds_t)n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            logmsg("ttyd: poll: %s", strerror(errno));
            t->stop = -1;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            short re = pf[i].revents;
            struct conn *c = sl[i].c;
            if (!re)
                continue;
            if (!c) {
                if (pf[i].fd == t->sig_fd)
                    signals_ready(t);
                else if (pf[i].fd == t->listen_fd)
                    accept_ready(t);
            } else if (!c->dead && sl[i].is_pty) {
                if (c->pty == pf[i].fd)
                    pty_ready(c, re);
            } else if (!c->dead && c->fd == pf[i].fd) {
                conn_ready(t, c, re);
            }
        }
    }
    free(pf);
    free(sl);
}

/* SIGTERM/SIGINT/SIGHUP: every client gets a close frame (1001) as far as its socket takes it
 * now, every shell its hangup; shells still there after HUP_WAIT_MS are killed. Exits within
 * a second. */
static void shut_down(struct ttyd *t)
{
    close_fd(&t->listen_fd);
    for (size_t i = 0; i < t->nconns; i++) {
        struct conn *c = t->conns[i];
        if (!c->dead)
            ws_close(c, 1001, "server shutting down"); /* sends what it can at once */
        conn_drop(c);
        free(c);
    }
    t->nconns = 0;
    int64_t end = now_ms() + HUP_WAIT_MS;
    int killed = 0;
    while (t->nshells > 0) {
        int64_t left = end - now_ms();
        if (left <= 0) {
            if (killed)
                break;
            for (size_t i = 0; i < t->nshells; i++)
                kill_group(t->shells[i], SIGKILL);
            killed = 1;
            end = now_ms() + KILL_WAIT_MS;
            continue;
        }
        struct pollfd p = { .fd = t->sig_fd, .events = POLLIN, .revents = 0 };
        poll(&p, 1, (int)left);
        signals_ready(t);
    }
    if (t->nshells > 0)
        logmsg("ttyd: %zu shell(s) did not end", t->nshells);
}

/* ------------------------------------------------------------------ startup */

static int signals_open(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL); /* sockets use MSG_NOSIGNAL; this covers the rest */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int listen_on(const struct ttyd_options *o)
{
    int fd = socket(o->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, &o->addr.sa, o->addr_len) < 0 || listen(fd, 128) < 0) {
        logmsg("ttyd: cannot listen on %s port %d: %s", o->bind, o->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hangar-runner ttyd [--port N] [--bind ADDR] [--cwd DIR] [--shell PATH] [--tmux]\n"
               "  --port N      TCP port (default %d)\n"
               "  --bind ADDR   IPv4 or IPv6 address to listen on (default " DEFAULT_BIND ")\n"
               "  --cwd DIR     the shells' working directory (default " DEFAULT_CWD ", else /)\n"
               "  --shell PATH  the shell (default $SHELL, else /bin/bash, else /bin/sh)\n"
               "  --tmux        run `tmux new-session -A -s main` (status line off) instead, if tmux is on PATH\n"
               "  --self-test   check the SHA-1, base64 and JSON code, and exit\n",
               DEFAULT_PORT);
}

static void usage_error(const char *what, const char *arg)
{
    logmsg("ttyd: %s '%s'", what, arg);
    usage(stderr);
    exit(2);
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
    if (*i + 1 >= argc)
        usage_error("missing the value of", name);
    *value = argv[++*i];
    return 1;
}

static int self_test(void);

/* Returns 1 for --self-test; exits for --help and usage errors. */
static int parse_options(int argc, char **argv, struct ttyd_options *o)
{
    const char *port = NULL;
    o->bind = DEFAULT_BIND;
    o->port = DEFAULT_PORT;
    o->cwd = DEFAULT_CWD;
    o->shell = NULL;
    o->tmux = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (option(argc, argv, &i, "--port", &v))
            port = v;
        else if (option(argc, argv, &i, "--bind", &v))
            o->bind = v;
        else if (option(argc, argv, &i, "--cwd", &v))
            o->cwd = v;
        else if (option(argc, argv, &i, "--shell", &v))
            o->shell = v;
        else if (strcmp(argv[i], "--tmux") == 0)
            o->tmux = 1;
        else if (strcmp(argv[i], "--self-test") == 0)
            return 1;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else
            usage_error("unknown argument", argv[i]);
    }
    if (port) {
        char *end;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (errno || end == port || *end || p < 0 || p > 65535)
            usage_error("--port takes 0..65535, not", port);
        o->port = (int)p;
    }
    if (o->shell && !*o->shell)
        usage_error("--shell takes a path, not", o->shell);
    memset(&o->addr, 0, sizeof o->addr);
    if (inet_pton(AF_INET, o->bind, &o->addr.in4.sin_addr) == 1) {
        o->addr.in4.sin_family = AF_INET;
        o->addr.in4.sin_port = htons((uint16_t)o->port);
        o->addr_len = sizeof o->addr.in4;
    } else if (inet_pton(AF_INET6, o->bind, &o->addr.in6.sin6_addr) == 1) {
        o->addr.in6.sin6_family = AF_INET6;
        o->addr.in6.sin6_port = htons((uint16_t)o->port);
        o->addr_len = sizeof o->addr.in6;
    } else {
        usage_error("--bind takes an IPv4 or IPv6 address, not", o->bind);
    }
    return 0;
}

int ttyd_main(int argc, char **argv)
{
    struct ttyd t;
    memset(&t, 0, sizeof t);
    t.listen_fd = t.sig_fd = -1;
    if (parse_options(argc, argv, &t.opt))
        return self_test();
    if (gethostname(t.host, sizeof t.host - 1) < 0 || !t.host[0])
        strcpy(t.host, "localhost");
    t.sig_fd = signals_open();
    if (t.sig_fd < 0) {
        logmsg("ttyd: signalfd: %s", strerror(errno));
        return 1;
    }
    t.listen_fd = listen_on(&t.opt);
    if (t.listen_fd < 0)
        return 1;
    char path[PATH_MAX];
    if (t.opt.tmux && !find_in_path("tmux", path, sizeof path))
        logmsg("ttyd: --tmux: no tmux on PATH, terminals run the shell");
    /* The port bound, which --port 0 leaves to the kernel. */
    socklen_t len = t.opt.addr_len;
    int port = t.opt.port;
    if (getsockname(t.listen_fd, &t.opt.addr.sa, &len) == 0)
        port = ntohs(t.opt.addr.sa.sa_family == AF_INET6 ? t.opt.addr.in6.sin6_port : t.opt.addr.in4.sin_port);
    logmsg("ttyd: listening on %s port %d", t.opt.bind, port);

    serve(&t);

    if (t.stop > 0)
        logmsg("ttyd: %s, stopping", strsignal(t.stop));
    shut_down(&t);
    close_fd(&t.sig_fd);
    free(t.conns);
    free(t.shells);
    return t.stop > 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ self-test */

static int check(int ok, const char *what, int *failed)
{
    if (!ok) {
        fprintf(stderr, "FAIL %s\n", what);
        ++*failed;
    }
    return ok;
}

static int sha1_is(const char *text, size_t n, const char *hex)
{
    unsigned char d[20];
    char got[41];
    sha1((const unsigned char *)text, n, d);
    for (int i = 0; i < 20; i++)
        snprintf(got + 2 * i, 3, "%02x", d[i]);
    return strcmp(got, hex) == 0;
}

static int base64_is(const char *text, const char *want)
{
    char got[64];
    base64((const unsigned char *)text, strlen(text), got);
    return strcmp(got, want) == 0;
}

static int json_is(const char *text, int ret, unsigned cols, unsigned rows)
{
    unsigned c = 1, r = 2;
    return json_size(text, strlen(text), &c, &r) == ret && c == cols && r == rows;
}

/* Known answers (RFC 3174, RFC 4648, RFC 6455's handshake example) and ttyd's messages. */
static int self_test(void)
{
    int failed = 0, total = 0;
    static char million[1000000];
    memset(million, 'a', sizeof million);
    struct {
        int ok;
        const char *what;
    } cases[] = {
        { sha1_is("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709"), "sha1 empty" },
        { sha1_is("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d"), "sha1 abc" },
        { sha1_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                  "84983e441c3bd26ebaae4aa1f95129e5e54670f1"), "sha1 448 bits" },
        { sha1_is("0123456701234567012345670123456701234567012345670123456701234567", 64,
                  "e0c094e867ef46c350ef54a7f59dd60bed92ae83"), "sha1 one block" },
        { sha1_is(million, sizeof million, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"), "sha1 million a" },
        { base64_is("", ""), "base64 empty" },
        { base64_is("f", "Zg=="), "base64 f" },
        { base64_is("fo", "Zm8="), "base64 fo" },
        { base64_is("foo", "Zm9v"), "base64 foo" },
        { base64_is("foob", "Zm9vYg=="), "base64 foob" },
        { base64_is("fooba", "Zm9vYmE="), "base64 fooba" },
        { base64_is("foobar", "Zm9vYmFy"), "base64 foobar" },
        { json_is("{\"AuthToken\":\"\",\"columns\":80,\"rows\":24}", 0, 80, 24), "json auth" },
        { json_is(" {\n \"rows\" : 30 , \"x\":{\"columns\":5,\"a\":[1,{\"b\":\"}\"}]}, \"columns\":100.7 } ", 0, 100,
                  30), "json nested, spaces, fraction" },
        { json_is("{\"AuthToken\":\"a\\\"columns\\\":9\",\"rows\":3}", 0, 1, 3), "json key inside a string" },
        { json_is("{\"columns\":\"7\",\"rows\":0,\"more\":null}", 0, 1, 2), "json string, zero" },
        { json_is("{\"columns\":70000,\"rows\":-5}", 0, 1, 2), "json out of range" },
        { json_is("{}", 0, 1, 2), "json empty" },
        { json_is("[1]", -1, 1, 2), "json not an object" },
        { json_is("{\"columns\":9,", -1, 9, 2), "json cut short" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, total++)
        check(cases[i].ok, cases[i].what, &failed);
    char accept[29];
    ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", accept);
    check(strcmp(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "websocket accept", &failed);
    total++;
    printf("ttyd self-test: %d passed, %d failed\n", total - failed, failed);
    return failed ? 1 : 0;
}
