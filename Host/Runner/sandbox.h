/* The jail: a seccomp filter (libseccomp, linked statically) installed in the runner before any
 * user code starts, so every process of the kernel inherits it (README: "Sandbox"). */
#ifndef HANGAR_RUNNER_SANDBOX_H
#define HANGAR_RUNNER_SANDBOX_H

struct sandbox {
    int notify_fd; /* watch mode: the filter's notification descriptor, else -1 */
    int log_fd;    /* watch mode: where reports go (one JSON line per call), else -1 */
};

#define SANDBOX_INIT { .notify_fd = -1, .log_fd = -1 }

/* Reads the policy file the agent wrote, sets no_new_privs and loads the filter. In watch mode
 * the denied calls notify instead, and reports go to log_path (appended). Returns 0, or -1
 * after logging why: the runner then exits, so no kernel runs without the filter it was given. */
int sandbox_install(struct sandbox *s, const char *policy_path, const char *log_path);

/* Watch mode: answers one pending notification (the call goes on) and reports it. */
void sandbox_watch_ready(struct sandbox *s);

#endif
