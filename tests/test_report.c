/* test_report.c — `retinac report` (report/): figures from inputs whose answers are known.
 *   - training curves: each run's line in every panel has one point per epoch of its log.csv;
 *   - per-cell accuracy: one bar per cell and panel in the run's colour;
 *   - a planted receptive field (a positive blob and a negative blob at known pixels) is drawn
 *     at its place with its polarity: the reddest heat cell of the SVG sits on the positive
 *     blob, the bluest on the negative one;
 *   - phenomena: the simulated retina is the black line, the model a colour, one point per
 *     frame of the trace;
 *   - PNGs have the PNG signature and the requested size; SVGs are SVG;
 *   - a run folder without some analyses gives a report that lists them with the command that
 *     makes them;
 *   - a corrupt or foreign HDF5 input fails with the file's name, leaves no report and no temp
 *     folder, and keeps a previous report byte for byte; an output that is not a report, or is
 *     an input, is refused;
 *   - index.html opened in headless Chromium: every figure loads (and a deleted figure is
 *     reported as not loaded, so the check can fail), and a screenshot is written.
 */
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5util.h"
#include "kit.h"

static char dir[256];

static void setup(void) { kit_tmpdir(dir, sizeof dir, "rc_report"); }
static void teardown(void) { kit_cleanup(); }

TestSuite(report, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------- inputs */

static void make_run(const char *run, int epochs, int cells, double r0)
{
    mkdir(run, 0777);
    char buf[4096];
    int n = snprintf(buf, sizeof buf, "epoch,train_loss,val_loss,val_r,lr,seconds,samples_per_s\n");
    for (int e = 1; e <= epochs; e++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%d,%g,%g,%g,0.001,1.5,100\n", e, -1.0 - 0.1 * e,
                      -0.9 - 0.05 * e, 0.2 + 0.05 * e);
    kit_write_text(kit_path(run, "log.csv"), buf);
    n = snprintf(buf, sizeof buf, "{\n  \"model\": \"m\",\n  \"test\": {\n    \"n_cells\": %d,\n"
                 "    \"mean_r\": %g, \"mean_ceiling\": 0.9, \"mean_feve\": 0.5,\n    \"cells\": [", cells, r0);
    for (int c = 0; c < cells; c++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s{\"cell\": %d, \"r\": %g, \"ceiling\": 0.9, \"feve\": %g}",
                      c ? ", " : "", c, r0 + 0.01 * c, 0.5 - 0.1 * c);
    snprintf(buf + n, sizeof buf - (size_t)n, "]\n  }\n}\n");
    kit_write_text(kit_path(run, "metrics.json"), buf);
}

#define RF_H 20
#define RF_W 30
#define RF_T 12

/* One cell: +blob at (5, 22), -blob at (14, 6) (row, col). */
static void make_rf(const char *path)
{
    static float sp[RF_H * RF_W], tm[RF_T];
    for (int r = 0; r < RF_H; r++)
        for (int c = 0; c < RF_W; c++) {
            double a = (r - 5) * (r - 5) + (c - 22) * (c - 22), b = (r - 14) * (r - 14) + (c - 6) * (c - 6);
            sp[r * RF_W + c] = (float)(exp(-a / 2.0) - 0.8 * exp(-b / 2.0));
        }
    for (int t = 0; t < RF_T; t++) tm[t] = (float)sin(t * 0.5);
    double center[2] = {5, 22}, sigma[1] = {1.5};
    int pol[1] = {1}, ids[1] = {3};
    rc_h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    int64_t d3[3] = {1, RF_H, RF_W}, d2[2] = {1, RF_T}, dc[2] = {1, 2}, d1[1] = {1};
    cr_assert_eq(rc_h5_write_all(f, "/grad/spatial", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, d3, sp), 0);
    cr_assert_eq(rc_h5_write_all(f, "/grad/temporal", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, d2, tm), 0);
    cr_assert_eq(rc_h5_write_all(f, "/grad/center", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, dc, center), 0);
    cr_assert_eq(rc_h5_write_all(f, "/grad/sigma", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, sigma), 0);
    cr_assert_eq(rc_h5_write_all(f, "/grad/polarity", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, pol), 0);
    cr_assert_eq(rc_h5_write_all(f, "/cell_ids", H5T_STD_I32LE, H5T_NATIVE_INT, 1, d1, ids), 0);
    H5Fclose(f);
}

#define PH_N 12

static void make_phen(const char *path)
{
    rc_h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    cr_assert_eq(rc_h5_attr_set_string(f, "/", "generator", "retinac phenomena"), 0);
    double y[PH_N];
    int64_t d1[1] = {PH_N};
    static const char *const src[2] = {"retina_s1", "tiny"};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < PH_N; i++) y[i] = (s + 1) * sin(i * 0.7);
        char key[64];
        snprintf(key, sizeof key, "/%s/step/response", src[s]);
        cr_assert_eq(rc_h5_write_all(f, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, d1, y), 0);
        snprintf(key, sizeof key, "/%s", src[s]);
        cr_assert_eq(rc_h5_attr_set_int64(f, key, "history", 40), 0);
        cr_assert_eq(rc_h5_attr_set_string(f, key, "model", s == 0 ? "synthetic retina" : "tiny"), 0);
    }
    H5Fclose(f);
}

