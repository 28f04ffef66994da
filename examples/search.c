/* search.c — a hyperparameter search from a program, through the library code that
 * `retinac search` itself calls: load a spec, give it a search section if it has none, expand
 * the trials (search/search.h) and run them in this one process (rc_search_run,
 * search/search_run.h, with no communicator). Every trial trains into OUTDIR/<trial>/ as
 * `retinac train` would; OUTDIR/search.csv and OUTDIR/search.json are written; a rerun skips
 * the finished trials. The progress printed here comes from the search's events.
 *
 * Build: `make examples` (build/examples/search). It uses the library's internal headers and
 * the Lua front end (spec loading), so it is built with the flags of the tests, not against the
 * public header retinac.h.
 * Run (a tiny recording and model, a few seconds):
 *   build/retinac synth -o /tmp/x.h5 --frames 3000 --cells 4
 *   build/examples/search examples/search_tiny.lua /tmp/x.h5 /tmp/search-out
 * Arguments: SPEC DATA.h5 OUTDIR [EPOCHS [BACKEND]] (EPOCHS default 1, BACKEND c or ref).
 * Exit 0 every trial trained, 1 otherwise, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search.h"
#include "search_run.h"
#include "spec.h"
#include "train.h"

/* The search's events: one line per trial (epoch lines left out). */
static void on_event(void *ctx, const rc_search_event *e)
{
    (void)ctx;
    const rc_search_row *r = e->row;
    switch (e->kind) {
    case RC_SEARCH_EV_START:
        printf("%d trials, %d thread(s) per trial (0: the OpenMP default)\n", e->n, e->threads);
        break;
    case RC_SEARCH_EV_TRIAL_BEGIN:
        printf("trial %d/%d %s%s\n", e->trial->index + 1, e->n, e->trial->name,
               e->resume ? " (continuing its checkpoint)" : "");
        break;
    case RC_SEARCH_EV_TRIAL_OK:
    case RC_SEARCH_EV_DONE_EARLIER:
        printf("  %s: best validation loss %.6g at epoch %lld, test r %.4f%s\n", e->trial->name,
               r->best_val_loss, (long long)r->best_epoch, r->test_mean_r,
               e->kind == RC_SEARCH_EV_DONE_EARLIER ? " (done earlier)" : "");
        break;
    case RC_SEARCH_EV_TRIAL_FAILED:
    case RC_SEARCH_EV_FAILED_EARLIER:
        printf("  %s failed: %s\n", e->trial->name, r->error);
        break;
    case RC_SEARCH_EV_PROGRESS:
        break;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s SPEC DATA.h5 OUTDIR [EPOCHS [BACKEND]]\n", argv[0]);
        return 2;
    }
    int epochs = argc > 4 ? atoi(argv[4]) : 1;
    if (epochs < 1) { fprintf(stderr, "search: EPOCHS '%s': expected >= 1\n", argv[4]); return 2; }
    char err[1024];
    rc_ir *spec = malloc(sizeof *spec);
    rc_search_trial *trials = NULL;
    rc_search_result res;
    memset(&res, 0, sizeof res);
    int n = 0, status = 1;
    if (!spec) { fprintf(stderr, "search: out of memory\n"); return 1; }
    if (rc_spec_load_any(argv[1], spec, err, sizeof err) < 0) { fprintf(stderr, "search: %s\n", err); goto out; }

    /* No search section in the spec: search the learning rate, the spec's and a fifth of it. */
    if (spec->search.n_dims == 0) {
        rc_search_dim *d = &spec->search.dims[0];
        memset(d, 0, sizeof *d);
        snprintf(d->key, sizeof d->key, "lr");
        d->n_values = 2;
        d->values[0] = spec->train.lr;
        d->values[1] = spec->train.lr / 5;
        spec->search.n_dims = 1;
    }
    rc_train base = spec->train;        /* every trial starts from these settings */
    base.epochs = epochs;
    if (rc_search_expand(&spec->search, &base, &trials, &n, err, sizeof err) < 0) {
        fprintf(stderr, "search: %s\n", err);
        goto out;
    }

    rc_search_opts o;
    rc_search_opts_default(&o);
    o.spec = spec;
    o.base = &base;
    o.trials = trials;
    o.n = n;
    o.data = argv[2];
    o.dir = argv[3];
    o.spec_path = argv[1];
    o.train.backend = argc > 5 ? argv[5] : "c";
    o.event = on_event;
    if (rc_search_run(&o, NULL, &res, err, sizeof err) < 0) {   /* NULL: this process alone */
        fprintf(stderr, "search: %s\n", err);
        goto out;
    }

    /* The trials by validation loss (the test set is never used to select). */
    int *order = malloc((size_t)n * sizeof *order);
    if (!order) { fprintf(stderr, "search: out of memory\n"); goto out; }
    int best = rc_search_rank(res.rows, n, order);
    printf("\n%-4s %-24s %12s %8s\n", "rank", "trial", "val_loss", "test_r");
    for (int k = 0; k < n; k++) {
        const rc_search_row *r = &res.rows[order[k]];
        if (r->status == RC_TRIAL_OK)
            printf("%-4d %-24s %12.6g %8.4f\n", k + 1, trials[order[k]].name, r->best_val_loss, r->test_mean_r);
        else
            printf("%-4s %-24s failed\n", "-", trials[order[k]].name);
    }
    if (best >= 0) printf("best: %s; summary in %s/search.csv and %s/search.json\n", trials[best].name, o.dir, o.dir);
    if (res.summary_err[0]) fprintf(stderr, "search: %s\n", res.summary_err);
    free(order);
    status = res.failed ? 1 : 0;
out:
    rc_search_result_free(&res);
    free(trials);
    free(spec);
    return status;
}
