/* rng.h — counter-based random numbers shared by every backend.
 *
 * Noise and dropout in training are a pure function of (seed, layer, index), so the reference,
 * the generated C and the generated CUDA draw the same numbers with no RNG state to carry and no
 * ordering constraint between threads. The text of this file is pasted verbatim into generated
 * sources (C and CUDA): keep it self-contained C99 using only RC_RNG_QUAL and uint64_t (no libm:
 * the Box-Muller logarithm, cosine and square root are branch-free polynomials here, so the
 * draws vectorize inside fused passes, need no errno handling, and every backend runs the same
 * float operations). Generated code defines RC_RNG_QUAL (e.g. "static inline" or
 * "__device__ static inline").
 */
#ifndef RC_RNG_H
#define RC_RNG_H
#ifndef RC_RNG_QUAL
#include <stdint.h>
#define RC_RNG_QUAL static inline
#endif

/* Streams (the `layer` argument of the draws), one per place that draws in training:
 *   noise or dropout at 0-based layer i:                  RC_RNG_STREAM(i, 0)
 *   dropout after sub-conv s of a stacked conv at layer i: RC_RNG_STREAM(i, s + 1)
 * The element index is b * (C*H*W) + (c*H + h)*W + w of the tensor the draw applies to; dropout
 * keeps an element when rc_rng_uniform(...) >= p and scales kept ones by 1/(1-p). */
#define RC_RNG_STREAM(layer, sub) ((uint64_t)(layer) * 64u + (uint64_t)(sub))

/* splitmix64 finalizer: a bijective 64-bit mix. */
RC_RNG_QUAL uint64_t rc_rng_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): 24 random bits, never 0 (safe for the logarithm). */
RC_RNG_QUAL float rc_rng_uniform(uint64_t seed, uint64_t layer, uint64_t idx)
{
    uint64_t z = rc_rng_mix(seed ^ rc_rng_mix(layer * 0xD1B54A32D192ED03ull + idx));
    return ((float)(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

/* Branch-free float math for Box-Muller (no libm: vectorizes, no errno, the same operations on
 * every backend). Relative error <= ~2e-7 on the ranges used. */
RC_RNG_QUAL float rc_rng__ln(float u)   /* ln u for normal u > 0 */
{
    union { float f; unsigned int b; } x;
    x.f = u;
    int e = (int)((x.b >> 23) & 255u) - 126;          /* u = m 2^e, m in [0.5, 1) */
    x.b = (x.b & 0x007FFFFFu) | 0x3F000000u;
    float m = x.f;
    int lo = m < 0.70710678f;                          /* m in [sqrt(1/2), sqrt(2)) */
    m = lo ? m + m : m;
    e = lo ? e - 1 : e;
    float t = (m - 1.0f) / (m + 1.0f), t2 = t * t;    /* ln m = 2 atanh t, |t| < 0.172 */
    float p = 2.0f + t2 * (0.6666666667f + t2 * (0.4f + t2 * (0.2857142857f + t2 * 0.2222222222f)));
    return (float)e * 0.6931471806f + t * p;
}

RC_RNG_QUAL float rc_rng__cos2pi(float u)   /* cos(2 pi u), 0 <= u < 1 */
{
    float y = u > 0.5f ? 1.0f - u : u;                 /* cos is even and 1-periodic */
    float s = y > 0.25f ? -1.0f : 1.0f;
    y = y > 0.25f ? 0.5f - y : y;                      /* y in [0, 1/4] */
    float a = 6.2831853072f * y, a2 = a * a;
    float c = 1.0f + a2 * (-0.5f + a2 * (4.166666667e-2f + a2 * (-1.388888889e-3f +
              a2 * (2.480158730e-5f + a2 * (-2.755731922e-7f + a2 * 2.087675699e-9f)))));
    return s * c;
}

RC_RNG_QUAL float rc_rng__sqrt(float v)   /* sqrt v for normal v > 0: Newton on 1/sqrt */
{
    union { float f; unsigned int b; } x;
    x.f = v;
    x.b = 0x5F3759DFu - (x.b >> 1);
    float r = x.f;
    r = r * (1.5f - 0.5f * v * r * r);
    r = r * (1.5f - 0.5f * v * r * r);
    r = r * (1.5f - 0.5f * v * r * r);
    return v * r;
}

/* Standard normal by Box-Muller over two independent uniforms of the same counter. */
RC_RNG_QUAL float rc_rng_normal(uint64_t seed, uint64_t layer, uint64_t idx)
{
    float u1 = rc_rng_uniform(seed, layer, 2 * idx);
    float u2 = rc_rng_uniform(seed, layer, 2 * idx + 1);
    return rc_rng__sqrt(-2.0f * rc_rng__ln(u1)) * rc_rng__cos2pi(u2);
}
#endif
