/* figures.c — the figures of `retinac report`, each a draw function over what report_io.c read:
 * training curves, per-cell accuracy, receptive fields, interneuron matches, the phenomena
 * battery and a search's loss landscape.
 *
 * Invariants: a figure draws only what its inputs hold (a run without a validation column gets
 * no validation line, never a line of zeros); every axis says what it shows and in which units;
 * runs keep one colour across figures (their order on the command line); the simulated retina
 * is black, models take the palette in order. Receptive-field maps are each scaled to their own
 * largest |value| on a diverging map centred on zero (red ON, blue OFF).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot.h"
#include "report_int.h"

/* Page fractions of panel (r, c) in an R x C grid, leaving room for tick labels and titles. */
static void grid_cell(int r, int c, int R, int C, double left, double bottom, double top,
                      double *x0, double *x1, double *y0, double *y1)
{
    double right = 0.03, hgap = 0.1, vgap = 0.12;
    double w = (1 - left - right - (C - 1) * hgap) / C;
    double h = (1 - bottom - top - (R - 1) * vgap) / R;
    *x0 = left + c * (w + hgap);
    *x1 = *x0 + w;
    *y1 = 1 - top - r * (h + vgap);
    *y0 = *y1 - h;
}

/* ---------------------------------------------------------------- training curves */

typedef struct {
    rep_run *const *runs;
    int n;
} runs_ctx;

static const double *log_col(const rep_log *l, int k)
{
    return k == 0 ? l->train_loss : k == 1 ? l->val_loss : k == 2 ? l->val_r : l->lr;
}

static int draw_training(void *vctx)
{
    const runs_ctx *c = vctx;
    static const char *const titles[4] = {"Training loss", "Validation loss", "Validation r",
                                          "Learning rate"};
    static const char *const ylabs[4] = {"loss (per sample and cell)", "loss (per sample and cell)",
                                         "mean r over cells", "learning rate"};
    const char *labels[16];
    int colors[16], nl = 0;
    for (int k = 0; k < 4; k++) {
        double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
        int hx = 0, hy = 0;
        for (int i = 0; i < c->n; i++) {
            const rep_log *l = &c->runs[i]->log;
            if (!c->runs[i]->has_log) continue;
            rc_plot_extend(l->epoch, l->n, &xlo, &xhi, &hx);
            rc_plot_extend(log_col(l, k), l->n, &ylo, &yhi, &hy);
        }
        if (!hx) { xlo = 1; xhi = 2; }
        if (xhi - xlo < 1) xhi = xlo + 1;
        rc_plot_pad(&ylo, &yhi);
        xlo -= 0.02 * (xhi - xlo);
        xhi += 0.02 * (xhi - xlo);
        double x0, x1, y0, y1;
        grid_cell(k / 2, k % 2, 2, 2, 0.1, 0.09, 0.06, &x0, &x1, &y0, &y1);
        rc_plot_panel(x0, x1, y0, y1, xlo, xhi, ylo, yhi, "epoch", ylabs[k], titles[k]);
        for (int i = 0; i < c->n; i++) {
            const rep_log *l = &c->runs[i]->log;
            if (!c->runs[i]->has_log) continue;
            rc_plot_line(l->n, l->epoch, log_col(l, k), rc_plot_series(i), 0, 2);
            rc_plot_points(l->n, l->epoch, log_col(l, k), rc_plot_series(i));
        }
        if (k == 0)
            for (int i = 0; i < c->n && nl < 16; i++)
                if (c->runs[i]->has_log) {
                    labels[nl] = c->runs[i]->name;
                    colors[nl++] = rc_plot_series(i);
                }
        if (k == 0) rc_plot_legend(nl, labels, colors, NULL, 0);
    }
    return 0;
}

int rep_fig_training(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                     size_t errlen)
{
    runs_ctx c = {runs, n};
    return rc_plot_render(dir, name, 1000, 700, draw_training, &c, err, errlen);
}

/* ---------------------------------------------------------------- per-cell accuracy */

