/* search.h — hyperparameter search: a spec's `search` section expanded into trials, and the
 * per-trial result rows and summary files of `retinac search`.
 *
 * Expansion (deterministic, a pure function of the search section and the base settings):
 *   - grid: the full cartesian product of the grid dims in their canonical order (grid dims
 *     sorted by key, as the spec loader stores them), the last dim varying fastest, values in
 *     the order listed;
 *   - random: `trials` draws; draw k of dim `key` is a pure function of (search seed, k, key)
 *     through the counter-based mix of rng.h, so raising `trials` keeps the earlier draws and
 *     adding a dim does not move the others. Uniform on [lo, hi], or log-uniform with log;
 *     integer fields draw uniformly over the integers lo..hi (log: over [lo, hi+1) then
 *     floored); real fields are rounded to 4 significant digits (clamped into [lo, hi]) so a
 *     trial's folder name carries its exact value;
 *   - both: every grid point is crossed with the same `trials` random draws (grid-major),
 *     n = n_grid * trials, so grid points differ only in their grid values;
 *   - no dims: one trial, the base settings, named "base".
 * Trial names: "key-value" parts joined by '_' in dim order, random trials carry "r<k>"
 * (k = draw, 0-based) before their random parts: "l2-0.001_lr-0.01", "l2-0.001_r3_lr-0.000123".
 * Values print in the shortest form that reads back exactly ("e+" written "e"), so names are
 * stable across runs and machines and use only [A-Za-z0-9._-]. Names are unique (grid values
 * may not repeat; random names carry k). Names longer than 180 bytes are cut and end in 12 hex
 * digits of the full name's sha256.
 * Library code: errors are returned as one line in the caller's buffer; nothing is printed.
 */
#ifndef RC_SEARCH_H
#define RC_SEARCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ir.h"
#include "spec.h"

#define RC_SEARCH_NAME_MAX 200
#define RC_SEARCH_MAX_TRIALS 100000

typedef struct {
    int index;                      /* 0-based position in the expansion */
    int grid_index, random_index;   /* position in the grid / random draw; -1 if none */
    char name[RC_SEARCH_NAME_MAX];  /* folder name, see above */
    double values[RC_MAX_SEARCH];   /* value of search->dims[d], as applied */
    rc_train train;                 /* the base settings with the values applied */
    const rc_ir *model;             /* the model this trial trains when it is not the search's
                                       spec (its spec parameters differ; `compare`'s variants);
                                       NULL: the spec. Set by the caller, not by expansion. */
    const char *model_error;        /* set instead of model when the trial's spec did not load
                                       (its parameters): the trial is recorded failed with it */
} rc_search_trial;

/* Check a search section against the train field table: every key a numeric train field,
 * searched once, values in the field's range (integers for integer fields), grid values
 * distinct, random ranges {lo < hi} (lo > 0 with log) and trials >= 1 when there are random
 * dims. The Lua loader already reports these with spec lines; this guards canonical IR text
 * and hand-built sections. Returns 0 or -1 with "search: KEY: what". */
int rc_search_check(const rc_search *s, char *err, size_t errlen);

/* Number of trials (>= 1), or -1 if over RC_SEARCH_MAX_TRIALS. */
int64_t rc_search_count(const rc_search *s);

/* Expand into *out (malloc'd, n trials; caller frees). Checks first. Returns 0 or -1. */
int rc_search_expand(const rc_search *s, const rc_train *base, rc_search_trial **out, int *n,
                     char *err, size_t errlen);

/* Value of train field `key` as a double (NaN if not a numeric train field). */
double rc_search_train_value(const rc_train *t, const char *key);

/* Whether a dim searches a spec parameter ("param.NAME") rather than a train field. */
int rc_search_dim_is_param(const rc_search_dim *sd);

/* A dim's value as text: a string param's string, else rc_search_fmt_num. */
void rc_search_fmt_value(const rc_search_dim *sd, double v, char *buf, size_t n);

/* The spec parameters trial t sets, as overrides (spec.h) for loading its model: fills ov[k]
 * (name points into s, value into vals[k]) for each param dim in dim order, at most max.
 * Returns their count (0: the trial only changes train settings). */
