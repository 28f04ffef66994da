/* rng.h — counter-based random numbers shared by every backend.
 *
 * Noise and dropout in training are a pure function of (seed, layer, index), so the reference,
 * the generated C and the generated CUDA draw the same numbers with no RNG state to carry and no
 * ordering constraint between threads. The text of this file is pasted verbatim into generated
 * sources (C and CUDA): keep it self-contained C99 using only RC_RNG_QUAL, uint64_t, logf, cosf,
 * sqrtf. Generated code defines RC_RNG_QUAL (e.g. "static inline" or "__device__ static inline").
 */
#ifndef RC_RNG_H
#define RC_RNG_H
#ifndef RC_RNG_QUAL
#include <stdint.h>
#include <math.h>
#define RC_RNG_QUAL static inline
#endif

/* splitmix64 finalizer: a bijective 64-bit mix. */
RC_RNG_QUAL uint64_t rc_rng_mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): 24 random bits, never 0 (safe for logf). */
RC_RNG_QUAL float rc_rng_uniform(uint64_t seed, uint64_t layer, uint64_t idx)
{
    uint64_t z = rc_rng_mix(seed ^ rc_rng_mix(layer * 0xD1B54A32D192ED03ull + idx));
    return ((float)(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

/* Standard normal by Box-Muller over two independent uniforms of the same counter. */
RC_RNG_QUAL float rc_rng_normal(uint64_t seed, uint64_t layer, uint64_t idx)
{
    float u1 = rc_rng_uniform(seed, layer, 2 * idx);
    float u2 = rc_rng_uniform(seed, layer, 2 * idx + 1);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}
#endif
