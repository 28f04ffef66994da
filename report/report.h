/* report.h — `retinac report`: figures (PNG and SVG) and an index.html of what run folders hold:
 * training curves (log.csv), per-cell test accuracy (metrics.json), receptive fields (rf.h5),
 * predicted against recorded test responses (best.h5 on its recording, evaluated here),
 * interneuron matches (intr.h5), the phenomena battery (phenomena.h5) and a search's loss against
 * its settings (search.csv). What a folder lacks is listed on the page with the command that
 * makes it.
 *
 * Invariants: the report folder appears whole or not at all: it is built in a temp folder beside
 * the target and renamed into place; a failure (a corrupt or foreign input, a full disk) removes
 * the temp folder and leaves any previous report untouched. An existing target is replaced only
 * if it is a report (it holds index.html and nothing but regular files). Library code: returns
 * errors, prints nothing. Single-threaded (PLplot).
 */
#ifndef RC_REPORT_H
#define RC_REPORT_H
#include <stddef.h>

typedef struct {
    const char *const *inputs;   /* run folders, search folders, phenomena .h5 files */
    int n_inputs;
    const char *out;             /* the report folder */
    const char *version;         /* printed on the page (may be NULL) */
    const char *data;            /* the recording for the predictions (NULL: each checkpoint's) */
} rc_report_opts;

typedef struct {
    int figures;                 /* figures written */
    int missing;                 /* analyses listed as missing */
    char *missing_text;          /* malloc'd: one line per missing analysis, or NULL */
} rc_report_result;

int rc_report_write(const rc_report_opts *o, rc_report_result *res, char *err, size_t errlen);
void rc_report_result_free(rc_report_result *r);

#endif
