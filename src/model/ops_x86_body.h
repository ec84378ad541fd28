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
 * Decode (T = 1): see "decode" below. */

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
    const float *kb, *vb; /* the current block's first K and V row of head g (f32) */
    int64_t ks, vs;       /* their row strides in floats: n_head_kv*D in the cache, D in a buffer */
};

/* Scores of the block's keys jr0 .. jr0+nr-1 (nv = 1 or 2 lane vectors) into st rows jr0.. */
SA_INLINE void FN(score_tile)(const struct FN(item) *it, int64_t jr0, int nr, int nv) {
    const int64_t D = it->a->head_dim, kvs = it->ks;
    const float *k = it->kb + jr0 * kvs;
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

/* out rows r0 .. r0+nr-1, columns c0 .. c0+nc*W-1 += sum_j st[j][r] * V[j] (the block's nk rows) */
SA_INLINE void FN(pv_tile)(const struct FN(item) *it, int64_t nk, int64_t r0, int nr, int64_t c0, int nc) {
    const int64_t kvs = it->vs;
    const float *v = it->vb + c0;
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

/* rows (n, D) of f16 at src (row stride ss halves) -> dst (n, D) f32, exact */
SA_INLINE void FN(widen_rows)(float *dst, const uint16_t *src, int64_t n, int64_t D, int64_t ss) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t d = 0; d < D; d += W) VSTORE(dst + r * D + d, VLOADH(src + r * ss + d));
}

/* Query rows: tokens t0 .. t0+bq-1 x heads hb .. hb+hpi-1 of KV head g; lane = tq*hpi + hh.
 * qt: (D, LANES) and st: (BK, LANES) floats of the caller's scratch, 64-byte aligned;
 * kvbuf: (2, BK, D) floats, where an f16 cache's rows of a block are widened (the same f32
 * values as the reference reads, so f16 changes only the inputs, not the arithmetic). */
static void FN(attn_item)(const struct sa_attn_args *a, int64_t g, int64_t hb, int64_t hpi, int64_t t0, int64_t bq,
                          float *qt, float *st, float *kvbuf) {
    const int64_t D = a->head_dim, H = a->n_head, kvs = a->n_head_kv * D;
    const bool f16 = a->kv_type == SA_DTYPE_F16;
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
        if (f16) {
            FN(widen_rows)(kvbuf, (const uint16_t *)a->k + jb * kvs + g * D, nk, D, kvs);
            FN(widen_rows)(kvbuf + BK * D, (const uint16_t *)a->v + jb * kvs + g * D, nk, D, kvs);
            it.kb = kvbuf, it.vb = kvbuf + BK * D, it.ks = it.vs = D;
        } else {
            it.kb = (const float *)a->k + jb * kvs + g * D, it.vb = (const float *)a->v + jb * kvs + g * D;
            it.ks = it.vs = kvs;
        }
        int64_t j = jb;
        if (nv == 2) {
            for (; j + JR <= je; j += JR) FN(score_tile)(&it, j - jb, JR, 2);
            for (; j < je; j++) FN(score_tile)(&it, j - jb, 1, 2);
        } else {
            for (; j + JR <= je; j += JR) FN(score_tile)(&it, j - jb, JR, 1);
            for (; j < je; j++) FN(score_tile)(&it, j - jb, 1, 1);
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
            for (; c + 4 * W <= D; c += 4 * W) FN(pv_tile)(&it, nk, r, RR, c, 4);
            for (; c < D; c += W) FN(pv_tile)(&it, nk, r, RR, c, 1);
        }
        for (; r < it.M; r++) {
            int64_t c = 0;
            for (; c + 4 * W <= D; c += 4 * W) FN(pv_tile)(&it, nk, r, 1, c, 4);
            for (; c < D; c += W) FN(pv_tile)(&it, nk, r, 1, c, 1);
        }
    }
    for (int64_t r = 0; r < it.M; r++) {
        const VF inv = VSET1(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
        for (int64_t d = 0; d < D; d += W) VSTORE(it.orow[r] + d, VMUL(VLOAD(it.orow[r] + d), inv));
    }
}

/* ---- decode (T = 1): one pass over a KV head's rows for all the query heads of its group ----
 * Keys go in blocks of bk (<= DBK_MAX) rows, small enough that the block's K and V rows stay
 * in L1 while the group's heads go over them DHB at a time: each row comes from memory once
 * per group instead of once per head (GQA: Qwen2.5-0.5B 7 heads per KV head, SmolLM2 3).
 * Per pass of nh heads: scores along head_dim (4 keys x nh heads of accumulators, reduced 4
 * at a time), the online-softmax update of each head's max m and sum l (rescaling its output
 * row when m grows), then O += P . V with each V vector loaded once for the nh heads. */

