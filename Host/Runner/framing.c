/* The wire framing between the agent and the runner (README: "Wire format"). */
#include "framing.h"

void frame_append(struct buf *out, char type, const void *data, size_t len)
{
    if (len > MAX_FRAME - 1)
        len = MAX_FRAME - 1;
    unsigned char head[5];
    put_be32(head, (uint32_t)len + 1);
    head[4] = (unsigned char)type;
    buf_append(out, head, sizeof head);
    buf_append(out, data, len);
}

enum frame_state frame_peek(const struct buf *in, uint32_t *n, unsigned char *type, const char **payload)
{
    if (buf_pending(in) < 4)
        return FRAME_PARTIAL;
    const unsigned char *p = in->p + in->off;
    *n = get_be32(p);
    if (*n == 0 || *n > MAX_FRAME)
        return FRAME_BAD;
    if (buf_pending(in) < 4 + (size_t)*n)
        return FRAME_PARTIAL;
    *type = p[4];
    *payload = (const char *)p + 5;
    return FRAME_OK;
}
