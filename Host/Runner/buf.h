/* Byte queues: what is waiting to go to the agent or to a child, and what came from them. */
#ifndef HANGAR_RUNNER_BUF_H
#define HANGAR_RUNNER_BUF_H

#include <stddef.h>

struct buf {
    unsigned char *p;
    size_t off, len, cap; /* pending bytes are p[off..len) */
};

static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }

void buf_free(struct buf *b);

/* Out of memory ends the runner (exit 125): it cannot keep its promises without the bytes. */
void buf_append(struct buf *b, const void *data, size_t n);

/* text plus "\n" unless it already ends with one: a line for a child's stdin ('I'). */
void buf_append_line(struct buf *b, const char *text, size_t len);

void buf_consume(struct buf *b, size_t n);

/* Writes what it can without blocking: 0 (all written or would block), -1 (peer gone). Every
 * descriptor it is used on is non-blocking. Sockets use send(MSG_NOSIGNAL). */
int buf_flush(int fd, struct buf *b, int is_socket);

/* buf_flush to a child's pipe; when the child has closed its end, closes ours and drops what
 * was queued for it. */
void buf_flush_pipe(int *fd, struct buf *b);

#endif
