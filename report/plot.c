/* plot.c — figures through PLplot: one draw function rendered to PNG (pngcairo) and SVG (svg),
 * panels, lines, bars, heat maps, legends. See plot.h for the invariants (one thread; PLplot's
 * recoverable errors become -1; non-finite values never reach PLplot; colour-blind-safe colours).
 */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <plplot.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Colour map 0: white page, black, grey, then the Okabe-Ito series (yellow left out: it does
 * not show on white). */
static const unsigned char cmap0[][3] = {
    {255, 255, 255}, {0, 0, 0}, {153, 153, 153},
    {0, 114, 178},   /* blue */
    {213, 94, 0},    /* vermillion */
    {0, 158, 115},   /* bluish green */
    {204, 121, 167}, /* reddish purple */
    {230, 159, 0},   /* orange */
    {86, 180, 233},  /* sky blue */
    {0, 0, 0},       /* black, the seventh series */
};
#define NCMAP0 ((int)(sizeof cmap0 / sizeof cmap0[0]))

static char g_err[512];
static int g_failed;

int rc_plot_series(int k)
{
    if (k < 0) k = -k;
    return RC_PLOT_SERIES + k % RC_PLOT_NSERIES;
}

const char *rc_plot_hex(int color)
{
    static char buf[NCMAP0][8];
    if (color < 0 || color >= NCMAP0) color = RC_PLOT_BLACK;
    snprintf(buf[color], sizeof buf[color], "#%02x%02x%02x", cmap0[color][0], cmap0[color][1],
             cmap0[color][2]);
    return buf[color];
}

void rc_plot_text_scale(double s)
{
    plschr(0, RC_PLOT_CHAR * (s > 0 ? s : 1));
}

int rc_plot_fail(const char *fmt, ...)
{
    if (!g_failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_err, sizeof g_err, fmt, ap);
        va_end(ap);
        g_failed = 1;
    }
    return -1;
}

static void on_abort(PLCHAR_VECTOR msg)
{
    rc_plot_fail("PLplot: %.400s", msg ? msg : "error");
}

int rc_plot_available(char *err, size_t errlen)
{
    const char **menu = NULL, **names = NULL;
    int n = 64, png = 0, svg = 0;
    menu = calloc((size_t)n, sizeof *menu);
    names = calloc((size_t)n, sizeof *names);
    if (!menu || !names) {
        free(menu);
        free(names);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    plgDevs(&menu, &names, &n);
    for (int i = 0; i < n; i++) {
        if (names[i] && strcmp(names[i], "pngcairo") == 0) png = 1;
        if (names[i] && strcmp(names[i], "svg") == 0) svg = 1;
    }
    free(menu);
    free(names);
    if (png && svg) return 0;
    snprintf(err, errlen, "PLplot has no %s device: install the Debian package %s",
             !png ? "pngcairo" : "svg", !png ? "plplot-driver-cairo" : "libplplot17");
    return -1;
}

int rc_plot_render(const char *dir, const char *name, int w, int h, rc_plot_draw_fn draw,
                   void *ctx, char *err, size_t errlen)
{
    static const char *const dev[2] = {"pngcairo", "svg"};
    static const char *const ext[2] = {"png", "svg"};
    PLINT r[NCMAP0], g[NCMAP0], b[NCMAP0];
    for (int i = 0; i < NCMAP0; i++) { r[i] = cmap0[i][0]; g[i] = cmap0[i][1]; b[i] = cmap0[i][2]; }
    /* RdBu (ColorBrewer, 5 classes): blue negative, near-white zero, red positive. */
    static const PLFLT pos[5] = {0, 0.25, 0.5, 0.75, 1};
    static const PLFLT cr[5] = {33 / 255., 146 / 255., 247 / 255., 244 / 255., 178 / 255.};
    static const PLFLT cg[5] = {102 / 255., 197 / 255., 247 / 255., 165 / 255., 24 / 255.};
    static const PLFLT cb[5] = {172 / 255., 222 / 255., 247 / 255., 130 / 255., 43 / 255.};
    for (int d = 0; d < 2; d++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext[d]) >= (int)sizeof path) {
            snprintf(err, errlen, "%.200s/%.100s: path too long", dir, name);
            return -1;
        }
        /* PLplot exits when it cannot open its output: open it here first, so that a bad
         * folder is an error returned, not an exit. */
        FILE *probe = fopen(path, "wb");
        if (!probe) {
            snprintf(err, errlen, "%s: cannot write: %s", path, strerror(errno));
            return -1;
        }
        fclose(probe);
        g_failed = 0;
        g_err[0] = 0;
        static PLINT code;
        static char msg[1024];
        plsabort(on_abort);
        plsdev(dev[d]);
        plsfnam(path);
        plspage(0, 0, w, h, 0, 0);
        plscmap0(r, g, b, NCMAP0);
        plsError(&code, msg);
        plinit();
        plscmap1n(256);
        plscmap1l(1, 5, pos, cr, cg, cb, NULL);
        plschr(0, RC_PLOT_CHAR);
        pladv(0);
        int rc = draw(ctx);
        plend1();
        if (rc != 0 || g_failed) {
            snprintf(err, errlen, "figure %s: %s", name, g_err[0] ? g_err : "drawing failed");
            return -1;
        }
        struct stat st;
        if (stat(path, &st) != 0 || st.st_size == 0) {
            snprintf(err, errlen, "%s: PLplot wrote nothing", path);
            return -1;
        }
    }
    return 0;
}

