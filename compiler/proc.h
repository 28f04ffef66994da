/* proc.h — start another program without a shell.
 *
 * retinac starts one kind of external program: the system C compiler (jit.c). It is started by
 * posix_spawnp over an argument vector, never through /bin/sh, so no path, flag or environment
 * value is ever parsed as shell syntax: a quote, a space, `$(...)` or `;` in RETINAC_CACHE_DIR
 * or in a file name is just a character of that path.
 *
 * $CC and $CFLAGS may hold several words ("ccache gcc", "-O1 -g"): rc_proc_split cuts them at
 * blanks (space, tab, newline) and nothing else — no quotes, escapes, globs or variables.
 *
 * Errors: 0 / -1 with one line in err; nothing prints. The child's stdin is /dev/null.
 */
#ifndef RC_PROC_H
#define RC_PROC_H

#include <stddef.h>

#define RC_PROC_MAX_ARGS 128

/* Split `words` at blanks into argv (NULL-terminated, at most max-1 words). The words are copied
 * into buf. Returns the number of words (0 for an all-blank string) or -1 when buf or argv is too
 * small. */
int rc_proc_split(const char *words, char **argv, int max, char *buf, size_t buflen);

/* Run argv[0] (searched in PATH) with stdout and stderr both written to log_path (created or
 * truncated, mode 0600; NULL = discarded) and wait for it. *status gets the exit code, or 128 +
 * the signal number when it was killed. Returns 0 when the program ran (whatever its status),
 * -1 when it could not be started (err says why, with errno's text). */
int rc_proc_run(char *const argv[], const char *log_path, int *status, char *err, size_t errlen);

/* Run argv and keep the first line of its stdout in line (stderr discarded); "" if it printed
 * nothing. Returns 0 when the program ran and exited 0, -1 otherwise (err says why). */
int rc_proc_first_line(char *const argv[], char *line, size_t n, char *err, size_t errlen);

#endif
