/* test_data_sanity.c — the data-sanity check (rc_data_check, data.h) and where it runs:
 * each problem class on a small Baccus-layout fixture (NaN/Inf in every split and dataset kind,
 * negative rates, silent cells, a constant stimulus) with the key, cell and first bad frame
 * checked; the streamed (chunked) and resident passes agreeing with each other and with the
 * statistics; `retinac info` listing every problem and exiting 1; `retinac train` and
 * `retinac search` refusing before any epoch or trial, `retinac eval` before predicting; and
 * HDF5 links that lead nowhere named as such ("dangling soft link", "soft link loop",
 * "dangling external link to FILE:PATH").
 *
 * Fixture (written with the plain HDF5 C API): T = 600 training and 200 test frames of 16x16
 * float32 (the size of specs/tiny.lua), 3 cells, 2 repeats, a true rate; stimulus
 * x[t][r][c] = ((t * 31 + r * 7 + c * 13) % 97) / 97; rate[c][t] = 1 + (t + 5 c) % 7. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "data.h"
#include "h5util.h"
#include "kit.h"

enum { T_TR = 600, T_TE = 200, H = 16, W = 16, C = 3, R = 2 };

static char tmpdir[256];

static void mk_tmp(void)
{
    kit_tmpdir(tmpdir, sizeof tmpdir, "rc_sanity");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

TestSuite(sanity, .init = mk_tmp, .fini = kit_cleanup, .timeout = 120);

static const char *tpath(const char *name) { return kit_path(tmpdir, "%s", name); }

static void put(hid_t f, const char *key, int rank, const hsize_t *dims, const float *buf)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(f, key, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(ds >= 0, "create %s", key);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0, "write %s", key);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(lcpl);
}

typedef enum { STIM_PATTERN, STIM_CONST, STIM_NEAR_CONST, STIM_TINY } stim_kind;

static float stim_value(stim_kind k, int64_t t, int r, int c)
{
    switch (k) {
    case STIM_CONST: return 0.5f;
    case STIM_NEAR_CONST: return ((t + r + c) & 1) ? 1.0f : nextafterf(1.0f, 2.0f);   /* std ~6e-8 */
    case STIM_TINY: return ((t * 31 + r * 7 + c * 13) % 97) * 1e-7f;                  /* std ~3e-6 */
    default: return (float)((t * 31 + r * 7 + c * 13) % 97) / 97.0f;
    }
}

/* The fixture; stim applies to the training split (the test split keeps the pattern). */
static const char *mk(const char *name, stim_kind stim)
{
    const char *p = tpath(name);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    cr_assert(f >= 0);
    for (int s = 0; s < 2; s++) {
        const int T = s ? T_TE : T_TR;
        const char *sn = s ? "test" : "train";
        float *x = malloc((size_t)T * H * W * sizeof *x), *y = malloc((size_t)C * T * sizeof *y);
        for (int64_t t = 0; t < T; t++)
            for (int r = 0; r < H; r++)
                for (int c = 0; c < W; c++) x[(t * H + r) * W + c] = stim_value(s ? STIM_PATTERN : stim, t, r, c);
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++) y[c * T + t] = (float)(1 + (t + 5 * c) % 7);
        char key[128];
        hsize_t d3[3] = {(hsize_t)T, H, W}, d2[2] = {C, (hsize_t)T};
        snprintf(key, sizeof key, "/%s/stimulus", sn);
        put(f, key, 3, d3, x);
        snprintf(key, sizeof key, "/%s/response/firing_rate_10ms", sn);
        put(f, key, 2, d2, y);
        if (s) {
            put(f, "/test/response/true_rate", 2, d2, y);
            float *rep = malloc((size_t)R * C * T * sizeof *rep);
            for (int k = 0; k < R; k++) memcpy(rep + (size_t)k * C * T, y, (size_t)C * T * sizeof *y);
            hsize_t d3r[3] = {R, C, (hsize_t)T};
            put(f, "/test/repeats/firing_rate_10ms", 3, d3r, rep);
            free(rep);
        }
        free(x);
        free(y);
    }
    H5Fclose(f);
    return p;
}

/* Set one element (idx has the dataset's rank entries). */
static void poke(const char *path, const char *key, const hsize_t *idx, float v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, key, H5P_DEFAULT);
    cr_assert(ds >= 0, "%s", key);
    hid_t fs = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(fs);
    hsize_t one[4] = {1, 1, 1, 1};
    hid_t ms = H5Screate_simple(rank, one, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, idx, NULL, one, NULL);
    cr_assert(H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, &v) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
    H5Fclose(f);
}

