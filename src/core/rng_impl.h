/* rng_impl.h: the library's seeded PRNG: xoshiro256** (Blackman & Vigna, "Scrambled
 * linear pseudorandom number generators", 2018; ref: https://prng.di.unimi.it/), seeded
 * through splitmix64 so that any 64-bit seed (0 included) gives a good state. The same
 * seed gives the same stream on every platform. Not part of the public API. In core because
 * the sampler, data, eval and training all draw from it. */
#ifndef SA_RNG_IMPL_H
#define SA_RNG_IMPL_H

#include <stdint.h>

struct sa_rng {
    uint64_t s[4];
};

void sa_rng_seed(struct sa_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t sa_rng_next(struct sa_rng *r);
/* Uniform double in [0, 1) with 53 random bits. */
double sa_rng_uniform(struct sa_rng *r);
/* A seed from the clock and the process id (for "random" seeds). */
uint64_t sa_rng_entropy_seed(void);
/* One splitmix64 step as a hash: the finaliser of x + 0x9E3779B97F4A7C15 (seeds derived from
 * (seed, counters): training, rollout labelling). */
static inline uint64_t sa_rng_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#endif