void rc_plot_extend(const double *v, int n, double *lo, double *hi, int *have)
{
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i])) continue;
        if (!*have) { *lo = *hi = v[i]; *have = 1; }
        if (v[i] < *lo) *lo = v[i];
        if (v[i] > *hi) *hi = v[i];
    }
}

void rc_plot_pad(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi)) { *lo = 0; *hi = 1; return; }
    double span = *hi - *lo;
    if (span <= 1e-12 * (fabs(*lo) + fabs(*hi)) || span <= 0) {
        double c = *lo, m = fabs(c) > 0 ? 0.1 * fabs(c) : 1;
        *lo = c - m;
        *hi = c + m;
        return;
    }
    *lo -= 0.05 * span;
    *hi += 0.05 * span;
}

void rc_plot_panel(double x0, double x1, double y0, double y1, double xmin, double xmax,
                   double ymin, double ymax, const char *xlab, const char *ylab,
                   const char *title)
{
    rc_plot_panel_x(x0, x1, y0, y1, xmin, xmax, ymin, ymax, xlab, ylab, title, 0, 0);
}

void rc_plot_xlabel_at(double x, const char *text)
{
    PLFLT xmin, xmax, ymin, ymax;
    plgvpw(&xmin, &xmax, &ymin, &ymax);
    if (!(xmax > xmin) || !isfinite(x)) return;
    plcol0(RC_PLOT_BLACK);
    plmtex("b", 1.6, (x - xmin) / (xmax - xmin), 0.5, text);
}

void rc_plot_panel_x(double x0, double x1, double y0, double y1, double xmin, double xmax,
                     double ymin, double ymax, const char *xlab, const char *ylab,
                     const char *title, int flags, double xtick)
{
    plvpor(x0, x1, y0, y1);
    plwind(xmin, xmax, ymin, ymax);
    plcol0(RC_PLOT_BLACK);
    plwidth(1);
    pllsty(1);
    plbox(flags & RC_PLOT_NO_XNUM ? "bcst" : "bcnst", xtick, 0, flags & RC_PLOT_NO_YNUM ? "bcst" : "bcnstv", 0, 0);
    if (xlab && *xlab) plmtex("b", 3.2, 0.5, 0.5, xlab);
    if (ylab && *ylab) plmtex("l", flags & RC_PLOT_NO_YNUM ? 1.5 : 5.8, 0.5, 0.5, ylab);
    if (title && *title) plmtex("t", 1.0, 0.5, 0.5, title);
}

void rc_plot_map_panel(double x0, double x1, double y0, double y1, int nx, int ny,
                       const char *title)
{
    plvpas(x0, x1, y0, y1, (double)ny / (double)(nx > 0 ? nx : 1));
    plwind(0, nx, 0, ny);
    plcol0(RC_PLOT_BLACK);
    plwidth(1);
    pllsty(1);
    plbox("bc", 0, 0, "bc", 0, 0);
    if (title && *title) plmtex("t", 0.8, 0.5, 0.5, title);
}

void rc_plot_line(int n, const double *x, const double *y, int color, int dashed, double width)
{
    plcol0(color);
    pllsty(dashed ? 2 : 1);
    plwidth(width > 0 ? width : 1.5);
    int i = 0;
    while (i < n) {
        while (i < n && !(isfinite(x[i]) && isfinite(y[i]))) i++;
        int s = i;
        while (i < n && isfinite(x[i]) && isfinite(y[i])) i++;
        if (i - s >= 2) plline(i - s, x + s, y + s);
        else if (i - s == 1) plpoin(1, x + s, y + s, 1);
    }
    pllsty(1);
    plwidth(1);
    plcol0(RC_PLOT_BLACK);
}

void rc_plot_points(int n, const double *x, const double *y, int color)
{
    plcol0(color);
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]) && isfinite(y[i])) plpoin(1, x + i, y + i, 17);
    plcol0(RC_PLOT_BLACK);
}

void rc_plot_bars(int n, const double *x, const double *y, double width, int color)
{
    plcol0(color);
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) continue;
        PLFLT px[4] = {x[i] - width / 2, x[i] + width / 2, x[i] + width / 2, x[i] - width / 2};
        PLFLT py[4] = {0, 0, y[i], y[i]};
        plfill(4, px, py);
    }
    plcol0(RC_PLOT_BLACK);
}

void rc_plot_hline(double y, int color, int dashed)
{
    PLFLT xmin, xmax, ymin, ymax;
    plgvpw(&xmin, &xmax, &ymin, &ymax);
    if (!isfinite(y)) return;
    double x[2] = {xmin, xmax}, yy[2] = {y, y};
    rc_plot_line(2, x, yy, color, dashed, 1);
}

