/* progress_ui.h — the progress line of the long commands (synth, rf, phenomena, interneurons,
 * bench), fed by rc_progress (common/progress.h).
 *
 * On a terminal (stderr is a tty): one line, redrawn at most every 0.1 s, "retinac rf: gradient
 * STA [#####-----] 52% 1064/2048 ETA 0:07", erased when the stage ends (the command's own output
 * follows). Otherwise: plain lines at 25%, 50%, 75% and the end of each stage that has run for
 * at least 2 s, with the ETA and the stage's time, so a log file shows where a long run is
 * without a line per batch (and short work prints nothing).
 * --quiet: nothing. The ETA is the stage's elapsed time per unit times the units left.
 */
#ifndef RC_CLI_PROGRESS_UI_H
#define RC_CLI_PROGRESS_UI_H
#include <stdint.h>
#include <stdio.h>
#include "progress.h"

typedef struct {
    const char *cmd;
    FILE *out;            /* stderr */
    double min_plain_s;   /* plain lines only once a stage has run this long (2 s) */
    int tty, quiet;
    char stage[64];
    double t0, last;
    int quarter;          /* plain mode: the last quarter printed */
    int shown;            /* tty: a line is on screen */
} cli_progress;

void cli_progress_init(cli_progress *c, const char *cmd, int quiet);
/* The hook to put in a library's options. */
rc_progress cli_progress_hook(cli_progress *c);
/* Erase a line still on screen (before the command prints its result or an error). */
void cli_progress_end(cli_progress *c);
/* "m:ss" or "h:mm:ss"; "--:--" for an unknown time. */
void cli_fmt_eta(double s, char *buf, int n);

#endif
