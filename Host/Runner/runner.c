/*
 * hangar-runner: the in-container runner of Hangar kernels.
 *
 * Bind-mounted into every kernel container and used as its entrypoint. It runs as PID 1
 * (reaps zombies, forwards SIGTERM/SIGINT/SIGHUP), optionally runs a main command and exits
 * with its status, and serves the agent over a unix stream socket: code queries in one
 * persistent Python interpreter (or /bin/sh), batch commands, input, interrupts.
 *
 * The wire protocol is specified in README.md next to this file; keep the two in step.
 *
 * Single-threaded: one poll() loop, every descriptor of ours non-blocking and close-on-exec,
 * signals delivered through a self-pipe. Linked statically, so nothing here may need NSS
 * (no getpwnam, getaddrinfo) or dlopen.
 *
 * Build: cc -std=c11 -Wall -Wextra -Werror -O2 -D_GNU_SOURCE -static -o hangar-runner runner.c
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#define RUNNER_VERSION "1"
#define DEFAULT_SOCKET "/opt/hangar/ipc/runner.sock"
#define DEFAULT_PYTHON "/usr/bin/python3"

#define MAX_FRAME (16u * 1024u * 1024u) /* largest N (type byte + payload) either way */
#define CHUNK 65536                     /* one read from a pipe or the socket */
#define HIGH_WATER (4u * 1024u * 1024u) /* queued for the agent: stop reading child output */
#define DRAIN_LIMIT (4u * 1024u * 1024u)/* most read from one pipe when an execution ends */
#define GRACE_MS 5000                   /* SIGTERM -> SIGKILL */
#define KILL_WAIT_MS 2000               /* SIGKILL -> give up waiting */
#define CLOSE_WAIT_MS 2000              /* bad frame: time to deliver the 'E' */
#define EXIT_RUNNER_ERROR 125           /* the runner itself failed */

/* The Python side of the "python" runtime. The interpreter runs `python3 -u -c BOOTSTRAP`
 * with two extra pipes: fd 3 carries code in, each block a 4-byte big-endian length and UTF-8
 * source; fd 4 carries events out, each a type byte, a 4-byte big-endian length and a UTF-8
 * payload: 'R' ready, 'W' waiting for input (payload: the prompt), 'D' done ("ok" or
 * "error"). The first block on fd 3 is DRIVER itself, which BOOTSTRAP reads and runs (so ps
 * shows a short command line). The driver removes the bootstrap's names from __main__ and
 * moves fds 3 and 4 to close-on-exec descriptors, so user code and its subprocesses see
 * neither. User code runs in __main__'s own dict, so pickling its classes works. */
static const char BOOTSTRAP[] =
    "import os\n"
    "def _r(n):\n"
    "    b = b''\n"
    "    while len(b) < n:\n"
    "        c = os.read(3, n - len(b))\n"
    "        if not c:\n"
    "            raise SystemExit(1)\n"
    "        b += c\n"
    "    return b\n"
    "exec(compile(_r(int.from_bytes(_r(4), 'big')), '<hangar-driver>', 'exec'))\n";

