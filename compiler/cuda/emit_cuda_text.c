/* emit_cuda_text.c — fixed texts of the CUDA renderer: the device prelude (types without host
 * headers under NVRTC, activations and their derivatives, warp/block reductions), the verbatim
 * copy of common/rng.h pasted into every generated source (tests/test_nvrtc.c checks it still
 * equals the file), the model-independent utility kernels (Adam, loss), and the host-emulation
 * prelude/trailer used by tests to run generated kernels without a GPU.
 */
#include "emit_cuda.h"
#include "emit.h"

#include <stdio.h>
#include <string.h>

extern const char rc_cuda_dev_prelude_text[];

/* ---------------------------------------------------------------- prelude, rng text */

/* One copy of rng.h's text serves both emitters (compiler/emit.c). */
const char *rc_cuda_rng_text(void) { return rc_emit_rng_text(); }

/* Device prelude: types without host headers under NVRTC, activations, block reduction. */
#define RC_DEV_PRELUDE \
"#if defined(__CUDACC_RTC__) || defined(__CUDACC__)\n" \
"typedef unsigned long long uint64_t;\n" \
"#define RC_RNG_QUAL __device__ static inline\n" \
"#else\n" \
"#ifndef RC_CUDA_EMU\n" \
"#error \"compile with NVRTC, or as host C++ with the retinac emulation prelude\"\n" \
"#endif\n" \
"#endif\n" \
"\n" \
"/* The argument block of every kernel (compiler/cuda/emit_cuda.h rc_cuda_args). */\n" \
"struct rc_kargs {\n" \
"    const float *params; float *state; const int *cell_pos; const float *frames;\n" \
"    const long long *starts; float *ws; float *y; const float *dy; float *grads;\n" \
"    unsigned long long seed; int B; int pad_;\n" \
"};\n" \
"\n" \
"#define RCG_INLINE __device__ static inline\n" \
RC_EMIT_ACT_TEXT \
"\n" \
"/* Sum over a warp (result in lane 0). */\n" \
"__device__ static inline double rc_warp_sum(double v)\n" \
"{\n" \
"    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);\n" \
"    return v;\n" \
"}\n" \
"\n" \
"/* Sum over the block (blockDim.x a multiple of 32, every thread calls); valid in thread 0.\n" \
" * sh: __shared__ double[32]. */\n" \
"__device__ static inline double rc_block_sum(double v, double *sh)\n" \
"{\n" \
"    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;\n" \
"    v = rc_warp_sum(v);\n" \
"    __syncthreads();\n" \
"    if (lane == 0) sh[wid] = v;\n" \
"    __syncthreads();\n" \
"    v = threadIdx.x < (blockDim.x >> 5) ? sh[threadIdx.x] : 0.0;\n" \
"    if (wid == 0) v = rc_warp_sum(v);\n" \
"    return v;\n" \
"}\n"
const char rc_cuda_dev_prelude_text[] = RC_DEV_PRELUDE;

/* ---------------------------------------------------------------- host emulation (tests) */

static const char emu_prelude[] =
"/* retinac CUDA host emulation (tests only): a block's threads are fibers (ucontext) of one OS\n"
" * thread, switched at __syncthreads and warp shuffles; blocks run one after another, so static\n"
" * __shared__ arrays are per block. Cheap: no OS threads, no futexes. */\n"
"#define RC_CUDA_EMU 1\n"
"#include <stdint.h>\n#include <math.h>\n#include <string.h>\n#include <stdlib.h>\n#include <ucontext.h>\n#include <algorithm>\n"
"struct dim3 { unsigned x, y, z; };\n"
"static dim3 threadIdx, blockIdx, blockDim, gridDim;\n"
"static ucontext_t rc_emu_sched, *rc_emu_ctx;\n"
"static unsigned rc_emu_cur;\n"
"static unsigned rc_emu_bar_count, rc_emu_bar_gen;\n"
"static unsigned rc_emu_w_count[32], rc_emu_w_gen[32];\n"
"#define __global__\n#define __device__\n#define __host__\n#define __shared__ static\n"
"#define __forceinline__ inline\n#define __restrict__ __restrict\n#define __launch_bounds__(...)\n"
"#define __align__(n) __attribute__((aligned(n)))\n"
"using std::min; using std::max;\n"
"static inline void rc_emu_yield(void) { swapcontext(&rc_emu_ctx[rc_emu_cur], &rc_emu_sched); }\n"
"static inline void __syncthreads(void)\n"
"{\n"
"    const unsigned g = rc_emu_bar_gen;\n"
"    if (++rc_emu_bar_count == blockDim.x) { rc_emu_bar_count = 0; rc_emu_bar_gen++; return; }\n"
"    while (rc_emu_bar_gen == g) rc_emu_yield();\n"
"}\n"
"static inline void rc_emu_warp_sync(unsigned w)\n"
"{\n"
"    const unsigned n = blockDim.x - 32 * w < 32 ? blockDim.x - 32 * w : 32, g = rc_emu_w_gen[w];\n"
"    if (++rc_emu_w_count[w] == n) { rc_emu_w_count[w] = 0; rc_emu_w_gen[w]++; return; }\n"
"    while (rc_emu_w_gen[w] == g) rc_emu_yield();\n"
"}\n"
"template <class T> static T __shfl_down_sync(unsigned mask, T v, int off)\n"
"{\n"
"    (void)mask;\n"
"    static T xch[1024];\n"
"    const int t = (int)threadIdx.x, w = t >> 5, s = t + off;\n"
"    xch[t] = v;\n"
"    rc_emu_warp_sync((unsigned)w);\n"
"    T r = ((s >> 5) == w && s < (int)blockDim.x) ? xch[s] : v;\n"
"    rc_emu_warp_sync((unsigned)w);\n"
"    return r;\n"
"}\n";

