/* cmd_report.c — `retinac report INPUT... [-o DIR]`: figures (PNG, SVG) and an index.html of
 * run folders, search folders and phenomena files (report/report.h). The folder appears whole
 * or not at all. Exit 0 ok, 1 error, 2 usage.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "report.h"

const char cmd_report_help[] =
    "usage: retinac report INPUT... [-o DIR]\n"
    "\n"
    "Figures of trained models as PNG and SVG, and DIR/index.html that shows them with captions:\n"
    "  training curves      log.csv of each run: train/validation loss, validation r, learning rate\n"
    "  test accuracy        metrics.json: per-cell r and FEVe, models side by side, noise ceiling\n"
    "  predictions          best.h5 on its recording's test split: predicted and recorded\n"
    "                       (trial-averaged) responses over 5 s, per cell\n"
    "  receptive fields     RUN/rf.h5 (retinac rf -o): spatial map with the fitted centre, kernel\n"
    "  phenomena            a retinac phenomena -o file (or RUN/phenomena.h5): the papers' panels,\n"
    "                       every model and the simulated retina in one panel each\n"
    "  interneurons         RUN/intr.h5 (retinac interneurons -o): best-unit r per cell and layer\n"
    "  search               a search folder's search.csv: validation loss against each setting\n"
    "INPUT is a run folder (retinac train -o), a search folder (retinac search -o) or a phenomena\n"
    "file. The page lists what the inputs lack, with the command that makes it.\n"
    "\n"
    "  -o DIR   the report folder (default: FIRST_INPUT/report when that is a folder). An\n"
    "           existing DIR is replaced only if it is a report (it holds index.html)\n"
    "  --data FILE  the recording for the predictions (default: the one each checkpoint names;\n"
    "           it must be the recording the model was trained on)\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 usage error.\n";

int cmd_report(int argc, char **argv)
{
    const char *inputs[64];
    int n = 0;
    const char *out = NULL, *data = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") || !strcmp(a, "--out") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) { fprintf(stderr, "retinac report: %s needs a folder\n", a); return 2; }
            out = argv[++i];
        } else if (!strncmp(a, "--out=", 6)) {
            out = a + 6;
        } else if (!strcmp(a, "--data")) {
            if (i + 1 >= argc) { fprintf(stderr, "retinac report: --data needs a recording\n"); return 2; }
            data = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "retinac report: unknown option '%s' (retinac help report)\n", a);
            return 2;
        } else if (n < 64) {
            inputs[n++] = a;
        } else {
            fprintf(stderr, "retinac report: too many inputs\n");
            return 2;
        }
    }
    if (n == 0) { fputs(cmd_report_help, stderr); return 2; }
    char def[1100];
    if (!out) {
        struct stat st;
        if (stat(inputs[0], &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "retinac report: %s is not a folder: say where the report goes with -o DIR\n", inputs[0]);
            return 2;
        }
        snprintf(def, sizeof def, "%s/report", inputs[0]);
        out = def;
    }
    rc_report_opts o = {inputs, n, out, RC_VERSION " (" RC_GIT_VERSION ")", data};
    rc_report_result res;
    char err[1024];
    if (rc_report_write(&o, &res, err, sizeof err) != 0) {
        fprintf(stderr, "retinac report: %s\n", err);
        return 1;
    }
    if (res.missing_text && *res.missing_text)
        fprintf(stderr, "not in the report (see the page):\n%s", res.missing_text);
    printf("%s/index.html: %d figure%s\n", out, res.figures, res.figures == 1 ? "" : "s");
    rc_report_result_free(&res);
    return 0;
}
