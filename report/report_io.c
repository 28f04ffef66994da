/* report_io.c — the readers of `retinac report`: log.csv and metrics.json of a training run,
 * rf.h5, intr.h5 and phenomena.h5 of the analyses, and search.csv / compare.csv of a search.
 *
 * Invariants (report_int.h): 0 read, 1 absent, -1 present but unreadable, with "FILE: what
 * (key)" in err. Every shape is checked against the others before a value is used, so a foreign
 * or truncated file is refused, never drawn half. JSON by cJSON (Debian's libcjson).
 */
#include <cJSON.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "errbuf.h"
#include "eval.h"
#include "h5util.h"
#include "report_int.h"

#define MAX_FILE (256u << 20)

/* ---------------------------------------------------------------- files and CSV */

/* Whole file into a NUL-terminated buffer. 1 if absent. */
static int slurp(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 1;
        return rc_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
        fclose(f);
        return rc_errf(err, errlen, "%s: not a regular file of at most %u MiB", path, MAX_FILE >> 20);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) { fclose(f); return rc_errf(err, errlen, "%s: out of memory", path); }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) { free(buf); return rc_errf(err, errlen, "%s: read error", path); }
    buf[n] = 0;
    if (strlen(buf) != n) { free(buf); return rc_errf(err, errlen, "%s: not a text file (NUL byte)", path); }
    *out = buf;
    if (len) *len = n;
    return 0;
}

#define CSV_MAX_COLS 64

/* Split one CSV line in place (RFC 4180 quotes); returns the field count or -1 (too many
 * fields, an unterminated quote). *next is the start of the following line. */
static int csv_split(char *s, char **fields, char **next)
{
    int n = 0;
    char *p = s;
    for (;;) {
        if (n == CSV_MAX_COLS) return -1;
        char *w = p;
        fields[n++] = w;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == 0) return -1;
                if (*p == '"' && p[1] == '"') { *w++ = '"'; p += 2; continue; }
                if (*p == '"') { p++; break; }
                *w++ = *p++;
            }
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') *w++ = *p++;
        }
        char c = *p;       /* read before the NUL below: w may equal p */
        *w = 0;
        if (c == ',') { p++; continue; }
        if (c == 0) { *next = p; return n; }
        if (c == '\r') {
            p++;
            if (*p == '\n') p++;
        } else if (c == '\n') {
            p++;
        } else {
            return -1;     /* text after a closing quote */
        }
        *next = p;
        return n;
    }
}

static int col_index(char *const *hdr, int nh, const char *name)
{
    for (int i = 0; i < nh; i++)
        if (!strcmp(hdr[i], name)) return i;
    return -1;
}

