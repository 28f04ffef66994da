/* search_mpi.h — the MPI side of `retinac search` (the only MPI user; libretinac.a never links
 * MPI): the communicator of search/search_run.h (rc_search_comm) made of MPI calls. Launched by
 * mpirun (Open MPI, or any launcher that sets PMIX_RANK / PMI_RANK), the ranks split the trials
 * by rc_search_schedule, which every rank computes alike, and rank 0 gathers the fixed-size
 * result rows and writes the summary (rc_search_run does all that; this file only moves bytes).
 * Started without a launcher the process is a singleton, rank 0 of 1, and no MPI call is made at
 * all (plain `retinac search` needs no MPI runtime). Built without MPI (RC_HAVE_MPI=0: no ompi-c
 * at build time), a launch under mpirun is refused with a clear error instead of running every
 * trial K times. Every MPI call's return code is checked (MPI_ERRORS_RETURN on the world
 * communicator).
 */
#ifndef RC_CLI_SEARCH_MPI_H
#define RC_CLI_SEARCH_MPI_H

#include <stddef.h>
#include <stdint.h>

#include "search_run.h"

typedef struct {
    int active;        /* MPI_Init was called (launched by mpirun) */
    int rank, size;    /* 0 and 1 for a singleton */
    int local_size;    /* ranks on this node (MPI_COMM_TYPE_SHARED); 1 for a singleton */
    int *local_ranks;  /* (local_size) their world ranks; NULL for a singleton; freed by
                          cli_mpi_finalize */
    int started;       /* cli_mpi_init succeeded (through the communicator's start) */
    int *argc;         /* main's, for MPI_Init */
    char ***argv;
} cli_mpi;

/* The rank a launcher assigned, from the environment, before any MPI call (0 if none). Used to
 * print usage errors once, not once per rank. */
int cli_mpi_env_rank(void);
/* Start MPI if launched by mpirun, else fill a singleton. Returns 0 or -1 with a message. */
int cli_mpi_init(cli_mpi *m, int *argc, char ***argv, char *err, size_t errlen);
/* The communicator of rc_search_run over m (a singleton until its start calls cli_mpi_init
 * with argc and argv; before that its rank is cli_mpi_env_rank's). m must outlive comm. */
void cli_mpi_comm(cli_mpi *m, int *argc, char ***argv, rc_search_comm *comm);
/* MPI_Finalize if active. Returns 0 or -1 with a message. */
int cli_mpi_finalize(cli_mpi *m, char *err, size_t errlen);
/* Abort every rank (fatal error on one rank while others may wait on it); no-op if inactive. */
void cli_mpi_abort(const cli_mpi *m, int code);

#endif
