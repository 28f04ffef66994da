/* search_run.h — running a search: every trial of an expanded search (search.h) trained into
 * DIR/<trial-name>/ as `retinac train` would (rc_train_run, best.h5 evaluated on the test split),
 * resumed where an earlier run stopped, failures recorded, the trials dealt over ranks, the rows
 * gathered on rank 0 and the summary files written there. `retinac search` is this plus
 * argument parsing and printing; a library user calls rc_search_run the same way.
 *
 * Resuming: a trial whose folder holds search_row.txt (written last, atomically, when the trial
 * ends, ok or failed) is not trained again: a finished one is read back, a failed one is
 * reported with its recorded error (retry_failed trains it again: training is deterministic, so
 * a diverged trial would only diverge again); one with only checkpoint.h5 continues from it. A
 * row recorded with other settings (another configuration hash) stops the search. Finished
 * trials must have been trained on this recording (the fingerprint in their checkpoint; a
 * difference stops the search unless train.allow_other_recording, then it is a warning).
 * DIR/search_scope.txt pins the cells and response key of every trial in DIR.
 * Each trial trains the spec (or its own model: rc_search_trial.model) with its own settings
 * as the train section and no search section, so the checkpoint's spec hash is the trial's
 * configuration hash; that concrete model is written to DIR/<trial>/spec.ir (canonical IR
 * text) before training, so `retinac train DIR/<trial>/spec.ir` reruns the trial alone.
 *
 * Ranks: the communicator (rc_search_comm) is a handful of callbacks, so this library never
 * links MPI: cli/search_mpi.c implements them with MPI, and comm == NULL is one process alone.
 * Every rank first makes the same local checks, then (comm->start) the communicator starts, all
 * ranks agree that they expanded the same trials (one max-reduction of a fingerprint, so a
 * mismatch stops every rank at once instead of leaving rank 0 waiting), rc_search_schedule deals
 * the trials still to train, each rank trains its own, and rank 0 gathers the rows and writes
 * DIR/search.csv and DIR/search.json.
 * Library code: nothing is printed; what a caller may want to show arrives as events.
 */
#ifndef RC_SEARCH_RUN_H
#define RC_SEARCH_RUN_H

#include "errbuf.h"
#include <stddef.h>
#include <stdint.h>

#include "search.h"
#include "train.h"

/* The communicator of a search. Every callback gets ctx; NULL members take the single-process
 * answer (comm == NULL: all of them). */
typedef struct {
    void *ctx;
    /* Called once, after the local checks (output folder, scope file, recording, finished
     * trials) and before the first collective: the MPI side starts MPI here, so a search those
     * checks refuse never starts it. 0, or -1 with a message (on this process alone). */
    int (*start)(void *ctx, char *err, size_t errlen);
    int (*rank)(void *ctx);            /* this process (before start: what the launcher says) */
    int (*size)(void *ctx);            /* ranks in all */
    /* The ranks on this process's machine: their count, and their world ranks in *ranks (may
     * be set to NULL: unknown). Used for the default threads per rank. */
    int (*node_ranks)(void *ctx, const int **ranks);
    /* out[k] = max over the ranks of in[k], k < n, on every rank. 0, or -1 with a message. */
    int (*allreduce_max_u64)(void *ctx, const uint64_t *in, uint64_t *out, int n, char *err,
                             size_t errlen);
    /* rows[n] (every rank holds the array; rank r filled the rows i with owner[i] == r): on
     * return rank 0 holds all of them. 0, or -1 with a message. */
    int (*gather_rows)(void *ctx, rc_search_row *rows, const int *owner, int n, char *err,
                       size_t errlen);
} rc_search_comm;

typedef enum {
    RC_SEARCH_EV_START,          /* the trials are dealt; threads per rank are set */
    RC_SEARCH_EV_TRIAL_BEGIN,    /* this rank starts training a trial (resume: from its checkpoint) */
    RC_SEARCH_EV_PROGRESS,       /* rc_train_run's progress of that trial */
    RC_SEARCH_EV_TRIAL_OK,       /* it finished now; row filled */
    RC_SEARCH_EV_TRIAL_FAILED,   /* it failed now; row->error says why (recorded in its folder) */
    RC_SEARCH_EV_DONE_EARLIER,   /* finished by an earlier run: reported, not trained */
    RC_SEARCH_EV_FAILED_EARLIER, /* failed in an earlier run, not retried: reported as failed */
} rc_search_event_kind;

