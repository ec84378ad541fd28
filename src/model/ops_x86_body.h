/* ops_x86_body.h: the SIMD attention and element-wise kernels of ops.c, written once over a
 * small vector vocabulary (V* macros, W lanes) and compiled twice by ops.c: for AVX2+FMA
 * (W = 8) and for AVX-512 (W = 16), each under its own `#pragma GCC target`. Included only by
 * ops.c, which defines W, JR (keys per score tile), RR (rows per P.V tile), FN(name) and the
 * V* macros before each inclusion.
 *
 * Attention for T > 1 (and for every T in batch-invariant mode) is flash-attention style
 * (Dao et al. 2022, "FlashAttention", online softmax of Milakov & Gimelshein 2018): a work
 * item is one KV head and up to 2W query rows (a few tokens x the heads of its group), the
 * rows living in SIMD lanes. For each block of BK keys (blocks aligned to absolute key
 * positions): scores S^T (keys x lanes) = K_blk . Q^T with the queries transposed once per
 * item (so each key element is broadcast and the lanes give 2W dot products at once), the
 * causal / sliding-window mask per lane, the running max and sum per lane, the output rows
 * rescaled when the max grows, and O += P . V_blk accumulated straight into `out`. Each lane's
 * arithmetic is the same whatever the other lanes hold and wherever the item's blocks start
 * (a block a lane cannot see leaves it unchanged bit for bit), so a query's output does not
 * depend on T, pos0 or the item split: batch-invariant.
 * Decode (T = 1) reads each key row once per head: dot products along head_dim, one softmax
 * pass over the score row, then P . V. */

#define BK 64 /* keys per block */
#define LANES (2 * W)

/* e^x for x <= 88.3 (larger x are clamped; x below -87.3 gives ~1e-38, callers mask where
 * they need an exact 0). Cephes expf: x = n ln2 + r, |r| <= ln2/2, degree-5 polynomial,
 * 2^n through the exponent bits. exp(0) == 1 exactly. Max error ~2 ulp. */
SA_INLINE VF FN(vexp)(VF x) {
    x = VMIN(VMAX(x, VSET1(-87.3f)), VSET1(88.3f));
    VF n = VROUND(VMUL(x, VSET1(1.44269504088896341f)));
    VF r = VFMA(n, VSET1(-0.693359375f), x);
    r = VFMA(n, VSET1(2.12194440e-4f), r);
    VF p = VSET1(1.9875691500e-4f);
    p = VFMA(p, r, VSET1(1.3981999507e-3f));
    p = VFMA(p, r, VSET1(8.3334519073e-3f));
    p = VFMA(p, r, VSET1(4.1665795894e-2f));
    p = VFMA(p, r, VSET1(1.6666665459e-1f));
    p = VFMA(p, r, VSET1(5.0000001201e-1f));
    p = VFMA(p, VMUL(r, r), VADD(r, VSET1(1.0f)));
    return VMUL(p, VPOW2I(n));
}

/* cap * tanh(s / cap), tanh(y) = 1 - 2 / (e^{2y} + 1) */
SA_INLINE VF FN(vsoftcap)(VF s, float cap) {
    VF e = FN(vexp)(VMUL(s, VSET1(2.0f / cap)));
    VF t = VSUB(VSET1(1.0f), VDIV(VSET1(2.0f), VADD(e, VSET1(1.0f))));
    return VMUL(t, VSET1(cap));
}

/* ---- prefill: one (KV head, query rows) item ---- */

struct FN(item) {
    const struct sa_attn_args *a;
    int64_t g;         /* KV head */
    int64_t M;         /* query rows (lanes) in use, <= LANES */
    float *qt;         /* (D, LANES) queries * scale, transposed */
    float *st;         /* (BK, LANES) scores, then probabilities */
    float *orow[LANES]; /* output row of each lane */
};

/* Scores of keys j0 .. j0+JR-1 (nv = 1 or 2 lane vectors) into st rows jr0.. */
SA_INLINE void FN(score_tile)(const struct FN(item) *it, int64_t j0, int64_t jr0, int nr, int nv) {
    const struct sa_attn_args *a = it->a;
    const int64_t D = a->head_dim, kvs = a->n_head_kv * D;
    const float *k = a->k + j0 * kvs + it->g * D;
    VF acc[JR][2];
#pragma GCC unroll 16
    for (int r = 0; r < JR; r++) acc[r][0] = acc[r][1] = VZERO();
    for (int64_t d = 0; d < D; d++) {
        const VF q0 = VLOAD(it->qt + d * LANES);
        const VF q1 = nv > 1 ? VLOAD(it->qt + d * LANES + W) : VZERO();
#pragma GCC unroll 16
        for (int r = 0; r < JR; r++) {
            if (r >= nr) break;
            const VF kb = VSET1(k[r * kvs + d]);
            acc[r][0] = VFMA(kb, q0, acc[r][0]);
            if (nv > 1) acc[r][1] = VFMA(kb, q1, acc[r][1]);
        }
    }
#pragma GCC unroll 16
    for (int r = 0; r < JR; r++) {
        if (r >= nr) break;
        VSTORE(it->st + (jr0 + r) * LANES, acc[r][0]);
        if (nv > 1) VSTORE(it->st + (jr0 + r) * LANES + W, acc[r][1]);
    }
}