int rc_search_trial_params(const rc_search *s, const rc_search_trial *t, rc_spec_override *ov,
                           int max, char (*vals)[RC_PARAM_STR_MAX + 16]);

/* Shortest decimal text of v that reads back to the same double (JSON-compatible); integers
 * below 1e15 print as integers ("100000"); NaN prints "nan". */
void rc_search_fmt_num(double v, char *buf, size_t n);

/* CSV cells: a number in its shortest exact form (nothing for NaN/inf: an empty cell), and
 * text quoted when it holds a comma, quote or newline (newlines become spaces). */
void rc_search_csv_num(FILE *f, double v);
void rc_search_csv_text(FILE *f, const char *s);

/* ---------------------------------------------------------------- result rows */

typedef enum { RC_TRIAL_PENDING, RC_TRIAL_OK, RC_TRIAL_FAILED } rc_trial_status;

/* One trial's result: a fixed-size plain record (MPI ranks send it as bytes). */
typedef struct {
    int index;
    int status;                     /* rc_trial_status */
    int skipped;                    /* finished by an earlier run, read back from its row file
                                       (not written to the summary files) */
    int epochs_done;
    int threads;                    /* OpenMP threads it trained with (0 = the default) */
    int64_t best_epoch;             /* 1-based epoch of the lowest validation loss */
    double best_val_loss;           /* the selection criterion */
    double test_mean_r, test_mean_feve;   /* of best.h5 on the test split; NaN if none */
    double seconds;                 /* wall time of training + evaluation, summed over the
                                       runs of the trial: a trial continued from its checkpoint
                                       adds the per-epoch seconds the checkpoint recorded (the
                                       unfinished epoch and set-up of an interrupted run are
                                       lost with it and not counted) */
    char config_hash[65];           /* sha256 of the spec's canonical text with this trial's
                                       train settings: a finished row only counts for them */
    char error[512];                /* status FAILED: the one-line error */
} rc_search_row;

/* The row file RUNDIR/search_row.txt: written last (atomically) when a trial ends, so its
 * presence marks the trial ended: `status ok`, or `status failed` with its one-line `error`
 * (a rerun reports the failure instead of silently training again; a file without a status
 * line reads as ok). read: 0 (r->status OK or FAILED, r->skipped = 1), 1 if absent, -1 on a
 * malformed file. */
int rc_search_row_write(const char *rundir, const rc_search_row *r, char *err, size_t errlen);
int rc_search_row_read(const char *rundir, rc_search_row *r, char *err, size_t errlen);

/* Which rank trains each trial (owner[n]) when `size` ranks share the search: trials not yet
 * finished (rows[i].skipped == 0) are dealt longest first (estimated cost: the trial's epochs;
 * ties by index) to the rank with the least estimated work so far (ties: the lowest rank), the
 * LPT rule; trials of equal cost therefore go round-robin in index order, as before. Finished
 * trials are owned by rank 0 (every rank read the same row). Deterministic: every rank computes
 * the same owners from the same trials. */
void rc_search_schedule(const rc_search_trial *trials, const rc_search_row *rows, int n, int size,
                        int *owner);

/* Order of rows by best_val_loss ascending (failed / non-finite last, ties by index) into
 * order[n]. Returns the index of the selected trial (order[0]) or -1 if none succeeded. */
int rc_search_rank(const rc_search_row *rows, int n, int *order);

/* Summary files (atomic): DIR/search.csv (one row per trial in trial order; columns index,
 * name, one per searched key, status, epochs, best_epoch, best_val_loss, test_mean_r,
 * test_mean_feve, seconds, val_rank; empty cells for missing numbers) and DIR/search.json
 * (the same plus spec, spec_hash, data, selection and best). Returns 0 or -1. */
int rc_search_write_summary(const char *dir, const rc_ir *spec, const char *data_path,
                            const rc_search_trial *trials, const rc_search_row *rows, int n,
                            char *err, size_t errlen);
/* The JSON document of the summary as a malloc'd string (NULL on OOM). */
char *rc_search_summary_json(const rc_ir *spec, const char *data_path,
                             const rc_search_trial *trials, const rc_search_row *rows, int n);

#endif
