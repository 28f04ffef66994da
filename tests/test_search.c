/* test_search.c — hyperparameter search (search/search.h, `retinac search`):
 *   - expansion: grid product count and order, random draws in range (uniform and log-uniform,
 *     checked by where the draws fall), determinism by seed, earlier draws kept when trials
 *     grow, integer fields drawn as integers, grid x random crossing, names unique and
 *     filesystem-safe, canonical IR text expanding like the Lua spec, bad keys refused;
 *   - row files round-trip, ranking puts failed / non-finite rows last;
 *   - end to end on specs/tiny.lua's model with a tiny recording (tests/tiny_retina.h), a
 *     2-trial grid, 1 epoch, reference backend, one thread: summary files exist and parse, rows
 *     match the trials, the selected best has the lowest validation loss, a rerun skips the
 *     finished trials and rewrites the same files, `mpirun -n 2` gives the same rows as the
 *     serial run, a bad key / missing data file fails with one line naming it;
 *   - failures and reruns: a failed trial is recorded in its folder (search_row.txt, status
 *     failed, its error), a rerun reports it without retraining it, --retry-failed retrains it;
 *     a trial continued from its checkpoint reports the seconds of all its runs; a rerun with
 *     other --cells / --rate-key is refused; under mpirun a rank's failing trial is recorded and
 *     summarized, a rank without trials is harmless and leaves its cores to the ranks with
 *     trials, only rank 0 exits non-zero, and ranks that expanded different searches stop at once
 *     instead of leaving rank 0 waiting; a listing that cannot be written to stdout fails.
 */
#include <criterion/criterion.h>
#include <sched.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "search.h"
#include "kit.h"
#include "spec.h"
#include "tiny_retina.h"

/* ------------------------------------------------------------------ helpers */

static const char model_head[] =
    "return model \"tiny\" {\n"
    "  input = { history = 8, height = 16, width = 16 },\n"
    "  conv { channels = 3, kernel = 5 }, relu {},\n"
    "  conv { channels = 3, kernel = 3 }, relu {},\n"
    "  dense { bias = false }, batchnorm { over = \"unit\" }, softplus {},\n"
    "  train = { lr = 1e-2, batch = 16, epochs = 2, l1_activity = 0, seed = 7 },\n";

/* The tiny model with `search = SEARCH` (in a static buffer). */
static const char *spec_text(const char *search)
{
    static char text[4096];
    snprintf(text, sizeof text, "%s  search = %s,\n}\n", model_head, search);
    return text;
}

static rc_ir *load(const char *search)
{
    rc_ir *ir = malloc(sizeof *ir);
    char err[512];
    cr_assert(ir);
    cr_assert_eq(rc_spec_load_string("search.lua", spec_text(search), ir, err, sizeof err), 0, "%s", err);
    return ir;
}

static rc_search_trial *expand(const rc_ir *ir, int *n)
{
    rc_search_trial *t;
    char err[512];
    cr_assert_eq(rc_search_expand(&ir->search, &ir->train, &t, n, err, sizeof err), 0, "%s", err);
    return t;
}

static int dim_of(const rc_ir *ir, const char *key)
{
    for (int d = 0; d < ir->search.n_dims; d++)
        if (!strcmp(ir->search.dims[d].key, key)) return d;
    cr_assert_fail("no dim %s", key);
    return -1;
}

/* ------------------------------------------------------------------ expansion */

Test(search_expand, grid_product_count_and_order)
{
    rc_ir *ir = load("{ grid = { lr = { 1e-3, 1e-2 }, l2 = { 0, 1e-4, 1e-3 }, batch = { 16, 32 } } }");
    int n;
    rc_search_trial *t = expand(ir, &n);
    cr_assert_eq(n, 12);
    cr_assert_eq(rc_search_count(&ir->search), 12);
    /* canonical dim order: batch, l2, lr (by key); the last varies fastest */
    const double batch[] = {16, 32}, l2[] = {0, 1e-4, 1e-3}, lr[] = {1e-3, 1e-2};
    for (int i = 0; i < n; i++) {
        cr_assert_eq(t[i].index, i);
        cr_assert_eq(t[i].random_index, -1);
        cr_assert_eq(t[i].train.batch, (int)batch[i / 6], "trial %d batch %d", i, t[i].train.batch);
        cr_assert_eq(t[i].train.l2, l2[(i / 2) % 3], "trial %d l2 %g", i, t[i].train.l2);
        cr_assert_eq(t[i].train.lr, lr[i % 2], "trial %d lr %g", i, t[i].train.lr);
        cr_assert_eq(t[i].values[dim_of(ir, "lr")], t[i].train.lr);
        /* everything not searched is the base */
        rc_train b = ir->train;
        b.batch = t[i].train.batch; b.l2 = t[i].train.l2; b.lr = t[i].train.lr;
        cr_assert_eq(memcmp(&b, &t[i].train, sizeof b), 0, "trial %d changed an unsearched field", i);
    }
    cr_assert_str_eq(t[0].name, "batch-16_l2-0_lr-0.001");
    cr_assert_str_eq(t[11].name, "batch-32_l2-0.001_lr-0.01");
    free(t);
    free(ir);
}

Test(search_expand, random_draws_in_range_uniform_and_log)
{
    rc_ir *ir = load("{ random = { trials = 400, seed = 3, lr = { 1e-5, 1e-1, log = true }, "
                     "sched_factor = { 0.1, 0.9 } } }");
    int n;
    rc_search_trial *t = expand(ir, &n);
    cr_assert_eq(n, 400);
    int below_gm = 0, below_mid = 0;
    double mean_f = 0;
    for (int i = 0; i < n; i++) {
        double lr = t[i].train.lr, f = t[i].train.sched_factor;
        cr_assert(lr >= 1e-5 && lr <= 1e-1, "lr %g out of range", lr);
        cr_assert(f >= 0.1 && f <= 0.9, "sched_factor %g out of range", f);
        cr_assert_eq(t[i].random_index, i);
        below_gm += lr < 1e-3;          /* geometric midpoint: half the draws if log-uniform */
        below_mid += f < 0.5;
        mean_f += f / n;
    }
    /* linear draws of lr would put ~1% below 1e-3; log-uniform ~50% */
    cr_assert(below_gm > 150 && below_gm < 250, "log-uniform lr: %d of 400 below 1e-3", below_gm);
    cr_assert(below_mid > 150 && below_mid < 250, "uniform factor: %d of 400 below 0.5", below_mid);
    cr_assert(fabs(mean_f - 0.5) < 0.05, "uniform factor mean %g", mean_f);
    free(t);
    free(ir);
}

