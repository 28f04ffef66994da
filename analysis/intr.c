/* intr.c — model units vs recorded interneurons (see intr.h).
 *
 * Invariants: a file is read whole (stimulus and potentials are small: minutes at 100 Hz);
 * windows go through the rf evaluator (analysis/rf.h) in batches of consecutive windows, so the
 * frames of a batch are a pointer into the prepared movie, never copied. Correlations are
 * accumulated in double over all windows (sums of x, x^2, x*y per unit and cell), in a fixed
 * order: the result is a pure function of (checkpoint, files, options) up to the FFT's rounding.
 */
#include "intr.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "errbuf.h"
#include "fsutil.h"
#include "h5util.h"
#include "rf.h"
#include "train.h"

void rc_intr_opts_default(rc_intr_opts *o)
{
    memset(o, 0, sizeof *o);
    o->stim = "boxes";
    o->batch = 256;
    o->fft = 1;
}

void rc_intr_free(rc_intr_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_cells; i++) free(r->cells[i].maps);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

const char *rc_intr_type_of(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    static const char *const types[] = {"bipolar", "amacrine", "horizontal"};
    for (int i = 0; i < 3; i++)
        if (!strncasecmp(b, types[i], strlen(types[i]))) return types[i];
    return "unknown";
}

/* One file's prepared movie and potentials. */
typedef struct {
    float *movie;     /* (T, H, W): the model's input size, prepared as in intr.h */
    float *pot;       /* (n, T) */
    int64_t T;
    int n;
} intr_file;

static void file_free(intr_file *f) { free(f->movie); free(f->pot); memset(f, 0, sizeof *f); }

static int file_read(const char *path, const char *stim, int H, int W, intr_file *f, char *err,
                     size_t errlen)
{
    memset(f, 0, sizeof *f);
    char ks[300], kp[300];
    snprintf(ks, sizeof ks, "/%s/stimuli", stim);
    snprintf(kp, sizeof kp, "/%s/detrended_membrane_potential", stim);
    rc_h5_quiet();
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h < 0) return rc_errf(err, errlen, "%s: cannot open as HDF5", path);
    rc_h5_desc ds, dp;
    float *raw = NULL;
    int rc = -1;
    if (rc_h5_describe(h, path, ks, 0, &ds, err, errlen) < 0 || rc_h5_describe(h, path, kp, 0, &dp, err, errlen) < 0)
        goto out;
    if (ds.rank != 3) { rc_errf(err, errlen, "%s: %s: rank %d, expected (T, h, w)", path, ks, ds.rank); goto out; }
    if (dp.rank != 2) { rc_errf(err, errlen, "%s: %s: rank %d, expected (cells, T)", path, kp, dp.rank); goto out; }
    const int64_t T = ds.dims[0], h0 = ds.dims[1], w0 = ds.dims[2];
    if (dp.dims[1] != T) {
        rc_errf(err, errlen, "%s: %s has %lld time points, %s has %lld frames", path, kp, (long long)dp.dims[1], ks,
                (long long)T);
        goto out;
    }
    if (h0 > H || w0 > W) {
        rc_errf(err, errlen, "%s: %s: frames %lldx%lld are larger than the model's input %dx%d", path, ks,
                (long long)h0, (long long)w0, H, W);
        goto out;
    }
    f->T = T;
    f->n = (int)dp.dims[0];
    raw = malloc((size_t)T * h0 * w0 * sizeof *raw);
    f->movie = calloc((size_t)T * H * W, sizeof *f->movie);
    f->pot = malloc((size_t)f->n * T * sizeof *f->pot);
    if (!raw || !f->movie || !f->pot) { rc_errf(err, errlen, "%s: out of memory for %lld frames", path, (long long)T); goto out; }
    if (rc_h5_read_all_f32(h, ks, raw, T * h0 * w0, path, err, errlen) < 0 ||
        rc_h5_read_all_f32(h, kp, f->pot, (int64_t)f->n * T, path, err, errlen) < 0)
        goto out;
    int64_t bad;
    if (!rc_all_finite(raw, T * h0 * w0, &bad)) { rc_errf(err, errlen, "%s: %s: non-finite value at %lld", path, ks, (long long)bad); goto out; }
    if (!rc_all_finite(f->pot, (int64_t)f->n * T, &bad)) { rc_errf(err, errlen, "%s: %s: non-finite value at %lld", path, kp, (long long)bad); goto out; }
    /* s = 2 v - 1, padded centred with zeros (mean grey), then one scalar z-score */
    const double scale = ds.is_float ? 1.0 : 1.0 / 255.0;
    const int64_t r0 = (H - h0) / 2, c0 = (W - w0) / 2;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < h0; i++)
            for (int64_t j = 0; j < w0; j++)
                f->movie[(t * H + r0 + i) * W + c0 + j] = (float)(2.0 * scale * raw[(t * h0 + i) * w0 + j] - 1.0);
    const int64_t n = T * H * W;
    double s = 0, ss = 0;
    for (int64_t e = 0; e < n; e++) s += f->movie[e];
    const double mean = s / (double)n;
    for (int64_t e = 0; e < n; e++) { double d = f->movie[e] - mean; ss += d * d; }
    const double inv = 1.0 / (sqrt(ss / (double)n) + 1e-5);
    for (int64_t e = 0; e < n; e++) f->movie[e] = (float)((f->movie[e] - mean) * inv);
    rc = 0;
