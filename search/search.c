/* search.c — expansion of a spec's search section into trials, the per-trial row files and the
 * summary files of `retinac search` (semantics in search.h).
 * Invariants: the expansion is a pure function of (search, base train); every trial's train
 * settings differ from the base only in the searched fields; names are unique and use only
 * [A-Za-z0-9._-]. Files are written atomically (rc_write_file_atomic). No MPI here: the ranks
 * live in cli/, this library only knows rows.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "errbuf.h"
#include "json.h"
#include "rng.h"
#include "search.h"
#include "sha256.h"

/* ---------------------------------------------------------------- fields */

static const rc_field *train_field(const char *key)
{
    int n;
    const rc_field *f = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &n);
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i].name, key)) return &f[i];
    return NULL;
}

static int is_numeric(const rc_field *f)
{
    return f && (f->type == RC_F_INT || f->type == RC_F_NUM || f->type == RC_F_U64);
}

double rc_search_train_value(const rc_train *t, const char *key)
{
    const rc_field *f = train_field(key);
    if (!is_numeric(f)) return NAN;
    const char *p = (const char *)t + f->offset;
    if (f->type == RC_F_INT) return *(const int *)p;
    if (f->type == RC_F_U64) return (double)*(const uint64_t *)p;
    return *(const double *)p;
}

static void set_value(rc_train *t, const rc_field *f, double v)
{
    char *p = (char *)t + f->offset;
    if (f->type == RC_F_INT) *(int *)p = (int)v;
    else if (f->type == RC_F_U64) *(uint64_t *)p = (uint64_t)v;
    else *(double *)p = v;
}

int rc_search_dim_is_param(const rc_search_dim *sd)
{
    return !strncmp(sd->key, RC_SEARCH_PARAM_PREFIX, strlen(RC_SEARCH_PARAM_PREFIX));
}

/* The field a dim sets: the train field, or for a param a stand-in with its type (ranges are
 * the spec's to check when it runs with the value). */
static const rc_field *dim_field(const rc_search_dim *sd, rc_field *tmp)
{
    if (!rc_search_dim_is_param(sd)) return train_field(sd->key);
    memset(tmp, 0, sizeof *tmp);
    tmp->name = sd->key + strlen(RC_SEARCH_PARAM_PREFIX);
    tmp->type = sd->is_int || sd->is_string ? RC_F_INT : RC_F_NUM;
    tmp->min = sd->is_string ? 0 : -1e300;
    tmp->max = sd->is_string ? RC_MAX_SEARCH_VALUES - 1 : 1e300;
    return tmp;
}

/* A string value a trial name and a folder can carry. */
static int name_safe(const char *v)
{
    if (!*v) return 0;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.' || *p == '-'))
            return 0;
    return 1;
}

void rc_search_fmt_value(const rc_search_dim *sd, double v, char *buf, size_t n)
{
    int i = (int)v;
    if (sd->is_string && v == i && i >= 0 && i < sd->n_values) snprintf(buf, n, "%s", sd->strs[i]);
    else rc_search_fmt_num(v, buf, n);
}

int rc_search_trial_params(const rc_search *s, const rc_search_trial *t, rc_spec_override *ov,
                           int max, char (*vals)[RC_PARAM_STR_MAX + 16])
{
    int n = 0;
    for (int d = 0; d < s->n_dims && n < max; d++) {
        const rc_search_dim *sd = &s->dims[d];
        if (!rc_search_dim_is_param(sd)) continue;
        rc_search_fmt_value(sd, t->values[d], vals[n], RC_PARAM_STR_MAX + 16);
        ov[n].name = sd->key + strlen(RC_SEARCH_PARAM_PREFIX);
        ov[n].value = vals[n];
        n++;
    }
    return n;
}