Test(search_expand, deterministic_by_seed_and_stable_when_trials_grow)
{
    rc_ir *a = load("{ random = { trials = 20, seed = 9, lr = { 1e-4, 1e-2, log = true }, l2 = { 0, 1e-2 } } }");
    rc_ir *b = load("{ random = { trials = 20, seed = 9, lr = { 1e-4, 1e-2, log = true }, l2 = { 0, 1e-2 } } }");
    rc_ir *c = load("{ random = { trials = 20, seed = 10, lr = { 1e-4, 1e-2, log = true }, l2 = { 0, 1e-2 } } }");
    rc_ir *d = load("{ random = { trials = 30, seed = 9, lr = { 1e-4, 1e-2, log = true }, l2 = { 0, 1e-2 } } }");
    int na, nb, nc, nd;
    rc_search_trial *ta = expand(a, &na), *tb = expand(b, &nb), *tc = expand(c, &nc), *td = expand(d, &nd);
    cr_assert_eq(na, 20);
    cr_assert_eq(nd, 30);
    int differ = 0;
    for (int i = 0; i < 20; i++) {
        cr_assert_str_eq(ta[i].name, tb[i].name);
        cr_assert_eq(memcmp(ta[i].values, tb[i].values, sizeof ta[i].values), 0);
        cr_assert_str_eq(ta[i].name, td[i].name, "more trials moved draw %d", i);
        differ += ta[i].train.lr != tc[i].train.lr;
    }
    cr_assert_gt(differ, 15, "another seed gave mostly the same draws (%d differ)", differ);
    /* values carry 4 significant digits, so the name holds the exact value */
    for (int i = 0; i < 20; i++) {
        char b4[32];
        snprintf(b4, sizeof b4, "%.4g", ta[i].train.lr);
        cr_assert_eq(strtod(b4, NULL), ta[i].train.lr);
        snprintf(b4, sizeof b4, "lr-%.4g", ta[i].train.lr);
        cr_assert(strstr(ta[i].name, b4), "%s lacks %s", ta[i].name, b4);
    }
    free(ta); free(tb); free(tc); free(td);
    free(a); free(b); free(c); free(d);
}

Test(search_expand, integer_fields_are_integers)
{
    rc_ir *ir = load("{ random = { trials = 300, seed = 1, batch = { 8, 12 }, epochs = { 1, 100, log = true } } }");
    int n;
    rc_search_trial *t = expand(ir, &n);
    int seen[13] = {0}, low = 0;
    int db = dim_of(ir, "batch"), de = dim_of(ir, "epochs");
    for (int i = 0; i < n; i++) {
        cr_assert_eq(t[i].values[db], floor(t[i].values[db]));
        cr_assert_eq(t[i].values[de], floor(t[i].values[de]));
        cr_assert_eq((double)t[i].train.batch, t[i].values[db]);
        cr_assert_eq((double)t[i].train.epochs, t[i].values[de]);
        cr_assert(t[i].train.batch >= 8 && t[i].train.batch <= 12, "batch %d", t[i].train.batch);
        cr_assert(t[i].train.epochs >= 1 && t[i].train.epochs <= 100, "epochs %d", t[i].train.epochs);
        seen[t[i].train.batch]++;
        low += t[i].train.epochs < 10;
        cr_assert_null(strchr(strstr(t[i].name, "batch-"), '.'), "integer printed with a point: %s", t[i].name);
    }
    for (int b = 8; b <= 12; b++) cr_assert_gt(seen[b], 30, "batch %d drawn %d times of 300", b, seen[b]);
    /* log-uniform over [1, 101): P(epochs < 10) = ln 10 / ln 101 ~ 0.5 */
    cr_assert(low > 110 && low < 190, "log epochs: %d of 300 below 10", low);
    free(t);
    free(ir);
}

Test(search_expand, grid_crossed_with_random)
{
    rc_ir *ir = load("{ grid = { l2 = { 1e-4, 1e-3, 1e-2 } }, random = { trials = 4, seed = 2, lr = { 1e-4, 1e-2 } } }");
    int n;
    rc_search_trial *t = expand(ir, &n);
    cr_assert_eq(n, 12);
    int dl = dim_of(ir, "lr");
    for (int i = 0; i < n; i++) {
        cr_assert_eq(t[i].grid_index, i / 4);
        cr_assert_eq(t[i].random_index, i % 4);
        /* every grid point sees the same random draws */
        cr_assert_eq(t[i].values[dl], t[i % 4].values[dl]);
        char r[16];
        snprintf(r, sizeof r, "_r%d_", i % 4);
        cr_assert(strstr(t[i].name, r), "%s lacks %s", t[i].name, r);
    }
    free(t);
    free(ir);
}

static void assert_names_ok(const rc_search_trial *t, int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = strlen(t[i].name);
        cr_assert(len > 0 && len < RC_SEARCH_NAME_MAX);
        cr_assert(t[i].name[0] != '.' && t[i].name[0] != '-', "bad start: %s", t[i].name);
        for (const char *p = t[i].name; *p; p++)
            cr_assert(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-',
                      "'%c' in %s", *p, t[i].name);
        for (int j = 0; j < i; j++) cr_assert_str_neq(t[i].name, t[j].name);
    }
}

