/* test_compare.c — benchmarking architecture variants (`retinac compare`, search/compare.c):
 *   - on a synthetic retina of 12 cells (retinac synth; with 8, the Wilcoxon p of this real
 *     difference came out 0.055 once outputs were calibrated, issue 20), a small CNN, an
 *     identical copy of it under another name, an LN model and a spec that does not load, 2 seeds each: the copy
 *     differs from the baseline by exactly 0 (interval [0, 0], p = 1: no significant
 *     difference), the LN model is worse with the expected sign (mean < 0, the whole 95%
 *     interval below 0, Wilcoxon p < 0.05), the broken spec is a failed row with its error and
 *     the others ran (exit 1), the per-seed spread and the cost columns are filled;
 *   - a compare killed mid-way (SIGKILL after a few seconds) and rerun ends with the same numbers
 *     as the uninterrupted run; a rerun of a finished compare trains nothing;
 *   - `mpirun -n 2` writes the same compare.csv as the serial run (all but speeds and seconds);
 *   - a parameterized spec: one variant per setting of its search, each seed's concrete model
 *     in its folder (spec.ir, whose hash is the recorded configuration hash), a setting that
 *     moves a train field failed with the reason, usage errors (--seed, a searched --param).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kit.h"

static char dir[256], data[300];

#define CNN_SPEC \
    "return model \"cnn\" {\n" \
    "  input = { history = 10, height = 50, width = 50 },\n" \
    "  conv { channels = 4, kernel = 9 }, batchnorm { over = \"unit\" }, relu {},\n" \
    "  dense {}, softplus {},\n" \
    "  train = { batch = 64, epochs = 2 },\n" \
    "}\n"
#define LN_SPEC \
    "return model \"ln\" {\n" \
    "  input = { history = 10, height = 50, width = 50 },\n" \
    "  dense {}, softplus {},\n" \
    "  train = { batch = 64, epochs = 2 },\n" \
    "}\n"

static void setup(void)
{
    kit_tmpdir(dir, sizeof dir, "rc_compare");
    snprintf(data, sizeof data, "%s/retina.h5", dir);
    kit_out s = kit_rc("synth -o %s --frames 4000 --test-frames 1000 --cells 12 --calib-frames 1000 --quiet", data);
    cr_assert_eq(s.status, 0, "synth: %s", s.err);
    kit_out_free(&s);
    kit_write_text(kit_path(dir, "cnn.lua"), CNN_SPEC);
    kit_write_text(kit_path(dir, "cnn_copy.lua"), CNN_SPEC);
    kit_write_text(kit_path(dir, "ln.lua"), LN_SPEC);
    kit_write_text(kit_path(dir, "broken.lua"), "return model \"broken\" {\n  conv { channels = },\n}\n");
}

/* ---- compare.csv: a header and rows, quoted fields allowed */
#define MAX_ROWS 8
#define MAX_COLS 24
typedef struct { int n_rows, n_cols; char hdr[MAX_COLS][32]; char cell[MAX_ROWS][MAX_COLS][256]; } csv_t;

static void parse_csv(const char *text, csv_t *c)
{
    memset(c, 0, sizeof *c);
    const char *p = text;
    for (int line = 0; *p; line++) {
        cr_assert_lt(line, MAX_ROWS + 1, "too many rows");
        int col = 0;
        for (;; col++) {
            cr_assert_lt(col, MAX_COLS);
            char *dst = line ? c->cell[line - 1][col] : c->hdr[col];
            size_t cap = line ? 256 : 32, k = 0;
            if (*p == '"') {
                for (p++; *p && !(*p == '"' && p[1] != '"'); p++) {
                    if (*p == '"') p++;
                    if (k + 1 < cap) dst[k++] = *p;
                }
                cr_assert_eq(*p, '"', "unterminated quote");
                p++;
            } else {
                for (; *p && *p != ',' && *p != '\n'; p++)
                    if (k + 1 < cap) dst[k++] = *p;
            }
            dst[k] = 0;
            if (*p == ',') { p++; continue; }
            cr_assert_eq(*p, '\n', "unterminated line");
            p++;
            break;
        }
        if (line == 0) c->n_cols = col + 1;
        else { cr_assert_eq(col + 1, c->n_cols, "row %d: %d columns, header %d", line, col + 1, c->n_cols); c->n_rows++; }
    }
}