typedef struct {
    rc_search_event_kind kind;
    int rank, size;                  /* this process, of size ranks */
    int n;                           /* trials in the search */
    int threads;                     /* OpenMP threads per trial on this rank (0: the default) */
    const rc_search_trial *trial;    /* the trial (NULL for START) */
    const rc_search_row *row;        /* its row (NULL for START, TRIAL_BEGIN and PROGRESS) */
    int resume;                      /* TRIAL_BEGIN: it continues its checkpoint */
    const rc_train_progress *progress;   /* PROGRESS */
} rc_search_event;

typedef struct {
    const rc_ir *spec;               /* the model; its search section as run (the summaries
                                        report it) */
    const rc_train *base;            /* the settings every trial starts from (the spec's train
                                        section with the caller's overrides): the data check */
    const rc_search_trial *trials;   /* rc_search_expand(&spec->search, base, ...) */
    int n;
    const char *data;                /* the recording */
    const char *dir;                 /* the output folder (created if missing) */
    const char *spec_path;           /* optional: the spec's file, which the summaries must not
                                        replace (nor the recording) */
    int retry_failed;                /* train trials an earlier run recorded as failed again */
    int no_summary;                  /* do not write DIR/search.csv and search.json (the caller
                                        summarizes: `retinac compare`) */
    /* How every trial trains: backend, device, threads (0: the OpenMP default, or under several
     * ranks on one machine unless OMP_NUM_THREADS is set: cores / ranks there with trials),
     * cells, rate_key, mem_budget, allow_other_recording, warn (warnings, rank 0 only).
     * data_path, rundir, resume, eval_test, progress and data_checked are set per trial. */
    rc_train_opts train;
    void (*event)(void *ctx, const rc_search_event *ev);   /* may be NULL */
    void *event_ctx;
} rc_search_opts;

/* Zeroes o and sets o->train to rc_train_opts_default. */
void rc_search_opts_default(rc_search_opts *o);

typedef struct {
    rc_search_row *rows;             /* (n) rank 0: every trial's row; another rank: its own */
    int n;
    int threads;                     /* OpenMP threads per trial on this rank (0: the default) */
    int failed;                      /* a trial failed (rank 0: any trial; another rank: its
                                        own), or the summary files could not be written */
    char summary_err[1024];          /* rank 0: why the summary files could not be written
                                        ("" if they were) */
} rc_search_result;

/* rc_search_run's return when this process alone failed after comm->start */
#define RC_SEARCH_ABORT RC_ERR_ABORT   /* errbuf.h */

/* Run the search (see the top of this file). Returns 0 when every trial ran or was reported
 * (res filled; res->failed says whether all went well); -1 with a message that every rank
 * reached alike (rank 0 should report it); RC_SEARCH_ABORT with a message when this process
 * alone failed after comm->start (the caller aborts the job: other ranks may wait on it).
 * res is filled on success; free it with rc_search_result_free in every case. */
int rc_search_run(const rc_search_opts *o, const rc_search_comm *comm, rc_search_result *res,
                  char *err, size_t errlen);
void rc_search_result_free(rc_search_result *res);

/* OpenMP threads per rank when neither the caller nor OMP_NUM_THREADS says: 0 (the OpenMP
 * default) for one rank per machine, else max(1, min(cores this rank may run on, cores online
 * / ranks on this machine that have trials)), so K ranks on one machine do not each take every
 * core, and ranks left without a trial do not hold cores back (n_trials: the trials still to
 * train; rc_search_schedule gives rank r work iff r < n_trials). node_ranks (node_size) may be
 * NULL: every rank there counts. */
int rc_search_default_threads(int node_size, const int *node_ranks, int n_trials);

#endif
