/* trial_models.h — the models of search trials that set spec parameters (`retinac search` over
 * params, `retinac compare`): each distinct set of parameter values loads the spec once more
 * with those values (plus the caller's --param overrides); trials with the same values share
 * the model. A spec that does not load with a trial's values is not an error of the search:
 * the trial carries the message (rc_search_trial.model_error) and is recorded failed.
 */
#ifndef RC_CLI_TRIAL_MODELS_H
#define RC_CLI_TRIAL_MODELS_H

#include <stddef.h>

#include "search.h"
#include "spec.h"

typedef struct {
    int n;
    rc_ir **models;         /* (n) loaded models, owned */
    char **errors;          /* (n) messages of values that did not load, owned (NULL: loaded) */
} cli_trial_models;

/* Set t[i].model / t[i].model_error for every trial of s (expanded from spec_path's search)
 * whose dims include parameters; base (n_base) are the --param overrides of the command, which
 * must not name a searched parameter. spec_train: the train section of the spec loaded with
 * base alone; a trial whose parameters change it is recorded failed (its settings come from
 * the search, so the change would be lost). Returns 0, or -1 with a message (usage or out of memory;
 * a trial's load failure is not one). Free with cli_trial_models_free after the trials. */
int cli_trial_models_load(const char *spec_path, const rc_train *spec_train, const rc_search *s,
                          const rc_spec_override *base, int n_base, rc_search_trial *t, int n, cli_trial_models *out, char *err,
                          size_t errlen);
void cli_trial_models_free(cli_trial_models *m);

#endif