/* ---------------------------------------------------------------- reading the output */

/* PNG signature and IHDR size. */
static void check_png(const char *path, int w, int h)
{
    size_t n;
    unsigned char *b = (unsigned char *)kit_read_file(path, &n);
    cr_assert(b, "%s missing", path);
    cr_assert(n > 1000, "%s: %zu bytes", path, n);
    cr_assert(memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0, "%s: not a PNG", path);
    int pw = (b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19];
    int ph = (b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23];
    if (w) cr_assert_eq(pw, w, "%s: width %d", path, pw);
    if (h) cr_assert_eq(ph, h, "%s: height %d", path, ph);
    free(b);
}

/* The polylines of a PLplot SVG: stroke, fill and points. PLplot hands a device at most 256
 * points per call, so a longer line arrives as pieces that share their joining point: those
 * are joined again here (same colours, the next piece starting where a full piece ended). */
typedef struct {
    char stroke[8], fill[8];
    int npts;
    double x[64], y[64];      /* the first 64 points */
    double lx, ly;            /* the last point */
    double width;
} svg_line;

static void svg_parse(const char *p, const char *end, svg_line *l)
{
    memset(l, 0, sizeof *l);
    const char *q;
    if ((q = strstr(p, "stroke=\"#")) && q < end) memcpy(l->stroke, q + 8, 7);
    if ((q = strstr(p, "fill=\"#")) && q < end) memcpy(l->fill, q + 6, 7);
    if ((q = strstr(p, "stroke-width=\"")) && q < end) l->width = strtod(q + 14, NULL);
    if ((q = strstr(p, "points=\"")) && q < end) {
        q += 8;
        char *e;
        for (;;) {
            double x = strtod(q, &e);
            if (e == q || *e != ',') break;
            double y = strtod(e + 1, &e);
            if (l->npts < 64) { l->x[l->npts] = x; l->y[l->npts] = y; }
            l->lx = x;
            l->ly = y;
            l->npts++;
            q = e;
            while (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r') q++;
        }
    }
}

static void svg_lines(const char *text, void (*fn)(const svg_line *, void *), void *ctx)
{
    const char *p = text;
    svg_line cur, next;
    int have = 0;
    while ((p = strstr(p, "<polyline"))) {
        const char *end = strstr(p, "/>");
        cr_assert(end);
        svg_parse(p, end, &next);
        p = end;
        if (have && cur.npts % 255 == 1 && cur.npts >= 256 && !strcmp(cur.stroke, next.stroke) &&
            !strcmp(cur.fill, next.fill) && next.npts > 0 && next.x[0] == cur.lx && next.y[0] == cur.ly) {
            for (int i = 1; i < next.npts && cur.npts < 64; i++) {   /* (only past 64 points here) */
                cur.x[cur.npts] = next.x[i];
                cur.y[cur.npts] = next.y[i];
            }
            cur.npts += next.npts - 1;
            cur.lx = next.lx;
            cur.ly = next.ly;
            continue;
        }
        if (have) fn(&cur, ctx);
        cur = next;
        have = 1;
    }
    if (have) fn(&cur, ctx);
}

typedef struct {
    const char *stroke;
    int npts, count;
} count_ctx;

static void count_stroked(const svg_line *l, void *v)
{
    count_ctx *c = v;
    if (!strcmp(l->stroke, c->stroke) && l->fill[0] == 0 && l->npts == c->npts) c->count++;
}

static void count_filled(const svg_line *l, void *v)
{
    count_ctx *c = v;
    if (!strcmp(l->fill, c->stroke)) c->count++;
}

static kit_out report(const char *fmt_out, const char *ins)
{
    return kit_rc("report %s -o %s", ins, fmt_out);
}

/* ---------------------------------------------------------------- tests */

Test(report, curves_and_bars_have_one_point_per_epoch_and_one_bar_per_cell)
{
    char a[512], b[512], ins[1100];
    snprintf(a, sizeof a, "%s", kit_path(dir, "runA"));
    snprintf(b, sizeof b, "%s", kit_path(dir, "runB"));
    make_run(a, 7, 3, 0.6);
    make_run(b, 4, 3, 0.4);
    snprintf(ins, sizeof ins, "%s %s", a, b);
    const char *out = kit_path(dir, "rep");
    kit_out r = report(out, ins);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    cr_assert(strstr(r.out, "2 figures"), "%s", r.out);
    kit_out_free(&r);
    check_png(kit_path(out, "training.png"), 1000, 700);
    check_png(kit_path(out, "cells.png"), 1000, 720);
    char *svg = kit_read_text(kit_path(out, "training.svg"));
    cr_assert(strstr(svg, "<svg"));
    /* four panels: runA (#0072B2) has 7 points in each, runB (#D55E00) 4 */
    count_ctx ca = {"#0072B2", 7, 0}, cb = {"#D55E00", 4, 0};
    svg_lines(svg, count_stroked, &ca);
    svg_lines(svg, count_stroked, &cb);
    cr_assert_eq(ca.count, 4, "runA: %d lines of 7 points", ca.count);
    cr_assert_eq(cb.count, 4, "runB: %d lines of 4 points", cb.count);
    free(svg);
    svg = kit_read_text(kit_path(out, "cells.svg"));
    count_ctx bars = {"#0072B2", 0, 0};
    svg_lines(svg, count_filled, &bars);
    cr_assert_eq(bars.count, 6, "runA: %d bars (3 cells x r and FEVe)", bars.count);
    free(svg);
    char *html = kit_read_text(kit_path(out, "index.html"));
    cr_assert(strstr(html, "<img src=\"training.png\""));
    cr_assert(strstr(html, "runA: mean r 0.6"), "caption carries the mean r");
    /* what the runs lack is listed with the command that makes it */
    cr_assert(strstr(html, "no rf.h5: run retinac rf"));
    cr_assert(strstr(html, "no phenomena file"));
    free(html);
}

typedef struct {
    double best_red, best_blue;
    double rx, ry, bx, by;
    double xmin, xmax, ymin, ymax;
    int cells;
} heat_ctx;

static int hexv(const char *s, int k)
{
    char t[3] = {s[1 + 2 * k], s[2 + 2 * k], 0};
    return (int)strtol(t, NULL, 16);
}

/* Heat-map cells: filled squares (4 corners, closed, PLplot may repeat a point). Colour-bar
 * cells are wide, not square. */
static void heat_cell(const svg_line *l, void *v)
{
    heat_ctx *c = v;
    if (!l->fill[0] || l->npts < 4 || l->npts > 8) return;
    double x0 = l->x[0], x1 = l->x[0], y0 = l->y[0], y1 = l->y[0];
    for (int i = 1; i < l->npts; i++) {
        x0 = fmin(x0, l->x[i]); x1 = fmax(x1, l->x[i]);
        y0 = fmin(y0, l->y[i]); y1 = fmax(y1, l->y[i]);
    }
    double w = x1 - x0, h = y1 - y0;
    if (w <= 0 || fabs(w - h) > 0.05 * w) return;
    double cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
    if (!c->cells++) { c->xmin = c->xmax = cx; c->ymin = c->ymax = cy; }
    if (cx < c->xmin) c->xmin = cx;
    if (cx > c->xmax) c->xmax = cx;
    if (cy < c->ymin) c->ymin = cy;
    if (cy > c->ymax) c->ymax = cy;
    int R = hexv(l->fill, 0), B = hexv(l->fill, 2);
    if (R - B > c->best_red) { c->best_red = R - B; c->rx = cx; c->ry = cy; }
    if (B - R > c->best_blue) { c->best_blue = B - R; c->bx = cx; c->by = cy; }
}

Test(report, planted_receptive_field_appears_at_its_place_with_its_polarity)
{
    const char *run = kit_path(dir, "rfrun");
    char runs[512];
    snprintf(runs, sizeof runs, "%s", run);
    make_run(runs, 3, 1, 0.5);
    make_rf(kit_path(runs, "rf.h5"));
    const char *out = kit_path(dir, "rep_rf");
    kit_out r = report(out, runs);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    kit_out_free(&r);
    check_png(kit_path(out, "rf-1-rfrun.png"), 250 + 140, 330 + 50);
    char *svg = kit_read_text(kit_path(out, "rf-1-rfrun.svg"));
    heat_ctx h = {0};
    svg_lines(svg, heat_cell, &h);
    free(svg);
    cr_assert_eq(h.cells, RF_H * RF_W, "%d heat cells, the map has %d", h.cells, RF_H * RF_W);
    /* SVG y is up (PLplot's group transform flips it): row 0 is at ymax */
    double sx = (h.xmax - h.xmin) / (RF_W - 1), sy = (h.ymax - h.ymin) / (RF_H - 1);
    double red_col = (h.rx - h.xmin) / sx, red_row = (h.ymax - h.ry) / sy;
    double blue_col = (h.bx - h.xmin) / sx, blue_row = (h.ymax - h.by) / sy;
    cr_assert(fabs(red_col - 22) < 0.5 && fabs(red_row - 5) < 0.5, "red (ON) at row %.1f col %.1f", red_row, red_col);
    cr_assert(fabs(blue_col - 6) < 0.5 && fabs(blue_row - 14) < 0.5, "blue (OFF) at row %.1f col %.1f", blue_row, blue_col);
    cr_assert(h.best_red > 120 && h.best_blue > 80, "saturated colours at the blobs (%.0f, %.0f)", h.best_red, h.best_blue);
}

Test(report, phenomena_retina_black_model_coloured_one_point_per_frame)
{
    const char *ph = kit_path(dir, "phen.h5");
    char p[512];
    snprintf(p, sizeof p, "%s", ph);
    make_phen(p);
    const char *out = kit_path(dir, "rep_ph");
    kit_out r = report(out, p);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    kit_out_free(&r);
    check_png(kit_path(out, "phenomena-1-battery.png"), 1300, 1000);
    char *svg = kit_read_text(kit_path(out, "phenomena-1-battery.svg"));
    count_ctx k = {"#000000", PH_N, 0}, m = {"#0072B2", PH_N, 0};
    svg_lines(svg, count_stroked, &k);
    svg_lines(svg, count_stroked, &m);
    free(svg);
    cr_assert_eq(k.count, 1, "retina: %d black lines of %d points", k.count, PH_N);
    cr_assert_eq(m.count, 1, "model: %d blue lines of %d points", m.count, PH_N);
    char *html = kit_read_text(kit_path(out, "index.html"));
    cr_assert(strstr(html, "<h2>Phenomena</h2>"));
    free(html);
}

Test(report, corrupt_or_foreign_inputs_fail_and_keep_the_previous_report)
{
    char run[512];
    snprintf(run, sizeof run, "%s", kit_path(dir, "run"));
    make_run(run, 3, 2, 0.5);
    char out[512];
    snprintf(out, sizeof out, "%s", kit_path(dir, "rep_keep"));
    kit_out r = report(out, run);
    cr_assert_eq(r.status, 0, "%s", r.err);
    kit_out_free(&r);
    char *before = kit_read_text(kit_path(out, "index.html"));

    kit_write_text(kit_path(run, "rf.h5"), "this is not HDF5\n");
    r = report(out, run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "rf.h5: not an HDF5 file"), "%s", r.err);
    kit_out_free(&r);
    char *after = kit_read_text(kit_path(out, "index.html"));
    cr_assert_str_eq(before, after, "the previous report is kept");
    free(after);
    cr_assert_eq(kit_count_entries(dir, NULL), 2, "no temp folder left beside the report");

    /* a valid HDF5 file that is not an rf output */
    rc_h5_quiet();
    hid_t f = H5Fcreate(kit_path(run, "rf.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    H5Fclose(f);
    r = report(kit_path(dir, "rep_new"), run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "rf.h5: no /grad or /revcor group"), "%s", r.err);
    kit_out_free(&r);
    cr_assert_eq(access(kit_path(dir, "rep_new"), F_OK), -1, "no partial report");
    unlink(kit_path(run, "rf.h5"));

    /* a truncated metrics.json, a log with a non-number */
    kit_write_text(kit_path(run, "metrics.json"), "{\"model\": \"m\", \"test\": {\"cells\": [");
    r = report(kit_path(dir, "rep_new"), run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "metrics.json: not a JSON object"), "%s", r.err);
    kit_out_free(&r);
    unlink(kit_path(run, "metrics.json"));
    kit_write_text(kit_path(run, "log.csv"), "epoch,train_loss\n1,0.5\n2,zero\n");
    r = report(kit_path(dir, "rep_new"), run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "log.csv: line 3, column train_loss: 'zero' is not a number"), "%s", r.err);
    kit_out_free(&r);

    /* an output folder that is not a report, an output that is an input, a foreign file */
    r = report(run, run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "also an input"), "%s", r.err);
    kit_out_free(&r);
    kit_write_text(kit_path(run, "log.csv"), "epoch,train_loss\n1,0.5\n");
    mkdir(kit_path(dir, "notes"), 0777);
    kit_write_text(kit_path(dir, "notes/a.txt"), "mine\n");
    r = report(kit_path(dir, "notes"), run);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "not a report folder"), "%s", r.err);
    kit_out_free(&r);
    cr_assert(access(kit_path(dir, "notes/a.txt"), F_OK) == 0);
    r = report(kit_path(dir, "rep_x"), kit_path(dir, "notes/a.txt"));
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "not a `retinac phenomena -o` output"), "%s", r.err);
    kit_out_free(&r);
    free(before);
}

