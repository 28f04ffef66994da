/* proc.c — start another program without a shell (see proc.h).
 *
 * posix_spawnp with file actions for the child's stdin/stdout/stderr; glibc's implementation
 * reports a failed exec (ENOENT, EACCES) as the return value, so "cannot start" and "ran and
 * failed" are told apart. waitpid is retried on EINTR.
 */
#include "errbuf.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int rc_proc_split(const char *words, char **argv, int max, char *buf, size_t buflen)
{
    int n = 0;
    size_t used = 0;
    const char *p = words ? words : "";
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        size_t len = strcspn(p, " \t\n");
        if (n + 1 >= max || used + len + 1 > buflen) return -1;
        memcpy(buf + used, p, len);
        buf[used + len] = 0;
        argv[n++] = buf + used;
        used += len + 1;
        p += len;
    }
    argv[n] = NULL;
    return n;
}

static int wait_child(pid_t pid, int *status, const char *prog, char *err, size_t errlen)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return rc_errf(err, errlen, "waiting for '%s': %s", prog, strerror(errno));
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255;
    return 0;
}

static int spawn(char *const argv[], posix_spawn_file_actions_t *fa, pid_t *pid, char *err, size_t errlen)
{
    int e = posix_spawnp(pid, argv[0], fa, NULL, argv, environ);
    if (e) return rc_errf(err, errlen, "cannot start '%s': %s", argv[0], strerror(e));
    return 0;
}

int rc_proc_run(char *const argv[], const char *log_path, int *status, char *err, size_t errlen)
{
    *status = -1;
    if (!argv || !argv[0]) return rc_errf(err, errlen, "no program to run");
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) return rc_errf(err, errlen, "posix_spawn: out of memory");
    int bad = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    bad |= posix_spawn_file_actions_addopen(&fa, 1, log_path ? log_path : "/dev/null",
                                            O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bad |= posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = bad ? rc_errf(err, errlen, "posix_spawn: out of memory") : spawn(argv, &fa, &pid, err, errlen);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) return -1;
    return wait_child(pid, status, argv[0], err, errlen);
}

int rc_proc_first_line(char *const argv[], char *line, size_t n, char *err, size_t errlen)
{
    if (n) line[0] = 0;
    if (!argv || !argv[0]) return rc_errf(err, errlen, "no program to run");
    int fd[2];
    if (pipe2(fd, O_CLOEXEC)) return rc_errf(err, errlen, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa)) {
        close(fd[0]);
        close(fd[1]);
        return rc_errf(err, errlen, "posix_spawn: out of memory");
    }
    /* dup2 clears FD_CLOEXEC on the child's stdout; both pipe ends close at exec */
    int bad = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    bad |= posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    bad |= posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = bad ? rc_errf(err, errlen, "posix_spawn: out of memory") : spawn(argv, &fa, &pid, err, errlen);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (rc) { close(fd[0]); return -1; }
    /* read everything (so the child never dies of SIGPIPE), keep the first line */
    size_t have = 0;
    int eol = 0;
    char buf[512];
    for (;;) {
        ssize_t r = read(fd[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r && !eol; i++) {
            if (buf[i] == '\n' || buf[i] == '\r') { eol = 1; break; }
            if (have + 1 < n) line[have++] = buf[i];
        }
    }
    if (n) line[have < n ? have : n - 1] = 0;
    close(fd[0]);
    int status;
    if (wait_child(pid, &status, argv[0], err, errlen)) return -1;
    if (status != 0) return rc_errf(err, errlen, "'%s' exited with status %d", argv[0], status);
    return 0;
}