static int col(const csv_t *c, const char *name)
{
    for (int i = 0; i < c->n_cols; i++)
        if (!strcmp(c->hdr[i], name)) return i;
    cr_assert_fail("compare.csv has no column %s", name);
    return -1;
}

static int row(const csv_t *c, const char *variant)
{
    for (int i = 0; i < c->n_rows; i++)
        if (!strcmp(c->cell[i][0], variant)) return i;
    cr_assert_fail("compare.csv has no variant %s", variant);
    return -1;
}

static double num(const csv_t *c, int r, const char *name)
{
    const char *s = c->cell[r][col(c, name)];
    cr_assert(s[0], "row %s: %s is empty", c->cell[r][0], name);
    return strtod(s, NULL);
}

/* Every column but the measured ones equal. */
static void assert_same_numbers(const csv_t *a, const csv_t *b, const char *what)
{
    cr_assert_eq(a->n_rows, b->n_rows, "%s: rows", what);
    cr_assert_eq(a->n_cols, b->n_cols, "%s: columns", what);
    for (int k = 0; k < a->n_cols; k++) {
        if (!strcmp(a->hdr[k], "train_samples_per_s") || !strcmp(a->hdr[k], "infer_samples_per_s") ||
            !strcmp(a->hdr[k], "seconds"))
            continue;
        for (int i = 0; i < a->n_rows; i++)
            cr_assert_str_eq(a->cell[i][k], b->cell[i][k], "%s: %s of %s: %s vs %s", what, a->hdr[k],
                             a->cell[i][0], a->cell[i][k], b->cell[i][k]);
    }
}

static void read_csv(const char *out, csv_t *c)
{
    char *text = kit_read_text(kit_path(out, "compare.csv"));
    parse_csv(text, c);
    free(text);
}

#define ARGS "--seeds 2 --bench-iters 1"

