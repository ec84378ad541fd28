"""test_tokenizer_parity.py: our tokenizer (build/libsalign.so through ctypes) against
(1) llama.cpp (llama-cpp-python, vocab_only) on the same GGUF: smollm2, gemma3 and any other
    GGUF in the model cache (Qwen), parse_special off and on, with and without BOS;
(2) HF tokenizers on a tokenizer.json converted from the smollm2 GGUF by transformers, and on
    that file with the pre-tokenizer SmolLM2 really uses (Digits + ByteLevel), which must
    also agree with llama.cpp.
100% identical ids are required, and decode(encode(x)) == x wherever the reference
round-trips; the streaming decoder must reproduce the whole decode."""
import ctypes
import glob
import json
import os
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, models_dir, test  # noqa: E402
from tokenizer_corpus import corpus  # noqa: E402

LIB = ctypes.CDLL(os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
LIBC = ctypes.CDLL(None)
LIB.sa_last_error.restype = ctypes.c_char_p
LIB.sa_tokenizer_free.argtypes = [ctypes.c_void_p]
LIB.sa_gguf_free.argtypes = [ctypes.c_void_p]
LIBC.free.argtypes = [ctypes.c_void_p]


class TokOpts(ctypes.Structure):
    _fields_ = [("add_special", ctypes.c_bool), ("parse_special", ctypes.c_bool)]


class DetokOpts(ctypes.Structure):
    _fields_ = [("special", ctypes.c_bool), ("strip_leading_space", ctypes.c_bool)]


def _err():
    return LIB.sa_last_error().decode(errors="replace")


class Tok:
    def __init__(self, gguf=None, hf=None, hf_config=None):
        self.t = ctypes.c_void_p()
        self.g = ctypes.c_void_p()
        if gguf:
            assert LIB.sa_gguf_open(gguf.encode(), ctypes.byref(self.g)) == 0, _err()
            assert LIB.sa_tokenizer_load_gguf(self.g, ctypes.byref(self.t)) == 0, _err()
        else:
            cfg = hf_config.encode() if hf_config else None
            assert LIB.sa_tokenizer_load_hf(hf.encode(), cfg, ctypes.byref(self.t)) == 0, _err()

    def close(self):
        LIB.sa_tokenizer_free(self.t)
        if self.g:
            LIB.sa_gguf_free(self.g)

    def encode(self, b, add_special=False, parse_special=False):
        ids = ctypes.POINTER(ctypes.c_int32)()
        n = ctypes.c_size_t()
        rc = LIB.sa_tokenize(self.t, b, ctypes.c_size_t(len(b)), TokOpts(add_special, parse_special),
                             ctypes.byref(ids), ctypes.byref(n))
        assert rc == 0, _err()
        out = ids[: n.value]
        LIBC.free(ids)
        return out

    def decode(self, ids, special=False):
        arr = (ctypes.c_int32 * max(1, len(ids)))(*ids)
        text = ctypes.c_void_p()
        n = ctypes.c_size_t()
        rc = LIB.sa_detokenize(self.t, arr, ctypes.c_size_t(len(ids)), DetokOpts(special, False),
                               ctypes.byref(text), ctypes.byref(n))
        assert rc == 0, _err()
        out = ctypes.string_at(text, n.value)
        LIBC.free(text)
        return out

    def stream_decode(self, ids):
        s = ctypes.c_void_p()
        assert LIB.sa_detok_stream_init(self.t, DetokOpts(False, False), ctypes.byref(s)) == 0, _err()
        chunks = []
        p = ctypes.c_char_p()
        n = ctypes.c_size_t()
        for i in ids:
            assert LIB.sa_detok_stream_push(s, ctypes.c_int32(i), ctypes.byref(p), ctypes.byref(n)) == 0, _err()
            chunks.append(ctypes.string_at(p, n.value))
        assert LIB.sa_detok_stream_flush(s, ctypes.byref(p), ctypes.byref(n)) == 0, _err()
        tail = ctypes.string_at(p, n.value)
        LIB.sa_detok_stream_free(s)
        return chunks, tail


CORPUS = corpus()
assert len(CORPUS) >= 2000, len(CORPUS)


def _valid(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def gguf_path(name):
    files = sorted(glob.glob(os.path.join(models_dir(), name, "*.gguf")))
    assert files, "model %s missing from %s: run scripts/setup.sh (salign pull %s)" % (name, models_dir(), name)
    return files[0]


def check_llama_cpp(path, label):
    from llama_cpp import Llama

    ref = Llama(model_path=path, vocab_only=True, verbose=False)
    ours = Tok(gguf=path)
    try:
        n = same = ref_err = rt_n = rt_ok = 0
        bad = []
        for i, (cat, b) in enumerate(CORPUS):
            modes = [(False, False), (False, True)] + ([(True, True)] if i % 10 == 0 else [])
            for add_bos, special in modes:
                try:
                    want = ref.tokenize(b, add_bos=add_bos, special=special)
                except Exception:  # noqa: BLE001 - llama.cpp throws on code points > U+10FFFF
                    ref_err += 1
                    continue
                got = ours.encode(b, add_special=add_bos, parse_special=special)
                n += 1
                if got == want:
                    same += 1
                elif len(bad) < 5:
                    bad.append((cat, i, add_bos, special, b[:60], got[:12], want[:12]))
                if not add_bos and not special and ref.detokenize(want) == b:
                    rt_n += 1
                    rt_ok += ours.decode(got) == b
        print("  %s vs llama.cpp: %d encodings, %d identical, %d reference errors; round trip %d/%d"
              % (label, n, same, ref_err, rt_ok, rt_n))
        for x in bad:
            print("    mismatch %s #%d add_bos=%s special=%s %r ours=%s ref=%s" % x)
        assert same == n, "%d of %d differ" % (n - same, n)
        assert rt_ok == rt_n
        assert n >= 2 * len(CORPUS) - 10
    finally:
        ours.close()


@test
def llama_cpp_smollm2():
    check_llama_cpp(gguf_path("smollm2-135m-instruct"), "smollm2")


@test
def llama_cpp_gemma3():
    check_llama_cpp(gguf_path("gemma3-270m"), "gemma3")


@test
def llama_cpp_other_cached_models():
    """Any further GGUF in the cache (the Qwen2.5 model once it is pulled)."""
    known = {"smollm2-135m-instruct", "gemma3-270m"}
    seen = 0
    for d in sorted(glob.glob(os.path.join(models_dir(), "*"))):
        if os.path.basename(d) in known or not glob.glob(os.path.join(d, "*.gguf")):
            continue
        check_llama_cpp(gguf_path(os.path.basename(d)), os.path.basename(d))
        seen += 1
    print("  %d other cached model(s) checked" % seen)


@test
def stream_decode_matches_whole():
    path = gguf_path("smollm2-135m-instruct")
    for p in (path, gguf_path("gemma3-270m")):
        t = Tok(gguf=p)
        try:
            for i, (cat, b) in enumerate(CORPUS):
                if i % 4 and cat not in ("emoji", "cjk", "mixed", "invalid"):
                    continue
                ids = t.encode(b)
                whole = t.decode(ids)
                # every prefix of the real token sequence
                for k in range(0, len(ids) + 1, max(1, len(ids) // 8)):
                    chunks, tail = t.stream_decode(ids[:k])
                    assert b"".join(chunks) + tail == t.decode(ids[:k])
                chunks, tail = t.stream_decode(ids)
                assert b"".join(chunks) + tail == whole
                if _valid(whole):
                    for c in chunks:
                        c.decode("utf-8")  # only complete characters come out
                    assert tail == b""
        finally:
            t.close()


def _hf_dir():
    """tokenizer.json converted from the smollm2 GGUF by transformers (cached in build/)."""
    out = os.path.join(ROOT, os.environ.get("BUILD", "build"), "test-cache", "hf-smollm2")
    if os.path.exists(os.path.join(out, "tokenizer.json")):
        return out
    import transformers.modeling_gguf_pytorch_utils as mg
    import torch

    # transformers 5 checks for torch >= 2 before reading GGUF metadata; Debian's 1.13
    # is enough to read a tokenizer (no tensors are loaded)
    mg.is_torch_available = lambda: True
    mg.torch = torch
    from transformers import AutoTokenizer

    path = gguf_path("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    tok.save_pretrained(out)
    return out


def _fixed_json(d):
    """The converted file with SmolLM2's real pre-tokenizer (transformers drops the digit split)."""
    path = os.path.join(d, "tokenizer.fixed.json")
    if not os.path.exists(path):
        j = json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8"))
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
        j["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
        j["post_processor"] = None
        with open(path, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False)
    return path


def check_hf(json_path, config_path, label):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(json_path)
    ours = Tok(hf=json_path, hf_config=config_path)
    try:
        n = same = rt = 0
        bad = []
        for cat, b in CORPUS:
            if not _valid(b):
                continue  # tokenizers takes str: invalid UTF-8 cannot reach it
            want = ref.encode(b.decode("utf-8"), add_special_tokens=False).ids
            got = ours.encode(b, parse_special=True)
            n += 1
            if got == want:
                same += 1
            elif len(bad) < 5:
                bad.append((cat, b[:60], got[:12], want[:12]))
            rt += ours.decode(got, special=True) == b
        print("  %s: %d strings, %d identical; round trip %d/%d" % (label, n, same, rt, n))
        for x in bad:
            print("    mismatch %s %r ours=%s ref=%s" % x)
        assert same == n
        assert rt == n
        return ref
    finally:
        ours.close()


@test
def hf_tokenizers_converted_smollm2():
    d = _hf_dir()
    check_hf(os.path.join(d, "tokenizer.json"), os.path.join(d, "tokenizer_config.json"), "smollm2 converted json vs tokenizers")


@test
def hf_converted_vs_llama_cpp_differs_only_on_digits():
    """transformers' GGUF conversion drops SmolLM2's Digits(individual_digits) split: the
    converted tokenizer differs from llama.cpp only on strings with digit runs."""
    from llama_cpp import Llama
    from tokenizers import Tokenizer

    d = _hf_dir()
    conv = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    L = Llama(model_path=gguf_path("smollm2-135m-instruct"), vocab_only=True, verbose=False)
    n = diff = 0
    for cat, b in CORPUS:
        if not _valid(b):
            continue
        n += 1
        if conv.encode(b.decode(), add_special_tokens=False).ids != L.tokenize(b, add_bos=False, special=True):
            diff += 1
            assert any(unicodedata.category(ch)[0] == "N" for ch in b.decode()), b[:80]
    print("  converted json vs llama.cpp: %d of %d differ, all on digit runs" % (diff, n))


@test
def hf_tokenizers_fixed_smollm2_equals_llama_cpp():
    from llama_cpp import Llama

    d = _hf_dir()
    path = _fixed_json(d)
    ref = check_hf(path, None, "smollm2 json (Digits+ByteLevel) vs tokenizers")
    L = Llama(model_path=gguf_path("smollm2-135m-instruct"), vocab_only=True, verbose=False)
    n = same = 0
    for cat, b in CORPUS:
        if _valid(b):
            n += 1
            same += ref.encode(b.decode(), add_special_tokens=False).ids == L.tokenize(b, add_bos=False, special=True)
    print("  that json in tokenizers vs llama.cpp: %d/%d identical" % (same, n))
    assert same == n


if __name__ == "__main__":
    main()
