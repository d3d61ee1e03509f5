/* Small helpers every part of hangar-runner uses. */
#ifndef HANGAR_RUNNER_UTIL_H
#define HANGAR_RUNNER_UTIL_H

#include <stdint.h>

#define EXIT_RUNNER_ERROR 125 /* the runner itself failed (README: "Exit status of the runner") */
#define CHUNK 65536           /* one read from a pipe or the socket */

/* One line "hangar-runner: ..." on stderr, which is the container log. */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds: every deadline of the runner is one of these. */
int64_t now_ms(void);

void set_nonblock(int fd);

/* Closes *fd if open and sets it to -1: "fd < 0" means "not open" everywhere. */
void close_fd(int *fd);

#endif
