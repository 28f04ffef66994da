/* retinac.h — the public C API of the retinac runtime (link build/libretinac.a, or use
 * `pkg-config --cflags --libs retinac` with build/retinac.pc).
 *
 * A trained model is a checkpoint (HDF5, written by `retinac train`). Load it, and get the
 * model's ganglion-cell responses to a stimulus movie:
 *
 *     char err[512];
 *     retinac_model *m = retinac_open("runs/bncnn/best.h5", NULL, err, sizeof err);
 *     if (!m) { fprintf(stderr, "%s\n", err); return 1; }
 *     int hist, h, w, cells;
 *     retinac_shape(m, &hist, &h, &w, &cells);
 *     float *out = malloc((T - hist) * cells * sizeof *out);      // (T - history, cells)
 *     retinac_predict(m, frames, T, out, err, sizeof err);          // frames (T, h, w), raw
 *     retinac_close(m);
 *
 * Conventions: frames are float32 (T, H, W) row-major in the stimulus' own units (as stored in
 * the recording); retinac_predict z-scores them with the training statistics stored in the
 * checkpoint. Output row i is the predicted rate for the time bin after the window
 * frames[i .. i+history), i.e. aligned with frame i + history (torch-deep-retina's alignment).
 * Every function returns 0 (or a pointer) on success and -1 (NULL) with a one-line message in
 * err. A retinac_model is not thread-safe; use one per thread.
 */
#ifndef RETINAC_H
#define RETINAC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RETINAC_API_VERSION 1

typedef struct retinac_model retinac_model;

/* The library's version string, e.g. "0.1.0". */
const char *retinac_version(void);

/* Load a checkpoint (a file, or a run folder meaning its best.h5). backend: "c" (JIT-compiled
 * generated C; needs a C compiler at run time), "ref" (the portable reference), or NULL (try
 * "c", fall back to "ref"). */
retinac_model *retinac_open(const char *checkpoint, const char *backend, char *err, size_t errlen);
void retinac_close(retinac_model *m);

/* Input window (history frames of height x width after any crop) and number of cells. */
void retinac_shape(const retinac_model *m, int *history, int *height, int *width, int *cells);
/* Model name from the spec, and the backend in use ("c" or "ref"). */
const char *retinac_model_name(const retinac_model *m);
const char *retinac_backend_name(const retinac_model *m);

/* frames (T, height, width) raw -> out (T - history, cells). T must exceed history. */
int retinac_predict(retinac_model *m, const float *frames, int64_t T, float *out, char *err,
                    size_t errlen);

/* Read the (T, H, W) dataset `key` (NULL: "stimulus") of the HDF5 file stim_path (cropped as
 * in training when the model uses a crop: then H x W must be the training frame size, or the
 * crop size for a movie already cropped; any other size is refused, as is any size but the
 * model's input without a crop), predict, and write out_path atomically: dataset
 * /response (T - history, cells) float32, with attributes model, spec_hash, history and
 * first_frame (= history: row i answers frame i + history), and /cell_ids (cells). */
int retinac_predict_file(retinac_model *m, const char *stim_path, const char *key,
                         const char *out_path, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