static const char emu_trailer[] =
"\n/* ---- emulation launcher ---- */\n"
"#ifndef RC_EMU_ARGS\n"
"#define RC_EMU_ARGS rc_kargs   /* model kernels; the utility module says rc_uargs */\n"
"#endif\n"
"extern \"C\" const unsigned long long rc_emu_args_size = sizeof(RC_EMU_ARGS);\n"
"typedef void (*rc_emu_kfn)(RC_EMU_ARGS);\n"
"static rc_emu_kfn rc_emu_k;\n"
"static const RC_EMU_ARGS *rc_emu_a;\n"
"static unsigned char *rc_emu_done;\n"
"static void rc_emu_entry(void)\n"
"{\n"
"    rc_emu_k(*rc_emu_a);\n"
"    rc_emu_done[rc_emu_cur] = 1;\n"
"}\n"
"extern \"C\" int rc_emu_launch(void *fn, const void *args, unsigned gx, unsigned gy, unsigned block)\n"
"{\n"
"    if (block < 1 || block > 1024) return -1;\n"
"    const size_t stack = 256 << 10;\n"
"    blockDim.x = block; blockDim.y = 1; blockDim.z = 1;\n"
"    gridDim.x = gx; gridDim.y = gy; gridDim.z = 1;\n"
"    rc_emu_k = (rc_emu_kfn)fn;\n"
"    rc_emu_a = (const RC_EMU_ARGS *)args;\n"
"    rc_emu_ctx = (ucontext_t *)calloc(block, sizeof *rc_emu_ctx);\n"
"    rc_emu_done = (unsigned char *)calloc(block, 1);\n"
"    char *stacks = (char *)malloc((size_t)block * stack);\n"
"    if (!rc_emu_ctx || !rc_emu_done || !stacks) { free(rc_emu_ctx); free(rc_emu_done); free(stacks); return -1; }\n"
"    for (unsigned by = 0; by < gy; by++)\n"
"        for (unsigned bx = 0; bx < gx; bx++) {\n"
"            blockIdx.x = bx; blockIdx.y = by; blockIdx.z = 0;\n"
"            rc_emu_bar_count = 0;\n"
"            memset(rc_emu_w_count, 0, sizeof rc_emu_w_count);\n"
"            for (unsigned t = 0; t < block; t++) {\n"
"                getcontext(&rc_emu_ctx[t]);\n"
"                rc_emu_ctx[t].uc_stack.ss_sp = stacks + (size_t)t * stack;\n"
"                rc_emu_ctx[t].uc_stack.ss_size = stack;\n"
"                rc_emu_ctx[t].uc_link = &rc_emu_sched;\n"
"                makecontext(&rc_emu_ctx[t], rc_emu_entry, 0);\n"
"                rc_emu_done[t] = 0;\n"
"            }\n"
"            for (unsigned left = block; left;) {\n"
"                left = 0;\n"
"                for (unsigned t = 0; t < block; t++) {\n"
"                    if (rc_emu_done[t]) continue;\n"
"                    rc_emu_cur = t;\n"
"                    threadIdx.x = t; threadIdx.y = 0; threadIdx.z = 0;\n"
"                    swapcontext(&rc_emu_sched, &rc_emu_ctx[t]);\n"
"                    if (!rc_emu_done[t]) left++;\n"
"                }\n"
"            }\n"
"        }\n"
"    free(rc_emu_ctx); free(rc_emu_done); free(stacks);\n"
"    return 0;\n"
"}\n";