void rc_search_fmt_num(double v, char *buf, size_t n)
{
    if (!isfinite(v)) { snprintf(buf, n, "nan"); return; }
    if (v == floor(v) && fabs(v) < 1e15) { snprintf(buf, n, "%.0f", v); return; }   /* 100000, not 1e+05 */
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

/* ---------------------------------------------------------------- check */

int rc_search_check(const rc_search *s, char *err, size_t errlen)
{
    int n_random = 0;
    if (s->n_dims < 0 || s->n_dims > RC_MAX_SEARCH)
        return rc_errf(err, errlen, "search: %d searched fields (at most %d)", s->n_dims, RC_MAX_SEARCH);
    for (int d = 0; d < s->n_dims; d++) {
        const rc_search_dim *sd = &s->dims[d];
        rc_field pf;
        const rc_field *f = dim_field(sd, &pf);
        int param = rc_search_dim_is_param(sd);
        if (!f) return rc_errf(err, errlen, "search: %s: not a train field", sd->key);
        if (param) {
            const char *nm = f->name;
            int ok = (*nm >= 'a' && *nm <= 'z') || (*nm >= 'A' && *nm <= 'Z') || *nm == '_';
            for (const char *p = nm; ok && *p; p++)
                ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
            if (!ok) return rc_errf(err, errlen, "search: %s: not a parameter name", sd->key);
            if (sd->is_string && (sd->is_random || sd->is_int))
                return rc_errf(err, errlen, "search: %s: string values are a grid", sd->key);
            for (int i = 0; sd->is_string && i < sd->n_values && i < RC_MAX_SEARCH_VALUES; i++) {
                if (!memchr(sd->strs[i], 0, RC_PARAM_STR_MAX) || !name_safe(sd->strs[i]))
                    return rc_errf(err, errlen, "search: grid.params.%s: value %d: use 1 to %d of "
                                   "[A-Za-z0-9_.-] (it names folders)", f->name, i + 1, RC_PARAM_STR_MAX - 1);
                for (int j = 0; j < i; j++)
                    if (!strcmp(sd->strs[i], sd->strs[j]))
                        return rc_errf(err, errlen, "search: grid.params.%s: value '%s' listed twice",
                                       f->name, sd->strs[i]);
                if (sd->values[i] != i)
                    return rc_errf(err, errlen, "search: %s: string value %d out of order", sd->key, i);
            }
        } else if (sd->is_int || sd->is_string)
            return rc_errf(err, errlen, "search: %s: int/str apply to spec parameters only", sd->key);
        if (!is_numeric(f))
            return rc_errf(err, errlen, "search: %s: only numeric train fields can be searched", sd->key);
        for (int e = 0; e < d; e++)
            if (!strcmp(s->dims[e].key, sd->key))
                return rc_errf(err, errlen, "search: %s: searched twice", sd->key);
        if (sd->is_random ? sd->n_values != 2 : (sd->n_values < 1 || sd->n_values > RC_MAX_SEARCH_VALUES))
            return rc_errf(err, errlen, "search: %s: %s, got %d values", sd->key,
                           sd->is_random ? "a random range is { lo, hi }" : "expected 1 to 32 values",
                           sd->n_values);
        for (int i = 0; i < sd->n_values; i++) {
            double v = sd->values[i];
            if (!isfinite(v) || v < f->min || v > f->max) {
                char rng[96], num[40];
                rc_field_range_text(f, rng, sizeof rng);
                rc_search_fmt_num(v, num, sizeof num);
                return rc_errf(err, errlen, "search: %s: value %s outside %s", sd->key, num, rng);
            }
            if (f->type != RC_F_NUM && v != floor(v))
                return rc_errf(err, errlen, "search: %s: expected an integer, got %g", sd->key, v);
            for (int j = 0; !sd->is_random && j < i; j++)
                if (sd->values[j] == v)
                    return rc_errf(err, errlen, "search: grid.%s: value %g listed twice", sd->key, v);
        }
        if (sd->is_random) {
            if (!(sd->values[0] < sd->values[1]))
                return rc_errf(err, errlen, "search: random.%s: range needs lo < hi, got { %g, %g }",
                               sd->key, sd->values[0], sd->values[1]);
            if (sd->log_scale && !(sd->values[0] > 0))
                return rc_errf(err, errlen, "search: random.%s: log = true needs lo > 0, got %g",
                               sd->key, sd->values[0]);
            n_random++;
        }
    }
    if (n_random && s->trials < 1)
        return rc_errf(err, errlen, "search: random.trials: must be >= 1 with random ranges, got %d", s->trials);
    if (rc_search_count(s) < 0)
        return rc_errf(err, errlen, "search: more than %d trials", RC_SEARCH_MAX_TRIALS);
    return 0;
}

int64_t rc_search_count(const rc_search *s)
{
    int64_t n = 1;
    int n_random = 0;
    for (int d = 0; d < s->n_dims; d++) {
        if (s->dims[d].is_random) { n_random++; continue; }
        n *= s->dims[d].n_values > 0 ? s->dims[d].n_values : 1;
        if (n > RC_SEARCH_MAX_TRIALS) return -1;
    }
    if (n_random) n *= s->trials > 0 ? s->trials : 1;
    return n > RC_SEARCH_MAX_TRIALS ? -1 : n;
}

/* ---------------------------------------------------------------- draws and names */

/* Uniform double in [0, 1) for draw k of `key`: 53 bits of the rng.h mix. */
static double draw_u(uint64_t seed, int64_t k, const char *key)
{
    uint64_t h = 1469598103934665603ull;            /* FNV-1a of the key */
    for (const char *p = key; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    uint64_t z = rc_rng_mix(seed ^ rc_rng_mix((uint64_t)k * 0xD1B54A32D192ED03ull + h));
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double draw_value(const rc_search_dim *sd, const rc_field *f, uint64_t seed, int64_t k)
{
    double lo = sd->values[0], hi = sd->values[1], u = draw_u(seed, k, sd->key), v;
    if (f->type != RC_F_NUM) {
        /* integers: uniform over lo..hi, or log-uniform over [lo, hi + 1) floored */
        v = sd->log_scale ? floor(exp(log(lo) + u * (log(hi + 1) - log(lo)))) : lo + floor(u * (hi - lo + 1));
    } else {
        v = sd->log_scale ? exp(log(lo) + u * (log(hi) - log(lo))) : lo + u * (hi - lo);
        char b[32];
        snprintf(b, sizeof b, "%.4g", v);         /* 4 significant digits: the name is the value */
        v = strtod(b, NULL);
    }
    return v < lo ? lo : v > hi ? hi : v;
}

/* Filesystem-safe value text: shortest exact form, "e+" -> "e", '-' sign -> 'm'. */
static void fmt_name_value(const rc_field *f, double v, char *buf, size_t n)
{
    char t[40];
    if (f->type != RC_F_NUM) snprintf(t, sizeof t, "%.0f", v);
    else rc_search_fmt_num(v, t, sizeof t);
    size_t k = 0;
    for (const char *p = t; *p && k + 1 < n; p++) {
        if (*p == '+') continue;
        buf[k++] = (*p == '-' && p == t) ? 'm' : *p;
    }
    buf[k] = 0;
}

static int append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t l = strlen(s);
    if (*len + l + 1 > cap) return -1;
    memcpy(buf + *len, s, l + 1);
    *len += l;
    return 0;
}

static int cmp_name(const void *a, const void *b)
{
    const rc_search_trial *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

int rc_search_expand(const rc_search *s, const rc_train *base, rc_search_trial **out, int *n_out,
                     char *err, size_t errlen)
{
    *out = NULL;
    *n_out = 0;
    if (rc_search_check(s, err, errlen) < 0) return -1;
    int64_t n_grid = 1, n_rand = 0;
    int has_grid = 0;
    for (int d = 0; d < s->n_dims; d++) {
        if (s->dims[d].is_random) n_rand = s->trials;
        else { n_grid *= s->dims[d].n_values; has_grid = 1; }
    }
    int64_t n = n_grid * (n_rand ? n_rand : 1);
    rc_search_trial *t = calloc((size_t)n, sizeof *t);
    if (!t) return rc_errf(err, errlen, "search: out of memory for %lld trials", (long long)n);

    for (int64_t i = 0; i < n; i++) {
        rc_search_trial *tr = &t[i];
        int64_t g = n_rand ? i / n_rand : i, k = n_rand ? i % n_rand : -1;
        tr->index = (int)i;
        tr->grid_index = has_grid ? (int)g : -1;
        tr->random_index = (int)k;
        tr->train = *base;
        /* grid coordinates: the last grid dim varies fastest */
        int64_t rem = g;
        for (int d = s->n_dims - 1; d >= 0; d--) {
            const rc_search_dim *sd = &s->dims[d];
            if (sd->is_random) continue;
            tr->values[d] = sd->values[rem % sd->n_values];
            rem /= sd->n_values;
        }
        char name[1024];
        size_t len = 0;
        name[0] = 0;
        int ok = 0, first = 1, r_done = 0;
        for (int d = 0; d < s->n_dims; d++) {
            const rc_search_dim *sd = &s->dims[d];
            rc_field pf;
            const rc_field *f = dim_field(sd, &pf);
            int param = rc_search_dim_is_param(sd);
            char part[128], val[48];
            if (sd->is_random) {
                tr->values[d] = draw_value(sd, f, s->seed, k);
                if (!r_done) {
                    snprintf(part, sizeof part, "%sr%lld", first ? "" : "_", (long long)k);
                    ok |= append(name, sizeof name, &len, part);
                    first = 0;
                    r_done = 1;
                }
            }
            if (!param) set_value(&tr->train, f, tr->values[d]);
            if (sd->is_string) rc_search_fmt_value(sd, tr->values[d], val, sizeof val);
            else fmt_name_value(f, tr->values[d], val, sizeof val);
            snprintf(part, sizeof part, "%s%s-%s", first ? "" : "_", f->name, val);
            ok |= append(name, sizeof name, &len, part);
            first = 0;
        }
        if (s->n_dims == 0) ok |= append(name, sizeof name, &len, "base");
        if (ok < 0 || len >= 181) {
            char hex[65];
            rc_sha256_hex(name, len, hex);
            snprintf(tr->name, sizeof tr->name, "%.*s_%.12s", 170, name, hex);
        } else {
            memcpy(tr->name, name, len + 1);
        }
    }
    /* names are unique by construction; a guard that they stay so */
    const rc_search_trial **by = malloc((size_t)n * sizeof *by);
    if (!by) { free(t); return rc_errf(err, errlen, "search: out of memory"); }
    for (int64_t i = 0; i < n; i++) by[i] = &t[i];
    qsort(by, (size_t)n, sizeof *by, cmp_name);
    for (int64_t i = 1; i < n; i++)
        if (!strcmp(by[i]->name, by[i - 1]->name)) {
            rc_errf(err, errlen, "search: trials %d and %d share the name '%s'", by[i - 1]->index,
                    by[i]->index, by[i]->name);
            free(by);
            free(t);
            return -1;
        }
    free(by);
    *out = t;
    *n_out = (int)n;
    return 0;
}

/* ---------------------------------------------------------------- row files */

#define ROW_MAGIC "retinac-search-row 1"

int rc_search_row_write(const char *rundir, const rc_search_row *r, char *err, size_t errlen)
{
    char path[1100], buf[2048], a[40], b[40], c[40], d[40], msg[sizeof r->error];
    snprintf(path, sizeof path, "%s/search_row.txt", rundir);
    if (r->status != RC_TRIAL_OK && r->status != RC_TRIAL_FAILED)
        return rc_errf(err, errlen, "%s: trial %d has not ended", path, r->index);
    rc_search_fmt_num(r->best_val_loss, a, sizeof a);
    rc_search_fmt_num(r->test_mean_r, b, sizeof b);
    rc_search_fmt_num(r->test_mean_feve, c, sizeof c);
    rc_search_fmt_num(r->seconds, d, sizeof d);
    /* the error is one line of the file: line breaks become spaces; "-" if empty */
    snprintf(msg, sizeof msg, "%s", r->error[0] ? r->error : "-");
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    int len = snprintf(buf, sizeof buf,
                       ROW_MAGIC "\nindex %d\nconfig_hash %s\nstatus %s\nepochs %d\nthreads %d\n"
                       "best_epoch %lld\nbest_val_loss %s\ntest_mean_r %s\ntest_mean_feve %s\nseconds %s\n",
                       r->index, r->config_hash, r->status == RC_TRIAL_OK ? "ok" : "failed", r->epochs_done,
                       r->threads, (long long)r->best_epoch, a, b, c, d);
    if (len > 0 && r->status == RC_TRIAL_FAILED && (size_t)len < sizeof buf)
        len += snprintf(buf + len, sizeof buf - (size_t)len, "error %s\n", msg);
    if (len < 0 || (size_t)len >= sizeof buf) return rc_errf(err, errlen, "%s: row too long", path);
    return rc_write_file_atomic(path, buf, (size_t)len, err, errlen);
}

int rc_search_row_read(const char *rundir, rc_search_row *r, char *err, size_t errlen)
{
    char path[1100], line[1024];
    snprintf(path, sizeof path, "%s/search_row.txt", rundir);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 1;
        return rc_errf(err, errlen, "%s: %s", path, strerror(errno));
    }
    memset(r, 0, sizeof *r);
    int seen = 0, magic = 0, bad = 0, status = RC_TRIAL_OK;
    long long be = 0;
    while (fgets(line, sizeof line, f)) {
        char key[32], val[128];
        line[strcspn(line, "\n")] = 0;
        if (!strcmp(line, ROW_MAGIC)) { magic = 1; continue; }
        if (!strncmp(line, "error ", 6)) {             /* the rest of the line, spaces and all */
            snprintf(r->error, sizeof r->error, "%.*s", (int)sizeof r->error - 1, line + 6);
            continue;
        }
        if (sscanf(line, "%31s %127s", key, val) != 2) continue;
        double v = strtod(val, NULL);      /* "nan" reads back as NaN */
        if (!strcmp(key, "index")) { r->index = (int)v; seen |= 1; }
        else if (!strcmp(key, "config_hash")) {
            if (strlen(val) != 64) { bad = 1; break; }
            memcpy(r->config_hash, val, 65);
            seen |= 2;
        }
        else if (!strcmp(key, "status")) {
            if (!strcmp(val, "ok")) status = RC_TRIAL_OK;
            else if (!strcmp(val, "failed")) status = RC_TRIAL_FAILED;
            else { bad = 1; break; }
        }
        else if (!strcmp(key, "epochs")) { r->epochs_done = (int)v; seen |= 4; }
        else if (!strcmp(key, "threads")) r->threads = (int)v;
        else if (!strcmp(key, "best_epoch")) { be = strtoll(val, NULL, 10); seen |= 8; }
        else if (!strcmp(key, "best_val_loss")) { r->best_val_loss = v; seen |= 16; }
        else if (!strcmp(key, "test_mean_r")) { r->test_mean_r = v; seen |= 32; }
        else if (!strcmp(key, "test_mean_feve")) { r->test_mean_feve = v; seen |= 64; }
        else if (!strcmp(key, "seconds")) { r->seconds = v; seen |= 128; }
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) return rc_errf(err, errlen, "%s: read error", path);
    if (bad || !magic || seen != 255) return rc_errf(err, errlen, "%s: not a complete search row file", path);
    if (status == RC_TRIAL_OK) r->error[0] = 0;
    else if (!r->error[0]) snprintf(r->error, sizeof r->error, "-");
    r->best_epoch = be;
    r->status = status;
    r->skipped = 1;
    return 0;
}

/* ---------------------------------------------------------------- ranking and summaries */

static int cmp_rows(const void *a, const void *b, void *ctx)
{
    const rc_search_row *rows = ctx;
    const rc_search_row *x = &rows[*(const int *)a], *y = &rows[*(const int *)b];
    int gx = x->status == RC_TRIAL_OK && isfinite(x->best_val_loss);
    int gy = y->status == RC_TRIAL_OK && isfinite(y->best_val_loss);
    if (gx != gy) return gy - gx;
    if (gx && x->best_val_loss != y->best_val_loss) return x->best_val_loss < y->best_val_loss ? -1 : 1;
    return x->index - y->index;
}

int rc_search_rank(const rc_search_row *rows, int n, int *order)
{
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, cmp_rows, (void *)rows);
    if (n == 0) return -1;
    const rc_search_row *b = &rows[order[0]];
    return b->status == RC_TRIAL_OK && isfinite(b->best_val_loss) ? order[0] : -1;
}

static const char *status_name(int s)
{
    return s == RC_TRIAL_OK ? "ok" : s == RC_TRIAL_FAILED ? "failed" : "pending";
}

void rc_search_csv_num(FILE *f, double v)
{
    char b[40];
    if (!isfinite(v)) return;
    rc_search_fmt_num(v, b, sizeof b);
    fputs(b, f);
}

void rc_search_csv_text(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p == '\n' ? ' ' : *p, f);
    }
    fputc('"', f);
}

