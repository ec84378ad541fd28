"""test_lora_adapter.py: the GGUF LoRA adapter that `salign train --lora` writes is llama.cpp's
format: llama.cpp (llama-cpp-python, lora_path=) loads the same adapter file over the same GGUF
base and computes the logits our engine computes with it (sa_lora_load + sa_ctx_params.lora).
The model: a tiny random llama (llama.cpp permutes its Q/K rows, so the adapter's lora_b rows of
attn_q/attn_k must be permuted too) with SmolLM2's tokenizer, trained a few LoRA steps by
`salign train`; the base as f32 (nothing quantized: top-1 100%, KL ~ 0) and as Q8_0 (both
engines quantize activations the same way: bounds as tests/py/test_logits_parity.py's for
quantized files). Also the CLI: `salign generate --lora`, `salign inspect` on the adapter,
`salign align --aligner-lora / --upstream-lora`, and `--aligner NAME` of a shipped adapter
(models/NAME/manifest.json, sha256 checked)."""
import ctypes
import json
import os
import shutil
import hashlib
import subprocess

import numpy as np

import hf_compat  # noqa: F401  (before transformers)

import harness
from harness import SALIGN, main, test, tmpdir
from model_ctypes import CtxParams, Model, _check, lib

SMOL = os.path.join(harness.models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(tmpdir(), "lora")
IDS = [1, 504, 3458, 282, 4649, 314, 7042, 30, 378, 2492, 282, 5248, 47, 9, 1116, 28, 253, 2]
_made = {}


def run(*args, check=True, env=None):
    r = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    if check and r.returncode != 0:
        raise AssertionError("salign %s: rc %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


def made():
    """tiny.f32.gguf, tiny.q8_0.gguf and run/model/adapter.gguf (f16: salign train's default)."""
    if _made:
        return _made
    import torch
    import transformers
    assert os.path.exists(SMOL), "missing model %s (run scripts/setup.sh)" % SMOL
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(7)
    d = os.path.join(OUT, "tiny")
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    f32 = os.path.join(OUT, "tiny.f32.gguf")
    run("convert", d, "--to", "gguf", "--type", "f32", "--tokenizer-from", SMOL, "-o", f32, "-q")
    q8 = os.path.join(OUT, "tiny.q8_0.gguf")
    run("convert", f32, "--type", "q8_0", "-o", q8, "-q")
    data = os.path.join(harness.ROOT, "tests", "data", "gsm8k_align_small.jsonl")
    rd = os.path.join(OUT, "run")
    run("train", "--base", f32, "--data", data, "--out", rd, "--max-records", "8", "--lora", "8", "--lora-alpha", "16",
        "--lr", "3e-2", "--max-steps", "4", "--batch", "2", "--max-length", "128", "--eval-fraction", "0", "-t", "2",
        "--adapter-only", "-q")
    adapter = os.path.join(rd, "model", "adapter.gguf")
    assert os.path.exists(adapter) and not os.path.exists(os.path.join(rd, "model", "model.safetensors"))
    _made.update(f32=f32, q8=q8, adapter=adapter)
    return _made


def ours(base, adapter, scale=1.0):
    """(len(IDS), n_vocab) logits of our engine, with the adapter when given."""
    L = lib()
    L.sa_lora_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    L.sa_lora_free.argtypes = [ctypes.c_void_p]
    m = Model(base, n_threads=2)
    lo = ctypes.c_void_p()
    if adapter:
        _check(L.sa_lora_load(m.h, adapter.encode(), None, ctypes.byref(lo)), "sa_lora_load")
    p = L.sa_ctx_default_params()
    p.n_ctx, p.n_batch, p.n_threads = 128, 64, 2
    p.lora, p.lora_scale = lo.value, scale
    h = ctypes.c_void_p()
    _check(L.sa_ctx_init(m.h, ctypes.byref(p), ctypes.byref(h)), "sa_ctx_init")
    toks = (ctypes.c_int32 * len(IDS))(*IDS)
    out = np.empty((len(IDS), m.n_vocab), dtype=np.float32)
    _check(L.sa_ctx_decode_all(h, toks, len(IDS), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))), "decode")
    L.sa_ctx_free(h)
    L.sa_lora_free(lo)
    m.close()
    return out


