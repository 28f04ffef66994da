/* search_mpi.h — the MPI side of `retinac search` (the only MPI user; libretinac.a never links
 * MPI). Launched by mpirun (Open MPI, or any launcher that sets PMIX_RANK / PMI_RANK), the
 * ranks split the trials by rc_search_schedule (longest first to the least-loaded rank; equal
 * trials round-robin), which every rank computes alike, and rank 0 gathers the fixed-size
 * result rows and writes the summary. Started without a launcher the process is a
 * singleton, rank 0 of 1, and no MPI call is made at all (plain `retinac search` needs no MPI
 * runtime). Built without MPI (RC_HAVE_MPI=0: no ompi-c at build time), a launch under mpirun
 * is refused with a clear error instead of running every trial K times.
 * Every MPI call's return code is checked (MPI_ERRORS_RETURN on the world communicator).
 */
#ifndef RC_CLI_SEARCH_MPI_H
#define RC_CLI_SEARCH_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "search.h"

typedef struct {
    int active;        /* MPI_Init was called (launched by mpirun) */
    int rank, size;    /* 0 and 1 for a singleton */
    int local_size;    /* ranks on this node (MPI_COMM_TYPE_SHARED); 1 for a singleton */
    int *local_ranks;  /* (local_size) their world ranks; NULL for a singleton; freed by
                          cli_mpi_finalize */
} cli_mpi;

/* The rank a launcher assigned, from the environment, before any MPI call (0 if none). Used to
 * print usage errors once, not once per rank. */
int cli_mpi_env_rank(void);
/* Start MPI if launched by mpirun, else fill a singleton. Returns 0 or -1 with a message. */
int cli_mpi_init(cli_mpi *m, int *argc, char ***argv, char *err, size_t errlen);
/* Check that every rank expanded the same search: `fingerprint` (of the trials, their settings,
 * the output folder and the row layout) is compared across ranks with one MPI_Allreduce, so
 * every rank gets the same verdict and all stop together on a mismatch (else rank 0 could wait
 * forever for rows a rank with fewer trials never sends). Returns 0; -1 with a message when
 * the ranks differ (every rank returns -1); -2 with a message when the MPI call itself failed
 * (possibly on this rank only: abort the job). */
int cli_mpi_agree(const cli_mpi *m, uint64_t fingerprint, char *err, size_t errlen);
/* rows[n] (every rank holds the array; rank r filled the rows i with owner[i] == r): on
 * return, rank 0 holds all of them. Returns 0 or -1 with a message. */
int cli_mpi_gather_rows(const cli_mpi *m, rc_search_row *rows, const int *owner, int n, char *err,
                        size_t errlen);
/* MPI_Finalize if active. Returns 0 or -1 with a message. */
int cli_mpi_finalize(cli_mpi *m, char *err, size_t errlen);
/* Abort every rank (fatal error on one rank while others may wait on it); no-op if inactive. */
void cli_mpi_abort(const cli_mpi *m, int code);
/* OpenMP threads per rank when neither --threads nor OMP_NUM_THREADS says: 0 (the OpenMP
 * default) for a singleton or one rank per node, else max(1, min(cores this rank may run on,
 * cores online / ranks on this node that have trials)), so K ranks on one machine do not each
 * take every core, and ranks left without a trial do not hold cores back (n_trials: the trials
 * still to train; rc_search_schedule gives rank r work iff r < n_trials). */
int cli_mpi_default_threads(const cli_mpi *m, int n_trials);

#endif