/* A number field: empty or "nan" -> NaN; anything else must parse. */
static int csv_num(const char *s, double *v)
{
    if (*s == 0) { *v = NAN; return 0; }
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return *end == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- log.csv */

int rep_read_log(const char *path, rep_log *l, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    char *buf;
    int rc = slurp(path, &buf, NULL, err, errlen);
    if (rc) return rc;
    char *hdr[CSV_MAX_COLS], *f[CSV_MAX_COLS], *p = buf, *next;
    int nh = csv_split(p, hdr, &next);
    static const char *const want[5] = {"epoch", "train_loss", "val_loss", "val_r", "lr"};
    int col[5];
    for (int k = 0; k < 5 && nh > 0; k++) col[k] = col_index(hdr, nh, want[k]);
    if (nh <= 0 || col[0] < 0 || col[1] < 0) {
        free(buf);
        return rc_errf(err, errlen, "%s: not a training log (no epoch and train_loss columns)", path);
    }
    int cap = 0;
    for (char *q = next; *q; q++) cap += *q == '\n';
    cap += 1;
    double *m = malloc((size_t)cap * 5 * sizeof *m);
    if (!m) { free(buf); return rc_errf(err, errlen, "%s: out of memory", path); }
    l->epoch = m;
    l->train_loss = m + cap;
    l->val_loss = m + 2 * cap;
    l->val_r = m + 3 * cap;
    l->lr = m + 4 * cap;
    int line = 1;
    p = next;
    while (*p) {
        line++;
        int nf = csv_split(p, f, &next);
        p = next;
        if (nf == 1 && f[0][0] == 0) continue;   /* a blank line */
        if (nf != nh) {
            free(buf);
            rep_log_free(l);
            return rc_errf(err, errlen, "%s: line %d: %d fields, the header has %d", path, line, nf, nh);
        }
        double *dst[5] = {l->epoch, l->train_loss, l->val_loss, l->val_r, l->lr};
        for (int k = 0; k < 5; k++) {
            double v = NAN;
            if (col[k] >= 0 && csv_num(f[col[k]], &v) != 0) {
                rc_errf(err, errlen, "%s: line %d, column %s: '%.40s' is not a number", path, line,
                        want[k], f[col[k]]);
                free(buf);
                rep_log_free(l);
                return -1;
            }
            dst[k][l->n] = v;
        }
        l->n++;
    }
    free(buf);
    return 0;
}

void rep_log_free(rep_log *l)
{
    free(l->epoch);
    memset(l, 0, sizeof *l);
}

/* ---------------------------------------------------------------- metrics.json */

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

int rep_read_metrics(const char *path, rep_metrics *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->mean_r = m->mean_ceiling = m->mean_feve = m->truth_mean_r = NAN;
    char *buf;
    int rc = slurp(path, &buf, NULL, err, errlen);
    if (rc) return rc;
    cJSON *root = cJSON_Parse(buf);
    free(buf);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return rc_errf(err, errlen, "%s: not a JSON object", path);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsString(model)) snprintf(m->model, sizeof m->model, "%.63s", model->valuestring);
    m->truth_mean_r = json_num(root, "truth_mean_r");
    const cJSON *test = cJSON_GetObjectItemCaseSensitive(root, "test");
    if (!test || cJSON_IsNull(test)) { cJSON_Delete(root); return 0; }   /* no test split */
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(test, "cells");
    if (!cJSON_IsObject(test) || !cJSON_IsArray(cells)) {
        cJSON_Delete(root);
        return rc_errf(err, errlen, "%s: test: no cells array (not a retinac metrics file)", path);
    }
    int n = cJSON_GetArraySize(cells);
    m->mean_r = json_num(test, "mean_r");
    m->mean_ceiling = json_num(test, "mean_ceiling");
    m->mean_feve = json_num(test, "mean_feve");
    m->cell_ids = malloc((size_t)(n ? n : 1) * sizeof *m->cell_ids);
    double *v = malloc((size_t)(n ? n : 1) * 3 * sizeof *v);
    if (!m->cell_ids || !v) {
        free(v);
        cJSON_Delete(root);
        rep_metrics_free(m);
        return rc_errf(err, errlen, "%s: out of memory", path);
    }
    m->r = v;
    m->ceiling = v + n;
    m->feve = v + 2 * n;
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem(cells, i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "cell");
        if (!cJSON_IsObject(c) || !cJSON_IsNumber(id)) {
            cJSON_Delete(root);
            rep_metrics_free(m);
            return rc_errf(err, errlen, "%s: test.cells[%d]: no cell number", path, i);
        }
        m->cell_ids[i] = id->valueint;
        m->r[i] = json_num(c, "r");
        m->ceiling[i] = json_num(c, "ceiling");
        m->feve[i] = json_num(c, "feve");
    }
    m->n_cells = n;
    cJSON_Delete(root);
    return 0;
}

void rep_metrics_free(rep_metrics *m)
{
    free(m->cell_ids);
    free(m->r);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- HDF5 */

/* Anything at path (a folder named like the file is then read, and refused, as it was). */
static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int rep_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static hid_t open_h5(const char *path, char *err, size_t errlen)
{
    rc_h5_quiet();
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        rc_errf(err, errlen, "%s: not an HDF5 file", path);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) rc_errf(err, errlen, "%s: cannot open (corrupt HDF5?)", path);
    return f;
}

