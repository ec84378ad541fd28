"""test_hf_parity.py: our forward pass on tiny random Hugging Face checkpoints (safetensors +
config.json, no tokenizer) of each architecture -- llama (untied, llama3 RoPE scaling),
qwen2 (q/k/v biases, tied), qwen3 (q/k norms, head_dim != hidden/heads), gemma3 (embedding
scale, (1 + w) norms, pre/post norms, GeGLU, query_pre_attn_scalar, sliding-window local
layers with their own RoPE base) -- against a reference forward in PyTorch.

The reference: the test's own PyTorch forward (Debian's torch 1.13), written
line by line after transformers' modeling_llama.py, modeling_qwen2.py, modeling_qwen3.py and
modeling_gemma3.py (RMSNorm in f32, rotate_half RoPE, _compute_llama3_parameters, eager
attention with causal and sliding-window masks), and Hugging Face transformers 4.51 itself
(on torch 1.13 through tests/py/hf_compat.py): our logits are compared with both, which also
checks the hand-written reference. Max abs logit difference < 1e-3 (all f32).
"""
import json
import math
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from harness import main, test, tmpdir  # noqa: E402
from model_ctypes import Context, Model  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

V, E, L, H, HKV, FF = 256, 64, 2, 4, 2, 128
T = 40  # tokens; > gemma's sliding window (8) so that windowing matters

CONFIGS = {
    "llama": dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_act="silu", head_dim=16,
                  rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=False,
                  rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                    original_max_position_embeddings=32)),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu", rms_norm_eps=1e-6,
                  rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
    "qwen3": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3", hidden_act="silu", head_dim=32,
                  rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, attention_bias=False),
    "gemma3": dict(architectures=["Gemma3ForCausalLM"], model_type="gemma3_text",
                   hidden_activation="gelu_pytorch_tanh", head_dim=16, rms_norm_eps=1e-6, rope_theta=1000000.0,
                   rope_local_base_freq=10000.0, query_pre_attn_scalar=24, sliding_window=8,
                   sliding_window_pattern=2, layer_types=["sliding_attention", "full_attention"],
                   tie_word_embeddings=True, final_logit_softcapping=None, attn_logit_softcapping=None,
                   attention_bias=False),
}


def full_config(arch):
    c = dict(vocab_size=V, hidden_size=E, num_hidden_layers=L, num_attention_heads=H, num_key_value_heads=HKV,
             intermediate_size=FF, max_position_embeddings=512, torch_dtype="float32", bos_token_id=1,
             eos_token_id=2)
    c.update(CONFIGS[arch])
    return c