out:
    free(raw);
    H5Fclose(h);
    if (rc < 0) file_free(f);
    return rc;
}

/* Pearson r of every unit (U per layer) with every cell over the windows of one file. */
typedef struct {
    int64_t U;
    double *sx, *sxx, *sxy;   /* (U), (U), (U, n) */
} intr_acc;

static int correlate_file(rc_rf_eval *ev, const rc_checkpoint *ck, const rc_intr_opts *o,
                          const rc_intr_result *r, const intr_file *f, rc_intr_cell *cells,
                          char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    const int C = ir->history, n = f->n;
    const int64_t hw = (int64_t)ir->in.h * ir->in.w, nwin = f->T - C;
    intr_acc acc[RC_MAX_LAYERS];
    memset(acc, 0, sizeof acc);
    double *sy = calloc((size_t)n, sizeof *sy), *syy = calloc((size_t)n, sizeof *syy);
    int64_t *starts = malloc((size_t)o->batch * sizeof *starts);
    int rc = -1;
    if (!sy || !syy || !starts) goto oom;
    for (int k = 0; k < r->n_layers; k++) {
        const rc_layer *L = &ir->layers[r->layers[k]];
        acc[k].U = (int64_t)L->out.c * L->out.h * L->out.w;
        acc[k].sx = calloc((size_t)acc[k].U, sizeof *acc[k].sx);
        acc[k].sxx = calloc((size_t)acc[k].U, sizeof *acc[k].sxx);
        acc[k].sxy = calloc((size_t)acc[k].U * n, sizeof *acc[k].sxy);
        if (!acc[k].sx || !acc[k].sxx || !acc[k].sxy) goto oom;
    }
    for (int b = 0; b < o->batch; b++) starts[b] = b;
    for (int64_t w0 = 0; w0 < nwin; w0 += o->batch) {
        const int B = (int)(nwin - w0 < o->batch ? nwin - w0 : o->batch);
        rc_progress_report(&o->progress, "model units", w0, nwin);
        if (rc_rf_eval_forward(ev, f->movie + w0 * hw, (int64_t)B + C - 1, starts, B, NULL, err, errlen) < 0)
            goto out;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < n; c++) {
                const double y = f->pot[(int64_t)c * f->T + w0 + b + C];
                sy[c] += y;
                syy[c] += y * y;
            }
        for (int k = 0; k < r->n_layers; k++) {
            const float *out = rc_rf_eval_output(ev, r->layers[k]);
            const int64_t U = acc[k].U;
            #pragma omp parallel for schedule(static)
            for (int64_t u = 0; u < U; u++) {
                double *xy = acc[k].sxy + u * n;
                for (int b = 0; b < B; b++) {
                    const double x = out[(int64_t)b * U + u];
                    acc[k].sx[u] += x;
                    acc[k].sxx[u] += x * x;
                    for (int c = 0; c < n; c++) xy[c] += x * f->pot[(int64_t)c * f->T + w0 + b + C];
                }
            }
        }
    }
    rc_progress_report(&o->progress, "model units", nwin, nwin);
    const double N = (double)nwin;
    for (int c = 0; c < n; c++) {
        rc_intr_cell *cell = &cells[c];
        cell->windows = nwin;
        const double my = sy[c] / N, vy = syy[c] / N - my * my;
        float *map = cell->maps;
        cell->best_k = 0;
        for (int k = 0; k < r->n_layers; k++) {
            const rc_layer *L = &ir->layers[r->layers[k]];
            const int64_t U = acc[k].U, plane = (int64_t)L->out.h * L->out.w;
            rc_intr_unit *bu = &cell->best[k];
            memset(bu, 0, sizeof *bu);
            bu->layer = r->layers[k];
            bu->r = -2;
            for (int64_t u = 0; u < U; u++) {
                const double mx = acc[k].sx[u] / N, vx = acc[k].sxx[u] / N - mx * mx;
                const double cov = acc[k].sxy[u * n + c] / N - mx * my;
                /* zero variance (dead unit, or a constant potential) -> r = 0, as the reference's
                 * correlation maps zero such units */
                const double rr = vx > 1e-12 * mx * mx && vx > 1e-30 && vy > 0 ? cov / sqrt(vx * vy) : 0.0;
                map[u] = (float)rr;
                if (rr > bu->r) {
                    bu->r = rr;
                    bu->chan = (int)(u / plane);
                    bu->row = (int)(u % plane / L->out.w);
                    bu->col = (int)(u % L->out.w);
                }
            }
            if (bu->r > cell->best[cell->best_k].r) cell->best_k = k;
            map += U;
        }
    }
    rc = 0;
    goto out;
