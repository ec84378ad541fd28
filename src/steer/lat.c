/* lat.c: the maths of representation reading (Zou et al. 2023, "Representation Engineering":
 * Linear Artificial Tomography): the first principal component of the differences of paired
 * hidden states, its sign and the held-out accuracies; and python-Levenshtein's ratio, the
 * measure of the paper's Figure 8. Plain C, double accumulation. docs/STEER.md. */
#include "sa/steer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double sa_steer_dot(const float *x, const float *y, int32_t n) {
    double s = 0;
    for (int32_t i = 0; i < n; i++) s += (double)x[i] * (double)y[i];
    return s;
}

/* The top eigenvector of the symmetric PSD m x m matrix M (row-major) into u (m), by power
 * iteration from M's column of largest diagonal; returns its eigenvalue u . M u. w: m doubles of
 * scratch. */
static double top_eig(const double *M, int64_t m, double *u, double *w) {
    int64_t j = 0;
    for (int64_t i = 1; i < m; i++)
        if (M[i * m + i] > M[j * m + j]) j = i;
    double nrm = 0;
    for (int64_t i = 0; i < m; i++) {
        u[i] = M[i * m + j] + 1e-3 / sqrt((double)m); /* a little of every direction */
        nrm += u[i] * u[i];
    }
    nrm = sqrt(nrm);
    if (!(nrm > 0)) {
        memset(u, 0, sizeof(double) * (size_t)m);
        u[0] = 1;
        return 0;
    }
    for (int64_t i = 0; i < m; i++) u[i] /= nrm;
    double lambda = 0;
    for (int it = 0; it < 20000; it++) {
        double n2 = 0;
        for (int64_t i = 0; i < m; i++) {
            double s = 0;
            const double *row = M + i * m;
            for (int64_t k = 0; k < m; k++) s += row[k] * u[k];
            w[i] = s;
            n2 += s * s;
        }
        lambda = sqrt(n2); /* ||M u||: the eigenvalue at convergence */
        if (!(lambda > 0)) return 0;
        double moved = 0;
        for (int64_t i = 0; i < m; i++) {
            const double v = w[i] / lambda;
            moved = fmax(moved, fabs(v - u[i]));
            u[i] = v;
        }
        if (moved < 1e-12) break;
    }
    double r = 0; /* the Rayleigh quotient */
    for (int64_t i = 0; i < m; i++) {
        double s = 0;
        for (int64_t k = 0; k < m; k++) s += M[i * m + k] * u[k];
        r += u[i] * s;
    }
    return r;
}

enum sa_status sa_steer_pc1(const float *x, int32_t n, int32_t d, bool center, float *dir, double *explained) {
    if (!x || !dir || n < 1 || d < 1) return sa_error(SA_STATUS_BAD_ARGUMENT, "pc1: bad arguments");
    /* X: (n, d) in double, centred when asked */
    double *X = malloc(sizeof(double) * (size_t)n * (size_t)d);
    double *mean = calloc((size_t)d, sizeof(double));
    const int64_t m = n <= d ? n : d; /* the Gram matrix X X^T (n x n) or X^T X (d x d): the smaller */
    double *M = malloc(sizeof(double) * (size_t)m * (size_t)m);
    double *u = malloc(sizeof(double) * (size_t)m), *w = malloc(sizeof(double) * (size_t)m);
    double *v = malloc(sizeof(double) * (size_t)d);
    enum sa_status s = SA_STATUS_OK;
    if (!X || !mean || !M || !u || !w || !v) {
        s = sa_error(SA_STATUS_NO_MEMORY, "pc1: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < d; k++) X[i * d + k] = x[i * d + k];
    if (center) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < d; k++) mean[k] += X[i * d + k];
        for (int64_t k = 0; k < d; k++) mean[k] /= n;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < d; k++) X[i * d + k] -= mean[k];
    }
    double trace = 0;
    for (int64_t i = 0; i < (int64_t)n * d; i++) trace += X[i] * X[i];
    if (m == n) {
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = i; j < n; j++) {
                double acc = 0;
                for (int64_t k = 0; k < d; k++) acc += X[i * d + k] * X[j * d + k];
                M[i * m + j] = M[j * m + i] = acc;
            }
    } else {
        memset(M, 0, sizeof(double) * (size_t)m * (size_t)m);
        for (int64_t i = 0; i < n; i++)
            for (int64_t a = 0; a < d; a++) {
                const double xa = X[i * d + a];
                if (xa == 0) continue;
                for (int64_t b = a; b < d; b++) M[a * m + b] += xa * X[i * d + b];
            }
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < a; b++) M[a * m + b] = M[b * m + a];
    }
    const double lambda = top_eig(M, m, u, w);
    /* the direction: u itself (d x d), or X^T u (Gram) normalised */
    if (m == n) {
        for (int64_t k = 0; k < d; k++) {
            double acc = 0;
            for (int64_t i = 0; i < n; i++) acc += X[i * d + k] * u[i];
            v[k] = acc;
        }
    } else {
        memcpy(v, u, sizeof(double) * (size_t)d);
    }
    double nrm = 0;
    for (int64_t k = 0; k < d; k++) nrm += v[k] * v[k];
    nrm = sqrt(nrm);
    if (!(nrm > 0) || !(trace > 0)) {
        memset(dir, 0, sizeof(float) * (size_t)d);
        dir[0] = 1;
        if (explained) *explained = 0;
        goto done;
    }
    for (int64_t k = 0; k < d; k++) dir[k] = (float)(v[k] / nrm);
    if (explained) *explained = fmin(1.0, fmax(0.0, lambda / trace));