/* One cell's whole row of a (cells, T) dataset set to v. */
static void fill_row(const char *path, const char *key, int cell, int T, float v)
{
    for (int t = 0; t < T; t++) poke(path, key, (hsize_t[]){(hsize_t)cell, (hsize_t)t}, v);
}

static rc_data *open_with(const char *path, size_t budget, const int *cells, int n_cells)
{
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.history = 8;
    o.mem_budget = budget;
    o.cells = cells;
    o.n_cells = n_cells;
    o.defer_value_checks = 1;
    rc_data *d = NULL;
    char err[1024];
    cr_assert_eq(rc_data_open(path, &o, &d, err, sizeof err), 0, "%s", err);
    return d;
}

static void check(const char *path, unsigned what, rc_data_report *r)
{
    rc_data *d = open_with(path, 0, NULL, 0);
    char err[1024];
    cr_assert_eq(rc_data_check(d, what, r, err, sizeof err), 0, "%s", err);
    rc_data_close(d);
}

/* The issue whose message contains `has` (NULL if none). */
static const rc_data_issue *find(const rc_data_report *r, const char *has)
{
    for (int i = 0; i < r->n; i++)
        if (strstr(r->issue[i].msg, has)) return &r->issue[i];
    return NULL;
}

static void dump(const rc_data_report *r)
{
    for (int i = 0; i < r->n; i++) cr_log_info("%d %s", r->issue[i].level, r->issue[i].msg);
}

/* ---------------------------------------------------------------------------------------- */