oom:
    rc_errf(err, errlen, "interneurons: out of memory");
out:
    for (int k = 0; k < r->n_layers; k++) { free(acc[k].sx); free(acc[k].sxx); free(acc[k].sxy); }
    free(sy); free(syy); free(starts);
    return rc;
}

int rc_intr_compute(const rc_checkpoint *ck, const char *const *files, int n_files,
                    const rc_intr_opts *o, rc_intr_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    const rc_ir *ir = ck->ir;
    const double t0 = rc_clock_s();
    if (o->batch < 1) return rc_errf(err, errlen, "interneurons: batch %d < 1", o->batch);
    if (o->n_layers > 0) {
        for (int k = 0; k < o->n_layers; k++) {
            if (o->layers[k] < 0 || o->layers[k] >= ir->n_layers)
                return rc_errf(err, errlen, "interneurons: %s has no layer %d (1..%d)", ir->name, o->layers[k] + 1,
                               ir->n_layers);
            r->layers[r->n_layers++] = o->layers[k];
        }
    } else {
        for (int i = 0; i < ir->n_layers; i++)
            if (ir->layers[i].kind == RC_LAYER_CONV) r->layers[r->n_layers++] = i;
        if (!r->n_layers) return rc_errf(err, errlen, "interneurons: %s has no conv layer (name layers with --layers)", ir->name);
    }
    for (int k = 0; k < r->n_layers; k++) {
        const rc_layer *L = &ir->layers[r->layers[k]];
        r->map_floats += (int64_t)L->out.c * L->out.h * L->out.w;
    }
    rc_rf_eval *ev = NULL;
    if (rc_rf_eval_open(ck, o->batch, o->fft, &ev, err, errlen) < 0) return -1;
    int rc = -1;
    for (int fi = 0; fi < n_files; fi++) {
        intr_file f;
        if (file_read(files[fi], o->stim, ir->in.h, ir->in.w, &f, err, errlen) < 0) goto out;
        if (f.T <= ir->history) {
            rc_errf(err, errlen, "%s: /%s/stimuli: %lld frames, not more than the model's history %d", files[fi], o->stim,
                    (long long)f.T, ir->history);
            file_free(&f);
            goto out;
        }
        rc_intr_cell *nc = realloc(r->cells, (size_t)(r->n_cells + f.n) * sizeof *nc);
        if (!nc) { file_free(&f); rc_errf(err, errlen, "interneurons: out of memory"); goto out; }
        r->cells = nc;
        rc_intr_cell *cells = r->cells + r->n_cells;
        memset(cells, 0, (size_t)f.n * sizeof *cells);
        r->n_cells += f.n;
        const char *base = strrchr(files[fi], '/');
        for (int c = 0; c < f.n; c++) {
            snprintf(cells[c].file, sizeof cells[c].file, "%s", base ? base + 1 : files[fi]);
            snprintf(cells[c].type, sizeof cells[c].type, "%s", rc_intr_type_of(files[fi]));
            cells[c].index = c;
            if (!(cells[c].maps = malloc((size_t)r->map_floats * sizeof *cells[c].maps))) {
                file_free(&f);
                rc_errf(err, errlen, "interneurons: out of memory for the correlation maps");
                goto out;
            }
        }
        int bad = correlate_file(ev, ck, o, r, &f, cells, err, errlen) < 0;
        file_free(&f);
        if (bad) goto out;
    }
    r->seconds = rc_clock_s() - t0;
    rc = 0;
out:
    rc_rf_eval_close(ev);
    return rc;
}

