/* ttyd mode: `hangar-runner ttyd ...`, a web terminal that speaks ttyd 1.7's protocol over
 * HTTP and WebSocket, one shell on its own pty per connection (README: "ttyd mode"). It is a
 * separate process of the same binary, started as a service inside the container; it shares
 * none of the runner's state. */
#ifndef HANGAR_RUNNER_TTYD_H
#define HANGAR_RUNNER_TTYD_H

/* argv[0] is "ttyd". Returns the exit status: 0 after SIGTERM/SIGINT/SIGHUP, 1 if it cannot
 * listen, 2 for bad usage. */
int ttyd_main(int argc, char **argv);

#endif
