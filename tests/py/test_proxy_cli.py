"""test_proxy_cli.py: proxy-tuning from the command line (issue 15; docs/PROXY.md).
`salign generate --proxy-expert E --proxy-anti A --proxy-alpha X` at temperature 0 writes the
argmax of upstream + X * (E - A), computed here from the three models' own logits (ctypes over
libsalign.so) on tiny random models that share a small vocabulary; alpha 0, and expert ==
anti, give plain generate's output (also sampled with a seed, chat template, on SmolLM2-135M);
models that do not share a vocabulary are refused (exit 1, both models named);
`salign align --mode upstream` with the proxy options draws the upstream's tokens from the mix
(upstream A, expert B, anti A, alpha 1 answers as B alone)."""
import ctypes
import json
import os
import struct
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, test, tmpdir  # noqa: E402
import model_ctypes  # noqa: E402

SMOL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
V, C, L, F = 302, 32, 2, 64
MERGED = {256: b"he", 257: b"ll", 258: b"hell", 259: b"hello", 260: b" w", 261: b" wo", 262: b"aa", 263: b"aaaa"}


def byte_alphabet():
    """GPT-2's byte -> unicode map (byte-level BPE)."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def tokenizer_json(swap=False):
    """tests/test_proxy.c's tiny tokenizer: 256 byte tokens, 8 merged ones, <|end|> (300)."""
    alpha = byte_alphabet()
    vocab = {alpha[b]: b for b in range(256)}
    for i, t in MERGED.items():
        vocab[t.decode().replace(" ", "\u0120")] = i
    if swap:
        vocab["he"], vocab["ll"] = 257, 256
    merges = ["h e", "l l", "he ll", "hell o", "\u0120 w", "\u0120w o", "a a", "aa aa"]
    return {"added_tokens": [{"id": 300, "content": "<|end|>", "special": True},
                             {"id": 301, "content": "<tag>", "special": False}],
            "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
            "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": vocab, "merges": merges}}


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def tiny(name, seed, swap=False):
    """A random llama directory (V 302, C 32, 2 layers) with the tiny tokenizer and a chatml
    template; only printable ASCII tokens have non-zero lm_head rows (whole characters)."""
    d = os.path.join(tmpdir(), "proxy_" + name)
    os.makedirs(d, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": C,
           "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 8, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": False}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(swap), f)
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"eos_token": "<|end|>",
                   "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}{{ m.content }}<|end|>"
                                    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant{% endif %}"}, f)
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.random(shape, dtype=np.float32) - 0.5) * 0.8

    def norm():
        return 1.0 + (rng.random(C, dtype=np.float32) - 0.5) * 0.2

    t = {"model.embed_tokens.weight": w(V, C)}
    for i in range(L):
        p = "model.layers.%d." % i
        t.update({p + "self_attn.q_proj.weight": w(32, 32), p + "self_attn.k_proj.weight": w(16, 32),
                  p + "self_attn.v_proj.weight": w(16, 32), p + "self_attn.o_proj.weight": w(32, 32),
                  p + "mlp.gate_proj.weight": w(F, C), p + "mlp.up_proj.weight": w(F, C),
                  p + "mlp.down_proj.weight": w(C, F), p + "input_layernorm.weight": norm(),
                  p + "post_attention_layernorm.weight": norm()})
    head = w(V, C)
    keep = [i for i in range(V) if 32 <= i <= 126 or 256 <= i <= 263]
    mask = np.zeros(V, dtype=bool)
    mask[keep] = True
    head[~mask] = 0
    t["model.norm.weight"] = norm()
    t["lm_head.weight"] = head
    write_safetensors(os.path.join(d, "model.safetensors"), t)
    return d


_models = {}


def models():
    if not _models:
        _models.update(A=tiny("A", 1), B=tiny("B", 2), C=tiny("C", 3), D=tiny("D", 4, swap=True))
    return _models


def run(*args, ok=True):
    r = subprocess.run([SALIGN, *args], capture_output=True, timeout=300)
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stderr.decode(errors="replace"))
    return r


def generate(model, *args):
    """stdout bytes of a greedy, batch-invariant, one-thread generate (the trailing newline cut)."""
    out = run("generate", "-m", model, "-t", "1", "--batch-invariant", "--temp", "0", *args).stdout
    assert out.endswith(b"\n"), out
    return out[:-1]


def token_bytes(i):
    return MERGED.get(i, bytes([i]) if i < 256 else b"")


def expected(paths, alpha, prompt_ids, n):
    """Greedy tokens of upstream + alpha * (expert - anti) (paths[1:] None: the upstream alone),
    each model in its own batch-invariant one-thread context, fed as generate feeds them."""
    L_ = model_ctypes.lib()
    ms, cs = [], []
    try:
        for p in paths:
            if p is None:
                continue
            m = model_ctypes.Model(p, n_threads=1)
            ms.append(m)
            cp = L_.sa_ctx_default_params()
            cp.n_ctx, cp.n_threads, cp.batch_invariant = 128, 1, True
            h = ctypes.c_void_p()
            model_ctypes._check(L_.sa_ctx_init(m.h, ctypes.byref(cp), ctypes.byref(h)), "sa_ctx_init")
            c = model_ctypes.Context.__new__(model_ctypes.Context)
            c.h, c.n_vocab = h, m.n_vocab
            cs.append(c)
        rows = [c.decode(prompt_ids) for c in cs]
        out = b""
        for _ in range(n):
            mix = rows[0] if len(rows) == 1 else rows[0] + np.float32(alpha) * (rows[1] - rows[2])
            t = int(np.argmax(mix))
            if t == 300:
                break
            out += token_bytes(t)
            rows = [c.decode([t]) for c in cs]
        return out
    finally:
        for c in cs:
            c.close()
        for m in ms:
            m.close()


