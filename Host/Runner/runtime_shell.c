/* The shell: `/bin/sh -c` for every batch ('B') and every query of the shell runtime
 * (README: "Shell runtime and batch"). No state is kept between executions. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"
#include "spawn.h"
#include "util.h"

void shell_start(struct shell *sh, struct agent *a, enum exec_kind kind, const char *code, size_t len)
{
    if (memchr(code, 0, len)) {
        agent_send_text(a, 'E', "the command contains a NUL byte");
        return;
    }
    char *cmd = malloc(len + 1);
    if (!cmd) {
        agent_send_text(a, 'E', "out of memory");
        return;
    }
    memcpy(cmd, code, len);
    cmd[len] = 0;
    int pp[3][2];
    int e = make_pipes(pp, 3);
    if (e) {
        free(cmd);
        agent_sendf(a, 'E', "cannot create pipes: %s", strerror(e));
        return;
    }
    char *argv[] = { "sh", "-c", cmd, NULL };
    int fds[3] = { pp[0][0], pp[1][1], pp[2][1] };
    pid_t pid = spawn("/bin/sh", argv, fds, 3, SPAWN_PGRP | SPAWN_UNBUFFERED, &e);
    free(cmd);
    close_fd(&pp[0][0]);
    close_fd(&pp[1][1]);
    close_fd(&pp[2][1]);
    if (pid < 0) {
        close_pipes(pp, 3);
        agent_sendf(a, 'E', "cannot run /bin/sh: %s", strerror(e));
        return;
    }
    sh->pid = pid;
    sh->in_fd = pp[0][1];
    sh->out.fd = pp[1][0];
    sh->err.fd = pp[2][0];
    sh->out.nhold = sh->err.nhold = 0;
    set_nonblock(sh->in_fd);
    set_nonblock(sh->out.fd);
    set_nonblock(sh->err.fd);
    agent_exec_begin(a, kind);
}

void shell_input(struct shell *sh, struct agent *a, const char *text, size_t len)
{
    if (sh->in_fd < 0) {
        agent_send_text(a, 'E', "the execution has closed its stdin");
        return;
    }
    buf_append_line(&sh->in, text, len);
    buf_flush_pipe(&sh->in_fd, &sh->in);
}

void shell_interrupt(struct shell *sh)
{
    if (sh->pid > 0)
        kill_group(sh->pid, SIGINT);
}

void shell_close(struct shell *sh, struct agent *a)
{
    stream_close(&sh->out, a);
    stream_close(&sh->err, a);
    close_fd(&sh->in_fd);
    buf_free(&sh->in);
}

void shell_exited(struct shell *sh, struct agent *a, int st)
{
    /* Output of the commands it waited for comes before 'f'; that of background jobs it left
     * running is dropped with the pipes. */
    stream_drain(&sh->out, a);
    stream_drain(&sh->err, a);
    shell_close(sh, a);
    if (a->busy == EX_SHELL || a->busy == EX_BATCH) {
        agent_send_execf(a, 'f', "%d", status_code(st));
        agent_exec_end(a);
    }
}