Test(search_expand, names_unique_and_filesystem_safe)
{
    rc_ir *ir = load("{ grid = { lr = { 1e-7, 1.5e-7, 0.1 }, l2 = { 0, 1e5 } }, "
                     "random = { trials = 30, seed = 4, batch = { 1, 3 }, l1_activity = { 1e-9, 1e-3, log = true } } }");
    int n;
    rc_search_trial *t = expand(ir, &n);
    cr_assert_eq(n, 180);
    assert_names_ok(t, n);
    cr_assert(strstr(t[30].name, "l2-0_lr-1.5e-07_r0_"), "%s", t[30].name);
    cr_assert(strstr(t[90].name, "l2-100000_lr-1e-07_r0_"), "%s", t[90].name);   /* integers plainly */
    free(t);
    /* 16 long keys: the name is cut and ends in a hash, still unique */
    rc_search s;
    memset(&s, 0, sizeof s);
    s.seed = 1;
    s.trials = 3;
    const char *keys[] = {"lr", "l2", "l1_activity", "batch", "epochs", "sched_factor", "sched_patience",
                          "sched_threshold", "sched_gamma", "early_patience", "early_min_delta", "seed",
                          "val_fraction"};
    for (int d = 0; d < 13; d++) {
        rc_search_dim *sd = &s.dims[s.n_dims++];
        snprintf(sd->key, sizeof sd->key, "%s", keys[d]);
        sd->is_random = 1;
        sd->n_values = 2;
        sd->values[0] = d == 0 ? 1e-6 : d == 3 || d == 4 ? 1 : d == 5 || d == 8 ? 0.01 : 0;
        sd->values[1] = d == 12 ? 0.5 : d == 5 || d == 8 ? 0.99 : 1000;
        if (d == 0) sd->values[1] = 1;
    }
    char err[512];
    cr_assert_eq(rc_search_expand(&s, &ir->train, &t, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 3);
    assert_names_ok(t, n);
    free(t);
    free(ir);
}

Test(search_expand, canonical_ir_text_expands_like_the_spec)
{
    rc_ir *ir = load("{ grid = { lr = { 1e-3, 1e-2 } }, random = { trials = 5, seed = 11, l2 = { 1e-5, 1e-2, log = true } } }");
    char *text = rc_ir_format(ir);
    cr_assert(text);
    rc_ir *back = malloc(sizeof *back);
    char err[512];
    cr_assert_eq(rc_ir_parse(back, text, "canonical", err, sizeof err), 0, "%s", err);
    int n1, n2;
    rc_search_trial *a = expand(ir, &n1), *b = expand(back, &n2);
    cr_assert_eq(n1, 10);
    cr_assert_eq(n2, n1);
    for (int i = 0; i < n1; i++) {
        cr_assert_str_eq(a[i].name, b[i].name);
        cr_assert_eq(memcmp(&a[i].train, &b[i].train, sizeof a[i].train), 0);
    }
    free(a); free(b); free(back); free(text); free(ir);
}

Test(search_expand, bad_sections_are_refused)
{
    rc_ir *ir = load("{ grid = { lr = { 1e-3 } } }");
    rc_search s = ir->search;
    rc_search_trial *t = NULL;
    int n;
    char err[512];
    snprintf(s.dims[0].key, sizeof s.dims[0].key, "learning_rate");
    cr_assert_eq(rc_search_expand(&s, &ir->train, &t, &n, err, sizeof err), -1);
    cr_assert(strstr(err, "learning_rate") && strstr(err, "not a train field"), "%s", err);
    cr_assert_null(t);
    s = ir->search;
    snprintf(s.dims[0].key, sizeof s.dims[0].key, "loss");             /* an enum */
    cr_assert_eq(rc_search_check(&s, err, sizeof err), -1);
    cr_assert(strstr(err, "loss") && strstr(err, "numeric"), "%s", err);
    s = ir->search;
    s.dims[0].n_values = 2;
    s.dims[0].values[1] = 1e-3;                                          /* repeated value */
    cr_assert_eq(rc_search_check(&s, err, sizeof err), -1);
    cr_assert(strstr(err, "twice"), "%s", err);
    s = ir->search;
    snprintf(s.dims[0].key, sizeof s.dims[0].key, "batch");
    s.dims[0].values[0] = 2.5;                                           /* not an integer */
    cr_assert_eq(rc_search_check(&s, err, sizeof err), -1);
    cr_assert(strstr(err, "batch") && strstr(err, "integer"), "%s", err);
    s = ir->search;
    s.dims[0].is_random = 1;
    s.dims[0].n_values = 2;
    s.dims[0].values[1] = 1e-2;
    s.trials = 0;                                                        /* random without trials */
    cr_assert_eq(rc_search_check(&s, err, sizeof err), -1);
    cr_assert(strstr(err, "trials"), "%s", err);
    /* no dims: one trial, the base */
    memset(&s, 0, sizeof s);
    cr_assert_eq(rc_search_expand(&s, &ir->train, &t, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t[0].name, "base");
    cr_assert_eq(memcmp(&t[0].train, &ir->train, sizeof t[0].train), 0);
    free(t);
    free(ir);
}

/* ------------------------------------------------------------------ rows */

Test(search_rows, row_file_round_trip_and_ranking)
{
    char dir[64], err[512];
    kit_tmpdir(dir, sizeof dir, "rc_search_row");
    rc_search_row r, back;
    memset(&r, 0, sizeof r);
    r.index = 3;
    r.status = RC_TRIAL_OK;
    r.epochs_done = 7;
    r.threads = 2;
    r.best_epoch = 5;
    r.best_val_loss = -1.2345678901234567;
    r.test_mean_r = NAN;
    r.test_mean_feve = 0.1;
    r.seconds = 12.5;
    memset(r.config_hash, 'a', 64);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), 1, "absent file must read as 'not done'");
    cr_assert_eq(rc_search_row_write(dir, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.best_val_loss, r.best_val_loss);
    cr_assert(isnan(back.test_mean_r));
    cr_assert_eq(back.test_mean_feve, r.test_mean_feve);
    cr_assert_eq(back.best_epoch, 5);
    cr_assert_eq(back.epochs_done, 7);
    cr_assert_str_eq(back.config_hash, r.config_hash);
    cr_assert_eq(back.status, RC_TRIAL_OK);
    cr_assert(back.skipped);
    /* a truncated file is an error, not a finished trial */
    char path[128];
    snprintf(path, sizeof path, "%s/search_row.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("retinac-search-row 1\nindex 3\n", f);
    fclose(f);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), -1);
    cr_assert(strstr(err, "search_row.txt"), "%s", err);
    unlink(path);
    rmdir(dir);

    rc_search_row rows[4];
    memset(rows, 0, sizeof rows);
    double v[4] = {0.5, NAN, -0.25, 0.1};
    for (int i = 0; i < 4; i++) { rows[i].index = i; rows[i].status = RC_TRIAL_OK; rows[i].best_val_loss = v[i]; }
    rows[3].status = RC_TRIAL_FAILED;
    int order[4];
    cr_assert_eq(rc_search_rank(rows, 4, order), 2);
    cr_assert_eq(order[0], 2);
    cr_assert_eq(order[1], 0);
    cr_assert(order[2] == 1 && order[3] == 3, "failed / NaN rows must come last, by index");
}

