/* data_src.c — recording layouts: probing and validating the Baccus and openretina layouts,
 * opening the frame and label sources of each split, and reading them by hyperslab (HDF5) or
 * by offset (.npy), with the crop applied. See data.h for the layouts and data_int.h for the
 * segment model.
 *
 * Invariants: every key, rank, dtype and length that a split uses is checked before any read;
 * messages are "FILE: KEY: what"; reads reject NaN/Inf and name the frame or sample; nothing
 * here normalizes or allocates more than the caller's range needs.
 */
#include "data_int.h"
#include "h5util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ERRF rc_errf

/* ---------------------------------------------------------------------------------------- */
/* .npy (openretina's shared stimuli): little-endian uint8 / float32 / float64, C order.     */

typedef struct {
    int kind;          /* 'u', 'f', 'd' */
    int item;
    int rank;
    int64_t shape[4];
    int64_t off;
} npy_hdr;

static int npy_parse(const char *fn, npy_hdr *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    FILE *f = fopen(fn, "rb");
    if (!f) return ERRF(err, errlen, "%s: cannot open: %s", fn, strerror(errno));
    unsigned char pre[12];
    int rc = -1;
    char *hdr = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        ERRF(err, errlen, "%s: not a .npy file (bad magic)", fn);
        goto out;
    }
    size_t hlen, hstart;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
        hstart = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) { ERRF(err, errlen, "%s: truncated .npy header", fn); goto out; }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) | ((size_t)pre[11] << 24);
        hstart = 12;
    } else {
        ERRF(err, errlen, "%s: unsupported .npy version %d", fn, pre[6]);
        goto out;
    }
    if (hlen > 1 << 20) { ERRF(err, errlen, "%s: .npy header too long", fn); goto out; }
    hdr = calloc(hlen + 1, 1);
    if (!hdr || fread(hdr, 1, hlen, f) != hlen) { ERRF(err, errlen, "%s: truncated .npy header", fn); goto out; }
    const char *p = strstr(hdr, "'descr'");
    const char *q = p ? strchr(p + 7, '\'') : NULL;
    if (!q) { ERRF(err, errlen, "%s: .npy header has no descr", fn); goto out; }
    q++;
    if (!strncmp(q, "|u1'", 4) || !strncmp(q, "<u1'", 4)) { h->kind = 'u'; h->item = 1; }
    else if (!strncmp(q, "<f4'", 4)) { h->kind = 'f'; h->item = 4; }
    else if (!strncmp(q, "<f8'", 4)) { h->kind = 'd'; h->item = 8; }
    else {
        ERRF(err, errlen, "%s: unsupported .npy dtype %.6s (uint8, <f4, <f8 only)", fn, q);
        goto out;
    }
    p = strstr(hdr, "'fortran_order'");
    if (!p || !strstr(p, "False")) { ERRF(err, errlen, "%s: Fortran-order .npy not supported", fn); goto out; }
    p = strstr(hdr, "'shape'");
    p = p ? strchr(p, '(') : NULL;
    if (!p) { ERRF(err, errlen, "%s: .npy header has no shape", fn); goto out; }
    p++;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        if (!isdigit((unsigned char)*p) || h->rank == 4) {
            ERRF(err, errlen, "%s: .npy shape not supported (rank 3 or 4 expected)", fn);
            goto out;
        }
        h->shape[h->rank++] = strtoll(p, (char **)&p, 10);
    }
    h->off = (int64_t)(hstart + hlen);
    struct stat st;
    int64_t n = h->item;
    for (int i = 0; i < h->rank; i++) n *= h->shape[i];
    if (stat(fn, &st) != 0 || (int64_t)st.st_size < h->off + n) {
        ERRF(err, errlen, "%s: truncated .npy data (%lld bytes expected after the header)", fn, (long long)n);
        goto out;
    }
    rc = 0;
out:
    free(hdr);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Probe                                                                                      */

/* Frames dataset as (T,H,W): rank 3, or rank 4 with a leading channel dimension of 1. */
static int frames_shape(hid_t f, const char *fn, const char *key, int64_t *T, int *H, int *W,
                        char *dtype, int *rank, char *err, size_t errlen)
{
    rc_h5_desc d;
    if (rc_h5_describe(f, fn, key, 0, &d, err, errlen) < 0) return -1;
    int off;
    if (d.rank == 3) off = 0;
    else if (d.rank == 4 && d.dims[0] == 1) off = 1;
    else if (d.rank == 4)
        return ERRF(err, errlen, "%s: %s: %lld channels; only single-channel stimuli are supported",
                    fn, key, (long long)d.dims[0]);
    else
        return ERRF(err, errlen, "%s: %s: expected rank 3 (T,H,W), found rank %d", fn, key, d.rank);
    *T = d.dims[off];
    *H = (int)d.dims[off + 1];
    *W = (int)d.dims[off + 2];
    if (d.dims[off + 1] > 4096 || d.dims[off + 2] > 4096)
        return ERRF(err, errlen, "%s: %s: frame %lldx%lld too large", fn, key,
                    (long long)d.dims[off + 1], (long long)d.dims[off + 2]);
    if (dtype) snprintf(dtype, 16, "%s", d.type_name);
    if (rank) *rank = d.rank;
    return 0;
}

