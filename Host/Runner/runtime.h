/* The children that run user code, and what the rest of the runner asks of them.
 *
 * There are two: the shell (`/bin/sh -c`, one per execution: every batch 'B', and every 'Q'
 * of the shell runtime) and the persistent Python interpreter (every 'Q' of the python
 * runtime). Both offer the same operations: start an execution, take input, interrupt it,
 * learn that the child was reaped, close. server.c calls them for requests, supervise.c when
 * it reaps or shuts down, main.c when their descriptors are ready.
 *
 * Their frames go through struct agent, which also records which execution runs (EX_*) and
 * for which connection. A child's pid doubles as its process group (SPAWN_PGRP). */
#ifndef HANGAR_RUNNER_RUNTIME_H
#define HANGAR_RUNNER_RUNTIME_H

#include <stddef.h>
#include <sys/types.h>

#include "agent.h"
#include "buf.h"
#include "stream.h"

/* ------------------------------------------------------------------ runtime_shell.c */

/* The running /bin/sh -c (batch, or a query in the shell runtime). It runs exactly while the
 * agent's busy is EX_SHELL or EX_BATCH. */
struct shell {
    pid_t pid; /* also its process group; 0 when none runs */
    int in_fd; /* its stdin, fed by 'I' */
    struct buf in;
    struct stream out, err;
};

#define SHELL_INIT { .in_fd = -1, .out = STREAM_INIT('o'), .err = STREAM_INIT('e') }

/* Starts `/bin/sh -c code` as the execution (kind EX_SHELL or EX_BATCH) of the current
 * connection, or answers 'E' (nothing ran). The caller has checked that nothing runs. */
void shell_start(struct shell *sh, struct agent *a, enum exec_kind kind, const char *code, size_t len);

/* 'I' while the shell runs: the line is queued for its stdin, or 'E' if it closed it. */
void shell_input(struct shell *sh, struct agent *a, const char *text, size_t len);

/* 'X': SIGINT to its whole process group. */
void shell_interrupt(struct shell *sh);

/* It was reaped (pid already 0): forwards what is left in its pipes, then 'f' status. */
void shell_exited(struct shell *sh, struct agent *a, int st);

/* Closes its pipes (at exit, or once it was reaped). */
void shell_close(struct shell *sh, struct agent *a);

/* ------------------------------------------------------------------ runtime_python.c */

/* The persistent Python interpreter and the driver in it (python_driver.py). */
struct python {
    const char *python;   /* --python, or the default */
    int python_explicit;  /* --python was given: no fallback to python3 on PATH */
    pid_t pid;            /* also its process group; 0 when none runs */
    int in_fd, ctl_fd, ev_fd; /* its stdin, fd 3 (code blocks), fd 4 (events) */
    struct buf in, ctl, ev;
    struct stream out, err;
    int waiting;          /* reported 'w', no 'I' delivered yet */
    const char *path;     /* the interpreter actually started */
};

#define PYTHON_INIT                                                                                  \
    { .in_fd = -1, .ctl_fd = -1, .ev_fd = -1, .out = STREAM_INIT('o'), .err = STREAM_INIT('e') }

/* Starts the interpreter and queues the driver for it: 0, or the errno that kept it from
 * starting. */
int python_start(struct python *py);

/* Queues code as the execution (EX_PYTHON) of the current connection, starting the
 * interpreter first if none runs; or answers 'E' if it cannot start. The caller has checked
 * that nothing runs. */
void python_query(struct python *py, struct agent *a, const char *code, size_t len);

/* 'I' while the driver waits for a line: 1 (queued for its stdin), or 0 (not waiting). */
int python_input(struct python *py, const char *text, size_t len);

/* 'X': SIGINT to the interpreter process only (its driver raises KeyboardInterrupt). */
void python_interrupt(struct python *py);

/* Reads and handles the driver's events (fd 4): 'W' becomes 'w', 'D' becomes 'f'. */
void python_read_events(struct python *py, struct agent *a);

/* It was reaped (pid already 0): forwards what it wrote, then 'c' (and 'f' error if a query
 * ran); restarts it for a query that ran, unless the runner is shutting down. */
void python_exited(struct python *py, struct agent *a, int st, int shutting_down);

/* Closes its pipes and drops what was queued for it (at exit, or once it was reaped). */
void python_close(struct python *py, struct agent *a);

#endif