static const char DRIVER[] =
    "def _hangar_driver():\n"
    "    import sys, os, io, ast, codecs, struct, signal, builtins, linecache, threading, traceback\n"
    "    g = sys.modules['__main__'].__dict__\n"
    "    for name in ('_hangar_driver', '_r', 'os'):\n"
    "        g.pop(name, None)\n"
    "    sys.argv = ['']\n"
    "    ctl = os.dup(3)\n"
    "    ev = os.dup(4)\n"
    "    os.close(3)\n"
    "    os.close(4)\n"
    "    lock = threading.Lock()\n"
    "    user = [False]\n"
    "\n"
    "    def on_sigint(signum, frame):\n"
    "        if user[0]:\n"
    "            raise KeyboardInterrupt\n"
    "\n"
    "    signal.signal(signal.SIGINT, on_sigint)\n"
    "\n"
    "    def emit(kind, text):\n"
    "        data = text.encode('utf-8', 'replace')[:1 << 20]\n"
    "        msg = kind.encode('ascii') + struct.pack('>I', len(data)) + data\n"
    "        with lock:\n"
    "            saved = user[0]\n"
    "            user[0] = False\n"
    "            try:\n"
    "                while msg:\n"
    "                    msg = msg[os.write(ev, msg):]\n"
    "            finally:\n"
    "                user[0] = saved\n"
    "\n"
    "    def flush():\n"
    "        for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):\n"
    "            try:\n"
    "                s.flush()\n"
    "            except BaseException:\n"
    "                pass\n"
    "\n"
    "    class Stdin(io.TextIOBase):\n"
    "        def __init__(self):\n"
    "            self._dec = codecs.getincrementaldecoder('utf-8')('replace')\n"
    "            self._buf = ''\n"
    "            self._eof = False\n"
    "\n"
    "        @property\n"
    "        def encoding(self):\n"
    "            return 'utf-8'\n"
    "\n"
    "        @property\n"
    "        def name(self):\n"
    "            return '<stdin>'\n"
    "\n"
    "        def readable(self):\n"
    "            return True\n"
    "\n"
    "        def isatty(self):\n"
    "            return False\n"
    "\n"
    "        def fileno(self):\n"
    "            return 0\n"
    "\n"
    "        def _fill(self, prompt):\n"
    "            if '\\n' in self._buf or self._eof:\n"
    "                return\n"
    "            flush()\n"
    "            emit('W', prompt)\n"
    "            while '\\n' not in self._buf:\n"
    "                data = os.read(0, 65536)\n"
    "                if not data:\n"
    "                    self._eof = True\n"
    "                    self._buf += self._dec.decode(b'', True)\n"
    "                    return\n"
    "                self._buf += self._dec.decode(data)\n"
    "\n"
    "        def _take(self, n):\n"
    "            s = self._buf[:n]\n"
    "            self._buf = self._buf[n:]\n"
    "            return s\n"
    "\n"
    "        def _line(self, size, prompt):\n"
    "            self._fill(prompt)\n"
    "            i = self._buf.find('\\n')\n"
    "            n = len(self._buf) if i < 0 else i + 1\n"
    "            if size is not None and size >= 0:\n"
    "                n = min(n, size)\n"
    "            return self._take(n)\n"
    "\n"
    "        def readline(self, size=-1):\n"
    "            return self._line(size, '')\n"
    "\n"
    "        def read(self, size=-1):\n"
    "            self._fill('')\n"
    "            if size is None or size < 0:\n"
    "                size = len(self._buf)\n"
    "            return self._take(size)\n"
    "\n"
    "    stdin = Stdin()\n"
    "    sys.stdin = stdin\n"
    "\n"
    "    def input(prompt=''):\n"
    "        prompt = str(prompt)\n"
    "        if sys.stdin is stdin:\n"
    "            line = stdin._line(-1, prompt)\n"
    "        else:\n"
    "            sys.stdout.write(prompt)\n"
    "            sys.stdout.flush()\n"
    "            line = sys.stdin.readline()\n"
    "        if not line:\n"
    "            raise EOFError('EOF when reading a line')\n"
    "        return line[:-1] if line.endswith('\\n') else line\n"
    "\n"
    "    builtins.input = input\n"
    "\n"
    "    def show(e, only):\n"
    "        try:\n"
    "            if only:\n"
    "                text = ''.join(traceback.format_exception_only(type(e), e))\n"
    "            else:\n"
    "                tb = e.__traceback__\n"
    "                while tb is not None and tb.tb_frame.f_code.co_filename == '<hangar-driver>':\n"
    "                    tb = tb.tb_next\n"
    "                text = ''.join(traceback.format_exception(type(e), e, tb))\n"
    "            sys.stderr.write(text)\n"
    "        except BaseException:\n"
    "            pass\n"
    "        flush()\n"
    "\n"
    "    count = [0]\n"
    "\n"
    "    def run(src):\n"
    "        count[0] += 1\n"
    "        fn = '<query-%d>' % count[0]\n"
    "        linecache.cache[fn] = (len(src), None, src.splitlines(True), fn)\n"
    "        try:\n"
    "            tree = ast.parse(src, fn, 'exec')\n"
    "            tail = None\n"
    "            if tree.body and isinstance(tree.body[-1], ast.Expr) and not src.rstrip().endswith(';'):\n"
    "                tail = compile(ast.Expression(tree.body.pop().value), fn, 'eval', dont_inherit=True)\n"
    "            body = compile(tree, fn, 'exec', dont_inherit=True)\n"
    "        except BaseException as e:\n"
    "            show(e, True)\n"
    "            return False\n"
    "        try:\n"
    "            try:\n"
    "                user[0] = True\n"
    "                exec(body, g)\n"
    "                if tail is not None:\n"
    "                    value = eval(tail, g)\n"
    "                    if value is not None:\n"
    "                        sys.displayhook(value)\n"
    "            finally:\n"
    "                user[0] = False\n"
    "        except SystemExit as e:\n"
    "            if e.code is None or e.code == 0:\n"
    "                return True\n"
    "            show(e, True)\n"
    "            return False\n"
    "        except BaseException as e:\n"
    "            show(e, False)\n"
    "            return False\n"
    "        return True\n"
    "\n"
    "    pending = bytearray()\n"
    "\n"
    "    def readn(n):\n"
    "        while len(pending) < n:\n"
    "            try:\n"
    "                data = os.read(ctl, max(65536, n - len(pending)))\n"
    "            except KeyboardInterrupt:\n"
    "                continue\n"
    "            if not data:\n"
    "                return None\n"
    "            pending.extend(data)\n"
    "        out = bytes(pending[:n])\n"
    "        del pending[:n]\n"
    "        return out\n"
    "\n"
    "    emit('R', '')\n"
    "    while True:\n"
    "        head = readn(4)\n"
    "        if head is None:\n"
    "            break\n"
    "        src = readn(struct.unpack('>I', head)[0])\n"
    "        if src is None:\n"
    "            break\n"
    "        ok = False\n"
    "        try:\n"
    "            ok = run(src.decode('utf-8', 'replace'))\n"
    "        except BaseException:\n"
    "            pass\n"
    "        flush()\n"
    "        emit('D', 'ok' if ok else 'error')\n"
    "    flush()\n"
    "    os._exit(0)\n"
    "\n"
    "\n"
    "_hangar_driver()\n";

/* ------------------------------------------------------------------ small utilities */

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hangar-runner: %s\n", line);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Exit status as the shell reports it: the code, or 128 + the signal. */
static int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

/* ------------------------------------------------------------------ byte buffers */

struct buf {
    unsigned char *p;
    size_t off, len, cap; /* pending bytes are p[off..len) */
};

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

