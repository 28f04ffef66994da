/* test_progress.c — the progress line of the long commands (cli/progress_ui.c, fed through
 * rc_progress of common/progress.h):
 *   - not a terminal: one plain line at each quarter and one at the end of a stage, none for a
 *     stage shorter than the threshold, nothing with --quiet; a new stage starts its own count;
 *   - a terminal: one line redrawn in place (carriage return + erase) with a bar, the count and
 *     an ETA, erased at the end of the stage;
 *   - end to end: `retinac synth` under a pseudo-terminal draws that line; through a pipe it
 *     prints plain lines only (no carriage return), and nothing with --quiet.
 */
#include <criterion/criterion.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kit.h"
#include "../cli/progress_ui.c"

static char *drive(int tty, int quiet, double min_plain, int steps)
{
    cli_progress c;
    cli_progress_init(&c, "test", quiet);
    char *buf = NULL;
    size_t len = 0;
    c.out = open_memstream(&buf, &len);
    cr_assert(c.out);
    c.tty = tty;
    c.min_plain_s = min_plain;
    rc_progress p = cli_progress_hook(&c);
    for (int k = 0; k <= steps; k++) {
        rc_progress_report(&p, "stage one", k, steps);
        if (tty) usleep(110000);   /* past the 0.1 s redraw interval */
    }
    rc_progress_report(&p, "stage two", 0, 2);
    rc_progress_report(&p, "stage two", 2, 2);
    cli_progress_end(&c);
    fclose(c.out);
    return buf;
}

static int count(const char *s, const char *what)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

Test(progress, plain_lines_at_quarters_and_the_end)
{
    char *s = drive(0, 0, 0, 20);
    cr_assert_eq(count(s, "\n"), 5, "4 lines for stage one, 1 for stage two:\n%s", s);
    cr_assert(strstr(s, "retinac test: stage one: 5/20 (25%), ETA "), "%s", s);
    cr_assert(strstr(s, "retinac test: stage one: 15/20 (75%), ETA "), "%s", s);
    cr_assert(strstr(s, "retinac test: stage one: 20/20 done in "), "%s", s);
    cr_assert(strstr(s, "retinac test: stage two: 2/2 done in "), "%s", s);
    cr_assert_null(strchr(s, '\r'), "no carriage return off a terminal");
    free(s);
    s = drive(0, 0, 2.0, 20);   /* a stage of a few microseconds: under the 2 s threshold */
    cr_assert_str_empty(s, "short work prints nothing: %s", s);
    free(s);
    s = drive(0, 1, 0, 20);
    cr_assert_str_empty(s, "--quiet prints nothing: %s", s);
    free(s);
}

Test(progress, terminal_line_redrawn_in_place_and_erased)
{
    char *s = drive(1, 0, 0, 4);
    cr_assert(count(s, "\r\033[Kretinac test: stage one [") >= 3, "%s", s);
    cr_assert(strstr(s, "ETA "), "%s", s);
    cr_assert(strstr(s, "2/4"), "%s", s);
    cr_assert_null(strchr(s, '\n'), "a terminal line is never a new line");
    size_t n = strlen(s);
    cr_assert(n >= 4 && strcmp(s + n - 4, "\r\033[K") == 0, "the line is erased at the end");
    free(s);
    s = drive(1, 1, 0, 4);
    cr_assert_str_empty(s);
    free(s);
}

/* retinac under a pseudo-terminal (its stderr a tty), no shell: forkpty + execv. */
Test(progress, synth_draws_the_line_on_a_terminal_and_nothing_through_a_pipe)
{
    char dir[256];
    kit_tmpdir(dir, sizeof dir, "rc_progress");
    char out[600];
    snprintf(out, sizeof out, "%s/s.h5", dir);
    int master;
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert(pid >= 0);
    if (pid == 0) {
        char *const argv[] = {RC_BIN, "synth", "-o", out, "--frames", "8000", "--cells", "3",
                              "--calib-frames", "500", NULL};
        execv(RC_BIN, argv);
        _exit(127);
    }
    char *buf = malloc(1 << 20);
    size_t len = 0;
    for (;;) {
        ssize_t k = read(master, buf + len, (1 << 20) - 1 - len);
        if (k <= 0) break;   /* EIO once the child has exited */
        len += (size_t)k;
    }
    buf[len] = 0;
    int st;
    waitpid(pid, &st, 0);
    close(master);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "synth: %s", buf);
    cr_assert(strstr(buf, "\r\033[Kretinac synth: train ["), "no progress line on a terminal: %.400s", buf);
    cr_assert(strstr(buf, "ETA"), "%.400s", buf);
    cr_assert(strstr(buf, "wrote "), "%.400s", buf);
    free(buf);

    /* through a pipe: plain lines only (how many depends on the machine's speed: a stage under
     * 2 s prints none), never the terminal's carriage return; --quiet: nothing at all */
    kit_out r = kit_rc("synth -o %s --frames 3000 --cells 3 --calib-frames 500", out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_null(strchr(r.err, '\r'), "a pipe gets no redrawn line: %s", r.err);
    cr_assert_null(strstr(r.err, "\033[K"), "%s", r.err);
    cr_assert(strstr(r.err, "retinac synth: wrote "), "%s", r.err);
    kit_out_free(&r);
    r = kit_rc("synth -o %s --frames 3000 --cells 3 --calib-frames 500 --quiet", out);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_empty(r.err, "--quiet: %s", r.err);
    kit_out_free(&r);
    kit_cleanup();
}
