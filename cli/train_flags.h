/* train_flags.h — command-line handling of training settings shared by `retinac train` and
 * `retinac search`: any train field of the IR's descriptor table works as a flag of the same
 * name (dashes or underscores; --l1 = --l1-activity, --patience = --early-patience), so the
 * flag list never drifts from the descriptors; and the --cells list syntax.
 */
#ifndef RC_CLI_TRAIN_FLAGS_H
#define RC_CLI_TRAIN_FLAGS_H

#include <stddef.h>

#include "ir.h"
#include "spec.h"
#include "train.h"

/* The train field a flag ("--sched-patience", "--l1") names, or NULL. */
const rc_field *cli_train_flag(const char *flag);
/* Set train field f from text. Returns 0 or -1 with "--name: what" in err. */
int cli_set_train_field(const rc_field *f, rc_train *t, const char *val, char *err, size_t n);
/* "0,2,5-7" -> malloc'd list of cell indices. Returns 0 or -1 with a message. */
int cli_parse_cells(const char *s, int **out, int *n, char *err, size_t errlen);

/* The options of how runs train that search and compare share with train: --backend, --device,
 * --rate-key, --threads, --cells, --mem-budget (each with a value: next), and
 * --allow-other-recording. Returns 0 when a is not one of them, else the argv words it took
 * (1 or 2), or -1 with "OPTION ...: what" in err (a missing or bad value). */
int cli_run_flag(const char *a, const char *next, rc_train_opts *o, int **cells, int *n_cells,
                 char *err, size_t errlen);

/* The value of "--param NAME=VALUE" (arg: an argv string, cut at '=' in place): appended to ov
 * (at most max). Returns 0 or -1 with a message. */
int cli_parse_param(const char *arg, rc_spec_override *ov, int *n, int max, char *err, size_t errlen);

#endif
