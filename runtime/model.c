/* model.c — parameter init, gcconv readout positions, stacked-conv collapse, rc_model buffers.
 *
 * Init follows PyTorch's defaults through the init_bound / init_value that rc_ir_infer fills in
 * each rc_param; the uniform draws come from rc_rng (counter-based), so init is reproducible
 * across machines and thread counts. See model.h for the position rules (including the
 * torch-deep-retina GrabUnits quirk) and the collapse algebra.
 */
#include "errbuf.h"
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Seed of the init draws: distinct from the training-noise seeds derived from the same
 * user seed (those use the seed itself with layer streams). */
static uint64_t init_seed(uint64_t seed) { return rc_rng_mix(seed ^ 0x696e69745f726331ull); }

int rc_params_init(const rc_ir *ir, uint64_t seed, float *params, float *state)
{
    uint64_t s = init_seed(seed);
    for (int p = 0; p < ir->n_params; p++) {
        const rc_param *v = &ir->params[p];
        float *dst = params + v->offset;
        if (v->init_bound >= 0) {
            double b = v->init_bound;
            for (int64_t k = 0; k < v->count; k++) {
                double u = rc_rng_uniform(s, (uint64_t)p, (uint64_t)k);   /* (0,1) */
                dst[k] = (float)(-b + 2.0 * b * u);
            }
        } else {
            for (int64_t k = 0; k < v->count; k++) dst[k] = (float)v->init_value;
        }
    }
    if (state) {
        for (int p = 0; p < ir->n_state; p++) {
            const rc_param *v = &ir->state[p];
            for (int64_t k = 0; k < v->count; k++) state[v->offset + k] = (float)v->init_value;
        }
    }
    return 0;
}