static void json_doc(FILE *f, const rc_ir *spec, const char *data_path, const rc_search_trial *trials,
                     const rc_search_row *rows, int n, const int *order, int best, rc_json *j)
{
    char hash[65];
    rc_ir_hash(spec, hash);
    rc_json_init(j, f, 1);
    rc_json_begin_object(j);
    rc_json_key(j, "model"); rc_json_string(j, spec->name);
    rc_json_key(j, "spec_hash"); rc_json_string(j, hash);
    rc_json_key(j, "data"); rc_json_string(j, data_path);
    rc_json_key(j, "selection"); rc_json_string(j, "lowest best_val_loss (validation split); the test set is never used to select");
    rc_json_key(j, "keys");
    rc_json_begin_array(j);
    for (int d = 0; d < spec->search.n_dims; d++) rc_json_string(j, spec->search.dims[d].key);
    rc_json_end_array(j);
    rc_json_key(j, "trials_total"); rc_json_int(j, n);
    int n_ok = 0;
    for (int i = 0; i < n; i++) n_ok += rows[i].status == RC_TRIAL_OK;
    rc_json_key(j, "trials_ok"); rc_json_int(j, n_ok);
    rc_json_key(j, "best");
    if (best < 0) rc_json_null(j);
    else {
        rc_json_begin_object(j);
        rc_json_key(j, "index"); rc_json_int(j, best);
        rc_json_key(j, "name"); rc_json_string(j, trials[best].name);
        rc_json_key(j, "best_val_loss"); rc_json_number(j, rows[best].best_val_loss);
        rc_json_end_object(j);
    }
    int *rank = malloc((size_t)(n ? n : 1) * sizeof *rank);
    for (int i = 0; rank && i < n; i++) rank[order[i]] = i + 1;
    rc_json_key(j, "trials");
    rc_json_begin_array(j);
    for (int i = 0; i < n; i++) {
        const rc_search_row *r = &rows[i];
        rc_json_begin_object(j);
        rc_json_key(j, "index"); rc_json_int(j, i);
        rc_json_key(j, "name"); rc_json_string(j, trials[i].name);
        rc_json_key(j, "values");
        rc_json_begin_object(j);
        for (int d = 0; d < spec->search.n_dims; d++) {
            const rc_search_dim *sd = &spec->search.dims[d];
            rc_json_key(j, sd->key);
            if (sd->is_string) {
                char v[RC_PARAM_STR_MAX + 16];
                rc_search_fmt_value(sd, trials[i].values[d], v, sizeof v);
                rc_json_string(j, v);
            } else {
                rc_json_number(j, trials[i].values[d]);
            }
        }
        rc_json_end_object(j);
        rc_json_key(j, "status"); rc_json_string(j, status_name(r->status));
        if (r->status == RC_TRIAL_FAILED) { rc_json_key(j, "error"); rc_json_string(j, r->error); }
        rc_json_key(j, "epochs"); rc_json_int(j, r->epochs_done);
        rc_json_key(j, "best_epoch"); rc_json_int(j, r->best_epoch);
        rc_json_key(j, "best_val_loss"); rc_json_number(j, r->status == RC_TRIAL_OK ? r->best_val_loss : NAN);
        rc_json_key(j, "test_mean_r"); rc_json_number(j, r->status == RC_TRIAL_OK ? r->test_mean_r : NAN);
        rc_json_key(j, "test_mean_feve"); rc_json_number(j, r->status == RC_TRIAL_OK ? r->test_mean_feve : NAN);
        rc_json_key(j, "seconds"); rc_json_number(j, r->seconds);
        rc_json_key(j, "val_rank");
        if (r->status == RC_TRIAL_OK && rank) rc_json_int(j, rank[i]);
        else rc_json_null(j);
        rc_json_end_object(j);
    }
    rc_json_end_array(j);
    rc_json_end_object(j);
    free(rank);
}

