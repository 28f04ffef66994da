/* test_checkpoint.c — HDF5 checkpoints: exact round trip of every field, shape and hash checks,
 * atomic replacement (no temp files left, a truncated file fails cleanly), and SIGKILL of a
 * running `retinac train` at random moments never leaving a corrupt checkpoint.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "checkpoint.h"
#include "h5util.h"
#include "kit.h"
#include "model.h"
#include "spec.h"

static char tmpdir[256];

static void mk_tmp(void) { kit_tmpdir(tmpdir, sizeof tmpdir, "rc_ckpt"); }

/* A filled checkpoint of specs/tiny.lua for 3 cells; the caller frees with free_filled. */
static void fill(rc_checkpoint *ck, rc_ir *ir, char **spec_text)
{
    char err[512];
    char path[512];
    snprintf(path, sizeof path, "%s/specs/tiny.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, ir, err, sizeof err), 0, "%s", err);
    *spec_text = rc_ir_format(ir);
    cr_assert(*spec_text);
    memset(ck, 0, sizeof *ck);
    rc_ir_hash(ir, ck->spec_hash);
    ir->train.lr = 0.125;            /* an override, as a command-line flag would do */
    ir->train.batch = 5;
    cr_assert_eq(rc_ir_infer(ir, 3, path, err, sizeof err), 0, "%s", err);
    ck->ir = ir;
    ck->spec_text = *spec_text;
    ck->params = malloc((size_t)ir->params_total * sizeof(float));
    ck->state = malloc((size_t)(ir->state_total + 1) * sizeof(float));
    ck->moments = malloc((size_t)(2 * ir->params_total) * sizeof(float));
    cr_assert(ck->params && ck->state && ck->moments);
    rc_params_init(ir, 99, ck->params, ck->state);
    for (int64_t i = 0; i < ir->state_total; i++) ck->state[i] = 0.5f + (float)i * 1e-3f;
    for (int64_t i = 0; i < 2 * ir->params_total; i++) ck->moments[i] = (float)i * 0.25f - 3.0f;
    ck->has_optim = 1;
    ck->opt_kind = RC_OPT_ADAMW;
    ck->opt_step = 1234;
    ck->beta1 = 0.9; ck->beta2 = 0.999; ck->eps = 1e-8;
    ck->lr = 0.0625;
    ck->norm_mean = 0.3; ck->norm_std = 1.7;
    ck->cells = 3;
    static int ids[3] = {4, 0, 7}, pos[6] = {1, 2, 3, 4, 5, 6};
    ck->cell_ids = ids;
    ck->centers = pos;
    snprintf(ck->data_path, sizeof ck->data_path, "/data/x.h5");
    snprintf(ck->rate_key, sizeof ck->rate_key, "firing_rate_10ms");
    snprintf(ck->backend, sizeof ck->backend, "ref");
    snprintf(ck->device, sizeof ck->device, "cpu");
    ck->threads = 2;
    ck->epoch = 3; ck->rng_step = 77; ck->best_epoch = 2; ck->best_val_loss = 0.42;
    ck->early_bad = 1; ck->plateau_best = 0.41; ck->plateau_bad = 1;
    ck->crop_row0 = 0; ck->crop_col0 = 0;  /* tiny has no crop: any other origin is refused */
    for (int e = 0; e < 3; e++) {
        double row[RC_HIST_COLS];
        for (int c = 0; c < RC_HIST_COLS; c++) row[c] = e * 10 + c + 0.5;
        cr_assert_eq(rc_ckpt_hist_append(ck, row), 0);
    }
}

static void free_filled(rc_checkpoint *ck, char *spec_text)
{
    free(ck->params); free(ck->state); free(ck->moments); free(spec_text);
    rc_ckpt_hist_free(ck);
}

/* the checkpoint writer's temp files: .tmp.* and .ckpt.tmp.* */
static int is_tmp_name(const char *name) { return !strncmp(name, ".tmp.", 5) || !strncmp(name, ".ckpt.tmp.", 10); }

static int count_tmp_files(const char *dir) { return kit_count_entries(dir, is_tmp_name); }

Test(checkpoint, round_trip_is_exact, .init = mk_tmp, .fini = kit_cleanup)
{
    static rc_ir ir;
    rc_checkpoint ck, back;
    char *spec_text, err[512], path[512];
    fill(&ck, &ir, &spec_text);
    snprintf(path, sizeof path, "%s/checkpoint.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(count_tmp_files(tmpdir), 0, "temp file left behind");
    cr_assert_eq(rc_ckpt_load(path, &back, err, sizeof err), 0, "%s", err);

    cr_assert_eq(back.ir->params_total, ir.params_total);
    cr_assert_eq(back.ir->state_total, ir.state_total);
    cr_assert_eq(memcmp(back.params, ck.params, (size_t)ir.params_total * sizeof(float)), 0);
    cr_assert_eq(memcmp(back.state, ck.state, (size_t)ir.state_total * sizeof(float)), 0);
    cr_assert_eq(memcmp(back.moments, ck.moments, (size_t)(2 * ir.params_total) * sizeof(float)), 0);
    cr_assert_str_eq(back.spec_hash, ck.spec_hash);
    cr_assert_str_eq(back.spec_text, spec_text);
    /* effective training settings come back; the spec text keeps the spec's own */
    cr_assert_eq(back.ir->train.lr, 0.125);
    cr_assert_eq(back.ir->train.batch, 5);
    cr_assert_eq(back.has_optim, 1);
    cr_assert_eq(back.opt_kind, RC_OPT_ADAMW);
    cr_assert_eq(back.opt_step, 1234);
    cr_assert_eq(back.lr, 0.0625);
    cr_assert_eq(back.norm_mean, 0.3);
    cr_assert_eq(back.norm_std, 1.7);
    cr_assert_eq(back.cells, 3);
    cr_assert_eq(back.cell_ids[0], 4);
    cr_assert_eq(back.cell_ids[2], 7);
    cr_assert_null(back.cell_pos);
    cr_assert_not_null(back.centers);
    cr_assert_eq(back.centers[5], 6);
    cr_assert_str_eq(back.data_path, "/data/x.h5");
    cr_assert_str_eq(back.rate_key, "firing_rate_10ms");
    cr_assert_str_eq(back.backend, "ref");
    cr_assert_eq(back.threads, 2);
    cr_assert_eq(back.epoch, 3);
    cr_assert_eq(back.rng_step, 77);
    cr_assert_eq(back.best_epoch, 2);
    cr_assert_eq(back.best_val_loss, 0.42);
    cr_assert_eq(back.early_bad, 1);
    cr_assert_eq(back.plateau_best, 0.41);
    cr_assert_eq(back.crop_row0, 0);
    cr_assert_eq(back.crop_col0, 0);
    cr_assert_eq(back.n_hist, 3);
    for (int c = 0; c < RC_HIST_COLS; c++)
        cr_assert_eq(back.hist[c][2], 20 + c + 0.5);
    rc_ckpt_free(&back);

    /* a second save replaces the file atomically and leaves no temp behind */
    ck.epoch = 4;
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ckpt_load(path, &back, err, sizeof err), 0, "%s", err);
    cr_assert_eq(back.epoch, 4);
    cr_assert_eq(count_tmp_files(tmpdir), 0);
    rc_ckpt_free(&back);
    free_filled(&ck, spec_text);
}

Test(checkpoint, h5_names_follow_the_ir, .init = mk_tmp, .fini = kit_cleanup)
{
    static rc_ir ir;
    rc_checkpoint ck;
    char *spec_text, err[512], path[512];
    fill(&ck, &ir, &spec_text);
    snprintf(path, sizeof path, "%s/c.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    for (int i = 0; i < ir.n_params; i++) {
        char p[160];
        snprintf(p, sizeof p, "/params/%s", ir.params[i].name);
        hid_t d = H5Dopen2(f, p, H5P_DEFAULT);
        cr_assert(d >= 0, "%s missing", p);
        hid_t sp = H5Dget_space(d);
        cr_assert_eq(H5Sget_simple_extent_ndims(sp), ir.params[i].rank, "%s rank", p);
        hid_t ty = H5Dget_type(d);
        cr_assert(H5Tequal(ty, H5T_IEEE_F32LE) > 0, "%s is float32 LE", p);
        H5Tclose(ty); H5Sclose(sp); H5Dclose(d);
    }
    cr_assert(H5Lexists(f, "/state", H5P_DEFAULT) > 0);
    cr_assert(H5Aexists(f, "spec_hash") > 0);
    cr_assert(H5Aexists_by_name(f, "/train", "lr", H5P_DEFAULT) > 0);
    cr_assert(H5Aexists_by_name(f, "/train", "seed", H5P_DEFAULT) > 0);
    cr_assert_eq(H5Fget_obj_count(f, H5F_OBJ_ALL), 1, "no handle leaked by the checks");
    H5Fclose(f);
    free_filled(&ck, spec_text);
}

Test(checkpoint, tampered_spec_is_rejected, .init = mk_tmp, .fini = kit_cleanup)
{
    static rc_ir ir;
    rc_checkpoint ck, back;
    char *spec_text, err[512], path[512];
    fill(&ck, &ir, &spec_text);
    /* a spec text whose hash is not spec_hash */
    char *other = malloc(strlen(spec_text) + 64);
    cr_assert(other);
    strcpy(other, spec_text);
    char *k = strstr(other, "kernel=5");
    cr_assert(k, "tiny spec has a kernel=5 conv");
    k[7] = '3';
    ck.spec_text = other;
    snprintf(path, sizeof path, "%s/bad.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ckpt_load(path, &back, err, sizeof err), -1);
    cr_assert(strstr(err, "spec"), "message names the spec: %s", err);
    ck.spec_text = spec_text;
    free(other);
    free_filled(&ck, spec_text);
}

Test(checkpoint, truncated_and_missing_files_fail_cleanly, .init = mk_tmp, .fini = kit_cleanup)
{
    static rc_ir ir;
    rc_checkpoint ck, back;
    char *spec_text, err[512], path[512], cut[512];
    fill(&ck, &ir, &spec_text);
    snprintf(path, sizeof path, "%s/c.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    FILE *in = fopen(path, "rb");
    cr_assert(in);
    char *buf = malloc((size_t)st.st_size);
    cr_assert(buf && fread(buf, 1, (size_t)st.st_size, in) == (size_t)st.st_size);
    fclose(in);
    long sizes[] = {0, 100, st.st_size / 3, st.st_size / 2, st.st_size - 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(cut, sizeof cut, "%s/cut%zu.h5", tmpdir, i);
        FILE *o = fopen(cut, "wb");
        cr_assert(o);
        cr_assert_eq(fwrite(buf, 1, (size_t)sizes[i], o), (size_t)sizes[i]);
        fclose(o);
        cr_assert_eq(rc_ckpt_load(cut, &back, err, sizeof err), -1, "truncated at %ld loads", sizes[i]);
        cr_assert(strstr(err, cut), "message names the file: %s", err);
    }
    free(buf);
    snprintf(cut, sizeof cut, "%s/absent.h5", tmpdir);
    cr_assert_eq(rc_ckpt_load(cut, &back, err, sizeof err), -1);
    /* a save into a missing directory fails with a message, nothing is created */
    snprintf(cut, sizeof cut, "%s/no/such/dir/c.h5", tmpdir);
    cr_assert_eq(rc_ckpt_save(cut, &ck, err, sizeof err), -1);
    free_filled(&ck, spec_text);
}

Test(checkpoint, stale_temp_files_are_cleaned, .init = mk_tmp, .fini = kit_cleanup)
{
    /* a temp file of a dead process (pid of a reaped child) goes; ours and live ones stay */
    pid_t child = fork();
    cr_assert(child >= 0);
    if (child == 0) _exit(0);
    waitpid(child, NULL, 0);
    char p[600];
    snprintf(p, sizeof p, "%s/.ckpt.tmp.%ld", tmpdir, (long)child);
    FILE *f = fopen(p, "w"); cr_assert(f); fclose(f);
    snprintf(p, sizeof p, "%s/.ckpt.tmp.%ld", tmpdir, (long)getpid());
    f = fopen(p, "w"); cr_assert(f); fclose(f);
    cr_assert_eq(rc_ckpt_clean_stale(tmpdir), 1);
    cr_assert_eq(access(p, F_OK), 0, "own temp file kept");
}

/* ------------------------------------------------------------------ SIGKILL at random moments */

#include "rng.h"
#include "tiny_retina.h"

Test(checkpoint, sigkill_never_leaves_a_corrupt_checkpoint, .init = mk_tmp, .fini = kit_cleanup,
     .timeout = 120)
{
    char data[400], run[400], spec[400], ckp[500], best[500];
    snprintf(data, sizeof data, "%s/tiny.h5", tmpdir);
    snprintf(run, sizeof run, "%s/run", tmpdir);
    snprintf(spec, sizeof spec, "%s/specs/tiny.lua", RC_SRC_DIR);
    snprintf(ckp, sizeof ckp, "%s/checkpoint.h5", run);
    snprintf(best, sizeof best, "%s/best.h5", run);
    /* short epochs: checkpoints are written every ~0.1 s, so kills often land inside a write;
     * no early stopping (--patience 0), so only the kill ends a run */
    cr_assert_eq(tiny_retina_write(data, 4, 200, 60, 2), 0);
    int loaded = 0, absent = 0, tmp_seen = 0;
    int64_t last_epoch = 0;
    for (int k = 0; k < 8; k++) {
        int resume = access(ckp, F_OK) == 0;
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) { dup2(devnull, 1); dup2(devnull, 2); }
            execl(RC_BIN, "retinac", "train", spec, "--data", data, "-o", run, "--epochs",
                  "100000", "--patience", "0", "--batch", "16", "--backend", "ref", "--threads", "1", "-q",
                  "--no-eval", resume ? "--resume" : NULL, (char *)NULL);
            _exit(127);
        }
        /* the first run: wait for its first checkpoint (slow machines, sanitizers), so that
         * later kills hit a run that has something to lose */
        for (int w = 0; k == 0 && w < 3000 && access(ckp, F_OK) != 0; w++) usleep(10000);
        /* then a pseudo-random moment in 100..1500 ms (fixed seed: the test is repeatable) */
        long us = 100000 + (long)(rc_rng_uniform(2024, 9, (uint64_t)k) * 1400000.0f);
        usleep((useconds_t)us);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                  "trainer exited by itself (status %d) before the kill at %ld us", status, us);
        tmp_seen += count_tmp_files(run) > 0;
        const char *files[2] = {ckp, best};
        for (int i = 0; i < 2; i++) {
            if (access(files[i], F_OK) != 0) { absent++; continue; }
            rc_checkpoint ck;
            char err[1024];
            cr_assert_eq(rc_ckpt_load(files[i], &ck, err, sizeof err), 0,
                         "kill %d at %ld us left %s unreadable: %s", k, us, files[i], err);
            cr_assert(ck.epoch >= 1 && ck.n_hist == ck.epoch);
            if (i == 0) {
                cr_assert(ck.epoch >= last_epoch, "checkpoint went back in time");
                last_epoch = ck.epoch;
            }
            rc_ckpt_free(&ck);
            loaded++;
        }
    }
    cr_log_info("sigkill: %d checkpoints loaded, %d absent, %d kills left a temp file",
                loaded, absent, tmp_seen);
    /* every resumed run was still running when killed (a failed resume would have exited) */
    cr_assert(loaded > 0, "no kill happened after a checkpoint was written");
    cr_assert(last_epoch >= 1);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

Test(checkpoint, sigkill_during_save_keeps_old_or_new, .init = mk_tmp, .fini = kit_cleanup, .timeout = 60)
{
    /* A child does nothing but rewrite the checkpoint (epoch 1, 2, 3, ...), so a kill lands
     * inside rc_ckpt_save nearly every time; the file must always load, with an epoch no older
     * than the last one seen. Kill delays scale with the measured time of one save, so the test
     * means the same on a fast machine and under a sanitizer. */
    static rc_ir ir;
    rc_checkpoint ck;
    char *spec_text, err[512], path[512];
    fill(&ck, &ir, &spec_text);
    snprintf(path, sizeof path, "%s/checkpoint.h5", tmpdir);
    ck.epoch = 0;
    ck.best_epoch = 0;                 /* best_epoch <= epoch, or the save is refused */
    double t0 = mono_s();
    cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
    double t_save = mono_s() - t0;
    int tmp_seen = 0;
    int64_t last = 0;
    for (int k = 0; k < 12; k++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            for (int64_t e = last + 1;; e++) {
                ck.epoch = e;
                if (rc_ckpt_save(path, &ck, err, sizeof err) < 0) _exit(3);
            }
        }
        double d = t_save * (0.3 + 3.0 * rc_rng_uniform(77, 1, (uint64_t)k));
        usleep((useconds_t)(d * 1e6) + 500);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        tmp_seen += count_tmp_files(tmpdir) > 0;
        rc_checkpoint back;
        cr_assert_eq(rc_ckpt_load(path, &back, err, sizeof err), 0, "kill %d: %s", k, err);
        cr_assert(back.epoch >= last, "epoch went back from %lld to %lld", (long long)last,
                  (long long)back.epoch);
        cr_assert_eq(memcmp(back.params, ck.params, (size_t)ir.params_total * sizeof(float)), 0);
        last = back.epoch;
        rc_ckpt_free(&back);
        rc_ckpt_clean_stale(tmpdir);               /* what the trainer does on start */
        cr_assert_eq(count_tmp_files(tmpdir), 0);
    }
    cr_log_info("save loop: %d of 12 kills interrupted a write (one save %.1f ms); last epoch %lld",
                tmp_seen, 1e3 * t_save, (long long)last);
    free_filled(&ck, spec_text);
    cr_assert(tmp_seen > 0, "no kill landed inside a write (the test did not test anything)");
}