int rc_intr_write(const char *path, const rc_checkpoint *ck, const rc_intr_result *r, char *err,
                  size_t errlen)
{
    char key[64];
    hid_t f = rc_h5_mem_create(path, H5P_DEFAULT, err, errlen);   /* fsutil.h */
    if (f < 0) return -1;
    const int n = r->n_cells, L = r->n_layers;
    double *best = malloc((size_t)(n ? n : 1) * L * 5 * sizeof *best);
    int lay[RC_MAX_LAYERS];
    int bad = !best;
    for (int k = 0; k < L; k++) lay[k] = r->layers[k] + 1;
    for (int c = 0; c < n && !bad; c++)
        for (int k = 0; k < L; k++) {
            const rc_intr_unit *u = &r->cells[c].best[k];
            double *p = best + ((size_t)c * L + k) * 5;
            p[0] = u->layer + 1; p[1] = u->chan; p[2] = u->row; p[3] = u->col; p[4] = u->r;
        }
    int64_t dl[1] = {L}, db[3] = {n, L, 5}, dm[1] = {r->map_floats};
    bad = bad || rc_h5_write_all(f, "/layers", H5T_STD_I32LE, H5T_NATIVE_INT, 1, dl, lay) < 0 ||
          (n && rc_h5_write_all(f, "/best", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 3, db, best) < 0) ||
          rc_h5_attr_set_string(f, "/", "model", ck->ir->name) < 0 ||
          rc_h5_attr_set_string(f, "/", "spec_hash", ck->spec_hash) < 0 ||
          rc_h5_attr_set_string(f, "/", "best_columns", "layer (1-based), chan, row, col, r") < 0;
    if (!bad) {
        hid_t g = H5Gcreate2(f, "/cells", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad = g < 0 || H5Gclose(g) < 0;
    }
    for (int c = 0; c < n && !bad; c++) {
        const rc_intr_cell *cell = &r->cells[c];
        snprintf(key, sizeof key, "/cells/%d", c);
        bad = rc_h5_write_all(f, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, dm, cell->maps) < 0 ||
              rc_h5_attr_set_string(f, key, "file", cell->file) < 0 ||
              rc_h5_attr_set_string(f, key, "type", cell->type) < 0 ||
              rc_h5_attr_set_int64(f, key, "index", cell->index) < 0 ||
              rc_h5_attr_set_int64(f, key, "windows", cell->windows) < 0;
    }
    free(best);
    if (bad) rc_errf(err, errlen, "%s: HDF5 could not build the file (in memory)", path);
    return rc_h5_mem_commit(f, path, !bad, err, errlen);
}