int rc_gc_layer(const rc_ir *ir)
{
    for (int i = 0; i < ir->n_layers; i++)
        if (ir->layers[i].readout_h > 0) return i;   /* gcconv, or a defined layer with a cellpick */
    return -1;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

int rc_gc_positions(const rc_ir *ir, const int *centers, int *cell_pos, char *err, size_t errlen)
{
    int g = rc_gc_layer(ir);
    if (g < 0) {
        rc_errf(err, errlen, "%s: no gcconv layer: no readout positions to compute", ir->name);
        return -1;
    }
    const rc_layer *L = &ir->layers[g];
    /* the readout map: a gcconv's conv output (K x K kernel: Ho = in - K + 1), or a defined
     * layer's cellpick input; the layer itself trims (in - Ho) / 2 like a K x K valid conv */
    int Ho = L->readout_h, Wo = L->readout_w, Ky = L->in.h - Ho + 1, Kx = L->in.w - Wo + 1;
    if (Ho < 1 || Wo < 1 || Ky < 1 || Kx < 1) {
        rc_errf(err, errlen, "%s: layer %d (%s): readout map %dx%d does not fit its input %dx%d", ir->name, g + 1,
                L->kind == RC_LAYER_GCCONV ? "gcconv" : L->def_kind, Ho, Wo, L->in.h, L->in.w);
        return -1;
    }
    switch (L->position) {
    case RC_POS_CENTER:
        for (int n = 0; n < ir->cells; n++) { cell_pos[2 * n] = Ho / 2; cell_pos[2 * n + 1] = Wo / 2; }
        return 0;
    case RC_POS_DATA: {
        if (!centers) {
            rc_errf(err, errlen, "%s: layer %d (gcconv): position: \"data\" needs the cells' "
                    "receptive-field centers, and the data gave none (training estimates them from "
                    "spike-triggered averages; or use position \"center\" or \"reference\")", ir->name, g + 1);
            return -1;
        }
        /* the map pixel whose receptive field is centred on the cell's centre: every valid conv
         * before (built-in or defined) trims (k - 1) / 2 from each side; counted from the shapes,
         * so a defined layer's trim is its own (in - out) / 2, per axis */
        int half[2] = {(Ky - 1) / 2, (Kx - 1) / 2};
        for (int i = 0; i < g; i++) {
            half[0] += (ir->layers[i].in.h - ir->layers[i].out.h) / 2;
            half[1] += (ir->layers[i].in.w - ir->layers[i].out.w) / 2;
        }
        for (int n = 0; n < ir->cells; n++) {
            cell_pos[2 * n] = clampi(centers[2 * n] - half[0], 0, Ho - 1);
            cell_pos[2 * n + 1] = clampi(centers[2 * n + 1] - half[1], 0, Wo - 1);
        }
        return 0;
    }
    case RC_POS_REFERENCE: {
        /* GrabUnits: half = (k0-1) + (k1-1) + (k_gc//2 - 1) + 1, generalized to any number of
         * convs before the gcconv. */
        int halfs[2] = {Ky / 2 - 1 + 1, Kx / 2 - 1 + 1};
        for (int i = 0; i < g; i++) {   /* k - 1 per conv before: its in - out */
            halfs[0] += ir->layers[i].in.h - ir->layers[i].out.h;
            halfs[1] += ir->layers[i].in.w - ir->layers[i].out.w;
        }
        int dims[2] = { ir->in.h, ir->in.w }, map[2] = { Ho, Wo };
        for (int n = 0; n < ir->cells; n++) {
            for (int a = 0; a < 2; a++) {
                int half = halfs[a];
                int c = centers ? centers[2 * n + a] : dims[a] / 2;
                int r = c - half;
                if (r < 0) r = 0;
                int hi = dims[a] - 2 * (half - 1);
                if (r > hi) r = hi;
                if (r < 0) r += map[a];          /* Python negative indexing */
                cell_pos[2 * n + a] = clampi(r, 0, map[a] - 1); /* torch would raise instead */
            }
        }
        return 0;
    }
    }
    rc_errf(err, errlen, "%s: layer %d (gcconv): position: unknown value %d", ir->name, g + 1,
            (int)L->position);
    return -1;
}

void rc_stack_filter(const float *base, int Q, int R, int K1, const float *stack, int S, int K2,
                     float *out)
{
    int K = K1 + K2 - 1;
    /* out[s, r, a+i, c+j] = sum_q stack[s,q,a,c] * base[q,r,i,j]; accumulate in double */
    for (int s = 0; s < S; s++)
        for (int r = 0; r < R; r++)
            for (int y = 0; y < K; y++)
                for (int x = 0; x < K; x++) {
                    double acc = 0;
                    for (int q = 0; q < Q; q++)
                        for (int a = 0; a < K2; a++) {
                            int i = y - a;
                            if (i < 0 || i >= K1) continue;
                            for (int c = 0; c < K2; c++) {
                                int j = x - c;
                                if (j < 0 || j >= K1) continue;
                                acc += (double)stack[((s * Q + q) * K2 + a) * K2 + c] *
                                       (double)base[((q * R + r) * K1 + i) * K1 + j];
                            }
                        }
                    out[((s * R + r) * K + y) * K + x] = (float)acc;
                }
}

int rc_stack_collapse(const rc_ir *ir, int layer, const float *params, float *weight,
                      char *err, size_t errlen)
{
    if (layer < 0 || layer >= ir->n_layers || ir->layers[layer].kind != RC_LAYER_CONV ||
        ir->layers[layer].stack <= 0) {
        rc_errf(err, errlen, "%s: layer %d: not a stacked conv, nothing to collapse", ir->name,
                layer + 1);
        return -1;
    }
    const rc_layer *L = &ir->layers[layer];
    const float *w[RC_MAX_STACK];
    for (int j = 0; j < L->n_sub; j++) {
        /* by suffix within the layer's range (names carry the 1-based layer number) */
        char name[RC_NAME_MAX];
        snprintf(name, sizeof name, ".sub%d.weight", j);
        const rc_param *p = NULL;
        size_t sl = strlen(name);
        for (int q = L->param_first; q < L->param_first + L->param_count; q++) {
            size_t nl = strlen(ir->params[q].name);
            if (nl >= sl && !strcmp(ir->params[q].name + nl - sl, name)) p = &ir->params[q];
        }
        int64_t want = (int64_t)L->sub_cout[j] * L->sub_cin[j] * L->sub_k[j] * L->sub_k[j];
        if (!p || p->count != want) {
            rc_errf(err, errlen, "%s: layer %d (conv): parameter *%s missing or not %lld floats",
                    ir->name, layer + 1, name, (long long)want);
            return -1;
        }
        w[j] = params + p->offset;
    }
    /* acc (Cacc, Cin, Kacc, Kacc) composed so far; grow it one sub-conv at a time. */
    int Cin = L->sub_cin[0], Cacc = L->sub_cout[0], Kacc = L->sub_k[0];
    int Kmax = 1;
    for (int j = 0; j < L->n_sub; j++) Kmax += L->sub_k[j] - 1;
    if (Kmax != L->kernel || L->sub_cout[L->n_sub - 1] != L->out.c) {
        rc_errf(err, errlen, "%s: layer %d (conv): sub-convs compose to %dx%d, not kernel %d",
                ir->name, layer + 1, Kmax, Kmax, L->kernel);
        return -1;
    }
    int cmax = 1;
    for (int j = 0; j < L->n_sub; j++) if (L->sub_cout[j] > cmax) cmax = L->sub_cout[j];
    size_t cap = (size_t)cmax * Cin * Kmax * Kmax;
    float *a = malloc(cap * sizeof *a), *b = malloc(cap * sizeof *b);
    if (!a || !b) {
        free(a); free(b);
        rc_errf(err, errlen, "%s: layer %d (conv): out of memory collapsing the stack", ir->name,
                layer + 1);
        return -1;
    }
    memcpy(a, w[0], (size_t)Cacc * Cin * Kacc * Kacc * sizeof *a);
    for (int j = 1; j < L->n_sub; j++) {
        rc_stack_filter(a, Cacc, Cin, Kacc, w[j], L->sub_cout[j], L->sub_k[j], b);
        Cacc = L->sub_cout[j];
        Kacc = Kacc + L->sub_k[j] - 1;
        float *t = a; a = b; b = t;
    }
    memcpy(weight, a, (size_t)Cacc * Cin * Kacc * Kacc * sizeof *a);
    free(a);
    free(b);
    return 0;
}

int rc_model_init(rc_model *m, const rc_ir *ir, uint64_t seed, const int *centers,
                  char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->ir = ir;
    size_t np = ir->params_total > 0 ? (size_t)ir->params_total : 1;
    size_t ns = ir->state_total > 0 ? (size_t)ir->state_total : 1;
    m->params = calloc(np, sizeof(float));
    m->grads = calloc(np, sizeof(float));
    m->state = calloc(ns, sizeof(float));
    if (!m->params || !m->grads || !m->state) {
        rc_errf(err, errlen, "%s: out of memory for %lld parameters", ir->name,
                (long long)ir->params_total);
        rc_model_free(m);
        return -1;
    }
    rc_params_init(ir, seed, m->params, m->state);
    if (rc_gc_layer(ir) >= 0) {
        m->cell_pos = calloc((size_t)(ir->cells > 0 ? ir->cells : 1) * 2, sizeof(int));
        if (!m->cell_pos) {
            rc_errf(err, errlen, "%s: out of memory for cell positions", ir->name);
            rc_model_free(m);
            return -1;
        }
        if (rc_gc_positions(ir, centers, m->cell_pos, err, errlen) != 0) {
            rc_model_free(m);
            return -1;
        }
    }
    return 0;
}

void rc_model_free(rc_model *m)
{
    if (!m) return;
    free(m->params);
    free(m->state);
    free(m->grads);
    free(m->cell_pos);
    memset(m, 0, sizeof *m);
}