char *rc_search_summary_json(const rc_ir *spec, const char *data_path, const rc_search_trial *trials,
                             const rc_search_row *rows, int n)
{
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return NULL;
    int best = rc_search_rank(rows, n, order);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) { free(order); return NULL; }
    rc_json j;
    json_doc(f, spec, data_path, trials, rows, n, order, best, &j);
    int bad = rc_json_finish(&j) != 0;
    bad |= fclose(f) != 0;
    free(order);
    if (bad) { free(buf); return NULL; }
    return buf;
}

int rc_search_write_summary(const char *dir, const rc_ir *spec, const char *data_path,
                            const rc_search_trial *trials, const rc_search_row *rows, int n,
                            char *err, size_t errlen)
{
    char path[1100];
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int *rank = malloc((size_t)(n ? n : 1) * sizeof *rank);
    if (!order || !rank) { free(order); free(rank); return rc_errf(err, errlen, "%s: out of memory", dir); }
    rc_search_rank(rows, n, order);
    for (int i = 0; i < n; i++) rank[order[i]] = i + 1;

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) { free(order); free(rank); return rc_errf(err, errlen, "%s: out of memory", dir); }
    fputs("index,name", f);
    for (int d = 0; d < spec->search.n_dims; d++) fprintf(f, ",%s", spec->search.dims[d].key);
    fputs(",status,epochs,best_epoch,best_val_loss,test_mean_r,test_mean_feve,seconds,val_rank,error\n", f);
    for (int i = 0; i < n; i++) {
        const rc_search_row *r = &rows[i];
        int ok = r->status == RC_TRIAL_OK;
        fprintf(f, "%d,", i);
        rc_search_csv_text(f, trials[i].name);
        for (int d = 0; d < spec->search.n_dims; d++) {
            const rc_search_dim *sd = &spec->search.dims[d];
            fputc(',', f);
            if (sd->is_string) fputs(sd->strs[(int)trials[i].values[d]], f);   /* name-safe: no quoting */
            else rc_search_csv_num(f, trials[i].values[d]);
        }
        fprintf(f, ",%s,%d,%lld,", status_name(r->status), r->epochs_done, (long long)r->best_epoch);
        if (ok) rc_search_csv_num(f, r->best_val_loss);
        fputc(',', f);
        if (ok) rc_search_csv_num(f, r->test_mean_r);
        fputc(',', f);
        if (ok) rc_search_csv_num(f, r->test_mean_feve);
        fputc(',', f);
        rc_search_csv_num(f, r->seconds);
        fputc(',', f);
        if (ok) fprintf(f, "%d", rank[i]);
        fputc(',', f);
        if (r->status == RC_TRIAL_FAILED) rc_search_csv_text(f, r->error);
        fputc('\n', f);
    }
    free(rank);
    int bad = fclose(f) != 0;
    if (bad) { free(buf); free(order); return rc_errf(err, errlen, "%s/search.csv: write failed", dir); }
    snprintf(path, sizeof path, "%s/search.csv", dir);
    int rc = rc_write_file_atomic(path, buf, len, err, errlen);
    free(buf);
    free(order);
    if (rc < 0) return -1;

    char *js = rc_search_summary_json(spec, data_path, trials, rows, n);
    if (!js) return rc_errf(err, errlen, "%s/search.json: out of memory or write failed", dir);
    snprintf(path, sizeof path, "%s/search.json", dir);
    rc = rc_write_file_atomic(path, js, strlen(js), err, errlen);
    free(js);
    return rc;
}

