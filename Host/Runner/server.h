/* The unix socket the agent connects to, and the requests it sends (README: "Requests"). */
#ifndef HANGAR_RUNNER_SERVER_H
#define HANGAR_RUNNER_SERVER_H

struct runner;

struct server {
    const char *socket_path;
    int runtime_interp; /* 'Q' runs in the interpreter; else in /bin/sh */
    int listen_fd;      /* -1 before listening and once shutdown began */
    const char *service_path; /* the service socket (services.c) */
    int service_fd;           /* -1 before listening and once shutdown began */
};

#define SERVER_INIT { .listen_fd = -1, .service_fd = -1 }

/* Replaces a stale socket at the path, binds it with mode 0600 and listens: the descriptor,
 * or -1, logged. Used for the agent's socket and the service socket. */
int unix_listen(const char *path, int backlog);

/* unix_listen on srv->socket_path: the descriptor (also in srv->listen_fd), or -1. */
int server_listen(struct server *srv);

/* The listening socket is readable: accepts the next connection (only while none is served;
 * further connects wait in the backlog). */
void server_accept(struct runner *r);

/* The connection is ready: writes queued frames, reads and handles requests. */
void server_client_ready(struct runner *r, short revents);

/* Shutdown: no more connections on either socket (the one served stays). */
void server_stop_listening(struct server *srv);

/* At exit: closes the listening socket and removes it from the file system. */
void server_close(struct server *srv);

#endif