/* An optional key: 1 present, 0 absent, -1 (err set) present as a link that leads nowhere (a
 * dangling soft or external link, a loop), which must not read as "absent". */
static int optional_key(hid_t f, const char *fn, const char *key, char *err, size_t errlen)
{
    if (rc_h5_exists(f, key)) return 1;
    char why[800];
    if (rc_h5_broken(f, key, why, sizeof why)) return ERRF(err, errlen, "%s: %s: %s", fn, key, why);
    return 0;
}

/* A response dataset: rank 2 (cells, T) with T frames; sets/ checks *cells. */
static int check_rate(hid_t f, const char *fn, const char *key, int64_t T, int *cells,
                      const char *cells_from, char *err, size_t errlen)
{
    rc_h5_desc d;
    if (rc_h5_describe(f, fn, key, 0, &d, err, errlen) < 0) return -1;
    if (d.rank != 2)
        return ERRF(err, errlen, "%s: %s: expected rank 2 (cells,T), found rank %d", fn, key, d.rank);
    if (d.dims[1] != T)
        return ERRF(err, errlen, "%s: %s: length %lld does not match the %lld stimulus frames", fn,
                    key, (long long)d.dims[1], (long long)T);
    if (*cells == 0) *cells = (int)d.dims[0];
    else if (d.dims[0] != *cells)
        return ERRF(err, errlen, "%s: %s: %lld cells, but %s has %d", fn, key, (long long)d.dims[0],
                    cells_from, *cells);
    return 0;
}

static int is_cellnn(const char *name, long *id)
{
    if (strncmp(name, "cell", 4) != 0 || !isdigit((unsigned char)name[4])) return 0;
    char *end;
    long v = strtol(name + 4, &end, 10);
    if (*end) return 0;
    if (id) *id = v;
    return 1;
}

/* Label keys the layout defines; other datasets in response/ and repeats/ are ignored. */
static int is_label_key(const char *name)
{
    return !strncmp(name, "firing_rate_", 12) || !strcmp(name, "binned") || !strcmp(name, "true_rate");
}

