/* test_cli_options.c — command-line rules shared by every command (cli/main.c, cli/train_flags.c):
 * an option given twice is refused with exit 2 in every command (aliases and '_'/'-' spellings
 * count as the same option), the options that add to a list (synth --set) still repeat, a
 * negative number given as a value is not an option; flag ranges print integers in full; and
 * non-increasing --milestones are refused. Nothing here trains or reads data. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "kit.h"

Test(cli, an_option_given_twice_is_refused_in_every_command, .timeout = 60)
{
    static const char *const cases[][2] = {
        {"train specs/tiny.lua --backend c --backend ref", "option --backend given twice"},
        {"train specs/tiny.lua --sched-patience 3 --sched_patience 4", "option --sched_patience given twice (as '--sched-patience' and '--sched_patience')"},
        {"train specs/tiny.lua --l1 0 --l1-activity 1", "option --l1-activity given twice (as '--l1' and '--l1-activity')"},
        {"train specs/tiny.lua --patience 2 --early-patience 3", "given twice"},
        {"train specs/tiny.lua -o a --out b", "option --out given twice (as '-o' and '--out')"},
        {"search specs/tiny.lua --trials 2 --trials 3", "option --trials given twice"},
        {"check specs/tiny.lua --cells=3 --cells 4", "option --cells given twice (as '--cells=3' and '--cells')"},
        {"info x.h5 --json --json", "option --json given twice"},
        {"eval run --data a.h5 --data b.h5", "option --data given twice"},
        {"synth -o a.h5 --output b.h5", "option --output given twice (as '-o' and '--output')"},
        {"synth -q --quiet -o a.h5", "given twice"},
        {"gen specs/tiny.lua --target c --target cuda", "option --target given twice"},
        {"predict ck.h5 --key a --key b", "option --key given twice"},
        {"rf run --method grad --method revcor", "option --method given twice"},
        {"phenomena run --only osr --only oms", "option --only given twice"},
        {"bench specs/tiny.lua --batch 2 --batch 4", "option --batch given twice"},
        {"compile specs/tiny.lua --target c --target c", "option --target given twice"},
        {"interneurons run i.h5 --stim x --stim y", "option --stim given twice"},
    };
    char out[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st = kit_rc_text(out, sizeof out, "%s", cases[i][0]);
        cr_assert_eq(st, 2, "%s: exit %d: %s", cases[i][0], st, out);
        cr_assert(strstr(out, cases[i][1]), "%s: got: %s  want: %s", cases[i][0], out, cases[i][1]);
        cr_assert(strstr(out, "give each option once"), "%s", out);
    }
}

Test(cli, list_options_repeat_and_negative_values_are_not_options, .timeout = 60)
{
    char out[4096];
    /* synth --set adds to a list: repeating it reaches synth's own checks (-o is missing) */
    cr_assert_eq(kit_rc_text(out, sizeof out, "synth --set a=1 --set b=2"), 2, "%s", out);
    cr_assert(strstr(out, "-o FILE is required") && !strstr(out, "twice"), "%s", out);
    /* "-1" twice is two values, not an option given twice: the parser's own range check answers */
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data x.h5 -o r --seed -1 --threads -1", RC_SRC_DIR), 2, "%s", out);
    cr_assert(!strstr(out, "twice"), "%s", out);
}

Test(cli, flag_ranges_print_integers_in_full, .timeout = 60)
{
    char out[4096];
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data x.h5 -o r --batch 0", RC_SRC_DIR), 2, "%s", out);
    cr_assert(strstr(out, "--batch: 0 out of range [1, 1048576]"), "%s", out);
    cr_assert(!strstr(out, "e+06"), "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data x.h5 -o r --lr 20", RC_SRC_DIR), 2, "%s", out);
    cr_assert(strstr(out, "--lr: 20 out of range [1e-12, 10]"), "%s", out);
    cr_assert_eq(kit_rc_text(out, sizeof out, "train '%s/specs/tiny.lua' --data x.h5 -o r --milestones 20,10", RC_SRC_DIR), 2, "%s", out);
    cr_assert(strstr(out, "--milestones: must be strictly increasing epochs, got 20,10"), "%s", out);
}