def llama_cpp(base, adapter):
    import llama_cpp
    kw = dict(lora_path=adapter) if adapter else {}
    llm = llama_cpp.Llama(model_path=base, n_ctx=128, n_threads=2, verbose=False, logits_all=True, **kw)
    llm.eval(IDS)
    out = np.array(llm.scores[:len(IDS)], dtype=np.float32)
    llm.close()
    return out


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def compare(a, b):
    """(top-1 agreement, mean KL(b || a), max |a - b|)"""
    la, lb = log_softmax(a), log_softmax(b)
    kl = float((np.exp(lb) * (lb - la)).sum(-1).mean())
    return float((a.argmax(-1) == b.argmax(-1)).mean()), kl, float(np.abs(a - b).max())


@test
def test_llama_cpp_loads_our_adapter_f32_base():
    f = made()
    ref_plain, ref = llama_cpp(f["f32"], None), llama_cpp(f["f32"], f["adapter"])
    got = ours(f["f32"], f["adapter"])
    moved = compare(ref_plain, ref)
    top1, kl, diff = compare(got, ref)
    print("    f32 base: adapter moves llama.cpp's logits by max %.3f (KL %.2e); ours vs llama.cpp: top-1 %.3f, "
          "KL %.2e, max |diff| %.2e" % (moved[2], moved[1], top1, kl, diff))
    assert moved[2] > 0.2, "the adapter hardly changes llama.cpp's logits: was it applied? %r" % (moved,)
    assert top1 == 1.0 and kl < 1e-5 and diff < 0.02 * moved[2], (top1, kl, diff)
    # and our plain model is llama.cpp's plain model
    assert compare(ours(f["f32"], None), ref_plain)[1] < 1e-5


@test
def test_llama_cpp_loads_our_adapter_q8_0_base():
    f = made()
    ref = llama_cpp(f["q8"], f["adapter"])
    got = ours(f["q8"], f["adapter"])
    top1, kl, diff = compare(got, ref)
    print("    Q8_0 base: ours vs llama.cpp: top-1 %.3f, KL %.2e, max |diff| %.2e" % (top1, kl, diff))
    assert top1 >= 0.94 and kl < 1e-3, (top1, kl, diff)


@test
def test_generate_lora_and_inspect():
    f = made()
    args = ["generate", "-m", f["f32"], "-p", "Question: 2 + 3 =", "-n", "8", "--temp", "0", "-t", "2", "--json"]
    plain = json.loads(run(*args).stdout)["text"]
    adapted = json.loads(run(*args, "--lora", f["adapter"]).stdout)["text"]
    off = json.loads(run(*args, "--lora", f["adapter"], "--lora-scale", "0").stdout)["text"]
    assert off == plain, (off, plain)
    print("    greedy: plain %r, adapted %r" % (plain, adapted))
    r = run(*args, "--lora", f["f32"], check=False)
    assert r.returncode == 1 and "not an adapter" in r.stderr, r.stderr
    r = run("inspect", f["adapter"])
    assert "LoRA for architecture llama, rank 8, alpha 16" in r.stdout and "(q,k,v,o,gate,up,down), f16" in r.stdout, r.stdout


