/* conv_kernels.c — per-kernel speed of the generated direct convolutions (issue #7): for a spec
 * (default specs/bncnn.lua), the forward (forward_lN_conv), input-gradient (backward_lN_conv_dx, a
 * padded correlation), weight-gradient (backward_lN_conv_dw) and inference (infer_lN_conv) kernels
 * of every plain conv layer (emit.h's kernel names), each timed
 * on its own on ONE thread, in GFLOP/s and in % of this core's measured FMA peak.
 *
 * How a static kernel is reached without touching the runtime: the module text from rc_emit_c
 * gets a few non-static wrappers appended (rcb_* below: a batch loop over one kernel, exactly as
 * the generated drivers call it), and that one translation unit is compiled by the JIT
 * (rc_jit_build_with: same compiler, flags and cache as the C backend; CC/CFLAGS apply) and
 * dlopened. The generated module's own names are used (rcg_ctx, rcg_offsets, RCG_NBUF).
 *
 * FLOPs are counted from the conv shapes, 2 per multiply-add, as the math needs them:
 *   fwd/inf: 2 cout cin k^2 ho wo;  dw: the same (one sample's dW);
 *   dx:      the same as the layer's forward: the kernel runs as a correlation over the
 *            output gradient padded by k - 1, whose border taps multiply zeros; those are not
 *            counted (a kernel that computes them runs at a lower useful rate; the padded
 *            count is printed below the table).
 * The peak is 16-lane FMA chains in registers (as bench/fma_peak.c), measured in this run: a
 * short burst right before every timed pass, so kernel and peak see the same machine state
 * (frequency, a busy sibling) even when the machine is shared.
 * Time: per pass over `samples` distinct samples (inputs in memory as in a batch), best of
 * `reps` passes (short passes, many of them: on a shared machine some run undisturbed), as
 * wall clock and as this thread's CPU time (CLOCK_THREAD_CPUTIME_ID; on a shared machine the
 * CPU time is the one to read). % of peak = best CPU GFLOP/s of the kernel / best CPU GFLOP/s
 * of the bursts next to its passes. Only plain convs are timed (stacked and tiled convs, and
 * kernels a module does not contain, are left out).
 *
 * Usage: conv_kernels [spec] [--samples N (4)] [--reps R (25)] [--cells C (5)] [--only SUBSTR]
 *                     [--module FILE.c] [--vs FILE.c] [--save FILE.c]
 * --module times a saved module of the same spec instead of emitting one; --vs also times a
 * second module (a baseline, e.g. `git show HEAD:generated/bncnn/model.c`) in the same process,
 * the two alternating pass by pass, so both see the same machine; --save writes the module timed.
 * Run with OMP_NUM_THREADS=1 (the kernels are single-threaded anyway; `make bench-conv` sets it).
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "emit.h"
#include "emit_c.h"
#include "ir.h"
#include "jit.h"
#include "spec.h"

enum { K_FWD, K_DX, K_DW, K_INF };
static const char *const kind_name[] = {"fwd", "dx", "dw", "inf"};

typedef struct {
    char name[64];                  /* generated kernel (dw: the conv name, kernel NAME_dw) */
    int kind, li;
    int cin, hin, win, cout, k;     /* the conv this kernel runs: (cin,hin,win) -> (cout,ho,wo) */
} kern;

