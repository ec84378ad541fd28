"""test_convert_ref.py: `salign convert` against the reference implementations.
GGUF -> GGUF (f32, bf16, q8_0) files load in llama.cpp (llama-cpp-python) and continue a
prompt like the original; GGUF -> safetensors holds the dequantized GGUF values under HF names
with llama.cpp's Q/K permutation undone (checked with gguf-py + numpy), and Hugging Face
transformers computes the same logits from it as llama.cpp does from the GGUF; safetensors ->
GGUF gives back identical tensors; Gemma 3 norms come back as w (GGUF holds 1 + w)."""
import atexit
import json
import os
import shutil
import subprocess

import numpy as np

from harness import SALIGN, main, models_dir, test, tmpdir

SMOL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
GEMMA = os.path.join(models_dir(), "gemma3-270m", "gemma-3-270m-q4_k_m.gguf")
OUT = os.path.join(tmpdir(), "convert")
atexit.register(lambda: shutil.rmtree(OUT, ignore_errors=True))  # several large files
PROMPT = b"The capital of France is"
IDS = [1, 504, 3458, 282, 4649, 314, 7042, 30, 378, 2492, 282]  # a short SmolLM2 token sequence
_done = {}


def salign(*args, check=True):
    r = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError("salign %s: rc %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def out(name):
    return os.path.join(OUT, name)


def converted(name, *args):
    """Converts once per run (several tests share the outputs)."""
    if name not in _done:
        os.makedirs(OUT, exist_ok=True)
        _done[name] = salign("convert", "-q", *args, "-o", out(name))
    return out(name)


def smol_st():
    return converted("smol-hf", SMOL, "--to", "safetensors", "--type", "f32")


def smol_rt():
    """safetensors -> GGUF f32, with the tokenizer copied from the original."""
    return converted("smol-rt.f32.gguf", smol_st(), "--to", "gguf", "--type", "f32", "--tokenizer-from", SMOL)


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUF:
    """A small GGUF reader for the checks (gguf-py's GGUFReader needs ~20 s for a 262k-token
    vocabulary on this machine): kv[key] = value, tensors[name] with tensor_type, shape (GGML
    order) and data (rows of raw bytes, what gguf.quants.dequantize takes)."""

    def __init__(self, path):
        import struct
        from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.off = 4
        assert bytes(buf[:4]) == b"GGUF", path

        def u(fmt):
            v = struct.unpack_from(fmt, buf, self.off)[0]
            self.off += struct.calcsize(fmt)
            return v

        def string():
            n = u("<Q")
            v = bytes(buf[self.off:self.off + n])
            self.off += n
            return v

        def value(t):
            if t == 8:
                return string()
            if t == 9:
                at, n = u("<I"), u("<Q")
                if at == 8:
                    return [string() for _ in range(n)]
                dt = np.dtype(_SCALAR[at])
                v = np.frombuffer(buf, dtype=dt, count=n, offset=self.off)
                self.off += n * dt.itemsize
                return v
            return u(_SCALAR[t])

        u("<I")
        n_tensors, n_kv = u("<Q"), u("<Q")
        self.kv = {}
        for _ in range(n_kv):
            k = string().decode()
            self.kv[k] = value(u("<I"))
        infos = []
        for _ in range(n_tensors):
            name = string().decode()
            ne = [u("<Q") for _ in range(u("<I"))]
            infos.append((name, ne, u("<I"), u("<Q")))
        align = int(self.kv.get("general.alignment", 32))
        base = (self.off + align - 1) // align * align
        self.tensors = {}
        for name, ne, typ, off in infos:
            bs, ts = GGML_QUANT_SIZES[GGMLQuantizationType(typ)]
            row = ne[0] // bs * ts
            rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
            t = type("T", (), {})()
            t.name, t.tensor_type, t.shape = name, GGMLQuantizationType(typ), ne
            t.data = buf[base + off:base + off + row * rows].reshape(rows, row)
            self.tensors[name] = t


_readers = {}


def reader(path):
    if path not in _readers:
        _readers[path] = GGUF(path)
    return _readers[path]


def tensors(path):
    return reader(path).tensors


_deq_cache = {}


def deq(t, cache=False):
    from gguf.quants import dequantize
    key = (id(t.data), t.name)
    if key in _deq_cache:
        return _deq_cache[key]
    v = dequantize(t.data, t.tensor_type).reshape([int(x) for x in reversed(t.shape)])
    if cache:
        _deq_cache[key] = v
    return v


def src_tensors(path):
    return tensors(path)


def unpermute(w, n_head):
    """Inverse of llama.cpp convert_hf_to_gguf.py LlamaModel.permute (written independently)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def greedy(llm, n=8):
    toks = llm.tokenize(PROMPT, add_bos=True)  # BOS where the model's vocabulary asks for it
    res = []
    for t in llm.generate(toks, temp=0.0, top_k=1, reset=True):
        res.append(t)
        if len(res) >= n:
            break
    return res


_llms = {}


def load(path):
    """A llama.cpp model (with logits for every position), once per file."""
    import llama_cpp
    if path not in _llms:
        _llms[path] = llama_cpp.Llama(model_path=path, n_ctx=128, n_threads=1, verbose=False, seed=0, logits_all=True)
    return _llms[path]


@test
def test_cli_usage():
    r = salign("convert", "--bogus", SMOL, check=False)
    assert r.returncode == 2 and "unknown option '--bogus'" in r.stderr, r.stderr
    r = salign("convert", "--help", check=False)
    assert r.returncode == 0 and "--type" in r.stdout
    r = salign("convert", SMOL, check=False)
    assert r.returncode == 2 and "-o" in r.stderr
    r = salign("convert", SMOL, "--to", "safetensors", "--type", "q8_0", "-o", out("x"), check=False)
    assert r.returncode == 2 and "q8_0" in r.stderr
    r = salign("convert", SMOL, "--type", "q4_0", "-o", out("x.gguf"), check=False)
    assert r.returncode == 2 and "q4_0" in r.stderr
    r = salign("convert", out("missing.gguf"), "-o", out("y.gguf"), check=False)
    assert r.returncode == 1 and "missing.gguf" in r.stderr, r.stderr


@test
def test_gguf_requant_values():
    import gguf
    src = src_tensors(SMOL)
    for typ, tol in (("bf16", 1 / 128), ("q8_0", 1 / 64)):
        path = converted("smol.%s.gguf" % typ, SMOL, "--type", typ)
        r = GGUF(path)
        dst = r.tensors
        assert [dst[n].tensor_type for n in src if src[n].tensor_type == gguf.GGMLQuantizationType.F32] == \
            [gguf.GGMLQuantizationType.F32] * sum(src[n].tensor_type == gguf.GGMLQuantizationType.F32 for n in src)
        assert set(dst) == set(src)
        assert r.kv["general.file_type"] == {"bf16": 32, "q8_0": 7}[typ]
        for name in ("blk.0.attn_q.weight", "blk.29.ffn_down.weight", "blk.3.attn_norm.weight"):
            a, b = deq(src[name], cache=True), deq(dst[name])
            err = np.abs(a - b).max() / np.abs(a).max()
            assert err <= tol, (typ, name, err)
        assert dst["output_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32  # 1-D stays F32
        orig = reader(SMOL).kv
        assert set(orig) - {"general.alignment"} <= set(r.kv)
        assert r.kv["tokenizer.chat_template"] == orig["tokenizer.chat_template"]


@test
def test_llama_cpp_generation():
    base = greedy(load(SMOL))
    print("    original Q4_1: %s" % base)
    for typ in ("q8_0", "f16", "bf16", "f32"):
        # f32: through safetensors and back (the same tensors as a direct f32 conversion)
        path = smol_rt() if typ == "f32" else converted("smol.%s.gguf" % typ, SMOL, "--type", typ)
        got = greedy(load(path))
        print("    %-13s %s" % (typ + ":", got))
        assert got[:4] == base[:4], (typ, got, base)


@test
def test_safetensors_values():
    from safetensors.numpy import load_file
    d = smol_st()
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["architectures"] == ["LlamaForCausalLM"] and cfg["num_key_value_heads"] == 3 and cfg["tie_word_embeddings"]
    tc = json.load(open(os.path.join(d, "tokenizer_config.json")))
    assert tc["chat_template"].startswith("{% for message in messages %}") and tc["eos_token"] == "<|im_end|>"
    st = load_file(os.path.join(d, "model.safetensors"))
    src = src_tensors(SMOL)
    assert len(st) == len(src) and "lm_head.weight" not in st
    pairs = [("token_embd.weight", "model.embed_tokens.weight", None),
             ("output_norm.weight", "model.norm.weight", None)]
    for layer in (0, 29):
        p, q = "blk.%d." % layer, "model.layers.%d." % layer
        pairs += [(p + "attn_q.weight", q + "self_attn.q_proj.weight", 9),
                  (p + "attn_k.weight", q + "self_attn.k_proj.weight", 3),
                  (p + "attn_v.weight", q + "self_attn.v_proj.weight", None),
                  (p + "attn_output.weight", q + "self_attn.o_proj.weight", None),
                  (p + "ffn_gate.weight", q + "mlp.gate_proj.weight", None),
                  (p + "ffn_down.weight", q + "mlp.down_proj.weight", None),
                  (p + "attn_norm.weight", q + "input_layernorm.weight", None),
                  (p + "ffn_norm.weight", q + "post_attention_layernorm.weight", None)]
    for g, h, heads in pairs:
        want = deq(src[g], cache=True)
        if heads:
            want = unpermute(want, heads)
        assert st[h].dtype == np.float32 and st[h].shape == want.shape, (h, st[h].shape, want.shape)
        np.testing.assert_allclose(st[h], want, rtol=1e-6, atol=1e-7, err_msg=h)


@test
def test_round_trip_identical():
    """GGUF -> safetensors f32 -> GGUF f32 holds exactly the dequantized original."""
    import gguf
    a, b = reader(SMOL), GGUF(smol_rt())
    ta, tb = a.tensors, b.tensors
    assert set(ta) == set(tb)
    for n in ta:
        assert list(ta[n].shape) == list(tb[n].shape) and tb[n].tensor_type == gguf.GGMLQuantizationType.F32, n
    for n in ("token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.17.ffn_up.weight",
              "blk.29.attn_k.weight", "output_norm.weight"):
        assert np.array_equal(deq(ta[n], cache=True), deq(tb[n])), n
    tok = [k for k in a.kv if k.startswith("tokenizer.")]
    assert tok and all(k in b.kv for k in tok)
    for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "tokenizer.ggml.eos_token_id"):
        assert a.kv[k] == b.kv[k], k


@test
def test_transformers_logits():
    """HF transformers on the safetensors vs llama.cpp on the original GGUF (Q4_1 matmuls with
    8-bit activations: close, not equal) and on the round-tripped f32 GGUF (equal weights)."""
    import torch
    import hf_compat  # noqa: F401  (transformers 4.51 on Debian torch 1.13)
    import transformers
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(smol_st(), torch_dtype=torch.float32)
    with torch.no_grad():
        h = hf(torch.tensor([IDS])).logits[0].numpy()
    for path, max_diff, min_top1 in ((SMOL, 3.0, 0.8), (smol_rt(), 0.05, 1.0)):
        llm = load(path)
        llm.reset()
        llm.eval(IDS)
        ref = np.array(llm.scores[:len(IDS)])
        diff = np.abs(ref - h).max()
        top1 = (ref.argmax(-1) == h.argmax(-1)).mean()
        print("    transformers %s vs llama.cpp %s: max |dlogit| %.4f, top-1 agreement %.2f"
              % (transformers.__version__, os.path.basename(path), diff, top1))
        assert diff < max_diff and top1 >= min_top1, (path, diff, top1)


@test
def test_gemma3():
    d = converted("gemma-hf", GEMMA, "--to", "safetensors", "--type", "bf16")
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["model_type"] == "gemma3_text" and cfg["head_dim"] == 256 and cfg["sliding_window"] == 512
    assert cfg["layer_types"][5] == "full_attention" and cfg["layer_types"][4] == "sliding_attention"
    from safetensors import safe_open  # torch: numpy has no bf16
    f = safe_open(os.path.join(d, "model.safetensors"), framework="pt")
    assert len(f.keys()) == 236
    src = src_tensors(GEMMA)
    for g, h, shift in (("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", 0),  # no permutation
                        ("blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", 1),
                        ("blk.0.post_attention_norm.weight", "model.layers.0.post_attention_layernorm.weight", 1),
                        ("blk.0.ffn_norm.weight", "model.layers.0.pre_feedforward_layernorm.weight", 1),
                        ("blk.0.post_ffw_norm.weight", "model.layers.0.post_feedforward_layernorm.weight", 1),
                        ("blk.0.attn_q_norm.weight", "model.layers.0.self_attn.q_norm.weight", 1),
                        ("output_norm.weight", "model.norm.weight", 1)):
        want = deq(src[g]) - shift
        got = f.get_tensor(h).float().numpy()
        np.testing.assert_allclose(got, want, rtol=1 / 128, atol=1e-6 + np.abs(want).max() / 256, err_msg=h)
    # back to GGUF: llama.cpp runs it and continues like the original
    rt = converted("gemma-rt.bf16.gguf", d, "--to", "gguf", "--type", "bf16", "--tokenizer-from", GEMMA)
    r = GGUF(rt).tensors
    assert set(r) == set(src)
    np.testing.assert_allclose(deq(r["blk.0.attn_norm.weight"]), deq(src["blk.0.attn_norm.weight"]), rtol=1 / 64)
    base, got = greedy(load(GEMMA), 6), greedy(load(rt), 6)
    print("    gemma3 original %s, round trip bf16 %s" % (base, got))
    assert got[:4] == base[:4], (got, base)


if __name__ == "__main__":
    main()