@test
def test_align_lora_options_and_shipped_name():
    f = made()
    models = os.path.join(OUT, "models")
    d = os.path.join(models, "tiny-lora")
    os.makedirs(d, exist_ok=True)
    shutil.copy(f["adapter"], os.path.join(d, "adapter.gguf"))
    sha = hashlib.sha256(open(f["adapter"], "rb").read()).hexdigest()
    man = {"base": f["f32"], "adapter": "adapter.gguf", "sha256": sha, "size": os.path.getsize(f["adapter"]),
           "recipe": "tests/py/test_lora_adapter.py"}
    json.dump(man, open(os.path.join(d, "manifest.json"), "w"))
    env = {"SALIGN_ADAPTERS": models}
    # the aligner revises a given answer (the tiny upstream never ends a sentence)
    q, a = os.path.join(OUT, "q.jsonl"), os.path.join(OUT, "a.jsonl")
    open(q, "w").write(json.dumps({"id": "q1", "question": "Tom has 3 apples and buys 2 more. How many?"}) + "\n")
    open(a, "w").write(json.dumps({"id": "q1", "answer": "He buys 2 more, so 3 + 2 = 6. The answer is 6."}) + "\n")
    common = ["--max-aligner-tokens", "12", "-t", "2"]
    n_out = [0]

    def answer(*args, **kw):
        n_out[0] += 1
        out = os.path.join(OUT, "out%d.jsonl" % n_out[0])
        run("align", "--mode", "aligner", "--answers", a, "--input", q, "--output", out, *args, *common, **kw)
        return json.loads(open(out).read().strip().splitlines()[-1])["answer"]
    named = answer("--aligner", "tiny-lora", env=env)
    explicit = answer("--aligner", f["f32"], "--aligner-lora", f["adapter"])
    plain = answer("--aligner", f["f32"])
    print("    aligner with the adapter: %r; plain: %r" % (named, plain))
    assert named == explicit, (named, explicit)
    assert named != plain, "the adapter did not change the aligner's output"
    common = ["-p", "Tom has 3 apples.", "--max-length", "8", "-t", "2", "--json"]
    # an adapter over the upstream (local) runs; over a URL it is refused
    run("align", "--upstream", f["f32"], "--aligner", f["f32"], "--upstream-lora", f["adapter"], *common)
    r = run("align", "--upstream", "http://127.0.0.1:9/v1", "--upstream-lora", f["adapter"], "--aligner", f["f32"],
            *common, check=False)
    assert r.returncode == 2 and "--upstream-lora needs a local upstream" in r.stderr, r.stderr
    r = run("align", "--upstream", f["f32"], "--aligner", f["f32"], "--aligner-lora", f["q8"], *common, check=False)
    assert r.returncode == 1 and "not an adapter" in r.stderr, r.stderr
    # a changed adapter file is refused by its manifest's sha256
    man["sha256"] = "0" * 64
    json.dump(man, open(os.path.join(d, "manifest.json"), "w"))
    r = run("align", "--upstream", f["f32"], "--aligner", "tiny-lora", *common, check=False, env=env)
    assert r.returncode == 1 and "sha256" in r.stderr, r.stderr


@test
def test_eval_aligner_lora():
    """`salign eval aligner --aligner-lora FILE` revises with the adapter (the records' revisions
    differ from the plain base's), and the JSON names the adapter."""
    f = made()
    rec = os.path.join(OUT, "records.jsonl")
    with open(rec, "w") as fp:
        for last in ("So 3 + 2 = 6.", "He has 5 apples."):
            fp.write(json.dumps({"question": "Tom has 3 apples and buys 2 more. How many?", "prefix": "Tom buys 2.",
                                 "last": last, "correction": "So 3 + 2 = 5."}) + "\n")

    def revisions(*args):
        det = os.path.join(OUT, "det.jsonl")
        r = run("eval", "aligner", "--records", rec, "--details", det, "--json", "-t", "2", *args)
        j = json.loads(r.stdout.strip().splitlines()[-1])
        return [json.loads(l)["revision"] for l in open(det)], j
    with_lora, j = revisions("--aligner", f["f32"], "--aligner-lora", f["adapter"])
    plain, j0 = revisions("--aligner", f["f32"])
    print("    revisions with the adapter: %r; plain: %r" % (with_lora, plain))
    assert j["aligner_lora"] == f["adapter"] and "aligner_lora" not in j0
    assert with_lora != plain, "the adapter did not change the revisions"
    r = run("eval", "aligner", "--records", rec, "--aligner", f["f32"], "--aligner-lora", f["q8"], check=False)
    assert r.returncode == 1 and "not an adapter" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
