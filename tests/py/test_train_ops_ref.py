"""test_train_ops_ref.py: the training ops (src/train/ops_train_impl.h) against PyTorch
autograd, called through ctypes on build/libsalign.so: forward outputs and every gradient on
random inputs of realistic small shapes (SmolLM2-135M's head layout: 9 query heads, 3 kv
heads, head_dim 64), relative error max|ours - torch| / max|torch| < 1e-4. AdamW against
torch.optim.AdamW over 10 steps (< 1e-6), clipping against clip_grad_norm_, the llama3
inverse frequencies against transformers, LoRA against a torch transcription of PEFT's
forward with our dropout mask."""
import ctypes
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test  # noqa: E402

TOL = 1e-4
f32p = ctypes.POINTER(ctypes.c_float)
i32p = ctypes.POINTER(ctypes.c_int32)
i64 = ctypes.c_int64


class Attn(ctypes.Structure):
    _fields_ = [("B", i64), ("T", i64), ("n_head", i64), ("n_head_kv", i64), ("head_dim", i64), ("window", i64),
                ("scale", ctypes.c_float), ("seg", i32p), ("scratch", f32p), ("bf16", ctypes.c_bool)]


class Lora(ctypes.Structure):
    _fields_ = [("C", i64), ("OC", i64), ("r", i64), ("scale", ctypes.c_float), ("dropout", ctypes.c_float),
                ("seed", ctypes.c_uint64), ("bf16", ctypes.c_bool), ("tp", ctypes.c_void_p)]


class AdamwCfg(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_float), ("beta1", ctypes.c_float), ("beta2", ctypes.c_float), ("eps", ctypes.c_float),
                ("weight_decay", ctypes.c_float)]


class ParamRef(ctypes.Structure):
    _fields_ = [("data", f32p), ("grad", f32p), ("n", i64), ("decay", ctypes.c_bool)]


class RopeParams(ctypes.Structure):  # struct sa_rope_params (src/formats/arch_impl.h)
    _fields_ = [("n_rot", i64), ("base", ctypes.c_double), ("scaling", ctypes.c_int), ("factor", ctypes.c_double),
                ("low_freq_factor", ctypes.c_double), ("high_freq_factor", ctypes.c_double),
                ("orig_ctx", ctypes.c_double), ("factors", f32p)]


def rope_inv_freq(out, n_rot, base, factor=0.0, low=0.0, high=0.0, orig=0.0):
    """sa_rope_inv_freq, the one RoPE frequency rule of inference and training (llama3 when factor > 0)."""
    p = RopeParams(n_rot, base, 2 if factor > 0 else 0, factor, low, high, orig, None)
    lib.sa_rope_inv_freq(ctypes.byref(p), P(out))


class Adamw(ctypes.Structure):
    _fields_ = [("n_params", i64), ("step", i64), ("m", f32p), ("v", f32p)]


def load():
    L = ctypes.CDLL(os.environ.get("SA_LIB") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
    L.sa_last_error.restype = ctypes.c_char_p
    L.sa_tr_cross_entropy.argtypes = [ctypes.c_void_p, f32p, f32p, i32p, f32p, i64, i64, ctypes.c_float,
                                      ctypes.c_bool, f32p]
    L.sa_tr_rmsnorm_fwd.argtypes = [f32p, f32p, f32p, f32p, i64, i64, ctypes.c_float, ctypes.c_bool]
    L.sa_tr_rmsnorm_bwd.argtypes = [f32p, f32p, f32p, f32p, f32p, f32p, i64, i64, ctypes.c_bool]
    L.sa_rope_inv_freq.argtypes = [ctypes.POINTER(RopeParams), f32p]
    L.sa_tr_dropout_keep.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_float]
    L.sa_adamw_update.argtypes = [f32p, f32p, f32p, f32p, i64, ctypes.c_float, ctypes.c_float, ctypes.c_float,
                                  ctypes.c_float, ctypes.c_float, i64]
    L.sa_adamw_step.argtypes = [ctypes.POINTER(Adamw), ctypes.POINTER(AdamwCfg), ctypes.c_float,
                                ctypes.POINTER(ParamRef), ctypes.c_int]
    L.sa_adamw_default_cfg.restype = AdamwCfg
    L.sa_grad_global_norm.restype = ctypes.c_double
    L.sa_grad_clip.restype = ctypes.c_double
    L.sa_grad_clip.argtypes = [ctypes.POINTER(ParamRef), ctypes.c_int, ctypes.c_double]
    L.sa_lr_cosine.restype = ctypes.c_double
    L.sa_lr_cosine.argtypes = [i64, i64, i64]
    L.sa_lr_warmup_steps.restype = i64
    L.sa_lr_warmup_steps.argtypes = [ctypes.c_double, i64]
    return L