/* Longest first to the least-loaded rank: with epochs {4, 1, 1} on 2 ranks the long trial runs
 * alone (makespan 4; round-robin would give rank 0 trials 0 and 2: 5); equal trials go round-
 * robin in index order (the old assignment); finished trials are rank 0's and cost nothing. */
Test(search_rows, schedule_longest_first_to_the_least_loaded_rank)
{
    rc_search_trial t[6];
    rc_search_row r[6];
    int owner[6];
    memset(t, 0, sizeof t);
    memset(r, 0, sizeof r);
    const int e1[3] = {4, 1, 1};
    for (int i = 0; i < 3; i++) t[i].train.epochs = e1[i];
    rc_search_schedule(t, r, 3, 2, owner);
    cr_assert(owner[0] == 0 && owner[1] == 1 && owner[2] == 1, "owners %d %d %d", owner[0], owner[1], owner[2]);
    for (int i = 0; i < 5; i++) t[i].train.epochs = 3;
    rc_search_schedule(t, r, 5, 2, owner);
    for (int i = 0; i < 5; i++) cr_assert_eq(owner[i], i % 2, "equal trials: round-robin");
    rc_search_schedule(t, r, 5, 1, owner);
    for (int i = 0; i < 5; i++) cr_assert_eq(owner[i], 0, "one rank runs everything");
    /* trial 0 finished earlier: the rest are dealt as if it did not exist */
    const int e2[4] = {9, 2, 5, 5};
    for (int i = 0; i < 4; i++) t[i].train.epochs = e2[i];
    r[0].skipped = 1;
    rc_search_schedule(t, r, 4, 2, owner);
    cr_assert(owner[0] == 0 && owner[2] == 0 && owner[3] == 1 && owner[1] == 0,
              "owners %d %d %d %d", owner[0], owner[1], owner[2], owner[3]);
    /* more ranks than trials: ranks 0..n-1 get one each */
    memset(r, 0, sizeof r);
    rc_search_schedule(t, r, 4, 6, owner);
    cr_assert(owner[0] == 0 && owner[2] == 1 && owner[3] == 2 && owner[1] == 3,
              "owners %d %d %d %d", owner[0], owner[1], owner[2], owner[3]);
}

Test(search_rows, failed_rows_round_trip_and_old_rows_read_ok)
{
    char dir[64], err[512], path[128];
    kit_tmpdir(dir, sizeof dir, "rc_search_frow");
    rc_search_row r, back;
    memset(&r, 0, sizeof r);
    r.index = 2;
    r.status = RC_TRIAL_FAILED;
    r.best_val_loss = r.test_mean_r = r.test_mean_feve = NAN;
    r.seconds = 0.5;
    memset(r.config_hash, 'b', 64);
    snprintf(r.error, sizeof r.error, "epoch 3 batch 1: training loss is nan\n(try a lower --lr)");
    cr_assert_eq(rc_search_row_write(dir, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.status, RC_TRIAL_FAILED, "a failed row read back as status %d", back.status);
    cr_assert_str_eq(back.error, "epoch 3 batch 1: training loss is nan (try a lower --lr)");
    cr_assert(back.skipped);
    cr_assert_eq(back.seconds, 0.5);
    /* a pending row is not an ended trial: refused */
    r.status = RC_TRIAL_PENDING;
    cr_assert_eq(rc_search_row_write(dir, &r, err, sizeof err), -1);
    /* a row file of the first format (no status line) is a finished trial */
    snprintf(path, sizeof path, "%s/search_row.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "retinac-search-row 1\nindex 1\nconfig_hash %064d\nepochs 2\nthreads 0\nbest_epoch 2\n"
            "best_val_loss 0.25\ntest_mean_r 0.5\ntest_mean_feve 0.1\nseconds 3\n", 0);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.status, RC_TRIAL_OK);
    cr_assert_eq(back.best_val_loss, 0.25);
    cr_assert_str_eq(back.error, "");
    /* an unknown status is malformed, not silently ok */
    f = fopen(path, "a");
    cr_assert(f);
    fputs("status maybe\n", f);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(rc_search_row_read(dir, &back, err, sizeof err), -1);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------ end to end */

static char dir[256], data[300], spec[300];

static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_search");
    snprintf(data, sizeof data, "%s/tiny.h5", dir);
    cr_assert_eq(tiny_retina_write(data, 3, 1200, 400, 4), 0, "writing the tiny recording");
    snprintf(spec, sizeof spec, "%s/search.lua", dir);
    kit_write_text(spec, spec_text("{ grid = { lr = { 1e-2, 2e-3 } } }"));
}

/* the commands' stdout and stderr as one stream, as `... 2>&1` gave them */
static const kit_opts merged = {.merge = 1};