Test(sanity, clean_recording_passes_and_gives_the_statistics)
{
    const char *p = mk("ok.h5", STIM_PATTERN);
    rc_data_report r;
    rc_data *d = open_with(p, 0, NULL, 0);
    char err[1024];
    cr_assert_eq(rc_data_check(d, RC_CHECK_TRAIN | RC_CHECK_TEST, &r, err, sizeof err), 0, "%s", err);
    dump(&r);
    cr_assert_eq(r.n_errors, 0);
    cr_assert_eq(r.n_warnings, 0);
    cr_assert(r.have_stim);
    double m, s;
    cr_assert_eq(rc_data_stats(d, &m, &s, err, sizeof err), 0, "%s", err);
    cr_assert_eq(m, r.stim_mean, "the statistics come from the check's pass");
    cr_assert_eq(s, r.stim_std + RC_DATA_STD_EPS);
    cr_assert_eq(rc_data_report_error(&r, err, sizeof err), 0);
    rc_data_close(d);
    /* streamed in chunks (a budget of ~40 frames): the same findings and bit-identical moments */
    rc_data *ds = open_with(p, 40 * (16 * 16 * 4 + 3 * 4 + 12), NULL, 0);
    cr_assert(rc_data_get_info(ds)->n_chunks > 1);
    rc_data_report rs;
    cr_assert_eq(rc_data_check(ds, RC_CHECK_TRAIN | RC_CHECK_TEST, &rs, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rs.n_errors + rs.n_warnings, 0);
    cr_assert_eq(rs.stim_mean, r.stim_mean);
    cr_assert_eq(rs.stim_std, r.stim_std);
    double ms, ss;
    cr_assert_eq(rc_data_stats(ds, &ms, &ss, err, sizeof err), 0, "%s", err);
    cr_assert(ms == m && ss == s);
    rc_data_close(ds);
}

Test(sanity, nan_and_inf_in_the_test_split_each_named)
{
    const char *p = mk("nan.h5", STIM_PATTERN);
    poke(p, "/test/stimulus", (hsize_t[]){123, 4, 5}, NAN);
    poke(p, "/test/repeats/firing_rate_10ms", (hsize_t[]){1, 2, 50}, INFINITY);
    poke(p, "/test/response/true_rate", (hsize_t[]){0, 7}, NAN);
    poke(p, "/test/response/firing_rate_10ms", (hsize_t[]){1, 9}, -INFINITY);
    rc_data_report r;
    check(p, RC_CHECK_TRAIN, &r);
    cr_assert_eq(r.n_errors, 0, "the training split alone is fine");
    check(p, RC_CHECK_TRAIN | RC_CHECK_TEST, &r);
    dump(&r);
    cr_assert_eq(r.n_errors, 4);
    const rc_data_issue *q = find(&r, "/test/stimulus: non-finite value (NaN/Inf) at frame 123, pixel (4,5)");
    cr_assert_not_null(q);
    cr_assert_str_eq(q->key, "/test/stimulus");
    cr_assert_eq(q->index, 123);
    cr_assert(strstr(q->msg, tpath("nan.h5")), "names the file: %s", q->msg);
    q = find(&r, "/test/repeats/firing_rate_10ms: non-finite value (NaN/Inf) for cell 2, repeat 1 at frame 50");
    cr_assert_not_null(q);
    cr_assert_eq(q->cell, 2);
    cr_assert_eq(q->index, 50);
    cr_assert_not_null(find(&r, "/test/response/true_rate: non-finite value (NaN/Inf) for cell 0 at frame 7"));
    cr_assert_not_null(find(&r, "/test/response/firing_rate_10ms: non-finite value (NaN/Inf) for cell 1 at frame 9"));
    char err[1024];
    cr_assert_eq(rc_data_report_error(&r, err, sizeof err), -1);
    cr_assert(strstr(err, "and 3 more errors"), "%s", err);
}

Test(sanity, nan_in_the_training_split)
{
    const char *p = mk("nantr.h5", STIM_PATTERN);
    poke(p, "/train/stimulus", (hsize_t[]){301, 0, 15}, NAN);
    poke(p, "/train/response/firing_rate_10ms", (hsize_t[]){2, 444}, NAN);
    rc_data_report r;
    check(p, RC_CHECK_TRAIN | RC_CHECK_TEST, &r);
    cr_assert_eq(r.n_errors, 2);
    cr_assert_not_null(find(&r, "/train/stimulus: non-finite value (NaN/Inf) at frame 301, pixel (0,15)"));
    cr_assert_not_null(find(&r, "/train/response/firing_rate_10ms: non-finite value (NaN/Inf) for cell 2 at frame 444"));
    cr_assert_eq(r.have_stim, 0);
    /* a strict open still refuses the label at open; the statistics refuse the frame */
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.history = 8;
    rc_data *d = NULL;
    char err[1024];
    cr_assert_eq(rc_data_open(p, &o, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "for cell 2 at frame 444"), "%s", err);
}

Test(sanity, negative_rates_are_errors_unless_the_loss_is_mse)
{
    const char *p = mk("neg.h5", STIM_PATTERN);
    poke(p, "/train/response/firing_rate_10ms", (hsize_t[]){1, 77}, -0.5f);
    poke(p, "/train/response/firing_rate_10ms", (hsize_t[]){1, 78}, -0.25f);
    rc_data_report r;
    check(p, RC_CHECK_TRAIN | RC_CHECK_TEST, &r);
    cr_assert_eq(r.n_errors, 1);
    const rc_data_issue *q = find(&r, "/train/response/firing_rate_10ms: negative response -0.5 for cell 1 at frame 77 "
                                      "(2 negative values in 1 cell)");
    cr_assert_not_null(q);
    cr_assert_eq(q->level, RC_ISSUE_ERROR);
    cr_assert_eq(q->cell, 1);
    cr_assert_eq(q->index, 77);
    check(p, RC_CHECK_TRAIN | RC_CHECK_SIGNED_OK, &r);
    cr_assert_eq(r.n_errors, 0);
    cr_assert_eq(r.n_warnings, 1);
    cr_assert(strstr(r.issue[0].msg, "accepted for loss = \"mse\""), "%s", r.issue[0].msg);
}

Test(sanity, silent_cells)
{
    const char *p = mk("zero1.h5", STIM_PATTERN);
    fill_row(p, "/train/response/firing_rate_10ms", 2, T_TR, 0);
    rc_data_report r;
    check(p, RC_CHECK_TRAIN | RC_CHECK_TEST, &r);
    cr_assert_eq(r.n_errors, 1);
    const rc_data_issue *q = find(&r, "the training response of cell 2 is all zero");
    cr_assert_not_null(q);
    cr_assert_eq(q->cell, 2);
    cr_assert(strstr(q->msg, "--cells"), "says how to leave it out: %s", q->msg);
    /* leaving it out makes the recording usable */
    rc_data *d = open_with(p, 0, (const int[]){0, 1}, 2);
    char err[1024];
    cr_assert_eq(rc_data_check(d, RC_CHECK_TRAIN | RC_CHECK_TEST, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(r.n_errors, 0);
    rc_data_close(d);
    /* every cell silent: one error for the whole response */
    p = mk("zero_all.h5", STIM_PATTERN);
    for (int c = 0; c < C; c++) fill_row(p, "/train/response/firing_rate_10ms", c, T_TR, 0);
    check(p, RC_CHECK_TRAIN, &r);
    cr_assert_eq(r.n_errors, 1);
    cr_assert_not_null(find(&r, "the training response is all zero (every selected cell)"));
    /* silent in the test split only: a warning (its test correlation is undefined) */
    p = mk("zero_test.h5", STIM_PATTERN);
    fill_row(p, "/test/response/firing_rate_10ms", 0, T_TE, 0);
    check(p, RC_CHECK_TRAIN | RC_CHECK_TEST, &r);
    cr_assert_eq(r.n_errors, 0);
    cr_assert_eq(r.n_warnings, 1);
    cr_assert_not_null(find(&r, "the test response of cell 0 is all zero"));
}

Test(sanity, constant_stimulus)
{
    rc_data_report r;
    check(mk("const.h5", STIM_CONST), RC_CHECK_TRAIN, &r);
    cr_assert_eq(r.n_errors, 1);
    cr_assert_not_null(find(&r, "/train/stimulus: the training stimulus is constant (every pixel is 0.5)"));
    check(mk("near.h5", STIM_NEAR_CONST), RC_CHECK_TRAIN, &r);
    dump(&r);
    cr_assert_eq(r.n_errors, 1);
    cr_assert_not_null(find(&r, "effectively constant"));
    check(mk("tiny.h5", STIM_TINY), RC_CHECK_TRAIN, &r);
    dump(&r);
    cr_assert_eq(r.n_errors, 0);
    cr_assert_eq(r.n_warnings, 1);
    cr_assert_not_null(find(&r, "small against the 1e-7 normalization epsilon"));
}

/* ---------------------------------------------------------------------------------------- */
/* The commands                                                                               */

static int count(const char *s, const char *needle)
{
    int k = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle)) k++;
    return k;
}

/* info --spec opens the recording as `retinac train SPEC` would: the spec's history, and the
 * chunks sized for the frames plus the FFT first conv's frame spectra (tiny.lua: layer 1 a plain
 * conv), so under the same budget there are more of them than for the frames alone. */
static int json_int(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    cr_assert_not_null(p, "no %s in: %s", key, s);
    return atoi(p + strlen(key));
}

Test(sanity, info_with_a_spec_sizes_chunks_as_the_trainer)
{
    static char out[65536];
    const char *ok = mk("chunks.h5", STIM_PATTERN);
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s' --quick --json --mem-budget 0.4", ok), 0, "%s", out);
    const int plain = json_int(out, "\"chunks\": "), hist = json_int(out, "\"history\": ");
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s' --quick --json --mem-budget 0.4 --spec '%s/specs/tiny.lua'", ok,
                             RC_SRC_DIR), 0, "%s", out);
    const int with = json_int(out, "\"chunks\": ");
    cr_expect_eq(json_int(out, "\"history\": "), 8, "the spec's history (defaults: %d)", hist);
    cr_expect_gt(with, plain, "chunks with the model's frame spectra %d, frames alone %d", with, plain);
    cr_expect_gt(plain, 1, "the budget should split the frames alone too (%d chunk)", plain);
    /* a spec that does not load is an error naming it */
    kit_out r = kit_rc("info '%s' --quick --spec /nonexistent/spec.lua", ok);
    cr_expect_eq(r.status, 1, "%s", r.out);
    cr_expect(strstr(r.err, "retinac info: ") && strstr(r.err, "/nonexistent/spec.lua"), "stderr: %s", r.err);
    kit_out_free(&r);
}

