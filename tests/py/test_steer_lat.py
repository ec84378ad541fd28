"""test_steer_lat.py: the maths of `salign steer` (src/steer/lat.c) against numpy and a plain
Python reference: sa_steer_pc1 equals numpy's SVD (the first right singular vector, up to sign;
its share of the squared singular values) on random matrices of both shapes (n < d: the Gram
branch; n > d: the covariance branch), centred or not; sa_steer_lat's direction, sign and gap
equal numpy's on the same pairs; sa_levenshtein_ratio equals python-Levenshtein's ratio (2 LCS /
(la + lb) over code points, computed here by a plain dynamic programme) on a few hundred random
ASCII and non-ASCII strings."""
import ctypes
import random

import numpy as np

from harness import main, test
from model_ctypes import lib

F = ctypes.POINTER(ctypes.c_float)


class LatStats(ctypes.Structure):
    _fields_ = [("explained", ctypes.c_double), ("gap", ctypes.c_double), ("mid", ctypes.c_double),
                ("n_test", ctypes.c_int32), ("acc_stim", ctypes.c_double), ("acc_pair", ctypes.c_double)]


def L_():
    lb = lib()
    lb.sa_steer_pc1.argtypes = [F, ctypes.c_int32, ctypes.c_int32, ctypes.c_bool, F, ctypes.POINTER(ctypes.c_double)]
    lb.sa_steer_lat.argtypes = [F, F, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, F, ctypes.POINTER(LatStats)]
    lb.sa_levenshtein_ratio.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
                                        ctypes.POINTER(ctypes.c_double)]
    return lb


def fp(a):
    return a.ctypes.data_as(F)


def pc1(x, center):
    x = np.ascontiguousarray(x, dtype=np.float32)
    d = np.empty(x.shape[1], dtype=np.float32)
    ex = ctypes.c_double()
    assert L_().sa_steer_pc1(fp(x), x.shape[0], x.shape[1], center, fp(d), ctypes.byref(ex)) == 0
    return d, ex.value


@test
def pc1_equals_numpy_svd():
    rng = np.random.default_rng(3)
    for n, d, center in [(12, 50, False), (12, 50, True), (300, 20, False), (300, 20, True), (40, 40, False)]:
        # a spread spectrum (distinct eigenvalues) plus an offset that centring removes
        x = rng.standard_normal((n, d)) * np.linspace(3, 0.5, d) + (2.0 if center else 0.0)
        x = x.astype(np.float32)
        got, ex = pc1(x, center)
        xc = x.astype(np.float64) - (x.mean(0) if center else 0)
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        cos = abs(float(got.astype(np.float64) @ vt[0]))
        assert cos > 1 - 1e-5, (n, d, center, cos)
        assert abs(ex - s[0] ** 2 / (s ** 2).sum()) < 1e-6, (n, d, center, ex)


@test
def lat_equals_numpy():
    rng = np.random.default_rng(5)
    n, nt, d = 20, 16, 64
    v = rng.standard_normal(d)
    cop = rng.standard_normal((n, d)).astype(np.float32)
    rew = (cop + np.outer(1 + 0.3 * rng.standard_normal(n), v) + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    for a, b, sign in [(rew, cop, 1), (cop, rew, -1)]:
        out = np.empty(d, dtype=np.float32)
        st = LatStats()
        assert L_().sa_steer_lat(fp(a), fp(b), n, nt, d, fp(out), ctypes.byref(st)) == 0
        D = (a[:nt] - b[:nt]).astype(np.float64)
        _, s, vt = np.linalg.svd(D, full_matrices=False)  # not centred: the second moment
        ref = vt[0] if (D @ vt[0]).mean() > 0 else -vt[0]
        assert np.abs(out - ref).max() < 1e-4, np.abs(out - ref).max()
        assert (ref @ v) * sign > 0  # + is the first argument ("rewrite")
        assert abs(st.gap - (D @ ref).mean()) < 1e-4 * abs(st.gap)
        assert abs(st.explained - s[0] ** 2 / (s ** 2).sum()) < 1e-6
        mid = np.concatenate([a[:nt] @ ref, b[:nt] @ ref]).mean()
        assert abs(st.mid - mid) < 1e-3, (st.mid, mid)
        pa, pb = a[nt:] @ ref, b[nt:] @ ref
        assert st.n_test == n - nt
        assert abs(st.acc_pair - np.mean(pa - pb > 0)) < 1e-12
        assert abs(st.acc_stim - (np.sum(pa - mid > 0) + np.sum(pb - mid <= 0)) / (2 * (n - nt))) < 1e-12


def ref_ratio(a, b):
    """python-Levenshtein's ratio: 1 - indel / (la + lb) = 2 LCS / (la + lb); 1 for two empties."""
    if not a and not b:
        return 1.0
    row = [0] * (len(b) + 1)
    for ca in a:
        diag = 0
        for j, cb in enumerate(b, 1):
            up = row[j]
            row[j] = diag + 1 if ca == cb else max(row[j], row[j - 1])
            diag = up
    return 2.0 * row[-1] / (len(a) + len(b))


@test
def levenshtein_ratio_equals_reference():
    rnd = random.Random(7)
    alpha = "ab c12=+.é€中\n"
    got_diff = 0
    for i in range(300):
        a = "".join(rnd.choice(alpha) for _ in range(rnd.randint(0, 30)))
        b = list(a) if i % 2 else [rnd.choice(alpha) for _ in range(rnd.randint(0, 30))]
        for _ in range(rnd.randint(0, 4)):  # a few edits of a
            if b and rnd.random() < 0.5:
                del b[rnd.randrange(len(b))]
            else:
                b.insert(rnd.randint(0, len(b)), rnd.choice(alpha))
        b = "".join(b)
        ea, eb = a.encode(), b.encode()
        r = ctypes.c_double()
        assert L_().sa_levenshtein_ratio(ea, len(ea), eb, len(eb), ctypes.byref(r)) == 0
        assert abs(r.value - ref_ratio(a, b)) < 1e-12, (a, b, r.value, ref_ratio(a, b))
        got_diff += a != b
    assert got_diff > 100
    # the known values of python-Levenshtein's documentation
    for a, b, want in [("kitten", "sitting", 0.6153846153846154), ("", "", 1.0)]:
        r = ctypes.c_double()
        assert L_().sa_levenshtein_ratio(a.encode(), len(a), b.encode(), len(b), ctypes.byref(r)) == 0
        assert abs(r.value - want) < 1e-12


if __name__ == "__main__":  # test_steer_cli.py imports ref_ratio
    main()
