/* PID 1's duties: signals, reaping, and the shutdown that forwards signals to the children
 * and waits for them (README: "Process behaviour"). */
#ifndef HANGAR_RUNNER_SUPERVISE_H
#define HANGAR_RUNNER_SUPERVISE_H

#include <stdint.h>
#include <sys/types.h>

struct runner;

struct supervisor {
    pid_t main_pid;    /* the main command; 0 when none runs */
    int shutting_down;
    int killed;        /* SIGKILL sent */
    int exit_code;
    int64_t deadline;  /* shutdown: when to SIGKILL, then when to give up */
};

/* Installs the handlers for SIGTERM, SIGINT, SIGHUP and SIGCHLD, which only write the signal
 * number into a self-pipe, and ignores SIGPIPE. -1 (logged) if the pipe cannot be made.
 * The self-pipe is the runner's only global state: a signal handler has nowhere else to
 * write. */
int signals_setup(void);

/* The self-pipe's read end, for poll: readable when a signal arrived. */
int signals_fd(void);

void signals_close(void);

/* When not PID 1: orphans are reparented to the runner and reaped here, as by an init. */
void become_subreaper(void);

/* The self-pipe is readable: reaps every child that ended and tells its owner, then begins
 * the shutdown if SIGTERM, SIGINT or SIGHUP arrived. */
void supervise_signals(struct runner *r);

/* Called once per loop. 0: keep serving, with *wake set to the shutdown deadline if one is
 * running; 1: stop now (every child is gone, or did not die even after SIGKILL). Sends
 * SIGKILL when the grace period is over. */
int supervise_shutdown_step(struct runner *r, int64_t *wake);

#endif