static int draw_cells(void *vctx)
{
    const runs_ctx *c = vctx;
    int ncell = 0, nm = 0;
    for (int i = 0; i < c->n; i++)
        if (c->runs[i]->has_metrics && c->runs[i]->metrics.n_cells > 0) {
            nm++;
            if (c->runs[i]->metrics.n_cells > ncell) ncell = c->runs[i]->metrics.n_cells;
        }
    double bw = 0.8 / (nm ? nm : 1);
    for (int k = 0; k < 2; k++) {
        double lo = 0, hi = k == 0 ? 1 : 0.5;
        int have = 1;
        for (int i = 0; i < c->n; i++) {
            const rep_metrics *m = &c->runs[i]->metrics;
            if (!c->runs[i]->has_metrics) continue;
            rc_plot_extend(k == 0 ? m->r : m->feve, m->n_cells, &lo, &hi, &have);
            if (k == 0) rc_plot_extend(m->ceiling, m->n_cells, &lo, &hi, &have);
        }
        if (lo > 0) lo = 0;
        rc_plot_pad(&lo, &hi);
        if (lo > 0) lo = 0;
        double x0, x1, y0, y1;
        grid_cell(k, 0, 2, 1, 0.09, 0.09, 0.06, &x0, &x1, &y0, &y1);
        rc_plot_panel(x0, x1, y0, y1, -0.6, ncell - 0.4, lo, hi, "cell (index in the recording's list)",
                      k == 0 ? "correlation r" : "FEVe",
                      k == 0 ? "Test r per cell (black: split-half noise ceiling)"
                             : "Fraction of explainable variance explained (test)");
        rc_plot_hline(0, RC_PLOT_GREY, 0);
        int j = 0;
        const char *labels[17];
        int colors[17], dashed[17], nl = 0;
        for (int i = 0; i < c->n; i++) {
            const rep_metrics *m = &c->runs[i]->metrics;
            if (!c->runs[i]->has_metrics || m->n_cells == 0) continue;
            double *x = malloc((size_t)m->n_cells * sizeof *x);
            if (!x) return rc_plot_fail("out of memory");
            for (int q = 0; q < m->n_cells; q++) x[q] = q - 0.4 + bw * (j + 0.5);
            rc_plot_bars(m->n_cells, x, k == 0 ? m->r : m->feve, bw * 0.9, rc_plot_series(i));
            free(x);
            if (nl < 16) {
                labels[nl] = c->runs[i]->name;
                colors[nl] = rc_plot_series(i);
                dashed[nl++] = 0;
            }
            j++;
        }
        if (k == 0) {
            /* the ceiling: the first run's (it depends only on the recording) */
            for (int i = 0; i < c->n; i++) {
                const rep_metrics *m = &c->runs[i]->metrics;
                if (!c->runs[i]->has_metrics || m->n_cells == 0) continue;
                for (int q = 0; q < m->n_cells; q++) {
                    double xs[2] = {q - 0.45, q + 0.45}, ys[2] = {m->ceiling[q], m->ceiling[q]};
                    rc_plot_line(2, xs, ys, RC_PLOT_BLACK, 0, 3);
                }
                break;
            }
            labels[nl] = "noise ceiling";
            colors[nl] = RC_PLOT_BLACK;
            dashed[nl++] = 0;
        }
        rc_plot_legend(nl, labels, colors, dashed, 1);
    }
    return 0;
}

int rep_fig_cells(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                  size_t errlen)
{
    runs_ctx c = {runs, n};
    return rc_plot_render(dir, name, 1000, 720, draw_cells, &c, err, errlen);
}

/* ---------------------------------------------------------------- predictions */

#define PRED_BINS 500      /* the first 5 s of the test split */
#define PRED_CELLS 8

/* The first run with traces sets the recording; runs on another recording are not drawn. */
static int same_recording(const rep_run *a, const rep_run *b)
{
    return b->has_traces && b->traces.cells == a->traces.cells && b->traces.n == a->traces.n &&
           !strcmp(a->traces.data, b->traces.data);
}