const char *rc_cuda_emu_prelude(void) { return emu_prelude; }
const char *rc_cuda_emu_trailer(void) { return emu_trailer; }

/* ---------------------------------------------------------------- utility kernels */

#define UTIL_KERNELS \
"\n/* Adam/AdamW and loss kernels (runtime/backend/backend_cuda.c util_args has the same layout). */\n" \
"struct rc_uargs {\n" \
"    float *w; const float *g; float *m; float *v; const float *pred; const float *target;\n" \
"    float *dy; double *part; long long n;\n" \
"    double lr, b1, b2, eps, wd, bc1, bc2s, l1c;\n" \
"    int adamw, kind, B, pad_;\n" \
"    long long fast_lo, fast_hi; double fast_mult;   /* output_lr: a range at lr * fast_mult */\n" \
"};\n" \
"#define RC_EMU_ARGS rc_uargs   /* host emulation (tests): the launcher's argument block */\n" \
"\n" \
"/* One step of torch.optim.Adam (coupled L2) or AdamW, in double per element (runtime/optim.c). */\n" \
"extern \"C\" __global__ void __launch_bounds__(256, 1) rc_util_adam(rc_uargs a)\n" \
"{\n" \
"    const long long k = (long long)blockIdx.x * 256 + threadIdx.x;\n" \
"    if (k < a.n) {\n" \
"        double w = a.w[k], g = a.g[k];\n" \
"        if (a.adamw) w *= 1.0 - a.lr * a.wd;\n" \
"        else g += a.wd * w;\n" \
"        const double mk = a.m[k] + (1.0 - a.b1) * (g - a.m[k]);\n" \
"        const double vk = a.b2 * a.v[k] + (1.0 - a.b2) * g * g;\n" \
"        a.m[k] = (float)mk;\n" \
"        a.v[k] = (float)vk;\n" \
"        const double lr = k >= a.fast_lo && k < a.fast_hi ? a.lr * a.fast_mult : a.lr;\n" \
"        w -= (lr / a.bc1) * mk / (sqrt(vk) / a.bc2s + a.eps);\n" \
"        a.w[k] = (float)w;\n" \
"    }\n" \
"}\n" \
"\n" \
"/* Poisson NLL (kind 0), MSE (kind 1) or log-input Poisson NLL (kind 2) plus L1 activity\n" \
" * (runtime/loss.c, rc_loss order): dy per element,\n" \
" * per-block partial sums (data term, sum |pred|) in part[2*block], part[2*block+1]. */\n" \
"extern \"C\" __global__ void __launch_bounds__(256, 1) rc_util_loss(rc_uargs a)\n" \
"{\n" \
"    __shared__ double s_r[32];\n" \
"    const long long k = (long long)blockIdx.x * 256 + threadIdx.x;\n" \
"    double sd = 0.0, sa = 0.0;\n" \
"    if (k < a.n) {\n" \
"        const double p = a.pred[k], t = a.target[k], inv = 1.0 / (double)a.n;\n" \
"        double g;\n" \
"        if (a.kind == 1) { sd = (p - t) * (p - t); g = 2.0 * (p - t) * inv; }\n" \
"        else if (a.kind == 2) { const double e = exp(p); sd = e - t * p; g = (e - t) * inv; }\n" \
"        else { sd = p - t * log(p + 1e-8); g = (1.0 - t / (p + 1e-8)) * inv; }\n" \
"        sa = fabs(p);\n" \
"        g += a.l1c * (p > 0.0 ? 1.0 : (p < 0.0 ? -1.0 : 0.0));\n" \
"        a.dy[k] = (float)g;\n" \
"    }\n" \
"    sd = rc_block_sum(sd, s_r);\n" \
"    sa = rc_block_sum(sa, s_r);\n" \
"    if (threadIdx.x == 0) { a.part[2 * blockIdx.x] = sd; a.part[2 * blockIdx.x + 1] = sa; }\n" \
"}\n"

static const char util_source[] = "/* retinac utility kernels (" RC_CUDA_GEN_VERSION ") */\n" RC_DEV_PRELUDE "\n" UTIL_KERNELS;

const char *rc_cuda_util_source(void) { return util_source; }