/* A numeric dataset of the given rank (dims filled in) read as doubles. */
static int read_dset(hid_t f, const char *fname, const char *key, int rank, int64_t *dims,
                     double **out, char *err, size_t errlen)
{
    *out = NULL;
    rc_h5_desc d;
    if (!rc_h5_exists(f, key)) return rc_errf(err, errlen, "%s: %s: missing", fname, key);
    if (rc_h5_describe(f, fname, key, 0, &d, err, errlen) != 0) return -1;
    if (d.rank != rank) return rc_errf(err, errlen, "%s: %s: rank %d, expected %d", fname, key, d.rank, rank);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        dims[i] = d.dims[i];
        if (d.dims[i] > (1 << 24) || n > (1 << 28) / d.dims[i])
            return rc_errf(err, errlen, "%s: %s: too large for a figure", fname, key);
        n *= d.dims[i];
    }
    float *tmp = malloc((size_t)n * sizeof *tmp);
    double *v = malloc((size_t)n * sizeof *v);
    if (!tmp || !v) { free(tmp); free(v); return rc_errf(err, errlen, "%s: %s: out of memory", fname, key); }
    if (rc_h5_read_all_f32(f, key, tmp, n, fname, err, errlen) != 0) { free(tmp); free(v); return -1; }
    for (int64_t i = 0; i < n; i++) v[i] = tmp[i];
    free(tmp);
    *out = v;
    return 0;
}