/* ---------------------------------------------------------------- the page in a browser */

static kit_out chromium(const char *profile, const char *args, const char *page)
{
    return kit_cmd(NULL, "chromium --headless --no-sandbox --disable-gpu --no-first-run "
                   "--user-data-dir=%s --virtual-time-budget=10000 %s file://%s", profile, args, page);
}

Test(report, index_html_loads_every_figure_in_headless_chromium)
{
    char a[512], ins[1100];
    snprintf(a, sizeof a, "%s", kit_path(dir, "brun"));
    make_run(a, 5, 3, 0.6);
    make_rf(kit_path(a, "rf.h5"));
    make_phen(kit_path(a, "phenomena.h5"));
    snprintf(ins, sizeof ins, "%s", a);
    char out[512], page[600], profile[600];
    snprintf(out, sizeof out, "%s", kit_path(dir, "brep"));
    snprintf(page, sizeof page, "%s/index.html", out);
    snprintf(profile, sizeof profile, "%s", kit_path(dir, "chromium-profile"));
    kit_out r = report(out, ins);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "4 figures"), "%s", r.out);
    kit_out_free(&r);

    r = chromium(profile, "--dump-dom", page);
    cr_assert_eq(r.status, 0, "chromium: %s", r.err);
    cr_assert(strstr(r.out, "data-loaded=\"4/4\""), "not every figure loaded: %.300s",
              strstr(r.out, "<body") ? strstr(r.out, "<body") : r.out);
    kit_out_free(&r);

    char shot[600], arg[700];
    snprintf(shot, sizeof shot, "%s", kit_path(dir, "shot.png"));
    snprintf(arg, sizeof arg, "--window-size=1300,2400 --screenshot=%s", shot);
    r = chromium(profile, arg, page);
    cr_assert_eq(r.status, 0, "chromium: %s", r.err);
    kit_out_free(&r);
    check_png(shot, 1300, 2400);

    /* the check can fail: a figure removed is a figure not loaded, and the page says so */
    cr_assert_eq(unlink(kit_path(out, "cells.png")), 0);
    r = chromium(profile, "--dump-dom", page);
    cr_assert_eq(r.status, 0, "chromium: %s", r.err);
    cr_assert(strstr(r.out, "data-loaded=\"3/4\""), "%.300s", strstr(r.out, "<body") ? strstr(r.out, "<body") : r.out);
    cr_assert(strstr(r.out, "figure missing: cells.png"));
    kit_out_free(&r);
}

