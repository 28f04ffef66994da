/* plot.h — figures as PNG and SVG, drawn through PLplot (Debian's libplplot-dev with its cairo
 * and native SVG drivers; docs/report.md says why PLplot and not cairo, gnuplot or MathGL).
 *
 * A figure is a draw function: rc_plot_render calls it twice, once on PLplot's "pngcairo" device
 * (DIR/NAME.png) and once on its "svg" device (DIR/NAME.svg), so both files show the same
 * drawing. Inside the draw function the rc_plot_* calls below place panels (viewport fractions
 * of the page), lines, bars, heat maps and legends.
 *
 * Invariants:
 *   - PLplot keeps global state and is not thread-safe: call from one thread only.
 *   - PLplot's recoverable errors ("aborting operation") are caught by a handler and turn the
 *     render into -1 with the message; its fatal errors (out of memory) exit, as PLplot does:
 *     rc_plot_available checks beforehand that both drivers exist, the one fatal error a
 *     missing package would otherwise cause.
 *   - Non-finite values are never handed to PLplot: lines break at them, bars and heat cells
 *     skip them, ranges ignore them.
 *   - Colours: a white page, black axes, and series colours from the Okabe-Ito palette
 *     (colour-blind safe); heat maps use a diverging blue-white-red map whose white is zero
 *     (ColorBrewer RdBu, red = positive).
 */
#ifndef RC_PLOT_H
#define RC_PLOT_H
#include <stddef.h>

/* Colour indices for rc_plot_line and friends. */
enum {
    RC_PLOT_BLACK = 1,
    RC_PLOT_GREY = 2,
    RC_PLOT_SERIES = 3,          /* RC_PLOT_SERIES + k, k = 0..RC_PLOT_NSERIES-1 */
    RC_PLOT_NSERIES = 7,
};

/* Character height scale for every figure (PLplot's default is 1). */
#define RC_PLOT_CHAR 0.8

/* Text size for what follows in this figure, relative to RC_PLOT_CHAR. */
void rc_plot_text_scale(double s);

/* The colour of series k (cycles). */
int rc_plot_series(int k);
/* #rrggbb of a colour index, for captions and the HTML page. */
const char *rc_plot_hex(int color);

/* 0 if PLplot has the pngcairo and svg devices, else -1 with what is missing. */
int rc_plot_available(char *err, size_t errlen);

typedef int (*rc_plot_draw_fn)(void *ctx);
/* Draw into DIR/NAME.png and DIR/NAME.svg at w x h pixels. Returns 0, or -1 with the draw
 * function's error (it returns -1 after rc_plot_fail) or PLplot's. */
int rc_plot_render(const char *dir, const char *name, int w, int h, rc_plot_draw_fn draw,
                   void *ctx, char *err, size_t errlen);
/* From a draw function: record an error (returns -1, for `return rc_plot_fail(...)`). */
int rc_plot_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Finite min and max of v (n values, stride 1), padded by 5% of the span (or +-1 around a
 * constant); lo/hi are widened from their current values when *have is 1, and *have is set
 * once a finite value was seen. */
void rc_plot_extend(const double *v, int n, double *lo, double *hi, int *have);
void rc_plot_pad(double *lo, double *hi);

/* A panel: viewport (x0..x1, y0..y1 page fractions, the axes box without its labels), world
 * window, axes with ticks and numeric labels, axis labels and a title (any may be NULL or ""). */
void rc_plot_panel(double x0, double x1, double y0, double y1, double xmin, double xmax,
                   double ymin, double ymax, const char *xlab, const char *ylab,
                   const char *title);
/* The same with flags: RC_PLOT_NO_XNUM (categories: rc_plot_xlabel_at), RC_PLOT_NO_YNUM; xtick
 * the x major tick interval (0: PLplot's choice). */
enum { RC_PLOT_NO_XNUM = 1, RC_PLOT_NO_YNUM = 2 };
void rc_plot_panel_x(double x0, double x1, double y0, double y1, double xmin, double xmax,
                     double ymin, double ymax, const char *xlab, const char *ylab,
                     const char *title, int flags, double xtick);
/* A category name under the x axis at world x. */
void rc_plot_xlabel_at(double x, const char *text);
/* A panel with a box but no numbers (maps: x right, y down, pixel units). */
void rc_plot_map_panel(double x0, double x1, double y0, double y1, int nx, int ny,
                       const char *title);

void rc_plot_line(int n, const double *x, const double *y, int color, int dashed, double width);
void rc_plot_points(int n, const double *x, const double *y, int color);
/* Bars centred on x[i], from 0 to y[i]. */
void rc_plot_bars(int n, const double *x, const double *y, double width, int color);
void rc_plot_hline(double y, int color, int dashed);
void rc_plot_vline(double x, int color, int dashed);
/* Legend in the panel's top-right (corner 0) or top-left (corner 1). dashed may be NULL. */
void rc_plot_legend(int n, const char *const *labels, const int *colors, const int *dashed,
                    int corner);
/* A legend in one row across the page at height y (page fraction), from the left. */
void rc_plot_page_legend(double y, int n, const char *const *labels, const int *colors);
/* Text at page-fraction position (the whole page as viewport), justified 0 left .. 1 right. */
void rc_plot_page_text(double x, double y, double just, double size, const char *text);

/* Heat map of z (ny rows x nx columns, row 0 at the top) in the current map panel, colours
 * -zlim..zlim on the diverging map; NaN cells are left white. */
void rc_plot_heat(int nx, int ny, const float *z, double zlim);
/* A colour bar for -zlim..zlim, vertical, in the viewport given (page fractions). */
void rc_plot_colorbar(double x0, double x1, double y0, double y1, double zlim, const char *label);
/* Circle of radius r around (x, y) in world coordinates. */
void rc_plot_circle(double x, double y, double r, int color);

#endif