/* rc_search_schedule's order: epochs descending, index ascending (qsort_r, glibc) */
static int sched_cmp(const void *a, const void *b, void *ctx)
{
    const rc_search_trial *t = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    int ei = t[i].train.epochs, ej = t[j].train.epochs;
    return ei != ej ? (ei > ej ? -1 : 1) : (i > j) - (i < j);
}

void rc_search_schedule(const rc_search_trial *trials, const rc_search_row *rows, int n, int size,
                        int *owner)
{
    if (size < 1) size = 1;
    double *ld = calloc((size_t)size, sizeof *ld);
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    int m = 0;
    for (int i = 0; i < n; i++) {
        owner[i] = 0;
        if (!rows[i].skipped && order) order[m++] = i;
    }
    if (!ld || !order) {                /* out of memory: round-robin, still deterministic */
        for (int i = 0; i < n; i++) owner[i] = rows[i].skipped ? 0 : i % size;
        free(ld);
        free(order);
        return;
    }
    qsort_r(order, (size_t)m, sizeof *order, sched_cmp, (void *)trials);
    for (int q = 0; q < m; q++) {
        int r = 0;
        for (int k = 1; k < size; k++)
            if (ld[k] < ld[r]) r = k;
        owner[order[q]] = r;
        ld[r] += trials[order[q]].train.epochs > 0 ? trials[order[q]].train.epochs : 1;
    }
    free(ld);
    free(order);
}
