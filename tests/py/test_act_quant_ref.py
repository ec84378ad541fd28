"""test_act_quant_ref.py: our 8-bit activation blocks and quantized dot products against
llama.cpp's CPU backend itself (the libggml-base/libggml-cpu bundled with llama-cpp-python,
built for this CPU), through ctypes:
* activation quantization: our SA_ACT_Q8_0 / SA_ACT_Q8_1 blocks (src/backend/cpu/quant_act.c,
  plain C and the avx512 copy) hold the bytes of ggml's quantize_row_q8_0 / quantize_row_q8_1
  (d and s as fp16, qs), our q8_K blocks are byte-identical to quantize_row_q8_K, and the
  4-row interleaved q8_K that llama.cpp's repacked Q4_K GEMM quantizes with
  (ggml_quantize_mat_q8_K_4x8) has the same d and quants, on rows with ties, zeros, tiny and
  huge values;
* dot products: sa_matmul (every path, dot kernels and prefill GEMM) against ggml_vec_dot_*
  on ggml's own activation blocks, for every quantized weight type we have kernels for:
  the per-block integer sums are the same, so only float rounding may differ (< 2e-6 of
  sum |w x|; one flipped activation quant would be ~1e-3).
"""
import ctypes as C
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test  # noqa: E402

# enum sa_dtype (include/sa/dtype.h, = ggml's type ids) and enum sa_act_kind (kernels_impl.h)
F32, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K = 0, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14
ACT_Q8_0, ACT_Q8K, ACT_Q8_1 = 1, 2, 6
BLOCK_BYTES = {Q4_0: 18, Q4_1: 20, Q5_0: 22, Q5_1: 24, Q8_0: 34, Q2_K: 84, Q3_K: 110, Q4_K: 144, Q5_K: 176, Q6_K: 210}
QK = {t: (256 if t >= Q2_K else 32) for t in BLOCK_BYTES}
NAMES = {Q4_0: "q4_0", Q4_1: "q4_1", Q5_0: "q5_0", Q5_1: "q5_1", Q8_0: "q8_0", Q2_K: "q2_K", Q3_K: "q3_K",
         Q4_K: "q4_K", Q5_K: "q5_K", Q6_K: "q6_K"}
VEC_DOT_TYPE = {Q4_0: "q8_0", Q5_0: "q8_0", Q8_0: "q8_0", Q4_1: "q8_1", Q5_1: "q8_1"}  # K-quants: q8_K
ACT_BYTES = {"q8_0": 34, "q8_1": 36, "q8_K": 292}


def load_ggml():
    import llama_cpp
    libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
    base = C.CDLL(glob.glob(os.path.join(libdir, "libggml-base.so*"))[0], mode=C.RTLD_GLOBAL)
    cpu = C.CDLL(glob.glob(os.path.join(libdir, "libggml-cpu.so*"))[0], mode=C.RTLD_GLOBAL)
    cpu.ggml_cpu_init()
    for name in ("quantize_row_q8_0", "quantize_row_q8_1", "quantize_row_q8_K", "ggml_quantize_mat_q8_K_4x8"):
        getattr(cpu, name).argtypes = [C.c_void_p, C.c_void_p, C.c_int64]
        getattr(cpu, name).restype = None
    return base, cpu


