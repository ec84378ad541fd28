"""test_steer.py: the residual stream (include/sa/steer.h) against Hugging Face transformers and
llama.cpp. On tiny random llama and gemma3 checkpoints (transformers' own init; gemma3 has the
post-FFN norm and the embedding scale, so the stream between blocks is not the fused path's
xb2): the hidden states of sa_ctx_params.hidden_cb equal transformers' output_hidden_states
(the last one: a forward hook on the last block, as transformers' last entry is after the final
norm), hidden_last_only reports the last token only; a zero control vector gives bitwise the
unsteered logits; a nonzero one matches a transformers forward hook that adds the same vector
to each block's output. A control vector written by sa_cvec_save is loaded by llama.cpp
(llama-cpp-python: gguf-py reads the file as common_control_vector_load_one does, and
llama_set_adapter_cvec applies it) over the same f32 GGUF and moves its logits as ours; one
written by gguf-py as llama.cpp's cvector-generator writes it loads here; hostile files are
refused; `salign generate --control-vector FILE --control-scale C`."""
import ctypes
import json
import os
import shutil
import subprocess

import numpy as np

import hf_compat  # noqa: F401  (before transformers)

import harness
from harness import SALIGN, main, test, tmpdir
from model_ctypes import Model, _check, lib

import torch  # noqa: E402

SMOL = os.path.join(harness.models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(tmpdir(), "steer")
V, E, L = 256, 64, 3
IDS = [1, 17, 200, 5, 33, 99, 140, 7, 64, 250, 3, 18, 77, 121, 9, 42, 180, 11, 2, 60]
HIDDEN_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_float),
                             ctypes.c_int32)
_made = {}


def L_():
    lb = lib()
    if not hasattr(lb, "_steer_bound"):
        vp = ctypes.c_void_p
        lb.sa_cvec_init.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(vp)]
        lb.sa_cvec_free.argtypes = [vp]
        lb.sa_cvec_layer.argtypes = [vp, ctypes.c_int32]
        lb.sa_cvec_layer.restype = ctypes.POINTER(ctypes.c_float)
        lb.sa_cvec_n_layer.argtypes = [vp]
        lb.sa_cvec_n_embd.argtypes = [vp]
        lb.sa_cvec_set_model_hint.argtypes = [vp, ctypes.c_char_p]
        lb.sa_cvec_model_hint.argtypes = [vp]
        lb.sa_cvec_model_hint.restype = ctypes.c_char_p
        lb.sa_cvec_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(vp)]
        lb.sa_cvec_load_memory.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(vp)]
        lb.sa_cvec_save.argtypes = [vp, ctypes.c_char_p]
        lb._steer_bound = True
    return lb


class Cvec:
    """A control vector of our library filled from rows (n_layer, n_embd)."""

    def __init__(self, rows=None, path=None):
        lb = L_()
        self.h = ctypes.c_void_p()
        if path:
            _check(lb.sa_cvec_load(path.encode(), ctypes.byref(self.h)), "sa_cvec_load")
        else:
            _check(lb.sa_cvec_init(rows.shape[0], rows.shape[1], ctypes.byref(self.h)), "sa_cvec_init")
            for il in range(rows.shape[0]):
                p = lb.sa_cvec_layer(self.h, il)
                ctypes.memmove(p, np.ascontiguousarray(rows[il], dtype=np.float32).ctypes.data, 4 * rows.shape[1])

    def rows(self):
        lb = L_()
        n, e = lb.sa_cvec_n_layer(self.h), lb.sa_cvec_n_embd(self.h)
        return np.array([np.ctypeslib.as_array(lb.sa_cvec_layer(self.h, il), (e,)).copy() for il in range(n)])

    def close(self):
        L_().sa_cvec_free(self.h)


