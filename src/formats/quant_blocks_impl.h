/* quant_blocks_impl.h: the on-disk block layouts of GGML's quantized types (as stored in
 * GGUF; ref: ggml/src/ggml-common.h). Shared by dequantization (src/formats) and the CPU
 * kernels (src/backend/cpu). Half floats are stored as uint16_t (IEEE binary16). */
#ifndef SA_QUANT_BLOCKS_IMPL_H
#define SA_QUANT_BLOCKS_IMPL_H

#include <assert.h>
#include <stdint.h>

#define SA_QK4_0 32
#define SA_QK4_1 32
#define SA_QK5_0 32
#define SA_QK5_1 32
#define SA_QK8_0 32
#define SA_QK8_1 32
#define SA_QK_K 256
#define SA_K_SCALE_SIZE 12

typedef struct { uint16_t d; uint8_t qs[SA_QK4_0 / 2]; } sa_block_q4_0;                 /* 18 B */
typedef struct { uint16_t d, m; uint8_t qs[SA_QK4_1 / 2]; } sa_block_q4_1;              /* 20 B */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[SA_QK5_0 / 2]; } sa_block_q5_0;  /* 22 B */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[SA_QK5_1 / 2]; } sa_block_q5_1; /* 24 B */
typedef struct { uint16_t d; int8_t qs[SA_QK8_0]; } sa_block_q8_0;                     /* 34 B */
typedef struct { uint16_t d, s; int8_t qs[SA_QK8_1]; } sa_block_q8_1;                  /* 36 B: s = d * sum(qs) */

/* K-quants: super-blocks of 256 */
typedef struct {
    uint8_t scales[SA_QK_K / 16]; /* 4-bit scales and mins */
    uint8_t qs[SA_QK_K / 4];      /* 2-bit quants */
    uint16_t d, dmin;
} sa_block_q2_K; /* 84 B */
typedef struct {
    uint8_t hmask[SA_QK_K / 8]; /* high bit */
    uint8_t qs[SA_QK_K / 4];    /* low 2 bits */
    uint8_t scales[12];         /* 6-bit scales */
    uint16_t d;
} sa_block_q3_K; /* 110 B */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[SA_K_SCALE_SIZE]; /* 6-bit scales and mins */
    uint8_t qs[SA_QK_K / 2];         /* 4-bit quants */
} sa_block_q4_K; /* 144 B */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[SA_K_SCALE_SIZE];
    uint8_t qh[SA_QK_K / 8];
    uint8_t qs[SA_QK_K / 2];
} sa_block_q5_K; /* 176 B */
typedef struct {
    uint8_t ql[SA_QK_K / 2];     /* low 4 bits */
    uint8_t qh[SA_QK_K / 4];     /* high 2 bits */
    int8_t scales[SA_QK_K / 16]; /* 8-bit scales */
    uint16_t d;
} sa_block_q6_K; /* 210 B */
typedef struct {
    float d;
    int8_t qs[SA_QK_K];
    int16_t bsums[SA_QK_K / 16];
} sa_block_q8_K; /* 292 B: activations for K-quant dot products */

static_assert(sizeof(sa_block_q4_0) == 18, "q4_0");
static_assert(sizeof(sa_block_q4_1) == 20, "q4_1");
static_assert(sizeof(sa_block_q5_0) == 22, "q5_0");
static_assert(sizeof(sa_block_q5_1) == 24, "q5_1");
static_assert(sizeof(sa_block_q8_0) == 34, "q8_0");
static_assert(sizeof(sa_block_q8_1) == 36, "q8_1");
static_assert(sizeof(sa_block_q2_K) == 84, "q2_K");
static_assert(sizeof(sa_block_q3_K) == 110, "q3_K");
static_assert(sizeof(sa_block_q4_K) == 144, "q4_K");
static_assert(sizeof(sa_block_q5_K) == 176, "q5_K");
static_assert(sizeof(sa_block_q6_K) == 210, "q6_K");
static_assert(sizeof(sa_block_q8_K) == 292, "q8_K");

#endif
