/* The unix socket the agent connects to, and the requests it sends (README: "Requests"). */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "framing.h"
#include "runner.h"
#include "util.h"

#define CLOSE_WAIT_MS 2000 /* bad frame: time to deliver the 'E' */

/* A bad frame: the 'E' goes out, then the connection closes (at the latest after
 * CLOSE_WAIT_MS), and no further request of it is read. */
static void protocol_error(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void protocol_error(struct agent *a, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    agent_send_text(a, 'E', text);
    a->closing = 1;
    a->close_deadline = now_ms() + CLOSE_WAIT_MS;
}

static void deliver_input(struct runner *r, const char *text, size_t len)
{
    if (interp_input(&r->interp, text, len))
        return;
    if (r->agent.busy == EX_SHELL || r->agent.busy == EX_BATCH) {
        shell_input(&r->shell, &r->agent, text, len);
        return;
    }
    agent_send_text(&r->agent, 'E', "no execution is waiting for input");
}

static void interrupt_execution(struct runner *r)
{
    if (r->agent.busy == EX_INTERP)
        interp_interrupt(&r->interp);
    else if (r->agent.busy == EX_SHELL || r->agent.busy == EX_BATCH)
        shell_interrupt(&r->shell);
    /* nothing running: nothing to do (an interrupt may cross an 'f' on the wire) */
}

static void handle_request(struct runner *r, unsigned char type, const char *payload, size_t len)
{
    struct agent *a = &r->agent;
    switch (type) {
    case 'P':
        agent_send(a, 'p', payload, len);
        break;
    case 'Q':
    case 'B':
        if (r->sup.shutting_down)
            agent_send_text(a, 'E', "shutting down");
        else if (a->busy != EX_NONE)
            agent_send_text(a, 'E', "busy");
        else if (type == 'B')
            shell_start(&r->shell, a, EX_BATCH, payload, len);
        else if (r->server.runtime_interp)
            interp_query(&r->interp, a, payload, len);
        else
            shell_start(&r->shell, a, EX_SHELL, payload, len);
        break;
    case 'I':
        deliver_input(r, payload, len);
        break;
    case 'X':
        interrupt_execution(r);
        break;
    default:
        if (type >= 0x20 && type < 0x7f)
            agent_sendf(a, 'E', "unknown request type '%c'", type);
        else
            agent_sendf(a, 'E', "unknown request type 0x%02x", type);
        break;
    }
}

/* Handles every complete request in the input, in order. */
static void client_parse(struct runner *r)
{
    struct agent *a = &r->agent;
    while (!a->dead && !a->closing) {
        uint32_t n;
        unsigned char type;
        const char *payload;
        enum frame_state st = frame_peek(&a->in, &n, &type, &payload);
        if (st == FRAME_PARTIAL)
            return;
        if (st == FRAME_BAD) {
            protocol_error(a, "bad frame: length %u (must be 1..%u)", n, MAX_FRAME);
            return;
        }
        handle_request(r, type, payload, n - 1);
        buf_consume(&a->in, 4 + (size_t)n);
    }
}

static void client_read(struct runner *r)
{
    /* Scratch space, not state: static only to keep 64 KiB off the stack. */
    static unsigned char tmp[CHUNK];
    struct agent *a = &r->agent;
    for (int i = 0; i < 16 && !a->dead && !a->closing; i++) {
        ssize_t n = recv(a->fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            a->dead = 1;
            return;
        }
        buf_append(&a->in, tmp, (size_t)n);
        client_parse(r);
        if (buf_pending(&a->out) >= HIGH_WATER)
            return; /* the agent is not reading its answers: read no more requests */
    }
}

void server_client_ready(struct runner *r, short revents)
{
    struct agent *a = &r->agent;
    if (revents & POLLOUT)
        agent_flush(a);
    if (a->closing && (revents & (POLLHUP | POLLERR)))
        a->dead = 1; /* gone before taking the 'E' */
    else if (revents & (POLLIN | POLLHUP | POLLERR))
        client_read(r);
}

void server_accept(struct runner *r)
{
    struct agent *a = &r->agent;
    int fd = accept4(r->server.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            logmsg("accept: %s", strerror(errno));
        return;
    }
    a->fd = fd;
    a->id = ++a->connections;
    a->closing = a->dead = 0;
}

int unix_listen(const char *path, int backlog)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) {
        logmsg("socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        if (!S_ISSOCK(sb.st_mode)) {
            logmsg("%s exists and is not a socket", path);
            return -1;
        }
        if (unlink(path) < 0) {
            logmsg("cannot remove the stale socket %s: %s", path, strerror(errno));
            return -1;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        logmsg("socket: %s", strerror(errno));
        return -1;
    }
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    umask(old);
    if (rc < 0) {
        logmsg("cannot bind %s: %s", path, strerror(e));
        close(fd);
        return -1;
    }
    chmod(path, 0600);
    if (listen(fd, backlog) < 0) {
        logmsg("listen on %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

int server_listen(struct server *srv)
{
    srv->listen_fd = unix_listen(srv->socket_path, 8);
    return srv->listen_fd;
}

void server_stop_listening(struct server *srv)
{
    close_fd(&srv->listen_fd);
    close_fd(&srv->service_fd);
}

void server_close(struct server *srv)
{
    close_fd(&srv->listen_fd);
    unlink(srv->socket_path);
    close_fd(&srv->service_fd);
    if (srv->service_path)
        unlink(srv->service_path);
}