def run_ours(path, tokens, cvec=None, scale=1.0, hidden=False, last_only=False, n_batch=8):
    """(logits (T, V), hidden {(layer, pos): vector}) of our engine."""
    lb = L_()
    m = Model(path, n_threads=2)
    p = lb.sa_ctx_default_params()
    p.n_ctx, p.n_batch, p.n_threads = 64, n_batch, 2
    got = {}

    def cb(user, layer, pos, h, n):
        assert (layer, pos) not in got, "reported twice: %r" % ((layer, pos),)
        got[(layer, pos)] = np.ctypeslib.as_array(h, (n,)).copy()
    fn = HIDDEN_FN(cb)
    if cvec is not None:
        p.cvec, p.cvec_scale = cvec.h.value, scale
    if hidden:
        p.hidden_cb = ctypes.cast(fn, ctypes.c_void_p).value
        p.hidden_last_only = last_only
    h = ctypes.c_void_p()
    try:
        _check(lb.sa_ctx_init(m.h, ctypes.byref(p), ctypes.byref(h)), "sa_ctx_init")
        toks = (ctypes.c_int32 * len(tokens))(*tokens)
        out = np.empty((len(tokens), m.n_vocab), dtype=np.float32)
        _check(lb.sa_ctx_decode_all(h, toks, len(tokens), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))),
               "decode")
    finally:
        lb.sa_ctx_free(h)
        m.close()
    return out, got


def checkpoint(arch):
    """A tiny random HF checkpoint of arch (llama or gemma3), made once."""
    if arch in _made:
        return _made[arch]
    import transformers
    d = os.path.join(OUT, arch)
    shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(11)
    common = dict(vocab_size=V, hidden_size=E, intermediate_size=128, num_hidden_layers=L, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
                  initializer_range=0.2)
    if arch == "llama":
        cfg = transformers.LlamaConfig(tie_word_embeddings=True, **common)
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.Gemma3TextConfig(head_dim=16, query_pre_attn_scalar=16, sliding_window=8,
                                            tie_word_embeddings=True, **common)
        model = transformers.Gemma3ForCausalLM(cfg)
        with torch.no_grad():  # non-zero (1 + w) norms, so that the pre/post norms matter
            for n, prm in model.named_parameters():
                if "norm" in n:
                    prm.uniform_(-0.5, 0.5)
    model.save_pretrained(d, safe_serialization=True)
    _made[arch] = d
    return d


def hf(d, tokens, rows=None, scale=1.0):
    """transformers' (logits, hidden_states, last block's output), with rows[il] * scale added to
    block il's output by a forward hook when rows is given."""
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager")
    last = {}
    hooks = []
    for il, layer in enumerate(m.model.layers):
        def hook(mod, inp, out, il=il):
            o = out[0] if isinstance(out, tuple) else out
            if rows is not None:
                o = o + scale * torch.tensor(rows[il])
            if il == len(m.model.layers) - 1:
                last["h"] = o[0].detach().numpy().copy()
            return (o,) + tuple(out[1:]) if isinstance(out, tuple) else o
        hooks.append(layer.register_forward_hook(hook))
    with torch.no_grad():
        r = m(torch.tensor([tokens]), output_hidden_states=True)
    for h in hooks:
        h.remove()
    hs = [x[0].numpy() for x in r.hidden_states]
    return r.logits[0].numpy(), hs, last["h"]


def ours_hidden(got, n_layer, T):
    return np.array([[got[(il, t)] for t in range(T)] for il in range(n_layer + 1)])  # (L + 1, T, E)


