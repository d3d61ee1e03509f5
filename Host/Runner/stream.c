/* A child's stdout or stderr pipe, forwarded to the agent as 'o' or 'e' frames. */
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define DRAIN_LIMIT (4u * 1024u * 1024u) /* most read from one pipe when an execution ends */

/* Bytes at the end of p[0..n) that start a UTF-8 sequence but do not finish it. */
static size_t utf8_incomplete_tail(const unsigned char *p, size_t n)
{
    size_t i = n, cont = 0;
    while (i > 0 && cont < 3 && (p[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return 0;
    unsigned char lead = p[i - 1];
    size_t need;
    if ((lead & 0xE0) == 0xC0)
        need = 2;
    else if ((lead & 0xF0) == 0xE0)
        need = 3;
    else if ((lead & 0xF8) == 0xF0)
        need = 4;
    else
        return 0;
    size_t have = n - (i - 1);
    return have < need ? have : 0;
}

static void stream_flush_hold(struct stream *s, struct agent *a)
{
    if (s->nhold > 0) {
        agent_send_exec(a, s->type, s->hold, s->nhold);
        s->nhold = 0;
    }
}

void stream_close(struct stream *s, struct agent *a)
{
    stream_flush_hold(s, a);
    close_fd(&s->fd);
}

int stream_read(struct stream *s, struct agent *a)
{
    /* Scratch space, not state: static only to keep 64 KiB off the stack. The runner is
     * single-threaded and nothing here re-enters. */
    static unsigned char tmp[4 + CHUNK];
    if (s->fd < 0)
        return -1;
    memcpy(tmp, s->hold, s->nhold);
    ssize_t n;
    do
        n = read(s->fd, tmp + s->nhold, CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        stream_close(s, a);
        return -1;
    }
    size_t total = s->nhold + (size_t)n;
    size_t keep = utf8_incomplete_tail(tmp, total);
    if (total > keep)
        agent_send_exec(a, s->type, tmp, total - keep);
    memcpy(s->hold, tmp + total - keep, keep);
    s->nhold = keep;
    return 1;
}

void stream_drain(struct stream *s, struct agent *a)
{
    size_t done = 0;
    while (s->fd >= 0 && done < DRAIN_LIMIT && stream_read(s, a) > 0)
        done += CHUNK;
    stream_flush_hold(s, a);
}
