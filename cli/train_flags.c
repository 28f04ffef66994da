/* train_flags.c — train-field flags and the --cells list (see train_flags.h). Moved here
 * from cmd_train.c so `retinac search` parses the same flags the same way. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "train_flags.h"

static void dashes_to_underscores(const char *in, char *out, size_t n)
{
    size_t i = 0;
    for (; in[i] && i + 1 < n; i++) out[i] = in[i] == '-' ? '_' : in[i];
    out[i] = 0;
}

int cli_set_train_field(const rc_field *f, rc_train *t, const char *val, char *err, size_t n)
{
    char *base = (char *)t + f->offset;
    char *end;
    errno = 0;
    switch (f->type) {
    case RC_F_INT: case RC_F_BOOL: {
        long v;
        if (f->type == RC_F_BOOL && (!strcmp(val, "true") || !strcmp(val, "false")))
            v = !strcmp(val, "true");
        else {
            v = strtol(val, &end, 10);
            if (*end || errno) goto bad;
        }
        if (v < f->min || v > f->max) goto range;
        *(int *)base = (int)v;
        return 0;
    }
    case RC_F_NUM: {
        double v = strtod(val, &end);
        if (*end || errno || !isfinite(v)) goto bad;
        if (v < f->min || v > f->max) goto range;
        *(double *)base = v;
        return 0;
    }
    case RC_F_U64: {
        if (val[0] == '-') goto bad;
        unsigned long long v = strtoull(val, &end, 10);
        if (*end || errno) goto bad;
        *(uint64_t *)base = v;
        return 0;
    }
    case RC_F_ENUM:
        for (int i = 0; f->enums[i]; i++)
            if (!strcmp(f->enums[i], val)) { *(int *)base = i; return 0; }
        {
            int k = snprintf(err, n, "--%s: '%s' is not one of", f->name, val);
            for (int i = 0; f->enums[i] && k > 0 && (size_t)k < n; i++)
                k += snprintf(err + k, n - (size_t)k, " %s", f->enums[i]);
        }
        return -1;
    case RC_F_INTLIST: {
        int *cnt = (int *)((char *)t + f->count_offset), c = 0;
        const char *p = val;
        while (*p) {
            long v = strtol(p, &end, 10);
            if (end == p || errno) goto bad;
            if (v < f->min || v > f->max) goto range;
            if (c >= f->max_count) { snprintf(err, n, "--%s: more than %d values", f->name, f->max_count); return -1; }
            ((int *)base)[c++] = (int)v;
            p = end;
            if (*p == ',') p++;
            else if (*p) goto bad;
        }
        *cnt = c;
        char m[256];
        if (rc_train_check(t, m, sizeof m) < 0) { snprintf(err, n, "--%s", m); return -1; }
        return 0;
    }
    }
bad:
    snprintf(err, n, "--%s: '%s' is not a valid value", f->name, val);
    return -1;
range: {
        char rng[96];
        rc_field_range_text(f, rng, sizeof rng);
        snprintf(err, n, "--%s: %s out of range %s", f->name, val, rng);
        return -1;
    }
}

int cli_parse_cells(const char *s, int **out, int *n, char *err, size_t errlen)
{
    int cap = 16, k = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v) { snprintf(err, errlen, "out of memory"); return -1; }
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long a = strtol(p, &end, 10), b;
        if (end == p || a < 0 || a > 1000000 || errno) goto bad;
        p = end;
        b = a;
        if (*p == '-') {
            p++;
            b = strtol(p, &end, 10);
            if (end == p || b < a || b > 1000000) goto bad;
            p = end;
        }
        for (long c = a; c <= b; c++) {
            if (k == cap) {
                int *nv = realloc(v, (size_t)(cap *= 2) * sizeof *nv);
                if (!nv) goto bad;
                v = nv;
            }
            v[k++] = (int)c;
        }
        if (*p == ',') p++;
        else if (*p) goto bad;
    }
    if (k == 0) goto bad;
    *out = v;
    *n = k;
    return 0;
bad:
    free(v);
    snprintf(err, errlen, "--cells '%s': expected a list like 0,2,5-7", s);
    return -1;
}

const rc_field *cli_train_flag(const char *flag)
{
    if (flag[0] != '-' || flag[1] != '-') return NULL;
    char key[64];
    dashes_to_underscores(flag + 2, key, sizeof key);
    if (!strcmp(key, "l1")) strcpy(key, "l1_activity");
    if (!strcmp(key, "patience")) strcpy(key, "early_patience");
    int nf;
    const rc_field *tf = rc_fields(RC_SECTION_TRAIN, RC_LAYER_CONV, &nf);
    for (int k = 0; k < nf; k++)
        if (!strcmp(tf[k].name, key)) return &tf[k];
    return NULL;
}

int cli_parse_param(const char *arg, rc_spec_override *ov, int *n, int max, char *err, size_t errlen)
{
    const char *eq = arg ? strchr(arg, '=') : NULL;
    if (!eq || eq == arg || !eq[1])
        return rc_errf(err, errlen, "--param '%s': expected NAME=VALUE (a parameter the spec declares "
                       "with params {...})", arg ? arg : "");
    if (*n >= max) return rc_errf(err, errlen, "--param: at most %d", max);
    /* argv strings are writable (C11 5.1.2.2.1) and live as long as the command: the name
     * is cut at '=' in place */
    char *name = (char *)arg;
    name[eq - arg] = 0;
    ov[*n].name = name;
    ov[*n].value = eq + 1;
    (*n)++;
    return 0;
}

int cli_run_flag(const char *a, const char *next, rc_train_opts *o, int **cells, int *n_cells,
                 char *err, size_t errlen)
{
    if (!strcmp(a, "--allow-other-recording")) {
        o->allow_other_recording = 1;
        return 1;
    }
    static const char *const valued[] = {"--backend", "--device", "--rate-key", "--threads", "--cells",
                                         "--mem-budget", NULL};
    int k = 0;
    while (valued[k] && strcmp(valued[k], a)) k++;
    if (!valued[k]) return 0;
    if (!next) return rc_errf(err, errlen, "%s needs a value", a);
    if (!strcmp(a, "--backend")) o->backend = next;
    else if (!strcmp(a, "--device")) o->device = next;
    else if (!strcmp(a, "--rate-key")) o->rate_key = next;
    else if (!strcmp(a, "--threads")) {
        char *end;
        long v = strtol(next, &end, 10);
        if (*end || end == next || v < 1 || v > 4096) return rc_errf(err, errlen, "%s '%s': expected 1..4096", a, next);
        o->threads = (int)v;
    } else if (!strcmp(a, "--cells")) {
        free(*cells);
        *cells = NULL;
        if (cli_parse_cells(next, cells, n_cells, err, errlen) < 0) return -1;
    } else {
        char *end;
        double mb = strtod(next, &end);
        if (*end || !(mb > 0) || mb > 1e9) return rc_errf(err, errlen, "--mem-budget '%s': expected MB > 0", next);
        o->mem_budget = (size_t)(mb * 1048576.0);
    }
    return 2;
}