def check_hidden(arch):
    d = checkpoint(arch)
    logits, got = run_ours(d, IDS, hidden=True)
    assert sorted(got) == [(il, t) for il in range(L + 1) for t in range(len(IDS))], sorted(got)[:5]
    ref_logits, hs, last = hf(d, IDS)
    ours = ours_hidden(got, L, len(IDS))
    diffs = [float(np.abs(ours[il] - hs[il]).max()) for il in range(L)] + [float(np.abs(ours[L] - last).max())]
    scale = float(np.abs(ours).max())
    print("    %s: hidden states vs transformers: max |diff| per layer %s (scale %.2f); logits %.2e" %
          (arch, " ".join("%.1e" % x for x in diffs), scale, float(np.abs(logits - ref_logits).max())))
    assert max(diffs) < 1e-4 * max(1.0, scale), diffs
    assert float(np.abs(logits - ref_logits).max()) < 1e-3
    # hidden_last_only: the last token of the call, whatever the chunks (n_batch 8 of 20 tokens)
    _, got_last = run_ours(d, IDS, hidden=True, last_only=True)
    assert sorted(got_last) == [(il, len(IDS) - 1) for il in range(L + 1)], sorted(got_last)
    for k, v in got_last.items():
        assert np.array_equal(v, got[k]), k


@test
def test_hidden_states_llama():
    check_hidden("llama")


@test
def test_hidden_states_gemma3():
    check_hidden("gemma3")


def check_steer(arch):
    d = checkpoint(arch)
    plain, got = run_ours(d, IDS, hidden=True)
    # zero vector: bitwise the plain logits (and a callback alone changes nothing either)
    z = Cvec(np.zeros((L, E), dtype=np.float32))
    zero, _ = run_ours(d, IDS, cvec=z)
    z.close()
    bare, _ = run_ours(d, IDS)
    assert np.array_equal(zero, bare) and np.array_equal(plain, bare), "a zero control vector changed the logits"
    # nonzero: as big as the stream, one row per block (row 0 too: the API steers every block)
    rng = np.random.RandomState(5)
    hs = ours_hidden(got, L, len(IDS))
    rows = (rng.standard_normal((L, E)) * np.abs(hs[1:]).mean(axis=(1, 2))[:, None]).astype(np.float32)
    cv = Cvec(rows)
    steered, sgot = run_ours(d, IDS, cvec=cv, scale=0.7, hidden=True)
    cv.close()
    ref, ref_hs, _ = hf(d, IDS, rows=rows, scale=0.7)
    moved = float(np.abs(ref - bare).max())
    diff = float(np.abs(steered - ref).max())
    hdiff = max(float(np.abs(ours_hidden(sgot, L, len(IDS))[il] - ref_hs[il]).max()) for il in range(L))
    print("    %s: the vector moves transformers' logits by max %.3f; ours vs transformers (hooked): logits %.2e, "
          "hidden %.2e" % (arch, moved, diff, hdiff))
    assert moved > 0.1, moved
    assert diff < 1e-3 and hdiff < 1e-3, (diff, hdiff)


@test
def test_steering_llama():
    check_steer("llama")


@test
def test_steering_gemma3():
    check_steer("gemma3")


# ---- files: llama.cpp reads ours, we read llama.cpp's ----