static int draw_pred(void *vctx)
{
    const runs_ctx *c = vctx;
    const rep_run *ref = NULL;
    for (int i = 0; i < c->n && !ref; i++)
        if (c->runs[i]->has_traces) ref = c->runs[i];
    if (!ref) return rc_plot_fail("no predictions to draw");
    const rep_traces *t = &ref->traces;
    int nb = t->n < PRED_BINS ? (int)t->n : PRED_BINS;
    int ncell = t->cells < PRED_CELLS ? t->cells : PRED_CELLS;
    int C = ncell < 4 ? ncell : 4, R = (ncell + C - 1) / C;
    double *x = malloc((size_t)nb * sizeof *x), *y = malloc((size_t)nb * sizeof *y);
    if (!x || !y) { free(x); free(y); return rc_plot_fail("out of memory"); }
    for (int b = 0; b < nb; b++) x[b] = b * 0.01;
    for (int k = 0; k < ncell; k++) {
        double lo = 0, hi = 1;
        int have = 0;
        for (int i = 0; i < c->n; i++) {
            const rep_run *r = c->runs[i];
            if (!same_recording(ref, r)) continue;
            for (int b = 0; b < nb; b++) y[b] = r->traces.pred[(size_t)b * t->cells + k];
            rc_plot_extend(y, nb, &lo, &hi, &have);
        }
        for (int b = 0; b < nb; b++) y[b] = t->rate[(size_t)b * t->cells + k];
        rc_plot_extend(y, nb, &lo, &hi, &have);
        if (lo > 0) lo = 0;
        rc_plot_pad(&lo, &hi);
        double x0, x1, y0, y1;
        char title[48];
        snprintf(title, sizeof title, "cell %d", k);
        grid_cell(k / C, k % C, R, C, 0.08, 0.1, 0.1, &x0, &x1, &y0, &y1);
        rc_plot_panel(x0, x1, y0, y1, 0, (nb - 1) * 0.01, lo, hi, k / C == R - 1 ? "test time (s)" : "",
                      k % C == 0 ? "rate (Hz)" : "", title);
        rc_plot_line(nb, x, y, RC_PLOT_BLACK, 0, 2.2);
        for (int i = 0; i < c->n; i++) {
            const rep_run *r = c->runs[i];
            if (!same_recording(ref, r)) continue;
            for (int b = 0; b < nb; b++) y[b] = r->traces.pred[(size_t)b * t->cells + k];
            rc_plot_line(nb, x, y, rc_plot_series(i), 0, 1.5);
        }
        if (k == 0) {
            const char *labels[17];
            int colors[17], n = 0;
            labels[n] = "recorded (trial average)";
            colors[n++] = RC_PLOT_BLACK;
            for (int i = 0; i < c->n && n < 17; i++)
                if (same_recording(ref, c->runs[i])) {
                    labels[n] = c->runs[i]->name;
                    colors[n++] = rc_plot_series(i);
                }
            rc_plot_page_legend(1 - 0.025 * 1000 / (260 * R + 80), n, labels, colors);
        }
    }
    free(x);
    free(y);
    return 0;
}

int rep_fig_pred(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                 size_t errlen)
{
    runs_ctx c = {runs, n};
    int cells = 0;
    for (int i = 0; i < n && !cells; i++)
        if (runs[i]->has_traces) cells = runs[i]->traces.cells;
    if (cells > PRED_CELLS) cells = PRED_CELLS;
    int R = (cells + 3) / 4;
    return rc_plot_render(dir, name, 1200, 260 * R + 80, draw_pred, &c, err, errlen);
}

/* ---------------------------------------------------------------- receptive fields */

#define RF_COLS 4

