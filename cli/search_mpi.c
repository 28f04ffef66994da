/* search_mpi.c — MPI for `retinac search` (see search_mpi.h). Rows travel as MPI_BYTE records
 * of sizeof(rc_search_row): every rank runs the same binary, so the layout is the same.
 * Rank 0 waits for the other ranks' rows with MPI_Irecv + MPI_Testall and a short sleep, not a
 * blocking MPI_Recv, because Open MPI's blocking receive spins a core at 100% that the other
 * ranks on the node need for training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <omp.h>

#include "search_mpi.h"

#ifndef RC_HAVE_MPI
#define RC_HAVE_MPI 0
#endif
#if RC_HAVE_MPI
#include <mpi.h>
#endif

static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", NULL};

static int launched(void)
{
    for (int i = 0; rank_vars[i]; i++)
        if (getenv(rank_vars[i])) return 1;
    return 0;
}

int cli_mpi_env_rank(void)
{
    for (int i = 0; rank_vars[i]; i++) {
        const char *v = getenv(rank_vars[i]);
        if (v) return atoi(v);
    }
    return 0;
}

#if RC_HAVE_MPI
/* "WHAT: MPI's message" into err; returns -1. */
static int mpi_fail(int rc, const char *what, char *err, size_t errlen)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    snprintf(err, errlen, "%s: %s", what, msg);
    return -1;
}
#define MPI_CHECK(call, what) do { int rc_ = (call); if (rc_ != MPI_SUCCESS) return mpi_fail(rc_, what, err, errlen); } while (0)
#endif

int cli_mpi_init(cli_mpi *m, int *argc, char ***argv, char *err, size_t errlen)
{
    m->active = 0;
    m->rank = 0;
    m->size = 1;
    m->local_size = 1;
    m->local_ranks = NULL;
    if (!launched()) return 0;
#if RC_HAVE_MPI
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) { snprintf(err, errlen, "MPI_Init failed (error %d)", rc); return -1; }
    m->active = 1;
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &m->rank), "MPI_Comm_rank");
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &m->size), "MPI_Comm_size");
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node),
              "MPI_Comm_split_type");
    MPI_CHECK(MPI_Comm_size(node, &m->local_size), "MPI_Comm_size (node)");
    m->local_ranks = malloc((size_t)m->local_size * sizeof *m->local_ranks);
    if (!m->local_ranks) { snprintf(err, errlen, "out of memory"); return -1; }
    MPI_CHECK(MPI_Allgather(&m->rank, 1, MPI_INT, m->local_ranks, 1, MPI_INT, node), "MPI_Allgather (node ranks)");
    MPI_CHECK(MPI_Comm_free(&node), "MPI_Comm_free");
    return 0;
#else
    (void)argc;
    (void)argv;
    const char *sz = getenv("OMPI_COMM_WORLD_SIZE");
    if (sz && atoi(sz) == 1) return 0;     /* mpirun -n 1: a singleton in all but name */
    snprintf(err, errlen, "launched by an MPI launcher, but this retinac was built without MPI "
             "(install libopenmpi-dev and rebuild)");
    return -1;
#endif
}

int cli_mpi_agree(const cli_mpi *m, uint64_t fingerprint, char *err, size_t errlen)
{
    if (!m->active || m->size == 1) return 0;
#if RC_HAVE_MPI
    /* max of {f, ~f} gives {max f, ~min f}: the ranks agree iff max == min */
    uint64_t in[2] = {fingerprint, ~fingerprint}, out[2];
    int rc = MPI_Allreduce(in, out, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_fail(rc, "MPI_Allreduce (search fingerprint)", err, errlen);
        return -2;          /* this rank alone may know: the caller aborts the job */
    }
    if (out[0] != ~out[1]) {
        snprintf(err, errlen, "the %d ranks expanded different searches (another spec, flags, -o DIR or "
                 "retinac build on some rank): every rank must run the same command", m->size);
        return -1;
    }
    return 0;
#else
    (void)fingerprint; (void)err; (void)errlen;
    return 0;
#endif
}