def load_ours():
    lib = C.CDLL(os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
    lib.sa_cpu_act_row_of.argtypes = [C.c_int]
    lib.sa_cpu_act_row_of.restype = C.c_void_p
    lib.sa_cpu_path_available.argtypes = [C.c_int]
    lib.sa_cpu_path_available.restype = C.c_bool
    lib.sa_matmul_path.argtypes = [C.c_int, C.c_void_p, C.c_int, C.c_void_p, C.c_int64, C.c_int64, C.c_void_p,
                                   C.c_int64, C.c_void_p, C.c_void_p]
    lib.sa_matmul_path.restype = None
    lib.sa_matmul_scratch_bytes.argtypes = [C.c_int, C.c_int64, C.c_int64]
    lib.sa_matmul_scratch_bytes.restype = C.c_size_t
    lib.sa_matmul_kernel_name_t.argtypes = [C.c_int, C.c_int, C.c_int64]
    lib.sa_matmul_kernel_name_t.restype = C.c_char_p
    return lib


ACT_FN = C.CFUNCTYPE(None, C.c_int, C.c_void_p, C.c_void_p, C.c_int64)


def paths(lib):
    return [p for p in range(3) if lib.sa_cpu_path_available(p)]


def ours_act(lib, path, kind, x):
    """Our activation row of `kind` on `path` (bytes)."""
    n = x.size
    nbytes = {ACT_Q8_0: n // 32 * 40, ACT_Q8_1: n // 32 * 40, ACT_Q8K: n // 256 * 292}[kind]
    out = np.zeros(nbytes, np.uint8)
    ACT_FN(lib.sa_cpu_act_row_of(path))(kind, x.ctypes.data, out.ctypes.data, n)
    return out


def ggml_act(cpu, name, x):
    out = np.zeros(x.size // (256 if name == "q8_K" else 32) * ACT_BYTES[name], np.uint8)
    getattr(cpu, "quantize_row_" + name)(x.ctypes.data, out.ctypes.data, x.size)
    return out


def rows():
    """Activation rows that exercise the rounding: Gaussian rows at several scales, a row
    with outliers, ties at x * 127 / amax = k + 1/2, an all-zero block, tiny (fp16-subnormal d)
    and large values."""
    rng = np.random.default_rng(7)
    n = 2048
    out = [rng.standard_normal(n).astype(np.float32) * s for s in (1.0, 0.01, 30.0)]
    x = rng.standard_normal(n).astype(np.float32)
    x[rng.integers(0, n, 8)] *= 200.0
    out.append(x)
    x = (rng.integers(-254, 255, n) * 0.5).astype(np.float32)  # amax 127 per block: x * 127 / amax = x, ties
    x[::32] = 127.0
    out.append(x)
    x = rng.standard_normal(n).astype(np.float32) * 1e-6
    x[256:512] = 0.0
    x[600:640] = rng.standard_normal(40).astype(np.float32) * 1e4
    out.append(x)
    return out


@test
def test_q8_0_q8_1_blocks_are_ggmls():
    _, cpu = load_ggml()
    lib = load_ours()
    for x in rows():
        g0 = ggml_act(cpu, "q8_0", x).reshape(-1, 34)
        g1 = ggml_act(cpu, "q8_1", x).reshape(-1, 36)
        for p in paths(lib):
            for kind, g in ((ACT_Q8_0, g0), (ACT_Q8_1, g1)):
                o = ours_act(lib, p, kind, x).reshape(-1, 40)
                d = o[:, 0:4].copy().view(np.float32)[:, 0]
                qs = o[:, 8:40]
                assert np.array_equal(qs, g[:, -32:]), "path %d kind %d: quants differ from ggml's in %d blocks" % (
                    p, kind, int((qs != g[:, -32:]).any(1).sum()))
                gd = g[:, 0:2].copy().view(np.float16)[:, 0]
                assert np.array_equal(d.astype(np.float16).view(np.uint16), gd.view(np.uint16)), "path %d: d differs" % p
                assert np.array_equal(d, gd.astype(np.float32)), "path %d: d is not the widened fp16 d" % p
                if kind == ACT_Q8_1:
                    s = o[:, 4:8].copy().view(np.float32)[:, 0]
                    gs = g[:, 2:4].copy().view(np.float16)[:, 0]
                    assert np.array_equal(s.astype(np.float16).view(np.uint16), gs.view(np.uint16)), "path %d: s differs" % p
                else:
                    sums = o[:, 4:8].copy().view(np.int32)[:, 0]
                    assert np.array_equal(sums, qs.view(np.int8).astype(np.int32).sum(1)), "path %d: sum" % p


@test
def test_q8_K_blocks_are_ggmls():
    _, cpu = load_ggml()
    lib = load_ours()
    for x in rows():
        x = x.copy()
        x[1000], x[1003] = 7.5, -7.5  # equal |x| of both signs: the first sets the sign
        g = ggml_act(cpu, "q8_K", x).reshape(-1, 292)
        for p in paths(lib):
            o = ours_act(lib, p, ACT_Q8K, x).reshape(-1, 292)
            bad = (o != g).any(1)
            assert not bad.any(), "path %d: q8_K blocks %s differ from ggml's" % (p, np.nonzero(bad)[0][:8])
        # llama.cpp's repacked Q4_K GEMM quantizes 4 rows at a time (interleaved by 8 bytes)
        if x.size % 1024 == 0:
            xs = x.reshape(4, -1).copy()
            k = xs.shape[1]
            y = np.zeros(k // 256 * (16 + 1024 + 128), np.uint8)
            cpu.ggml_quantize_mat_q8_K_4x8(xs.ctypes.data, y.ctypes.data, k)
            y = y.reshape(k // 256, -1)
            d = y[:, :16].copy().view(np.float32)  # (blocks, 4)
            qs = y[:, 16:16 + 1024].view(np.int8).reshape(-1, 32, 4, 8).transpose(0, 2, 1, 3).reshape(-1, 4, 256)
            for r in range(4):
                o = ours_act(lib, paths(lib)[-1], ACT_Q8K, xs[r].copy()).reshape(-1, 292)
                od = o[:, :4].copy().view(np.float32)[:, 0]
                # a block with +amax and -amax both present may take the other sign there
                # (its SIMD sign test is not "the first"): same quants up to the sign
                same = np.abs(od) == np.abs(d[:, r])
                assert same.all(), "4x8 d differs"
                sign = np.sign(od) * np.sign(d[:, r])
                assert np.array_equal(o[:, 4:260].view(np.int8) * sign[:, None].astype(np.int8), qs[:, r]), "4x8 quants"


def make_weights(t, n_in, n_out, rng):
    """Random blocks with sane fp16 scales (every bit pattern of the quants is valid)."""
    nb = n_in // QK[t]
    w = rng.integers(0, 256, (n_out, nb, BLOCK_BYTES[t]), dtype=np.uint8)

    def put(off, vals):
        w[:, :, off:off + 2] = vals.astype(np.float16).view(np.uint8).reshape(n_out, nb, 2)

    d = (0.002 + 0.02 * rng.random((n_out, nb))).astype(np.float32)
    m = (0.02 * rng.standard_normal((n_out, nb))).astype(np.float32)
    if t in (Q4_0, Q5_0, Q8_0):
        put(0, d)
    elif t in (Q4_1, Q5_1):
        put(0, d), put(2, m)
    elif t == Q2_K:
        put(80, d), put(82, d * 0.5)
    elif t == Q3_K:
        put(108, d * 0.2)
    elif t in (Q4_K, Q5_K):
        put(0, d * 0.1), put(2, d * 0.1)
    elif t == Q6_K:
        put(208, d * 0.05)
    return np.ascontiguousarray(w.reshape(n_out, -1))


@test
def test_dot_products_match_ggml():
    base, cpu = load_ggml()
    lib = load_ours()
    rng = np.random.default_rng(11)
    n_in, n_out, T = 1536, 48, 6
    worst_all = {}
    for t in (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K):
        W = make_weights(t, n_in, n_out, rng)
        X = (rng.standard_normal((T, n_in)) * np.array([1.0, 0.05, 10.0, 1.0, 0.3, 3.0])[:, None]).astype(np.float32)
        X[3, 100] = 80.0  # an outlier
        act = VEC_DOT_TYPE.get(t, "q8_K")
        vd = getattr(cpu, "ggml_vec_dot_%s_%s" % (NAMES[t], act))
        vd.argtypes = [C.c_int, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t, C.c_void_p, C.c_size_t, C.c_int]
        vd.restype = None
        ref = np.zeros((T, n_out), np.float32)
        for j in range(T):
            a = ggml_act(cpu, act, np.ascontiguousarray(X[j]))
            for r in range(n_out):
                s = C.c_float()
                vd(n_in, C.byref(s), 0, W[r].ctypes.data, 0, a.ctypes.data, 0, 1)
                ref[j, r] = s.value
        deq = getattr(base, "dequantize_row_" + NAMES[t])
        deq.argtypes = [C.c_void_p, C.c_void_p, C.c_int64]
        deq.restype = None
        Wf = np.zeros((n_out, n_in), np.float32)
        for r in range(n_out):
            deq(W[r].ctypes.data, Wf[r].ctypes.data, n_in)
        N = np.abs(X) @ np.abs(Wf).T  # (T, n_out): sum |w x|
        scratch = np.zeros(lib.sa_matmul_scratch_bytes(t, n_in, T) + 64, np.uint8)
        for p in paths(lib):
            for tt in (1, T):  # dot kernels (T = 1) and, where the path has it, the prefill GEMM
                Y = np.zeros((tt, n_out), np.float32)
                lib.sa_matmul_path(p, None, t, W.ctypes.data, n_in, n_out, X.ctypes.data, tt, Y.ctypes.data,
                                   scratch.ctypes.data)
                kname = lib.sa_matmul_kernel_name_t(p, t, tt).decode()
                worst = float((np.abs(Y - ref[:tt]) / (N[:tt] + 1e-30)).max())
                assert worst < 1e-6, "%s (%s, T=%d): |ours - ggml| up to %.3g of sum |w x|" % (
                    NAMES[t], kname, tt, worst)
                worst_all[NAMES[t]] = max(worst_all.get(NAMES[t], 0.0), worst)
    print("    max |ours - ggml| / sum |w x| per type: " + ", ".join("%s %.1e" % kv for kv in worst_all.items()))


if __name__ == "__main__":
    main()
