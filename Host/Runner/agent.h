/* The agent's side of the runner: the connection being served, the frames queued for it, and
 * which connection the frames about the running execution belong to.
 *
 * The runner serves one connection at a time. Frames about an execution (o, e, w, c, f) go
 * only to the connection that started it, so the execution's kind and owner live here, next
 * to the connection, rather than with the runtimes. */
#ifndef HANGAR_RUNNER_AGENT_H
#define HANGAR_RUNNER_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HIGH_WATER (4u * 1024u * 1024u) /* queued for the agent: stop reading child output */

/* The one execution running (README: "One execution at a time"). */
enum exec_kind { EX_NONE, EX_INTERP, EX_SHELL, EX_BATCH };

struct agent {
    int fd;              /* the connection; -1 when none */
    unsigned long id;    /* its number; ids are never reused */
    struct buf in, out;
    int closing;         /* an 'E' for a bad frame is queued: flush it, then close */
    int dead;            /* peer gone: close at the top of the loop */
    int64_t close_deadline;
    unsigned long connections; /* connections accepted so far; id of the current one */
    enum exec_kind busy; /* EX_*: the one execution running */
    unsigned long owner; /* the connection that started it */
};

#define AGENT_INIT { .fd = -1 }

/* Writes what the socket takes now; a write error marks the connection dead. */
void agent_flush(struct agent *a);

/* Queues one frame for the current connection; dropped when there is none (or it is going). */
void agent_send(struct agent *a, char type, const void *data, size_t len);
void agent_send_text(struct agent *a, char type, const char *text);
void agent_sendf(struct agent *a, char type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A frame about the execution: only for the connection that started it; when nothing runs
 * (interpreter output from background threads, an idle 'c') for the current one. */
void agent_send_exec(struct agent *a, char type, const void *data, size_t len);
void agent_send_exec_text(struct agent *a, char type, const char *text);
void agent_send_execf(struct agent *a, char type, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* An execution of this kind started for the current connection / ended. */
void agent_exec_begin(struct agent *a, enum exec_kind kind);
void agent_exec_end(struct agent *a);

/* Drops the connection and whatever was queued either way. */
void agent_close(struct agent *a);

/* At exit: up to 1 s to deliver what is still queued. */
void agent_final_flush(struct agent *a);

#endif
