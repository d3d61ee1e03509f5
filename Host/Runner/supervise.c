/* PID 1's duties: signals, reaping, and the shutdown that forwards signals to the children
 * and waits for them (README: "Process behaviour"). */
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "runner.h"
#include "spawn.h"
#include "util.h"

#define GRACE_MS 5000     /* SIGTERM -> SIGKILL */
#define KILL_WAIT_MS 2000 /* SIGKILL -> give up waiting */

/* The self-pipe: [0] is polled by the loop, [1] written by on_signal. Global because a signal
 * handler can reach nothing else; signals are per process anyway, so there is only one. */
static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &c, 1);
    (void)w;
    errno = saved;
}

int signals_setup(void)
{
    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) {
        logmsg("pipe: %s", strerror(errno));
        return -1;
    }
    sig_pipe[0] = sp[0];
    sig_pipe[1] = sp[1];
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
    /* A parent may hand down a blocked mask (Foundation's Process does): PID 1 must see these. */
    sigset_t mine;
    sigemptyset(&mine);
    sigaddset(&mine, SIGTERM);
    sigaddset(&mine, SIGINT);
    sigaddset(&mine, SIGHUP);
    sigaddset(&mine, SIGCHLD);
    sigprocmask(SIG_UNBLOCK, &mine, NULL);
    return 0;
}

int signals_fd(void) { return sig_pipe[0]; }

void signals_close(void)
{
    close_fd(&sig_pipe[0]);
    close_fd(&sig_pipe[1]);
}

void become_subreaper(void)
{
    if (getpid() != 1)
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* orphans come to us, as to an init */
}

/* Whether shutdown must still wait: for what we started, and as PID 1 for every process left
 * in the container (all orphans are our children then, and kill -1 signalled them). */
static int children_alive(const struct runner *r)
{
    if (r->sup.main_pid > 0 || r->shell.pid > 0 || r->interp.pid > 0)
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
static void begin_shutdown(struct runner *r, int code, int sig)
{
    if (r->sup.shutting_down)
        return;
    r->sup.shutting_down = 1;
    r->sup.exit_code = code;
    r->sup.deadline = now_ms() + GRACE_MS;
    server_stop_listening(&r->server);
    if (getpid() == 1) {
        kill(-1, sig);
    } else {
        if (r->sup.main_pid > 0)
            kill(r->sup.main_pid, sig);
        kill_group(r->shell.pid, sig);
    }
    kill_group(r->interp.pid, SIGTERM);
}

static void kill_everything(struct runner *r)
{
    if (getpid() == 1)
        kill(-1, SIGKILL);
    if (r->sup.main_pid > 0)
        kill(r->sup.main_pid, SIGKILL);
    kill_group(r->shell.pid, SIGKILL);
    kill_group(r->interp.pid, SIGKILL);
}

static void reap_children(struct runner *r)
{
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        if (pid == r->sup.main_pid) {
            r->sup.main_pid = 0;
            begin_shutdown(r, status_code(st), SIGTERM); /* keeps 0 if a signal began it */
        } else if (pid == r->shell.pid) {
            r->shell.pid = 0;
            shell_exited(&r->shell, &r->agent, st);
        } else if (pid == r->interp.pid) {
            r->interp.pid = 0;
            interp_exited(&r->interp, &r->agent, st, r->sup.shutting_down);
        }
        /* anything else: an orphan reparented to us (PID 1 or subreaper); reaped */
    }
}

void supervise_signals(struct runner *r)
{
    unsigned char sigs[64];
    int stop = 0;
    ssize_t n;
    while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
        for (ssize_t i = 0; i < n; i++)
            if (sigs[i] == SIGTERM || sigs[i] == SIGINT || sigs[i] == SIGHUP)
                stop = sigs[i];
    reap_children(r);
    if (stop)
        begin_shutdown(r, 0, stop);
}

int supervise_shutdown_step(struct runner *r, int64_t *wake)
{
    if (!r->sup.shutting_down)
        return 0;
    if (!children_alive(r))
        return 1;
    int64_t now = now_ms();
    if (now >= r->sup.deadline) {
        if (r->sup.killed) {
            logmsg("children did not die after SIGKILL; exiting anyway");
            return 1;
        }
        kill_everything(r);
        r->sup.killed = 1;
        r->sup.deadline = now + KILL_WAIT_MS;
    }
    *wake = r->sup.deadline;
    return 0;
}