def gguf_model():
    """The tiny llama as an f32 GGUF with SmolLM2's tokenizer (llama.cpp needs one)."""
    if "gguf" in _made:
        return _made["gguf"]
    import transformers
    assert os.path.exists(SMOL), "missing model %s (run scripts/setup.sh)" % SMOL
    d = os.path.join(OUT, "llama-smolvocab")
    shutil.rmtree(d, ignore_errors=True)
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=E, intermediate_size=128, num_hidden_layers=L,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, initializer_range=0.1)
    torch.manual_seed(3)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    f32 = os.path.join(OUT, "tiny.f32.gguf")
    r = subprocess.run([SALIGN, "convert", d, "--to", "gguf", "--type", "f32", "--tokenizer-from", SMOL, "-o", f32,
                        "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    _made["gguf"] = f32
    return f32


def llama_cpp_logits(model, cvec_path, scale):
    """llama.cpp's logits of IDS, steered by cvec_path's vector (read as llama.cpp's
    common_control_vector_load_one does: direction.K at (K - 1) * n_embd, times the scale)."""
    import gguf
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, n_ctx=64, n_threads=2, verbose=False, logits_all=True)
    if cvec_path:
        rd = gguf.GGUFReader(cvec_path)
        n_embd, data = None, []
        for t in rd.tensors:
            k = int(t.name.split(".", 1)[1])
            assert t.name.startswith("direction.") and k >= 1 and t.tensor_type == gguf.GGMLQuantizationType.F32
            v = np.array(t.data, dtype=np.float32).reshape(-1)
            n_embd = v.size
            if len(data) < n_embd * k:
                data.extend([0.0] * (n_embd * k - len(data)))
            for j in range(n_embd):
                data[n_embd * (k - 1) + j] += float(v[j]) * scale
        buf = (ctypes.c_float * len(data))(*data)
        rc = llama_cpp.llama_set_adapter_cvec(llm._ctx.ctx, buf, len(data), n_embd, 1, L)
        assert rc == 0, rc
    llm.eval(IDS)
    out = np.array(llm.scores[:len(IDS)], dtype=np.float32)
    llm.close()
    return out


def compare(a, b):
    """(top-1 agreement, max |a - b|)"""
    return float((a.argmax(-1) == b.argmax(-1)).mean()), float(np.abs(a - b).max())


@test
def test_llama_cpp_loads_our_control_vector():
    f32 = gguf_model()
    rng = np.random.RandomState(9)
    rows = np.zeros((L, E), dtype=np.float32)
    rows[1:] = rng.standard_normal((L - 1, E)).astype(np.float32) * 0.5  # llama.cpp's format: row 0 is never steered
    cv = Cvec(rows)
    _check(L_().sa_cvec_set_model_hint(cv.h, b"llama"), "hint")
    path = os.path.join(OUT, "ours.cvec.gguf")
    _check(L_().sa_cvec_save(cv.h, path.encode()), "sa_cvec_save")
    plain_ref = llama_cpp_logits(f32, None, 1.0)
    ref = llama_cpp_logits(f32, path, 1.5)
    back = Cvec(path=path)
    assert np.array_equal(back.rows(), rows) and L_().sa_cvec_model_hint(back.h) == b"llama"
    got, _ = run_ours(f32, IDS, cvec=back, scale=1.5, n_batch=64)
    plain, _ = run_ours(f32, IDS, n_batch=64)
    back.close()
    cv.close()
    moved = compare(plain_ref, ref)[1]
    top1, diff = compare(got, ref)
    print("    the vector moves llama.cpp's logits by max %.3f; ours vs llama.cpp steered: top-1 %.3f, max |diff| "
          "%.2e (unsteered: %.2e)" % (moved, top1, diff, compare(plain, plain_ref)[1]))
    assert moved > 0.2, "the control vector hardly changes llama.cpp's logits: was it applied? %r" % moved
    # the bounds of test_lora_adapter.py's f32 comparison
    assert top1 == 1.0 and diff < 0.02 * moved, (top1, diff)


@test
def test_we_load_llama_cpp_format_and_refuse_hostile_files():
    import gguf
    rng = np.random.RandomState(2)
    dirs = {k: rng.standard_normal(E).astype(np.float32) for k in (1, 2)}
    # as llama.cpp's cvector-generator writes it (repeng writes layer_count as uint32)
    path = os.path.join(OUT, "theirs.gguf")
    w = gguf.GGUFWriter(path, "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_int32("controlvector.layer_count", 2)
    for k, v in dirs.items():
        w.add_tensor("direction.%d" % k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cv = Cvec(path=path)
    rows = cv.rows()
    cv.close()
    assert rows.shape == (3, E) and not rows[0].any() and np.array_equal(rows[1], dirs[1]) and \
        np.array_equal(rows[2], dirs[2])

    def hostile(name, tensors, arch="controlvector", expect="", extra=None):
        p = os.path.join(OUT, "bad-%s.gguf" % name)
        w = gguf.GGUFWriter(p, arch)
        for k, v in (extra or {}).items():
            w.add_string(k, v)
        for n, v in tensors:
            w.add_tensor(n, v)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        h = ctypes.c_void_p()
        st = L_().sa_cvec_load(p.encode(), ctypes.byref(h))
        msg = lib().sa_last_error().decode()
        assert st != 0 and not h.value, "%s: accepted" % name
        assert expect in msg, (name, msg)
        return p
    v = dirs[1]
    hostile("zero-index", [("direction.0", v)], expect="direction.0")
    hostile("bad-name", [("direction.x", v)], expect="direction.x")
    hostile("other-name", [("blk.1.attn_q.weight", v)], expect="blk.1.attn_q.weight")
    hostile("huge-index", [("direction.99999999999", v)], expect="direction.99999999999")
    hostile("sizes", [("direction.1", v), ("direction.2", v[:10])], expect="10 elements")
    hostile("2d", [("direction.1", np.zeros((2, E), dtype=np.float32))], expect="2 dimensions")
    hostile("f16", [("direction.1", v.astype(np.float16))], expect="expected f32")
    hostile("nan", [("direction.1", np.full(E, np.nan, dtype=np.float32))], expect="NaN")
    hostile("arch", [("direction.1", v)], arch="llama", expect="not a control vector")
    hostile("empty", [], expect="no direction tensors")
    # truncated: every prefix of a good file is refused without a crash
    data = open(path, "rb").read()
    for n in list(range(0, 64)) + list(range(64, len(data), 97)):
        h = ctypes.c_void_p()
        assert L_().sa_cvec_load_memory(data[:n], n, ctypes.byref(h)) != 0 and not h.value, n
    # a vector for another model: refused at sa_ctx_init
    cv = Cvec(np.ones((L, 32), dtype=np.float32))
    m = Model(checkpoint("llama"), n_threads=1)
    p = lib().sa_ctx_default_params()
    p.n_ctx, p.cvec = 16, cv.h.value
    h = ctypes.c_void_p()
    st = lib().sa_ctx_init(m.h, ctypes.byref(p), ctypes.byref(h))
    m.close()
    cv.close()
    assert st != 0 and "made for another model" in lib().sa_last_error().decode()
    # writing: row 0 cannot be saved in llama.cpp's format
    cv = Cvec(np.ones((L, E), dtype=np.float32))
    st = L_().sa_cvec_save(cv.h, os.path.join(OUT, "row0.gguf").encode())
    cv.close()
    assert st != 0 and "block 0" in lib().sa_last_error().decode()


def salign(*args, check=True):
    r = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        raise AssertionError("salign %s: rc %d: %s" % (" ".join(args), r.returncode, r.stderr))
    return r


@test
def test_generate_control_vector():
    f32 = gguf_model()
    rows = np.zeros((L, E), dtype=np.float32)
    rows[1:] = np.random.RandomState(4).standard_normal((L - 1, E)).astype(np.float32) * 4
    cv = Cvec(rows)
    path = os.path.join(OUT, "gen.cvec.gguf")
    _check(L_().sa_cvec_save(cv.h, path.encode()), "sa_cvec_save")
    cv.close()
    args = ["generate", "-m", f32, "-p", "Question: 2 + 3 =", "-n", "8", "--temp", "0", "-t", "2", "--json"]
    plain = json.loads(salign(*args).stdout)["text"]
    off = json.loads(salign(*args, "--control-vector", path, "--control-scale", "0").stdout)["text"]
    steered = json.loads(salign(*args, "--control-vector", path, "--control-scale", "3").stdout)["text"]
    print("    greedy: plain %r, steered %r" % (plain, steered))
    assert off == plain, (off, plain)
    assert steered != plain, "the control vector did not change the greedy text"
    r = salign(*args, "--control-vector", f32, check=False)
    assert r.returncode == 1 and "not a control vector" in r.stderr, r.stderr
    r = salign(*args, "--control-vector", os.path.join(OUT, "nope.gguf"), check=False)
    assert r.returncode == 1 and "no such control vector file" in r.stderr, r.stderr


if __name__ == "__main__":
    main()