lib = load()
rng = np.random.default_rng(1234)


def P(a):
    """A ctypes pointer into a contiguous numpy array (float32 or int32), or NULL for None."""
    if a is None:
        return None
    assert a.flags.c_contiguous
    return a.ctypes.data_as(i32p if a.dtype == np.int32 else f32p)


def rand(*shape, scale=1.0):
    return (rng.uniform(-1, 1, size=shape) * scale).astype(np.float32)


def z(*shape):
    return np.zeros(shape, dtype=np.float32)


def rel(ours, ref):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref
    return float(np.abs(ours.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))


def close(name, ours, ref, tol=TOL):
    e = rel(ours, ref)
    assert e < tol, "%s: relative error %.3g >= %g" % (name, e, tol)
    print("    %-34s rel err %.2e" % (name, e))
    return e


def leaf(a):
    return torch.tensor(a, requires_grad=True)


@test
def embedding():
    N, C, V = 64, 96, 50
    table, tok, dout = rand(V, C), rng.integers(0, V, N).astype(np.int32), rand(N, C)
    out, dtable = z(N, C), z(V, C)
    assert lib.sa_tr_embedding_fwd(P(out), P(tok), P(table), i64(N), i64(C), i64(V)) == 0
    lib.sa_tr_embedding_bwd(P(dtable), P(dout), P(tok), i64(N), i64(C))
    t = leaf(table)
    y = F.embedding(torch.tensor(tok).long(), t)
    y.backward(torch.tensor(dout))
    close("embedding out", out, y)
    close("embedding dtable", dtable, t.grad)


@test
def rmsnorm():
    N, C = 64, 576
    for plus_one in (False, True):
        x, w, dout = rand(N, C, scale=2.0), rand(C), rand(N, C)
        out, rstd, dx, dw = z(N, C), z(N), z(N, C), z(C)
        lib.sa_tr_rmsnorm_fwd(P(out), P(rstd), P(x), P(w), N, C, 1e-5, plus_one)
        lib.sa_tr_rmsnorm_bwd(P(dx), P(dw), P(dout), P(x), P(w), P(rstd), N, C, plus_one)
        tx, tw = leaf(x), leaf(w)
        # HF LlamaRMSNorm / Gemma3RMSNorm
        y = tx * torch.rsqrt(tx.pow(2).mean(-1, keepdim=True) + 1e-5) * ((1 + tw) if plus_one else tw)
        y.backward(torch.tensor(dout))
        close("rmsnorm out", out, y)
        close("rmsnorm dx", dx, tx.grad)
        close("rmsnorm dw", dw, tw.grad)


@test
def linear():
    N, C, OC = 128, 576, 1536
    x, W, b, dout = rand(N, C), rand(OC, C, scale=0.05), rand(OC), rand(N, OC)
    for bias in (b, None):
        out, dx, dW, db = z(N, OC), z(N, C), z(OC, C), z(OC)
        lib.sa_tr_linear_fwd(P(out), P(x), P(W), P(bias), i64(N), i64(C), i64(OC))
        lib.sa_tr_linear_bwd(P(dx), P(dW), P(db if bias is not None else None), P(dout), P(x), P(W), i64(N), i64(C),
                             i64(OC))
        tx, tW = leaf(x), leaf(W)
        tb = leaf(b) if bias is not None else None
        y = F.linear(tx, tW, tb)
        y.backward(torch.tensor(dout))
        close("linear out", out, y)
        close("linear dx", dx, tx.grad)
        close("linear dW", dW, tW.grad)
        if bias is not None:
            close("linear db", db, tb.grad)