Test(sanity, info_lists_every_problem)
{
    static char out[65536];
    const char *ok = mk("ok.h5", STIM_PATTERN);
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s'", ok), 0, "%s", out);
    cr_assert(strstr(out, "check     0 errors, 0 warnings") && strstr(out, "  usable"), "%s", out);
    const char *p = mk("bad.h5", STIM_PATTERN);
    poke(p, "/test/stimulus", (hsize_t[]){10, 1, 2}, NAN);
    poke(p, "/train/response/firing_rate_10ms", (hsize_t[]){0, 5}, -1);
    fill_row(p, "/train/response/firing_rate_10ms", 1, T_TR, 0);
    fill_row(p, "/test/response/firing_rate_10ms", 2, T_TE, 0);
    kit_out r = kit_rc("info '%s'", p);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert_eq(count(r.out, "\n  error     "), 3, "%s", r.out);
    cr_assert_eq(count(r.out, "\n  warning   "), 1, "%s", r.out);
    cr_assert(strstr(r.out, "/test/stimulus: non-finite value (NaN/Inf) at frame 10, pixel (1,2)") &&
              strstr(r.out, "negative response -1 for cell 0 at frame 5") &&
              strstr(r.out, "training response of cell 1 is all zero") && strstr(r.out, "NOT USABLE"), "%s", r.out);
    cr_assert(!strncmp(r.err, "retinac info: ", 14) && strstr(r.err, "and 2 more errors"), "stderr: %s", r.err);
    kit_out_free(&r);
    r = kit_rc("info '%s' --json", p);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "\"usable\": false") && strstr(r.out, "\"errors\": 3") && strstr(r.out, "\"warnings\": 1") &&
              strstr(r.out, "\"key\": \"/test/stimulus\"") && strstr(r.out, "\"index\": 10"), "%s", r.out);
    kit_out_free(&r);
    /* --quick: labels only (the negative rate and the silent cell, not the frame) */
    r = kit_rc("info '%s' --quick", p);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(count(r.out, "\n  error     "), 2, "%s", r.out);
    cr_assert(!strstr(r.out, "/test/stimulus: non-finite"), "%s", r.out);
    kit_out_free(&r);
    /* with --loss mse the negative rate is a warning */
    r = kit_rc("info '%s' --loss mse", p);
    cr_assert_eq(r.status, 1);
    cr_assert_eq(count(r.out, "\n  error     "), 2, "%s", r.out);
    cr_assert(strstr(r.out, "accepted for loss = \"mse\""), "%s", r.out);
    kit_out_free(&r);
}