/* Issue 16 (found while triaging fuzz/fuzz_checkpoint): a string read from a checkpoint must be ONE
 * string of a bounded size. An attribute (spec_hash) or a dataset (/model) holding an array of
 * strings made H5Aread/H5Dread write past the one-element buffer (stack and heap overflows under
 * ASan); a fixed length of 4 GB was allocated before reading. Reproducers:
 * fuzz/corpus/checkpoint/regress-string-*.h5. */
Test(checkpoint, string_arrays_and_huge_strings_are_rejected, .init = mk_tmp, .fini = kit_cleanup)
{
    static rc_ir ir;
    rc_checkpoint ck, back;
    char *spec_text, err[512], path[512];
    fill(&ck, &ir, &spec_text);
    const char *const kinds[] = {"attr-array", "ds-array", "ds-huge"};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/s%d.h5", tmpdir, k);
        cr_assert_eq(rc_ckpt_save(path, &ck, err, sizeof err), 0, "%s", err);
        hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        cr_assert(f >= 0);
        hid_t t = H5Tcopy(H5T_C_S1);
        hsize_t n = 8;
        hid_t sp = k == 2 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
        if (k == 0) {
            cr_assert(H5Adelete(f, "spec_hash") >= 0);
            H5Tset_size(t, H5T_VARIABLE);
            const char *v[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
            hid_t a = H5Acreate2(f, "spec_hash", t, sp, H5P_DEFAULT, H5P_DEFAULT);
            cr_assert(a >= 0 && H5Awrite(a, t, v) >= 0);
            H5Aclose(a);
        } else {
            cr_assert(H5Ldelete(f, "/model", H5P_DEFAULT) >= 0);
            H5Tset_size(t, k == 1 ? 16 : (size_t)RC_H5_MAX_STRING + 1);
            hid_t ds = H5Dcreate2(f, "/model", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            cr_assert(ds >= 0);
            H5Dclose(ds);
        }
        H5Sclose(sp);
        H5Tclose(t);
        H5Fclose(f);
        cr_assert_eq(rc_ckpt_load(path, &back, err, sizeof err), -1, "%s loads", kinds[k]);
        cr_assert(strstr(err, k ? "/model: missing or not a string" : "spec_hash missing"), "%s: %s", kinds[k], err);
    }
    free_filled(&ck, spec_text);
}
