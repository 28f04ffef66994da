/* main.c — the retinac command line: git-style subcommands dispatched from one table.
 * Only this file and the cmd_*.c files may exit(); library code returns errors.
 * Every option may be given once (checked here, for every command, before dispatch: with
 * "last one wins", `--backend c --backend ref` would silently run ref); the exceptions are
 * listed in `repeatable` (options that add to a list). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
    const char *summary;
} rc_command;

static const rc_command commands[] = {
    {"check",   cmd_check,   cmd_check_help,   "validate a model spec, print its layer table"},
    {"gen",     cmd_gen,     cmd_gen_help,     "emit C (and CUDA) for a spec into generated/<model>/"},
    {"compile", cmd_compile, cmd_compile_help, "JIT-compile a spec ahead of time, print the cached object"},
    {"bench",   cmd_bench,   cmd_bench_help,   "measure training and inference throughput"},
    {"gradcheck", cmd_gradcheck, cmd_gradcheck_help, "check a backend's gradients against finite differences"},
    {"synth",   cmd_synth,   cmd_synth_help,   "write a synthetic retina recording (HDF5)"},
    {"info",    cmd_info,    cmd_info_help,    "describe a recording (HDF5) and check it is usable"},
    {"train",   cmd_train,   cmd_train_help,   "train a model on a recording"},
    {"eval",    cmd_eval,    cmd_eval_help,    "per-cell accuracy, ceiling and FEVe of trained runs"},
    {"predict", cmd_predict, cmd_predict_help, "write model responses to a stimulus"},
    {"rf",      cmd_rf,      cmd_rf_help,      "receptive fields of a trained model (gradient STA, reverse correlation)"},
    {"phenomena", cmd_phenomena, cmd_phenomena_help, "in-silico retinal phenomena (OSR, F2/F1, OMS, ...)"},
    {"search",  cmd_search,  cmd_search_help,  "train every trial of the spec's search ranges (serial or mpirun)"},
    {"compare", cmd_compare, cmd_compare_help, "train spec variants over seeds; paired statistics and cost"},
    {"interneurons", cmd_interneurons, cmd_interneurons_help, "correlate model units with recorded interneurons"},
    {"import",  cmd_import,  cmd_import_help,  "read a torch-deep-retina checkpoint (.pt) into a run folder"},
    {"report",  cmd_report,  cmd_report_help,  "figures (PNG, SVG) and an index.html of runs and analyses"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

/* Options that add to a list, by command. */
static const struct { const char *command, *option; } repeatable[] = {
    {"synth", "set"},          /* --set KEY=VALUE ... */
    {"check", "param"},        /* --param NAME=VALUE ... (spec parameters) */
    {"train", "param"},
    {"bench", "param"},
    {"search", "param"},
    {"compare", "param"},
};

/* The canonical name of an option token into out ("" if the token is not an option: a
 * positional argument, "-", or a negative number given as a value): without the dashes and any
 * "=value", '_' spelled '-', and the aliases resolved (-o/--output = --out, -q = --quiet,
 * --l1 = --l1-activity, --patience = --early-patience, as the parsers accept them). */
static void option_name(const char *a, char *out, size_t n)
{
    out[0] = 0;
    if (a[0] != '-' || !a[1] || isdigit((unsigned char)a[1]) || (a[1] == '.' && isdigit((unsigned char)a[2])))
        return;
    const char *p = a[1] == '-' ? a + 2 : a + 1;
    size_t k = 0;
    for (; p[k] && p[k] != '=' && k + 1 < n; k++) out[k] = p[k] == '_' ? '-' : p[k];
    out[k] = 0;
    static const char *const alias[][2] = {
        {"o", "out"}, {"output", "out"}, {"q", "quiet"}, {"l1", "l1-activity"}, {"patience", "early-patience"},
    };
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(out, alias[i][0])) { snprintf(out, n, "%s", alias[i][1]); break; }
}