def rope_torch(x, pos, inv_freq, n_rot, neox):
    """x (N, H, D); HF apply_rotary_pos_emb (neox) or the interleaved-pairs form."""
    ang = pos.float()[:, None] * inv_freq[None, :]  # (N, n_rot/2) in f32 as HF
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    xr, xp = x[..., :n_rot], x[..., n_rot:]
    if neox:
        x0, x1 = xr[..., : n_rot // 2], xr[..., n_rot // 2:]
        y = torch.cat([x0 * cos - x1 * sin, x1 * cos + x0 * sin], -1)
    else:
        x0, x1 = xr[..., 0::2], xr[..., 1::2]
        y = torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], -1).flatten(-2)
    return torch.cat([y, xp], -1)


@test
def rope():
    N, H, D = 256, 9, 64
    pos = np.concatenate([np.arange(200), np.arange(56) + 3000]).astype(np.int32)
    for n_rot in (64, 32):
        inv = z(n_rot // 2)
        rope_inv_freq(inv, n_rot, 100000.0)
        ref_inv = 1.0 / (100000.0 ** (torch.arange(0, n_rot, 2).double() / n_rot))
        close("rope inv_freq", inv, ref_inv.float(), 1e-6)
        for mode in (0, 2):
            x, dout = rand(N, H, D), rand(N, H, D)
            out, dx = z(N, H, D), z(N, H, D)
            args = (P(pos), P(inv), i64(N), i64(H), i64(D), i64(n_rot), ctypes.c_int(mode))
            lib.sa_tr_rope_fwd(P(out), P(x), *args)
            lib.sa_tr_rope_bwd(P(dx), P(dout), *args)
            tx = leaf(x)
            y = rope_torch(tx, torch.tensor(pos), torch.tensor(inv), n_rot, mode == 2)
            y.backward(torch.tensor(dout))
            close("rope out", out, y)
            close("rope dx", dx, tx.grad)


@test
def rope_llama3_inv_freq():
    import hf_compat  # noqa: F401
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import _compute_llama3_parameters
    cfg = LlamaConfig(hidden_size=2048, num_attention_heads=32, rope_theta=500000.0, max_position_embeddings=131072,
                      rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    ref, _ = _compute_llama3_parameters(cfg, "cpu")
    inv = z(32)
    rope_inv_freq(inv, 64, 500000.0, 32.0, 1.0, 4.0, 8192.0)
    for i in range(32):  # per element: the frequencies span 6 decades
        assert abs(inv[i] - ref[i].item()) <= 2e-6 * abs(ref[i].item()), (i, inv[i], ref[i].item())


def attn_torch(q, k, v, scale, window, seg):
    """q (B, T, H, D), k/v (B, T, KV, D): the HF eager path (repeat_kv, masked softmax)."""
    B, T, H, D = q.shape
    rep = H // k.shape[2]
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k.repeat_interleave(rep, 2), v.repeat_interleave(rep, 2)))
    s = qh @ kh.transpose(-1, -2) * scale  # (B, H, T, T)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    allow = (j <= i)[None]
    if window:
        allow = allow & ((i - j) < window)[None]
    if seg is not None:
        sg = torch.tensor(seg).long()
        allow = allow & (sg[:, :, None] == sg[:, None, :])
    s = s.masked_fill(~allow[:, None], float("-inf"))
    return (s.softmax(-1) @ vh).transpose(1, 2)


def run_attn(q, k, v, dout, window, scale, seg):
    B, T, H, D = q.shape
    scratch = z(2 * T * T)
    a = Attn(B, T, H, k.shape[2], D, window, scale, P(seg), P(scratch))
    out, lse, dq, dk, dv = z(*q.shape), z(B, H, T), z(*q.shape), z(*k.shape), z(*k.shape)
    lib.sa_tr_attention_fwd(None, ctypes.byref(a), P(out), P(lse), P(q), P(k), P(v))
    lib.sa_tr_attention_bwd(None, ctypes.byref(a), P(dq), P(dk), P(dv), P(dout), P(out), P(lse), P(q), P(k), P(v))
    return out, dq, dk, dv


