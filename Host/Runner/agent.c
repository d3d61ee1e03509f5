/* The agent's side of the runner: the connection being served and the frames queued for it. */
#include "agent.h"

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "framing.h"
#include "util.h"

void agent_flush(struct agent *a)
{
    if (a->fd < 0 || a->dead)
        return;
    if (buf_flush(a->fd, &a->out, 1) < 0)
        a->dead = 1;
}

void agent_send(struct agent *a, char type, const void *data, size_t len)
{
    if (a->fd < 0 || a->dead || a->closing)
        return;
    frame_append(&a->out, type, data, len);
    agent_flush(a);
}

void agent_send_text(struct agent *a, char type, const char *text) { agent_send(a, type, text, strlen(text)); }

void agent_sendf(struct agent *a, char type, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    agent_send_text(a, type, text);
}

void agent_send_exec(struct agent *a, char type, const void *data, size_t len)
{
    if (a->busy == EX_NONE || a->owner == a->id)
        agent_send(a, type, data, len);
}

void agent_send_exec_text(struct agent *a, char type, const char *text)
{
    agent_send_exec(a, type, text, strlen(text));
}

void agent_send_execf(struct agent *a, char type, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    agent_send_exec_text(a, type, text);
}

void agent_exec_begin(struct agent *a, enum exec_kind kind)
{
    a->busy = kind;
    a->owner = a->id;
}

void agent_exec_end(struct agent *a) { a->busy = EX_NONE; }

void agent_close(struct agent *a)
{
    close_fd(&a->fd);
    buf_free(&a->in);
    buf_free(&a->out);
    a->closing = a->dead = 0;
}

void agent_final_flush(struct agent *a)
{
    if (a->fd < 0 || a->dead || buf_pending(&a->out) == 0)
        return;
    int64_t until = now_ms() + 1000;
    while (buf_pending(&a->out) > 0 && !a->dead) {
        int64_t left = until - now_ms();
        if (left <= 0)
            break;
        struct pollfd pf = { .fd = a->fd, .events = POLLOUT };
        if (poll(&pf, 1, (int)left) <= 0)
            break;
        agent_flush(a);
    }
}