@test
def test_greedy_is_argmax_of_the_formula():
    m = models()
    n = 16
    plain = generate(m["A"], "-p", "hello", "-n", str(n))
    assert plain == expected([m["A"], None, None], 0, [259], n), plain  # the reference reads as generate does
    for alpha in (0.6, -1.5):
        got = generate(m["A"], "-p", "hello", "-n", str(n), "--proxy-expert", m["B"], "--proxy-anti", m["C"],
                       "--proxy-alpha", str(alpha))
        want = expected([m["A"], m["B"], m["C"]], alpha, [259], n)
        assert got == want, (alpha, got, want)
        assert got != plain, (alpha, got)  # the experts changed the text


@test
def test_alpha0_and_expert_equal_anti_give_plain():
    m = models()
    plain = generate(m["A"], "-p", "hello", "-n", "12")
    a0 = generate(m["A"], "-p", "hello", "-n", "12", "--proxy-expert", m["B"], "--proxy-anti", m["C"],
                  "--proxy-alpha", "0")
    same = generate(m["A"], "-p", "hello", "-n", "12", "--proxy-expert", m["B"], "--proxy-anti", m["B"],
                    "--proxy-alpha", "2")
    assert a0 == plain and same == plain, (plain, a0, same)
    # A + (B - A) at alpha 1 writes B's text (up to float rounding, no near tie here)
    ab = generate(m["A"], "-p", "hello", "-n", "12", "--proxy-expert", m["B"], "--proxy-anti", m["A"])
    assert ab == generate(m["B"], "-p", "hello", "-n", "12"), ab


@test
def test_sampled_chat_on_smollm2():
    """Sampling options and the chat template: expert == anti leaves a seeded sample unchanged."""
    if not os.path.exists(SMOL):
        from harness import skip
        skip("no SmolLM2-135M in " + models_dir())
    args = ["generate", "-m", SMOL, "-t", "2", "--chat", "-p", "Name a color.", "-n", "10", "--temp", "0.9",
            "--seed", "7", "--json"]
    plain = json.loads(run(*args).stdout)
    px = json.loads(run(*args, "--proxy-expert", SMOL, "--proxy-anti", SMOL, "--proxy-alpha", "1.5").stdout)
    assert px["text"] == plain["text"] and px["generated_tokens"] == plain["generated_tokens"], (plain, px)


@test
def test_vocabulary_mismatch_refused():
    m = models()
    r = run("generate", "-m", m["A"], "-p", "hello", "-n", "4", "--proxy-expert", m["D"], "--proxy-anti", m["C"],
            ok=False)
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    assert m["A"] in err and m["D"] in err and "vocabulary" in err and "token 256" in err, err
    if os.path.exists(SMOL):
        r = run("generate", "-m", SMOL, "-p", "hi", "-n", "4", "--proxy-expert", SMOL, "--proxy-anti", m["A"],
                ok=False)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == 1 and SMOL in err and m["A"] in err and "49152 vs 302" in err, (r.returncode, err)
        r = run("align", "--upstream", SMOL, "--mode", "upstream", "-p", "hi", "--proxy-expert", m["A"],
                "--proxy-anti", SMOL, ok=False)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == 1 and SMOL in err and m["A"] in err and "vocabulary" in err, (r.returncode, err)


@test
def test_usage():
    m = models()
    for bad in (["--proxy-expert", m["B"]], ["--proxy-anti", m["B"]], ["--proxy-alpha", "1"],
                ["--proxy-expert", m["B"], "--proxy-anti", m["C"], "--samples", "2"],
                ["--proxy-expert", m["B"], "--proxy-anti", m["C"], "--proxy-alpha", "x"]):
        r = run("generate", "-m", m["A"], "-p", "hi", *bad, ok=False)
        assert r.returncode == 2 and b"proxy" in r.stderr + r.stdout, (bad, r.returncode, r.stderr)
    r = run("chat", "-m", m["A"], "--proxy-expert", m["B"], ok=False)
    assert r.returncode == 2, r  # generate's options only
    r = run("align", "--upstream", m["A"], "--mode", "upstream", "-p", "hi", "--proxy-expert", m["B"], ok=False)
    assert r.returncode == 2 and b"--proxy-anti" in r.stderr, r.stderr
    for cmd in ("generate", "align"):
        h = run(cmd, "--help").stdout.decode()
        assert all(o in h for o in ("--proxy-expert", "--proxy-anti", "--proxy-alpha", "--proxy-expert-lora")), h


def align_answer(*args):
    r = run("align", "--mode", "upstream", "-p", "hello world", "-t", "1", "--batch-invariant", "--max-length", "40",
            "--max-sentence-tokens", "16", "--json", *args)
    j = json.loads(r.stdout)
    assert ("proxy_alpha" in j) == ("--proxy-expert" in args), j  # recorded with the answer
    return j["answer"]


@test
def test_align_upstream_mode():
    m = models()
    a = align_answer("--upstream", m["A"])
    b = align_answer("--upstream", m["B"])
    ab = align_answer("--upstream", m["A"], "--proxy-expert", m["B"], "--proxy-anti", m["A"], "--proxy-alpha", "1")
    a0 = align_answer("--upstream", m["A"], "--proxy-expert", m["B"], "--proxy-anti", m["C"], "--proxy-alpha", "0")
    assert a != b, a
    assert ab == b, (ab, b)
    assert a0 == a, (a0, a)


if __name__ == "__main__":
    main()