static int probe_baccus_split(hid_t f, const char *fn, rc_data_probe *p, int s, char *err, size_t errlen)
{
    const char *sn = s == RC_TRAIN ? "train" : "test";
    char key[160];
    snprintf(key, sizeof key, "/%s/stimulus", sn);
    int64_t T;
    int H, W;
    char dt[16];
    if (frames_shape(f, fn, key, &T, &H, &W, dt, NULL, err, errlen) < 0) return -1;
    if (s == RC_TRAIN) {
        p->h = H; p->w = W;
        snprintf(p->stim_dtype, sizeof p->stim_dtype, "%s", dt);
    } else if (H != p->h || W != p->w) {
        return ERRF(err, errlen, "%s: %s: frames %dx%d, but /train/stimulus has %dx%d", fn, key, H, W,
                    p->h, p->w);
    }
    p->frames[s] = T;
    snprintf(key, sizeof key, "/%s/time", sn);
    int has = optional_key(f, fn, key, err, errlen);
    if (has < 0) return -1;
    if (has) {
        rc_h5_desc d;
        if (rc_h5_describe(f, fn, key, 0, &d, err, errlen) < 0) return -1;
        int64_t n = d.rank == 1 ? d.dims[0] : (d.rank == 2 && d.dims[1] == 1 ? d.dims[0] : -1);
        if (n < 0) return ERRF(err, errlen, "%s: %s: expected rank 1 (T), found rank %d", fn, key, d.rank);
        if (n != T)
            return ERRF(err, errlen, "%s: %s: length %lld does not match the %lld stimulus frames", fn,
                        key, (long long)n, (long long)T);
        if (s == RC_TRAIN) p->has_time = 1;
    }
    snprintf(key, sizeof key, "/%s/response", sn);
    char **names = NULL;
    int n = rc_h5_list(f, key, &names);
    if (n < 0) return ERRF(err, errlen, "%s: %s: missing (no response group)", fn, key);
    int rc = 0, nrate = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char k[160];
        snprintf(k, sizeof k, "/%s/response/%s", sn, names[i]);
        if (!is_label_key(names[i])) continue;
        if (!rc_h5_is_dataset(f, k)) {
            if (optional_key(f, fn, k, err, errlen) < 0) { rc = -1; break; }
            continue;
        }
        if (check_rate(f, fn, k, T, &p->cells, p->cells ? "the training response" : k, err, errlen) < 0) {
            rc = -1;
            break;
        }
        if (!strcmp(names[i], "true_rate")) {
            if (s == RC_TEST) p->has_truth = 1;
            continue;
        }
        nrate++;
        if (s == RC_TRAIN && p->n_rate_keys < RC_DATA_MAX_KEYS)
            snprintf(p->rate_keys[p->n_rate_keys++], 64, "%s", names[i]);
    }
    rc_h5_free_names(names, n);
    if (rc < 0) return -1;
    if (nrate == 0) return ERRF(err, errlen, "%s: %s: no response datasets", fn, key);
    if (s == RC_TEST && optional_key(f, fn, "/test/repeats", err, errlen) < 0) return -1;
    if (s == RC_TEST && rc_h5_is_group(f, "/test/repeats")) {
        n = rc_h5_list(f, "/test/repeats", &names);
        if (n < 0) return ERRF(err, errlen, "%s: /test/repeats: cannot list", fn);
        int ncell = 0, R = 0;
        for (int i = 0; i < n && rc == 0; i++) {
            char k[160];
            snprintf(k, sizeof k, "/test/repeats/%s", names[i]);
            if (!(is_cellnn(names[i], NULL) || is_label_key(names[i]))) continue;
            if (!rc_h5_is_dataset(f, k)) {
                if (optional_key(f, fn, k, err, errlen) < 0) { rc = -1; break; }
                continue;
            }
            rc_h5_desc d;
            if (rc_h5_describe(f, fn, k, 0, &d, err, errlen) < 0) { rc = -1; break; }
            if (is_cellnn(names[i], NULL)) {
                if (d.rank != 2) { rc = ERRF(err, errlen, "%s: %s: expected rank 2 (repeats,T), found rank %d", fn, k, d.rank); break; }
                if (d.dims[1] != T) { rc = ERRF(err, errlen, "%s: %s: length %lld does not match the %lld test frames", fn, k, (long long)d.dims[1], (long long)T); break; }
                if (R && d.dims[0] != R) { rc = ERRF(err, errlen, "%s: %s: %lld repeats, other cells have %d", fn, k, (long long)d.dims[0], R); break; }
                R = (int)d.dims[0];
                ncell++;
            } else {
                if (d.rank != 3) { rc = ERRF(err, errlen, "%s: %s: expected rank 3 (repeats,cells,T), found rank %d", fn, k, d.rank); break; }
                if (d.dims[2] != T) { rc = ERRF(err, errlen, "%s: %s: length %lld does not match the %lld test frames", fn, k, (long long)d.dims[2], (long long)T); break; }
                if (d.dims[1] != p->cells) { rc = ERRF(err, errlen, "%s: %s: %lld cells, but the responses have %d", fn, k, (long long)d.dims[1], p->cells); break; }
                if (p->repeats && d.dims[0] != p->repeats) { rc = ERRF(err, errlen, "%s: %s: %lld repeats, other keys have %d", fn, k, (long long)d.dims[0], p->repeats); break; }
                p->repeats = (int)d.dims[0];
                if (p->n_repeat_keys < RC_DATA_MAX_KEYS) snprintf(p->repeat_keys[p->n_repeat_keys++], 64, "%s", names[i]);
            }
        }
        rc_h5_free_names(names, n);
        if (rc < 0) return -1;
        if (ncell) {
            if (ncell != p->cells)
                return ERRF(err, errlen, "%s: /test/repeats: %d cellNN datasets for %d cells", fn, ncell, p->cells);
            if (p->repeats && R != p->repeats)
                return ERRF(err, errlen, "%s: /test/repeats: cellNN have %d repeats, other keys %d", fn, R, p->repeats);
            p->repeats = R;
            if (p->n_repeat_keys < RC_DATA_MAX_KEYS) snprintf(p->repeat_keys[p->n_repeat_keys++], 64, "cellNN");
        }
    }
    return 0;
}

static int probe_baccus(hid_t f, const char *fn, rc_data_probe *p, char *err, size_t errlen)
{
    p->layout = RC_LAYOUT_BACCUS;
    if (probe_baccus_split(f, fn, p, RC_TRAIN, err, errlen) < 0) return -1;
    int train_cells = p->cells;
    int has_test = optional_key(f, fn, "/test", err, errlen);
    if (has_test < 0) return -1;
    if (has_test) {
        p->has_test = 1;
        if (probe_baccus_split(f, fn, p, RC_TEST, err, errlen) < 0) return -1;
        if (p->cells != train_cells) return ERRF(err, errlen, "%s: /test/response: cell count differs from /train/response", fn);
    }
    int has_centers = optional_key(f, fn, "/cells/centers", err, errlen);
    if (has_centers < 0) return -1;
    if (has_centers) {
        rc_h5_desc d;
        if (rc_h5_describe(f, fn, "/cells/centers", 0, &d, err, errlen) < 0) return -1;
        if (d.rank != 2 || d.dims[0] != p->cells || d.dims[1] != 2)
            return ERRF(err, errlen, "%s: /cells/centers: expected shape (%d,2) (row,col per cell)", fn, p->cells);
        if (d.is_float) return ERRF(err, errlen, "%s: /cells/centers: dtype %s; expected integers", fn, d.type_name);
        p->has_centers = 1;
    }
    char g[64];
    if (rc_h5_attr_get_string(f, "/", "generator", g, sizeof g) == 0 && !strncmp(g, "retinac synth", 13)) {
        p->is_synthetic = 1;
        rc_h5_attr_get_int64(f, "/", "seed", &p->synth_seed);
        rc_h5_attr_get_string(f, "/", "stimulus", p->synth_stimulus, sizeof p->synth_stimulus);
    }
    return 0;
}

