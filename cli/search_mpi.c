/* search_mpi.c — MPI for `retinac search` (see search_mpi.h): the callbacks of rc_search_comm.
 * What they carry and check (the fingerprint's meaning, the rows' order) is search_run.c's.
 * Rows travel as MPI_BYTE records of sizeof(rc_search_row): every rank runs the same binary,
 * so the layout is the same.
 * Rank 0 waits for the other ranks' rows with MPI_Irecv + MPI_Testall and a short sleep, not a
 * blocking MPI_Recv, because Open MPI's blocking receive spins a core at 100% that the other
 * ranks on the node need for training.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* comm->allreduce_max_u64: its one use is the search fingerprint (search_run.c's agree). */
static int mpi_allreduce_max_u64(void *ctx, const uint64_t *in, uint64_t *out, int n, char *err, size_t errlen)
{
    const cli_mpi *m = ctx;
    if (!m->active || m->size == 1) {
        memcpy(out, in, (size_t)n * sizeof *out);
        return 0;
    }
#if RC_HAVE_MPI
    MPI_CHECK(MPI_Allreduce(in, out, n, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (search fingerprint)");
    return 0;
#else
    (void)err; (void)errlen;
    memcpy(out, in, (size_t)n * sizeof *out);
    return 0;
#endif
}

/* comm->gather_rows; rc_search_run checks that each row is the trial expected. */
static int mpi_gather_rows(void *ctx, rc_search_row *rows, const int *owner, int n, char *err, size_t errlen)
{
    const cli_mpi *m = ctx;
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
    for (int j = 0; j < n_remote; j++) rows[idx[j]] = in[j];
    free(req); free(idx); free(in);
    return 0;
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

static int comm_start(void *ctx, char *err, size_t errlen)
{
    cli_mpi *m = ctx;
    if (cli_mpi_init(m, m->argc, m->argv, err, errlen) < 0) return -1;
    m->started = 1;
    return 0;
}

static int comm_rank(void *ctx)
{
    const cli_mpi *m = ctx;
    return m->started ? m->rank : cli_mpi_env_rank();
}

static int comm_size(void *ctx)
{
    return ((const cli_mpi *)ctx)->size;
}

static int comm_node_ranks(void *ctx, const int **ranks)
{
    const cli_mpi *m = ctx;
    *ranks = m->local_ranks;
    return m->local_size;
}

void cli_mpi_comm(cli_mpi *m, int *argc, char ***argv, rc_search_comm *comm)
{
    m->argc = argc;
    m->argv = argv;
    *comm = (rc_search_comm){.ctx = m, .start = comm_start, .rank = comm_rank, .size = comm_size,
                             .node_ranks = comm_node_ranks, .allreduce_max_u64 = mpi_allreduce_max_u64,
                             .gather_rows = mpi_gather_rows};
}
