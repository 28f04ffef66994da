/* search_ui.h — progress lines of the commands that run trials (search, compare). */
#ifndef RC_CLI_SEARCH_UI_H
#define RC_CLI_SEARCH_UI_H

#include "search_run.h"

/* What the progress lines need besides the event: the command's name ("search"), -q, and
 * what the start line names. */
typedef struct {
    const char *cmd;
    int quiet;
    const char *spec_name, *backend, *dir;
} cli_search_ui;

/* rc_search_opts.event with ctx = a cli_search_ui. */
void cli_search_on_event(void *ctx, const rc_search_event *e);
/* rc_train_opts.warn with ctx = a cli_search_ui (or NULL: "search"). */
void cli_search_on_warn(void *ctx, const char *line);

#endif