done:
    free(X);
    free(mean);
    free(M);
    free(u);
    free(w);
    free(v);
    return s;
}

enum sa_status sa_steer_lat(const float *rew, const float *cop, int32_t n_pairs, int32_t n_train, int32_t d, float *dir,
                            struct sa_steer_lat_stats *st) {
    if (!rew || !cop || !dir || !st || d < 1 || n_train < 1 || n_train > n_pairs)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "lat: bad arguments");
    float *diff = malloc(sizeof(float) * (size_t)n_train * (size_t)d); /* (n_train, d) */
    if (!diff) return sa_error(SA_STATUS_NO_MEMORY, "lat: out of memory");
    for (int64_t i = 0; i < n_train; i++)
        for (int64_t k = 0; k < d; k++) diff[i * d + k] = rew[i * d + k] - cop[i * d + k];
    memset(st, 0, sizeof *st);
    enum sa_status s = sa_steer_pc1(diff, n_train, d, false, dir, &st->explained);
    free(diff);
    if (s) return s;
    /* the sign rule: the mean projection of the training differences is >= 0 */
    double gap = 0, mid = 0;
    for (int64_t i = 0; i < n_train; i++) {
        const double pr = sa_steer_dot(rew + i * d, dir, d), pc = sa_steer_dot(cop + i * d, dir, d);
        gap += pr - pc;
        mid += pr + pc;
    }
    gap /= n_train;
    mid /= 2.0 * n_train;
    if (gap < 0) {
        for (int64_t k = 0; k < d; k++) dir[k] = -dir[k];
        gap = -gap;
        mid = -mid;
    }
    st->gap = gap;
    st->mid = mid;
    st->n_test = n_pairs - n_train;
    st->acc_stim = st->acc_pair = NAN;
    if (st->n_test > 0) {
        int64_t ok_stim = 0, ok_pair = 0;
        for (int64_t i = n_train; i < n_pairs; i++) {
            const double pr = sa_steer_dot(rew + i * d, dir, d), pc = sa_steer_dot(cop + i * d, dir, d);
            ok_stim += (pr - mid > 0) + (pc - mid <= 0);
            ok_pair += pr - pc > 0;
        }
        st->acc_stim = (double)ok_stim / (2.0 * st->n_test);
        st->acc_pair = (double)ok_pair / st->n_test;
    }
    return SA_STATUS_OK;
}

/* ---- Levenshtein ratio ---- */

/* The code points of s[0..n) into out (n entries at most); returns their count. An invalid or
 * truncated sequence counts its first byte as one unit (0xDC00 + byte, as Python's
 * surrogateescape). */
static size_t utf8_units(const char *s, size_t n, uint32_t *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, k = 0;
    while (i < n) {
        const unsigned c = p[i];
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        bool ok = len > 0 && i + (size_t)len <= n;
        for (int j = 1; ok && j < len; j++) {
            if ((p[i + j] & 0xC0) != 0x80) ok = false;
            else cp = (cp << 6) | (p[i + j] & 0x3F);
        }
        if (ok && ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                   (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
            ok = false;
        if (ok) {
            out[k++] = cp;
            i += (size_t)len;
        } else {
            out[k++] = 0xDC00 + c;
            i++;
        }
    }
    return k;
}

enum sa_status sa_levenshtein_ratio(const char *a, size_t na, const char *b, size_t nb, double *out) {
    if (!out || (!a && na) || (!b && nb)) return sa_error(SA_STATUS_BAD_ARGUMENT, "levenshtein ratio: NULL");
    *out = NAN;
    uint32_t *ua = malloc(sizeof(uint32_t) * (na + 1)), *ub = malloc(sizeof(uint32_t) * (nb + 1));
    size_t *row = NULL;
    enum sa_status s = SA_STATUS_OK;
    if (!ua || !ub) {
        s = sa_error(SA_STATUS_NO_MEMORY, "levenshtein ratio: out of memory");
        goto done;
    }
    const size_t la = utf8_units(a, na, ua), lb = utf8_units(b, nb, ub);
    if (la + lb == 0) {
        *out = 1.0;
        goto done;
    }
    /* the longest common subsequence, one row of the table (lb + 1) */
    if (!(row = calloc(lb + 1, sizeof(size_t)))) {
        s = sa_error(SA_STATUS_NO_MEMORY, "levenshtein ratio: out of memory");
        goto done;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = 0; /* row[j - 1] of the previous line */
        for (size_t j = 1; j <= lb; j++) {
            const size_t up = row[j];
            row[j] = ua[i - 1] == ub[j - 1] ? diag + 1 : (row[j] > row[j - 1] ? row[j] : row[j - 1]);
            diag = up;
        }
    }
    *out = 2.0 * (double)row[lb] / (double)(la + lb);
done:
    free(ua);
    free(ub);
    free(row);
    return s;
}
