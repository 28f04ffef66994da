/* predict.c — a minimal program using retinac as a library: load a trained model and print
 * its predicted firing rates for a stimulus movie.
 *
 * Build (after `make examples`, which also writes build/retinac.pc):
 *   cc -std=c11 predict.c $(PKG_CONFIG_PATH=build pkg-config --cflags --libs retinac) -o predict
 * Run:
 *   ./predict runs/bncnn/best.h5 data/synth.h5 test/stimulus     # movie from a recording
 *   ./predict runs/bncnn/best.h5                                  # a synthetic flash instead
 *
 * With a stimulus file, the library reads, crops and normalizes the movie itself
 * (retinac_predict_file). Without one, this program makes a movie in memory (a full-field
 * flash: grey, then a bright step) and calls retinac_predict on the raw frames, showing the
 * buffer API: frames in the recording's units, (T, H, W) row-major float32.
 */
#include <stdio.h>
#include <stdlib.h>

#include <hdf5.h>

#include "retinac.h"

/* Print the first rows of an output (n, cells). */
static void show(const float *y, long n, int cells, int history)
{
    printf("%8s", "frame");
    for (int c = 0; c < cells; c++) printf("  cell %-4d", c);
    printf("\n");
    for (long i = 0; i < n; i += n > 20 ? n / 20 : 1) {
        printf("%8ld", i + history);     /* row i answers the bin after frame i+history-1 */
        for (int c = 0; c < cells; c++) printf("  %9.3f", y[i * cells + c]);
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s CHECKPOINT [STIMULUS.h5 KEY]\n", argv[0]);
        return 2;
    }
    char err[512];
    retinac_model *m = retinac_open(argv[1], NULL, err, sizeof err);
    if (!m) { fprintf(stderr, "predict: %s\n", err); return 1; }
    int history, h, w, cells;
    retinac_shape(m, &history, &h, &w, &cells);
    printf("model %s: %d cells, input %d frames of %dx%d, backend %s (retinac %s)\n",
           retinac_model_name(m), cells, history, h, w, retinac_backend_name(m), retinac_version());

    int rc = 1;
    if (argc == 4) {
        /* The file API: writes pred.h5 (/response (T - history, cells)); read it back. */
        if (retinac_predict_file(m, argv[2], argv[3], "pred.h5", err, sizeof err) < 0) {
            fprintf(stderr, "predict: %s\n", err);
            goto out;
        }
        hid_t f = H5Fopen("pred.h5", H5F_ACC_RDONLY, H5P_DEFAULT);
        hid_t d = f < 0 ? -1 : H5Dopen2(f, "/response", H5P_DEFAULT);
        hid_t s = d < 0 ? -1 : H5Dget_space(d);
        hsize_t dims[2] = {0, 0};
        if (s < 0 || H5Sget_simple_extent_dims(s, dims, NULL) != 2) {
            fprintf(stderr, "predict: pred.h5: cannot read /response\n");
            goto out;
        }
        float *y = malloc(dims[0] * dims[1] * sizeof *y);
        if (y && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0) {
            printf("wrote pred.h5: %llu time bins x %llu cells\n", (unsigned long long)dims[0],
                   (unsigned long long)dims[1]);
            show(y, (long)dims[0], cells, history);
            rc = 0;
        }
        free(y);
        H5Sclose(s); H5Dclose(d); H5Fclose(f);
    } else {
        /* The buffer API: a full-field flash in the stimulus' own units (0..255 for uint8
         * recordings such as retinac synth's): grey 128 for 2*history frames, then 255. */
        long T = 4L * history;
        float *frames = malloc((size_t)T * h * w * sizeof *frames);
        float *y = malloc((size_t)(T - history) * cells * sizeof *y);
        if (!frames || !y) { fprintf(stderr, "predict: out of memory\n"); free(frames); free(y); goto out; }
        for (long t = 0; t < T; t++)
            for (long p = 0; p < (long)h * w; p++) frames[t * h * w + p] = t < 2 * history ? 128.f : 255.f;
        if (retinac_predict(m, frames, T, y, err, sizeof err) < 0) fprintf(stderr, "predict: %s\n", err);
        else {
            printf("response to a full-field flash at frame %d:\n", 2 * history);
            show(y, T - history, cells, history);
            rc = 0;
        }
        free(frames);
        free(y);
    }
out:
    retinac_close(m);
    return rc;
}