static void stimuli_dir(const char *path, const rc_data_opts *o, char *out, size_t n)
{
    if (o && o->stimuli_dir) { snprintf(out, n, "%s", o->stimuli_dir); return; }
    const char *s = strrchr(path, '/');
    if (s) snprintf(out, n, "%.*s/stimuli", (int)(s - path), path);
    else snprintf(out, n, "stimuli");
}

/* openretina: one stimulus named `name`; frames from stimulus_<name> or <dir>/<name>.npy. */
static int probe_or_stim(hid_t f, const char *fn, const char *dir, const char *name, int64_t *T,
                         int *H, int *W, char *dtype, char *err, size_t errlen)
{
    char key[160];
    snprintf(key, sizeof key, "/stimulus_%s", name);
    int has = optional_key(f, fn, key, err, errlen);
    if (has < 0) return -1;
    if (has) return frames_shape(f, fn, key, T, H, W, dtype, NULL, err, errlen);
    char np[512];
    snprintf(np, sizeof np, "%s/%s.npy", dir, name);
    npy_hdr h;
    if (access(np, R_OK) != 0)
        return ERRF(err, errlen, "%s: responses_%s: no stimulus (neither %s nor %s)", fn, name, key, np);
    if (npy_parse(np, &h, err, errlen) < 0) return -1;
    int off = h.rank == 4 ? 1 : 0;
    if (h.rank == 4 && h.shape[0] != 1)
        return ERRF(err, errlen, "%s: %lld channels; only single-channel stimuli are supported", np, (long long)h.shape[0]);
    if (h.rank != 3 && h.rank != 4) return ERRF(err, errlen, "%s: expected rank 3 or 4, found %d", np, h.rank);
    *T = h.shape[off];
    *H = (int)h.shape[off + 1];
    *W = (int)h.shape[off + 2];
    if (*T <= 0 || *H <= 0 || *W <= 0) return ERRF(err, errlen, "%s: empty stimulus", np);
    snprintf(dtype, 16, "%s", h.kind == 'u' ? "uint8" : h.kind == 'f' ? "float32" : "float64");
    return 0;
}

static int probe_openretina(hid_t f, const char *path, const rc_data_opts *o, rc_data_probe *p,
                            char *err, size_t errlen)
{
    const char *fn = path;
    p->layout = RC_LAYOUT_OPENRETINA;
    const char *test = o && o->test_name ? o->test_name : "test";
    char dir[400];
    stimuli_dir(path, o, dir, sizeof dir);
    char **names = NULL;
    int n = rc_h5_list(f, "/", &names);
    if (n < 0) return ERRF(err, errlen, "%s: cannot list the root group", fn);
    int rc = 0;
    char stims[RC_DATA_MAX_KEYS][64];
    int ns = 0;
    for (int i = 0; i < n; i++) {
        if (strncmp(names[i], "responses_", 10) != 0) continue;
        if (ns == RC_DATA_MAX_KEYS) { rc = ERRF(err, errlen, "%s: more than %d stimuli", fn, RC_DATA_MAX_KEYS); break; }
        if (strlen(names[i] + 10) >= 64 || !names[i][10]) { rc = ERRF(err, errlen, "%s: /%s: bad stimulus name", fn, names[i]); break; }
        snprintf(stims[ns++], 64, "%s", names[i] + 10);
    }
    rc_h5_free_names(names, n);
    if (rc < 0) return -1;
    if (ns == 0) return ERRF(err, errlen, "%s: no responses_<stimulus> datasets (openretina layout)", fn);
    /* test first, then training stimuli in name order */
    for (int i = 0; i < ns; i++)
        if (!strcmp(stims[i], test)) { p->has_test = 1; memcpy(p->stims[p->n_stims++], stims[i], 64); }
    for (int i = 0; i < ns; i++)
        if (strcmp(stims[i], test)) memcpy(p->stims[p->n_stims++], stims[i], 64);
    if (p->n_stims == p->has_test)
        return ERRF(err, errlen, "%s: no training stimulus (only responses_%s)", fn, test);
    for (int i = 0; i < p->n_stims; i++) {
        int64_t T;
        int H, W;
        char dt[16];
        if (probe_or_stim(f, fn, dir, p->stims[i], &T, &H, &W, dt, err, errlen) < 0) return -1;
        if (i == 0) { p->h = H; p->w = W; }
        if (i == (p->has_test ? 1 : 0)) snprintf(p->stim_dtype, sizeof p->stim_dtype, "%s", dt);
        if (H != p->h || W != p->w)
            return ERRF(err, errlen, "%s: stimulus %s: frames %dx%d differ from %dx%d", fn, p->stims[i], H, W, p->h, p->w);
        char key[160];
        snprintf(key, sizeof key, "/responses_%s", p->stims[i]);
        if (check_rate(f, fn, key, T, &p->cells, "the first stimulus' responses", err, errlen) < 0) return -1;
        p->frames[(p->has_test && i == 0) ? RC_TEST : RC_TRAIN] += T;
    }
    snprintf(p->rate_keys[0], 64, "responses_<stimulus>");
    p->n_rate_keys = 1;
    return 0;
}

