"""test_gguf_ref.py: our GGUF reader/writer and tensor types against gguf-py (ctypes on
build/libsalign.so). Every dequantization must be bitwise equal to gguf-py's (random
blocks of every type, and every tensor of both real models); F16/BF16/Q8_0 quantization
bit-exact; files our writer writes read back identically in gguf-py's GGUFReader and load
in ggml's own GGUF reader (llama-cpp-python's libggml-base), and files gguf-py's GGUFWriter
writes read back identically in ours.
Q8_1 and Q8_K have no dequantization in gguf-py: their reference below is the
definition (d * q, as ggml's dequantize_row_q8_K)."""
import ctypes
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, models_dir, test, tmpdir  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import GGUFValueType as VT  # noqa: E402

LIB = ctypes.CDLL(os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
c_int64, c_uint64, c_void_p, c_char_p = ctypes.c_int64, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_char_p


class Tensor(ctypes.Structure):
    _fields_ = [("name", c_char_p), ("type", ctypes.c_int), ("n_dims", ctypes.c_uint32),
                ("ne", c_int64 * 4), ("offset", c_uint64), ("n_bytes", c_uint64), ("data", c_void_p)]


class Str(ctypes.Structure):
    _fields_ = [("ptr", c_void_p), ("len", c_uint64)]


def _sig(name, res, *args):
    f = getattr(LIB, name)
    f.restype = res
    f.argtypes = list(args)
    return f


sa_last_error = _sig("sa_last_error", c_char_p)
sa_dequantize = _sig("sa_dequantize", ctypes.c_int, ctypes.c_int, c_void_p, c_void_p, c_int64)
sa_quantize = _sig("sa_quantize", ctypes.c_int, ctypes.c_int, c_void_p, c_void_p, c_int64)
sa_gguf_open = _sig("sa_gguf_open", ctypes.c_int, c_char_p, ctypes.POINTER(c_void_p))
sa_gguf_free = _sig("sa_gguf_free", None, c_void_p)
sa_gguf_n_kv = _sig("sa_gguf_n_kv", c_int64, c_void_p)
sa_gguf_key = _sig("sa_gguf_key", c_char_p, c_void_p, c_int64)
sa_gguf_kv_type = _sig("sa_gguf_kv_type", ctypes.c_int, c_void_p, c_int64)
sa_gguf_arr_type = _sig("sa_gguf_arr_type", ctypes.c_int, c_void_p, c_int64)
sa_gguf_arr_n = _sig("sa_gguf_arr_n", c_uint64, c_void_p, c_int64)
sa_gguf_arr_data = _sig("sa_gguf_arr_data", c_void_p, c_void_p, c_int64)
sa_gguf_arr_str = _sig("sa_gguf_arr_str", Str, c_void_p, c_int64, c_uint64)
sa_gguf_get_str = _sig("sa_gguf_get_str", Str, c_void_p, c_int64)
sa_gguf_kv_raw = _sig("sa_gguf_kv_raw", ctypes.c_bool, c_void_p, c_int64, ctypes.POINTER(c_void_p),
                      ctypes.POINTER(c_uint64))
sa_gguf_n_tensors = _sig("sa_gguf_n_tensors", c_int64, c_void_p)
sa_gguf_tensor = _sig("sa_gguf_tensor", ctypes.POINTER(Tensor), c_void_p, c_int64)
sa_gguf_find_tensor = _sig("sa_gguf_find_tensor", ctypes.POINTER(Tensor), c_void_p, c_char_p)
sa_gguf_data_offset = _sig("sa_gguf_data_offset", c_uint64, c_void_p)
W = c_void_p
sa_gguf_writer_init = _sig("sa_gguf_writer_init", ctypes.c_int, ctypes.POINTER(c_void_p))
sa_gguf_writer_free = _sig("sa_gguf_writer_free", None, W)
sa_gguf_writer_set_scalar = _sig("sa_gguf_writer_set_scalar", ctypes.c_int, W, c_char_p, ctypes.c_int, c_void_p)
sa_gguf_writer_set_str = _sig("sa_gguf_writer_set_str", ctypes.c_int, W, c_char_p, c_char_p)
sa_gguf_writer_set_arr = _sig("sa_gguf_writer_set_arr", ctypes.c_int, W, c_char_p, ctypes.c_int, c_void_p, c_uint64)
sa_gguf_writer_set_arr_str = _sig("sa_gguf_writer_set_arr_str", ctypes.c_int, W, c_char_p, ctypes.POINTER(Str),
                                  c_uint64)
sa_gguf_writer_add_tensor = _sig("sa_gguf_writer_add_tensor", ctypes.c_int, W, c_char_p, ctypes.c_int,
                                 ctypes.c_uint32, ctypes.POINTER(c_int64), c_void_p)
sa_gguf_writer_write = _sig("sa_gguf_writer_write", ctypes.c_int, W, c_char_p)

SMOLLM2 = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA3 = os.path.join(models_dir(), "gemma3-270m", "gemma-3-270m-q4_k_m.gguf")

# block size, bytes per block, byte offsets of the f16 scale fields
LAYOUT = {
    QT.F32: (1, 4, []), QT.F16: (1, 2, []), QT.BF16: (1, 2, []),
    QT.Q4_0: (32, 18, [0]), QT.Q4_1: (32, 20, [0, 2]), QT.Q5_0: (32, 22, [0]), QT.Q5_1: (32, 24, [0, 2]),
    QT.Q8_0: (32, 34, [0]), QT.Q8_1: (32, 36, [0, 2]), QT.Q2_K: (256, 84, [80, 82]), QT.Q3_K: (256, 110, [108]),
    QT.Q4_K: (256, 144, [0, 2]), QT.Q5_K: (256, 176, [0, 2]), QT.Q6_K: (256, 210, [208]), QT.Q8_K: (256, 292, []),
}

# numpy dtype of each metadata value type
NP_OF = {VT.UINT8: np.uint8, VT.INT8: np.int8, VT.UINT16: np.uint16, VT.INT16: np.int16, VT.UINT32: np.uint32,
         VT.INT32: np.int32, VT.FLOAT32: np.float32, VT.BOOL: np.bool_, VT.UINT64: np.uint64, VT.INT64: np.int64,
         VT.FLOAT64: np.float64}


def check(st, what):
    if st != 0:
        raise AssertionError("%s: status %d: %s" % (what, st, sa_last_error().decode()))


def ours_dequantize(qtype, raw, n):
    raw = np.ascontiguousarray(raw)
    out = np.empty(n, dtype=np.float32)
    check(sa_dequantize(int(qtype), raw.ctypes.data, out.ctypes.data, n), "sa_dequantize %s" % qtype.name)
    return out


def ref_dequantize(qtype, raw):
    """gguf-py's dequantization of a 1-d uint8 array of whole blocks, as f32."""
    if qtype == QT.Q8_1:  # gguf-py has none (and sizes Q8_1 as 40 bytes; ggml's block is 36)
        b = raw.reshape(-1, 36)
        d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
        return (b[:, 4:].copy().view(np.int8).astype(np.float32) * d).ravel()
    if qtype == QT.Q8_K:  # gguf-py has none: d (f32) * q (int8)
        b = raw.reshape(-1, 292)
        d = b[:, 0:4].copy().view(np.float32)
        return (b[:, 4:260].copy().view(np.int8).astype(np.float32) * d).ravel()
    bs, ts, _ = LAYOUT[qtype]
    return np.asarray(gguf.quants.dequantize(raw.reshape(-1, ts), qtype), dtype=np.float32).ravel()


def assert_same_f32(a, b, what):
    """Bitwise equality; NaN positions must be NaN on both sides (payloads may differ)."""
    a = np.asarray(a, dtype=np.float32).ravel()
    b = np.asarray(b, dtype=np.float32).ravel()
    assert a.shape == b.shape, "%s: shapes %s vs %s" % (what, a.shape, b.shape)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert (nan_a == nan_b).all(), "%s: NaN positions differ" % what
    diff = (a.view(np.uint32) != b.view(np.uint32)) & ~nan_a
    if diff.any():
        i = int(np.argmax(diff))
        raise AssertionError("%s: %d of %d elements differ, first at %d: %r vs %r"
                             % (what, int(diff.sum()), a.size, i, float(a[i]), float(b[i])))


def random_blocks(qtype, n_blocks, rng):
    bs, ts, scales = LAYOUT[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    for off in scales:
        # finite scales over many magnitudes (subnormal f16 included), both signs, some 0
        mag = 10.0 ** rng.uniform(-7, 2, size=n_blocks)
        v = (mag * rng.choice([-1.0, 1.0], size=n_blocks)).astype(np.float16)
        v[rng.random(n_blocks) < 0.03] = 0
        raw[:, off:off + 2] = v.view(np.uint8).reshape(n_blocks, 2)
    if qtype == QT.Q8_K:
        d = (rng.standard_normal(n_blocks) * 10.0 ** rng.uniform(-6, 1, size=n_blocks)).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    return raw.ravel()


@test
def dequantize_random_blocks_every_type():
    rng = np.random.default_rng(1234)
    for qtype in LAYOUT:
        bs, ts, _ = LAYOUT[qtype]
        if qtype == QT.F32:
            x = rng.standard_normal(4096).astype(np.float32) * 10.0 ** rng.uniform(-40, 38, 4096).astype(np.float32)
            x[:6] = [0.0, -0.0, np.inf, -np.inf, np.float32(1e-45), np.nan]
            raw = x.view(np.uint8)
        elif qtype in (QT.F16, QT.BF16):
            raw = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.uint8)  # every value
        else:
            raw = random_blocks(qtype, 8192 if bs == 32 else 1024, rng)
        n = raw.size // ts * bs
        assert_same_f32(ours_dequantize(qtype, raw, n), ref_dequantize(qtype, raw), "random %s" % qtype.name)


@test
def quantize_matches_gguf_py():
    rng = np.random.default_rng(99)
    n = 32 * 4096
    x = (rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 6, n)).astype(np.float32)
    x[:32] = 0  # an all-zero block
    x[32:64] = np.arange(32, dtype=np.float32) - 16  # exact steps
    x[64:96] = (np.arange(32, dtype=np.float32) - 15.5) * (127 / 15.5)  # many ties at .5
    x[96:128] = np.float32(1e-30)
    x[128:160] = np.float32(3e38) * np.sign(rng.standard_normal(32)).astype(np.float32)
    x[160:168] = [np.inf, -np.inf, 65504, 65519.996, 65520, 6e-8, -3e-8, 2.9802322e-08]
    out16 = np.empty(n, dtype=np.uint16)
    finite = np.isfinite(x)
    check(sa_quantize(int(QT.F16), x.ctypes.data, out16.ctypes.data, n), "quantize f16")
    with np.errstate(over="ignore"):
        ref16 = x.astype(np.float16).view(np.uint16)
    assert (out16 == ref16).all(), "F16: %d differ" % int((out16 != ref16).sum())
    xb = x.copy()
    xb[200:204] = [np.nan, -np.nan, np.float32(np.nan) * 0, np.inf]
    xb[204] = np.frombuffer(np.uint32(0x7f800001).tobytes(), dtype=np.float32)[0]  # signalling NaN
    outb = np.empty(n, dtype=np.uint16)
    check(sa_quantize(int(QT.BF16), xb.ctypes.data, outb.ctypes.data, n), "quantize bf16")
    refb = gguf.quants.quantize(xb, QT.BF16).view(np.uint16)
    assert (outb == refb).all(), "BF16: %d differ" % int((outb != refb).sum())
    xq = np.where(finite, x, 0).astype(np.float32)
    outq = np.empty(n // 32 * 34, dtype=np.uint8)
    check(sa_quantize(int(QT.Q8_0), xq.ctypes.data, outq.ctypes.data, n), "quantize q8_0")
    with np.errstate(over="ignore"):  # the 3e38 block: its scale overflows f16 on both sides
        refq = gguf.quants.quantize(xq.reshape(-1, 1024), QT.Q8_0).ravel()
    assert (outq == refq).all(), "Q8_0: %d bytes differ" % int((outq != refq).sum())
    # and back: our dequantization of our Q8_0 equals gguf-py's of the same bytes
    assert_same_f32(ours_dequantize(QT.Q8_0, outq, n), ref_dequantize(QT.Q8_0, refq), "q8_0 round trip")


class Reader:
    def __init__(self, path):
        self.g = c_void_p()
        check(sa_gguf_open(path.encode(), ctypes.byref(self.g)), "open %s" % path)

    def close(self):
        sa_gguf_free(self.g)

    def kvs(self):
        """{key: (type, value)}: value is bytes (string), list of bytes (string array),
        numpy array (other arrays) or a numpy scalar."""
        out = {}
        for i in range(sa_gguf_n_kv(self.g)):
            key = sa_gguf_key(self.g, i).decode()
            t = VT(sa_gguf_kv_type(self.g, i))
            if t == VT.STRING:
                s = sa_gguf_get_str(self.g, i)
                val = ctypes.string_at(s.ptr, s.len) if s.len else b""
                out[key] = (t, None, val)
            elif t == VT.ARRAY:
                et = VT(sa_gguf_arr_type(self.g, i))
                n = sa_gguf_arr_n(self.g, i)
                if et == VT.STRING:
                    val = []
                    for j in range(n):
                        s = sa_gguf_arr_str(self.g, i, j)
                        val.append(ctypes.string_at(s.ptr, s.len) if s.len else b"")
                else:
                    dt = np.dtype(NP_OF[et])
                    val = np.frombuffer(ctypes.string_at(sa_gguf_arr_data(self.g, i), n * dt.itemsize), dtype=dt)
                out[key] = (t, et, val)
            else:
                raw, size = c_void_p(), c_uint64()
                assert sa_gguf_kv_raw(self.g, i, ctypes.byref(raw), ctypes.byref(size))
                out[key] = (t, None, np.frombuffer(ctypes.string_at(raw, size.value), dtype=NP_OF[t])[0])
        return out

    def tensors(self):
        return [sa_gguf_tensor(self.g, i).contents for i in range(sa_gguf_n_tensors(self.g))]


def py_kvs(r):
    """The same view of a gguf-py GGUFReader's fields."""
    out = {}
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue
        t = VT(f.types[0])
        if t == VT.STRING:
            out[key] = (t, None, bytes(f.parts[f.data[0]]))
        elif t == VT.ARRAY:
            et = VT(f.types[1]) if len(f.types) > 1 else None
            if et == VT.STRING:
                out[key] = (t, et, [bytes(f.parts[i]) for i in f.data])
            else:
                vals = [f.parts[i] for i in f.data]
                out[key] = (t, et, np.concatenate(vals).astype(NP_OF[et]) if vals else np.array([], NP_OF[et]))
        else:
            out[key] = (t, None, f.parts[f.data[0]][0])
    return out


def assert_same_kvs(ours, ref, what):
    assert list(ours) == list(ref), "%s: keys differ:\n%s\n%s" % (what, list(ours), list(ref))
    for k in ours:
        (t1, e1, v1), (t2, e2, v2) = ours[k], ref[k]
        assert t1 == t2, "%s: %s type %s vs %s" % (what, k, t1, t2)
        if t1 == VT.ARRAY and len(v1) == 0 and e2 is None:
            continue  # gguf-py cannot tell the type of an empty array
        assert e1 == e2, "%s: %s element type %s vs %s" % (what, k, e1, e2)
        if isinstance(v1, np.ndarray):
            assert v1.dtype == v2.dtype and v1.tobytes() == v2.tobytes(), "%s: %s values differ" % (what, k)
        elif isinstance(v1, np.generic):
            assert type(v1) is type(v2) and v1.tobytes() == v2.tobytes(), "%s: %s: %r vs %r" % (what, k, v1, v2)
        else:
            assert v1 == v2, "%s: %s values differ" % (what, k)


def compare_model(path, check_values):
    ours = Reader(path)
    ref = gguf.GGUFReader(path)
    try:
        assert_same_kvs(ours.kvs(), py_kvs(ref), os.path.basename(path))
        ts = ours.tensors()
        assert len(ts) == len(ref.tensors)
        d0 = sa_gguf_data_offset(ours.g)
        assert d0 == ref.data_offset
        n_elems = 0
        for t, rt in zip(ts, ref.tensors):
            name = t.name.decode()
            assert name == rt.name and t.type == int(rt.tensor_type), name
            assert list(t.ne[:t.n_dims]) == [int(x) for x in rt.shape], (name, list(t.ne), rt.shape)
            assert d0 + t.offset == rt.data_offset and t.n_bytes == rt.n_bytes, name
            if not check_values:
                continue
            # dequantize in chunks of about 4M values; the two embeddings (28M and 168M values of
            # one type) are sampled: 4 chunks spread over the tensor, first and last included
            bs, ts_, _ = LAYOUT[QT(t.type)]
            ne0 = t.ne[0]
            row_bytes = ne0 // bs * ts_
            n_rows = t.n_bytes // row_bytes
            flat = np.asarray(rt.data).reshape(-1).view(np.uint8).reshape(n_rows, row_bytes)
            step = max(1, (1 << 22) // ne0)
            starts = list(range(0, n_rows, step))
            if len(starts) > 4:
                starts = [starts[int(round(k * (len(starts) - 1) / 3))] for k in range(4)]
            for r0 in starts:
                r1 = min(n_rows, r0 + step)
                n = (r1 - r0) * ne0
                out = np.empty(n, dtype=np.float32)
                check(sa_dequantize(t.type, t.data + r0 * row_bytes, out.ctypes.data, n), name)
                refv = ref_dequantize(QT(t.type), np.ascontiguousarray(flat[r0:r1]).ravel())
                assert_same_f32(out, refv, "%s rows %d..%d" % (name, r0, r1))
                n_elems += n
        return n_elems
    finally:
        ours.close()


@test
def smollm2_every_tensor_matches_gguf_py():
    n = compare_model(SMOLLM2, True)
    print("    smollm2: all 272 tensors, %d values dequantized, all bit-exact" % n)


@test
def gemma3_every_tensor_matches_gguf_py():
    n = compare_model(GEMMA3, True)
    print("    gemma3: all 236 tensors, %d values dequantized, all bit-exact" % n)


def write_with_ours(path, tensors):
    w = c_void_p()
    check(sa_gguf_writer_init(ctypes.byref(w)), "writer init")
    try:
        check(sa_gguf_writer_set_str(w, b"general.architecture", b"llama"), "set str")
        scalars = [(VT.UINT8, np.uint8(250)), (VT.INT8, np.int8(-7)), (VT.UINT16, np.uint16(65000)),
                   (VT.INT16, np.int16(-32768)), (VT.UINT32, np.uint32(4294967295)), (VT.INT32, np.int32(-5)),
                   (VT.FLOAT32, np.float32(1e-5)), (VT.BOOL, np.uint8(1)), (VT.UINT64, np.uint64(2**64 - 1)),
                   (VT.INT64, np.int64(-2**63)), (VT.FLOAT64, np.float64(-1.5e-300))]
        for t, v in scalars:
            a = np.array([v])
            check(sa_gguf_writer_set_scalar(w, ("s.%s" % t.name.lower()).encode(), int(t), a.ctypes.data), t.name)
        check(sa_gguf_writer_set_str(w, b"s.string", "caf\u00e9 \u2581x".encode()), "set str")
        for t, v in scalars:
            a = np.array([v, v, 0, 1], dtype=NP_OF[t])
            check(sa_gguf_writer_set_arr(w, ("a.%s" % t.name.lower()).encode(), int(t), a.ctypes.data, len(a)),
                  t.name)
        strs = [b"<s>", b"", "\u2581hello".encode(), b"a b"]
        arr = (Str * len(strs))()
        keep = []
        for i, s in enumerate(strs):
            buf = ctypes.create_string_buffer(s, len(s) + 1)
            keep.append(buf)
            arr[i].ptr = ctypes.cast(buf, c_void_p).value
            arr[i].len = len(s)
        check(sa_gguf_writer_set_arr_str(w, b"a.strings", arr, len(strs)), "set arr str")
        for name, qtype, ne, raw in tensors:
            ne4 = (c_int64 * 4)(*(list(ne) + [1] * (4 - len(ne))))
            check(sa_gguf_writer_add_tensor(w, name.encode(), int(qtype), len(ne), ne4, raw.ctypes.data), name)
        check(sa_gguf_writer_write(w, path.encode()), "write")
    finally:
        sa_gguf_writer_free(w)


@test
def our_writer_reads_back_in_gguf_py():
    rng = np.random.default_rng(5)
    tensors = []
    for qtype, ne in [(QT.F32, [5, 3]), (QT.F16, [64]), (QT.BF16, [4, 2, 3]), (QT.Q8_0, [64, 3]),
                      (QT.Q4_K, [256, 2]), (QT.Q6_K, [512]), (QT.Q4_1, [32, 1, 1, 2]), (QT.I32, [7])]:
        bs, ts, _ = LAYOUT.get(qtype, (1, 4, []))
        n_bytes = int(np.prod(ne)) // bs * ts
        raw = random_blocks(qtype, n_bytes // ts, rng) if qtype in LAYOUT else \
            rng.integers(0, 256, n_bytes, dtype=np.uint8)
        if qtype == QT.F32:
            raw = rng.standard_normal(n_bytes // 4).astype(np.float32).view(np.uint8)
        tensors.append(("t.%s" % qtype.name.lower(), qtype, ne, raw))
    path = os.path.join(tmpdir(), "ours.gguf")
    write_with_ours(path, tensors)
    ref = gguf.GGUFReader(path)
    ours = Reader(path)
    try:
        assert_same_kvs(ours.kvs(), py_kvs(ref), "our file")
        kv = py_kvs(ref)
        assert kv["s.uint64"][2] == np.uint64(2**64 - 1) and kv["s.int16"][2] == -32768
        assert kv["a.strings"][2] == [b"<s>", b"", "\u2581hello".encode(), b"a b"]
        assert kv["s.string"][2].decode() == "caf\u00e9 \u2581x"
        assert len(ref.tensors) == len(tensors)
        for (name, qtype, ne, raw), rt in zip(tensors, ref.tensors):
            assert rt.name == name and rt.tensor_type == qtype and [int(x) for x in rt.shape] == list(ne), name
            assert np.asarray(rt.data).tobytes() == raw.tobytes(), name
            assert rt.data_offset % 32 == 0
            if qtype != QT.I32:
                t = sa_gguf_find_tensor(ours.g, name.encode()).contents
                assert_same_f32(ours_dequantize(qtype, raw, int(np.prod(ne))),
                                ref_dequantize(qtype, np.asarray(rt.data).reshape(-1).view(np.uint8)), name)
                assert t.n_bytes == raw.nbytes
    finally:
        ours.close()


class GgufInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", c_void_p)]


def ggml_gguf_lib():
    """ggml's own GGUF reader (gguf.cpp, what llama.cpp loads models with), from the
    llama-cpp-python build in the venv."""
    import importlib.util
    spec = importlib.util.find_spec("llama_cpp")
    assert spec is not None, "llama_cpp is not installed in the venv (scripts/setup.sh)"
    lib = ctypes.CDLL(os.path.join(os.path.dirname(spec.origin), "lib", "libggml-base.so"))
    for name, res, args in [("gguf_init_from_file", c_void_p, [c_char_p, GgufInitParams]),
                            ("gguf_free", None, [c_void_p]), ("gguf_get_n_kv", c_int64, [c_void_p]),
                            ("gguf_get_key", c_char_p, [c_void_p, c_int64]),
                            ("gguf_get_n_tensors", c_int64, [c_void_p]),
                            ("gguf_get_tensor_name", c_char_p, [c_void_p, c_int64]),
                            ("gguf_get_tensor_offset", ctypes.c_size_t, [c_void_p, c_int64]),
                            ("gguf_get_tensor_type", ctypes.c_int, [c_void_p, c_int64]),
                            ("gguf_get_data_offset", ctypes.c_size_t, [c_void_p]),
                            ("gguf_get_version", ctypes.c_uint32, [c_void_p])]:
        f = getattr(lib, name)
        f.restype, f.argtypes = res, args
    return lib


@test
def our_writer_loads_in_ggml_gguf():
    rng = np.random.default_rng(6)
    tensors = [("a.q8_0", QT.Q8_0, [64, 5], random_blocks(QT.Q8_0, 10, rng)),
               ("b.f32", QT.F32, [3], rng.standard_normal(3).astype(np.float32).view(np.uint8)),
               ("c.q6_k", QT.Q6_K, [256, 3], random_blocks(QT.Q6_K, 3, rng)),
               ("d.bf16", QT.BF16, [5, 7], rng.integers(0, 256, 70, dtype=np.uint8))]
    path = os.path.join(tmpdir(), "for_ggml.gguf")
    write_with_ours(path, tensors)
    lib = ggml_gguf_lib()
    ctx = lib.gguf_init_from_file(path.encode(), GgufInitParams(True, None))
    assert ctx, "ggml's gguf_init_from_file rejected our file (see stderr)"
    ours = Reader(path)
    try:
        assert lib.gguf_get_version(ctx) == 3
        keys = [lib.gguf_get_key(ctx, i).decode() for i in range(lib.gguf_get_n_kv(ctx))]
        assert keys == list(ours.kvs()), keys
        assert lib.gguf_get_data_offset(ctx) == sa_gguf_data_offset(ours.g)
        assert lib.gguf_get_n_tensors(ctx) == len(tensors)
        for i, t in enumerate(ours.tensors()):
            assert lib.gguf_get_tensor_name(ctx, i) == t.name
            assert lib.gguf_get_tensor_offset(ctx, i) == t.offset
            assert lib.gguf_get_tensor_type(ctx, i) == t.type
    finally:
        lib.gguf_free(ctx)
        ours.close()


@test
def gguf_py_writer_reads_back_in_ours():
    path = os.path.join(tmpdir(), "theirs.gguf")
    w = gguf.GGUFWriter(path, "gemma3")
    w.add_uint8("k.u8", 3)
    w.add_int16("k.i16", -3)
    w.add_uint64("k.u64", 2**63 + 1)
    w.add_float64("k.f64", 0.25)
    w.add_bool("k.bool", True)
    w.add_string("k.str", "\u00fcber")
    w.add_array("k.arr_i32", [1, -2, 3])
    w.add_array("k.arr_f32", [0.5, 1.5])
    w.add_array("k.arr_str", ["a", "bc", "\u2581"])
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 64)).astype(np.float32)
    w.add_tensor("w.f32", x)
    w.add_tensor("w.f16", x.astype(np.float16))
    q = gguf.quants.quantize(x, QT.Q8_0)
    w.add_tensor("w.q8_0", q, raw_shape=q.shape, raw_dtype=QT.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    ours = Reader(path)
    try:
        assert_same_kvs(ours.kvs(), py_kvs(gguf.GGUFReader(path)), "gguf-py file")
        t = sa_gguf_find_tensor(ours.g, b"w.q8_0").contents
        assert list(t.ne[:2]) == [64, 3] and t.type == int(QT.Q8_0)
        raw = np.frombuffer(ctypes.string_at(t.data, t.n_bytes), dtype=np.uint8)
        assert_same_f32(ours_dequantize(QT.Q8_0, raw, 192), gguf.quants.dequantize(q, QT.Q8_0), "w.q8_0")
        t = sa_gguf_find_tensor(ours.g, b"w.f16").contents
        raw = np.frombuffer(ctypes.string_at(t.data, t.n_bytes), dtype=np.uint8)
        assert_same_f32(ours_dequantize(QT.F16, raw, 192), x.astype(np.float16).astype(np.float32), "w.f16")
    finally:
        ours.close()


main()