def make_weights(arch, cfg, seed):
    g = torch.Generator().manual_seed(seed)
    D = cfg.get("head_dim", E // H)

    def mat(o, i):
        return torch.randn(o, i, generator=g) / math.sqrt(i)

    def norm(n):  # Gemma stores w with x * (1 + w); the others x * w
        base = 0.0 if arch == "gemma3" else 1.0
        return base + 0.1 * torch.randn(n, generator=g)

    w = {"model.embed_tokens.weight": torch.randn(V, E, generator=g), "model.norm.weight": norm(E)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = mat(V, E)
    for i in range(L):
        p = "model.layers.%d." % i
        w[p + "input_layernorm.weight"] = norm(E)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, E)
        w[p + "self_attn.k_proj.weight"] = mat(HKV * D, E)
        w[p + "self_attn.v_proj.weight"] = mat(HKV * D, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        if arch == "qwen2":
            for n, o in (("q", H * D), ("k", HKV * D), ("v", HKV * D)):
                w[p + "self_attn.%s_proj.bias" % n] = 0.5 * torch.randn(o, generator=g)
        if arch in ("qwen3", "gemma3"):
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        if arch == "gemma3":
            w[p + "pre_feedforward_layernorm.weight"] = norm(E)
            w[p + "post_feedforward_layernorm.weight"] = norm(E)
        w[p + "mlp.gate_proj.weight"] = mat(FF, E)
        w[p + "mlp.up_proj.weight"] = mat(FF, E)
        w[p + "mlp.down_proj.weight"] = mat(E, FF)
    return {k: v.float().contiguous() for k, v in w.items()}


# ---- the reference forward, after transformers' modeling code ----

def rms_norm(x, w, eps, plus_one):
    v = x.float().pow(2).mean(-1, keepdim=True)
    y = x.float() * torch.rsqrt(v + eps)
    return y * (1.0 + w.float()) if plus_one else w * y


def inv_freq(cfg, base, D, scaled):
    inv = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    rs = cfg.get("rope_scaling") if scaled else None
    if rs and rs.get("rope_type") == "llama3":  # modeling_rope_utils._compute_llama3_parameters
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > lo_wl, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < hi_wl) * ~(wavelen > lo_wl)
        inv = torch.where(medium, smoothed, inv_l)
    return inv


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, inv):  # x: (H, T, D)
    pos = torch.arange(x.shape[1]).float()
    freqs = pos[:, None] * inv[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()


def reference_logits(arch, cfg, w, tokens):
    gemma = arch == "gemma3"
    D = cfg.get("head_dim", E // H)
    eps = cfg["rms_norm_eps"]
    x = w["model.embed_tokens.weight"][torch.tensor(tokens)]
    if gemma:
        x = x * torch.tensor(E ** 0.5, dtype=x.dtype)
    n = len(tokens)
    causal = torch.ones(n, n).tril().bool()
    idx = torch.arange(n)
    for i in range(L):
        p = "model.layers.%d." % i
        local = gemma and cfg["layer_types"][i] == "sliding_attention"
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps, gemma)
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if arch == "qwen2":
            q = q + w[p + "self_attn.q_proj.bias"]
            k = k + w[p + "self_attn.k_proj.bias"]
            v = v + w[p + "self_attn.v_proj.bias"]
        q = q.view(n, H, D).transpose(0, 1)
        k = k.view(n, HKV, D).transpose(0, 1)
        v = v.view(n, HKV, D).transpose(0, 1)
        if arch in ("qwen3", "gemma3"):
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, gemma)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, gemma)
        base = cfg["rope_local_base_freq"] if local else cfg["rope_theta"]
        inv = inv_freq(cfg, base, D, not local)
        q, k = apply_rope(q, inv), apply_rope(k, inv)
        k = k.repeat_interleave(H // HKV, dim=0)  # repeat_kv
        v = v.repeat_interleave(H // HKV, dim=0)
        scaling = cfg["query_pre_attn_scalar"] ** -0.5 if gemma else D ** -0.5
        s = (q @ k.transpose(1, 2)) * scaling
        mask = causal.clone()
        if local:  # sliding_window_overlay: kv_idx > q_idx - sliding_window
            mask &= idx[None, :] > idx[:, None] - cfg["sliding_window"]
        s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s.float(), dim=-1) @ v
        a = a.transpose(0, 1).reshape(n, H * D) @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            a = rms_norm(a, w[p + "post_attention_layernorm.weight"], eps, True)
        x = x + a
        if gemma:
            h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps, True)
        else:
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps, False)
        gt = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        act = F.gelu(gt, approximate="tanh") if gemma else F.silu(gt)
        m = (act * up) @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            m = rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps, True)
        x = x + m
    x = rms_norm(x, w["model.norm.weight"], eps, gemma)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return (x @ head.T).numpy()


def transformers_logits(d, tokens):
    """Logits from Hugging Face transformers 4.51 (on torch 1.13 through hf_compat)."""
    import hf_compat  # noqa: F401
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        return m(torch.tensor([tokens])).logits[0].float().numpy()


def write_checkpoint(arch, seed):
    from safetensors.numpy import save_file
    cfg = full_config(arch)
    w = make_weights(arch, cfg, seed)
    d = os.path.join(tmpdir(), "hf-" + arch)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    save_file({k: v.numpy() for k, v in w.items()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    return d, cfg, w


def check(arch, seed):
    d, cfg, w = write_checkpoint(arch, seed)
    rng = np.random.RandomState(seed)
    tokens = [int(t) for t in rng.randint(0, V, size=T)]
    with torch.no_grad():
        ref = reference_logits(arch, cfg, w, tokens)
    model = Model(d, n_threads=2)
    try:
        ctx = Context(model, n_ctx=64, n_batch=16, n_threads=2)  # 3 chunks: exercises the cache too
        ours = ctx.decode_all(tokens)
        ctx.close()
    finally:
        model.close()
    diff = float(np.abs(ours - ref).max())
    hf = transformers_logits(d, tokens)
    hf_diff = float(np.abs(ours - hf).max()) if hf is not None else None
    print("  %s: max |ours - torch reference| = %.3g (logit scale %.3g); transformers: %s"
          % (arch, diff, float(np.abs(ref).max()), "%.3g" % hf_diff if hf_diff is not None else "not available"),
          flush=True)
    assert diff < 1e-3, "%s: max abs logit difference %.3g >= 1e-3" % (arch, diff)
    assert hf_diff < 1e-3, "%s: differs from transformers by %.3g" % (arch, hf_diff)
    shutil.rmtree(d, ignore_errors=True)


@test
def test_llama():
    check("llama", 1)


@test
def test_qwen2():
    check("qwen2", 2)


@test
def test_qwen3():
    check("qwen3", 3)


@test
def test_gemma3():
    check("gemma3", 4)


if __name__ == "__main__":
    main()