static void buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap && b->off > 0) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            logmsg("out of memory");
            exit(EXIT_RUNNER_ERROR);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
        if (b->cap > (1u << 20)) /* give back what a big burst took */
            buf_free(b);
    }
}

/* Writes what it can without blocking: 0 (all written or would block), -1 (peer gone). */
static int buf_flush(int fd, struct buf *b, int is_socket)
{
    while (buf_pending(b) > 0) {
        ssize_t n = is_socket ? send(fd, b->p + b->off, buf_pending(b), MSG_NOSIGNAL)
                              : write(fd, b->p + b->off, buf_pending(b));
        if (n > 0)
            buf_consume(b, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ state */

enum { EX_NONE, EX_PYTHON, EX_SHELL, EX_BATCH };

/* An output pipe of a child, forwarded as 'o' or 'e' frames. An incomplete UTF-8 sequence
 * at the end of a read is held back (at most 3 bytes) so that no chunk splits a character. */
struct stream {
    int fd;
    char type;
    unsigned char hold[4];
    size_t nhold;
};

static struct {
    const char *socket_path;
    int runtime_python;
    const char *python;
    int python_explicit;
    char **main_argv;
    int listen_fd;
    int sig_r, sig_w;
    pid_t main_pid;
    int busy;          /* EX_*: the one execution running */
    unsigned long owner; /* the connection that started it */
    unsigned long connections; /* connections accepted so far; C.id of the current one */
    int shutting_down;
    int killed;        /* SIGKILL sent */
    int exit_code;
    int64_t deadline;  /* shutdown: when to SIGKILL, then when to give up */
} R = { .listen_fd = -1, .sig_r = -1, .sig_w = -1 };

static struct {
    int fd;
    unsigned long id;
    struct buf in, out;
    int closing;      /* an 'E' for a bad frame is queued: flush it, then close */
    int dead;         /* peer gone: close at the top of the loop */
    int64_t close_deadline;
} C = { .fd = -1 };

/* The running /bin/sh -c (batch, or a query in the shell runtime). */
static struct {
    pid_t pid;        /* also its process group */
    int in_fd;
    struct buf in;
    struct stream out, err;
} X = { .in_fd = -1, .out = { .fd = -1, .type = 'o' }, .err = { .fd = -1, .type = 'e' } };

/* The persistent Python interpreter. */
static struct {
    pid_t pid;        /* also its process group */
    int in_fd, ctl_fd, ev_fd;
    struct buf in, ctl, ev;
    struct stream out, err;
    int waiting;      /* reported 'w', no 'I' delivered yet */
    const char *path; /* the interpreter actually started */
} P = { .in_fd = -1, .ctl_fd = -1, .ev_fd = -1,
        .out = { .fd = -1, .type = 'o' }, .err = { .fd = -1, .type = 'e' } };

/* ------------------------------------------------------------------ frames to the agent */

static void client_flush(void)
{
    if (C.fd < 0 || C.dead)
        return;
    if (buf_flush(C.fd, &C.out, 1) < 0)
        C.dead = 1;
}

/* Queues one frame for the agent; dropped when no agent is connected. */
static void send_frame(char type, const void *data, size_t len)
{
    if (C.fd < 0 || C.dead || C.closing)
        return;
    if (len > MAX_FRAME - 1)
        len = MAX_FRAME - 1;
    unsigned char head[5];
    put_be32(head, (uint32_t)len + 1);
    head[4] = (unsigned char)type;
    buf_append(&C.out, head, sizeof head);
    buf_append(&C.out, data, len);
    client_flush();
}

static void send_text(char type, const char *text) { send_frame(type, text, strlen(text)); }

/* Frames about an execution (o, e, w, c, f) go only to the connection that started it; when
 * nothing runs (interpreter output from background threads, an idle 'c') to the current one. */
static void send_exec(char type, const void *data, size_t len)
{
    if (R.busy == EX_NONE || R.owner == C.id)
        send_frame(type, data, len);
}

static void send_exec_text(char type, const char *text) { send_exec(type, text, strlen(text)); }

static void send_fmt(int exec, char type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_fmt(int exec, char type, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (exec)
        send_exec_text(type, text);
    else
        send_text(type, text);
}

/* "exited with status 3" / "exited with signal 11 (Segmentation fault)" */
static void describe_status(char *out, size_t size, int st)
{
    if (WIFSIGNALED(st))
        snprintf(out, size, "exited with signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(st));
    else
        snprintf(out, size, "ended (wait status 0x%x)", (unsigned)st);
}

/* ------------------------------------------------------------------ child output */

/* Bytes at the end of p[0..n) that start a UTF-8 sequence but do not finish it. */
static size_t utf8_incomplete_tail(const unsigned char *p, size_t n)
{
    size_t i = n, cont = 0;
    while (i > 0 && cont < 3 && (p[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return 0;
    unsigned char lead = p[i - 1];
    size_t need;
    if ((lead & 0xE0) == 0xC0)
        need = 2;
    else if ((lead & 0xF0) == 0xE0)
        need = 3;
    else if ((lead & 0xF8) == 0xF0)
        need = 4;
    else
        return 0;
    size_t have = n - (i - 1);
    return have < need ? have : 0;
}

static void stream_flush_hold(struct stream *s)
{
    if (s->nhold > 0) {
        send_exec(s->type, s->hold, s->nhold);
        s->nhold = 0;
    }
}

static void stream_close(struct stream *s)
{
    stream_flush_hold(s);
    close_fd(&s->fd);
}

/* One read: 1 data forwarded, 0 nothing now, -1 end of file (stream closed). */
static int stream_read(struct stream *s)
{
    static unsigned char tmp[4 + CHUNK];
    if (s->fd < 0)
        return -1;
    memcpy(tmp, s->hold, s->nhold);
    ssize_t n;
    do
        n = read(s->fd, tmp + s->nhold, CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        stream_close(s);
        return -1;
    }
    size_t total = s->nhold + (size_t)n;
    size_t keep = utf8_incomplete_tail(tmp, total);
    if (total > keep)
        send_exec(s->type, tmp, total - keep);
    memcpy(s->hold, tmp + total - keep, keep);
    s->nhold = keep;
    return 1;
}

/* Reads what is already in the pipe (ignoring back-pressure) and forwards it, then flushes a
 * held partial character: used before an event so that output written earlier comes first. */
static void stream_drain(struct stream *s)
{
    size_t done = 0;
    while (s->fd >= 0 && done < DRAIN_LIMIT && stream_read(s) > 0)
        done += CHUNK;
    stream_flush_hold(s);
}

/* ------------------------------------------------------------------ starting children */

enum {
    SPAWN_PGRP = 1,       /* lead a new process group, so an interrupt or kill reaches a pipeline */
    SPAWN_UNBUFFERED = 2, /* PYTHONUNBUFFERED=1 in its environment */
    SPAWN_IGNORE_INT = 4, /* start with SIGINT ignored (the driver installs its own handler) */
};

static void child_reset_signals(int flags)
{
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sa.sa_handler = (sigs[i] == SIGINT && (flags & SPAWN_IGNORE_INT)) ? SIG_IGN : SIG_DFL;
        sigaction(sigs[i], &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* fork + exec. fds[i] becomes descriptor i in the child (nfds 0: inherit 0-2); flags SPAWN_*.
 * Returns the pid, or -1 with *err = the errno of fork or exec (seen through a cloexec pipe). */
static pid_t spawn(const char *file, char *const argv[], const int *fds, int nfds, int flags, int *err)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        *err = errno;
        return -1;
    }
    /* Signals stay blocked across fork so that the child cannot run our handler (which would
     * write into the parent's self-pipe) before child_reset_signals has reset it. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *err = errno;
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        int e = 0;
        child_reset_signals(flags); /* also unblocks */
        int report = fcntl(ep[1], F_DUPFD_CLOEXEC, 16);
        if (report < 0)
            report = ep[1];
        if (flags & SPAWN_PGRP)
            setpgid(0, 0);
        int moved[8];
        for (int i = 0; i < nfds && !e; i++) {
            moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
            if (moved[i] < 0)
                e = errno;
        }
        for (int i = 0; i < nfds && !e; i++)
            if (dup2(moved[i], i) < 0)
                e = errno;
        if (!e) {
            if (flags & SPAWN_UNBUFFERED)
                setenv("PYTHONUNBUFFERED", "1", 1);
            if (strchr(file, '/'))
                execv(file, argv);
            else
                execvp(file, argv);
            e = errno;
        }
        ssize_t w = write(report, &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(ep[1]);
    if (flags & SPAWN_PGRP)
        setpgid(pid, pid); /* both sides, so no race; fails harmlessly once it has exec'd */
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

static void close_pipes(int (*pipes)[2], int n)
{
    for (int i = 0; i < n; i++) {
        close_fd(&pipes[i][0]);
        close_fd(&pipes[i][1]);
    }
}

static int make_pipes(int (*pipes)[2], int n)
{
    for (int i = 0; i < n; i++)
        pipes[i][0] = pipes[i][1] = -1;
    for (int i = 0; i < n; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0) {
            int e = errno;
            close_pipes(pipes, n);
            return e;
        }
    return 0;
}

/* Sends sig to a child's process group, or to the child alone if it has none yet. */
static void kill_group(pid_t pid, int sig)
{
    if (pid > 0 && kill(-pid, sig) < 0)
        kill(pid, sig);
}

/* ------------------------------------------------------------------ the Python interpreter */

static void python_close(void)
{
    stream_close(&P.out);
    stream_close(&P.err);
    close_fd(&P.in_fd);
    close_fd(&P.ctl_fd);
    close_fd(&P.ev_fd);
    buf_free(&P.in);
    buf_free(&P.ctl);
    buf_free(&P.ev);
    P.waiting = 0;
}

/* 0, or the errno that kept the interpreter from starting. */
static int python_start(void)
{
    int pp[5][2]; /* stdin, stdout, stderr, code (fd 3), events (fd 4) */
    int e = make_pipes(pp, 5);
    if (e)
        return e;
    const char *py = R.python;
    if (!R.python_explicit && access(py, X_OK) != 0)
        py = "python3"; /* the default is missing: look it up on PATH */
    char *argv[] = { (char *)py, "-u", "-c", (char *)BOOTSTRAP, NULL };
    int fds[5] = { pp[0][0], pp[1][1], pp[2][1], pp[3][0], pp[4][1] };
    pid_t pid = spawn(py, argv, fds, 5, SPAWN_PGRP | SPAWN_UNBUFFERED | SPAWN_IGNORE_INT, &e);
    close_fd(&pp[0][0]);
    close_fd(&pp[1][1]);
    close_fd(&pp[2][1]);
    close_fd(&pp[3][0]);
    close_fd(&pp[4][1]);
    if (pid < 0) {
        close_pipes(pp, 5);
        return e;
    }
    P.pid = pid;
    P.path = py;
    P.in_fd = pp[0][1];
    P.out.fd = pp[1][0];
    P.err.fd = pp[2][0];
    P.ctl_fd = pp[3][1];
    P.ev_fd = pp[4][0];
    P.out.nhold = P.err.nhold = 0;
    P.waiting = 0;
    set_nonblock(P.in_fd);
    set_nonblock(P.out.fd);
    set_nonblock(P.err.fd);
    set_nonblock(P.ctl_fd);
    set_nonblock(P.ev_fd);
    unsigned char head[4];
    put_be32(head, (uint32_t)(sizeof DRIVER - 1));
    buf_append(&P.ctl, head, 4);
    buf_append(&P.ctl, DRIVER, sizeof DRIVER - 1);
    if (buf_flush(P.ctl_fd, &P.ctl, 0) < 0)
        buf_free(&P.ctl); /* already gone: reaping reports it */
    return 0;
}

static void python_event(unsigned char type, const unsigned char *payload, size_t len)
{
    switch (type) {
    case 'R':
        break;
    case 'W':
        stream_drain(&P.out);
        stream_drain(&P.err);
        P.waiting = 1;
        send_exec('w', payload, len);
        break;
    case 'D':
        stream_drain(&P.out);
        stream_drain(&P.err);
        P.waiting = 0;
        if (R.busy == EX_PYTHON) {
            send_exec('f', payload, len);
            R.busy = EX_NONE;
        }
        break;
    default:
        logmsg("unknown event 0x%02x from the python driver", type);
        break;
    }
}

static void python_read_events(void)
{
    unsigned char tmp[4096];
    for (int i = 0; i < 64 && P.ev_fd >= 0; i++) {
        ssize_t n = read(P.ev_fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            close_fd(&P.ev_fd);
            break;
        }
        buf_append(&P.ev, tmp, (size_t)n);
    }
    while (buf_pending(&P.ev) >= 5) {
        const unsigned char *p = P.ev.p + P.ev.off;
        uint32_t len = get_be32(p + 1);
        if (len > MAX_FRAME) {
            logmsg("garbled event stream from the python driver");
            buf_consume(&P.ev, buf_pending(&P.ev));
            break;
        }
        if (buf_pending(&P.ev) < 5 + (size_t)len)
            break;
        python_event(p[0], p + 5, len);
        buf_consume(&P.ev, 5 + (size_t)len);
    }
}

static void python_exited(int st)
{
    /* What it wrote before dying comes first, then any event it managed to send. */
    stream_drain(&P.out);
    stream_drain(&P.err);
    python_read_events();
    python_close();
    char how[256];
    describe_status(how, sizeof how, st);
    if (R.busy == EX_PYTHON) {
        if (R.shutting_down) {
            send_fmt(1, 'c', "interpreter %s; the runner is shutting down", how);
        } else {
            int e = python_start();
            if (e)
                send_fmt(1, 'c', "interpreter %s; restart failed (%s: %s), state lost", how,
                         P.path ? P.path : R.python, strerror(e));
            else
                send_fmt(1, 'c', "interpreter %s; restarted, state lost", how);
        }
        send_exec_text('f', "error");
        R.busy = EX_NONE;
    } else if (!R.shutting_down) {
        send_fmt(1, 'c', "interpreter %s while idle; state lost, a new one starts with the next query", how);
    }
}

/* ------------------------------------------------------------------ executions */

static void exec_exited(int st)
{
    stream_drain(&X.out);
    stream_drain(&X.err);
    stream_close(&X.out);
    stream_close(&X.err);
    close_fd(&X.in_fd);
    buf_free(&X.in);
    if (R.busy == EX_SHELL || R.busy == EX_BATCH) {
        send_fmt(1, 'f', "%d", status_code(st));
        R.busy = EX_NONE;
    }
}

static void start_shell(int kind, const char *code, size_t len)
{
    if (memchr(code, 0, len)) {
        send_text('E', "the command contains a NUL byte");
        return;
    }
    char *cmd = malloc(len + 1);
    if (!cmd) {
        send_text('E', "out of memory");
        return;
    }
    memcpy(cmd, code, len);
    cmd[len] = 0;
    int pp[3][2];
    int e = make_pipes(pp, 3);
    if (e) {
        free(cmd);
        send_fmt(0, 'E', "cannot create pipes: %s", strerror(e));
        return;
    }
    char *argv[] = { "sh", "-c", cmd, NULL };
    int fds[3] = { pp[0][0], pp[1][1], pp[2][1] };
    pid_t pid = spawn("/bin/sh", argv, fds, 3, SPAWN_PGRP | SPAWN_UNBUFFERED, &e);
    free(cmd);
    close_fd(&pp[0][0]);
    close_fd(&pp[1][1]);
    close_fd(&pp[2][1]);
    if (pid < 0) {
        close_pipes(pp, 3);
        send_fmt(0, 'E', "cannot run /bin/sh: %s", strerror(e));
        return;
    }
    X.pid = pid;
    X.in_fd = pp[0][1];
    X.out.fd = pp[1][0];
    X.err.fd = pp[2][0];
    X.out.nhold = X.err.nhold = 0;
    set_nonblock(X.in_fd);
    set_nonblock(X.out.fd);
    set_nonblock(X.err.fd);
    R.busy = kind;
    R.owner = C.id;
}

static void start_query(const char *code, size_t len)
{
    if (!R.runtime_python) {
        start_shell(EX_SHELL, code, len);
        return;
    }
    if (P.pid <= 0) {
        int e = python_start();
        if (e) {
            send_fmt(0, 'E', "cannot start the python interpreter (%s): %s", R.python, strerror(e));
            return;
        }
    }
    unsigned char head[4];
    put_be32(head, (uint32_t)len);
    buf_append(&P.ctl, head, 4);
    buf_append(&P.ctl, code, len);
    if (buf_flush(P.ctl_fd, &P.ctl, 0) < 0)
        buf_free(&P.ctl); /* it is dying; python_exited will answer */
    P.waiting = 0;
    R.busy = EX_PYTHON;
    R.owner = C.id;
}

static void append_line(struct buf *b, const char *text, size_t len)
{
    buf_append(b, text, len);
    if (len == 0 || text[len - 1] != '\n')
        buf_append(b, "\n", 1);
}

static void deliver_input(const char *text, size_t len)
{
    if (P.pid > 0 && P.waiting && P.in_fd >= 0) {
        append_line(&P.in, text, len);
        P.waiting = 0;
        if (buf_flush(P.in_fd, &P.in, 0) < 0) {
            close_fd(&P.in_fd);
            buf_free(&P.in);
        }
        return;
    }
    if (R.busy == EX_SHELL || R.busy == EX_BATCH) {
        if (X.in_fd < 0) {
            send_text('E', "the execution has closed its stdin");
            return;
        }
        append_line(&X.in, text, len);
        if (buf_flush(X.in_fd, &X.in, 0) < 0) {
            close_fd(&X.in_fd);
            buf_free(&X.in);
        }
        return;
    }
    send_text('E', "no execution is waiting for input");
}

static void interrupt_execution(void)
{
    if (R.busy == EX_PYTHON && P.pid > 0)
        kill(P.pid, SIGINT);
    else if ((R.busy == EX_SHELL || R.busy == EX_BATCH) && X.pid > 0)
        kill_group(X.pid, SIGINT);
    /* nothing running: nothing to do (an interrupt may cross an 'f' on the wire) */
}

/* ------------------------------------------------------------------ the agent connection */

static void client_close(void)
{
    close_fd(&C.fd);
    buf_free(&C.in);
    buf_free(&C.out);
    C.closing = C.dead = 0;
}

static void protocol_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void protocol_error(const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    send_text('E', text);
    C.closing = 1;
    C.close_deadline = now_ms() + CLOSE_WAIT_MS;
}

static void handle_request(unsigned char type, const char *payload, size_t len)
{
    switch (type) {
    case 'P':
        send_frame('p', payload, len);
        break;
    case 'Q':
    case 'B':
        if (R.shutting_down)
            send_text('E', "shutting down");
        else if (R.busy != EX_NONE)
            send_text('E', "busy");
        else if (type == 'Q')
            start_query(payload, len);
        else
            start_shell(EX_BATCH, payload, len);
        break;
    case 'I':
        deliver_input(payload, len);
        break;
    case 'X':
        interrupt_execution();
        break;
    default:
        if (type >= 0x20 && type < 0x7f)
            send_fmt(0, 'E', "unknown request type '%c'", type);
        else
            send_fmt(0, 'E', "unknown request type 0x%02x", type);
        break;
    }
}

static void client_parse(void)
{
    while (!C.dead && !C.closing && buf_pending(&C.in) >= 4) {
        const unsigned char *p = C.in.p + C.in.off;
        uint32_t n = get_be32(p);
        if (n == 0 || n > MAX_FRAME) {
            protocol_error("bad frame: length %u (must be 1..%u)", n, MAX_FRAME);
            return;
        }
        if (buf_pending(&C.in) < 4 + (size_t)n)
            return;
        handle_request(p[4], (const char *)p + 5, n - 1);
        buf_consume(&C.in, 4 + (size_t)n);
    }
}

static void client_read(void)
{
    static unsigned char tmp[CHUNK];
    for (int i = 0; i < 16 && !C.dead && !C.closing; i++) {
        ssize_t n = recv(C.fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            C.dead = 1;
            return;
        }
        buf_append(&C.in, tmp, (size_t)n);
        client_parse();
        if (buf_pending(&C.out) >= HIGH_WATER)
            return; /* the agent is not reading its answers: read no more requests */
    }
}

static void accept_client(void)
{
    int fd = accept4(R.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            logmsg("accept: %s", strerror(errno));
        return;
    }
    C.fd = fd;
    C.id = ++R.connections;
    C.closing = C.dead = 0;
}

static int listen_socket(const char *path)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        logmsg("socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            logmsg("%s exists and is not a socket", path);
            return -1;
        }
        if (unlink(path) < 0) {
            logmsg("cannot remove the stale socket %s: %s", path, strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        logmsg("socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    umask(old);
    if (rc < 0) {
        logmsg("cannot bind %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    if (listen(fd, 8) < 0) {
        logmsg("listen on %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ signals and shutdown */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t w = write(R.sig_w, &c, 1);
    (void)w;
    errno = saved;
}

static int setup_signals(void)
{
    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        logmsg("pipe: %s", strerror(errno));
        return -1;
    }
    R.sig_r = sp[0];
    R.sig_w = sp[1];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

/* Whether shutdown must still wait: for what we started, and as PID 1 for every process left
 * in the container (all orphans are our children then, and kill -1 signalled them). */
static int children_alive(void)
{
    if (R.main_pid > 0 || X.pid > 0 || P.pid > 0)
        return 1;
    if (getpid() != 1)
        return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return !(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD);
}

/* Forwards sig to everything we started and gives them GRACE_MS to end. As PID 1 the signal
 * goes to every process of the container (kill -1). The interpreter always gets SIGTERM: a
 * SIGINT would only raise KeyboardInterrupt in it. */
static void begin_shutdown(int code, int sig)
{
    if (R.shutting_down)
        return;
    R.shutting_down = 1;
    R.exit_code = code;
    R.deadline = now_ms() + GRACE_MS;
    close_fd(&R.listen_fd);
    if (getpid() == 1) {
        kill(-1, sig);
    } else {
        if (R.main_pid > 0)
            kill(R.main_pid, sig);
        kill_group(X.pid, sig);
    }
    kill_group(P.pid, SIGTERM);
}

static void kill_everything(void)
{
    if (getpid() == 1)
        kill(-1, SIGKILL);
    if (R.main_pid > 0)
        kill(R.main_pid, SIGKILL);
    kill_group(X.pid, SIGKILL);
    kill_group(P.pid, SIGKILL);
}

static void reap_children(void)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        if (pid == R.main_pid) {
            R.main_pid = 0;
            begin_shutdown(status_code(st), SIGTERM); /* keeps 0 if a signal began it */
        } else if (pid == X.pid) {
            X.pid = 0;
            exec_exited(st);
        } else if (pid == P.pid) {
            P.pid = 0;
            python_exited(st);
        }
        /* anything else: an orphan reparented to us (PID 1 or subreaper); reaped */
    }
}

static void handle_signals(void)
{
    unsigned char sigs[64];
    int stop = 0;
    ssize_t n;
    while ((n = read(R.sig_r, sigs, sizeof sigs)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (sigs[i] == SIGTERM || sigs[i] == SIGINT || sigs[i] == SIGHUP)
                stop = sigs[i];
    reap_children();
    if (stop)
        begin_shutdown(0, stop);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hangar-runner [--socket PATH] [--runtime python|shell] [--python PATH] [-- COMMAND...]\n"
            "  --socket PATH   unix socket to serve (default $HANGAR_RUNNER_SOCKET or " DEFAULT_SOCKET ")\n"
            "  --runtime KIND  what a query runs in: python (one persistent interpreter, default) or shell\n"
            "  --python PATH   interpreter for the python runtime (default " DEFAULT_PYTHON
            ", else python3 on PATH)\n"
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

static void parse_args(int argc, char **argv)
{
    const char *env = getenv("HANGAR_RUNNER_SOCKET");
    R.socket_path = env && *env ? env : DEFAULT_SOCKET;
    R.runtime_python = 1;
    R.python = DEFAULT_PYTHON;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc)
                R.main_argv = argv + i + 1;
            break;
        } else if (option(argc, argv, &i, "--socket", &v)) {
            R.socket_path = v;
        } else if (option(argc, argv, &i, "--runtime", &v)) {
            if (strcmp(v, "python") == 0)
                R.runtime_python = 1;
            else if (strcmp(v, "shell") == 0)
                R.runtime_python = 0;
            else {
                logmsg("unknown runtime '%s' (python or shell)", v);
                exit(EXIT_RUNNER_ERROR);
            }
        } else if (option(argc, argv, &i, "--python", &v)) {
            R.python = v;
            R.python_explicit = 1;
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

static void final_flush(void)
{
    if (C.fd < 0 || C.dead || buf_pending(&C.out) == 0)
        return;
    int64_t until = now_ms() + 1000;
    while (buf_pending(&C.out) > 0 && !C.dead) {
        int64_t left = until - now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = { .fd = C.fd, .events = POLLOUT };
        if (poll(&pf, 1, (int)left) <= 0)
            break;
        client_flush();
    }
}

enum { T_LISTEN, T_CLIENT, T_X_IN, T_X_OUT, T_X_ERR, T_P_IN, T_P_CTL, T_P_EV, T_P_OUT, T_P_ERR, T_SIG };

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (setup_signals() < 0)
        return EXIT_RUNNER_ERROR;
    if (getpid() != 1)
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* orphans come to us, as to an init */
    R.listen_fd = listen_socket(R.socket_path);
    if (R.listen_fd < 0)
        return EXIT_RUNNER_ERROR;

    if (R.main_argv) {
        int e;
        pid_t pid = spawn(R.main_argv[0], R.main_argv, NULL, 0, 0, &e);
        if (pid < 0) {
            logmsg("cannot run %s: %s", R.main_argv[0], strerror(e));
            close_fd(&R.listen_fd);
            unlink(R.socket_path);
            return e == ENOENT ? 127 : 126;
        }
        R.main_pid = pid;
    }
    if (R.runtime_python) {
        int e = python_start();
        if (e)
            logmsg("cannot start the python interpreter (%s): %s; retrying at the first query", R.python,
                   strerror(e));
    }

    for (;;) {
        if (C.fd >= 0 && (C.dead || (C.closing && (buf_pending(&C.out) == 0 || now_ms() >= C.close_deadline))))
            client_close();
        int64_t wake = -1;
        if (R.shutting_down) {
            if (!children_alive())
                break;
            int64_t now = now_ms();
            if (now >= R.deadline) {
                if (R.killed) {
                    logmsg("children did not die after SIGKILL; exiting anyway");
                    break;
                }
                kill_everything();
                R.killed = 1;
                R.deadline = now + KILL_WAIT_MS;
            }
            wake = R.deadline;
        }
        if (C.fd >= 0 && C.closing && (wake < 0 || C.close_deadline < wake))
            wake = C.close_deadline;

        struct pollfd pf[12];
        int tag[12];
        int n = 0;
#define WATCH(fd_, events_, tag_)                                                                                     \
    do {                                                                                                              \
        pf[n].fd = (fd_);                                                                                             \
        pf[n].events = (events_);                                                                                     \
        pf[n].revents = 0;                                                                                            \
        tag[n++] = (tag_);                                                                                            \
    } while (0)
        if (C.fd < 0 && R.listen_fd >= 0)
            WATCH(R.listen_fd, POLLIN, T_LISTEN);
        if (C.fd >= 0) {
            short ev = 0;
            if (!C.closing && buf_pending(&C.out) < HIGH_WATER)
                ev |= POLLIN;
            if (buf_pending(&C.out) > 0)
                ev |= POLLOUT;
            WATCH(C.fd, ev, T_CLIENT);
        }
        /* Back-pressure: while the agent has HIGH_WATER bytes unread, leave child output in
         * its pipes (the child blocks on write). With no agent, output is read and dropped. */
        int can_out = C.fd < 0 || C.closing || buf_pending(&C.out) < HIGH_WATER;
        if (X.in_fd >= 0 && buf_pending(&X.in) > 0)
            WATCH(X.in_fd, POLLOUT, T_X_IN);
        if (X.out.fd >= 0 && can_out)
            WATCH(X.out.fd, POLLIN, T_X_OUT);
        if (X.err.fd >= 0 && can_out)
            WATCH(X.err.fd, POLLIN, T_X_ERR);
        if (P.in_fd >= 0 && buf_pending(&P.in) > 0)
            WATCH(P.in_fd, POLLOUT, T_P_IN);
        if (P.ctl_fd >= 0 && buf_pending(&P.ctl) > 0)
            WATCH(P.ctl_fd, POLLOUT, T_P_CTL);
        if (P.out.fd >= 0 && can_out)
            WATCH(P.out.fd, POLLIN, T_P_OUT);
        if (P.err.fd >= 0 && can_out)
            WATCH(P.err.fd, POLLIN, T_P_ERR);
        if (P.ev_fd >= 0)
            WATCH(P.ev_fd, POLLIN, T_P_EV);
        WATCH(R.sig_r, POLLIN, T_SIG); /* last: reaping may close descriptors watched above */
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
            R.exit_code = EXIT_RUNNER_ERROR;
            break;
        }
        for (int i = 0; i < n; i++) {
            short re = pf[i].revents;
            if (!re)
                continue;
            int fd = pf[i].fd;
            switch (tag[i]) {
            case T_LISTEN:
                if (R.listen_fd == fd && C.fd < 0)
                    accept_client();
                break;
            case T_CLIENT:
                if (C.fd != fd)
                    break;
                if (re & POLLOUT)
                    client_flush();
                if (C.closing && (re & (POLLHUP | POLLERR)))
                    C.dead = 1; /* gone before taking the 'E' */
                else if (re & (POLLIN | POLLHUP | POLLERR))
                    client_read();
                break;
            case T_X_IN:
                if (X.in_fd == fd && buf_flush(X.in_fd, &X.in, 0) < 0) {
                    close_fd(&X.in_fd);
                    buf_free(&X.in);
                }
                break;
            case T_P_IN:
                if (P.in_fd == fd && buf_flush(P.in_fd, &P.in, 0) < 0) {
                    close_fd(&P.in_fd);
                    buf_free(&P.in);
                }
                break;
            case T_P_CTL:
                if (P.ctl_fd == fd && buf_flush(P.ctl_fd, &P.ctl, 0) < 0) {
                    close_fd(&P.ctl_fd);
                    buf_free(&P.ctl);
                }
                break;
            case T_X_OUT:
                if (X.out.fd == fd)
                    stream_read(&X.out);
                break;
            case T_X_ERR:
                if (X.err.fd == fd)
                    stream_read(&X.err);
                break;
            case T_P_OUT:
                if (P.out.fd == fd)
                    stream_read(&P.out);
                break;
            case T_P_ERR:
                if (P.err.fd == fd)
                    stream_read(&P.err);
                break;
            case T_P_EV:
                if (P.ev_fd == fd)
                    python_read_events();
                break;
            case T_SIG:
                handle_signals();
                break;
            }
        }
    }

    final_flush();
    client_close();
    python_close();
    stream_close(&X.out);
    stream_close(&X.err);
    close_fd(&X.in_fd);
    buf_free(&X.in);
    close_fd(&R.listen_fd);
    unlink(R.socket_path);
    close_fd(&R.sig_r);
    close_fd(&R.sig_w);
    return R.exit_code;
}