void rc_plot_vline(double x, int color, int dashed)
{
    PLFLT xmin, xmax, ymin, ymax;
    plgvpw(&xmin, &xmax, &ymin, &ymax);
    if (!isfinite(x)) return;
    double xx[2] = {x, x}, y[2] = {ymin, ymax};
    rc_plot_line(2, xx, y, color, dashed, 1);
}

#define LEGEND_MAX 16

void rc_plot_legend(int n, const char *const *labels, const int *colors, const int *dashed,
                    int corner)
{
    if (n <= 0) return;
    if (n > LEGEND_MAX) n = LEGEND_MAX;
    PLINT opt[LEGEND_MAX], tcol[LEGEND_MAX], lcol[LEGEND_MAX], lsty[LEGEND_MAX];
    PLFLT lw[LEGEND_MAX];
    for (int i = 0; i < n; i++) {
        opt[i] = PL_LEGEND_LINE;
        tcol[i] = RC_PLOT_BLACK;
        lcol[i] = colors[i];
        lsty[i] = dashed && dashed[i] ? 2 : 1;
        lw[i] = 2;
    }
    PLFLT w, h;
    PLINT pos = PL_POSITION_TOP | PL_POSITION_INSIDE | (corner ? PL_POSITION_LEFT : PL_POSITION_RIGHT);
    pllegend(&w, &h, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX, pos, 0.02, 0.03, 0.08, 0,
             RC_PLOT_GREY, 1, 0, 0, n, opt, 1.0, 0.75, 1.8, 0.0, tcol, (const char **)labels,
             NULL, NULL, NULL, NULL, lcol, lsty, lw, NULL, NULL, NULL, NULL);
    plcol0(RC_PLOT_BLACK);
    pllsty(1);
    plwidth(1);
}

void rc_plot_page_legend(double y, int n, const char *const *labels, const int *colors)
{
    plvpor(0, 1, 0, 1);
    plwind(0, 1, 0, 1);
    plschr(0, RC_PLOT_CHAR * 0.9);
    double x = 0.08;
    for (int i = 0; i < n; i++) {
        PLFLT lx[2] = {x, x + 0.03}, ly[2] = {y, y};
        plcol0(colors[i]);
        plwidth(2.5);
        plline(2, lx, ly);
        plwidth(1);
        plcol0(RC_PLOT_BLACK);
        plptex(x + 0.037, y, 1, 0, 0, labels[i]);
        x += 0.06 + 0.0085 * (double)strlen(labels[i]);
    }
    plschr(0, RC_PLOT_CHAR);
}

void rc_plot_page_text(double x, double y, double just, double size, const char *text)
{
    plvpor(0, 1, 0, 1);
    plwind(0, 1, 0, 1);
    plcol0(RC_PLOT_BLACK);
    plschr(0, RC_PLOT_CHAR * (size > 0 ? size : 1));
    plptex(x, y, 1, 0, just, text);
    plschr(0, RC_PLOT_CHAR);
}

/* Each cell is filled as its own square, [col, col+1] x [ny-1-row, ny-row] in world units:
 * exact placement (PLplot's plimagefr stretches an image over nx-1 intervals, which moves the
 * last row and column out of the window) and the same cells in PNG and SVG. */
void rc_plot_heat(int nx, int ny, const float *z, double zlim)
{
    if (nx <= 0 || ny <= 0) return;
    if (!(zlim > 0) || !isfinite(zlim)) zlim = 1;
    for (int r = 0; r < ny; r++)
        for (int c = 0; c < nx; c++) {
            double v = z[(size_t)r * (size_t)nx + (size_t)c];
            if (!isfinite(v)) continue;   /* NaN: left white */
            if (v > zlim) v = zlim;
            if (v < -zlim) v = -zlim;
            plcol1((v + zlim) / (2 * zlim));
            PLFLT x[4] = {c, c + 1, c + 1, c}, y[4] = {ny - 1 - r, ny - 1 - r, ny - r, ny - r};
            plfill(4, x, y);
        }
    plcol0(RC_PLOT_BLACK);
    plbox("bc", 0, 0, "bc", 0, 0);
}

void rc_plot_colorbar(double x0, double x1, double y0, double y1, double zlim, const char *label)
{
    enum { N = 128 };
    if (!(zlim > 0) || !isfinite(zlim)) zlim = 1;
    float z[N];
    for (int i = 0; i < N; i++) z[i] = (float)(zlim * (1 - 2 * (i + 0.5) / N));   /* top = +zlim */
    plvpor(x0, x1, y0, y1);
    plwind(0, 1, 0, N);
    rc_plot_heat(1, N, z, zlim);
    plwind(0, 1, -zlim, zlim);
    plbox("bc", 0, 0, "bcmstv", 0, 0);
    if (label && *label) plmtex("r", 5.5, 0.5, 0.5, label);
}

void rc_plot_circle(double x, double y, double r, int color)
{
    if (!isfinite(x) || !isfinite(y) || !(r > 0) || !isfinite(r)) return;
    plcol0(color);
    plwidth(1.5);
    plarc(x, y, r, r, 0, 360, 0, 0);
    plwidth(1);
    plcol0(RC_PLOT_BLACK);
}