Test(compare_cli, planted_identical_failed_killed_and_mpi, .init = setup, .fini = kit_cleanup)
{
    static csv_t c, k, m;
    char specs[1200];
    snprintf(specs, sizeof specs, "%s/cnn.lua %s/cnn_copy.lua %s/ln.lua %s/broken.lua", dir, dir, dir, dir);
    const char *serial = kit_path(dir, "serial");
    kit_out o = kit_cmd(&(kit_opts){.merge = 1}, "env OMP_NUM_THREADS=1 %s compare %s --data %s -o %s " ARGS,
                        RC_BIN, specs, data, serial);
    cr_assert_eq(o.status, 1, "a failed variant makes the exit status 1:\n%s", o.out);
    cr_assert(strstr(o.out, "broken") && strstr(o.out, "failed:"), "%s", o.out);
    read_csv(serial, &c);
    cr_assert_eq(c.n_rows, 4, "4 variants");
    int base = row(&c, "cnn"), copy = row(&c, "cnn_copy"), ln = row(&c, "ln"), bad = row(&c, "broken");
    cr_assert_eq(base, 0, "the first SPEC is the baseline");
    /* the identical variant: exactly no difference */
    cr_assert_str_eq(c.cell[copy][col(&c, "status")], "ok");
    cr_assert_eq(num(&c, copy, "mean_r"), num(&c, base, "mean_r"), "same model, same seeds, same r");
    cr_assert_eq(num(&c, copy, "diff_r"), 0.0);
    cr_assert(num(&c, copy, "diff_r_lo") <= 0 && num(&c, copy, "diff_r_hi") >= 0, "interval covers 0");
    cr_assert_eq(num(&c, copy, "wilcoxon_p"), 1.0, "no significant difference");
    /* the planted difference: LN is worse than the CNN on this retina, and the test says so */
    double d = num(&c, ln, "diff_r"), lo = num(&c, ln, "diff_r_lo"), hi = num(&c, ln, "diff_r_hi");
    double p = num(&c, ln, "wilcoxon_p");
    cr_assert_lt(d, 0, "LN - CNN mean r difference %.4f should be negative", d);
    cr_assert(lo <= d && d <= hi && hi < 0, "interval [%.4f, %.4f] around %.4f below 0", lo, hi, d);
    cr_assert_lt(p, 0.05, "Wilcoxon p %.4g", p);
    cr_assert_lt(num(&c, ln, "mean_r"), num(&c, base, "mean_r"));
    /* spread, cost and the baseline row */
    cr_assert_eq(strtol(c.cell[base][col(&c, "seeds_ok")], NULL, 10), 2);
    cr_assert(num(&c, base, "sd_r") > 0, "two seeds, two results");
    cr_assert_str_eq(c.cell[base][col(&c, "diff_r")], "", "the baseline has no difference to itself");
    cr_assert_eq(num(&c, base, "cells"), 12);
    cr_assert_gt(num(&c, base, "params"), num(&c, ln, "params") * 0 + 1000);
    cr_assert_gt(num(&c, base, "flops_forward"), num(&c, ln, "flops_forward"), "the CNN costs more FLOPs");
    cr_assert_gt(num(&c, base, "train_samples_per_s"), 0);
    cr_assert_gt(num(&c, base, "infer_samples_per_s"), 0);
    double ep = num(&c, base, "epochs_to_best");
    cr_assert(ep >= 1 && ep <= 2, "epochs to best %g", ep);
    /* the broken spec: its error, nothing trained */
    cr_assert_str_eq(c.cell[bad][col(&c, "status")], "failed");
    cr_assert(strstr(c.cell[bad][col(&c, "error")], "broken.lua:2"), "error names the file and line: %s",
              c.cell[bad][col(&c, "error")]);
    cr_assert_neq(access(kit_path(serial, "broken"), F_OK), 0, "a spec that does not load trains nothing");
    /* per-cell r of every variant, and the JSON */
    char *cells = kit_read_text(kit_path(serial, "compare_cells.csv"));
    cr_assert(!strncmp(cells, "cell,cnn,cnn_copy,ln,broken\n0,", 30), "%s", cells);
    char *js = kit_read_text(kit_path(serial, "compare.json"));
    cr_assert(strstr(js, "\"baseline\": \"cnn\"") && strstr(js, "\"seed_mean_r\"") && strstr(js, "test set only reports"),
              "%s", js);
    /* every seed's concrete model is in its folder */
    cr_assert_eq(access(kit_path(serial, "ln/seed1/spec.ir"), F_OK), 0);

    /* a rerun trains nothing and gives the same numbers */
    kit_out r = kit_cmd(&(kit_opts){.merge = 1}, "env OMP_NUM_THREADS=1 %s compare %s --data %s -o %s " ARGS,
                        RC_BIN, specs, data, serial);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(!strstr(r.out, "epoch 1/2"), "a finished seed was trained again:\n%s", r.out);
    cr_assert(strstr(r.out, "done earlier"), "%s", r.out);
    read_csv(serial, &k);
    assert_same_numbers(&c, &k, "rerun");

    /* killed mid-way, then rerun: the same numbers as the uninterrupted run */
    const char *killed = kit_path(dir, "killed");
    kit_out kk = kit_cmd(&(kit_opts){.merge = 1}, "env OMP_NUM_THREADS=1 timeout -s KILL 4 %s compare %s --data %s -o %s " ARGS,
                         RC_BIN, specs, data, killed);
    cr_assert_neq(kk.status, 0, "%s", kk.out);
    kit_out kr = kit_cmd(&(kit_opts){.merge = 1}, "env OMP_NUM_THREADS=1 %s compare %s --data %s -o %s " ARGS,
                         RC_BIN, specs, data, killed);
    cr_assert_eq(kr.status, 1, "%s", kr.out);
    read_csv(killed, &k);
    assert_same_numbers(&c, &k, "killed and resumed");

    /* mpirun -n 2: the same table (see test_search.c for the environment) */
    kit_out mo = kit_cmd(&(kit_opts){.merge = 1},
                         "env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 "
                         "ASAN_OPTIONS=detect_leaks=0 mpirun -n 2 --oversubscribe %s compare %s --data %s -o %s " ARGS,
                         RC_BIN, specs, data, kit_path(dir, "mpi"));
    cr_assert_eq(mo.status, 1, "mpirun compare:\n%s", mo.out);
    read_csv(kit_path(dir, "mpi"), &m);
    assert_same_numbers(&c, &m, "mpirun -n 2");
    kit_out_free(&o); kit_out_free(&r); kit_out_free(&kk); kit_out_free(&kr); kit_out_free(&mo);
    free(cells); free(js);
}

