/* Starting children and describing how they ended. */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "util.h"

static void child_reset_signals(int flags)
{
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sa.sa_handler = (sigs[i] == SIGINT && (flags & SPAWN_IGNORE_INT)) ? SIG_IGN : SIG_DFL;
        sigaction(sigs[i], &sa, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

pid_t spawn(const char *file, char *const argv[], const int *fds, int nfds, int flags, int *err)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        *err = errno;
        return -1;
    }
    /* Signals stay blocked across fork so that the child cannot run our handler (which would
     * write into the parent's self-pipe) before child_reset_signals has reset it. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid != 0)
        sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        *err = errno;
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        int e = 0;
        child_reset_signals(flags); /* also unblocks */
        /* Above every descriptor that the dup2s below may overwrite. */
        int report = fcntl(ep[1], F_DUPFD_CLOEXEC, 16);
        if (report < 0)
            report = ep[1];
        if (flags & SPAWN_PGRP)
            setpgid(0, 0);
        /* Moved out of the way first, so that no dup2 overwrites a descriptor still to come. */
        int moved[8];
        for (int i = 0; i < nfds && !e; i++) {
            moved[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 16);
            if (moved[i] < 0)
                e = errno;
        }
        for (int i = 0; i < nfds && !e; i++)
            if (dup2(moved[i], i) < 0)
                e = errno;
        if (!e) {
            if (flags & SPAWN_UNBUFFERED)
                setenv("PYTHONUNBUFFERED", "1", 1);
            if (strchr(file, '/'))
                execv(file, argv);
            else
                execvp(file, argv);
            e = errno;
        }
        ssize_t w = write(report, &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    close(ep[1]);
    if (flags & SPAWN_PGRP)
        setpgid(pid, pid); /* both sides, so no race; fails harmlessly once it has exec'd */
    int e = 0;
    ssize_t n;
    do
        n = read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof e) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        *err = e;
        return -1;
    }
    return pid;
}

void close_pipes(int (*pipes)[2], int n)
{
    for (int i = 0; i < n; i++) {
        close_fd(&pipes[i][0]);
        close_fd(&pipes[i][1]);
    }
}

int make_pipes(int (*pipes)[2], int n)
{
    for (int i = 0; i < n; i++)
        pipes[i][0] = pipes[i][1] = -1;
    for (int i = 0; i < n; i++)
        if (pipe2(pipes[i], O_CLOEXEC) < 0) {
            int e = errno;
            close_pipes(pipes, n);
            return e;
        }
    return 0;
}

void kill_group(pid_t pid, int sig)
{
    if (pid > 0 && kill(-pid, sig) < 0)
        kill(pid, sig);
}

int status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

void describe_status(char *out, size_t size, int st)
{
    if (WIFSIGNALED(st))
        snprintf(out, size, "exited with signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WIFEXITED(st))
        snprintf(out, size, "exited with status %d", WEXITSTATUS(st));
    else
        snprintf(out, size, "ended (wait status 0x%x)", (unsigned)st);
}