@test
def attention():
    B, T, H, KV, D = 2, 96, 9, 3, 64
    seg = np.repeat(np.array([[0, 1, 2], [4, 4, 5]], dtype=np.int32), [40, 30, 26], axis=1).copy()
    for window, sg, scale in ((0, None, 1 / 8), (16, None, 1 / 8), (0, seg, 0.1), (24, seg, 1 / 8)):
        q, k, v, dout = rand(B, T, H, D, scale=2), rand(B, T, KV, D, scale=2), rand(B, T, KV, D), rand(B, T, H, D)
        out, dq, dk, dv = run_attn(q, k, v, dout, window, scale, sg)
        tq, tk, tv = leaf(q), leaf(k), leaf(v)
        y = attn_torch(tq, tk, tv, scale, window, sg)
        y.backward(torch.tensor(dout))
        close("attention out", out, y)
        close("attention dq", dq, tq.grad)
        close("attention dk", dk, tk.grad)
        close("attention dv", dv, tv.grad)


@test
def qk_norm_rope_attention():
    """Qwen3/Gemma 3 order: per-head RMSNorm on q and k, then RoPE, then attention, composed
    from our ops (forward chain, then the backward chain in reverse) against one autograd graph."""
    B, T, H, KV, D = 1, 48, 4, 2, 32
    q, k, v, dout = rand(B, T, H, D, scale=3), rand(B, T, KV, D, scale=3), rand(B, T, KV, D), rand(B, T, H, D)
    wq, wk = rand(D), rand(D)
    pos = np.arange(T, dtype=np.int32)
    inv = z(D // 2)
    rope_inv_freq(inv, D, 10000.0)
    NQ, NK = B * T * H, B * T * KV
    qn, rq, kn, rk = z(*q.shape), z(NQ), z(*k.shape), z(NK)
    lib.sa_tr_rmsnorm_fwd(P(qn), P(rq), P(q), P(wq), NQ, D, 1e-6, False)
    lib.sa_tr_rmsnorm_fwd(P(kn), P(rk), P(k), P(wk), NK, D, 1e-6, False)
    qr, kr = z(*q.shape), z(*k.shape)
    lib.sa_tr_rope_fwd(P(qr), P(qn), P(pos), P(inv), i64(B * T), i64(H), i64(D), i64(D), 2)
    lib.sa_tr_rope_fwd(P(kr), P(kn), P(pos), P(inv), i64(B * T), i64(KV), i64(D), i64(D), 2)
    out, dqr, dkr, dv = run_attn(qr, kr, v, dout, 0, D ** -0.5, None)
    dqn, dkn = z(*q.shape), z(*k.shape)
    lib.sa_tr_rope_bwd(P(dqn), P(dqr), P(pos), P(inv), i64(B * T), i64(H), i64(D), i64(D), 2)
    lib.sa_tr_rope_bwd(P(dkn), P(dkr), P(pos), P(inv), i64(B * T), i64(KV), i64(D), i64(D), 2)
    dq, dk, dwq, dwk = z(*q.shape), z(*k.shape), z(D), z(D)
    lib.sa_tr_rmsnorm_bwd(P(dq), P(dwq), P(dqn), P(q), P(wq), P(rq), NQ, D, False)
    lib.sa_tr_rmsnorm_bwd(P(dk), P(dwk), P(dkn), P(k), P(wk), P(rk), NK, D, False)
    tq, tk, tv, twq, twk = leaf(q), leaf(k), leaf(v), leaf(wq), leaf(wk)

    def norm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    tp = torch.tensor(pos).repeat(B)
    qq = rope_torch(norm(tq, twq).reshape(B * T, H, D), tp, torch.tensor(inv), D, True).reshape(B, T, H, D)
    kk = rope_torch(norm(tk, twk).reshape(B * T, KV, D), tp, torch.tensor(inv), D, True).reshape(B, T, KV, D)
    y = attn_torch(qq, kk, tv, D ** -0.5, 0, None)
    y.backward(torch.tensor(dout))
    close("qk-norm attention out", out, y)
    for name, ours, ref in (("dq", dq, tq.grad), ("dk", dk, tk.grad), ("dv", dv, tv.grad), ("dwq", dwq, twq.grad),
                            ("dwk", dwk, twk.grad)):
        close("qk-norm attention " + name, ours, ref)


@test
def glu_residual():
    n = 64 * 1536
    for kind in (0, 1):
        g, u, dout = rand(n, scale=4), rand(n), rand(n)
        out, dg, du = z(n), z(n), z(n)
        lib.sa_tr_glu_fwd(P(out), P(g), P(u), i64(n), kind)
        lib.sa_tr_glu_bwd(P(dg), P(du), P(dout), P(g), P(u), i64(n), kind)
        tg, tu = leaf(g), leaf(u)
        y = (F.silu(tg) if kind == 0 else F.gelu(tg, approximate="tanh")) * tu
        y.backward(torch.tensor(dout))
        close("glu out", out, y)
        close("glu dgate", dg, tg.grad)
        close("glu dup", du, tu.grad)
    a, b, dout = rand(1000), rand(1000), rand(1000)
    out, da, db = z(1000), rand(1000), z(1000)
    da0 = da.copy()
    lib.sa_tr_residual_fwd(P(out), P(a), P(b), i64(1000))
    lib.sa_tr_residual_bwd(P(da), P(db), P(dout), i64(1000))
    close("residual out", out, torch.tensor(a) + torch.tensor(b))
    close("residual da (accumulated)", da, da0 + dout)
    close("residual db", db, dout)


@test
def cross_entropy():
    N, V = 96, 4000
    logits = rand(N, V, scale=8)
    targets = rng.integers(0, V, N).astype(np.int32)
    targets[:30] = -100  # the prompt: no loss
    targets[50] = -100
    weights = rand(N, scale=1.0) + 1.0
    for w in (None, weights):
        work, losses, loss = logits.copy(), z(N), ctypes.c_float()
        st = lib.sa_tr_cross_entropy(None, P(work), P(losses), P(targets), P(w), N, V, 0.0, True, ctypes.byref(loss))
        assert st == 0, lib.sa_last_error()
        tl = leaf(logits)
        per = F.cross_entropy(tl, torch.tensor(targets).long(), ignore_index=-100, reduction="none")
        keep = torch.tensor(targets >= 0)
        tw = torch.ones(N) if w is None else torch.tensor(w)
        ref = (per * tw * keep).sum() / (tw * keep).sum()
        if w is None:  # HF's mean reduction
            ref2 = F.cross_entropy(tl, torch.tensor(targets).long(), ignore_index=-100)
            assert abs(ref.item() - ref2.item()) < 1e-6 * abs(ref2.item())
        ref.backward()
        close("cross-entropy loss", np.array([loss.value], np.float32), ref.detach().reshape(1))
        close("cross-entropy per-row losses", losses, per.detach())
        close("cross-entropy dlogits", work, tl.grad)


def keep_mask(seed, p, shape):
    """Our dropout mask (src/train/lora.c): splitmix64's finaliser of seed + golden * (idx + 1)."""
    idx = np.arange(int(np.prod(shape)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = np.uint64(seed) + np.uint64(0x9E3779B97F4A7C15) * (idx + np.uint64(1))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return (u >= np.float32(p)).reshape(shape)


@test
def lora():
    N, C, OC, r, alpha = 64, 576, 192, 8, 16.0
    for p in (0.0, 0.1):
        x, W, b, A, B, dout = rand(N, C), rand(OC, C, scale=0.05), rand(OC), rand(r, C, scale=0.04), \
            rand(OC, r, scale=0.1), rand(N, OC)
        cfg = Lora(C, OC, r, alpha / r, p, 99)
        out, h = z(N, OC), z(N, r)
        xd = z(N, C) if p > 0 else None
        lib.sa_tr_lora_fwd(ctypes.byref(cfg), P(out), P(xd), P(h), P(x), P(W), P(b), P(A), P(B), i64(N))
        dx, dA, dB, dh = z(N, C), z(r, C), z(OC, r), z(N, r)
        dxd = z(N, C) if p > 0 else None
        lib.sa_tr_lora_bwd(ctypes.byref(cfg), P(dx), P(dA), P(dB), P(dh), P(dxd), P(dout), P(x), P(xd), P(h), P(W),
                           P(A), P(B), i64(N))
        mask = keep_mask(99, p, (N, C))
        if p > 0:
            assert all(lib.sa_tr_dropout_keep(99, i, ctypes.c_float(p)) == int(mask.flat[i]) for i in range(0, N * C, 97))
            assert 0.85 < mask.mean() < 0.95
        tx, tA, tB = leaf(x), leaf(A), leaf(B)
        # PEFT Linear.forward: base(x) + lora_B(lora_A(dropout(x))) * scaling
        xdrop = tx * torch.tensor(mask) / (1 - p) if p > 0 else tx
        y = F.linear(tx, torch.tensor(W), torch.tensor(b)) + F.linear(F.linear(xdrop, tA), tB) * (alpha / r)
        y.backward(torch.tensor(dout))
        close("lora out", out, y)
        close("lora dx", dx, tx.grad)
        close("lora dA", dA, tA.grad)
        close("lora dB", dB, tB.grad)
    # merge: W + scale * B A as PEFT's merge (delta = B @ A * scaling)
    Wm = W.copy()
    lib.sa_tr_lora_merge(P(Wm), P(A), P(B), i64(C), i64(OC), i64(r), ctypes.c_float(alpha / r))
    close("lora merge", Wm, torch.tensor(W) + torch.tensor(B) @ torch.tensor(A) * (alpha / r), 1e-6)


@test
def adamw_vs_torch():
    """10 steps with a cosine-with-warmup learning rate, two tensors with decay and one
    without (HF's grouping), the same gradients on both sides."""
    shapes, decay = [(64, 48), (48,), (32, 16)], [True, False, True]
    init = [rand(*s) for s in shapes]
    grads = [[rand(*s, scale=0.1) for s in shapes] for _ in range(10)]
    lr, wd, steps, warmup = 3e-3, 0.1, 10, lib.sa_lr_warmup_steps(0.25, 10)
    assert warmup == 3
    ours = [a.copy() for a in init]
    n = sum(a.size for a in init)
    opt = Adamw()
    assert lib.sa_adamw_init(ctypes.byref(opt), i64(n)) == 0
    cfg = lib.sa_adamw_default_cfg()
    cfg.lr, cfg.weight_decay = lr, wd
    tparams = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    topt = torch.optim.AdamW([{"params": [p for p, d in zip(tparams, decay) if d], "weight_decay": wd},
                              {"params": [p for p, d in zip(tparams, decay) if not d], "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def hf_cosine(step):  # transformers.optimization._get_cosine_schedule_with_warmup_lr_lambda
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, steps - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    sched = torch.optim.lr_scheduler.LambdaLR(topt, hf_cosine)
    for s in range(steps):
        mult = lib.sa_lr_cosine(s, warmup, steps)
        assert abs(mult - hf_cosine(s)) < 1e-15
        refs = (ParamRef * 3)(*[ParamRef(P(o), P(g), o.size, d) for o, g, d in zip(ours, grads[s], decay)])
        assert lib.sa_adamw_step(ctypes.byref(opt), ctypes.byref(cfg), ctypes.c_float(lr * mult), refs, 3) == 0
        for p, g in zip(tparams, grads[s]):
            p.grad = torch.tensor(g)
        topt.step()
        sched.step()
    for o, p in zip(ours, tparams):
        close("adamw params after 10 steps", o, p.detach(), 1e-6)
    lib.sa_adamw_free(ctypes.byref(opt))


@test
def clip_vs_torch():
    shapes = [(300,), (20, 30), (7,)]
    for max_norm in (1.0, 100.0):
        grads = [rand(*s) for s in shapes]
        tp = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p, g in zip(tp, grads):
            p.grad = torch.tensor(g.copy())
        refs = (ParamRef * 3)(*[ParamRef(P(g), P(g), g.size, True) for g in grads])
        norm = lib.sa_grad_clip(refs, 3, max_norm)  # clips `grads` in place
        tnorm = torch.nn.utils.clip_grad_norm_(tp, max_norm)
        assert abs(norm - tnorm.item()) < 1e-6 * tnorm.item(), (norm, tnorm.item())
        for g, p in zip(grads, tp):
            close("clipped grad", g, p.grad, 1e-6)


main()