int cli_mpi_gather_rows(const cli_mpi *m, rc_search_row *rows, const int *owner, int n, char *err, size_t errlen)
{
    if (!m->active || m->size == 1) return 0;
#if RC_HAVE_MPI
    const int tag = 17;
    if (m->rank != 0) {
        for (int i = 0; i < n; i++)
            if (owner[i] == m->rank) MPI_CHECK(MPI_Send(&rows[i], (int)sizeof rows[i], MPI_BYTE, 0, tag, MPI_COMM_WORLD), "MPI_Send (result row)");
        return 0;
    }
    int n_remote = 0;
    for (int i = 0; i < n; i++) n_remote += owner[i] != 0;
    if (n_remote == 0) return 0;
    MPI_Request *req = malloc((size_t)n_remote * sizeof *req);
    int *idx = malloc((size_t)n_remote * sizeof *idx);
    rc_search_row *in = malloc((size_t)n_remote * sizeof *in);
    if (!req || !idx || !in) { free(req); free(idx); free(in); snprintf(err, errlen, "out of memory"); return -1; }
    int k = 0, rc = MPI_SUCCESS;
    /* messages from one source arrive in the order sent (ascending i), matching these receives */
    for (int i = 0; i < n && rc == MPI_SUCCESS; i++) {
        if (owner[i] == 0) continue;
        idx[k] = i;
        rc = MPI_Irecv(&in[k], (int)sizeof in[k], MPI_BYTE, owner[i], tag, MPI_COMM_WORLD, &req[k]);
        if (rc == MPI_SUCCESS) k++;
    }
    if (rc != MPI_SUCCESS) {
        free(req); free(idx); free(in);
        return mpi_fail(rc, "MPI_Irecv (result rows)", err, errlen);
    }
    for (;;) {
        int done = 0;
        rc = MPI_Testall(n_remote, req, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS || done) break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (rc != MPI_SUCCESS) {
        free(req); free(idx); free(in);
        return mpi_fail(rc, "MPI_Testall (result rows)", err, errlen);
    }
    int bad = -1;
    for (int j = 0; j < n_remote; j++) {
        if (in[j].index != idx[j]) bad = j;
        rows[idx[j]] = in[j];
    }
    if (bad >= 0)
        snprintf(err, errlen, "rank %d sent the row of trial %d where trial %d was expected",
                 owner[idx[bad]], in[bad].index, idx[bad]);
    free(req); free(idx); free(in);
    return bad >= 0 ? -1 : 0;
#else
    (void)rows; (void)owner; (void)n; (void)err; (void)errlen;
    return 0;
#endif
}

int cli_mpi_finalize(cli_mpi *m, char *err, size_t errlen)
{
    free(m->local_ranks);
    m->local_ranks = NULL;
    if (!m->active) return 0;
    m->active = 0;
#if RC_HAVE_MPI
    MPI_CHECK(MPI_Finalize(), "MPI_Finalize");
#else
    (void)err; (void)errlen;
#endif
    return 0;
}

void cli_mpi_abort(const cli_mpi *m, int code)
{
#if RC_HAVE_MPI
    if (m->active) MPI_Abort(MPI_COMM_WORLD, code);   /* does not return on success */
#else
    (void)m; (void)code;
#endif
}

int cli_mpi_default_threads(const cli_mpi *m, int n_trials)
{
    if (m->local_size <= 1) return 0;
    int busy = 0;                                    /* ranks on this node with a trial */
    for (int i = 0; i < m->local_size; i++) busy += !m->local_ranks || m->local_ranks[i] < n_trials;
    if (busy < 1) busy = 1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = omp_get_num_procs();                  /* cores in this rank's affinity mask */
    int share = online > 0 ? (int)(online / busy) : 1;
    int t = mine < share ? mine : share;
    return t < 1 ? 1 : t;
}