/* ASAN_OPTIONS for the MPI ranks: the caller's with leak checking off (see below) */
static const char *asan_env(void)
{
    static char buf[1024];
    const char *old = getenv("ASAN_OPTIONS");
    int set = old && *old;
    snprintf(buf, sizeof buf, "ASAN_OPTIONS=%s%sdetect_leaks=0", set ? old : "", set ? ":" : "");
    return buf;
}

#define MAX_ROWS 8
#define MAX_COLS 16
typedef struct { int n_rows, n_cols; char hdr[MAX_COLS][32]; char cell[MAX_ROWS][MAX_COLS][64]; } csv_t;

/* Parse search.csv (no quoted fields in these runs). */
static void parse_csv(const char *text, csv_t *c)
{
    memset(c, 0, sizeof *c);
    const char *p = text;
    for (int line = 0; *p; line++) {
        const char *e = strchr(p, '\n');
        cr_assert(e, "unterminated line in search.csv");
        cr_assert_lt(line, MAX_ROWS + 1);
        int col = 0;
        for (const char *q = p; q <= e; col++) {
            const char *s = q;
            while (q < e && *q != ',') q++;
            cr_assert_lt(col, MAX_COLS);
            char *dst = line ? c->cell[line - 1][col] : c->hdr[col];
            snprintf(dst, line ? 64 : 32, "%.*s", (int)(q - s), s);
            q++;
        }
        if (line == 0) c->n_cols = col;
        else { cr_assert_eq(col, c->n_cols, "row %d has %d columns, header %d", line, col, c->n_cols); c->n_rows++; }
        p = e + 1;
    }
}

static int col(const csv_t *c, const char *name)
{
    for (int i = 0; i < c->n_cols; i++)
        if (!strcmp(c->hdr[i], name)) return i;
    cr_assert_fail("search.csv has no column %s", name);
    return -1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define SEARCH_ARGS "--epochs 1 --backend ref -q"

Test(search_cli, serial_rerun_and_mpi_agree, .init = setup, .fini = kit_cleanup, .timeout = 150)
{
    char cmd[4096], path[512];
    /* the trials as listed by --dry-run */
    kit_out dry = kit_rc("search %s --dry-run", spec);
    cr_assert_eq(dry.status, 0, "%s", dry.out);
    cr_assert(strstr(dry.out, "lr-0.01") && strstr(dry.out, "lr-0.002") && strstr(dry.out, "2 trials"), "%s", dry.out);

    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s/serial " SEARCH_ARGS,
             RC_BIN, spec, data, dir);
    kit_out out = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(out.status, 0, "search failed:\n%s", out.out);
    snprintf(path, sizeof path, "%s/serial/search.csv", dir);
    char *csv_text = kit_read_text(path);
    csv_t c;
    parse_csv(csv_text, &c);
    cr_assert_eq(c.n_rows, 2, "%s", csv_text);
    int ci = col(&c, "name"), cl = col(&c, "lr"), cv = col(&c, "best_val_loss"), cs = col(&c, "status"),
        cr = col(&c, "test_mean_r"), ck = col(&c, "val_rank"), ce = col(&c, "best_epoch"), cf = col(&c, "test_mean_feve");
    const char *names[2] = {"lr-0.01", "lr-0.002"};
    double lrs[2] = {1e-2, 2e-3}, vl[2];
    for (int i = 0; i < 2; i++) {
        cr_assert_str_eq(c.cell[i][ci], names[i]);
        cr_assert_eq(strtod(c.cell[i][cl], NULL), lrs[i]);
        cr_assert_str_eq(c.cell[i][cs], "ok");
        cr_assert_str_eq(c.cell[i][ce], "1");
        vl[i] = strtod(c.cell[i][cv], NULL);
        cr_assert(isfinite(vl[i]) && c.cell[i][cv][0], "val loss '%s'", c.cell[i][cv]);
        double r = strtod(c.cell[i][cr], NULL);
        cr_assert(r >= -1 && r <= 1 && c.cell[i][cr][0], "test r '%s'", c.cell[i][cr]);
        cr_assert(c.cell[i][cf][0], "no FEVe");
        /* the run folder of a trial is a normal training run */
        snprintf(path, sizeof path, "%s/serial/%s/best.h5", dir, names[i]);
        cr_assert_eq(access(path, F_OK), 0, "%s missing", path);
    }
    cr_assert_neq(vl[0], vl[1], "two learning rates gave the same validation loss");
    int best = vl[0] < vl[1] ? 0 : 1;
    cr_assert_str_eq(c.cell[best][ck], "1");
    cr_assert_str_eq(c.cell[1 - best][ck], "2");
    /* the JSON summary names the same best and carries the selection rule */
    snprintf(path, sizeof path, "%s/serial/search.json", dir);
    char *js = kit_read_text(path), want[128];
    snprintf(want, sizeof want, "\"best\": {\n    \"index\": %d,\n    \"name\": \"%s\"", best, names[best]);
    cr_assert(strstr(js, want), "search.json lacks %s:\n%s", want, js);
    cr_assert(strstr(js, "never used to select"), "%s", js);
    int depth = 0;
    for (const char *p = js; *p; p++) { depth += *p == '{' || *p == '['; depth -= *p == '}' || *p == ']'; cr_assert_geq(depth, 0); }
    cr_assert_eq(depth, 0, "unbalanced search.json");
    /* the printed table lists the best first and names it */
    char bl[96];
    snprintf(bl, sizeof bl, "best: %s", names[best]);
    cr_assert(strstr(out.out, bl), "%s", out.out);

    /* rerun: nothing retrained, the same files */
    double t0 = now_s();
    kit_out out2 = kit_cmd(&merged, "%s", cmd);
    double rerun_s = now_s() - t0;
    cr_assert_eq(out2.status, 0, "%s", out2.out);
    cr_assert(strstr(out2.out, "2 done earlier"), "%s", out2.out);
    cr_assert(!strstr(out2.out, "epoch 1/1"), "a finished trial was retrained:\n%s", out2.out);
    cr_assert_lt(rerun_s, 5.0, "rerun took %.1fs", rerun_s);
    snprintf(path, sizeof path, "%s/serial/search.csv", dir);
    char *csv2 = kit_read_text(path);
    cr_assert_str_eq(csv2, csv_text, "rerun changed search.csv");

    /* mpirun -n 2: the same rows (all columns but the wall time). Root (CI) needs the
     * allow-run-as-root pair; --oversubscribe lets 2 ranks start on a 1-core machine. In the
     * sanitizer build the ranks run without leak checking: Open MPI leaves allocations at
     * MPI_Finalize in components it has already dlclosed (frames "<unknown module>" that no
     * suppression can name). Address/UB checking stays on, and the serial runs above cover the
     * same search code with leak checking. */
    snprintf(cmd, sizeof cmd, "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
             "'%s' mpirun -n 2 --oversubscribe %s search %s --data %s -o %s/mpi " SEARCH_ARGS,
             asan_env(), RC_BIN, spec, data, dir);
    kit_out mo = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(mo.status, 0, "mpirun search failed:\n%s", mo.out);
    cr_assert(strstr(mo.out, "2 trials (2 trained now"), "%s", mo.out);
    snprintf(path, sizeof path, "%s/mpi/search.csv", dir);
    char *csv3 = kit_read_text(path);
    csv_t m;
    parse_csv(csv3, &m);
    cr_assert_eq(m.n_rows, 2);
    cr_assert_eq(m.n_cols, c.n_cols);
    int csec = col(&c, "seconds");
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < c.n_cols; k++)
            if (k != csec)
                cr_assert_str_eq(m.cell[i][k], c.cell[i][k], "row %d column %s: mpi %s, serial %s", i,
                                 c.hdr[k], m.cell[i][k], c.cell[i][k]);
    /* each rank trained one trial: both folders are complete */
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/mpi/%s/search_row.txt", dir, names[i]);
        cr_assert_eq(access(path, F_OK), 0, "%s missing", path);
    }
    kit_out_free(&dry); kit_out_free(&out); kit_out_free(&out2); kit_out_free(&mo);
    free(csv_text); free(csv2); free(csv3); free(js);
}

