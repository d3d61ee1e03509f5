/* The interpreter runtimes (python, r, nodejs): one persistent interpreter that runs every
 * query (README: "Interpreter runtimes"). The language's side is its driver (python_driver.py,
 * r_driver.R, node_driver.js); this file starts the interpreter, feeds it and turns its events
 * into frames. Every driver speaks the same protocol on fds 3 and 4. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "framing.h"
#include "node_driver.h"
#include "python_driver.h"
#include "r_driver.h"
#include "runtime.h"
#include "spawn.h"
#include "util.h"

/* Each interpreter runs `INTERPRETER ARGS... BOOTSTRAP` with two extra pipes (see the top of
 * python_driver.py): fd 3 carries code blocks in, fd 4 carries events out. BOOTSTRAP only
 * reads the first block, the driver, and runs it, so that ps shows a short command line.
 * The Python driver then removes BOOTSTRAP's names (_r, os) from __main__. */
static const char PYTHON_BOOTSTRAP[] =
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

/* R reads through a connection of its own to the pipe (buffered: it may hold the start of the
 * next block, so the driver goes on reading through it as `ctl`). The driver runs in a child
 * of the base environment, so the global one stays empty. */
static const char R_BOOTSTRAP[] =
    "local({e <- new.env(parent = baseenv()); e$ctl <- file('/dev/fd/3', 'rb'); "
    "h <- as.integer(readBin(e$ctl, 'raw', 4L)); "
    "s <- rawToChar(readBin(e$ctl, 'raw', sum(h * c(16777216, 65536, 256, 1)))); Encoding(s) <- 'UTF-8'; "
    "eval(parse(text = s, keep.source = FALSE), e)})";

/* Node reads the block synchronously and compiles it as a function of `require`. */
static const char NODE_BOOTSTRAP[] =
    "{const fs=require('fs');const r=(n)=>{const b=Buffer.alloc(n);let o=0;while(o<n){"
    "let k;try{k=fs.readSync(3,b,o,n-o,null)}catch(e){if(e.code==='EAGAIN')continue;throw e}"
    "if(!k)process.exit(1);o+=k}return b};"
    "new Function('require',r(r(4).readUInt32BE(0)).toString('utf8'))(require)}";

static const char *const PYTHON_ARGS[] = { "-u", "-c", NULL };
static const char *const R_ARGS[] = { "--vanilla", "--no-echo", "-e", NULL };
static const char *const NODE_ARGS[] = { "-e", NULL };

const struct language LANGUAGES[] = {
    /* Python starts with SIGINT ignored until its driver installs the handler that raises
     * KeyboardInterrupt (an early interrupt would kill it otherwise). */
    { "python", "/usr/bin/python3", "python3", PYTHON_ARGS, PYTHON_BOOTSTRAP, hangar_python_driver,
      sizeof hangar_python_driver - 1, SPAWN_UNBUFFERED | SPAWN_IGNORE_INT },
    /* R's front-end script sets R_HOME and execs R's binary (same pid, so SIGINT reaches it).
     * R installs its interrupt handler itself, and only when SIGINT was not ignored at its
     * start. */
    { "r", "/usr/bin/R", "R", R_ARGS, R_BOOTSTRAP, hangar_r_driver, sizeof hangar_r_driver - 1, 0 },
    /* Node dies of SIGINT until its driver listens for it. */
    { "nodejs", "/usr/bin/node", "node", NODE_ARGS, NODE_BOOTSTRAP, hangar_node_driver, sizeof hangar_node_driver - 1, 0 },
    { NULL, NULL, NULL, NULL, NULL, NULL, 0, 0 },
};

