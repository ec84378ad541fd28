"""test_tokenizer_export.py: sa_tokenizer_save_hf (src/tokenizer/tokenizer_hf_write.c), the
tokenizer.json + tokenizer_config.json writer, on smollm2 (through `salign convert --to
safetensors`, the convert call site), qwen2.5-coder-0.5b-instruct and gemma3-270m (through
ctypes). For each written file:
(1) our reader (sa_tokenizer_load_hf) gives the GGUF tokenizer's ids on every valid UTF-8
    string of tests/py/tokenizer_corpus.py (control tokens parsed and not; with BOS);
(2) HF tokenizers (Tokenizer.from_file) gives the same ids, and decodes them back;
(3) transformers' AutoTokenizer loads the directory and renders its chat template.
100% identical ids are required."""
import ctypes
import glob
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SALIGN, main, models_dir, test, tmpdir  # noqa: E402
from tokenizer_corpus import corpus  # noqa: E402

LIB = ctypes.CDLL(os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
LIBC = ctypes.CDLL(None)
LIB.sa_last_error.restype = ctypes.c_char_p
LIB.sa_tokenizer_free.argtypes = [ctypes.c_void_p]
LIB.sa_tokenizer_save_hf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
LIB.sa_gguf_free.argtypes = [ctypes.c_void_p]
LIB.sa_gguf_get_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
LIB.sa_gguf_get_string.restype = ctypes.c_void_p
LIB.sa_model_free.argtypes = [ctypes.c_void_p]
LIB.sa_model_tokenizer.argtypes = [ctypes.c_void_p]
LIB.sa_model_tokenizer.restype = ctypes.c_void_p
LIBC.free.argtypes = [ctypes.c_void_p]

SA_STATUS_IO, SA_STATUS_BAD_ARGUMENT = -3, -6


class TokOpts(ctypes.Structure):
    _fields_ = [("add_special", ctypes.c_bool), ("parse_special", ctypes.c_bool)]


class DetokOpts(ctypes.Structure):
    _fields_ = [("special", ctypes.c_bool), ("strip_leading_space", ctypes.c_bool)]


class ModelParams(ctypes.Structure):
    _fields_ = [("use_mmap", ctypes.c_bool), ("n_threads", ctypes.c_int), ("load_tokenizer", ctypes.c_bool)]


LIB.sa_model_default_params.restype = ModelParams


def _err():
    return LIB.sa_last_error().decode(errors="replace")


class Tok:
    """A tokenizer from a GGUF file, a tokenizer.json, or borrowed from a loaded model."""

    def __init__(self, gguf=None, hf=None, hf_config=None, borrowed=None):
        self.t = ctypes.c_void_p(borrowed)
        self.g = ctypes.c_void_p()
        self.owned = borrowed is None
        if gguf:
            assert LIB.sa_gguf_open(gguf.encode(), ctypes.byref(self.g)) == 0, _err()
            assert LIB.sa_tokenizer_load_gguf(self.g, ctypes.byref(self.t)) == 0, _err()
        elif hf:
            cfg = hf_config.encode() if hf_config else None
            assert LIB.sa_tokenizer_load_hf(hf.encode(), cfg, ctypes.byref(self.t)) == 0, _err()

    def chat_template(self):
        p = LIB.sa_gguf_get_string(self.g, b"tokenizer.chat_template")
        if not p:
            return None
        s = ctypes.string_at(p)
        LIBC.free(p)
        return s

    def close(self):
        if self.owned:
            LIB.sa_tokenizer_free(self.t)
        if self.g:
            LIB.sa_gguf_free(self.g)

    def encode(self, b, add_special=False, parse_special=True):
        ids = ctypes.POINTER(ctypes.c_int32)()
        n = ctypes.c_size_t()
        rc = LIB.sa_tokenize(self.t, b, ctypes.c_size_t(len(b)), TokOpts(add_special, parse_special),
                             ctypes.byref(ids), ctypes.byref(n))
        assert rc == 0, _err()
        out = ids[: n.value]
        LIBC.free(ids)
        return out

    def decode(self, ids):
        arr = (ctypes.c_int32 * max(1, len(ids)))(*ids)
        text = ctypes.c_void_p()
        n = ctypes.c_size_t()
        assert LIB.sa_detokenize(self.t, arr, ctypes.c_size_t(len(ids)), DetokOpts(True, False),
                                 ctypes.byref(text), ctypes.byref(n)) == 0, _err()
        out = ctypes.string_at(text, n.value)
        LIBC.free(text)
        return out


def _valid(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# tokenizers takes str: only valid UTF-8 can reach it (invalid bytes: see test_tokenizer_parity.py)
STRINGS = [b for _, b in corpus() if _valid(b)]
assert len(STRINGS) >= 2000, len(STRINGS)

GEMMA_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}"
                  "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
                  "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
                  "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}")
MESSAGES = [{"role": "user", "content": "What is 12 + 30?"}, {"role": "assistant", "content": "12 + 30 = 42."}]