/* stderr of a failing command (the words of cmd run with o): exactly one line, naming `what` */
static void assert_one_line_error(const kit_opts *o, const char *cmd, const char *what)
{
    kit_out r = kit_cmd(o, "%s", cmd);
    const char *out = r.out;
    cr_assert_neq(r.status, 0, "succeeded: %s\n%s", cmd, out);
    cr_assert(strstr(out, what), "error does not name %s:\n%s", what, out);
    size_t len = strlen(out);
    cr_assert(len > 0 && out[len - 1] == '\n' && !memchr(out, '\n', len - 1), "not one line:\n%s", out);
    kit_out_free(&r);
}

Test(search_cli, bad_key_and_missing_data_fail_with_one_line, .init = setup, .fini = kit_cleanup, .timeout = 60)
{
    char cmd[4096], bad[400];
    snprintf(bad, sizeof bad, "%s/bad.lua", dir);
    kit_write_text(bad, spec_text("{ grid = { learning_rate = { 1e-2, 1e-3 } } }"));
    snprintf(cmd, sizeof cmd, "%s search %s --data %s -o %s/o", RC_BIN, bad, data, dir);
    assert_one_line_error(&merged, cmd, "learning_rate");
    snprintf(cmd, sizeof cmd, "%s search %s --data %s/absent.h5 -o %s/o", RC_BIN, spec, dir, dir);
    assert_one_line_error(&merged, cmd, "absent.h5");
    /* a flag for a searched key, and a spec without a search section */
    snprintf(cmd, sizeof cmd, "%s search %s --data %s -o %s/o --lr 0.1", RC_BIN, spec, data, dir);
    assert_one_line_error(&merged, cmd, "--lr");
    snprintf(cmd, sizeof cmd, "%s search %s/specs/tiny.lua --data %s -o %s/o", RC_BIN, RC_SRC_DIR, data, dir);
    assert_one_line_error(&merged, cmd, "no search section");
    /* a listing that cannot be written is a failure, not a silent success */
    snprintf(cmd, sizeof cmd, "%s search %s --dry-run", RC_BIN, spec);
    const kit_opts full = {.merge = 1, .stdout_path = "/dev/full"};     /* 2>&1 >/dev/full */
    assert_one_line_error(&full, cmd, "stdout");
    struct stat sb;
    char o[400];
    snprintf(o, sizeof o, "%s/o", dir);
    cr_assert_neq(stat(o, &sb), 0, "a failed search created its output folder");
}

/* ------------------------------------------------------------------ failures, reruns, MPI edges */

/* the words before `-n N retinac ...` under mpirun; its first %s is asan_env() */
#define MPIRUN "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 " \
               "'%s' timeout 60 mpirun --oversubscribe "

/* A trial folder holding a checkpoint.h5 that is not HDF5: training that trial fails (the
 * resume cannot read it), deterministically and at once. */
static void plant_bad_checkpoint(const char *out, const char *trial)
{
    char path[600];
    snprintf(path, sizeof path, "%s", out);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s", out, trial);
    cr_assert_eq(mkdir(path, 0777), 0, "mkdir %s", path);
    snprintf(path, sizeof path, "%s/%s/checkpoint.h5", out, trial);
    kit_write_text(path, "not an HDF5 file\n");
}

/* The value of "key" in a trial's search_row.txt (a copy; caller frees). */
static char *row_value(const char *out, const char *trial, const char *key)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s/search_row.txt", out, trial);
    char *text = kit_read_text(path), *p = text;
    size_t kl = strlen(key);
    for (; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            p += kl + 1;
            char *v = strndup(p, strcspn(p, "\n"));
            free(text);
            return v;
        }
    cr_assert_fail("%s has no %s line:\n%s", path, key, text);
    return NULL;
}

