/* progress_ui.c — the progress line of the long commands (semantics in progress_ui.h). */
#include "progress_ui.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"

void cli_fmt_eta(double s, char *buf, int n)
{
    if (!isfinite(s) || s < 0) { snprintf(buf, (size_t)n, "--:--"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, (size_t)n, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, (size_t)n, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_init(cli_progress *c, const char *cmd, int quiet)
{
    memset(c, 0, sizeof *c);
    c->cmd = cmd;
    c->out = stderr;
    c->min_plain_s = 2.0;
    c->quiet = quiet;
    c->tty = isatty(2);
}

void cli_progress_end(cli_progress *c)
{
    if (c->tty && c->shown) fputs("\r\033[K", c->out);
    c->shown = 0;
}

static void on_progress(void *vctx, const char *stage, int64_t done, int64_t total)
{
    cli_progress *c = vctx;
    if (c->quiet || total <= 0) return;
    double now = rc_clock_s();
    if (strncmp(c->stage, stage ? stage : "", sizeof c->stage - 1) || done == 0) {
        snprintf(c->stage, sizeof c->stage, "%.63s", stage ? stage : "");
        c->t0 = now;
        c->last = 0;
        c->quarter = 0;
    }
    if (done > total) done = total;
    double el = now - c->t0, frac = (double)done / (double)total;
    char eta[32];
    cli_fmt_eta(done > 0 ? el / (double)done * (double)(total - done) : NAN, eta, sizeof eta);
    if (c->tty) {
        if (done == total) { cli_progress_end(c); return; }
        if (now - c->last < 0.1) return;
        c->last = now;
        enum { W = 20 };
        char bar[W + 1];
        for (int i = 0; i < W; i++) bar[i] = i < (int)(frac * W) ? '#' : '-';
        bar[W] = 0;
        fprintf(c->out, "\r\033[Kretinac %s: %s [%s] %3.0f%% %lld/%lld ETA %s", c->cmd, c->stage, bar,
                100 * frac, (long long)done, (long long)total, eta);
        fflush(c->out);
        c->shown = 1;
        return;
    }
    /* plain lines only for a stage that lasts: short work stays quiet in logs */
    if (el < c->min_plain_s) return;
    int q = (int)(frac * 4);
    if (q <= c->quarter) return;
    c->quarter = q;
    if (done == total)
        fprintf(c->out, "retinac %s: %s: %lld/%lld done in %.1f s\n", c->cmd, c->stage,
                (long long)done, (long long)total, el);
    else
        fprintf(c->out, "retinac %s: %s: %lld/%lld (%.0f%%), ETA %s\n", c->cmd, c->stage,
                (long long)done, (long long)total, 100 * frac, eta);
}

rc_progress cli_progress_hook(cli_progress *c)
{
    rc_progress p = {on_progress, c};
    return p;
}
