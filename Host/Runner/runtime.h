/* The children that run user code, and what the rest of the runner asks of them.
 *
 * There are two kinds: the shell (`/bin/sh -c`, one per execution: every batch 'B', and every
 * 'Q' of the shell runtime) and a persistent interpreter (every 'Q' of the python, r and
 * nodejs runtimes). Both offer the same operations: start an execution, take input, interrupt it,
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

/* ------------------------------------------------------------------ runtime_interp.c */

/* A language with a persistent interpreter: how to start it and the driver to send it. */
struct language {
    const char *name;              /* the --runtime name: python, r, nodejs */
    const char *path;              /* the default interpreter */
    const char *fallback;          /* looked up on PATH when the default is missing */
    const char *const *args;       /* between the interpreter and the bootstrap */
    const char *bootstrap;         /* reads the driver from fd 3 and runs it */
    const char *driver;            /* the first code block (python_driver.py, ...) */
    size_t driver_len;
    int spawn_flags;               /* SPAWN_* besides SPAWN_PGRP */
};

/* The language of a --runtime name, or NULL. */
const struct language *language_named(const char *name);

/* The persistent interpreter and the driver in it. */
struct interp {
    const struct language *lang;
    const char *interpreter; /* --interpreter (or --python), else NULL: the language's default */
    pid_t pid;            /* also its process group; 0 when none runs */
    int in_fd, ctl_fd, ev_fd; /* its stdin, fd 3 (code blocks), fd 4 (events) */
    struct buf in, ctl, ev;
    struct stream out, err;
    int waiting;          /* reported 'w', no 'I' delivered yet */
    const char *path;     /* the interpreter actually started */
};

#define INTERP_INIT                                                                                  \
    { .in_fd = -1, .ctl_fd = -1, .ev_fd = -1, .out = STREAM_INIT('o'), .err = STREAM_INIT('e') }

/* Starts the interpreter and queues the driver for it: 0, or the errno that kept it from
 * starting. */
int interp_start(struct interp *py);

/* Queues code as the execution (EX_INTERP) of the current connection, starting the
 * interpreter first if none runs; or answers 'E' if it cannot start. The caller has checked
 * that nothing runs. */
void interp_query(struct interp *py, struct agent *a, const char *code, size_t len);

/* 'I' while the driver waits for a line: 1 (queued for its stdin), or 0 (not waiting). */
int interp_input(struct interp *py, const char *text, size_t len);

/* 'X': SIGINT to the interpreter process only (its driver raises KeyboardInterrupt). */
void interp_interrupt(struct interp *py);

/* Reads and handles the driver's events (fd 4): 'W' becomes 'w', 'M' becomes 'm', 'D'
 * becomes 'f'. */
void interp_read_events(struct interp *py, struct agent *a);

/* It was reaped (pid already 0): forwards what it wrote, then 'c' (and 'f' error if a query
 * ran); restarts it for a query that ran, unless the runner is shutting down. */
void interp_exited(struct interp *py, struct agent *a, int st, int shutting_down);

/* Closes its pipes and drops what was queued for it (at exit, or once it was reaped). */
void interp_close(struct interp *py, struct agent *a);

#endif