Test(search_cli, failed_trial_is_recorded_reported_and_retried_on_request, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char cmd[4096], out_dir[400], path[600];
    snprintf(out_dir, sizeof out_dir, "%s/f", dir);
    plant_bad_checkpoint(out_dir, "lr-0.002");
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s " SEARCH_ARGS, RC_BIN,
             spec, data, out_dir);
    kit_out o1 = kit_cmd(&merged, "%s", cmd);
    cr_assert_neq(o1.status, 0, "a failed trial must fail the search:\n%s", o1.out);
    cr_assert(strstr(o1.out, "trial lr-0.002") && strstr(o1.out, "checkpoint.h5"), "%s", o1.out);
    /* the failure is in the trial's folder, with its error */
    char *status = row_value(out_dir, "lr-0.002", "status"), *error = row_value(out_dir, "lr-0.002", "error");
    cr_assert_str_eq(status, "failed");
    cr_assert(strstr(error, "checkpoint.h5") && strstr(error, "not an HDF5 file"), "recorded error: %s", error);
    snprintf(path, sizeof path, "%s/search.csv", out_dir);
    char *csv1 = kit_read_text(path);
    csv_t c;
    parse_csv(csv1, &c);
    cr_assert_str_eq(c.cell[1][col(&c, "status")], "failed");
    cr_assert_str_eq(c.cell[0][col(&c, "status")], "ok");

    /* rerun: reported, not retrained; the summary is the same */
    kit_out o2 = kit_cmd(&merged, "%s", cmd);
    cr_assert_neq(o2.status, 0, "%s", o2.out);
    cr_assert(strstr(o2.out, "lr-0.002 failed in an earlier run") && strstr(o2.out, "--retry-failed"), "%s", o2.out);
    cr_assert(strstr(o2.out, "1 done earlier, 1 failed, 1 of them in an earlier run"), "%s", o2.out);
    snprintf(path, sizeof path, "%s/lr-0.002/checkpoint.h5", out_dir);
    char *ck = kit_read_text(path);
    cr_assert_str_eq(ck, "not an HDF5 file\n", "the failed trial was touched by the rerun");
    snprintf(path, sizeof path, "%s/lr-0.002/best.h5", out_dir);
    cr_assert_neq(access(path, F_OK), 0, "the failed trial was retrained");
    snprintf(path, sizeof path, "%s/search.csv", out_dir);
    char *csv2 = kit_read_text(path);
    cr_assert_str_eq(csv2, csv1, "the rerun changed search.csv");

    /* the cause removed, --retry-failed trains it and replaces the failure */
    snprintf(path, sizeof path, "%s/lr-0.002/checkpoint.h5", out_dir);
    cr_assert_eq(unlink(path), 0);
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s --retry-failed " SEARCH_ARGS,
             RC_BIN, spec, data, out_dir);
    kit_out o3 = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(o3.status, 0, "%s", o3.out);
    cr_assert(strstr(o3.out, "(1 trained now, 1 done earlier, 0 failed)"), "%s", o3.out);
    char *status3 = row_value(out_dir, "lr-0.002", "status");
    cr_assert_str_eq(status3, "ok");
    snprintf(path, sizeof path, "%s/lr-0.002/search_row.txt", out_dir);
    char *row3 = kit_read_text(path);
    cr_assert_null(strstr(row3, "error"), "a finished row kept the old error:\n%s", row3);
    kit_out_free(&o1); kit_out_free(&o2); kit_out_free(&o3);
    free(status); free(error); free(status3); free(csv1); free(csv2);
    free(ck); free(row3);
}

Test(search_cli, continued_trial_reports_the_seconds_of_all_its_runs, .init = setup, .fini = kit_cleanup,
     .timeout = 120)
{
    char cmd[4096], out_dir[400], path[600];
    snprintf(out_dir, sizeof out_dir, "%s/s", dir);
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s --epochs 2 --backend ref -q",
             RC_BIN, spec, data, out_dir);
    kit_out o1 = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(o1.status, 0, "%s", o1.out);
    /* an interruption after the last epoch, before the row was written: the rerun continues the
     * checkpoint (no epoch left) and evaluates */
    snprintf(path, sizeof path, "%s/lr-0.01/search_row.txt", out_dir);
    cr_assert_eq(unlink(path), 0);
    kit_out o2 = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(o2.status, 0, "%s", o2.out);
    char *epochs = row_value(out_dir, "lr-0.01", "epochs"), *secs = row_value(out_dir, "lr-0.01", "seconds");
    cr_assert_str_eq(epochs, "2");
    /* the epochs of the first run count: seconds >= the per-epoch seconds of log.csv */
    snprintf(path, sizeof path, "%s/lr-0.01/log.csv", out_dir);
    char *log = kit_read_text(path);
    double sum = 0;
    int rows = 0;
    for (char *p = strchr(log, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
        /* epoch,train_loss,val_loss,val_r,lr,seconds,... : the 6th field */
        char *q = p + 1;
        for (int k = 0; k < 5 && q; k++) q = strchr(q, ',') ? strchr(q, ',') + 1 : NULL;
        cr_assert(q, "malformed log.csv:\n%s", log);
        sum += strtod(q, NULL);
        rows++;
    }
    cr_assert_eq(rows, 2, "log.csv:\n%s", log);
    cr_assert_gt(sum, 0);
    double s = strtod(secs, NULL);
    cr_assert_geq(s, sum, "continued trial reports %.4gs, its two epochs took %.4gs", s, sum);
    kit_out_free(&o1); kit_out_free(&o2);
    free(epochs); free(secs); free(log);
}