/* ---------------------------------------------------------------- predictions */

#define CNN_TINY \
    "return model \"cnn\" {\n" \
    "  input = { history = 10, height = 50, width = 50 },\n" \
    "  conv { channels = 2, kernel = 9 }, relu {},\n" \
    "  dense {}, softplus {},\n" \
    "  train = { batch = 64, epochs = 1 },\n" \
    "}\n"

/* intr.h5 for one recorded cell against layer 1 (2 x 42 x 42): the best unit at channel 1,
 * (12, 30); its map has a positive blob there and a negative one at (30, 8). */
static void make_intr(const char *path)
{
    enum { C = 2, H = 42, W = 42 };
    static float m[C * H * W];
    for (int c = 0; c < C; c++)
        for (int r = 0; r < H; r++)
            for (int q = 0; q < W; q++) {
                double a = (r - 12) * (r - 12) + (q - 30) * (q - 30), b = (r - 30) * (r - 30) + (q - 8) * (q - 8);
                m[(c * H + r) * W + q] = c == 1 ? (float)(0.9 * exp(-a / 3.0) - 0.6 * exp(-b / 3.0)) : 0.01f;
            }
    double best[5] = {1, 1, 12, 30, 0.9};
    int layers[1] = {1};
    rc_h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    int64_t db[3] = {1, 1, 5}, dl[1] = {1}, dm[1] = {C * H * W};
    cr_assert_eq(rc_h5_write_all(f, "/best", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, db, best), 0);
    cr_assert_eq(rc_h5_write_all(f, "/layers", H5T_STD_I32LE, H5T_NATIVE_INT, 1, dl, layers), 0);
    cr_assert_eq(rc_h5_write_all(f, "/cells/0", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dm, m), 0);
    H5Fclose(f);
}