/* out rows r0 .. r0+nr-1, columns c0 .. c0+nc*W-1 += sum_j st[j][r] * V[j] */
SA_INLINE void FN(pv_tile)(const struct FN(item) *it, int64_t j0, int64_t nk, int64_t r0, int nr, int64_t c0, int nc) {
    const struct sa_attn_args *a = it->a;
    const int64_t D = a->head_dim, kvs = a->n_head_kv * D;
    const float *v = a->v + j0 * kvs + it->g * D + c0;
    VF acc[RR][4];
#pragma GCC unroll 16
    for (int i = 0; i < RR; i++) {
        if (i >= nr) break;
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < nc) acc[i][u] = VLOAD(it->orow[r0 + i] + c0 + u * W);
    }
    for (int64_t j = 0; j < nk; j++) {
        VF vv[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < nc) vv[u] = VLOAD(v + j * kvs + u * W);
        const float *p = it->st + j * LANES + r0;
#pragma GCC unroll 16
        for (int i = 0; i < RR; i++) {
            if (i >= nr) break;
            const VF pb = VSET1(p[i]);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
                if (u < nc) acc[i][u] = VFMA(pb, vv[u], acc[i][u]);
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < RR; i++) {
        if (i >= nr) break;
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < nc) VSTORE(it->orow[r0 + i] + c0 + u * W, acc[i][u]);
    }
}

/* Query rows: tokens t0 .. t0+bq-1 x heads hb .. hb+hpi-1 of KV head g; lane = tq*hpi + hh.
 * qt: (D, LANES) and st: (BK, LANES) floats of the caller's scratch, 64-byte aligned. */