static int draw_rf(void *vctx)
{
    const rep_rf *r = &((const rep_run *)vctx)->rf;
    int C = r->cells < RF_COLS ? r->cells : RF_COLS, R = (r->cells + C - 1) / C;
    size_t hw = (size_t)r->h * (size_t)r->w;
    float *norm = malloc(hw * sizeof *norm);
    double *tx = malloc((size_t)r->history * sizeof *tx), *ty = malloc((size_t)r->history * sizeof *ty);
    if (!norm || !tx || !ty) { free(norm); free(tx); free(ty); return rc_plot_fail("out of memory"); }
    for (int t = 0; t < r->history; t++) tx[t] = -10.0 * (r->history - t);   /* ms before the bin */
    double left = 0.04, right = 0.1, top = 0.07, bottom = 0.02;
    double sw = (1 - left - right) / C, sh = (1 - top - bottom) / R;
    for (int i = 0; i < r->cells; i++) {
        int row = i / C, col = i % C;
        double x0 = left + col * sw, y1 = 1 - top - row * sh;
        const float *s = r->spatial + (size_t)i * hw;
        double m = 0;
        for (size_t p = 0; p < hw; p++)
            if (isfinite(s[p]) && fabs(s[p]) > m) m = fabs(s[p]);
        /* The rank-1 factors' signs are arbitrary (only their product is the STA): flip both
         * so that the map's peak has the cell's polarity (red ON, blue OFF). */
        int pk = 0;
        for (size_t p = 0; p < hw; p++)
            if (isfinite(s[p]) && fabs(s[p]) > fabs(s[pk])) pk = (int)p;
        double flip = (s[pk] < 0) == (r->polarity[i] < 0) ? 1 : -1;
        for (size_t p = 0; p < hw; p++) norm[p] = m > 0 ? (float)(flip * s[p] / m) : 0.f;
        char title[96];
        snprintf(title, sizeof title, "cell %d %s", r->cell_ids[i],
                 r->polarity[i] > 0 ? "(ON)" : r->polarity[i] < 0 ? "(OFF)" : "");
        rc_plot_map_panel(x0 + 0.1 * sw, x0 + 0.95 * sw, y1 - 0.62 * sh, y1 - 0.06 * sh, r->w, r->h, title);
        rc_plot_heat(r->w, r->h, norm, 1.0);
        /* the fitted centre and RMS radius (row down, col right; y is up in the window) */
        double cy = r->h - (r->center[2 * i] + 0.5), cx = r->center[2 * i + 1] + 0.5;
        rc_plot_circle(cx, cy, r->sigma[i], RC_PLOT_BLACK);
        const float *k = r->temporal + (size_t)i * r->history;
        double lo = 0, hi = 0;
        int have = 0;
        for (int t = 0; t < r->history; t++) ty[t] = flip * k[t];
        rc_plot_extend(ty, r->history, &lo, &hi, &have);
        if (lo > 0) lo = 0;
        if (hi < 0) hi = 0;
        rc_plot_pad(&lo, &hi);
        rc_plot_panel_x(x0 + 0.1 * sw, x0 + 0.95 * sw, y1 - 0.88 * sh, y1 - 0.7 * sh, tx[0] - 5, 0, lo,
                        hi, row == R - 1 ? "lag (ms)" : "", "kernel", "", RC_PLOT_NO_YNUM, 100);
        rc_plot_hline(0, RC_PLOT_GREY, 1);
        rc_plot_line(r->history, tx, ty, rc_plot_series(0), 0, 2);
    }
    rc_plot_colorbar(1 - right + 0.02, 1 - right + 0.04, 0.3, 0.7, 1.0,
                     "STA / max |STA| of the cell");
    char head[160];
    snprintf(head, sizeof head, "Receptive fields (%s STA): spatial map and temporal kernel; circle: centre and RMS radius",
             r->method);
    rc_plot_page_text(0.5, 1 - 0.6 * top, 0.5, 0.9, head);
    free(norm);
    free(tx);
    free(ty);
    return 0;
}

int rep_fig_rf(const char *dir, const char *name, const rep_run *run, char *err, size_t errlen)
{
    const rep_rf *r = &run->rf;
    if (r->cells <= 0) return 0;
    int C = r->cells < RF_COLS ? r->cells : RF_COLS, R = (r->cells + C - 1) / C;
    return rc_plot_render(dir, name, 250 * C + 140, 330 * R + 50, draw_rf, (void *)run, err, errlen);
}

/* ---------------------------------------------------------------- interneurons */

static int draw_intr(void *vctx)
{
    const rep_run *run = vctx;
    const rep_intr *r = &run->intr;
    int L = r->layers;
    double bw = 0.8 / (L ? L : 1);
    double lo = 0, hi = 1;
    int have = 1;
    for (size_t i = 0; i < (size_t)r->cells * L; i++) rc_plot_extend(&r->best[i * 5 + 4], 1, &lo, &hi, &have);
    if (lo < 0) lo -= 0.05;
    rc_plot_panel(0.09, 0.97, 0.14, 0.9, -0.6, r->cells - 0.4, lo, hi, "recorded interneuron (index)",
                  "r of the best-matching unit", "Interneurons: the best model unit per cell and layer");
    double *x = malloc((size_t)r->cells * sizeof *x), *y = malloc((size_t)r->cells * sizeof *y);
    if (!x || !y) { free(x); free(y); return rc_plot_fail("out of memory"); }
    const char *labels[8];
    int colors[8];
    char names[8][32];
    for (int l = 0; l < L; l++) {
        for (int c = 0; c < r->cells; c++) {
            x[c] = c - 0.4 + bw * (l + 0.5);
            y[c] = r->best[((size_t)c * L + l) * 5 + 4];
        }
        rc_plot_bars(r->cells, x, y, bw * 0.9, rc_plot_series(l));
        if (l < 8) {
            double layer = r->best[(size_t)l * 5];
            snprintf(names[l], sizeof names[l], "layer %.0f", isfinite(layer) ? layer : l + 1.0);
            labels[l] = names[l];
            colors[l] = rc_plot_series(l);
        }
    }
    rc_plot_legend(L < 8 ? L : 8, labels, colors, NULL, 0);
    free(x);
    free(y);
    return 0;
}