def gguf_path(name):
    files = sorted(glob.glob(os.path.join(models_dir(), name, "*.gguf")))
    assert files, "model %s missing from %s: run scripts/setup.sh (salign pull %s)" % (name, models_dir(), name)
    return files[0]


def out_dir(name):
    d = os.path.join(tmpdir(), "export-" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def same_ids(label, want_fn, got_fn, strings):
    n = same = 0
    bad = []
    for b in strings:
        want, got = want_fn(b), got_fn(b)
        n += 1
        if got == want:
            same += 1
        elif len(bad) < 5:
            bad.append((b[:60], got[:12], want[:12]))
    print("  %s: %d/%d identical" % (label, same, n))
    for x in bad:
        print("    mismatch %r got=%s want=%s" % x)
    assert same == n, "%s: %d of %d differ" % (label, n - same, n)


def check_written(name, d, gguf_tok, template):
    """(1), (2) and (3) on the files in d; returns the parsed tokenizer.json."""
    tj, tc = os.path.join(d, "tokenizer.json"), os.path.join(d, "tokenizer_config.json")
    left = sorted(f for f in os.listdir(d) if f.startswith(("tokenizer", ".")))
    assert left == ["tokenizer.json", "tokenizer_config.json"], left  # no temporary files left behind
    j = json.load(open(tj, encoding="utf-8"))
    cfg = json.load(open(tc, encoding="utf-8"))
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and cfg["clean_up_tokenization_spaces"] is False
    assert cfg.get("chat_template") == template

    # (1) our reader
    t0 = time.time()
    ours = Tok(hf=tj, hf_config=tc)
    try:
        same_ids(name + " our reader vs GGUF", gguf_tok.encode, ours.encode, STRINGS)
        same_ids(name + " our reader vs GGUF, control tokens as text",
                 lambda b: gguf_tok.encode(b, parse_special=False), lambda b: ours.encode(b, parse_special=False),
                 STRINGS[::3])
        same_ids(name + " our reader vs GGUF, with BOS/EOS",
                 lambda b: gguf_tok.encode(b, add_special=True), lambda b: ours.encode(b, add_special=True),
                 STRINGS[::10])
    finally:
        ours.close()
    t1 = time.time()

    # (2) HF tokenizers
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(tj)
    same_ids(name + " tokenizers vs GGUF", gguf_tok.encode,
             lambda b: ref.encode(b.decode(), add_special_tokens=False).ids, STRINGS)
    same_ids(name + " tokenizers vs GGUF, with BOS/EOS", lambda b: gguf_tok.encode(b, add_special=True),
             lambda b: ref.encode(b.decode(), add_special_tokens=True).ids, STRINGS[::10])
    n = rt = 0
    for b in STRINGS[::2]:
        ids = gguf_tok.encode(b)
        if gguf_tok.decode(ids) == b:
            n += 1
            rt += ref.decode(ids, skip_special_tokens=False) == b.decode()
    print("  %s tokenizers decode: %d/%d round trip" % (name, rt, n))
    assert rt == n and n > 0.9 * len(STRINGS[::2])
    t2 = time.time()

    # (3) transformers
    import hf_compat  # noqa: F401 - torch 1.13 shims, before transformers
    import transformers

    at = transformers.AutoTokenizer.from_pretrained(d)
    assert at.eos_token == cfg["eos_token"] and at.bos_token == cfg.get("bos_token")
    assert at.convert_tokens_to_ids(at.eos_token) == LIB.sa_tokenizer_eos(gguf_tok.t)
    text = at.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert "What is 12 + 30?" in text and "12 + 30 = 42." in text, text
    ids = at.apply_chat_template(MESSAGES, tokenize=True, add_generation_prompt=True)
    assert ids == gguf_tok.encode(text.encode()), (ids[:20], gguf_tok.encode(text.encode())[:20])
    print("  %s AutoTokenizer: %s, chat template renders %d chars -> %d tokens; times: ours %.1fs, "
          "tokenizers %.1fs, transformers %.1fs" % (name, type(at).__name__, len(text), len(ids), t1 - t0, t2 - t1,
                                                     time.time() - t2))
    return j, cfg, text


def save(gguf_tok, d, template):
    assert LIB.sa_tokenizer_save_hf(gguf_tok.t, d.encode(), template) == 0, _err()


@test
def smollm2_via_convert():
    """`salign convert GGUF --to safetensors` writes the tokenizer next to config.json."""
    path = gguf_path("smollm2-135m-instruct")
    d = out_dir("smollm2")
    r = subprocess.run([SALIGN, "convert", path, "--to", "safetensors", "--type", "bf16", "-q", "-o", d],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    g = Tok(gguf=path)
    try:
        j, cfg, text = check_written("smollm2", d, g, g.chat_template().decode())
        # SmolLM2's real pre-tokenizer, pairs as merges, control tokens special
        assert j["pre_tokenizer"] == {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
        assert j["model"]["type"] == "BPE" and not j["model"]["byte_fallback"] and not j["model"]["ignore_merges"]
        assert len(j["model"]["vocab"]) == 49152 and j["model"]["merges"][0] == ["Ġ", "t"]
        assert j["decoder"]["type"] == "ByteLevel" and j["normalizer"] is None
        assert [a["id"] for a in j["added_tokens"]] == list(range(17)) and all(a["special"] for a in j["added_tokens"])
        assert cfg["eos_token"] == "<|im_end|>" and cfg["add_bos_token"] is False
        hf_cfg = json.load(open(os.path.join(d, "config.json")))
        assert cfg["model_max_length"] == hf_cfg["max_position_embeddings"] == 8192
        assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
        # sa_model_load of the directory now has a tokenizer, the GGUF's
        m = ctypes.c_void_p()
        p = LIB.sa_model_default_params()
        p.n_threads = 2
        assert LIB.sa_model_load(d.encode(), ctypes.byref(p), ctypes.byref(m)) == 0, _err()
        try:
            mt = LIB.sa_model_tokenizer(m)
            assert mt, "sa_model_load found no tokenizer in %s" % d
            same_ids("smollm2 sa_model_load(dir) tokenizer vs GGUF", g.encode, Tok(borrowed=mt).encode, STRINGS[::4])
        finally:
            LIB.sa_model_free(m)
    finally:
        g.close()
    shutil.rmtree(d, ignore_errors=True)


@test
def qwen25_coder_export():
    g = Tok(gguf=gguf_path("qwen2.5-coder-0.5b-instruct"))
    try:
        d = out_dir("qwen")
        tmpl = g.chat_template()
        save(g, d, tmpl)
        j, cfg, text = check_written("qwen2.5-coder", d, g, tmpl.decode())
        pre = j["pre_tokenizer"]["pretokenizers"]
        assert pre[0]["type"] == "Split" and pre[0]["behavior"] == "Isolated" and "\\p{N}|" in pre[0]["pattern"]["Regex"]
        assert pre[1] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
        added = {a["content"]: a for a in j["added_tokens"]}
        assert added["<|im_end|>"]["special"] and added["<|im_end|>"]["id"] == 151645
        assert added["<tool_call>"]["special"] is False  # user-defined: matched in text, decoded as text
        assert "[PAD151665]" not in added and j["model"]["vocab"]["[PAD151935]"] == 151935  # unused: plain vocab
        assert cfg["eos_token"] == "<|im_end|>" and "model_max_length" not in cfg  # no config.json here
        assert "<|im_start|>user\nWhat is 12 + 30?<|im_end|>" in text
        shutil.rmtree(d, ignore_errors=True)
    finally:
        g.close()


@test
def gemma3_export():
    """SPM: merges derived from the scores, byte fallback, U+2581 normalizer and decoder."""
    g = Tok(gguf=gguf_path("gemma3-270m"))
    try:
        assert g.chat_template() is None  # this GGUF has none: pass one
        d = out_dir("gemma3")
        save(g, d, GEMMA_TEMPLATE.encode())
        j, cfg, text = check_written("gemma3", d, g, GEMMA_TEMPLATE)
        m = j["model"]
        assert m["byte_fallback"] and m["unk_token"] == "<unk>" and len(m["vocab"]) == 262144
        assert 400000 < len(m["merges"]) < 1000000, len(m["merges"])
        assert j["normalizer"] == {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}
        assert j["pre_tokenizer"] is None
        assert [x["type"] for x in j["decoder"]["decoders"]] == ["Replace", "ByteFallback", "Fuse"]
        single = j["post_processor"]["single"]
        assert single[0] == {"SpecialToken": {"id": "<bos>", "type_id": 0}} and cfg["add_bos_token"] is True
        added = {a["content"]: a for a in j["added_tokens"]}
        assert added["<start_of_turn>"]["special"] and added["  "]["special"] is False
        assert text.startswith("<bos><start_of_turn>user\nWhat is 12 + 30?<end_of_turn>\n<start_of_turn>model\n")
        shutil.rmtree(d, ignore_errors=True)
    finally:
        g.close()


@test
def errors():
    g = Tok(gguf=gguf_path("smollm2-135m-instruct"))
    try:
        missing = os.path.join(tmpdir(), "no", "such", "dir")
        assert LIB.sa_tokenizer_save_hf(g.t, missing.encode(), None) == SA_STATUS_IO, _err()
        assert missing in _err(), _err()
        assert LIB.sa_tokenizer_save_hf(None, b"/tmp", None) == SA_STATUS_BAD_ARGUMENT
        assert LIB.sa_tokenizer_save_hf(g.t, None, None) == SA_STATUS_BAD_ARGUMENT
        # no chat template: none written
        d = out_dir("notemplate")
        save(g, d, None)
        assert "chat_template" not in json.load(open(os.path.join(d, "tokenizer_config.json")))
        shutil.rmtree(d, ignore_errors=True)
    finally:
        g.close()


if __name__ == "__main__":
    main()