Test(search_cli, rerun_with_other_cells_or_rate_key_is_refused, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    char cmd[4096], out_dir[400];
    snprintf(out_dir, sizeof out_dir, "%s/c", dir);
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s --cells 0,1 " SEARCH_ARGS,
             RC_BIN, spec, data, out_dir);
    kit_out o1 = kit_cmd(&merged, "%s", cmd);
    cr_assert_eq(o1.status, 0, "%s", o1.out);
    kit_out o2 = kit_cmd(&merged, "%s", cmd);          /* the same cells: done earlier */
    cr_assert_eq(o2.status, 0, "%s", o2.out);
    cr_assert(strstr(o2.out, "2 done earlier"), "%s", o2.out);
    /* all cells (no --cells), and another response key: refused before anything runs */
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s " SEARCH_ARGS,
             RC_BIN, spec, data, out_dir);
    assert_one_line_error(&merged, cmd, "other cells (0,1, now all)");
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s --cells 1 " SEARCH_ARGS,
             RC_BIN, spec, data, out_dir);
    assert_one_line_error(&merged, cmd, "other cells (0,1, now 1)");     /* the recorded list whole */
    snprintf(cmd, sizeof cmd, "env OMP_NUM_THREADS=1 %s search %s --data %s -o %s --cells 0,1 --rate-key spikes "
             SEARCH_ARGS, RC_BIN, spec, data, out_dir);
    assert_one_line_error(&merged, cmd, "--rate-key");
    kit_out_free(&o1); kit_out_free(&o2);
}

Test(search_cli, mpi_failing_rank_and_a_rank_without_trials, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    char cmd[4096], out_dir[400], path[600];
    snprintf(out_dir, sizeof out_dir, "%s/m", dir);
    plant_bad_checkpoint(out_dir, "lr-0.002");          /* trial 1: rank 1's */
    /* 3 ranks, 2 trials: rank 2 has none */
    snprintf(cmd, sizeof cmd, MPIRUN "-n 3 %s search %s --data %s -o %s " SEARCH_ARGS, asan_env(), RC_BIN, spec,
             data, out_dir);
    kit_out r = kit_cmd(&merged, "%s", cmd);
    const char *o = r.out;
    cr_assert(!r.signal && r.status != 0 && r.status != 124,
              "expected a failed search (not a timeout), status %d:\n%s", r.status, o);
    cr_assert(strstr(o, "2 trials (1 trained now, 0 done earlier, 1 failed)"), "%s", o);
    snprintf(path, sizeof path, "%s/search.csv", out_dir);
    char *csv = kit_read_text(path);
    csv_t c;
    parse_csv(csv, &c);
    cr_assert_eq(c.n_rows, 2);
    cr_assert_str_eq(c.cell[0][col(&c, "status")], "ok");
    cr_assert_str_eq(c.cell[0][col(&c, "val_rank")], "1");
    cr_assert_str_eq(c.cell[1][col(&c, "status")], "failed");
    cr_assert(strstr(c.cell[1][col(&c, "error")], "checkpoint.h5"), "error cell '%s'", c.cell[1][col(&c, "error")]);
    /* only rank 0 exits non-zero (it carries the search's status): a failing rank 1 that did
     * would make mpirun abort the job, possibly before rank 0 wrote the summary */
    cr_assert_null(strstr(o, "],1]"), "rank 1 exited non-zero:\n%s", o);
    /* rank 1 recorded its failure in the trial's folder */
    char *status = row_value(out_dir, "lr-0.002", "status");
    cr_assert_str_eq(status, "failed");
    kit_out_free(&r); free(csv); free(status);
}

Test(search_cli, mpi_ranks_with_different_searches_stop_at_once, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    char cmd[4096], spec4[400], out_dir[400];
    snprintf(spec4, sizeof spec4, "%s/search4.lua", dir);
    kit_write_text(spec4, spec_text("{ grid = { lr = { 1e-2, 2e-3, 1e-3, 5e-4 } } }"));
    snprintf(out_dir, sizeof out_dir, "%s/d", dir);
    /* rank 0 expands 4 trials and would wait for trial 3 from rank 1, which expands 2 */
    snprintf(cmd, sizeof cmd, MPIRUN "-n 1 %s search %s --data %s -o %s " SEARCH_ARGS " : -n 1 %s search %s "
             "--data %s -o %s " SEARCH_ARGS, asan_env(), RC_BIN, spec4, data, out_dir, RC_BIN, spec, data, out_dir);
    double t0 = now_s();
    kit_out r = kit_cmd(&merged, "%s", cmd);
    const char *o = r.out;
    double secs = now_s() - t0;
    cr_assert(!r.signal && r.status != 0 && r.status != 124,
              "expected a prompt failure (not a timeout), status %d after %.1fs:\n%s", r.status, secs, o);
    cr_assert(strstr(o, "expanded different searches"), "%s", o);
    char path[600];
    snprintf(path, sizeof path, "%s/lr-0.01", out_dir);
    cr_assert_neq(access(path, F_OK), 0, "a trial ran although the ranks disagreed");
    kit_out_free(&r);
}

Test(search_cli, mpi_ranks_without_trials_leave_their_cores, .init = setup, .fini = kit_cleanup, .timeout = 120)
{
    char cmd[4096], spec1[400], want[64];
    snprintf(spec1, sizeof spec1, "%s/search1.lua", dir);
    kit_write_text(spec1, spec_text("{ grid = { lr = { 1e-2 } } }"));
    /* 2 ranks on this node, 1 trial: rank 0 may use every core (not half); unbound, so the
     * rank's mask is ours */
    cpu_set_t cs;
    cr_assert_eq(sched_getaffinity(0, sizeof cs, &cs), 0);
    long online = sysconf(_SC_NPROCESSORS_ONLN), mine = CPU_COUNT(&cs);
    snprintf(want, sizeof want, "threads per rank: %ld)", mine < online ? mine : online);
    snprintf(cmd, sizeof cmd, "env -u OMP_NUM_THREADS OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
             "'%s' timeout 60 mpirun --oversubscribe "
             "--bind-to none -n 2 %s search %s --data %s -o %s/t --epochs 1 --backend ref",
             asan_env(), RC_BIN, spec1, data, dir);
    kit_out r = kit_cmd(&merged, "%s", cmd);
    const char *o = r.out;
    cr_assert_eq(r.status, 0, "%s", o);
    cr_assert(strstr(o, "1 trials on 2 ranks") && strstr(o, want), "expected '%s':\n%s", want, o);
    kit_out_free(&r);
}
