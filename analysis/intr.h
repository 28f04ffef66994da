/* intr.h — model units vs recorded interneurons (`retinac interneurons`): torch-deep-retina's
 * intracellular.get_intr_cors (reference §5.3; Maheswaranathan et al. 2023, "model units are
 * highly correlated with interneurons recorded separately").
 *
 * Input: interneuron files in the reference's layout, <stim>/stimuli (T, h, w) and
 * <stim>/detrended_membrane_potential (n, T) (`retinac synth --interneurons DIR` writes such
 * files for the simulated retina, with the true answer known). Per file, as the reference does:
 *   s = 2 v - 1 (v in [0,1]; integer stimuli are read as v = raw / 255), zero-padded centred to
 *   the model's input size, z-scored with ONE scalar mean and std (+ 1e-5) over the padded
 *   movie; window t = frames t .. t+history-1 is paired with the potential at t + history (the
 *   reference trims the first `history` samples), so windows = T - history.
 * Every unit (channel, row, col) of each requested layer's output (eval mode) is correlated
 * (Pearson, over the windows) with each cell's potential; per cell and layer the best unit is
 * kept, and the correlation maps are kept for the output file. A unit with zero variance over
 * the windows has r = 0. Cell type: from the file name as the reference (bipolar, amacrine,
 * horizontal), else "unknown".
 * Departure from the reference: it reads out the layers by PyTorch module hooks
 * ('sequential.0', 'sequential.6'); here layers are named by the spec's 1-based index, default
 * every conv layer's output (before its batchnorm), which is what those hooks return for the
 * BN-CNN.
 */
#ifndef RC_INTR_H
#define RC_INTR_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "progress.h"

typedef struct {
    const char *stim;          /* stimulus key (default "boxes") */
    int n_layers;              /* 0: every conv layer */
    int layers[RC_MAX_LAYERS]; /* 0-based layer indices */
    int batch;                 /* windows per forward (default 256) */
    int fft;                   /* 1 (default): layer 1 and later plain convs by FFT (exact) */
    rc_progress progress;      /* windows done (may be zeroed) */
} rc_intr_opts;

typedef struct {
    int layer, chan, row, col; /* 0-based; row/col in the layer's output */
    double r;
} rc_intr_unit;

typedef struct {
    char file[256];            /* base name of the file */
    char type[16];             /* bipolar / amacrine / horizontal / unknown */
    int index;                 /* cell index in its file */
    int64_t windows;
    rc_intr_unit best[RC_MAX_LAYERS];   /* per requested layer (same order as the result's) */
    int best_k;                /* index into best[] of the best layer */
    float *maps;               /* per requested layer, its (c, h, w) correlation map, concatenated */
} rc_intr_cell;

typedef struct {
    int n_layers;
    int layers[RC_MAX_LAYERS]; /* 0-based */
    int64_t map_floats;        /* floats per cell in maps */
    int n_cells;
    rc_intr_cell *cells;
    double seconds;
} rc_intr_result;

void rc_intr_opts_default(rc_intr_opts *o);

/* Correlate the checkpoint's units with every cell of every file. r is zeroed first; free it
 * with rc_intr_free (also after an error). Errors name the file and the dataset key. */
int rc_intr_compute(const rc_checkpoint *ck, const char *const *files, int n_files,
                    const rc_intr_opts *o, rc_intr_result *r, char *err, size_t errlen);
void rc_intr_free(rc_intr_result *r);

/* The cell type the reference derives from a file name ("bipolars_late_2012.h5" -> bipolar). */
const char *rc_intr_type_of(const char *path);

/* Write r to path atomically (HDF5): /layers (1-based), /best (n_cells, n_layers, 5) doubles
 * (layer 1-based, chan, row, col, r), /cells/<k> the correlation maps of cell k (each requested
 * layer's (c, h, w), concatenated) with attributes file, type, index, windows. */
int rc_intr_write(const char *path, const rc_checkpoint *ck, const rc_intr_result *r, char *err,
                  size_t errlen);

#endif
