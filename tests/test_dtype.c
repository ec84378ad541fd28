/* test_dtype.c: tensor types: the type table, half and bfloat16 conversion (special values
 * and round-to-nearest-even, exhaustively over every half/bf16 value and every midpoint),
 * quantize/dequantize round trips and hand-made blocks of the quantized types.
 * Bit-exactness against gguf-py is checked by tests/py/test_gguf_ref.py. */
#include "formats/quant_blocks_impl.h"
#include "harness.h"
#include "sa/dtype.h"

#include <stdint.h>
#include <stdlib.h>

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_type_table(void) {
    static const struct {
        enum sa_dtype t;
        const char *name;
        size_t bs, ts;
    } want[] = {
        {SA_DTYPE_F32, "f32", 1, 4},     {SA_DTYPE_F16, "f16", 1, 2},       {SA_DTYPE_Q4_0, "q4_0", 32, 18},
        {SA_DTYPE_Q4_1, "q4_1", 32, 20}, {SA_DTYPE_Q5_0, "q5_0", 32, 22},   {SA_DTYPE_Q5_1, "q5_1", 32, 24},
        {SA_DTYPE_Q8_0, "q8_0", 32, 34}, {SA_DTYPE_Q8_1, "q8_1", 32, 36},   {SA_DTYPE_Q2_K, "q2_k", 256, 84},
        {SA_DTYPE_Q3_K, "q3_k", 256, 110}, {SA_DTYPE_Q4_K, "q4_k", 256, 144}, {SA_DTYPE_Q5_K, "q5_k", 256, 176},
        {SA_DTYPE_Q6_K, "q6_k", 256, 210}, {SA_DTYPE_Q8_K, "q8_k", 256, 292}, {SA_DTYPE_I8, "i8", 1, 1},
        {SA_DTYPE_I16, "i16", 1, 2},     {SA_DTYPE_I32, "i32", 1, 4},       {SA_DTYPE_I64, "i64", 1, 8},
        {SA_DTYPE_F64, "f64", 1, 8},     {SA_DTYPE_BF16, "bf16", 1, 2},
    };
    int n_known = 0;
    for (uint32_t t = 0; t < 200; t++) n_known += sa_dtype_is_known(t);
    CHECK_EQ_INT(n_known, (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK(sa_dtype_is_known(want[i].t));
        CHECK_EQ_STR(sa_dtype_name(want[i].t), want[i].name);
        CHECK_EQ_INT(sa_dtype_block_size(want[i].t), want[i].bs);
        CHECK_EQ_INT(sa_dtype_type_size(want[i].t), want[i].ts);
        enum sa_dtype back = SA_DTYPE_COUNT;
        CHECK_OK(sa_dtype_from_name(want[i].name, &back));
        CHECK_EQ_INT(back, want[i].t);
    }
    enum sa_dtype t;
    CHECK(sa_dtype_from_name("Q4_K", &t) == SA_STATUS_OK && t == SA_DTYPE_Q4_K);
    CHECK(sa_dtype_from_name("BF16", &t) == SA_STATUS_OK && t == SA_DTYPE_BF16);
    CHECK_EQ_INT(sa_dtype_from_name("q4", &t), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'q4'") != NULL);
    CHECK_EQ_INT(sa_dtype_from_name("q4_k_m", &t), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_dtype_from_name("", &t), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_dtype_from_name(NULL, &t), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(t, SA_DTYPE_BF16); /* unchanged on error */
    CHECK_OK(sa_dtype_from_name("f16", NULL)); /* out may be NULL: a check */
    CHECK(sa_dtype_name((enum sa_dtype)4) == NULL);
    CHECK(sa_dtype_name((enum sa_dtype)1000) == NULL);
    CHECK_EQ_INT(sa_dtype_block_size((enum sa_dtype)17), 0);
    CHECK_EQ_INT(sa_dtype_type_size((enum sa_dtype)17), 0);
    CHECK(!sa_dtype_is_known(4) && !sa_dtype_is_known(16) && !sa_dtype_is_known(SA_DTYPE_COUNT));
}

static void test_row_bytes(void) {
    uint64_t b = 0;
    CHECK(sa_dtype_row_bytes(SA_DTYPE_F32, 7, &b) && b == 28);
    CHECK(sa_dtype_row_bytes(SA_DTYPE_Q4_0, 64, &b) && b == 36);
    CHECK(sa_dtype_row_bytes(SA_DTYPE_Q6_K, 512, &b) && b == 420);
    CHECK(sa_dtype_row_bytes(SA_DTYPE_Q8_0, 0, &b) && b == 0);
    CHECK(!sa_dtype_row_bytes(SA_DTYPE_Q4_0, 33, &b));
    CHECK(!sa_dtype_row_bytes(SA_DTYPE_Q4_K, 128, &b));
    CHECK(!sa_dtype_row_bytes((enum sa_dtype)16, 256, &b));
    CHECK(!sa_dtype_row_bytes(SA_DTYPE_F64, UINT64_MAX, &b));                  /* 8 * 2^64 overflows */
    CHECK(!sa_dtype_row_bytes(SA_DTYPE_Q8_K, (UINT64_MAX / 256) * 256, &b)); /* 292 per 256 overflows */
    CHECK(sa_dtype_row_bytes(SA_DTYPE_Q4_0, (UINT64_MAX / 32) * 32, &b));    /* 18 per 32 fits */
}

static void test_f16_special(void) {
    CHECK(sa_f16_to_f32(0x3c00) == 1.0f);
    CHECK(sa_f16_to_f32(0xc000) == -2.0f);
    CHECK(sa_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(sa_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(sa_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(sa_f16_to_f32(0x0400) == 0x1p-14f);
    CHECK(sa_f16_to_f32(0x3555) == 0x1.554p-2f);
    CHECK_EQ_INT(bits(sa_f16_to_f32(0x8000)), 0x80000000u);
    CHECK(isinf(sa_f16_to_f32(0x7c00)) && sa_f16_to_f32(0x7c00) > 0);
    CHECK(isinf(sa_f16_to_f32(0xfc00)) && sa_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(sa_f16_to_f32(0x7e00)) && isnan(sa_f16_to_f32(0x7c01)) && isnan(sa_f16_to_f32(0xffff)));
    CHECK_EQ_INT(bits(sa_f16_to_f32(0x7e01)), 0x7fc02000u); /* payload kept */

    CHECK_EQ_INT(sa_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(sa_f32_to_f16(-0.0f), 0x8000);
    CHECK_EQ_INT(sa_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(sa_f32_to_f16(65519.996f), 0x7bff);
    CHECK_EQ_INT(sa_f32_to_f16(65520.0f), 0x7c00); /* the tie goes to even: inf */
    CHECK_EQ_INT(sa_f32_to_f16(1e10f), 0x7c00);
    CHECK_EQ_INT(sa_f32_to_f16(-1e10f), 0xfc00);
    CHECK_EQ_INT(sa_f32_to_f16(INFINITY), 0x7c00);
    CHECK_EQ_INT(sa_f32_to_f16(-INFINITY), 0xfc00);
    uint16_t hn = sa_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) && (hn & 0x200)); /* quiet NaN */
    CHECK((sa_f32_to_f16(from_bits(0x7f800001)) & 0x7fff) > 0x7c00); /* signalling NaN stays NaN */
    CHECK_EQ_INT(sa_f32_to_f16(0x1p-24f), 0x0001);
    CHECK_EQ_INT(sa_f32_to_f16(0x1p-25f), 0x0000);           /* tie to even 0 */
    CHECK_EQ_INT(sa_f32_to_f16(0x1.000002p-25f), 0x0001);    /* just above the tie */
    CHECK_EQ_INT(sa_f32_to_f16(0x1.8p-24f), 0x0002);         /* 1.5 ulp: tie to even 2 */
    CHECK_EQ_INT(sa_f32_to_f16(0x1p-26f), 0x0000);
    CHECK_EQ_INT(sa_f32_to_f16(-0x1p-26f), 0x8000);
    CHECK_EQ_INT(sa_f32_to_f16(1e-30f), 0x0000);
    CHECK_EQ_INT(sa_f32_to_f16(0x1.ff8p-15f), 0x03ff);      /* largest subnormal */
    CHECK_EQ_INT(sa_f32_to_f16(0x1.ffcp-15f), 0x0400);      /* tie rounds up into the normals */
    CHECK_EQ_INT(sa_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie to even */
    CHECK_EQ_INT(sa_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie to even (up) */
    CHECK_EQ_INT(sa_f32_to_f16(0.1f), 0x2e66);
}

/* Every half value round-trips; every midpoint between neighbours rounds to the even one,
 * and the floats just beside it to the nearer one. */
static void test_f16_exhaustive(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = sa_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
            bad += !isnan(f) || (sa_f32_to_f16(f) & 0x7fff) <= 0x7c00;
            continue;
        }
        bad += sa_f32_to_f16(f) != h;
        if ((h & 0x7fff) >= 0x7bff) continue; /* the last finite and inf have no finite successor */
        float g = sa_f16_to_f32((uint16_t)(h + 1)), mid = (f + g) / 2; /* exact: 12 significant bits */
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        bad += sa_f32_to_f16(mid) != even;
        bad += sa_f32_to_f16(nextafterf(mid, f)) != h;
        bad += sa_f32_to_f16(nextafterf(mid, g)) != h + 1;
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_bf16(void) {
    CHECK_EQ_INT(sa_f32_to_bf16(1.0f), 0x3f80);
    CHECK(sa_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(sa_bf16_to_f32(0xc040) == -3.0f);
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x3f808000)), 0x3f80); /* tie to even (down) */
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x3f818000)), 0x3f82); /* tie to even (up) */
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x3f808001)), 0x3f81);
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x3f807fff)), 0x3f80);
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to inf */
    CHECK_EQ_INT(sa_f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(sa_f32_to_bf16(-INFINITY), 0xff80);
    CHECK_EQ_INT(sa_f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x7f800001)), 0x7fc0); /* signalling NaN made quiet */
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0xffc12345)), 0xffc1);
    CHECK_EQ_INT(sa_f32_to_bf16(from_bits(0x00008000)), 0x0000); /* subnormal tie to even */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = sa_bf16_to_f32((uint16_t)h);
        bad += bits(f) != h << 16;
        if (!isnan(f)) bad += sa_f32_to_bf16(f) != h;
    }
    CHECK_EQ_INT(bad, 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rndf(float scale) { return ((float)(rnd() & 0xffffff) / 0x800000 - 1.0f) * scale; }

static void test_quantize_round_trip(void) {
    enum { N = 32 * 64 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
    uint8_t *q = malloc(N * 4);
    for (int i = 0; i < N; i++) x[i] = rndf(i % 97 == 0 ? 50.0f : 2.0f);
    x[0] = 0;
    /* F32: identity */
    CHECK_OK(sa_quantize(SA_DTYPE_F32, x, q, N));
    CHECK_OK(sa_dequantize(SA_DTYPE_F32, q, y, N));
    CHECK(!memcmp(x, y, N * sizeof *x));
    /* F16/BF16: each element equals the scalar conversion */
    int bad = 0;
    CHECK_OK(sa_quantize(SA_DTYPE_F16, x, q, N));
    CHECK_OK(sa_dequantize(SA_DTYPE_F16, q, y, N));
    for (int i = 0; i < N; i++) {
        uint16_t h;
        memcpy(&h, q + 2 * i, 2);
        bad += h != sa_f32_to_f16(x[i]) || bits(y[i]) != bits(sa_f16_to_f32(h));
        bad += fabsf(x[i] - y[i]) > fabsf(x[i]) * 0x1p-11f + 0x1p-25f;
    }
    CHECK_OK(sa_quantize(SA_DTYPE_BF16, x, q, N));
    CHECK_OK(sa_dequantize(SA_DTYPE_BF16, q, y, N));
    for (int i = 0; i < N; i++) bad += fabsf(x[i] - y[i]) > fabsf(x[i]) * 0x1p-8f;
    CHECK_EQ_INT(bad, 0);
    /* Q8_0: error within half a step (+ the f16 rounding of the scale) */
    CHECK_OK(sa_quantize(SA_DTYPE_Q8_0, x, q, N));
    CHECK_OK(sa_dequantize(SA_DTYPE_Q8_0, q, y, N));
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127;
        for (int j = 0; j < 32; j++) bad += fabsf(x[b * 32 + j] - y[b * 32 + j]) > d * 0.57f;
        uint16_t dh;
        memcpy(&dh, q + 34 * b, 2);
        bad += dh != sa_f32_to_f16(d);
    }
    CHECK_EQ_INT(bad, 0);
    /* an exact block: amax 127 -> d = 1, q = round(x) with ties away from zero */
    float e[32] = {127, -127, 0.5f, -0.5f, 1.5f, -2.5f, 3.49f, 0};
    CHECK_OK(sa_quantize(SA_DTYPE_Q8_0, e, q, 32));
    const int8_t *qs = (const int8_t *)(q + 2);
    CHECK_EQ_INT(q[0] | q[1] << 8, 0x3c00);
    CHECK(qs[0] == 127 && qs[1] == -127 && qs[2] == 1 && qs[3] == -1 && qs[4] == 2 && qs[5] == -3 && qs[6] == 3 && qs[7] == 0);
    /* all zeros: d = 0, q = 0 */
    float z[32] = {0};
    CHECK_OK(sa_quantize(SA_DTYPE_Q8_0, z, q, 32));
    int nz = 0;
    for (int i = 0; i < 34; i++) nz += q[i] != 0;
    CHECK_EQ_INT(nz, 0);
    free(x);
    free(y);
    free(q);
}

static void put_half(uint8_t *p, uint16_t h) { memcpy(p, &h, 2); }

/* Hand-made blocks with known values for each quantized type. */
static void test_dequant_blocks(void) {
    uint8_t blk[512];
    float y[256];
    /* Q4_0: d = 1, qs[0] = 0x21 -> y[0] = 1 - 8, y[16] = 2 - 8 */
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x3c00);
    blk[2] = 0x21;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q4_0, blk, y, 32));
    CHECK(y[0] == -7 && y[16] == -6 && y[1] == -8);
    /* Q4_1: d = 2, m = 0.5 */
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x4000);
    put_half(blk + 2, 0x3800);
    blk[4] = 0xf3;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q4_1, blk, y, 32));
    CHECK(y[0] == 6.5f && y[16] == 30.5f && y[1] == 0.5f);
    /* Q5_0: d = 1, qh bit 0 and bit 16 set, qs[0] = 0xff -> (15 | 16) - 16 = 15 */
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x3c00);
    blk[2] = 0x01;
    blk[4] = 0x01;
    blk[6] = 0xff;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q5_0, blk, y, 32));
    CHECK(y[0] == 15 && y[16] == 15 && y[1] == -16 && y[17] == -16);
    /* Q5_1: d = 1, m = -1, element 31 with its high bit */
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x3c00);
    put_half(blk + 2, 0xbc00);
    blk[7] = 0x80; /* qh bit 31 */
    blk[8 + 15] = 0x70;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q5_1, blk, y, 32));
    CHECK(y[31] == 22 && y[0] == -1);
    /* Q8_0 / Q8_1: d = 0.5 */
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x3800);
    blk[2] = 0x80; /* -128 */
    blk[3] = 7;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q8_0, blk, y, 32));
    CHECK(y[0] == -64 && y[1] == 3.5f);
    memset(blk, 0, sizeof blk);
    put_half(blk, 0x3800);
    blk[4] = 0x80;
    CHECK_OK(sa_dequantize(SA_DTYPE_Q8_1, blk, y, 32));
    CHECK(y[0] == -64 && y[1] == 0);
    /* Q2_K: scale 1, min 1 everywhere, all quants 3 -> 3 - 1 = 2 */
    memset(blk, 0, sizeof blk);
    memset(blk + offsetof(sa_block_q2_K, scales), 0x11, 16);
    memset(blk + offsetof(sa_block_q2_K, qs), 0xff, 64);
    put_half(blk + offsetof(sa_block_q2_K, d), 0x3c00);
    put_half(blk + offsetof(sa_block_q2_K, dmin), 0x3c00);
    CHECK_OK(sa_dequantize(SA_DTYPE_Q2_K, blk, y, 256));
    CHECK(y[0] == 2 && y[255] == 2);
    /* Q3_K: zero scales mean -32, zero hmask subtracts 4 -> 128 */
    memset(blk, 0, sizeof blk);
    put_half(blk + offsetof(sa_block_q3_K, d), 0x3c00);
    blk[offsetof(sa_block_q3_K, hmask)] = 0x01; /* element 0: no -4 */
    CHECK_OK(sa_dequantize(SA_DTYPE_Q3_K, blk, y, 256));
    CHECK(y[0] == 0 && y[1] == 128 && y[255] == 128);
    /* Q4_K: every scale 1, min 0, qs 0x21 -> 1 (low nibbles) and 2 (high nibbles) */
    memset(blk, 0, sizeof blk);
    put_half(blk + offsetof(sa_block_q4_K, d), 0x3c00);
    uint8_t *sc = blk + offsetof(sa_block_q4_K, scales);
    sc[0] = sc[1] = sc[2] = sc[3] = 1;
    sc[8] = sc[9] = sc[10] = sc[11] = 1;
    memset(blk + offsetof(sa_block_q4_K, qs), 0x21, 128);
    CHECK_OK(sa_dequantize(SA_DTYPE_Q4_K, blk, y, 256));
    CHECK(y[0] == 1 && y[31] == 1 && y[32] == 2 && y[255] == 2);
    /* Q5_K: the same plus every high bit: +16 */
    memset(blk, 0, sizeof blk);
    put_half(blk + offsetof(sa_block_q5_K, d), 0x3c00);
    sc = blk + offsetof(sa_block_q5_K, scales);
    sc[0] = sc[1] = sc[2] = sc[3] = 1;
    sc[8] = sc[9] = sc[10] = sc[11] = 1;
    memset(blk + offsetof(sa_block_q5_K, qs), 0x21, 128);
    memset(blk + offsetof(sa_block_q5_K, qh), 0xff, 32);
    CHECK_OK(sa_dequantize(SA_DTYPE_Q5_K, blk, y, 256));
    CHECK(y[0] == 17 && y[32] == 18 && y[255] == 18);
    /* Q6_K: scale 1, zero quants -> -32 */
    memset(blk, 0, sizeof blk);
    put_half(blk + offsetof(sa_block_q6_K, d), 0x3c00);
    memset(blk + offsetof(sa_block_q6_K, scales), 1, 16);
    CHECK_OK(sa_dequantize(SA_DTYPE_Q6_K, blk, y, 256));
    CHECK(y[0] == -32 && y[255] == -32);
    /* Q8_K: f32 d = 0.25 */
    memset(blk, 0, sizeof blk);
    float d = 0.25f;
    memcpy(blk, &d, 4);
    blk[4] = 0xfc; /* -4 */
    CHECK_OK(sa_dequantize(SA_DTYPE_Q8_K, blk, y, 256));
    CHECK(y[0] == -1 && y[1] == 0);
}

static void test_errors(void) {
    float y[64] = {0};
    uint8_t q[256] = {0};
    CHECK_EQ_INT(sa_dequantize(SA_DTYPE_Q4_0, q, y, 33), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_dequantize(SA_DTYPE_Q4_0, q, y, -32), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(sa_dequantize(SA_DTYPE_I32, q, y, 4), SA_STATUS_UNSUPPORTED);
    CHECK_EQ_INT(sa_dequantize((enum sa_dtype)16, q, y, 256), SA_STATUS_UNSUPPORTED);
    CHECK_OK(sa_dequantize(SA_DTYPE_Q4_0, NULL, NULL, 0));
    CHECK_EQ_INT(sa_quantize(SA_DTYPE_Q4_0, y, q, 32), SA_STATUS_UNSUPPORTED);
    CHECK_EQ_INT(sa_quantize(SA_DTYPE_Q8_0, y, q, 31), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "block size") != NULL);
}

int main(void) {
    RUN(test_type_table);
    RUN(test_row_bytes);
    RUN(test_f16_special);
    RUN(test_f16_exhaustive);
    RUN(test_bf16);
    RUN(test_quantize_round_trip);
    RUN(test_dequant_blocks);
    RUN(test_errors);
    return harness_summary();
}