Test(sanity, train_and_search_refuse_before_any_work)
{
    static char out[16384];
    const char *p = mk("tnan.h5", STIM_PATTERN);
    poke(p, "/test/stimulus", (hsize_t[]){150, 3, 3}, INFINITY);
    const char *run = tpath("run");
    setenv("RETINAC_CACHE_DIR", tpath("cache"), 1);
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data '%s' -o '%s' --backend ref -q",
                             RC_SRC_DIR, p, run), 1, "%s", out);
    cr_assert(strstr(out, "retinac train: ") && strstr(out, "/test/stimulus: non-finite value (NaN/Inf) at frame 150"),
              "%s", out);
    char ck[600];
    snprintf(ck, sizeof ck, "%s/checkpoint.h5", run);
    cr_assert_neq(access(ck, F_OK), 0, "no epoch ran");
    snprintf(ck, sizeof ck, "%s/log.csv", run);
    cr_assert_neq(access(ck, F_OK), 0, "no epoch ran");
    /* a search stops once, before any trial folder exists */
    const char *spec = tpath("s.lua");
    kit_write_text(spec, "return model \"tiny\" {\n  input = { history = 8, height = 16, width = 16 },\n"
                         "  conv { channels = 2, kernel = 5 }, relu {}, dense {}, softplus {},\n"
                         "  train = { batch = 16, epochs = 1 },\n  search = { grid = { lr = { 1e-3, 1e-2 } } },\n}\n");
    const char *sdir = tpath("search");
    cr_assert_eq(kit_rc_text(out, sizeof out, "search '%s' --data '%s' -o '%s' --backend ref -q", spec, p, sdir), 1, "%s", out);
    cr_assert_eq(count(out, "non-finite value (NaN/Inf) at frame 150"), 1, "%s", out);
    cr_assert(!strstr(out, "trial"), "%s", out);
    char scope[600];
    snprintf(scope, sizeof scope, "%s/search_scope.txt", sdir);
    cr_assert_eq(kit_count_entries(sdir, NULL) - (access(scope, F_OK) == 0), 0, "no trial folder");
}