int rep_fig_intr(const char *dir, const char *name, const rep_run *run, char *err, size_t errlen)
{
    if (run->intr.cells <= 0 || run->intr.layers <= 0) return 0;
    return rc_plot_render(dir, name, 1000, 450, draw_intr, (void *)run, err, errlen);
}

#define MAP_COLS 6

static int draw_intr_maps(void *vctx)
{
    const rep_intr *r = &((const rep_run *)vctx)->intr;
    int C = r->cells < MAP_COLS ? r->cells : MAP_COLS, R = (r->cells + C - 1) / C;
    double left = 0.02, right = 0.08, top = 0.08, bottom = 0.02;
    double sw = (1 - left - right) / C, sh = (1 - top - bottom) / R;
    rc_plot_text_scale(0.85);
    for (int c = 0; c < r->cells; c++) {
        /* the best unit over the layers */
        int bl = 0;
        for (int l = 1; l < r->layers; l++)
            if (r->best[((size_t)c * r->layers + l) * 5 + 4] > r->best[((size_t)c * r->layers + bl) * 5 + 4]) bl = l;
        const double *b = &r->best[((size_t)c * r->layers + bl) * 5];
        int ch = (int)b[1], h = r->lay_h[bl], w = r->lay_w[bl];
        if (ch < 0 || ch >= r->lay_c[bl]) return rc_plot_fail("interneuron %d: channel %d outside the layer", c, ch);
        const float *m = r->maps + (size_t)c * r->map_len + r->lay_off[bl] + (size_t)ch * h * w;
        double zl = 0;
        for (int i = 0; i < h * w; i++)
            if (isfinite(m[i]) && fabs(m[i]) > zl) zl = fabs(m[i]);
        int row = c / C, col = c % C;
        double x0 = left + col * sw, y1 = 1 - top - row * sh;
        char title[96];
        snprintf(title, sizeof title, "cell %d, L%.0f ch %d, r %.2f", c, b[0], ch, b[4]);
        rc_plot_map_panel(x0 + 0.05 * sw, x0 + 0.95 * sw, y1 - 0.92 * sh, y1 - 0.12 * sh, w, h, title);
        rc_plot_heat(w, h, m, zl > 0 ? zl : 1);
        rc_plot_circle(b[3] + 0.5, h - (b[2] + 0.5), 1.2, RC_PLOT_BLACK);
    }
    rc_plot_page_text(0.5, 1 - 0.45 * top, 0.5, 0.9,
                      "Correlation of each model unit with the recorded interneuron: the best unit's channel");
    return 0;
}

int rep_fig_intr_maps(const char *dir, const char *name, const rep_run *run, char *err,
                      size_t errlen)
{
    const rep_intr *r = &run->intr;
    if (!r->maps || r->cells <= 0) return 0;
    int C = r->cells < MAP_COLS ? r->cells : MAP_COLS, R = (r->cells + C - 1) / C;
    return rc_plot_render(dir, name, 215 * C + 40, 225 * R + 40, draw_intr_maps, (void *)run, err, errlen);
}

/* ---------------------------------------------------------------- phenomena */

static int source_color(const rep_phen *p, int i)
{
    if (p->src[i].is_retina) return RC_PLOT_BLACK;
    int k = 0;
    for (int j = 0; j < i; j++) k += !p->src[j].is_retina;
    return rc_plot_series(k);
}

