/* trial_models.c — load the model of each distinct parameter setting of a search (see
 * trial_models.h). Invariant: a trial's model is a pure function of (spec file, base overrides,
 * its parameter values), so every MPI rank loads the same models and computes the same
 * configuration hashes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "trial_models.h"

void cli_trial_models_free(cli_trial_models *m)
{
    for (int i = 0; i < m->n; i++) {
        free(m->models[i]);
        free(m->errors[i]);
    }
    free(m->models);
    free(m->errors);
    memset(m, 0, sizeof *m);
}

/* The first train field where a and b differ, or NULL. */
static const char *train_diff(const rc_train *a, const rc_train *b)
{
    int nf;
    const rc_field *f = rc_fields(RC_SECTION_TRAIN, 0, &nf);
    for (int i = 0; i < nf; i++) {
        const char *pa = (const char *)a + f[i].offset, *pb = (const char *)b + f[i].offset;
        size_t sz = f[i].type == RC_F_NUM ? sizeof(double) : f[i].type == RC_F_U64 ? sizeof(uint64_t) : sizeof(int);
        if (f[i].type == RC_F_INTLIST) {
            int na = *(const int *)((const char *)a + f[i].count_offset);
            if (na != *(const int *)((const char *)b + f[i].count_offset)) return f[i].name;
            sz = (size_t)na * sizeof(int);
        }
        if (memcmp(pa, pb, sz)) return f[i].name;
    }
    return NULL;
}

/* The parameter values of trial t as one comparable key. */
static void param_key(const rc_search *s, const rc_search_trial *t, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = 0;
    for (int d = 0; d < s->n_dims && len < n; d++) {
        if (!rc_search_dim_is_param(&s->dims[d])) continue;
        char v[RC_PARAM_STR_MAX + 16];
        rc_search_fmt_value(&s->dims[d], t->values[d], v, sizeof v);
        int w = snprintf(buf + len, n - len, "%s=%s;", s->dims[d].key, v);
        if (w < 0) break;
        len += (size_t)w;
    }
}

int cli_trial_models_load(const char *spec_path, const rc_train *spec_train, const rc_search *s,
                          const rc_spec_override *base, int n_base, rc_search_trial *t, int n, cli_trial_models *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    int any = 0;
    for (int d = 0; d < s->n_dims; d++) {
        if (!rc_search_dim_is_param(&s->dims[d])) continue;
        any = 1;
        for (int k = 0; k < n_base; k++)
            if (!strcmp(base[k].name, s->dims[d].key + strlen(RC_SEARCH_PARAM_PREFIX)))
                return rc_errf(err, errlen, "--param %s: '%s' is searched by %s (%s.params.%s)", base[k].name,
                               base[k].name, spec_path, s->dims[d].is_random ? "random" : "grid", base[k].name);
    }
    if (!any) return 0;
    int *first = malloc((size_t)n * sizeof *first);      /* trial whose load trial i shares */
    char (*keys)[1024] = malloc((size_t)n * sizeof *keys);
    out->models = calloc((size_t)n, sizeof *out->models);
    out->errors = calloc((size_t)n, sizeof *out->errors);
    if (!first || !keys || !out->models || !out->errors) {
        free(first);
        free(keys);
        cli_trial_models_free(out);
        return rc_errf(err, errlen, "out of memory");
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        param_key(s, &t[i], keys[i], sizeof keys[i]);
        first[i] = i;
        for (int j = 0; j < i; j++)
            if (!strcmp(keys[j], keys[i])) { first[i] = first[j]; break; }
        if (first[i] != i) {
            int m = first[i];
            t[i].model = t[m].model;
            t[i].model_error = t[m].model_error;
            continue;
        }
        rc_spec_override ov[2 * RC_SPEC_MAX_PARAMS];
        char vals[RC_MAX_SEARCH][RC_PARAM_STR_MAX + 16];
        int no = n_base < RC_SPEC_MAX_PARAMS ? n_base : RC_SPEC_MAX_PARAMS;
        memcpy(ov, base, (size_t)no * sizeof *ov);
        no += rc_search_trial_params(s, &t[i], ov + no, RC_MAX_SEARCH, vals);
        rc_ir *ir = malloc(sizeof *ir);
        if (!ir) { rc = rc_errf(err, errlen, "out of memory"); break; }
        char lerr[1024];
        const char *what;
        out->models[out->n] = NULL;
        if (rc_spec_load_params(spec_path, ov, no, ir, lerr, sizeof lerr) < 0) {
            free(ir);
            out->errors[out->n] = strdup(lerr);
            if (!out->errors[out->n]) { rc = rc_errf(err, errlen, "out of memory"); break; }
            t[i].model_error = out->errors[out->n];
        } else if ((what = train_diff(&ir->train, spec_train))) {
            /* the trial's settings are the spec's train section with the searched fields:
             * a parameter that also moved a train field would be silently dropped */
            free(ir);
            char m[1024];
            snprintf(m, sizeof m, "%s: trial %s: its parameters change the train section (%s); a "
                     "parameter shapes the model only: search train fields as train fields", spec_path,
                     t[i].name, what);
            out->errors[out->n] = strdup(m);
            if (!out->errors[out->n]) { rc = rc_errf(err, errlen, "out of memory"); break; }
            t[i].model_error = out->errors[out->n];
        } else {
            out->models[out->n] = ir;
            t[i].model = ir;
        }
        out->n++;
    }
    free(first);
    free(keys);
    if (rc < 0) cli_trial_models_free(out);
    return rc;
}
