/* ref_forward.h — the reference backend's forward sweep, written once over a storage type and
 * included twice by ref.c (and by nothing else; no include guard on purpose):
 *   REF_REAL float,  REF_(name) name:       the backend itself (train_forward, infer, the
 *                                           analysis forward); names unchanged;
 *   REF_REAL double, REF_(name) name##64:   the double instance (rc_ref64_*, ref.h), for
 *                                           finite differences free of float rounding.
 * Storage follows ref_real: layer outputs and everything else in the workspace, the layer-0
 * input view (the double instance gets its windows converted), y. Parameters, BN running
 * state and defined-layer state snapshots stay float in both (they are the model's buffers);
 * every reduction accumulates in double in both. The includer defines, besides REF_REAL and
 * REF_: REF_CONV_FAST (1: the analysis-only fast conv callbacks of rc_ref_set_conv_fast,
 * which are float; 0: never) and REF_DEF_OUT(y) (the float / double output arguments of
 * rc_ref_def_forward). It provides ref_self, ref_lp, ref_plan, plan, shape_size, fail,
 * drop_scale, act_f and bn_gain. The names below are mapped through REF_ so that the body reads
 * like plain code; they are unmapped at the end, so after the float instance the plain names
 * (ref_in, ref_plane, ref_at, layer_input, ...) are the float ones.
 * Invariant: with REF_REAL float the code is exactly the float reference's (every test compares
 * against it bit for bit); a change here changes both instances alike.
 */
#define ref_real REF_(ref_real)
#define ref_in REF_(ref_in)
#define ref_plane REF_(ref_plane)
#define ref_at REF_(ref_at)
#define conv_fwd REF_(conv_fwd)
#define def_input REF_(def_input)
#define ref_run REF_(ref_run)
#define layer_input REF_(layer_input)
#define forward REF_(forward)
typedef REF_REAL ref_real;

/* Input view of a layer: either a (B,C,H,W) tensor or the frame stream. */
typedef struct {
    const ref_real *x;               /* (B, C, H, W) or NULL */
    const ref_real *frames;          /* (T, H, W) when x == NULL */
    const int64_t *starts;           /* (B) */
    int c, h, w;
} ref_in;

static inline const ref_real *ref_plane(const ref_in *t, int b, int c)
{
    size_t hw = (size_t)t->h * t->w;
    if (t->x) return t->x + ((size_t)b * t->c + c) * hw;
    return t->frames + (size_t)(t->starts[b] + c) * hw;
}

/* Element f of sample b, f = (c*H + h)*W + w. */
static inline ref_real ref_at(const ref_in *t, int b, int64_t f)
{
    if (t->x) return t->x[(size_t)b * t->c * t->h * t->w + (size_t)f];   /* (B, C*H*W) */
    int64_t hw = (int64_t)t->h * t->w;
    return ref_plane(t, b, (int)(f / hw))[f % hw];
}

/* ---------------------------------------------------------------- ops: forward */

/* y (B,Cout,Ho,Wo) = conv(x) with weight (PY,PX,Cout,Cin,K,K), bias (PY,PX,Cout) or NULL. */
static void conv_fwd(const ref_in *x, int B, int Cout, int K, int PY, int PX, const float *W,
                     const float *bias, ref_real *y)
{
    int Cin = x->c, Wi = x->w, Ho = x->h - K + 1, Wo = x->w - K + 1;
    #pragma omp parallel for collapse(2) schedule(static) if((double)B * Cout * Ho * Wo * Cin * K * K > REF_OMP_MIN)
    for (int b = 0; b < B; b++)
        for (int o = 0; o < Cout; o++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int ph = (oh % PY) * PX + ow % PX;
                    const float *w = W + ((size_t)ph * Cout + o) * Cin * K * K;
                    double acc = bias ? bias[(size_t)ph * Cout + o] : 0.0;
                    for (int c = 0; c < Cin; c++) {
                        const ref_real *pl = ref_plane(x, b, c);
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++)
                                acc += (double)w[(c * K + kh) * K + kw] *
                                       pl[(size_t)(oh + kh) * Wi + ow + kw];
                    }
                    y[(((size_t)b * Cout + o) * Ho + oh) * Wo + ow] = (ref_real)acc;
                }
}