static double clk(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- single-core FMA peak: 12 independent 16-lane chains (latency 4 x 2 ports < 12 < 32) */
typedef float v16 __attribute__((vector_size(64)));

static double peak_run(long iters)
{
    v16 m = {0}, c = {0};
    m += 0.999999f;
    c += 1e-6f;
    v16 a0 = m, a1 = m + 1, a2 = m + 2, a3 = m + 3, a4 = m + 4, a5 = m + 5;
    v16 a6 = m + 6, a7 = m + 7, a8 = m + 8, a9 = m + 9, a10 = m + 10, a11 = m + 11;
    for (long i = 0; i < iters; i++) {
        a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
        a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
        a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),
                         "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    v16 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    double r = 0;
    for (int l = 0; l < 16; l++) r += s[l];
    return r;
}

/* Best of `reps` runs of `iters`: GFLOP/s by this thread's CPU time and by wall time (raised
 * only: *cpu and *wall carry the best so far). */
static void peak(int reps, long iters, double *cpu, double *wall)
{
    double sink = 0;
    for (int r = 0; r < reps; r++) {
        double w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
        sink += peak_run(iters);
        double c = clk(CLOCK_THREAD_CPUTIME_ID) - c0, w = clk(CLOCK_MONOTONIC) - w0;
        double fl = 2.0 * 16 * 12 * (double)iters * 1e-9;
        if (fl / c > *cpu) *cpu = fl / c;
        if (fl / w > *wall) *wall = fl / w;
    }
    if (sink == 1234.5) printf("#\n");
}

/* ---- the hook: wrappers appended to the generated module */
static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#include <stdarg.h>
static int sb_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if (*len + (size_t)n + 1 > *cap) {
        size_t nc = (*cap + (size_t)n + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)n;
    return 0;
}

static int has_kernel(const char *src, const char *name)
{
    char pat[96];
    snprintf(pat, sizeof pat, "static void %s(", name);
    return strstr(src, pat) != NULL;
}

static void ho_wo(const kern *k, int *ho, int *wo)
{
    *ho = k->hin - k->k + 1;
    *wo = k->win - k->k + 1;
}

/* One sample's FLOPs of kernel k as run over its whole (padded) input. */
static double kflops_run(const kern *k)
{
    int ho, wo;
    ho_wo(k, &ho, &wo);
    return 2.0 * k->cout * k->cin * (double)k->k * k->k * ho * wo;
}

/* One sample's FLOPs of kernel k (see the header): dx without the zero border's taps. */
static double kflops(const kern *k)
{
    if (k->kind != K_DX) return kflops_run(k);
    int hg = k->hin - 2 * (k->k - 1), wg = k->win - 2 * (k->k - 1);
    return 2.0 * k->cout * k->cin * (double)k->k * k->k * hg * wg;
}

/* The module text: the file `path`, or (path NULL) emitted now from ir. NULL on error. */
static char *module_text(const rc_ir *ir, const char *spec, const char *path)
{
    char err[2048], *src = NULL;
    if (!path) {
        if (rc_emit_c(ir, spec, &src, err, sizeof err)) { fprintf(stderr, "conv_kernels: %s\n", err); return NULL; }
        return src;
    }
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0 || !(src = malloc((size_t)n + 1)) || fread(src, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "conv_kernels: cannot read %s\n", path);
        if (f) fclose(f);
        free(src);
        return NULL;
    }
    src[n] = 0;
    fclose(f);
    return src;
}

/* Append the rcb_* hooks for the kernels of ks present in *srcp (present[i] set; *srcp may be
 * reallocated), JIT-compile and dlopen. NULL on error. */
static void *module_open(char **srcp, const kern *ks, int nk, int *present, const rc_jit_toolchain *tc)
{
    char *src = *srcp;
    size_t len = strlen(src), cap = len + 1;
    int bad = sb_printf(&src, &len, &cap,
                        "\n/* ---- bench/conv_kernels.c hooks: one kernel over n samples, as the drivers call it */\n"
                        "size_t rcb_ws_floats(int B) { size_t off[RCG_NBUF]; return rcg_offsets(B, off); }\n");
    for (int i = 0; i < nk; i++) {
        const kern *k = &ks[i];
        char fn[80];
        snprintf(fn, sizeof fn, "%.60s", k->name);
        present[i] = has_kernel(src, fn);
        if (!present[i]) continue;
        if (k->kind == K_DW)
            bad |= sb_printf(&src, &len, &cap,
                             "void rcb_dw_%s(const float *x, size_t xs, const float *g, size_t gs, float *acc, int n)\n"
                             "{ for (int b = 0; b < n; b++) %s(x + (size_t)b * xs, g + (size_t)b * gs, acc); }\n",
                             k->name, k->name);
        else
            bad |= sb_printf(&src, &len, &cap,
                             "void rcb_%s(const float *x, size_t xs, const float *wt, const float *bias, float *y, size_t ys,\n"
                             "    int n, const float *params, float *state, float *ws)\n"
                             "{\n"
                             "    size_t off[RCG_NBUF];\n"
                             "    rcg_offsets(n, off);\n"
                             "    rcg_ctx c;\n"
                             "    memset(&c, 0, sizeof c);\n"
                             "    c.params = params; c.state = state; c.ws = ws; c.off = off; c.seed = 1;\n"
                             "    for (int b = 0; b < n; b++) %s(x + (size_t)b * xs, wt, bias, y + (size_t)b * ys, b, &c);\n"
                             "}\n",
                             k->name, k->name);
    }
    *srcp = src;
    if (bad) { fprintf(stderr, "conv_kernels: out of memory\n"); return NULL; }
    char so[4096], err[4096];
    int hit = 0;
    if (rc_jit_build_with(tc, src, "conv_kernels bench module", so, sizeof so, &hit, err, sizeof err)) {
        fprintf(stderr, "conv_kernels: %s\n", err);
        return NULL;
    }
    void *h = rc_jit_open(so, err, sizeof err);
    if (!h) fprintf(stderr, "conv_kernels: %s\n", err);
    return h;
}