#define DBK_MAX 64 /* keys per block, at most */
/* accumulator columns of the P.V tile for nh heads: nh x DCW(nh) + DCW(nh) + 1 registers */
#define DCW(nh) ((nh) * 4 + 5 <= 2 * W ? 4 : 2)

/* W elements of an f32 or f16 (widened exactly) K/V row at element i */
#define KVLOAD(p, i, f16) ((f16) ? VLOADH((const uint16_t *)(p) + (i)) : VLOAD((const float *)(p) + (i)))

/* scores of 4 keys (rows k, k + ks, .. elements) for nh heads (queries q, (nh, D)) into
 * sc[hh * DBK_MAX + 0..3] */
SA_INLINE void FN(dec_scores4)(const float *q, const void *k, int64_t ks, int64_t D, bool f16, int nh, float *sc,
                               __m128 scale4) {
    VF acc[DHB][4];
#pragma GCC unroll 8
    for (int hh = 0; hh < DHB; hh++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[hh][r] = VZERO();
    for (int64_t d = 0; d < D; d += W) {
        VF kv[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) kv[r] = KVLOAD(k, r * ks + d, f16);
#pragma GCC unroll 8
        for (int hh = 0; hh < DHB; hh++) {
            if (hh >= nh) break;
            const VF qv = VLOAD(q + hh * D + d);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[hh][r] = VFMA(qv, kv[r], acc[hh][r]);
        }
    }
#pragma GCC unroll 8
    for (int hh = 0; hh < DHB; hh++) {
        if (hh >= nh) break;
        _mm_storeu_ps(sc + hh * DBK_MAX, _mm_mul_ps(FN(hsum4)(acc[hh][0], acc[hh][1], acc[hh][2], acc[hh][3]), scale4));
    }
}

/* o rows (nh, stride os), columns c .. c+cw*W-1, += sum_j p[hh * DBK_MAX + j] * V[j] over nk rows */
SA_INLINE void FN(dec_pv)(float *o, int64_t os, int64_t c, const void *v, int64_t vs, int64_t nk, bool f16, int nh,
                          int cw, const float *p) {
    VF acc[DHB][4];
#pragma GCC unroll 8
    for (int hh = 0; hh < DHB; hh++) {
        if (hh >= nh) break;
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < cw) acc[hh][u] = VLOAD(o + hh * os + c + u * W);
    }
    for (int64_t j = 0; j < nk; j++) {
        VF vv[4];
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < cw) vv[u] = KVLOAD(v, j * vs + c + u * W, f16);
#pragma GCC unroll 8
        for (int hh = 0; hh < DHB; hh++) {
            if (hh >= nh) break;
            const VF pb = VSET1(p[hh * DBK_MAX + j]);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
                if (u < cw) acc[hh][u] = VFMA(pb, vv[u], acc[hh][u]);
        }
    }
#pragma GCC unroll 8
    for (int hh = 0; hh < DHB; hh++) {
        if (hh >= nh) break;
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            if (u < cw) VSTORE(o + hh * os + c + u * W, acc[hh][u]);
    }
}

/* One pass of nh heads (queries q: (nh, D); running m, l: (nh); output rows o: (nh, stride
 * os)) over the nk keys of a block (K and V rows at k and v, row stride kvs elements). */