/* A defined layer's input (B, F) in double, from a tensor or the frame stream; NULL on OOM. */
static double *def_input(const ref_in *x, int B, int64_t F)
{
    double *xd = malloc(sizeof *xd * (size_t)(B * F));
    if (!xd) return NULL;
    for (int b = 0; b < B; b++)
        for (int64_t f = 0; f < F; f++) xd[b * F + f] = ref_at(x, b, f);
    return xd;
}

/* ---------------------------------------------------------------- forward sweep */

typedef struct {
    int B;
    const float *params;
    const float *state_in;     /* running stats read in eval */
    float *state_out;          /* train: running stats updated; NULL in eval */
    const int *cell_pos;
    uint64_t seed;
    int train;
    const ref_real *frames;
    const int64_t *starts;
    ref_real *ws;
    const ref_real *x0;        /* (B, out of layer 0) given by the caller, or NULL (analysis) */
} ref_run;

static ref_in layer_input(const rc_ir *ir, const ref_plan *p, const ref_run *r, int i)
{
    ref_in t;
    memset(&t, 0, sizeof t);
    t.frames = r->frames;
    t.starts = r->starts;
    if (i == 0) { t.c = ir->in.c; t.h = ir->in.h; t.w = ir->in.w; }
    else {
        rc_shape s = ir->layers[i - 1].out;
        t.x = r->ws + p->out[i - 1];
        t.c = s.c; t.h = s.h; t.w = s.w;
    }
    return t;
}