int rc__probe(const char *path, hid_t f, const rc_data_opts *o, rc_data_probe *p, char *err,
              size_t errlen)
{
    memset(p, 0, sizeof *p);
    rc_layout lay = o ? o->layout : RC_LAYOUT_AUTO;
    if (lay == RC_LAYOUT_AUTO) {
        char why[800];
        if (rc_h5_exists(f, "/train") || rc_h5_broken(f, "/train", why, sizeof why)) lay = RC_LAYOUT_BACCUS;
        else {
            char **names = NULL;
            int n = rc_h5_list(f, "/", &names);
            for (int i = 0; i < n; i++)
                if (!strncmp(names[i], "responses_", 10)) lay = RC_LAYOUT_OPENRETINA;
            rc_h5_free_names(names, n);
        }
    }
    if (lay == RC_LAYOUT_BACCUS) return probe_baccus(f, path, p, err, errlen);
    if (lay == RC_LAYOUT_OPENRETINA) return probe_openretina(f, path, o, p, err, errlen);
    return ERRF(err, errlen, "%s: not a recording: neither /train/stimulus (Baccus layout) nor "
                "responses_<stimulus> (openretina layout) found", path);
}

hid_t rc__open_file(const char *path, char *err, size_t errlen)
{
    rc_h5_quiet();
    if (access(path, R_OK) != 0) return ERRF(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) return ERRF(err, errlen, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return ERRF(err, errlen, "%s: cannot open as HDF5 (truncated or corrupt file?)", path);
    return f;
}

int rc_data_probe_file(const char *path, const rc_data_opts *opts, rc_data_probe *p, char *err,
                       size_t errlen)
{
    hid_t f = rc__open_file(path, err, errlen);
    if (f < 0) return -1;
    int rc = rc__probe(path, f, opts, p, err, errlen);
    H5Fclose(f);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening sources                                                                            */

void rc__crop_origin(int H, int W, int crop, int row, int col, int *r0, int *c0)
{
    int r = row - crop / 2, c = col - crop / 2;
    if (r > H - crop) r = H - crop;
    if (c > W - crop) c = W - crop;
    *r0 = r < 0 ? 0 : r;
    *c0 = c < 0 ? 0 : c;
}

static int seg_open_h5(rc_data *d, rc_seg *s, const char *key, const char *rate_key, char *err,
                       size_t errlen)
{
    snprintf(s->name, sizeof s->name, "%s", key);
    snprintf(s->rate_name, sizeof s->rate_name, "%s", rate_key);
    int H, W;
    if (frames_shape(d->file, d->path, key, &s->T, &H, &W, NULL, &s->rank, err, errlen) < 0) return -1;
    s->dset = H5Dopen2(d->file, key, H5P_DEFAULT);
    if (s->dset < 0) return ERRF(err, errlen, "%s: %s: cannot open", d->path, key);
    int cells = d->info.file_cells;
    if (check_rate(d->file, d->path, rate_key, s->T, &cells, "the training response", err, errlen) < 0) return -1;
    s->rate = H5Dopen2(d->file, rate_key, H5P_DEFAULT);
    if (s->rate < 0) return ERRF(err, errlen, "%s: %s: cannot open", d->path, rate_key);
    return 0;
}

static int add_seg(rc_split_src *sp, rc_seg **out)
{
    rc_seg *v = realloc(sp->seg, (size_t)(sp->n + 1) * sizeof *v);
    if (!v) return -1;
    sp->seg = v;
    rc_seg *s = &v[sp->n++];
    memset(s, 0, sizeof *s);
    s->dset = s->rate = -1;
    s->npy_fd = -1;
    *out = s;
    return 0;
}

int rc__open_sources(rc_data *d, const rc_data_opts *o, const rc_data_probe *p, char *err,
                     size_t errlen)
{
    const char *fn = d->path;
    if (p->layout == RC_LAYOUT_BACCUS) {
        const char *rk = o->rate_key ? o->rate_key : "firing_rate_10ms";
        if (strlen(rk) > 60 || strchr(rk, '/')) return ERRF(err, errlen, "%s: bad rate key '%s'", fn, rk);
        snprintf(d->info.rate_key, sizeof d->info.rate_key, "%s", rk);
        for (int s = 0; s < (p->has_test ? 2 : 1); s++) {
            const char *sn = s == RC_TRAIN ? "train" : "test";
            char key[160], rate[160];
            snprintf(key, sizeof key, "/%s/stimulus", sn);
            snprintf(rate, sizeof rate, "/%s/response/%s", sn, rk);
            char why[800];
            if (rc_h5_unresolved(d->file, rate, why, sizeof why)) {
                char have[256] = "";
                for (int i = 0; i < p->n_rate_keys; i++)
                    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s", i ? ", " : "", p->rate_keys[i]);
                return ERRF(err, errlen, "%s: %s: %s (rate keys present: %s)", fn, rate, why, have);
            }
            rc_seg *sg;
            if (add_seg(&d->sp[s], &sg) < 0) return ERRF(err, errlen, "out of memory");
            if (seg_open_h5(d, sg, key, rate, err, errlen) < 0) return -1;
            d->sp[s].T = sg->T;
        }
        if (p->has_test) {
            char k[160];
            snprintf(k, sizeof k, "/test/repeats/%s", rk);
            int has_cellnn = 0;
            for (int i = 0; i < p->n_repeat_keys; i++) has_cellnn |= !strcmp(p->repeat_keys[i], "cellNN");
            if (rc_h5_is_dataset(d->file, k)) {
                d->rep_kind = 1;
                snprintf(d->rep_key, sizeof d->rep_key, "%s", k);
            } else if (has_cellnn) {
                /* cellNN datasets, in the order of the int after "cell" */
                char **names = NULL;
                int n = rc_h5_list(d->file, "/test/repeats", &names);
                d->rep_cell_keys = calloc((size_t)p->cells, sizeof *d->rep_cell_keys);
                long *ids = calloc((size_t)p->cells, sizeof *ids);
                int m = 0;
                if (n < 0 || !d->rep_cell_keys || !ids) { free(ids); rc_h5_free_names(names, n); return ERRF(err, errlen, "%s: /test/repeats: cannot list", fn); }
                for (int i = 0; i < n; i++) {
                    long id;
                    if (!is_cellnn(names[i], &id) || m >= p->cells) continue;
                    int j = m++;
                    while (j > 0 && ids[j - 1] > id) { ids[j] = ids[j - 1]; d->rep_cell_keys[j] = d->rep_cell_keys[j - 1]; j--; }
                    ids[j] = id;
                    d->rep_cell_keys[j] = names[i];
                    names[i] = NULL;
                }
                free(ids);
                rc_h5_free_names(names, n);
                d->rep_kind = 2;
                snprintf(d->rep_key, sizeof d->rep_key, "/test/repeats/cellNN");
            }
            if (d->rep_kind) d->info.n_repeats = p->repeats;
            if (p->has_truth) snprintf(d->truth_key, sizeof d->truth_key, "/test/response/true_rate");
        }
        return 0;
    }
    /* openretina */
    if (o->rate_key && strcmp(o->rate_key, "firing_rate_10ms") != 0)
        return ERRF(err, errlen, "%s: rate key '%s' does not apply to the openretina layout (responses_<stimulus>)", fn, o->rate_key);
    snprintf(d->info.rate_key, sizeof d->info.rate_key, "responses_<stimulus>");
    char dir[400];
    stimuli_dir(fn, o, dir, sizeof dir);
    for (int i = 0; i < p->n_stims; i++) {
        int s = (p->has_test && i == 0) ? RC_TEST : RC_TRAIN;
        rc_seg *sg;
        if (add_seg(&d->sp[s], &sg) < 0) return ERRF(err, errlen, "out of memory");
        char key[160], rate[160];
        snprintf(key, sizeof key, "/stimulus_%s", p->stims[i]);
        snprintf(rate, sizeof rate, "/responses_%s", p->stims[i]);
        if (rc_h5_exists(d->file, key)) {
            if (seg_open_h5(d, sg, key, rate, err, errlen) < 0) return -1;
        } else {
            snprintf(sg->name, sizeof sg->name, "%s/%s.npy", dir, p->stims[i]);
            snprintf(sg->rate_name, sizeof sg->rate_name, "%s", rate);
            npy_hdr h;
            if (npy_parse(sg->name, &h, err, errlen) < 0) return -1;
            sg->is_npy = 1;
            sg->npy_kind = h.kind;
            sg->npy_off = h.off;
            sg->T = h.shape[h.rank == 4 ? 1 : 0];
            sg->npy_fd = open(sg->name, O_RDONLY);
            if (sg->npy_fd < 0) return ERRF(err, errlen, "%s: cannot open: %s", sg->name, strerror(errno));
            int cells = d->info.file_cells;
            if (check_rate(d->file, fn, rate, sg->T, &cells, "the responses", err, errlen) < 0) return -1;
            sg->rate = H5Dopen2(d->file, rate, H5P_DEFAULT);
            if (sg->rate < 0) return ERRF(err, errlen, "%s: %s: cannot open", fn, rate);
        }
        sg->t0 = d->sp[s].T;
        d->sp[s].T += sg->T;
    }
    return 0;
}

void rc__close_sources(rc_data *d)
{
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < d->sp[s].n; i++) {
            rc_seg *g = &d->sp[s].seg[i];
            if (g->dset >= 0) H5Dclose(g->dset);
            if (g->rate >= 0) H5Dclose(g->rate);
            if (g->npy_fd >= 0) close(g->npy_fd);
        }
        free(d->sp[s].seg);
        d->sp[s].seg = NULL;
        d->sp[s].n = 0;
    }
    if (d->rep_cell_keys) {
        for (int i = 0; i < d->info.file_cells; i++) free(d->rep_cell_keys[i]);
        free(d->rep_cell_keys);
        d->rep_cell_keys = NULL;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                    */

static int npy_read(rc_data *d, const rc_seg *s, int64_t t, int64_t n, float *out, char *err,
                    size_t errlen)
{
    const int H = d->info.full_h, W = d->info.full_w, h = d->info.h, w = d->info.w;
    const int r0 = d->info.crop_row0, c0 = d->info.crop_col0;
    const int item = s->npy_kind == 'u' ? 1 : s->npy_kind == 'f' ? 4 : 8;
    const size_t fbytes = (size_t)H * W * item;
    unsigned char *buf = malloc(fbytes);
    if (!buf) return ERRF(err, errlen, "out of memory reading %s", s->name);
    int rc = 0;
    for (int64_t k = 0; k < n && rc == 0; k++) {
        off_t off = (off_t)(s->npy_off + (t + k) * (int64_t)fbytes);
        size_t got = 0;
        while (got < fbytes) {
            ssize_t r = pread(s->npy_fd, buf + got, fbytes - got, off + (off_t)got);
            if (r <= 0) { rc = ERRF(err, errlen, "%s: read failed at frame %lld (truncated?)", s->name, (long long)(t + k)); break; }
            got += (size_t)r;
        }
        float *o = out + k * (int64_t)h * w;
        for (int i = 0; i < h && rc == 0; i++)
            for (int j = 0; j < w; j++) {
                size_t e = (size_t)(r0 + i) * W + (size_t)(c0 + j);
                float v;
                if (item == 1) v = buf[e];
                else if (item == 4) { float x; memcpy(&x, buf + 4 * e, 4); v = x; }
                else { double x; memcpy(&x, buf + 8 * e, 8); v = (float)x; }
                o[i * w + j] = v;
            }
    }
    free(buf);
    return rc;
}

static int read_frames(rc_data *d, int split, int64_t t0, int64_t t1, float *out, int check,
                       char *err, size_t errlen)
{
    const rc_split_src *sp = &d->sp[split];
    const int h = d->info.h, w = d->info.w;
    for (int i = 0; i < sp->n; i++) {
        const rc_seg *s = &sp->seg[i];
        int64_t a = t0 > s->t0 ? t0 : s->t0, b = t1 < s->t0 + s->T ? t1 : s->t0 + s->T;
        if (a >= b) continue;
        float *o = out + (a - t0) * (int64_t)h * w;
        if (s->is_npy) {
            if (npy_read(d, s, a - s->t0, b - a, o, err, errlen) < 0) return -1;
        } else {
            int64_t st[4] = {0}, ct[4] = {1};
            int k = s->rank == 4 ? 1 : 0;
            st[k] = a - s->t0; ct[k] = b - a;
            st[k + 1] = d->info.crop_row0; ct[k + 1] = h;
            st[k + 2] = d->info.crop_col0; ct[k + 2] = w;
            if (rc_h5_read_f32(s->dset, s->rank, st, ct, o, d->path, s->name, err, errlen) < 0) return -1;
        }
        int64_t bad;
        if (check && !rc_all_finite(o, (b - a) * (int64_t)h * w, &bad)) {
            int64_t fr = bad / ((int64_t)h * w), px = bad % ((int64_t)h * w);
            return ERRF(err, errlen, "%s: %s: non-finite value (NaN/Inf) at frame %lld, pixel (%lld,%lld)",
                        d->path, s->name, (long long)(a - s->t0 + fr), (long long)(px / w + d->info.crop_row0),
                        (long long)(px % w + d->info.crop_col0));
        }
    }
    return 0;
}

int rc__read_frames(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                    size_t errlen)
{
    return read_frames(d, split, t0, t1, out, 1, err, errlen);
}

int rc__read_frames_raw(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                        size_t errlen)
{
    return read_frames(d, split, t0, t1, out, 0, err, errlen);
}

int rc__frame_seg(const rc_data *d, int split, int64_t t, int64_t *local)
{
    const rc_split_src *sp = &d->sp[split];
    for (int i = 0; i < sp->n; i++)
        if (t >= sp->seg[i].t0 && t < sp->seg[i].t0 + sp->seg[i].T) {
            if (local) *local = t - sp->seg[i].t0;
            return i;
        }
    return -1;
}

int rc__read_labels(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                    size_t errlen)
{
    const rc_split_src *sp = &d->sp[split];
    const int C = d->info.n_cells;
    float *tmp = malloc((size_t)(t1 - t0 > 0 ? t1 - t0 : 1) * sizeof *tmp);
    if (!tmp) return ERRF(err, errlen, "out of memory reading labels");
    for (int i = 0; i < sp->n; i++) {
        const rc_seg *s = &sp->seg[i];
        int64_t a = t0 > s->t0 ? t0 : s->t0, b = t1 < s->t0 + s->T ? t1 : s->t0 + s->T;
        if (a >= b) continue;
        for (int c = 0; c < C; c++) {
            int64_t st[2] = {d->sel[c], a - s->t0}, ct[2] = {1, b - a};
            if (rc_h5_read_f32(s->rate, 2, st, ct, tmp, d->path, s->rate_name, err, errlen) < 0) {
                free(tmp);
                return -1;
            }
            int64_t bad;
            if (!rc_all_finite(tmp, b - a, &bad)) {
                free(tmp);
                return ERRF(err, errlen, "%s: %s: non-finite value (NaN/Inf) for cell %d at frame %lld",
                            d->path, s->rate_name, d->sel[c], (long long)(a - s->t0 + bad));
            }
            for (int64_t t = a; t < b; t++) out[(t - t0) * C + c] = tmp[t - a];
        }
    }
    free(tmp);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Standalone stimulus (retinac predict)                                                      */

int rc_stimulus_read(const char *path, const char *key, int crop, int crop_row, int crop_col,
                     double mean, double std, float **frames, int64_t *T, int *H, int *W,
                     char *err, size_t errlen)
{
    *frames = NULL;
    char k[200];
    snprintf(k, sizeof k, "%s%s", (key && key[0] == '/') ? "" : "/", key ? key : "stimulus");
    hid_t f = rc__open_file(path, err, errlen);
    if (f < 0) return -1;
    int64_t t;
    int fh, fw, rank;
    int rc = -1;
    hid_t ds = -1;
    float *out = NULL;
    if (frames_shape(f, path, k, &t, &fh, &fw, NULL, &rank, err, errlen) < 0) goto done;
    int h = fh, w = fw, r0 = 0, c0 = 0;
    if (crop > 0) {
        if (crop > fh || crop > fw) { ERRF(err, errlen, "%s: %s: crop %d larger than the %dx%d frame", path, k, crop, fh, fw); goto done; }
        rc__crop_origin(fh, fw, crop, crop_row, crop_col, &r0, &c0);
        h = w = crop;
    }
    size_t n = (size_t)t * h * w;
    out = malloc(n * sizeof *out);
    if (!out) { ERRF(err, errlen, "%s: %s: out of memory for %lld frames", path, k, (long long)t); goto done; }
    ds = H5Dopen2(f, k, H5P_DEFAULT);
    int64_t st[4] = {0}, ct[4] = {1};
    int o = rank == 4 ? 1 : 0;
    ct[o] = t; st[o + 1] = r0; ct[o + 1] = h; st[o + 2] = c0; ct[o + 2] = w;
    if (ds < 0 || rc_h5_read_f32(ds, rank, st, ct, out, path, k, err, errlen) < 0) {
        if (ds < 0) ERRF(err, errlen, "%s: %s: cannot open", path, k);
        goto done;
    }
    int64_t bad;
    if (!rc_all_finite(out, (int64_t)n, &bad)) {
        ERRF(err, errlen, "%s: %s: non-finite value (NaN/Inf) at frame %lld", path, k, (long long)(bad / ((int64_t)h * w)));
        goto done;
    }
    if (std > 0) {
        const float m = (float)mean, s = (float)std;
        for (size_t i = 0; i < n; i++) out[i] = (out[i] - m) / s;
    }
    *frames = out;
    out = NULL;
    *T = t; *H = h; *W = w;
    rc = 0;
done:
    free(out);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    return rc;
}
