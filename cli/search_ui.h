/* search_ui.h — progress lines of the commands that run trials (search, compare). */
#ifndef RC_CLI_SEARCH_UI_H
#define RC_CLI_SEARCH_UI_H

#include "search_mpi.h"
#include "search_run.h"

/* What the progress lines need besides the event: the command's name ("search"), -q, and
 * what the start line names. */
typedef struct {
    const char *cmd;
    int quiet;
    const char *spec_name, *backend, *dir;
    /* filled in by the events: this rank's trials trained so far and their time, for the ETA */
    int trained, skipped;
    double t_trained;
} cli_search_ui;

/* rc_search_opts.event with ctx = a cli_search_ui. */
void cli_search_on_event(void *ctx, const rc_search_event *e);
/* rc_train_opts.warn with ctx = a cli_search_ui (or NULL: "search"). */
void cli_search_on_warn(void *ctx, const char *line);

/* rc_search_run under the command's communicator (MPI when started by mpirun), with its
 * errors printed as `retinac CMD: ...`: a failure of this rank alone aborts the job (other
 * ranks may wait on it), one every rank reached is printed by rank 0. Returns 0 with *rank
 * set (res filled), or -1. */
int cli_search_run(const char *cmd, cli_mpi *mpi, int *argc, char ***argv, const rc_search_opts *so,
                   rc_search_result *res, int *rank);

#endif
