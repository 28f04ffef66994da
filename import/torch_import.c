/* torch_import.c — torch-deep-retina checkpoint -> retinac spec text and parameters
 * (torch_import.h). Layout conventions that need no conversion: torch's conv weights
 * (Cout, Cin, K, K), Linear (N, C*H*W) flattened in (c, h, w) order and BatchNorm1d over
 * flattened C*H*W are retinac's layouts too (tests/make_fixtures.py ties them to PyTorch).
 */
#include "torch_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

/* Model classes read by name, and the eps of their batch norms (reference §1.1-1.7): the
 * newest classes use 1e-3 everywhere; AbsBNBNCNN and BNCNN2D left the final one at PyTorch's
 * default 1e-5. eps is not in the state dict, so it must come from here. */
static const struct { const char *name; double eps_hidden, eps_final; } classes[] = {
    {"BNCNN", 1e-3, 1e-3}, {"CNN", 1e-3, 1e-3}, {"LinearStackedBNCNN", 1e-3, 1e-3},
    {"VaryModel", 1e-3, 1e-3}, {"AbsBNBNCNN", 1e-3, 1e-5}, {"BNCNN2D", 1e-3, 1e-5},
    {"LN", 1e-3, 1e-3},
};

/* Shortest %g text that reads back as the same double (0.05, not 0.050000000000000003). */
static const char *num(double v, char *buf)
{
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, 32, "%.*g", p, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static int hyp_num(const rc_torch_model *M, const char *k, double dflt, double *out)
{
    const rc_pk *v = rc_pk_dict_get(M->hyps, k);
    if (!v || v->kind == RC_PK_NONE) { *out = dflt; return 0; }
    return rc_pk_num(v, out);
}

static int hyp_true(const rc_torch_model *M, const char *k)
{
    const rc_pk *v = rc_pk_dict_get(M->hyps, k);
    double x;
    return v && rc_pk_num(v, &x) == 0 && x != 0;
}

static const char *hyp_str(const rc_torch_model *M, const char *k)
{
    const rc_pk *v = rc_pk_dict_get(M->hyps, k);
    return v && v->kind == RC_PK_STR ? v->s : NULL;
}

/* Integers of a list/tuple value (n entries wanted; -1 if not exactly that). */
static int int_list(const rc_pk *v, int *out, size_t n)
{
    if (!v || (v->kind != RC_PK_LIST && v->kind != RC_PK_TUPLE) || v->n != n) return -1;
    for (size_t i = 0; i < n; i++) {
        double x;
        if (rc_pk_num(v->items[i], &x) < 0 || x != floor(x) || fabs(x) > 1e9) return -1;
        out[i] = (int)x;
    }
    return 0;
}

static rc_tm_group *group_for(rc_torch_model *M, const char *prefix, int *cap)
{
    for (int i = 0; i < M->n_groups; i++)
        if (!strcmp(M->g[i].prefix, prefix)) return &M->g[i];
    if (M->n_groups == *cap) {
        int nc = *cap ? 2 * *cap : 16;
        rc_tm_group *p = realloc(M->g, (size_t)nc * sizeof *p);
        if (!p) return NULL;
        M->g = p; *cap = nc;
    }
    rc_tm_group *g = &M->g[M->n_groups++];
    memset(g, 0, sizeof *g);
    snprintf(g->prefix, sizeof g->prefix, "%s", prefix);
    return g;
}

static const rc_pk *find_weight(const rc_tm_group *g, const char *leaf)
{
    for (int i = 0; i < g->n; i++)
        if (g->sub[i] < 0 && !strcmp(g->leaf[i], leaf)) return g->t[i];
    return NULL;
}

static int is_stacked(const rc_tm_group *g)
{
    for (int i = 0; i < g->n; i++) if (g->sub[i] >= 0) return 1;
    return 0;
}

static int is_noise(const rc_tm_group *g)
{
    for (int i = 0; i < g->n; i++) if (strcmp(g->leaf[i], "sigma")) return 0;
    return 1;
}

int rc_torch_model_read(const rc_torch_file *F, rc_torch_model *M, char *err, size_t errlen)
{
    memset(M, 0, sizeof *M);
    M->epoch = -1;
    const char *path = F->path;
    const rc_pk *root = F->root;
    if (!root || root->kind != RC_PK_DICT)
        return rc_errf(err, errlen, "%s: the saved object is not a dict (a checkpoint dict or a state dict)", path);
    if (rc_pk_dict_get(root, "pytorch-lightning_version") || rc_pk_dict_get(root, "hyper_parameters"))
        return rc_errf(err, errlen, "%s: a PyTorch Lightning checkpoint (openretina): its space-time core and "
                       "readout models are not in retinac yet, so it cannot be imported", path);
    M->sd = rc_pk_dict_get(root, "model_state_dict");
    if (!M->sd) {
        int all_tensors = root->n > 0;
        for (size_t i = 1; i < root->n; i += 2) if (root->items[i]->kind != RC_PK_TENSOR) all_tensors = 0;
        if (!all_tensors)
            return rc_errf(err, errlen, "%s: no 'model_state_dict' key, and the object is not a state dict "
                           "(torch-deep-retina's io.save_checkpoint writes one)", path);
        M->sd = root;
    }
    if (M->sd->kind != RC_PK_DICT) return rc_errf(err, errlen, "%s: model_state_dict: not a dict", path);
    M->hyps = rc_pk_dict_get(root, "hyps");
    if (!M->hyps) M->hyps = rc_pk_dict_get(root, "model_hyps");
    if (!M->hyps && M->sd != root) M->hyps = root;     /* save_checkpoint copies hyps to the top */
    if (M->hyps && M->hyps->kind != RC_PK_DICT) return rc_errf(err, errlen, "%s: hyps: not a dict", path);
    const rc_pk *mt = rc_pk_dict_get(root, "model_type");
    if (!mt) mt = rc_pk_dict_get(M->hyps, "model_type");
    if (mt && mt->kind == RC_PK_STR) snprintf(M->model_type, sizeof M->model_type, "%s", mt->s);
    const rc_pk *ep = rc_pk_dict_get(root, "epoch");
    if (ep && ep->kind == RC_PK_INT) M->epoch = ep->i;

    const rc_pk *ns = rc_pk_dict_get(root, "norm_stats");
    if (ns && ns->kind != RC_PK_NONE) {
        double m, s;
        int ok = 0;
        if (ns->kind == RC_PK_DICT)
            ok = !rc_pk_num(rc_pk_dict_get(ns, "mean"), &m) && !rc_pk_num(rc_pk_dict_get(ns, "std"), &s);
        else if ((ns->kind == RC_PK_LIST || ns->kind == RC_PK_TUPLE) && ns->n == 2)
            ok = !rc_pk_num(ns->items[0], &m) && !rc_pk_num(ns->items[1], &s);
        if (!ok || !isfinite(m) || !isfinite(s) || s <= 0)
            return rc_errf(err, errlen, "%s: norm_stats: expected {mean, std} with a finite mean and a positive std", path);
        M->has_norm = 1;
        M->norm_mean = m;
        M->norm_std = s;
    }

    /* group the tensors by module, in the state dict's order (the modules' order) */
    int cap = 0;
    for (size_t i = 0; i + 1 < M->sd->n; i += 2) {
        const rc_pk *k = M->sd->items[i], *v = M->sd->items[i + 1];
        if (k->kind != RC_PK_STR) return rc_errf(err, errlen, "%s: model_state_dict: a key that is not a string", path);
        if (k->len >= sizeof M->g[0].key[0]) return rc_errf(err, errlen, "%s: model_state_dict: key '%.60s...' too long", path, k->s);
        if (v->kind != RC_PK_TENSOR) {
            char d[120];
            rc_pk_describe(v, d, sizeof d);
            return rc_errf(err, errlen, "%s: model_state_dict: %s: %s where a tensor is expected", path, k->s, d);
        }
        const char *dot = strrchr(k->s, '.');
        const char *leaf = dot ? dot + 1 : k->s;
        if (!strcmp(leaf, "num_batches_tracked")) continue;
        char prefix[256];
        size_t pl = dot ? (size_t)(dot - k->s) : 0;
        memcpy(prefix, k->s, pl);
        prefix[pl] = 0;
        int sub = -1;
        char *cv = strstr(prefix, ".convs.");
        if (cv) {
            char *end;
            long j = strtol(cv + 7, &end, 10);
            if (end == cv + 7 || *end || j < 0 || j > 1000)
                return rc_errf(err, errlen, "%s: model_state_dict: %s: not a sub-conv of a stacked conv", path, k->s);
            sub = (int)j;
            *cv = 0;
        }
        if (strlen(prefix) >= sizeof M->g[0].prefix || strlen(leaf) >= sizeof M->g[0].leaf[0])
            return rc_errf(err, errlen, "%s: model_state_dict: %s: name too long", path, k->s);
        rc_tm_group *g = group_for(M, prefix, &cap);
        if (!g) return rc_errf(err, errlen, "%s: out of memory", path);
        if (g->n == RC_TM_MAX_ENTRIES)
            return rc_errf(err, errlen, "%s: model_state_dict: module %s has more than %d tensors", path, prefix, RC_TM_MAX_ENTRIES);
        snprintf(g->leaf[g->n], sizeof g->leaf[0], "%s", leaf);
        snprintf(g->key[g->n], sizeof g->key[0], "%s", k->s);
        g->sub[g->n] = sub;
        g->t[g->n++] = v;
    }

    /* cells: rows of the last 2-D or 4-D weight (the read-out) */
    for (int i = M->n_groups - 1; i >= 0 && !M->cells; i--) {
        const rc_pk *w = find_weight(&M->g[i], "weight");
        if (w && (w->ndim == 2 || w->ndim == 4) && !is_stacked(&M->g[i])) M->cells = (int)w->size[0];
    }
    if (M->cells <= 0 || M->cells > 100000)
        return rc_errf(err, errlen, "%s: model_state_dict: no read-out weight (a 2-D Linear or 4-D Conv2d weight) found", path);
    M->cell_ids = malloc((size_t)M->cells * sizeof *M->cell_ids);
    if (!M->cell_ids) return rc_errf(err, errlen, "%s: out of memory", path);
    const rc_pk *cl = rc_pk_dict_get(M->hyps, "cells");
    if (cl && (cl->kind == RC_PK_LIST || cl->kind == RC_PK_TUPLE)) {
        if (int_list(cl, M->cell_ids, (size_t)M->cells) < 0)
            return rc_errf(err, errlen, "%s: hyps: cells: expected %d cell indices (the read-out has %d rows)", path, M->cells, M->cells);
        for (int c = 0; c < M->cells; c++)
            if (M->cell_ids[c] < 0) return rc_errf(err, errlen, "%s: hyps: cells: negative index %d", path, M->cell_ids[c]);
    } else {
        for (int c = 0; c < M->cells; c++) M->cell_ids[c] = c;
    }
    const rc_pk *ce = rc_pk_dict_get(M->hyps, "centers");
    if (ce && ce->kind != RC_PK_NONE) {
        if ((ce->kind != RC_PK_LIST && ce->kind != RC_PK_TUPLE) || ce->n != (size_t)M->cells)
            return rc_errf(err, errlen, "%s: hyps: centers: expected %d (row, col) pairs", path, M->cells);
        M->centers = malloc((size_t)M->cells * 2 * sizeof *M->centers);
        if (!M->centers) return rc_errf(err, errlen, "%s: out of memory", path);
        for (int c = 0; c < M->cells; c++)
            if (int_list(ce->items[c], M->centers + 2 * c, 2) < 0)
                return rc_errf(err, errlen, "%s: hyps: centers[%d]: not a (row, col) pair of integers", path, c);
    }
    return 0;
}

void rc_torch_model_free(rc_torch_model *M)
{
    free(M->g);
    free(M->cell_ids);
    free(M->centers);
    memset(M, 0, sizeof *M);
}

static void shape_text(const rc_pk *t, char *out, size_t n)
{
    rc_pk_shape_text(t->size, t->ndim, out, n);
}

/* The distinct sub-conv indices of a stacked conv's group, ascending (the Dropout modules
 * between sub-convs leave gaps); returns their count. */
static int sub_order(const rc_tm_group *g, int subs[RC_TM_MAX_ENTRIES])
{
    int ns = 0;
    for (int i = 0; i < g->n; i++) {
        int seen = 0;
        for (int j = 0; j < ns; j++) seen |= subs[j] == g->sub[i];
        if (g->sub[i] >= 0 && !seen) subs[ns++] = g->sub[i];
    }
    for (int a = 1; a < ns; a++)                      /* insertion sort */
        for (int b = a; b > 0 && subs[b] < subs[b - 1]; b--) { int t = subs[b]; subs[b] = subs[b - 1]; subs[b - 1] = t; }
    return ns;
}

/* A hidden conv (plain or stacked) into spec text; updates the running shape. */
static int spec_conv(const rc_torch_file *F, const rc_torch_model *M, const rc_tm_group *g, FILE *o,
                     int *c, int *h, int *w, char *err, size_t errlen)
{
    double drop;
    if (hyp_num(M, "drop_p", 0, &drop) < 0 || drop < 0 || drop >= 1)
        return rc_errf(err, errlen, "%s: hyps: drop_p: expected a probability in [0, 1)", F->path);
    if (!is_stacked(g)) {
        const rc_pk *wt = find_weight(g, "weight");
        if (!wt || wt->ndim != 4 || wt->size[2] != wt->size[3])
            return rc_errf(err, errlen, "%s: %s.weight: expected a square 4-D conv weight", F->path, g->prefix);
        if (wt->size[1] != *c)
            return rc_errf(err, errlen, "%s: %s.weight: %lld input channels, the layer below gives %d",
                           F->path, g->prefix, (long long)wt->size[1], *c);
        int K = (int)wt->size[2];
        fprintf(o, "  conv { channels = %lld, kernel = %d, bias = %s },\n", (long long)wt->size[0], K,
                find_weight(g, "bias") ? "true" : "false");
        *c = (int)wt->size[0]; *h -= K - 1; *w -= K - 1;
        return 0;
    }
    /* stacked: sub-convs ordered by index (Dropout modules between them hold no tensors) */
    for (int i = 0; i < g->n; i++)
        if (g->sub[i] < 0) return rc_errf(err, errlen, "%s: %s: a stacked conv with a tensor of its own", F->path, g->key[i]);
    int subs[RC_TM_MAX_ENTRIES], ns = sub_order(g, subs);
    int K = 1, stack = 0, inner = 0, cout = 0, bias = 0;
    for (int j = 0; j < ns; j++) {
        const rc_pk *wt = NULL;
        int has_b = 0;
        for (int i = 0; i < g->n; i++)
            if (g->sub[i] == subs[j]) {
                if (!strcmp(g->leaf[i], "weight")) wt = g->t[i];
                else if (!strcmp(g->leaf[i], "bias")) has_b = 1;
                else return rc_errf(err, errlen, "%s: %s: a stacked conv holds only conv weights and biases "
                                    "(a batch norm between sub-convs is not read)", F->path, g->key[i]);
            }
        if (!wt || wt->ndim != 4 || wt->size[2] != wt->size[3])
            return rc_errf(err, errlen, "%s: %s.convs.%d.weight: expected a square 4-D conv weight", F->path, g->prefix, subs[j]);
        if (has_b && j != ns - 1)
            return rc_errf(err, errlen, "%s: %s.convs.%d.bias: a bias before the last sub-conv (conv_bias=True) "
                           "is not representable", F->path, g->prefix, subs[j]);
        if (j == 0) {
            stack = (int)wt->size[2];
            if (wt->size[1] != *c)
                return rc_errf(err, errlen, "%s: %s.convs.%d.weight: %lld input channels, the layer below gives %d",
                               F->path, g->prefix, subs[j], (long long)wt->size[1], *c);
            inner = (int)wt->size[0];
        }
        K += (int)wt->size[2] - 1;
        cout = (int)wt->size[0];
        bias = has_b;
    }
    fprintf(o, "  conv { channels = %d, kernel = %d, bias = %s, stack = %d", cout, K, bias ? "true" : "false", stack);
    if (inner != cout) fprintf(o, ", stack_channels = %d", inner);
    char nb[32];
    if (drop > 0) fprintf(o, ", stack_dropout = %s", num(drop, nb));
    fprintf(o, " },\n");
    *c = cout; *h -= K - 1; *w -= K - 1;
    return 0;
}

static int spec_bn(const rc_torch_file *F, const rc_tm_group *g, FILE *o, int c, int h, int w,
                   double eps, double mom, char *err, size_t errlen)
{
    const rc_pk *rm = find_weight(g, "running_mean");
    if (!rm || rm->ndim != 1) return rc_errf(err, errlen, "%s: %s: a batch norm without a 1-D running_mean", F->path, g->prefix);
    const char *over;
    if (rm->size[0] == (int64_t)c * h * w) over = "unit";
    else if (rm->size[0] == c) over = "channel";
    else return rc_errf(err, errlen, "%s: %s.running_mean: %lld entries for a %dx%dx%d input (neither per unit nor "
                        "per channel; is hyps img_shape right?)", F->path, g->prefix, (long long)rm->size[0], c, h, w);
    int abs_ = find_weight(g, "scale") != NULL;
    char b1[32], b2[32];
    fprintf(o, "  batchnorm { over = \"%s\", abs = %s, eps = %s, momentum = %s },\n", over,
            abs_ ? "true" : "false", num(eps, b1), num(mom, b2));
    return 0;
}

int rc_torch_spec(const rc_torch_file *F, const rc_torch_model *M, char **text, char *err, size_t errlen)
{
    *text = NULL;
    const char *path = F->path;
    int ci = -1;
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (!strcmp(classes[i].name, M->model_type)) ci = (int)i;
    if (ci < 0)
        return rc_errf(err, errlen, "%s: model_type '%s' is not a class retinac imports (BNCNN, CNN, "
                       "LinearStackedBNCNN, VaryModel, AbsBNBNCNN, BNCNN2D, LN); give the architecture with --spec",
                       path, M->model_type[0] ? M->model_type : "(none)");
    static const char *const refused[] = {"recurrent", "kinetic", "retinotopic", "one2one", "finalstack"};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (hyp_true(M, refused[i]))
            return rc_errf(err, errlen, "%s: hyps: %s is set: that variant is not importable", path, refused[i]);
    const rc_pk *pads = rc_pk_dict_get(M->hyps, "paddings");
    if (pads && pads->kind != RC_PK_NONE) {
        int bad = pads->kind != RC_PK_LIST && pads->kind != RC_PK_TUPLE;
        for (size_t i = 0; !bad && i < pads->n; i++) {
            double x;
            bad = rc_pk_num(pads->items[i], &x) < 0 || x != 0;
        }
        if (bad) return rc_errf(err, errlen, "%s: hyps: paddings: padded convs are not importable", path);
    }
    int img[3] = {40, 50, 50};
    const rc_pk *is = rc_pk_dict_get(M->hyps, "img_shape");
    if (is && int_list(is, img, 3) < 0)
        return rc_errf(err, errlen, "%s: hyps: img_shape: expected (history, height, width)", path);
    if (img[0] < 1 || img[1] < 1 || img[2] < 1 || img[1] > 4096 || img[2] > 4096)
        return rc_errf(err, errlen, "%s: hyps: img_shape: (%d, %d, %d) out of range", path, img[0], img[1], img[2]);
    double noise, mom, mom_old;
    if (hyp_num(M, "noise", 0.05, &noise) < 0 || noise < 0)
        return rc_errf(err, errlen, "%s: hyps: noise: expected a standard deviation >= 0", path);
    if (hyp_num(M, "bnorm_momentum", 0.01, &mom_old) < 0 || hyp_num(M, "bn_moment", mom_old, &mom) < 0 || mom <= 0 || mom > 1)
        return rc_errf(err, errlen, "%s: hyps: bn_moment: expected a momentum in (0, 1]", path);
    const char *act = hyp_str(M, "activ_fxn"), *act_spec = "relu";
    if (act) {
        static const struct { const char *torch, *spec; } acts[] = {
            {"ReLU", "relu"}, {"Softplus", "softplus"}, {"Tanh", "tanh"}, {"Sigmoid", "sigmoid"}};
        act_spec = NULL;
        for (size_t i = 0; i < sizeof acts / sizeof *acts; i++) if (!strcmp(acts[i].torch, act)) act_spec = acts[i].spec;
        if (!act_spec) return rc_errf(err, errlen, "%s: hyps: activ_fxn: '%.40s' has no retinac layer (ReLU, Softplus, Tanh, Sigmoid)", path, act);
    }
    const rc_pk *spv = rc_pk_dict_get(M->hyps, "softplus");
    int softplus = !spv || spv->kind == RC_PK_NONE || hyp_true(M, "softplus");

    /* the read-out: the last group with a 2-D or 4-D weight */
    int ro = -1;
    for (int i = M->n_groups - 1; i >= 0 && ro < 0; i--) {
        const rc_pk *w = find_weight(&M->g[i], "weight");
        if (is_stacked(&M->g[i])) return rc_errf(err, errlen, "%s: %s: a stacked conv as the read-out (finalstack) is not importable", path, M->g[i].prefix);
        if (w && (w->ndim == 2 || w->ndim == 4)) ro = i;
    }

    char *buf = NULL;
    size_t blen = 0;
    FILE *o = open_memstream(&buf, &blen);
    if (!o) return rc_errf(err, errlen, "%s: out of memory", path);
    char lower[64];
    size_t ln = 0;
    for (const char *s = M->model_type; *s && ln + 1 < sizeof lower; s++)
        lower[ln++] = (char)((*s >= 'A' && *s <= 'Z') ? *s - 'A' + 'a' : *s);
    lower[ln] = 0;
    fprintf(o, "-- Imported by `retinac import` from a torch-deep-retina checkpoint (model_type %s).\n"
               "-- Architecture from the state dict's tensors in order; frame size, noise, activation and\n"
               "-- output from its hyps; batch-norm eps %g (hidden) / %g (final) from the class.\n"
               "return model \"tdr_%s\" {\n  input = { history = %d, height = %d, width = %d },\n\n",
            M->model_type, classes[ci].eps_hidden, classes[ci].eps_final, lower, img[0], img[1], img[2]);
    int c = img[0], h = img[1], w = img[2], rc = -1;
    for (int i = 0; i < M->n_groups; i++) {
        const rc_tm_group *g = &M->g[i];
        if (is_noise(g)) continue;
        char sh[64];
        if (i < ro) {
            const rc_pk *wt = find_weight(g, "weight");
            if (!is_stacked(g) && !(wt && wt->ndim == 4)) {
                rc_errf(err, errlen, "%s: %s: expected a conv before the read-out, found tensors %s%s%s", path, g->prefix,
                        g->leaf[0], g->n > 1 ? ", " : "", g->n > 1 ? g->leaf[1] : "");
                goto out;
            }
            if (spec_conv(F, M, g, o, &c, &h, &w, err, errlen) < 0) goto out;
            if (h < 1 || w < 1) { rc_errf(err, errlen, "%s: %s: the convs shrink the %dx%d frame below 1x1 (hyps img_shape)", path, g->prefix, img[1], img[2]); goto out; }
            int nx = i + 1;
            while (nx < M->n_groups && is_noise(&M->g[nx])) nx++;
            if (nx < ro && find_weight(&M->g[nx], "running_mean")) {
                if (spec_bn(F, &M->g[nx], o, c, h, w, classes[ci].eps_hidden, mom, err, errlen) < 0) goto out;
                i = nx;
            }
            if (noise > 0) fprintf(o, "  noise { std = %s },\n", num(noise, sh));
            fprintf(o, "  %s {},\n\n", act_spec);
        } else if (i == ro) {
            const rc_pk *wt = find_weight(g, "weight");
            int bias = find_weight(g, "bias") != NULL;
            shape_text(wt, sh, sizeof sh);
            if (wt->ndim == 2) {
                if (wt->size[1] != (int64_t)c * h * w) {
                    rc_errf(err, errlen, "%s: %s.weight: %s, but the layer below gives %d = %dx%dx%d inputs (hyps img_shape %d,%d,%d)",
                            path, g->prefix, sh, c * h * w, c, h, w, img[0], img[1], img[2]);
                    goto out;
                }
                fprintf(o, "  dense { bias = %s },                -- one unit per cell\n", bias ? "true" : "false");
            } else {
                if (wt->size[1] != c || wt->size[2] != wt->size[3] || wt->size[2] > h || wt->size[2] > w) {
                    rc_errf(err, errlen, "%s: %s.weight: %s does not fit the %dx%dx%d layer below (hyps img_shape %d,%d,%d)",
                            path, g->prefix, sh, c, h, w, img[0], img[1], img[2]);
                    goto out;
                }
                fprintf(o, "  -- convgc: GrabUnits, its reference quirk included (every cell's row and column from the\n"
                           "  -- reference's formula, Python's negative indexing too)\n"
                           "  gcconv { kernel = %lld, bias = %s, position = \"reference\" },\n", (long long)wt->size[2], bias ? "true" : "false");
            }
            c = M->cells; h = w = 1;
        } else {
            if (!find_weight(g, "running_mean")) {
                rc_errf(err, errlen, "%s: %s: after the read-out only a batch norm is expected, found %s", path, g->prefix, g->leaf[0]);
                goto out;
            }
            if (spec_bn(F, g, o, c, h, w, classes[ci].eps_final, mom, err, errlen) < 0) goto out;
        }
    }
    if (ro < 0) { rc_errf(err, errlen, "%s: no read-out layer", path); goto out; }
    fprintf(o, "  %s\n", softplus ? "softplus {}," : "exponential { train_off = true },   -- softplus = False");
    if (hyp_true(M, "inference_exp")) fprintf(o, "  exponential { train_off = true },   -- inference_exp = True\n");
    /* training settings of the reference, for fine-tuning (L1 summed over the batch, as there) */
    double lr, l2, l1, bs, ne;
    char nb[32];
    fprintf(o, "\n  train = { loss = \"poisson\", l1_mode = \"sum\"");
    if (!hyp_num(M, "lr", 0, &lr) && lr > 0 && lr < 10) fprintf(o, ", lr = %s", num(lr, nb));
    if (!hyp_num(M, "l2", -1, &l2) && l2 >= 0 && l2 < 10) fprintf(o, ", l2 = %s", num(l2, nb));
    if (!hyp_num(M, "l1", -1, &l1) && l1 >= 0 && l1 < 10) fprintf(o, ", l1_activity = %s", num(l1, nb));
    if (!hyp_num(M, "batch_size", 0, &bs) && bs >= 1 && bs <= 65536 && bs == floor(bs)) fprintf(o, ", batch = %d", (int)bs);
    if (!hyp_num(M, "n_epochs", 0, &ne) && ne >= 1 && ne <= 100000 && ne == floor(ne)) fprintf(o, ", epochs = %d", (int)ne);
    fprintf(o, " },\n}\n");
    rc = 0;
out:
    if (fclose(o) != 0 && rc == 0) rc = rc_errf(err, errlen, "%s: out of memory", path);
    if (rc < 0) free(buf);
    else *text = buf;
    return rc;
}

/* -------------------------------------------------------------------- parameters */

static int copy_tensor(const rc_torch_file *F, const rc_pk *t, const char *key, const rc_param *p,
                       float *dst, char *err, size_t errlen)
{
    char sh[64];
    shape_text(t, sh, sizeof sh);
    int same = t->numel == p->count;
    if (same && t->ndim == p->rank)
        for (int d = 0; d < p->rank; d++) same &= t->size[d] == p->dims[d];
    if (!same) {
        char want[64];
        int64_t dims[6];
        for (int d = 0; d < p->rank; d++) dims[d] = p->dims[d];
        rc_pk_shape_text(dims, p->rank, want, sizeof want);
        return rc_errf(err, errlen, "%s: %s: shape %s, but %s is %s (the architecture does not fit)", F->path, key, sh, p->name, want);
    }
    float *v;
    if (rc_torch_tensor_f32(F, t, key, &v, err, errlen) < 0) return -1;
    for (int64_t i = 0; i < t->numel; i++)
        if (!isfinite(v[i])) {
            free(v);
            return rc_errf(err, errlen, "%s: %s: element %lld is not finite", F->path, key, (long long)i);
        }
    memcpy(dst, v, (size_t)t->numel * sizeof *v);
    free(v);
    return 0;
}

static void map_line(char **map, size_t *mlen, const char *key, const char *name)
{
    if (!map) return;
    size_t add = strlen(key) + strlen(name) + 6;
    char *p = realloc(*map, *mlen + add);
    if (!p) return;
    *map = p;
    *mlen += (size_t)snprintf(p + *mlen, add, "%s -> %s\n", key, name);
}

int rc_torch_fill(const rc_torch_file *F, const rc_torch_model *M, const rc_ir *ir, float *params,
                  float *state, char **map, char *err, size_t errlen)
{
    size_t mlen = 0;
    if (map) { *map = calloc(1, 1); if (!*map) return rc_errf(err, errlen, "out of memory"); }
    int gi = 0;
    for (int li = 0; li < ir->n_layers; li++) {
        const rc_layer *L = &ir->layers[li];
        if (!L->param_count && !L->state_count) continue;
        const char *kn = rc_layer_kind_name(L->kind);
        while (gi < M->n_groups && is_noise(&M->g[gi])) gi++;
        if (gi == M->n_groups)
            return rc_errf(err, errlen, "%s: model_state_dict: no tensors left for layer %d (%s)", F->path, li + 1, kn);
        const rc_tm_group *g = &M->g[gi++];
        if (L->kind != RC_LAYER_CONV && L->kind != RC_LAYER_BATCHNORM && L->kind != RC_LAYER_DENSE && L->kind != RC_LAYER_GCCONV)
            return rc_errf(err, errlen, "%s: layer %d (%s): has parameters, and an import fills only conv, batchnorm, "
                           "dense and gcconv layers", F->path, li + 1, kn);
        int used[RC_TM_MAX_ENTRIES] = {0};
        /* sub-conv order for stacked convs */
        int subs[RC_TM_MAX_ENTRIES], ns = sub_order(g, subs);
        if (L->kind == RC_LAYER_CONV && (L->stack ? ns != L->n_sub : ns != 0))
            return rc_errf(err, errlen, "%s: %s: %d sub-convs, but layer %d (conv) has %d", F->path, g->prefix, ns, li + 1,
                           L->stack ? L->n_sub : 0);
        if (L->kind == RC_LAYER_BATCHNORM && (find_weight(g, "scale") != NULL) != (L->abs_scale != 0))
            return rc_errf(err, errlen, "%s: %s: %s batch norm, but layer %d (batchnorm) has abs = %s", F->path, g->prefix,
                           find_weight(g, "scale") ? "an AbsBatchNorm (|scale|)" : "a plain", li + 1, L->abs_scale ? "true" : "false");
        for (int pass = 0; pass < 2; pass++) {
            int first = pass ? L->state_first : L->param_first, count = pass ? L->state_count : L->param_count;
            for (int k = 0; k < count; k++) {
                const rc_param *p = pass ? &ir->state[first + k] : &ir->params[first + k];
                const char *suf = strchr(p->name, '.');
                suf = suf ? strchr(suf + 1, '.') : NULL;
                if (!suf) return rc_errf(err, errlen, "%s: parameter %s: unexpected name", F->path, p->name);
                suf++;
                int sub = -1;
                const char *leaf = suf;
                if (!strncmp(suf, "sub", 3)) {
                    int j = atoi(suf + 3);
                    if (j < 0 || j >= ns) return rc_errf(err, errlen, "%s: %s: no sub-conv %d", F->path, g->prefix, j);
                    sub = subs[j];
                    leaf = strchr(suf, '.') ? strchr(suf, '.') + 1 : suf;
                } else if (L->kind == RC_LAYER_CONV && L->stack && !strcmp(suf, "bias")) {
                    sub = subs[ns - 1];          /* the stack's bias is its last sub-conv's */
                }
                /* torch spelling: BatchNorm weight/bias or AbsBatchNorm scale/shift */
                const char *alt = !strcmp(leaf, "scale") ? "weight" : !strcmp(leaf, "shift") ? "bias" : leaf;
                int hit = -1;
                for (int i = 0; i < g->n && hit < 0; i++)
                    if (g->sub[i] == sub && (!strcmp(g->leaf[i], leaf) || !strcmp(g->leaf[i], alt))) hit = i;
                if (hit < 0)
                    return rc_errf(err, errlen, "%s: model_state_dict: module %s has no %s%s (for %s); the state dict "
                                   "is missing a key, or the architecture differs", F->path, g->prefix, sub >= 0 ? "sub-conv " : "",
                                   leaf, p->name);
                if (copy_tensor(F, g->t[hit], g->key[hit], p, (pass ? state : params) + p->offset, err, errlen) < 0) return -1;
                used[hit] = 1;
                map_line(map, &mlen, g->key[hit], p->name);
            }
        }
        for (int i = 0; i < g->n; i++)
            if (!used[i] && strcmp(g->leaf[i], "sigma"))
                return rc_errf(err, errlen, "%s: model_state_dict: %s is not used by layer %d (%s): the architecture differs",
                               F->path, g->key[i], li + 1, kn);
    }
    for (; gi < M->n_groups; gi++)
        if (!is_noise(&M->g[gi]))
            return rc_errf(err, errlen, "%s: model_state_dict: %s: no layer of the model takes it (the architecture differs)",
                           F->path, M->g[gi].key[0]);
    return 0;
}
