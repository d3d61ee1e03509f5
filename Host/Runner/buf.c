/* Byte queues: what is waiting to go to the agent or to a child, and what came from them. */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "util.h"

void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->off = b->len = b->cap = 0;
}

void buf_append(struct buf *b, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (b->len + n > b->cap && b->off > 0) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            logmsg("out of memory");
            exit(EXIT_RUNNER_ERROR);
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

void buf_append_line(struct buf *b, const char *text, size_t len)
{
    buf_append(b, text, len);
    if (len == 0 || text[len - 1] != '\n')
        buf_append(b, "\n", 1);
}

void buf_consume(struct buf *b, size_t n)
{
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
        if (b->cap > (1u << 20)) /* give back what a big burst took */
            buf_free(b);
    }
}

int buf_flush(int fd, struct buf *b, int is_socket)
{
    while (buf_pending(b) > 0) {
        ssize_t n = is_socket ? send(fd, b->p + b->off, buf_pending(b), MSG_NOSIGNAL)
                              : write(fd, b->p + b->off, buf_pending(b));
        if (n > 0)
            buf_consume(b, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 0;
}

void buf_flush_pipe(int *fd, struct buf *b)
{
    if (buf_flush(*fd, b, 0) < 0) {
        close_fd(fd);
        buf_free(b);
    }
}
