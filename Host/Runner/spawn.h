/* Starting children and describing how they ended. Used for the main command, every
 * execution and the interpreter; supervise.c reaps them. */
#ifndef HANGAR_RUNNER_SPAWN_H
#define HANGAR_RUNNER_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

enum {
    SPAWN_PGRP = 1,       /* lead a new process group, so an interrupt or kill reaches a pipeline */
    SPAWN_UNBUFFERED = 2, /* PYTHONUNBUFFERED=1 in its environment */
    SPAWN_IGNORE_INT = 4, /* start with SIGINT ignored (the driver installs its own handler) */
};

/* fork + exec. fds[i] becomes descriptor i in the child (nfds 0: inherit 0-2; at most 8);
 * flags SPAWN_*. The child starts with default signal dispositions and an empty signal mask;
 * it inherits none of the runner's other descriptors, because all of them are close-on-exec.
 * Returns the pid, or -1 with *err = the errno of fork or exec (seen through a cloexec pipe,
 * so a missing program is an error here, not an exit status to reap). */
pid_t spawn(const char *file, char *const argv[], const int *fds, int nfds, int flags, int *err);

/* n close-on-exec pipes: 0, or the errno (then none is left open). */
int make_pipes(int (*pipes)[2], int n);
void close_pipes(int (*pipes)[2], int n);

/* Sends sig to a child's process group, or to the child alone if it has none yet. pid <= 0:
 * nothing. */
void kill_group(pid_t pid, int sig);

/* Exit status as the shell reports it: the code, or 128 + the signal. */
int status_code(int st);

/* "exited with status 3" / "exited with signal 11 (Segmentation fault)" */
void describe_status(char *out, size_t size, int st);

#endif