static float *to_float(const double *v, int64_t n)
{
    float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
    if (f)
        for (int64_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

int rep_read_rf(const char *path, rep_rf *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (!exists(path)) return 1;
    hid_t f = open_h5(path, err, errlen);
    if (f < 0) return -1;
    const char *g = rc_h5_is_group(f, "/grad") ? "grad" : rc_h5_is_group(f, "/revcor") ? "revcor" : NULL;
    if (!g) {
        H5Fclose(f);
        return rc_errf(err, errlen, "%s: no /grad or /revcor group: not a `retinac rf -o` file", path);
    }
    snprintf(r->method, sizeof r->method, "%s", g);
    char key[64];
    int64_t ds[3], dt[2], dc[2], dsg[1], dp[1], di[1];
    double *sp = NULL, *tm = NULL, *ce = NULL, *sg = NULL, *po = NULL, *ids = NULL;
    int bad = 0;
    snprintf(key, sizeof key, "/%s/spatial", g);
    bad = bad || read_dset(f, path, key, 3, ds, &sp, err, errlen);
    snprintf(key, sizeof key, "/%s/temporal", g);
    bad = bad || read_dset(f, path, key, 2, dt, &tm, err, errlen);
    snprintf(key, sizeof key, "/%s/center", g);
    bad = bad || read_dset(f, path, key, 2, dc, &ce, err, errlen);
    snprintf(key, sizeof key, "/%s/sigma", g);
    bad = bad || read_dset(f, path, key, 1, dsg, &sg, err, errlen);
    snprintf(key, sizeof key, "/%s/polarity", g);
    bad = bad || read_dset(f, path, key, 1, dp, &po, err, errlen);
    bad = bad || read_dset(f, path, "/cell_ids", 1, di, &ids, err, errlen);
    H5Fclose(f);
    if (!bad) {
        int64_t n = ds[0];
        if (dt[0] != n || dc[0] != n || dc[1] != 2 || dsg[0] != n || dp[0] != n || di[0] != n)
            bad = rc_errf(err, errlen, "%s: /%s: spatial, temporal, center, sigma, polarity and "
                          "/cell_ids disagree on the number of cells", path, g) != 0;
    }
    if (!bad) {
        r->cells = (int)ds[0];
        r->h = (int)ds[1];
        r->w = (int)ds[2];
        r->history = (int)dt[1];
        r->spatial = to_float(sp, ds[0] * ds[1] * ds[2]);
        r->temporal = to_float(tm, dt[0] * dt[1]);
        r->cell_ids = malloc((size_t)r->cells * sizeof *r->cell_ids);
        r->polarity = malloc((size_t)r->cells * sizeof *r->polarity);
        r->center = ce;
        r->sigma = sg;
        ce = sg = NULL;
        if (!r->spatial || !r->temporal || !r->cell_ids || !r->polarity)
            bad = rc_errf(err, errlen, "%s: out of memory", path) != 0;
        else
            for (int i = 0; i < r->cells; i++) {
                r->cell_ids[i] = (int)ids[i];
                r->polarity[i] = (int)po[i];
            }
    }
    free(sp); free(tm); free(ce); free(sg); free(po); free(ids);
    if (bad) { rep_rf_free(r); return -1; }
    return 0;
}

void rep_rf_free(rep_rf *r)
{
    free(r->cell_ids); free(r->spatial); free(r->temporal); free(r->center); free(r->sigma);
    free(r->polarity);
    memset(r, 0, sizeof *r);
}

/* The layer shapes of the maps from the checkpoint; 0 when they fit /cells/<k>'s length. */
static int intr_shapes(const rc_checkpoint *ck, const double *layers, int n, int64_t len,
                       rep_intr *r)
{
    if (!ck || n > 8) return -1;
    int64_t off = 0;
    int ok = 1;
    for (int k = 0; k < n && ok; k++) {
        int L = (int)layers[k] - 1;   /* /layers is 1-based */
        if (L < 0 || L >= ck->ir->n_layers) { ok = 0; break; }
        const rc_layer *l = &ck->ir->layers[L];
        r->lay_c[k] = l->out.c;
        r->lay_h[k] = l->out.h;
        r->lay_w[k] = l->out.w;
        r->lay_off[k] = off;
        off += (int64_t)l->out.c * l->out.h * l->out.w;
    }
    return ok && off == len ? 0 : -1;
}

int rep_read_intr(const char *path, const rc_checkpoint *ck, rep_intr *r, char *err,
                  size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (!exists(path)) return 1;
    hid_t f = open_h5(path, err, errlen);
    if (f < 0) return -1;
    int64_t d[3], dl[1];
    double *best = NULL, *layers = NULL;
    int bad = read_dset(f, path, "/best", 3, d, &best, err, errlen);
    if (!bad && d[2] != 5)
        bad = rc_errf(err, errlen, "%s: /best: last dimension %lld, expected 5 (layer, chan, row, "
                      "col, r): not a `retinac interneurons -o` file", path, (long long)d[2]) != 0;
    if (!bad) {
        r->cells = (int)d[0];
        r->layers = (int)d[1];
        r->best = best;
        best = NULL;
    }
    /* the maps: optional (an older file, or no checkpoint to give the shapes) */
    if (!bad && rc_h5_exists(f, "/layers") && rc_h5_exists(f, "/cells/0")) {
        bad = read_dset(f, path, "/layers", 1, dl, &layers, err, errlen);
        int64_t dc[1];
        double *m0 = NULL;
        if (!bad) bad = read_dset(f, path, "/cells/0", 1, dc, &m0, err, errlen);
        free(m0);
        if (!bad && dl[0] == r->layers && intr_shapes(ck, layers, r->layers, dc[0], r) == 0) {
            r->map_len = dc[0];
            r->maps = malloc((size_t)r->cells * (size_t)dc[0] * sizeof *r->maps);
            if (!r->maps) bad = rc_errf(err, errlen, "%s: out of memory", path) != 0;
            for (int c = 0; c < r->cells && !bad; c++) {
                char key[32];
                snprintf(key, sizeof key, "/cells/%d", c);
                bad = rc_h5_read_all_f32(f, key, r->maps + (size_t)c * dc[0], dc[0], path, err, errlen) != 0;
            }
            if (bad) { free(r->maps); r->maps = NULL; r->map_len = 0; }
        }
    }
    free(layers);
    free(best);
    H5Fclose(f);
    if (bad) { rep_intr_free(r); return -1; }
    return 0;
}

void rep_intr_free(rep_intr *r)
{
    free(r->best);
    free(r->maps);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- phenomena.h5 */

const rep_panel_info rep_phen_panels[REP_PHEN_PANELS] = {
    {"Step (full field -1 at 0.5 s)", "time (s)", "rate (Hz)"},
    {"Omitted stimulus response", "time (s)", "rate (Hz)"},
    {"Reversing grating", "time (s)", "rate (Hz)"},
    {"Contrast adaptation (0.7, 0.1, 0.7)", "time (s)", "rate (Hz)"},
    {"Motion reversal", "time from reversal (s)", "rate (Hz)"},
    {"Motion anticipation (- - flash)", "bar position (px)", "rate (Hz)"},
    {"Object motion (- - global)", "time (s)", "rate (Hz)"},
    {"Latency vs flash intensity", "intensity", "latency (ms)"},
    {"Nonlinearity (- - contrast 0.1)", "linear prediction", "rate (Hz)"},
};

int rep_is_phenomena(const char *path)
{
    rc_h5_quiet();
    if (H5Fis_hdf5(path) <= 0) return 0;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return 0;
    char gen[64] = "";
    int ok = rc_h5_attr_get_string(f, "/", "generator", gen, sizeof gen) == 0 &&
             !strcmp(gen, "retinac phenomena");
    H5Fclose(f);
    return ok;
}

/* A 1-D trace /src/key of any length, or n 0 when absent. */
static int trace1(hid_t f, const char *fname, const char *src, const char *key, int *n,
                  double **v, char *err, size_t errlen)
{
    char path[256];
    snprintf(path, sizeof path, "/%.60s/%.120s", src, key);
    *n = 0;
    *v = NULL;
    if (!rc_h5_exists(f, path)) return 0;
    int64_t d[1];
    if (read_dset(f, fname, path, 1, d, v, err, errlen) != 0) return -1;
    *n = (int)d[0];
    return 0;
}

/* x for a time trace: seconds of each 10 ms frame, from frame `start`. */
static double *time_axis(int n, double start)
{
    double *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    if (x)
        for (int i = 0; i < n; i++) x[i] = (start + i) * 0.01;
    return x;
}

/* The mean over cells of nl_{x,y}_cells (2, cells, bins) at contrast index k. */
static int nl_mean(hid_t f, const char *fname, const char *src, rep_trace *t, char *err,
                   size_t errlen)
{
    char px[256], py[256];
    snprintf(px, sizeof px, "/%.60s/contrast_fig/nl_x_cells", src);
    snprintf(py, sizeof py, "/%.60s/contrast_fig/nl_y_cells", src);
    if (!rc_h5_exists(f, px) || !rc_h5_exists(f, py)) return 0;
    int64_t dx[3], dy[3];
    double *x = NULL, *y = NULL;
    if (read_dset(f, fname, px, 3, dx, &x, err, errlen) != 0) return -1;
    if (read_dset(f, fname, py, 3, dy, &y, err, errlen) != 0) { free(x); return -1; }
    if (dx[0] != 2 || memcmp(dx, dy, sizeof dx) != 0) {
        free(x);
        free(y);
        return rc_errf(err, errlen, "%s: %s and nl_y_cells: shapes differ or not (2, cells, bins)", fname, px);
    }
    int cells = (int)dx[1], bins = (int)dx[2];
    double *m = calloc((size_t)bins * 4, sizeof *m);
    if (!m) { free(x); free(y); return rc_errf(err, errlen, "%s: out of memory", fname); }
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < bins; b++) {
            double sx = 0, sy = 0;
            for (int c = 0; c < cells; c++) {
                sx += x[((size_t)k * cells + c) * bins + b];
                sy += y[((size_t)k * cells + c) * bins + b];
            }
            m[(size_t)(2 * k) * bins + b] = sx / cells;
            m[(size_t)(2 * k + 1) * bins + b] = sy / cells;
        }
    free(x);
    free(y);
    /* high contrast (index 1) solid; low (index 0) dashed. m is one block: x owns it. */
    t->n = bins;
    t->x = m + 2 * bins;
    t->y = m + 3 * bins;
    t->n2 = bins;
    t->x2 = m;
    t->y2 = m + bins;
    return 0;
}

static void trace_free(rep_trace *t, int panel)
{
    if (panel == 8) {
        free(t->x2);   /* one block, from nl_mean */
    } else {
        free(t->x); free(t->y); free(t->x2); free(t->y2);
    }
    memset(t, 0, sizeof *t);
}

static int read_source(hid_t f, const char *fname, const char *src, rep_phen_source *s, char *err,
                       size_t errlen)
{
    snprintf(s->name, sizeof s->name, "%.63s", src);
    char obj[128], model[128] = "";
    snprintf(obj, sizeof obj, "/%.100s", src);
    int64_t hist = 0;
    if (rc_h5_attr_get_int64(f, obj, "history", &hist) != 0 || hist < 0 || hist > 100000)
        return rc_errf(err, errlen, "%s: %s: no history attribute (not a `retinac phenomena` column)",
                       fname, obj);
    if (rc_h5_attr_get_string(f, obj, "model", model, sizeof model) == 0) {
        s->is_retina = !strcmp(model, "synthetic retina");
        if (!s->is_retina && model[0]) snprintf(s->name, sizeof s->name, "%.63s", model);
    }
    static const char *const time_keys[4] = {"step/response", "osr/response",
                                             "reversing_grating/response",
                                             "contrast_adaptation/response"};
    for (int p = 0; p < 4; p++) {
        rep_trace *t = &s->panel[p];
        if (trace1(f, fname, src, time_keys[p], &t->n, &t->y, err, errlen) != 0) return -1;
        if (t->n && !(t->x = time_axis(t->n, (double)hist))) return rc_errf(err, errlen, "out of memory");
    }
    rep_trace *t = &s->panel[4];
    if (trace1(f, fname, src, "motion_reversal/response", &t->n, &t->y, err, errlen) != 0) return -1;
    if (t->n && !(t->x = time_axis(t->n, -(t->n - 1) / 2.0))) return rc_errf(err, errlen, "out of memory");
    t = &s->panel[5];
    int nx = 0, nx2 = 0;
    if (trace1(f, fname, src, "motion_anticipation/right_response", &t->n, &t->y, err, errlen) ||
        trace1(f, fname, src, "motion_anticipation/right_position_px", &nx, &t->x, err, errlen) ||
        trace1(f, fname, src, "motion_anticipation/flash_profile", &t->n2, &t->y2, err, errlen) ||
        trace1(f, fname, src, "motion_anticipation/flash_position_px", &nx2, &t->x2, err, errlen))
        return -1;
    if (nx != t->n || nx2 != t->n2)
        return rc_errf(err, errlen, "%s: /%s/motion_anticipation: positions and responses differ in length",
                       fname, src);
    t = &s->panel[6];
    if (trace1(f, fname, src, "oms/differential", &t->n, &t->y, err, errlen) ||
        trace1(f, fname, src, "oms/global", &t->n2, &t->y2, err, errlen))
        return -1;
    if ((t->n && !(t->x = time_axis(t->n, (double)hist))) ||
        (t->n2 && !(t->x2 = time_axis(t->n2, (double)hist))))
        return rc_errf(err, errlen, "out of memory");
    t = &s->panel[7];
    if (trace1(f, fname, src, "latency/latency_ms", &t->n, &t->y, err, errlen) ||
        trace1(f, fname, src, "latency/intensity", &nx, &t->x, err, errlen))
        return -1;
    if (nx != t->n)
        return rc_errf(err, errlen, "%s: /%s/latency: intensity and latency_ms differ in length", fname, src);
    return nl_mean(f, fname, src, &s->panel[8], err, errlen);
}

int rep_read_phen(const char *path, rep_phen *p, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!exists(path)) return 1;
    hid_t f = open_h5(path, err, errlen);
    if (f < 0) return -1;
    char gen[64] = "";
    if (rc_h5_attr_get_string(f, "/", "generator", gen, sizeof gen) != 0 || strcmp(gen, "retinac phenomena")) {
        H5Fclose(f);
        return rc_errf(err, errlen, "%s: not a `retinac phenomena -o` file (root attribute generator)", path);
    }
    char **names = NULL;
    int n = rc_h5_list(f, "/", &names);
    if (n < 0) { H5Fclose(f); return rc_errf(err, errlen, "%s: cannot list the root group", path); }
    p->src = calloc((size_t)(n ? n : 1), sizeof *p->src);
    int bad = !p->src ? rc_errf(err, errlen, "%s: out of memory", path) : 0;
    for (int i = 0; i < n && !bad; i++) {
        char obj[300];
        snprintf(obj, sizeof obj, "/%.250s", names[i]);
        if (!rc_h5_is_group(f, obj)) continue;
        bad = read_source(f, path, names[i], &p->src[p->n_sources], err, errlen);
        p->n_sources++;
    }
    rc_h5_free_names(names, n);
    H5Fclose(f);
    if (!bad && p->n_sources == 0) bad = rc_errf(err, errlen, "%s: no columns (sources) in the file", path);
    if (bad) { rep_phen_free(p); return -1; }
    return 0;
}

void rep_phen_free(rep_phen *p)
{
    for (int i = 0; i < p->n_sources; i++)
        for (int k = 0; k < REP_PHEN_PANELS; k++) trace_free(&p->src[i].panel[k], k);
    free(p->src);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- search.csv / compare.csv */

int rep_read_search(const char *path, rep_search *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    char *buf;
    int rc = slurp(path, &buf, NULL, err, errlen);
    if (rc) return rc;
    char *hdr[CSV_MAX_COLS], *f[CSV_MAX_COLS], *next;
    int nh = csv_split(buf, hdr, &next);
    int c_name = nh > 0 ? col_index(hdr, nh, "name") : -1;
    int c_status = nh > 0 ? col_index(hdr, nh, "status") : -1;
    int c_loss = nh > 0 ? col_index(hdr, nh, "best_val_loss") : -1;
    if (c_name != 1 || c_status < c_name || c_loss < 0) {
        free(buf);
        return rc_errf(err, errlen, "%s: not a `retinac search` table (index,name,<dims>,status,...,"
                       "best_val_loss)", path);
    }
    s->n_dims = c_status - c_name - 1;
    if (s->n_dims > 16) { free(buf); return rc_errf(err, errlen, "%s: more than 16 searched dimensions", path); }
    for (int d = 0; d < s->n_dims; d++) snprintf(s->dims[d], REP_NAME, "%.63s", hdr[c_name + 1 + d]);
    int cap = 1;
    for (char *q = next; *q; q++) cap += *q == '\n';
    s->values = malloc((size_t)cap * (size_t)(s->n_dims ? s->n_dims : 1) * sizeof *s->values);
    s->svalues = malloc((size_t)cap * (size_t)(s->n_dims ? s->n_dims : 1) * sizeof *s->svalues);
    s->val_loss = malloc((size_t)cap * sizeof *s->val_loss);
    if (!s->values || !s->svalues || !s->val_loss) {
        free(buf);
        rep_search_free(s);
        return rc_errf(err, errlen, "%s: out of memory", path);
    }
    char *p = next;
    int line = 1;
    while (*p) {
        line++;
        int nf = csv_split(p, f, &next);
        p = next;
        if (nf == 1 && f[0][0] == 0) continue;
        if (nf != nh) {
            free(buf);
            rep_search_free(s);
            return rc_errf(err, errlen, "%s: line %d: %d fields, the header has %d", path, line, nf, nh);
        }
        for (int d = 0; d < s->n_dims; d++) {
            const char *t = f[c_name + 1 + d];
            double v;
            if (csv_num(t, &v) != 0) v = NAN;
            s->values[(size_t)s->n * s->n_dims + d] = v;
            snprintf(s->svalues[(size_t)s->n * s->n_dims + d], REP_NAME, "%.63s", t);
        }
        double loss = NAN;
        if (!strcmp(f[c_status], "ok") && csv_num(f[c_loss], &loss) != 0) loss = NAN;
        s->val_loss[s->n++] = loss;
    }
    free(buf);
    return 0;
}

void rep_search_free(rep_search *s)
{
    free(s->values);
    free(s->svalues);
    free(s->val_loss);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- predictions */

int rep_read_traces(const rc_checkpoint *ck, const char *data, rep_traces *t, char *note,
                    size_t notelen, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    note[0] = 0;
    if (!ck) {
        snprintf(note, notelen, "no best.h5 (written by retinac train)");
        return 1;
    }
    const char *rec = data && *data ? data : ck->data_path;
    if (!rec[0] || !exists(rec)) {
        snprintf(note, notelen, "the recording %.900s is not here: pass --data FILE", rec[0] ? rec : "(none named)");
        return 1;
    }
    rc_eval_metrics m;
    int rc = rc_eval_test_traces(ck, rec, "c", &m, &t->pred, &t->rate, &t->n, err, errlen);
    if (rc == RC_ERR_NO_TEST) {
        snprintf(note, notelen, "%.900s has no test split", rec);
        return 1;
    }
    if (rc == 0) {
        snprintf(t->data, sizeof t->data, "%s", rec);
        t->cells = ck->cells;
        t->mean_r = m.mean_r;
    }
    rc_eval_metrics_free(&m);
    return rc == 0 ? 0 : -1;
}

void rep_traces_free(rep_traces *t)
{
    free(t->pred);
    free(t->rate);
    memset(t, 0, sizeof *t);
}
