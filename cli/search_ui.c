/* search_ui.c — the progress lines of `retinac search` and `retinac compare` on stderr, from the
 * events of rc_search_run (search/search_run.h): one line per trial start, epoch and end, on
 * every rank (prefixed "[rank trial]"), the start line on rank 0; failures even with -q.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "progress_ui.h"
#include "search_ui.h"

void cli_search_on_event(void *vctx, const rc_search_event *e)
{
    cli_search_ui *u = vctx;
    const char *name = e->trial ? e->trial->name : "";
    const rc_search_row *r = e->row;
    switch (e->kind) {
    case RC_SEARCH_EV_START:
        if (!u->quiet && e->rank == 0) {
            char th[64] = "the OpenMP default";
            if (e->threads) snprintf(th, sizeof th, "%d", e->threads);
            else if (getenv("OMP_NUM_THREADS")) snprintf(th, sizeof th, "OMP_NUM_THREADS=%.40s", getenv("OMP_NUM_THREADS"));
            fprintf(stderr, "%s %s: %d trials on %d rank%s (backend %s, threads per rank: %s) -> %s\n",
                    u->cmd, u->spec_name, e->n, e->size, e->size == 1 ? "" : "s", u->backend, th, u->dir);
        }
        break;
    case RC_SEARCH_EV_TRIAL_BEGIN:
        if (!u->quiet)
            fprintf(stderr, "[%d %s] trial %d/%d%s\n", e->rank, name, e->trial->index + 1, e->n,
                    e->resume ? ": continuing its checkpoint" : "");
        break;
    case RC_SEARCH_EV_PROGRESS: {
        const rc_train_progress *p = e->progress;
        if (u->quiet || !p->epoch_done) break;
        fprintf(stderr, "[%d %s] epoch %d/%d  train_loss %.6g  val_loss %.6g  val_r %.4f  %.1fs%s%s\n",
                e->rank, name, p->epoch, p->epochs, p->train_loss, p->val_loss, p->val_r, p->seconds,
                p->improved ? "  *best" : "", p->stopping ? "  (early stop)" : "");
        break;
    }
    case RC_SEARCH_EV_TRIAL_OK:
    case RC_SEARCH_EV_TRIAL_FAILED: {
        u->trained++;
        u->t_trained += r->seconds;
        /* ETA: this rank's mean trial time x its share of the trials not yet trained (the
         * other ranks' progress is not known here: an estimate) */
        int size = e->size > 0 ? e->size : 1;
        double left = ceil((double)(e->n - u->skipped * size) / size) - u->trained;
        char eta[32];
        cli_fmt_eta(left > 0 ? u->t_trained / u->trained * left : 0, eta, sizeof eta);
        if (e->kind == RC_SEARCH_EV_TRIAL_FAILED)
            fprintf(stderr, "retinac %s: trial %s: %s\n", u->cmd, name, r->error);
        else if (!u->quiet)
            fprintf(stderr, "[%d %s] done: val_loss %.6g (epoch %lld), test r %.4f, %.1fs; ETA %s\n", e->rank,
                    name, r->best_val_loss, (long long)r->best_epoch, r->test_mean_r, r->seconds, eta);
        break;
    }
    case RC_SEARCH_EV_DONE_EARLIER:
        u->skipped++;
        if (!u->quiet)
            fprintf(stderr, "[%d %s] done earlier: val_loss %.6g (epoch %lld)\n", e->rank, name,
                    r->best_val_loss, (long long)r->best_epoch);
        break;
    case RC_SEARCH_EV_FAILED_EARLIER:
        u->skipped++;
        /* reported even with -q: the summary will show it failed */
        fprintf(stderr, "retinac %s: trial %s failed in an earlier run (not retried; "
                "--retry-failed trains it again): %s\n", u->cmd, name, r->error);
        break;
    }
}

void cli_search_on_warn(void *ctx, const char *line)
{
    const cli_search_ui *u = ctx;
    fprintf(stderr, "retinac %s: warning: %s\n", u ? u->cmd : "search", line);
}


int cli_search_run(const char *cmd, cli_mpi *mpi, int *argc, char ***argv, const rc_search_opts *so,
                   rc_search_result *res, int *rank)
{
    char err[1024];
    rc_search_comm comm;
    cli_mpi_comm(mpi, argc, argv, &comm);
    int rc = rc_search_run(so, &comm, res, err, sizeof err);
    *rank = comm.rank(comm.ctx);
    if (rc == RC_SEARCH_ABORT) {
        fprintf(stderr, "retinac %s: rank %d: %s\n", cmd, *rank, err);
        cli_mpi_abort(mpi, 1);
        return -1;
    }
    if (rc < 0) {
        if (*rank == 0) fprintf(stderr, "retinac %s: %s\n", cmd, err);
        return -1;              /* every rank got the same verdict: all leave, none waits */
    }
    return 0;
}