static void FN(attn_item)(const struct sa_attn_args *a, int64_t g, int64_t hb, int64_t hpi, int64_t t0, int64_t bq,
                          float *qt, float *st) {
    const int64_t D = a->head_dim, H = a->n_head;
    struct FN(item) it = {.a = a, .g = g, .M = bq * hpi, .qt = qt, .st = st};
    const int nv = it.M > W ? 2 : 1;
    float posf[LANES] __attribute__((aligned(64))), lof[LANES] __attribute__((aligned(64)));
    float m[LANES] __attribute__((aligned(64))), l[LANES] __attribute__((aligned(64)));
    float alpha[LANES] __attribute__((aligned(64)));
    for (int64_t ln = 0; ln < LANES; ln++) {
        m[ln] = -FLT_MAX;
        l[ln] = 0.0f;
        if (ln < it.M) {
            const int64_t t = t0 + ln / hpi, h = hb + ln % hpi, p = a->pos0 + t;
            posf[ln] = (float)p;
            lof[ln] = a->window > 0 ? (float)(p - a->window + 1) : 0.0f;
            const float *q = a->q + (t * H + h) * D;
            it.orow[ln] = a->out + (t * H + h) * D;
            for (int64_t d = 0; d < D; d++) qt[d * LANES + ln] = q[d] * a->scale;
            memset(it.orow[ln], 0, (size_t)D * sizeof(float));
        } else {
            posf[ln] = -1.0f; /* sees no key */
            lof[ln] = 0.0f;
            it.orow[ln] = NULL;
            for (int64_t d = 0; d < D; d++) qt[d * LANES + ln] = 0.0f;
        }
    }
    const int64_t p_min = a->pos0 + t0, p_max = a->pos0 + t0 + bq - 1;
    const int64_t lo_min = a->window > 0 && p_min - a->window + 1 > 0 ? p_min - a->window + 1 : 0;
    const int64_t lo_max = a->window > 0 && p_max - a->window + 1 > 0 ? p_max - a->window + 1 : 0;
    for (int64_t jb = lo_min / BK * BK; jb <= p_max; jb += BK) {
        const int64_t je = jb + BK < p_max + 1 ? jb + BK : p_max + 1, nk = je - jb;
        /* every lane sees every key of the block: no mask */
        const bool full = je - 1 <= p_min && jb >= lo_max;
        int64_t j = jb;
        if (nv == 2) {
            for (; j + JR <= je; j += JR) FN(score_tile)(&it, j, j - jb, JR, 2);
            for (; j < je; j++) FN(score_tile)(&it, j, j - jb, 1, 2);
        } else {
            for (; j + JR <= je; j += JR) FN(score_tile)(&it, j, j - jb, JR, 1);
            for (; j < je; j++) FN(score_tile)(&it, j, j - jb, 1, 1);
        }
        for (int v = 0; v < nv; v++) {
            const VF pos = VLOAD(posf + v * W), lo = VLOAD(lof + v * W), m_old = VLOAD(m + v * W);
            VF bmax = VSET1(-FLT_MAX);
            for (int64_t jj = 0; jj < nk; jj++) {
                float *sp = st + jj * LANES + v * W;
                VF s = VLOAD(sp);
                if (a->softcap > 0.0f) s = FN(vsoftcap)(s, a->softcap);
                if (!full) {
                    const VF jf = VSET1((float)(jb + jj));
                    s = VSELECT(VMAND(VCMP_LE(jf, pos), VCMP_LE(lo, jf)), s, VSET1(-FLT_MAX));
                }
                VSTORE(sp, s);
                bmax = VMAX(bmax, s);
            }
            const VF m_new = VMAX(m_old, bmax);
            const VF al = FN(vexp)(VSUB(m_old, m_new));
            VF sum = VZERO();
            for (int64_t jj = 0; jj < nk; jj++) {
                float *sp = st + jj * LANES + v * W;
                VF e = FN(vexp)(VSUB(VLOAD(sp), m_new));
                if (!full) {
                    const VF jf = VSET1((float)(jb + jj));
                    e = VSELECT(VMAND(VCMP_LE(jf, pos), VCMP_LE(lo, jf)), e, VZERO());
                }
                VSTORE(sp, e);
                sum = VADD(sum, e);
            }
            VSTORE(l + v * W, VFMA(VLOAD(l + v * W), al, sum));
            VSTORE(m + v * W, m_new);
            VSTORE(alpha + v * W, al);
        }
        for (int64_t r = 0; r < it.M; r++) {
            if (alpha[r] == 1.0f) continue; /* x * 1 == x: skipping it changes no bit */
            const VF al = VSET1(alpha[r]);
            for (int64_t d = 0; d < D; d += W) VSTORE(it.orow[r] + d, VMUL(VLOAD(it.orow[r] + d), al));
        }
        int64_t r = 0;
        for (; r + RR <= it.M; r += RR) {
            int64_t c = 0;
            for (; c + 4 * W <= D; c += 4 * W) FN(pv_tile)(&it, jb, nk, r, RR, c, 4);
            for (; c < D; c += W) FN(pv_tile)(&it, jb, nk, r, RR, c, 1);
        }
        for (; r < it.M; r++) {
            int64_t c = 0;
            for (; c + 4 * W <= D; c += 4 * W) FN(pv_tile)(&it, jb, nk, r, 1, c, 4);
            for (; c < D; c += W) FN(pv_tile)(&it, jb, nk, r, 1, c, 1);
        }
    }
    for (int64_t r = 0; r < it.M; r++) {
        const VF inv = VSET1(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
        for (int64_t d = 0; d < D; d += W) VSTORE(it.orow[r] + d, VMUL(VLOAD(it.orow[r] + d), inv));
    }
}

/* ---- decode: one head of one query ---- */

/* sc: scratch of >= pos0 + 1 floats */
static void FN(attn_decode_head)(const struct sa_attn_args *a, int64_t h, float *sc) {
    const int64_t D = a->head_dim, kvs = a->n_head_kv * D, g = h / (a->n_head / a->n_head_kv);
    const int64_t p = a->pos0, lo = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0, n = p - lo + 1;
    const float *q = a->q + h * D;
    const float *k = a->k + lo * kvs + g * D, *v = a->v + lo * kvs + g * D;
    int64_t j = 0;
    const __m128 scale4 = _mm_set1_ps(a->scale);
    for (; j + 8 <= n; j += 8) { /* eight independent chains, reduced four keys at a time */
        VF s[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) s[i] = VZERO();
        for (int64_t d = 0; d < D; d += W) {
            const VF qv = VLOAD(q + d);
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) s[i] = VFMA(qv, VLOAD(k + (j + i) * kvs + d), s[i]);
        }
        _mm_storeu_ps(sc + j, _mm_mul_ps(FN(hsum4)(s[0], s[1], s[2], s[3]), scale4));
        _mm_storeu_ps(sc + j + 4, _mm_mul_ps(FN(hsum4)(s[4], s[5], s[6], s[7]), scale4));
    }
    for (; j < n; j++) {
        VF s0 = VZERO();
        for (int64_t d = 0; d < D; d += W) s0 = VFMA(VLOAD(q + d), VLOAD(k + j * kvs + d), s0);
        sc[j] = VHSUM(s0) * a->scale;
    }
    if (a->softcap > 0.0f)
        for (j = 0; j < n; j++) sc[j] = a->softcap * tanhf(sc[j] / a->softcap);
    float mx = -FLT_MAX;
    for (j = 0; j < n; j++) mx = sc[j] > mx ? sc[j] : mx;
    VF vsum = VZERO();
    const VF vmx = VSET1(mx);
    for (j = 0; j + W <= n; j += W) {
        const VF e = FN(vexp)(VSUB(VLOAD(sc + j), vmx));
        VSTORE(sc + j, e);
        vsum = VADD(vsum, e);
    }
    float sum = VHSUM(vsum);
    for (; j < n; j++) {
        sc[j] = expf(sc[j] - mx);
        sum += sc[j];
    }
    const float inv = 1.0f / sum;
    float *o = a->out + h * D;
    int64_t c = 0;
    for (; c + 4 * W <= D; c += 4 * W) { /* even and odd keys in two sets of four chains */
        VF oa[4], ob[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) oa[i] = ob[i] = VZERO();
        for (j = 0; j + 2 <= n; j += 2) {
            const VF pa = VSET1(sc[j]), pb = VSET1(sc[j + 1]);
            const float *va = v + j * kvs + c, *vb = va + kvs;
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) oa[i] = VFMA(pa, VLOAD(va + i * W), oa[i]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) ob[i] = VFMA(pb, VLOAD(vb + i * W), ob[i]);
        }
        if (j < n) {
            const VF pa = VSET1(sc[j]);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) oa[i] = VFMA(pa, VLOAD(v + j * kvs + c + i * W), oa[i]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) VSTORE(o + c + i * W, VMUL(VADD(oa[i], ob[i]), VSET1(inv)));
    }
    for (; c < D; c += W) {
        VF o0 = VZERO();
        for (j = 0; j < n; j++) o0 = VFMA(VSET1(sc[j]), VLOAD(v + j * kvs + c), o0);
        VSTORE(o + c, VMUL(o0, VSET1(inv)));
    }
}