const struct language *language_named(const char *name)
{
    for (const struct language *l = LANGUAGES; l->name; l++)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

/* One code block for fd 3: a 4-byte big-endian length, then the UTF-8 source. */
static void queue_block(struct interp *py, const void *code, size_t len)
{
    unsigned char head[4];
    put_be32(head, (uint32_t)len);
    buf_append(&py->ctl, head, 4);
    buf_append(&py->ctl, code, len);
}

void interp_close(struct interp *py, struct agent *a)
{
    stream_close(&py->out, a);
    stream_close(&py->err, a);
    close_fd(&py->in_fd);
    close_fd(&py->ctl_fd);
    close_fd(&py->ev_fd);
    buf_free(&py->in);
    buf_free(&py->ctl);
    buf_free(&py->ev);
    py->waiting = 0;
}

int interp_start(struct interp *py)
{
    int pp[5][2]; /* stdin, stdout, stderr, code (fd 3), events (fd 4) */
    int e = make_pipes(pp, 5);
    if (e)
        return e;
    const struct language *l = py->lang;
    const char *path = py->interpreter ? py->interpreter : l->path;
    if (!py->interpreter && access(path, X_OK) != 0)
        path = l->fallback; /* the default is missing: look it up on PATH */
    char *argv[8];
    int n = 0;
    argv[n++] = (char *)path;
    for (const char *const *arg = l->args; *arg; arg++)
        argv[n++] = (char *)*arg;
    argv[n++] = (char *)l->bootstrap;
    argv[n] = NULL;
    int fds[5] = { pp[0][0], pp[1][1], pp[2][1], pp[3][0], pp[4][1] };
    pid_t pid = spawn(path, argv, fds, 5, SPAWN_PGRP | l->spawn_flags, &e);
    close_fd(&pp[0][0]);
    close_fd(&pp[1][1]);
    close_fd(&pp[2][1]);
    close_fd(&pp[3][0]);
    close_fd(&pp[4][1]);
    if (pid < 0) {
        close_pipes(pp, 5);
        return e;
    }
    py->pid = pid;
    py->path = path;
    py->in_fd = pp[0][1];
    py->out.fd = pp[1][0];
    py->err.fd = pp[2][0];
    py->ctl_fd = pp[3][1];
    py->ev_fd = pp[4][0];
    py->out.nhold = py->err.nhold = 0;
    py->waiting = 0;
    set_nonblock(py->in_fd);
    set_nonblock(py->out.fd);
    set_nonblock(py->err.fd);
    set_nonblock(py->ctl_fd);
    set_nonblock(py->ev_fd);
    queue_block(py, l->driver, l->driver_len);
    if (buf_flush(py->ctl_fd, &py->ctl, 0) < 0)
        buf_free(&py->ctl); /* already gone: reaping reports it */
    return 0;
}

void interp_query(struct interp *py, struct agent *a, const char *code, size_t len)
{
    if (py->pid <= 0) {
        int e = interp_start(py);
        if (e) {
            agent_sendf(a, 'E', "cannot start the %s interpreter (%s): %s", py->lang->name,
                        py->interpreter ? py->interpreter : py->lang->path, strerror(e));
            return;
        }
    }
    queue_block(py, code, len);
    if (buf_flush(py->ctl_fd, &py->ctl, 0) < 0)
        buf_free(&py->ctl); /* it is dying; interp_exited will answer */
    py->waiting = 0;
    agent_exec_begin(a, EX_INTERP);
}

int interp_input(struct interp *py, const char *text, size_t len)
{
    if (!(py->pid > 0 && py->waiting && py->in_fd >= 0))
        return 0;
    buf_append_line(&py->in, text, len);
    py->waiting = 0;
    buf_flush_pipe(&py->in_fd, &py->in);
    return 1;
}

void interp_interrupt(struct interp *py)
{
    if (py->pid > 0)
        kill(py->pid, SIGINT);
}

static void interp_event(struct interp *py, struct agent *a, unsigned char type, const unsigned char *payload,
                         size_t len)
{
    switch (type) {
    case 'R':
        break;
    case 'W':
        stream_drain(&py->out, a);
        stream_drain(&py->err, a);
        py->waiting = 1;
        agent_send_exec(a, 'w', payload, len);
        break;
    case 'M':
        /* Media (a plot): after the output written before it. */
        stream_drain(&py->out, a);
        stream_drain(&py->err, a);
        agent_send_exec(a, 'm', payload, len);
        break;
    case 'D':
        stream_drain(&py->out, a);
        stream_drain(&py->err, a);
        py->waiting = 0;
        if (a->busy == EX_INTERP) {
            agent_send_exec(a, 'f', payload, len);
            agent_exec_end(a);
        }
        break;
    default:
        logmsg("unknown event 0x%02x from the %s driver", type, py->lang->name);
        break;
    }
}

/* Events: a type byte, a 4-byte big-endian length, the payload. */
void interp_read_events(struct interp *py, struct agent *a)
{
    unsigned char tmp[4096];
    for (int i = 0; i < 64 && py->ev_fd >= 0; i++) {
        ssize_t n = read(py->ev_fd, tmp, sizeof tmp);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            close_fd(&py->ev_fd);
            break;
        }
        buf_append(&py->ev, tmp, (size_t)n);
    }
    while (buf_pending(&py->ev) >= 5) {
        const unsigned char *p = py->ev.p + py->ev.off;
        uint32_t len = get_be32(p + 1);
        if (len > MAX_FRAME) {
            logmsg("garbled event stream from the %s driver", py->lang->name);
            buf_consume(&py->ev, buf_pending(&py->ev));
            break;
        }
        if (buf_pending(&py->ev) < 5 + (size_t)len)
            break;
        interp_event(py, a, p[0], p + 5, len);
        buf_consume(&py->ev, 5 + (size_t)len);
    }
}

void interp_exited(struct interp *py, struct agent *a, int st, int shutting_down)
{
    /* What it wrote before dying comes first, then any event it managed to send. */
    stream_drain(&py->out, a);
    stream_drain(&py->err, a);
    interp_read_events(py, a);
    interp_close(py, a);
    char how[256];
    describe_status(how, sizeof how, st);
    if (a->busy == EX_INTERP) {
        if (shutting_down) {
            agent_send_execf(a, 'c', "interpreter %s; the runner is shutting down", how);
        } else {
            int e = interp_start(py);
            if (e)
                agent_send_execf(a, 'c', "interpreter %s; restart failed (%s: %s), state lost", how,
                                 py->path ? py->path : py->lang->path, strerror(e));
            else
                agent_send_execf(a, 'c', "interpreter %s; restarted, state lost", how);
        }
        agent_send_exec_text(a, 'f', "error");
        agent_exec_end(a);
    } else if (!shutting_down) {
        agent_send_execf(a, 'c', "interpreter %s while idle; state lost, a new one starts with the next query", how);
    }
}