static int forward(rc_backend *be, const ref_run *r, ref_real *y)
{
    ref_self *s = be->self;
    const rc_ir *ir = be->ir;
    int B = r->B;
    if (s->bad) return fail(be, "%s", s->bad_msg);
    if (B < 1) return fail(be, "ref: %s: batch size %d < 1", ir->name, B);
    ref_plan p;
    plan(ir, B, &p);
    for (int i = 0; i < ir->n_layers; i++) {
        const rc_layer *L = &ir->layers[i];
        const ref_lp *lp = &s->lp[i];
        ref_in x = layer_input(ir, &p, r, i);
        ref_real *out = r->ws + p.out[i];
        int64_t F = shape_size(L->in);
        if (i == 0 && r->x0) {     /* checked linear (conv/dense) by rc_ref_eval_forward */
            memcpy(out, r->x0, (size_t)B * shape_size(L->out) * sizeof *out);
            continue;
        }
        switch (L->kind) {
        case RC_LAYER_CONV:
            if (L->stack > 0) {
                ref_in cur = x;
                for (int j = 0; j < L->n_sub; j++) {
                    int last = j == L->n_sub - 1;
                    ref_real *o = last ? out : r->ws + p.sub[i][j];
                    conv_fwd(&cur, B, L->sub_cout[j], L->sub_k[j], 1, 1, r->params + lp->sub_w[j],
                             last && lp->b >= 0 ? r->params + lp->b : NULL, o);
                    int ho = cur.h - L->sub_k[j] + 1, wo = cur.w - L->sub_k[j] + 1;
                    if (!last && r->train && L->stack_dropout > 0) {
                        size_t n = (size_t)B * L->sub_cout[j] * ho * wo;
                        uint64_t st = RC_RNG_STREAM(i, j + 1);
                        for (size_t k = 0; k < n; k++) o[k] *= drop_scale(r->seed, st, k, L->stack_dropout);
                    }
                    cur.x = o; cur.c = L->sub_cout[j]; cur.h = ho; cur.w = wo;
                }
            } else {
                int done = 0;           /* eval (analysis): the caller's forward if set */
#if REF_CONV_FAST
                if (!r->train && s->cfwd && x.x && lp->py == 1 && lp->px == 1)
                    done = s->cfwd(s->adj_ctx, i, B, r->params + lp->w,
                                   lp->b >= 0 ? r->params + lp->b : NULL, x.x, out) == 0;
#endif
                if (!done)
                    conv_fwd(&x, B, L->out.c, L->kernel, lp->py, lp->px, r->params + lp->w,
                             lp->b >= 0 ? r->params + lp->b : NULL, out);
            }
            break;
        case RC_LAYER_GCCONV: {
            int K = L->kernel, Ho = x.h - K + 1, Wo = x.w - K + 1, cells = ir->cells;
            if (!r->cell_pos) return fail(be, "ref: %s: layer %d (gcconv): no cell positions given", ir->name, i + 1);
            for (int n = 0; n < cells; n++)
                if (r->cell_pos[2 * n] < 0 || r->cell_pos[2 * n] >= Ho || r->cell_pos[2 * n + 1] < 0 ||
                    r->cell_pos[2 * n + 1] >= Wo)
                    return fail(be, "ref: %s: layer %d (gcconv): cell %d position (%d,%d) outside the "
                                "%dx%d map", ir->name, i + 1, n, r->cell_pos[2 * n], r->cell_pos[2 * n + 1], Ho, Wo);
            const float *W = r->params + lp->w;
            #pragma omp parallel for collapse(2) schedule(static) if((double)B * cells * x.c * K * K > REF_OMP_MIN)
            for (int b = 0; b < B; b++)
                for (int n = 0; n < cells; n++) {
                    int rr = r->cell_pos[2 * n], cc = r->cell_pos[2 * n + 1];
                    double acc = lp->b >= 0 ? r->params[lp->b + n] : 0.0;
                    for (int c = 0; c < x.c; c++) {
                        const ref_real *pl = ref_plane(&x, b, c);
                        const float *w = W + ((size_t)n * x.c + c) * K * K;
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++)
                                acc += (double)w[kh * K + kw] * pl[(size_t)(rr + kh) * x.w + cc + kw];
                    }
                    out[(size_t)b * cells + n] = (ref_real)acc;
                }
            break;
        }
        case RC_LAYER_DENSE: {
            int64_t U = shape_size(L->out);
            const float *W = r->params + lp->w;
            #pragma omp parallel for collapse(2) schedule(static) if((double)B * U * F > REF_OMP_MIN)
            for (int b = 0; b < B; b++)
                for (int64_t u = 0; u < U; u++) {
                    double acc = lp->b >= 0 ? r->params[lp->b + u] : 0.0;
                    int64_t hw = (int64_t)x.h * x.w;      /* f = c*hw + p, in order */
                    for (int c = 0; c < x.c; c++) {
                        const ref_real *pl = ref_plane(&x, b, c);
                        const float *wr = W + u * F + c * hw;
                        for (int64_t q = 0; q < hw; q++) acc += (double)wr[q] * pl[q];
                    }
                    out[b * U + u] = (ref_real)acc;
                }
            break;
        }
        case RC_LAYER_BATCHNORM: {
            int feat = lp->feat, inner = lp->inner;
            int64_t n = (int64_t)B * inner;
            const float *sc = r->params + lp->scale, *sh = r->params + lp->shift;
            ref_real *mean = r->ws + p.extra[i], *invstd = mean + feat;
            if (r->train && n < 2)
                return fail(be, "ref: %s: layer %d (batchnorm): training needs more than one value "
                            "per feature (batch %d)", ir->name, i + 1, B);
            for (int f = 0; f < feat; f++) {
                double m, v;
                if (r->train) {
                    double s1 = 0, s2 = 0;
                    for (int b = 0; b < B; b++)
                        for (int k = 0; k < inner; k++) s1 += ref_at(&x, b, (int64_t)f * inner + k);
                    m = s1 / n;
                    for (int b = 0; b < B; b++)
                        for (int k = 0; k < inner; k++) {
                            double d = ref_at(&x, b, (int64_t)f * inner + k) - m;
                            s2 += d * d;
                        }
                    v = s2 / n;                       /* biased, for normalization */
                    float *rm = r->state_out + lp->rmean, *rv = r->state_out + lp->rvar;
                    double mom = L->momentum;
                    rm[f] = (float)((1 - mom) * rm[f] + mom * m);
                    rv[f] = (float)((1 - mom) * rv[f] + mom * v * (double)n / (double)(n - 1));
                } else {
                    m = r->state_in[lp->rmean + f];
                    v = r->state_in[lp->rvar + f];
                }
                double is = 1.0 / sqrt(v + L->eps), g = bn_gain(L, sc[f]);
                mean[f] = (ref_real)m;
                invstd[f] = (ref_real)is;
                for (int b = 0; b < B; b++)
                    for (int k = 0; k < inner; k++) {
                        int64_t e = (int64_t)f * inner + k;
                        out[b * F + e] = (ref_real)((ref_at(&x, b, e) - m) * is * g + sh[f]);
                    }
            }
            break;
        }
        case RC_LAYER_NOISE: {
            uint64_t st = RC_RNG_STREAM(i, 0);
            for (int b = 0; b < B; b++)
                for (int64_t f = 0; f < F; f++) {
                    double v = ref_at(&x, b, f);
                    if (r->train && L->std != 0)
                        v += L->std * (double)rc_rng_normal(r->seed, st, (uint64_t)(b * F + f));
                    out[b * F + f] = (ref_real)v;
                }
            break;
        }
        case RC_LAYER_DROPOUT: {
            uint64_t st = RC_RNG_STREAM(i, 0);
            for (int b = 0; b < B; b++)
                for (int64_t f = 0; f < F; f++) {
                    ref_real v = ref_at(&x, b, f);
                    if (r->train && L->p > 0) v *= drop_scale(r->seed, st, (uint64_t)(b * F + f), L->p);
                    out[b * F + f] = v;
                }
            break;
        }
        case RC_LAYER_DEF: {
            double *xd = def_input(&x, B, F);
            float *snap = (float *)(r->ws + p.extra[i]);   /* floats, in a ref_real region */
            char m[400];
            int64_t off = 0;
            for (int k = 0; k < L->state_count; k++) {
                const rc_param *st = &ir->state[L->state_first + k];
                if (!r->state_in) { free(xd); return fail(be, "ref: %s: layer %d (%s): no state given", ir->name, i + 1, L->def_kind); }
                memcpy(snap + off, r->state_in + st->offset, sizeof *snap * (size_t)st->count);
                off += st->count;
            }
            int rc = xd ? rc_ref_def_forward(ir, i, s->def[i], B, r->train, r->seed, xd, r->params, snap,
                                             r->cell_pos, r->train ? r->state_out : NULL, REF_DEF_OUT(out), m, sizeof m)
                        : rc_errf(m, sizeof m, "ref: layer %d: out of memory", i + 1);
            free(xd);
            if (rc) return fail(be, "%s", m);
            break;
        }
        case RC_LAYER_ACT:
            for (int b = 0; b < B; b++)
                for (int64_t f = 0; f < F; f++) out[b * F + f] = (ref_real)act_f(L->act, ref_at(&x, b, f));
            break;
        default:
            return fail(be, "ref: %s: layer %d: unknown kind %d", ir->name, i + 1, (int)L->kind);
        }
    }
    memcpy(y, r->ws + p.out[ir->n_layers - 1], (size_t)B * ir->cells * sizeof *y);
    return 0;
}

#undef ref_real
#undef ref_in
#undef ref_plane
#undef ref_at
#undef conv_fwd
#undef def_input
#undef ref_run
#undef layer_input
#undef forward