SA_INLINE void FN(dec_pass)(const struct sa_attn_args *a, const float *q, const void *k, const void *v, int64_t kvs,
                            int64_t nk, bool f16, int nh, float *m, float *l, float *o, int64_t os, float *sc) {
    const int64_t D = a->head_dim;
    const size_t esz = f16 ? 2 : 4;
    const __m128 scale4 = _mm_set1_ps(a->scale);
    int64_t j = 0;
    for (; j + 4 <= nk; j += 4) FN(dec_scores4)(q, (const char *)k + j * kvs * esz, kvs, D, f16, nh, sc + j, scale4);
    for (; j < nk; j++) {
        const void *kj = (const char *)k + j * kvs * esz;
        for (int hh = 0; hh < nh; hh++) {
            VF s0 = VZERO();
            for (int64_t d = 0; d < D; d += W) s0 = VFMA(VLOAD(q + hh * D + d), KVLOAD(kj, d, f16), s0);
            sc[hh * DBK_MAX + j] = VHSUM(s0) * a->scale;
        }
    }
    for (int hh = 0; hh < nh; hh++) {
        float *s = sc + hh * DBK_MAX;
        if (a->softcap > 0.0f)
            for (j = 0; j < nk; j++) s[j] = a->softcap * tanhf(s[j] / a->softcap);
        float mx = m[hh];
        for (j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
        const float al = expf(m[hh] - mx); /* 0 on the first block (m = -FLT_MAX), 1 while m holds */
        const VF vmx = VSET1(mx);
        VF vsum = VZERO();
        for (j = 0; j + W <= nk; j += W) {
            const VF e = FN(vexp)(VSUB(VLOAD(s + j), vmx));
            VSTORE(s + j, e);
            vsum = VADD(vsum, e);
        }
        float sum = VHSUM(vsum);
        for (; j < nk; j++) {
            s[j] = expf(s[j] - mx);
            sum += s[j];
        }
        l[hh] = l[hh] * al + sum;
        m[hh] = mx;
        if (al != 1.0f) { /* x * 1 == x: skipping it changes no bit */
            const VF va = VSET1(al);
            for (int64_t d = 0; d < D; d += W) VSTORE(o + hh * os + d, VMUL(VLOAD(o + hh * os + d), va));
        }
    }
    int64_t c = 0;
    for (; c + DCW(nh) * W <= D; c += DCW(nh) * W) FN(dec_pv)(o, os, c, v, kvs, nk, f16, nh, DCW(nh), sc);
    for (; c < D; c += W) FN(dec_pv)(o, os, c, v, kvs, nk, f16, nh, 1, sc);
}

/* nh (1 .. DHB) and f16 as constants: one specialised pass each */
static void FN(dec_pass_any)(const struct sa_attn_args *a, const float *q, const void *k, const void *v, int64_t kvs,
                             int64_t nk, bool f16, int nh, float *m, float *l, float *o, int64_t os, float *sc) {
#define DEC_CASE(n)                                                                              \
    case n:                                                                                      \
        if (f16) FN(dec_pass)(a, q, k, v, kvs, nk, true, n, m, l, o, os, sc);                    \
        else FN(dec_pass)(a, q, k, v, kvs, nk, false, n, m, l, o, os, sc);                       \
        return;
    switch (nh) {
        DEC_CASE(1)
        DEC_CASE(2)
#if DHB > 2
        DEC_CASE(3)
        DEC_CASE(4)
#endif
    default: SA_ASSERT(0 && "dec_pass_any: nh out of range");
    }
#undef DEC_CASE
}

/* One decode item: the group of KV head g over keys j0 .. j1-1 of the query at pos0.
 * o: (G, stride os) output rows; m, l: (G) the heads' running max and sum. The rows are
 * left unnormalised (o = sum_j e^{s_j - m} v_j, l = sum_j e^{s_j - m}). */
static void FN(attn_decode_item)(const struct sa_attn_args *a, int64_t g, int64_t j0, int64_t j1, float *o, int64_t os,
                                 float *m, float *l) {
    const int64_t D = a->head_dim, G = a->n_head / a->n_head_kv, kvs = a->n_head_kv * D;
    const bool f16 = a->kv_type == SA_DTYPE_F16;
    const size_t esz = f16 ? 2 : 4;
    /* about 8 KiB of f32 K rows per block (K and V of a block stay in a 32 KiB L1) */
    int64_t bk = 2048 / D;
    bk = bk < 16 ? 16 : bk > DBK_MAX ? DBK_MAX : bk;
    float sc[DHB * DBK_MAX] __attribute__((aligned(64))); /* (DHB, DBK_MAX) scores, then weights */
    for (int64_t hh = 0; hh < G; hh++) {
        m[hh] = -FLT_MAX;
        l[hh] = 0.0f;
        memset(o + hh * os, 0, (size_t)D * sizeof(float));
    }
    for (int64_t jb = j0; jb < j1; jb += bk) {
        const int64_t nk = j1 - jb < bk ? j1 - jb : bk;
        const char *k = (const char *)a->k + (jb * kvs + g * D) * esz, *v = (const char *)a->v + (jb * kvs + g * D) * esz;
        for (int64_t hb = 0; hb < G; hb += DHB) {
            const int nh = (int)(G - hb < DHB ? G - hb : DHB);
            FN(dec_pass_any)(a, a->q + (g * G + hb) * D, k, v, kvs, nk, f16, nh, m + hb, l + hb, o + hb * os, os, sc);
        }
    }
}

#undef DBK_MAX
#undef DCW
#undef KVLOAD

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