Test(compare_cli, parameterized_spec_variants, .init = setup, .fini = kit_cleanup)
{
    kit_write_text(kit_path(dir, "fam.lua"),
                   "local p = params { ch = 2, big = false }\n"
                   "return model \"fam\" {\n"
                   "  input = { history = 10, height = 50, width = 50 },\n"
                   "  conv { channels = p.ch, kernel = 9 }, relu {}, dense {}, softplus {},\n"
                   "  train = { batch = p.big and 128 or 64, epochs = 1 },\n"
                   "  search = { grid = { params = { ch = { 2, 3 }, big = { false, true } } } },\n"
                   "}\n");
    const char *out = kit_path(dir, "fam");
    kit_out o = kit_rc_all("compare %s/fam.lua %s/ln.lua --data %s -o %s --seeds 1 --bench-iters 0 -q --epochs 1", dir,
                           dir, data, out);
    cr_assert_eq(o.status, 1, "the settings with big = true fail:\n%s", o.out);
    static csv_t c;
    read_csv(out, &c);
    cr_assert_eq(c.n_rows, 5, "4 settings and the LN spec");
    const char *names[] = {"fam_big-false_ch-2", "fam_big-false_ch-3", "fam_big-true_ch-2", "fam_big-true_ch-3", "ln"};
    for (int i = 0; i < 5; i++) cr_assert_str_eq(c.cell[i][0], names[i]);
    cr_assert_str_eq(c.cell[0][col(&c, "setting")], "big-false_ch-2");
    cr_assert_str_eq(c.cell[1][col(&c, "status")], "ok");
    cr_assert_lt(num(&c, 0, "params"), num(&c, 1, "params"), "3 channels hold more parameters than 2");
    cr_assert_str_eq(c.cell[2][col(&c, "status")], "failed");
    cr_assert(strstr(c.cell[2][col(&c, "error")], "change the train section (batch)"), "%s", c.cell[2][col(&c, "error")]);
    /* the seed's concrete model: its hash is the configuration hash of its row */
    const char *ir = kit_path(out, "fam_big-false_ch-3/seed0/spec.ir");
    kit_out chk = kit_rc("check %s --cells 8", ir);
    cr_assert_eq(chk.status, 0, "%s", chk.err);
    char *rowt = kit_read_text(kit_path(out, "fam_big-false_ch-3/seed0/search_row.txt"));
    const char *h = strstr(rowt, "config_hash ");
    cr_assert(h, "%s", rowt);
    char want[80];
    snprintf(want, sizeof want, "hash %.64s", h + 12);
    cr_assert(strstr(chk.out, want), "check of spec.ir prints another hash than %s:\n%s", want, chk.out);
    cr_assert(strstr(chk.out, "conv") && strstr(chk.out, "3x42x42"), "%s", chk.out);
    /* usage errors */
    kit_out u1 = kit_rc_all("compare %s/ln.lua --data %s -o %s/u --seed 3", dir, data, dir);
    cr_assert_eq(u1.status, 2, "%s", u1.out);
    cr_assert(strstr(u1.out, "--seeds"), "%s", u1.out);
    kit_out u2 = kit_rc_all("compare %s/fam.lua --data %s -o %s/u --param ch=4", dir, data, dir);
    cr_assert_eq(u2.status, 2, "%s", u2.out);
    cr_assert(strstr(u2.out, "'ch' is searched"), "%s", u2.out);
    kit_out_free(&o); kit_out_free(&chk); kit_out_free(&u1); kit_out_free(&u2);
    free(rowt);
}
