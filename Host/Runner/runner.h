/* All of hangar-runner's state, in one struct that main() owns and hands to the parts that
 * coordinate several others (server.c for requests, supervise.c for reaping and shutdown).
 * Leaf parts get only the pieces they work on. The one global is the signal self-pipe in
 * supervise.c. */
#ifndef HANGAR_RUNNER_RUNNER_H
#define HANGAR_RUNNER_RUNNER_H

#include "agent.h"
#include "runtime.h"
#include "server.h"
#include "supervise.h"

struct runner {
    struct server server;  /* the listening socket, and what 'Q' runs in */
    struct agent agent;    /* the connection served, and who owns the execution */
    struct shell shell;    /* the running /bin/sh -c, if any */
    struct interp interp;  /* the interpreter (python, r and nodejs runtimes) */
    struct supervisor sup; /* the main command, and the shutdown */
};

#endif