Test(report, predictions_of_a_trained_run_against_its_recording)
{
    char data[512], other[512], run[512], spec[512];
    snprintf(data, sizeof data, "%s", kit_path(dir, "rec.h5"));
    snprintf(other, sizeof other, "%s", kit_path(dir, "other.h5"));
    snprintf(run, sizeof run, "%s", kit_path(dir, "trained"));
    snprintf(spec, sizeof spec, "%s", kit_path(dir, "cnn.lua"));
    kit_write_text(spec, CNN_TINY);
    kit_out r = kit_rc("synth -o %s --frames 1500 --test-frames 700 --cells 3 --calib-frames 500 --quiet", data);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    kit_out_free(&r);
    r = kit_rc("train %s --data %s -o %s --quiet", spec, data, run);
    cr_assert_eq(r.status, 0, "train: %s", r.err);
    kit_out_free(&r);

    const char *out = kit_path(dir, "rep_pred");
    r = report(out, run);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    kit_out_free(&r);
    check_png(kit_path(out, "predictions.png"), 1200, 340);
    char *svg = kit_read_text(kit_path(out, "predictions.svg"));
    /* 3 cells: the recorded trace (black) and the model (blue), 500 bins each (the test split
     * has 700 - 10 + 1 > 500) */
    count_ctx k = {"#000000", 500, 0}, m = {"#0072B2", 500, 0};
    svg_lines(svg, count_stroked, &k);
    svg_lines(svg, count_stroked, &m);
    free(svg);
    cr_assert_eq(k.count, 3, "recorded: %d black lines of 500 points", k.count);
    cr_assert_eq(m.count, 3, "predicted: %d blue lines of 500 points", m.count);

    /* interneuron correlation maps: the layer's shape comes from best.h5, the best unit's map
     * is drawn with its positive blob red at the unit and its negative blob blue */
    make_intr(kit_path(run, "intr.h5"));
    r = report(out, run);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    kit_out_free(&r);
    svg = kit_read_text(kit_path(out, "interneuron-maps-1-trained.svg"));
    heat_ctx h = {0};
    svg_lines(svg, heat_cell, &h);
    free(svg);
    cr_assert_eq(h.cells, 42 * 42, "%d heat cells", h.cells);
    double sx = (h.xmax - h.xmin) / 41, sy = (h.ymax - h.ymin) / 41;
    double rc = (h.rx - h.xmin) / sx, rr = (h.ymax - h.ry) / sy, bc = (h.bx - h.xmin) / sx, br = (h.ymax - h.by) / sy;
    cr_assert(fabs(rc - 30) < 0.5 && fabs(rr - 12) < 0.5, "red at row %.1f col %.1f", rr, rc);
    cr_assert(fabs(bc - 8) < 0.5 && fabs(br - 30) < 0.5, "blue at row %.1f col %.1f", br, bc);

    /* the recording moved away: the report is made and says what to pass */
    cr_assert_eq(rename(data, kit_path(dir, "moved.h5")), 0);
    r = report(out, run);
    cr_assert_eq(r.status, 0, "report: %s", r.err);
    cr_assert(strstr(r.err, "is not here: pass --data FILE"), "%s", r.err);
    kit_out_free(&r);
    cr_assert_eq(access(kit_path(out, "predictions.png"), F_OK), -1);

    /* another recording is refused: the predictions would belong to a different retina */
    r = kit_rc("synth -o %s --frames 1500 --test-frames 700 --cells 3 --calib-frames 500 --seed 5 --quiet", other);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    kit_out_free(&r);
    r = kit_rc("report %s --data %s -o %s", run, other, kit_path(dir, "rep_other"));
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "other.h5"), "%s", r.err);
    kit_out_free(&r);
    cr_assert_eq(access(kit_path(dir, "rep_other"), F_OK), -1);
}
