/* The python runtime: one persistent interpreter that runs every query (README: "Python
 * runtime"). The Python side is python_driver.py; this file starts it, feeds it and turns its
 * events into frames. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "framing.h"
#include "python_driver.h"
#include "runtime.h"
#include "spawn.h"
#include "util.h"

/* The interpreter runs `PYTHON -u -c BOOTSTRAP` with two extra pipes (see the top of
 * python_driver.py): fd 3 carries code blocks in, fd 4 carries events out. BOOTSTRAP only
 * reads the first block, the driver, and runs it, so that ps shows a short command line.
 * The driver then removes BOOTSTRAP's names (_r, os) from __main__. */
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

/* One code block for fd 3: a 4-byte big-endian length, then the UTF-8 source. */
static void queue_block(struct python *py, const void *code, size_t len)
{
    unsigned char head[4];
    put_be32(head, (uint32_t)len);
    buf_append(&py->ctl, head, 4);
    buf_append(&py->ctl, code, len);
}

void python_close(struct python *py, struct agent *a)
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

int python_start(struct python *py)
{
    int pp[5][2]; /* stdin, stdout, stderr, code (fd 3), events (fd 4) */
    int e = make_pipes(pp, 5);
    if (e)
        return e;
    const char *path = py->python;
    if (!py->python_explicit && access(path, X_OK) != 0)
        path = "python3"; /* the default is missing: look it up on PATH */
    char *argv[] = { (char *)path, "-u", "-c", (char *)BOOTSTRAP, NULL };
    int fds[5] = { pp[0][0], pp[1][1], pp[2][1], pp[3][0], pp[4][1] };
    pid_t pid = spawn(path, argv, fds, 5, SPAWN_PGRP | SPAWN_UNBUFFERED | SPAWN_IGNORE_INT, &e);
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
    queue_block(py, hangar_python_driver, sizeof hangar_python_driver - 1);
    if (buf_flush(py->ctl_fd, &py->ctl, 0) < 0)
        buf_free(&py->ctl); /* already gone: reaping reports it */
    return 0;
}

void python_query(struct python *py, struct agent *a, const char *code, size_t len)
{
    if (py->pid <= 0) {
        int e = python_start(py);
        if (e) {
            agent_sendf(a, 'E', "cannot start the python interpreter (%s): %s", py->python, strerror(e));
            return;
        }
    }
    queue_block(py, code, len);
    if (buf_flush(py->ctl_fd, &py->ctl, 0) < 0)
        buf_free(&py->ctl); /* it is dying; python_exited will answer */
    py->waiting = 0;
    agent_exec_begin(a, EX_PYTHON);
}

int python_input(struct python *py, const char *text, size_t len)
{
    if (!(py->pid > 0 && py->waiting && py->in_fd >= 0))
        return 0;
    buf_append_line(&py->in, text, len);
    py->waiting = 0;
    buf_flush_pipe(&py->in_fd, &py->in);
    return 1;
}

void python_interrupt(struct python *py)
{
    if (py->pid > 0)
        kill(py->pid, SIGINT);
}

static void python_event(struct python *py, struct agent *a, unsigned char type, const unsigned char *payload,
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
    case 'D':
        stream_drain(&py->out, a);
        stream_drain(&py->err, a);
        py->waiting = 0;
        if (a->busy == EX_PYTHON) {
            agent_send_exec(a, 'f', payload, len);
            agent_exec_end(a);
        }
        break;
    default:
        logmsg("unknown event 0x%02x from the python driver", type);
        break;
    }
}

/* Events: a type byte, a 4-byte big-endian length, the payload. */
void python_read_events(struct python *py, struct agent *a)
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
            logmsg("garbled event stream from the python driver");
            buf_consume(&py->ev, buf_pending(&py->ev));
            break;
        }
        if (buf_pending(&py->ev) < 5 + (size_t)len)
            break;
        python_event(py, a, p[0], p + 5, len);
        buf_consume(&py->ev, 5 + (size_t)len);
    }
}

void python_exited(struct python *py, struct agent *a, int st, int shutting_down)
{
    /* What it wrote before dying comes first, then any event it managed to send. */
    stream_drain(&py->out, a);
    stream_drain(&py->err, a);
    python_read_events(py, a);
    python_close(py, a);
    char how[256];
    describe_status(how, sizeof how, st);
    if (a->busy == EX_PYTHON) {
        if (shutting_down) {
            agent_send_execf(a, 'c', "interpreter %s; the runner is shutting down", how);
        } else {
            int e = python_start(py);
            if (e)
                agent_send_execf(a, 'c', "interpreter %s; restart failed (%s: %s), state lost", how,
                                 py->path ? py->path : py->python, strerror(e));
            else
                agent_send_execf(a, 'c', "interpreter %s; restarted, state lost", how);
        }
        agent_send_exec_text(a, 'f', "error");
        agent_exec_end(a);
    } else if (!shutting_down) {
        agent_send_execf(a, 'c', "interpreter %s while idle; state lost, a new one starts with the next query", how);
    }
}
