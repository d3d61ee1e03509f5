/* A child's stdout or stderr pipe, forwarded to the agent as 'o' or 'e' frames. */
#ifndef HANGAR_RUNNER_STREAM_H
#define HANGAR_RUNNER_STREAM_H

#include <stddef.h>

#include "agent.h"

/* An incomplete UTF-8 sequence at the end of a read is held back (at most 3 bytes) so that no
 * chunk splits a character (README: "Chunks, not lines"). */
struct stream {
    int fd;    /* -1 when closed */
    char type; /* 'o' or 'e' */
    unsigned char hold[4];
    size_t nhold;
};

#define STREAM_INIT(type_) { .fd = -1, .type = (type_) }

/* One read: 1 data forwarded, 0 nothing now, -1 end of file (stream closed). */
int stream_read(struct stream *s, struct agent *a);

/* Reads what is already in the pipe (ignoring back-pressure) and forwards it, then flushes a
 * held partial character: used before an event so that output written earlier comes first. */
void stream_drain(struct stream *s, struct agent *a);

/* Forwards a held partial character and closes the pipe. */
void stream_close(struct stream *s, struct agent *a);

#endif