static int draw_phen(void *vctx)
{
    const rep_phen *p = vctx;
    for (int k = 0; k < REP_PHEN_PANELS; k++) {
        double xlo = 0, xhi = 1, ylo = 0, yhi = 1;
        int hx = 0, hy = 0;
        for (int i = 0; i < p->n_sources; i++) {
            const rep_trace *t = &p->src[i].panel[k];
            rc_plot_extend(t->x, t->n, &xlo, &xhi, &hx);
            rc_plot_extend(t->y, t->n, &ylo, &yhi, &hy);
            rc_plot_extend(t->x2, t->n2, &xlo, &xhi, &hx);
            rc_plot_extend(t->y2, t->n2, &ylo, &yhi, &hy);
        }
        if (xhi - xlo <= 0) xhi = xlo + 1;
        rc_plot_pad(&ylo, &yhi);
        double x0, x1, y0, y1;
        grid_cell(k / 3, k % 3, 3, 3, 0.1, 0.07, 0.04, &x0, &x1, &y0, &y1);
        rc_plot_panel(x0, x1, y0, y1, xlo, xhi, ylo, yhi, rep_phen_panels[k].xlab,
                      rep_phen_panels[k].ylab, hx ? rep_phen_panels[k].title : "(not computed)");
        for (int i = 0; i < p->n_sources; i++) {
            const rep_trace *t = &p->src[i].panel[k];
            int col = source_color(p, i);
            double w = p->src[i].is_retina ? 2.5 : 1.8;
            rc_plot_line(t->n, t->x, t->y, col, 0, w);
            rc_plot_line(t->n2, t->x2, t->y2, col, 1, w);
        }
        if (k == 0) {
            const char *labels[16];
            int colors[16], n = 0;
            for (int i = 0; i < p->n_sources && n < 16; i++) {
                labels[n] = p->src[i].is_retina ? "simulated retina" : p->src[i].name;
                colors[n++] = source_color(p, i);
            }
            rc_plot_legend(n, labels, colors, NULL, 0);
        }
    }
    return 0;
}

int rep_fig_phen(const char *dir, const char *name, const rep_phen *p, char *err, size_t errlen)
{
    return rc_plot_render(dir, name, 1300, 1000, draw_phen, (void *)p, err, errlen);
}

/* ---------------------------------------------------------------- search */

#define SEARCH_COLS 3

static int draw_search(void *vctx)
{
    const rep_search *s = &((const rep_run *)vctx)->search;
    int C = s->n_dims < SEARCH_COLS ? s->n_dims : SEARCH_COLS, R = (s->n_dims + C - 1) / C;
    double *x = malloc((size_t)(s->n ? s->n : 1) * sizeof *x);
    if (!x) return rc_plot_fail("out of memory");
    double ylo = 0, yhi = 1;
    int hy = 0;
    rc_plot_extend(s->val_loss, s->n, &ylo, &yhi, &hy);
    rc_plot_pad(&ylo, &yhi);
    for (int d = 0; d < s->n_dims; d++) {
        /* a string dimension: its distinct values in order of appearance at 0, 1, ... */
        int is_text = 0, nd = 0, first[64];
        for (int i = 0; i < s->n; i++) is_text |= !isfinite(s->values[(size_t)i * s->n_dims + d]);
        for (int i = 0; i < s->n; i++) {
            if (!is_text) { x[i] = s->values[(size_t)i * s->n_dims + d]; continue; }
            const char *v = s->svalues[(size_t)i * s->n_dims + d];
            int j = 0;
            while (j < nd && strcmp(s->svalues[(size_t)first[j] * s->n_dims + d], v)) j++;
            if (j == nd && nd < 64) first[nd++] = i;
            x[i] = j;
        }
        double xlo = 0, xhi = 1;
        int hx = 0;
        rc_plot_extend(x, s->n, &xlo, &xhi, &hx);
        if (is_text) { xlo = -0.5; xhi = nd - 0.5; }
        else rc_plot_pad(&xlo, &xhi);
        double x0, x1, y0, y1;
        grid_cell(d / C, d % C, R, C, 0.1, 0.12, 0.07, &x0, &x1, &y0, &y1);
        rc_plot_panel_x(x0, x1, y0, y1, xlo, xhi, ylo, yhi, s->dims[d], "best validation loss", "",
                        is_text ? RC_PLOT_NO_XNUM : 0, 0);
        rc_plot_points(s->n, x, s->val_loss, rc_plot_series(0));
        if (is_text)
            for (int j = 0; j < nd; j++)
                rc_plot_xlabel_at(j, s->svalues[(size_t)first[j] * s->n_dims + d]);
    }
    free(x);
    rc_plot_page_text(0.5, 0.96, 0.5, 1.0, "Search: best validation loss of each trial against each searched setting");
    return 0;
}

int rep_fig_search(const char *dir, const char *name, const rep_run *run, char *err, size_t errlen)
{
    const rep_search *s = &run->search;
    if (s->n_dims <= 0 || s->n <= 0) return 0;
    int C = s->n_dims < SEARCH_COLS ? s->n_dims : SEARCH_COLS, R = (s->n_dims + C - 1) / C;
    return rc_plot_render(dir, name, 380 * C + 100, 330 * R + 60, draw_search, (void *)run, err, errlen);
}