/* Index of the first option given a second time (0 if none); *first = its earlier index. */
static int repeated_option(const char *command, int argc, char **argv, int *first)
{
    char a[64], b[64];
    for (int i = 2; i < argc; i++) {
        option_name(argv[i], a, sizeof a);
        if (!a[0]) continue;
        int ok = 0;
        for (size_t r = 0; r < sizeof repeatable / sizeof repeatable[0]; r++)
            ok |= !strcmp(repeatable[r].command, command) && !strcmp(repeatable[r].option, a);
        for (int j = 2; j < i && !ok; j++) {
            option_name(argv[j], b, sizeof b);
            if (!strcmp(a, b)) { *first = j; return i; }
        }
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: retinac [--version] [--help] <command> [<args>]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nSee 'retinac help <command>' for one command's options.\n");
}

static const rc_command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/* OpenMP threads that wait (at a barrier, or between parallel regions): libgomp's default
 * (OMP_WAIT_POLICY unset) spins about 300,000 iterations before it sleeps. Beside other work
 * the spinning threads take the cores the working ones need: batch-32 training fell to 0.58 of
 * batch 512's per-sample rate. Sleeping at once (passive) fixed that, but then every wait costs
 * a wake-up, ~50 us in a VM whose idle vCPU halts, and a training step has dozens of waits:
 * idle, batch 32 fell to 0.71-0.73. A short spin (GOMP_SPINCOUNT=300, a few microseconds here)
 * covers the waits that end at once (the threads' imbalance, back-to-back regions) and sleeps
 * through the rest: batch 32 at 0.82-0.92 of batch 512 idle (passive: 0.73-0.80) and
 * 0.90-0.95 beside a busy process (bench/omp_wait.sh, results/performance.md row 20). libgomp
 * reads the setting once, in its constructor, before main; so when the user set neither
 * OMP_WAIT_POLICY nor GOMP_SPINCOUNT, retinac sets GOMP_SPINCOUNT and executes itself again
 * (once: the variable is then set). If the exec fails it goes on as it is. */
#define RC_OMP_SPINCOUNT "300"
static void omp_wait_short(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", RC_OMP_SPINCOUNT, 1) != 0) return;
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
    omp_wait_short(argv);
    if (argc < 2) { usage(stderr); return 2; }
    const char *c = argv[1];
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        printf("retinac %s (%s)\n", RC_VERSION, RC_GIT_VERSION);
        return 0;
    }
    if (!strcmp(c, "--help") || !strcmp(c, "-h")) { usage(stdout); return 0; }
    if (!strcmp(c, "help")) {
        if (argc < 3) { usage(stdout); return 0; }
        const rc_command *cmd = find(argv[2]);
        if (!cmd) { fprintf(stderr, "retinac: unknown command '%s'\n", argv[2]); return 2; }
        fputs(cmd->help, stdout);
        return 0;
    }
    const rc_command *cmd = find(c);
    if (!cmd) {
        fprintf(stderr, "retinac: '%s' is not a retinac command. See 'retinac --help'.\n", c);
        return 2;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(cmd->help, stdout); return 0; }
    int first = 0, again = repeated_option(c, argc, argv, &first);
    if (again) {
        if (!strcmp(argv[first], argv[again]))
            fprintf(stderr, "retinac %s: option %s given twice; give each option once\n", c, argv[again]);
        else
            fprintf(stderr, "retinac %s: option %s given twice (as '%s' and '%s'); give each option once\n", c,
                    argv[again], argv[first], argv[again]);
        return 2;
    }
    int rc = cmd->fn(argc - 1, argv + 1);
    /* a table or JSON that did not reach stdout (full disk, closed pipe) is a failed command */
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == 0) {
        fprintf(stderr, "retinac %s: writing standard output: %s\n", c,
                errno ? strerror(errno) : "write error");
        rc = 1;
    }
    return rc;
}
