/* fuzz_probe.c — libFuzzer harness for the recording prober behind `retinac info`
 * (rc_data_probe_file in runtime/data/data_src.c, then rc_data_open in runtime/data/data.c), and, for
 * recordings small enough to scan in milliseconds, the scan `retinac info` does without --quick
 * (rc_data_stats over every training frame, rc_data_test over the test split).
 *
 * Each input is the bytes of an HDF5 file (written to a private temp file: the prober takes a
 * path). Options are `retinac info`'s defaults with a 64 MB data budget (--mem-budget 64).
 * Both Baccus and openretina layouts are auto-detected from the file.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome (the error line, or success) for triage.
 *
 * A crash here means: a memory error, undefined behaviour, a leak or a hang in the prober or the
 * data layer on a damaged or hostile recording, or (abort) an HDF5 object left open. Error
 * returns ("FILE: /key: what") are expected and fine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "fuzz_h5.h"

#define FUZZ_SCAN_MAX (1 << 22)   /* values (frames x pixels, or labels) scanned per split */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_h5_write(data, size, "recording.h5");
    rc_data_opts o;
    rc_data_opts_default(&o);
    o.mem_budget = (size_t)64 << 20;
    rc_data_probe p;
    char err[1024] = "";
    if (rc_data_probe_file(path, &o, &p, err, sizeof err) == 0) {
        rc_data *d = NULL;
        if (rc_data_open(path, &o, &d, err, sizeof err) == 0) {
            const rc_data_info *in = rc_data_get_info(d);
            double px = (double)in->h * in->w;
            double tr = (double)in->train_frames * px, te = (double)in->test_frames * px;
            double lab = (double)(in->n_repeats + 2) * in->n_cells * (double)(in->train_frames + in->test_frames);
            if (tr <= FUZZ_SCAN_MAX && te <= FUZZ_SCAN_MAX && lab <= FUZZ_SCAN_MAX) {
                double mean, std;
                if (rc_data_stats(d, &mean, &std, err, sizeof err) == 0 && in->test_frames > 0) {
                    rc_test_set t;
                    memset(&t, 0, sizeof t);
                    (void)rc_data_test(d, &t, err, sizeof err);
                    rc_test_set_free(&t);          /* as cmd_info: freed on success and error */
                }
            }
            rc_data_close(d);
        }
    }
    if (getenv("FUZZ_VERBOSE")) fprintf(stderr, "%s\n", err[0] ? err : "usable");
    fuzz_h5_check_closed("rc_data_probe_file/rc_data_open");
    return 0;
}
