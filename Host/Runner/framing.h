/* The wire framing between the agent and the runner (README: "Wire format"): a uint32
 * big-endian N, a type byte, N - 1 bytes of payload. */
#ifndef HANGAR_RUNNER_FRAMING_H
#define HANGAR_RUNNER_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define MAX_FRAME (16u * 1024u * 1024u) /* largest N (type byte + payload) either way */

/* Also used for the interpreter's code blocks and events (runtime_interp.c), which carry
 * their lengths the same way. */
static inline uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Appends one frame to out. A payload longer than MAX_FRAME - 1 is cut there; it never is in
 * practice, because output chunks are at most CHUNK bytes. */
void frame_append(struct buf *out, char type, const void *data, size_t len);

enum frame_state {
    FRAME_PARTIAL, /* not all of the frame has arrived yet */
    FRAME_OK,      /* *type and *payload (N - 1 bytes) are valid until in is consumed */
    FRAME_BAD,     /* *n is 0 or above MAX_FRAME: the connection cannot be parsed further */
};

/* The frame at the head of in, without consuming it (consume 4 + *n bytes once handled). */
enum frame_state frame_peek(const struct buf *in, uint32_t *n, unsigned char *type, const char **payload);

#endif
