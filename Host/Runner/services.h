/* The service socket (README: "Service socket"): tunnels to ports inside the container,
 * starting services, and asking whether a service still runs. Every connection is served by a
 * forked child of its own, so none of it blocks the poll loop. */
#ifndef HANGAR_RUNNER_SERVICES_H
#define HANGAR_RUNNER_SERVICES_H

/* Replaces a stale socket at the path, binds it with mode 0600 and listens: the descriptor,
 * or -1, logged. */
int services_listen(const char *path);

/* The service socket is readable: accepts one connection and forks its handler. */
void services_accept(int listen_fd);

#endif