Test(sanity, eval_checks_the_test_split_it_reads)
{
    static char out[16384];
    const char *p = mk("e.h5", STIM_PATTERN);
    const char *run = tpath("erun");
    setenv("RETINAC_CACHE_DIR", tpath("cache"), 1);
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data '%s' -o '%s' --backend ref --epochs 1 --no-eval -q",
                             RC_SRC_DIR, p, run), 0, "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "eval '%s' --backend ref", run), 0, "%s", out);
    /* the same recording with a negative trial-averaged test rate and a NaN in a repeat */
    poke(p, "/test/response/firing_rate_10ms", (hsize_t[]){1, 60}, -2);
    poke(p, "/test/repeats/firing_rate_10ms", (hsize_t[]){0, 0, 61}, NAN);
    cr_assert_eq(kit_rc_text(out, sizeof out, "eval '%s' --backend ref --allow-other-recording", run), 1, "%s", out);
    cr_assert(strstr(out, "retinac eval: ") &&
              strstr(out, "/test/response/firing_rate_10ms: negative response -2 for cell 1 at frame 60") &&
              strstr(out, "and 1 more error"), "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "info '%s'", p), 1, "%s", out);
    cr_assert(strstr(out, "/test/repeats/firing_rate_10ms: non-finite value (NaN/Inf) for cell 0, repeat 0 at frame 61"),
              "the other one: %s", out);
}

/* ---------------------------------------------------------------------------------------- */
/* Links that lead nowhere                                                                    */

static void probe_fails(const char *path, const char *want)
{
    rc_data_probe pr;
    char err[1024];
    cr_assert_eq(rc_data_probe_file(path, NULL, &pr, err, sizeof err), -1, "%s: probe succeeded", path);
    cr_assert(strstr(err, want), "got: %s\nwant: %s", err, want);
}

/* ok.h5 with /train/stimulus (or key) moved away and a link put in its place by mklink. */
static const char *relinked(const char *name, const char *key, void (*mklink)(hid_t f, const char *key))
{
    const char *p = mk(name, STIM_PATTERN);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    cr_assert(H5Lmove(f, key, f, "/moved_away", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    mklink(f, key);
    H5Fclose(f);
    return p;
}

static void dangling_soft(hid_t f, const char *key) { H5Lcreate_soft("/nowhere", f, key, H5P_DEFAULT, H5P_DEFAULT); }
static void loop_soft(hid_t f, const char *key)
{
    H5Lcreate_soft("/loop_b", f, key, H5P_DEFAULT, H5P_DEFAULT);
    H5Lcreate_soft(key, f, "/loop_b", H5P_DEFAULT, H5P_DEFAULT);
}
static void dangling_external(hid_t f, const char *key)
{
    H5Lcreate_external("gone.h5", "/stim", f, key, H5P_DEFAULT, H5P_DEFAULT);
}

Test(sanity, links_that_lead_nowhere_are_named)
{
    probe_fails(relinked("soft.h5", "/train/stimulus", dangling_soft),
                "/train/stimulus: dangling soft link (/train/stimulus -> /nowhere: missing)");
    probe_fails(relinked("loop.h5", "/train/stimulus", loop_soft),
                "/train/stimulus: soft link loop (/train/stimulus -> /loop_b -> /train/stimulus)");
    probe_fails(relinked("ext.h5", "/train/stimulus", dangling_external),
                "/train/stimulus: dangling external link to gone.h5:/stim");
    /* an optional key (the whole test split) as a dangling link is an error, not "no test split" */
    probe_fails(relinked("test.h5", "/test", dangling_soft), "/test: dangling soft link (/test -> /nowhere: missing)");
    /* a link higher up the path is the one named */
    probe_fails(relinked("train.h5", "/train", dangling_external), "/train/stimulus: dangling external link to gone.h5:/stim at /train");
    /* absent is still "missing" */
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.rate_key = "firing_rate_5ms";
    rc_data *d = NULL;
    char err[1024];
    cr_assert_eq(rc_data_open(mk("abs.h5", STIM_PATTERN), &o, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "/train/response/firing_rate_5ms: missing (rate keys present: firing_rate_10ms)"), "%s", err);
    /* the rate key as a dangling link says so */
    const char *p = mk("rk.h5", STIM_PATTERN);
    hid_t f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Lcreate_soft("/nowhere", f, "/train/response/firing_rate_5ms", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
    cr_assert_eq(rc_data_open(p, &o, &d, err, sizeof err), -1);
    cr_assert(strstr(err, "/train/response/firing_rate_5ms: dangling soft link"), "%s", err);
}