static float frand(uint64_t *rs)
{
    *rs = *rs * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*rs >> 40) * (2.0 / 16777216.0) - 1.0);
}

typedef void (*dw_fn)(const float *, size_t, const float *, size_t, float *, int);
typedef void (*fw_fn)(const float *, size_t, const float *, const float *, float *, size_t, int, const float *, float *,
                      float *);

int main(int argc, char **argv)
{
    const char *spec = "specs/bncnn.lua", *only = NULL, *mpath[2] = {NULL, NULL}, *save = NULL;
    int samples = 4, reps = 25, cells = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--samples") && i + 1 < argc) samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cells") && i + 1 < argc) cells = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--module") && i + 1 < argc) mpath[0] = argv[++i];
        else if (!strcmp(argv[i], "--vs") && i + 1 < argc) mpath[1] = argv[++i];
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) save = argv[++i];
        else if (argv[i][0] != '-') spec = argv[i];
        else {
            fprintf(stderr, "usage: conv_kernels [spec] [--samples N] [--reps R] [--cells C] [--only SUBSTR] "
                            "[--module FILE.c] [--vs FILE.c] [--save FILE.c]\n");
            return 2;
        }
    }
    if (samples < 1 || reps < 1 || cells < 1) { fprintf(stderr, "conv_kernels: bad counts\n"); return 2; }

    static rc_ir ir;
    char err[2048];
    if (rc_spec_check(spec, cells, &ir, err, sizeof err)) { fprintf(stderr, "conv_kernels: %s\n", err); return 1; }
    int nm = mpath[1] ? 2 : 1;
    char *src[2] = {NULL, NULL};
    for (int m = 0; m < nm; m++)
        if (!(src[m] = module_text(&ir, spec, mpath[m]))) return 1;
    if (save) {
        FILE *f = fopen(save, "wb");
        if (!f || fputs(src[0], f) == EOF || fclose(f) != 0) { fprintf(stderr, "conv_kernels: cannot write %s\n", save); return 1; }
    }

    /* the plain conv layers' kernels */
    kern ks[4 * RC_MAX_LAYERS];
    int nk = 0;
    for (int li = 0; li < ir.n_layers; li++) {
        const rc_layer *L = &ir.layers[li];
        if (L->kind != RC_LAYER_CONV || L->stack || L->period != 1) continue;
        int K = L->kernel, ho = L->out.h, wo = L->out.w;
        kern base = {.li = li, .cin = L->in.c, .hin = L->in.h, .win = L->in.w, .cout = L->out.c, .k = K};
        kern f = base, dx = base, dw = base, inf = base;
        rc_kernel_name(f.name, sizeof f.name, RC_PHASE_FORWARD, li, "conv");
        f.kind = K_FWD;
        rc_kernel_name(dx.name, sizeof dx.name, RC_PHASE_BACKWARD, li, "conv_dx");
        dx.kind = K_DX;
        dx.cin = L->out.c; dx.cout = L->in.c; dx.hin = ho + 2 * (K - 1); dx.win = wo + 2 * (K - 1);
        rc_kernel_name(dw.name, sizeof dw.name, RC_PHASE_BACKWARD, li, "conv_dw");
        dw.kind = K_DW;
        rc_kernel_name(inf.name, sizeof inf.name, RC_PHASE_INFER, li, "conv");
        inf.kind = K_INF;
        kern cand[4] = {f, dx, dw, inf};
        for (int j = 0; j < 4; j++) {
            char fn[80];
            snprintf(fn, sizeof fn, "%.60s", cand[j].name);
            if (!only || strstr(fn, only)) ks[nk++] = cand[j];
        }
    }
    rc_jit_toolchain tc;
    if (rc_jit_toolchain_get(&tc, err, sizeof err)) { fprintf(stderr, "conv_kernels: %s\n", err); return 1; }
    void *h[2] = {NULL, NULL};
    int present[2][4 * RC_MAX_LAYERS], any = 0;
    for (int m = 0; m < nm; m++) {
        if (!(h[m] = module_open(&src[m], ks, nk, present[m], &tc))) return 1;
        free(src[m]);
        for (int i = 0; i < nk; i++) any |= present[m][i];
    }
    if (!any) { fprintf(stderr, "conv_kernels: %s: no direct conv kernels to time\n", spec); return 1; }
    size_t (*ws_floats)(int) = (size_t (*)(int))dlsym(h[0], "rcb_ws_floats");
    size_t (*ws_floats1)(int) = nm > 1 ? (size_t (*)(int))dlsym(h[1], "rcb_ws_floats") : NULL;
    if (!ws_floats || (nm > 1 && !ws_floats1)) { fprintf(stderr, "conv_kernels: rcb_ws_floats missing\n"); return 1; }

    double pk_cpu = 0, pk_wall = 0;
    peak(5, 10000000L, &pk_cpu, &pk_wall);
    double la[3] = {-1, -1, -1};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = -1;
        fclose(lf);
    }
    printf("# conv_kernels: %s; module %s%s%s; %d samples per pass, best of %d passes, 1 thread; compiler: %s %s\n",
           spec, mpath[0] ? mpath[0] : "emitted now", nm > 1 ? " vs baseline " : "", nm > 1 ? mpath[1] : "", samples,
           reps, tc.cc, tc.cflags);
    printf("# single-core FMA peak (16 lanes): %.1f GFLOP/s by thread CPU time, %.1f by wall; load average %.2f %.2f %.2f\n",
           pk_cpu, pk_wall, la[0], la[1], la[2]);
    printf("| kernel | role | conv shape (in -> out, k) | MFLOP/sample | ms/sample (cpu) | GFLOP/s (cpu) | GFLOP/s (wall) "
           "| peak next to it (cpu) | %% of peak |%s\n",
           nm > 1 ? " baseline GFLOP/s (cpu) | baseline % of peak | speedup |" : "");
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|%s\n", nm > 1 ? "---:|---:|---:|" : "");

    /* buffers big enough for every kernel of the modules (weights: any layout up to 4x) */
    size_t wsn = ws_floats(samples);
    if (nm > 1 && ws_floats1(samples) > wsn) wsn = ws_floats1(samples);
    float *params = calloc((size_t)ir.params_total + 16, sizeof(float));
    float *state = calloc((size_t)ir.state_total + 16, sizeof(float));
    float *ws = calloc(wsn + 16, sizeof(float));
    if (!params || !state || !ws) { fprintf(stderr, "conv_kernels: out of memory\n"); return 1; }
    uint64_t rs = 0x9e3779b97f4a7c15ull;
    for (int64_t i = 0; i < ir.params_total; i++) params[i] = frand(&rs);
    for (int64_t i = 0; i < ir.state_total; i++) state[i] = 1.0f;   /* running var 1: finite folds */
    int rc = 0, dx_note[4 * RC_MAX_LAYERS], ndx = 0;
    for (int i = 0; i < nk; i++) {
        const kern *k = &ks[i];
        void *fp[2] = {NULL, NULL};
        char sym[96];
        snprintf(sym, sizeof sym, k->kind == K_DW ? "rcb_dw_%.60s" : "rcb_%.60s", k->name);
        for (int m = 0; m < nm; m++)
            if (present[m][i] && !(fp[m] = dlsym(h[m], sym))) { fprintf(stderr, "conv_kernels: %s missing\n", sym); rc = 1; }
        if (!fp[0] && !fp[1]) continue;
        int ho, wo;
        ho_wo(k, &ho, &wo);
        size_t xs = (size_t)k->cin * k->hin * k->win, ys = (size_t)k->cout * ho * wo;
        size_t wn = 4 * (size_t)k->cin * k->k * k->k * k->cout + 64;
        size_t an = (size_t)k->cin * k->k * k->cout * (k->k + 32) + 64;
        size_t nw = k->kind == K_DW ? an : wn;
        float *x = malloc(xs * samples * sizeof(float)), *y = malloc(ys * samples * sizeof(float));
        float *wt = malloc(nw * sizeof(float));
        float *bias = malloc(((size_t)k->cout + 16) * sizeof(float));
        if (!x || !y || !wt || !bias) { fprintf(stderr, "conv_kernels: out of memory\n"); return 1; }
        for (size_t e = 0; e < xs * samples; e++) x[e] = frand(&rs);
        if (k->kind == K_DX) {   /* the padded gradient: zero border of k-1, values inside */
            int kk = k->k - 1, hi = k->hin - 2 * kk, wi = k->win - 2 * kk;
            for (int b = 0; b < samples; b++)
                for (int c = 0; c < k->cin; c++)
                    for (int yy = 0; yy < k->hin; yy++)
                        for (int xx = 0; xx < k->win; xx++)
                            if (yy < kk || yy >= kk + hi || xx < kk || xx >= kk + wi)
                                x[(size_t)b * xs + ((size_t)c * k->hin + yy) * k->win + xx] = 0.0f;
        }
        for (size_t e = 0; e < ys * samples; e++) y[e] = 0.01f * (float)(e % 97) - 0.4f;
        for (size_t e = 0; e < nw; e++) wt[e] = k->kind == K_DW ? 0.0f : 0.001f * (float)(e % 211) - 0.1f;
        for (int o = 0; o < k->cout + 16; o++) bias[o] = 0.01f * o;

        double best_c[2] = {1e30, 1e30}, best_w[2] = {1e30, 1e30}, wpk_c = 0, wpk_w = 0;
        for (int r = 0; r <= reps; r++) {   /* r = 0: warm-up; the modules alternate which goes first */
            peak(1, 2000000L, &wpk_c, &wpk_w);   /* the peak right next to each pass */
            for (int q = 0; q < nm; q++) {
                int m = (r + q) % nm;
                if (!fp[m]) continue;
                double w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
                if (k->kind == K_DW) ((dw_fn)fp[m])(x, xs, y, ys, wt, samples);
                else ((fw_fn)fp[m])(x, xs, wt, bias, y, ys, samples, params, state, ws);
                double c = clk(CLOCK_THREAD_CPUTIME_ID) - c0, w = clk(CLOCK_MONOTONIC) - w0;
                if (r && c < best_c[m]) best_c[m] = c;
                if (r && w < best_w[m]) best_w[m] = w;
            }
        }
        double fl = kflops(k) * samples;
        char shape[96], fn[80], cmp[160] = "";
        snprintf(shape, sizeof shape, "%dx%dx%d -> %dx%dx%d, k=%d", k->cin, k->hin, k->win, k->cout, ho, wo, k->k);
        snprintf(fn, sizeof fn, "%.60s", k->name);
        if (nm > 1) {
            if (fp[1] && fp[0])
                snprintf(cmp, sizeof cmp, " %.1f | %.0f%% | %.2fx |", fl / best_c[1] * 1e-9,
                         100.0 * fl / best_c[1] * 1e-9 / wpk_c, best_c[1] / best_c[0]);
            else if (fp[1])
                snprintf(cmp, sizeof cmp, " %.1f | %.0f%% | - |", fl / best_c[1] * 1e-9, 100.0 * fl / best_c[1] * 1e-9 / wpk_c);
            else snprintf(cmp, sizeof cmp, " - | - | - |");
        }
        if (fp[0])
            printf("| %s | %s | %s | %.1f | %.3f | %.1f | %.1f | %.1f | %.0f%% |%s\n", fn, kind_name[k->kind], shape,
                   kflops(k) * 1e-6, best_c[0] / samples * 1e3, fl / best_c[0] * 1e-9, fl / best_w[0] * 1e-9, wpk_c,
                   100.0 * fl / best_c[0] * 1e-9 / wpk_c, cmp);
        else
            printf("| %s | %s | %s | %.1f | - | - | - | %.1f | - |%s\n", fn, kind_name[k->kind], shape, kflops(k) * 1e-6,
                   wpk_c, cmp);
        if (k->kind == K_DX) dx_note[ndx++] = i;
        fflush(stdout);
        if (wpk_c > pk_cpu) pk_cpu = wpk_c;
        free(x);
        free(y);
        free(wt);
        free(bias);
    }
    for (int i = 0; i < ndx; i++)
        printf("# %s: %.1f useful MFLOP per sample; the padded correlation has %.1f MFLOP of taps\n",
               ks[dx_note[i]].name, kflops(&ks[dx_note[i]]) * 1e-6, kflops_run(&ks[dx_note[i]]) * 1e-6);
    printf("# best single-core peak seen in this run: %.1f GFLOP/s (cpu)\n", pk_cpu);
    free(params);
    free(state);
    free(ws);
    for (int m = 0; m < nm; m++) dlclose(h[m]);
    return rc;
}