/* ---- element-wise rows (n a multiple of W) ---- */

/* sum of x[i]^2 in double (x^2 is exact in double; only the order of the additions differs
 * from the plain loop) */
SA_INLINE double FN(sumsq)(const float *x, int64_t n) {
#if W == 16
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __m512d lo = _mm512_cvtps_pd(_mm256_loadu_ps(x + i)), hi = _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8));
        a0 = _mm512_fmadd_pd(lo, lo, a0);
        a1 = _mm512_fmadd_pd(hi, hi, a1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
#else
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += 8) {
        const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    a0 = _mm256_add_pd(a0, a1);
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a0), _mm256_extractf128_pd(a0, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
#endif
}

/* y = x * s * w (or x * s): the same float operations as sa_op_rmsnorm */
static void FN(rmsnorm_row)(float *y, const float *x, const float *w, int64_t n, float eps) {
    const float s = (float)(1.0 / sqrt(FN(sumsq)(x, n) / (double)n + (double)eps));
    const VF vs = VSET1(s);
    if (w)
        for (int64_t i = 0; i < n; i += W) VSTORE(y + i, VMUL(VMUL(VLOAD(x + i), vs), VLOAD(w + i)));
    else
        for (int64_t i = 0; i < n; i += W) VSTORE(y + i, VMUL(VLOAD(x + i), vs));
}

/* y = silu(g) * u = g / (1 + e^-g) * u */
static void FN(swiglu_row)(float *y, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i += W) {
        const VF gv = VLOAD(g + i);
        const VF e = FN(vexp)(VSUB(VZERO(), gv));
        VSTORE(y + i, VMUL(VDIV(gv, VADD(VSET1(1.0f), e)), VLOAD(u + i)));
    }
}

/* y = gelu_tanh(g) * u, with 0.5 (1 + tanh(z)) = 1 / (1 + e^{-2z}) (exact identity; no
 * cancellation for large negative g, unlike 1 + tanh) */
static void FN(geglu_row)(float *y, const float *g, const float *u, int64_t n) {
    const VF k2 = VSET1(-2.0f * 0.7978845608028654f), c = VSET1(0.044715f);
    for (int64_t i = 0; i < n; i += W) {
        const VF gv = VLOAD(g + i);
        const VF z = VMUL(k2, VFMA(VMUL(c, gv), VMUL(gv, gv), gv)); /* -2 k (g + c g^3) */
        VSTORE(y + i, VMUL(VDIV(gv, VADD(VSET1(1.0f), FN(vexp)(z))), VLOAD(u + i)));
    }
}

#undef BK
#undef LANES
