/* report_int.h — what `retinac report` reads from a run folder and draws, shared by the readers
 * (report_io.c), the figures (figures.c) and the page (report.c). Not a public interface.
 *
 * Invariants: every reader returns 0, 1 (the input is absent: not an error, the page says what
 * is missing) or -1 with "FILE: what" in err (present but unreadable, foreign or corrupt: the
 * report fails and leaves nothing). Arrays are malloc'd and freed by the matching rep_*_free;
 * a zeroed struct is empty and safe to free. Values a file does not hold are NaN.
 */
#ifndef RC_REPORT_INT_H
#define RC_REPORT_INT_H
#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"

#define REP_NAME 64

/* log.csv of a training run: one row per epoch. */
typedef struct {
    int n;
    double *epoch, *train_loss, *val_loss, *val_r, *lr;   /* (n) each */
} rep_log;

/* metrics.json's test block. */
typedef struct {
    char model[REP_NAME];
    int n_cells;
    int *cell_ids;                  /* (n_cells) */
    double *r, *ceiling, *feve;     /* (n_cells) */
    double mean_r, mean_ceiling, mean_feve, truth_mean_r;
} rep_metrics;

/* rf.h5: one estimate (grad preferred, else revcor). */
typedef struct {
    char method[8];
    int cells, history, h, w;
    int *cell_ids;                  /* (cells) */
    float *spatial;                 /* (cells, h, w) */
    float *temporal;                /* (cells, history) */
    double *center;                 /* (cells, 2): row, col in the model's input frame */
    double *sigma;                  /* (cells) */
    int *polarity;                  /* (cells) */
} rep_rf;

/* intr.h5: the best-matching model unit per recorded interneuron and layer. */
typedef struct {
    int cells, layers;
    double *best;                   /* (cells, layers, 5): layer, chan, row, col, r */
    /* The correlation maps (/cells/<k>: every chosen layer's (c, h, w), in /layers order), when
     * the run's best.h5 gives the layers' shapes; NULL otherwise. */
    float *maps;                    /* (cells, map_len) */
    int64_t map_len;
    int lay_c[8], lay_h[8], lay_w[8];
    int64_t lay_off[8];             /* offset of each layer's block in a cell's maps */
} rep_intr;

/* phenomena.h5: the traces the panels draw, per source (column). */
#define REP_PHEN_PANELS 9
typedef struct {
    int n;
    double *x, *y;                  /* (n) */
    int n2;                         /* a second line (dashed), 0 if none */
    double *x2, *y2;
} rep_trace;
typedef struct {
    char name[REP_NAME];
    int is_retina;                  /* the simulated retina's column (ground truth) */
    rep_trace panel[REP_PHEN_PANELS];
} rep_phen_source;
typedef struct {
    int n_sources;
    rep_phen_source *src;
} rep_phen;

/* A search or compare folder's table. */
typedef struct {
    int n_dims;
    char dims[16][REP_NAME];
    int n;
    double *values;                 /* (n, n_dims); NaN for a string value */
    char (*svalues)[REP_NAME];      /* (n, n_dims) text of each value */
    double *val_loss;               /* (n); NaN for a failed trial */
} rep_search;

/* The test split through a run's best.h5: predictions and the recorded trial average. */
typedef struct {
    char data[1024];                /* the recording they come from */
    int cells;
    int64_t n;                      /* time bins (10 ms) */
    float *pred, *rate;             /* (n, cells) */
    double mean_r;
} rep_traces;

/* One input folder (or file) and what was found in it. */
typedef struct {
    char path[1024];
    char name[REP_NAME];            /* label: the model name, else the folder's last part */
    int has_log, has_metrics, has_rf, has_intr, has_search, has_traces;
    rep_log log;
    rep_metrics metrics;
    rep_rf rf;
    rep_intr intr;
    rep_search search;
    rep_traces traces;
    char traces_note[1200];         /* why there are no traces (when a best.h5 exists) */
} rep_run;

int rep_read_log(const char *path, rep_log *l, char *err, size_t errlen);
int rep_read_metrics(const char *path, rep_metrics *m, char *err, size_t errlen);
int rep_read_rf(const char *path, rep_rf *r, char *err, size_t errlen);
/* ck (may be NULL): the run's best.h5, for the layer shapes of the correlation maps. */
int rep_read_intr(const char *path, const rc_checkpoint *ck, rep_intr *r, char *err,
                  size_t errlen);
int rep_read_phen(const char *path, rep_phen *p, char *err, size_t errlen);
int rep_read_search(const char *path, rep_search *s, char *err, size_t errlen);
/* Evaluate the run's best.h5 (ck; NULL: the run has none) on the test split of `data` (NULL:
 * the recording named in the checkpoint). 1 (with why in note) when there is no checkpoint or
 * the recording is not here; -1 for a recording that is not the one it was trained on. */
int rep_read_traces(const rc_checkpoint *ck, const char *data, rep_traces *t, char *note,
                    size_t notelen, char *err, size_t errlen);
/* 1 if path names a regular file (0 for a folder or nothing). */
int rep_is_file(const char *path);
void rep_traces_free(rep_traces *t);
/* 1 if path is an HDF5 file written by `retinac phenomena` (root attribute generator). */
int rep_is_phenomena(const char *path);

void rep_log_free(rep_log *l);
void rep_metrics_free(rep_metrics *m);
void rep_rf_free(rep_rf *r);
void rep_intr_free(rep_intr *r);
void rep_phen_free(rep_phen *p);
void rep_search_free(rep_search *s);

/* Panel titles and axes of the phenomena figure, in the order of rep_trace panel[]. */
typedef struct {
    const char *title, *xlab, *ylab;
} rep_panel_info;
extern const rep_panel_info rep_phen_panels[REP_PHEN_PANELS];

/* Figures (figures.c): each draws into DIR/NAME.{png,svg}; 0 or -1 with err. */
int rep_fig_training(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                     size_t errlen);
int rep_fig_cells(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                  size_t errlen);
int rep_fig_rf(const char *dir, const char *name, const rep_run *run, char *err, size_t errlen);
int rep_fig_intr(const char *dir, const char *name, const rep_run *run, char *err,
                 size_t errlen);
/* The correlation map of each recorded cell's best unit (0 and nothing drawn without maps). */
int rep_fig_intr_maps(const char *dir, const char *name, const rep_run *run, char *err,
                      size_t errlen);
int rep_fig_phen(const char *dir, const char *name, const rep_phen *p, char *err, size_t errlen);
int rep_fig_pred(const char *dir, const char *name, rep_run *const *runs, int n, char *err,
                 size_t errlen);
int rep_fig_search(const char *dir, const char *name, const rep_run *run, char *err,
                   size_t errlen);

#endif
