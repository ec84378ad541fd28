"""test_spm_ref.py: SentencePiece-style tokenization (src/tokenizer/spm.c behind the public
sa_tokenize) against llama.cpp (llama-cpp-python, vocab only) on the Gemma 3 GGUF: ids must
be identical on a deterministic corpus (tokenizer_corpus.py plus ~2,100 strings of its own:
English from GSM8K, code, LaTeX, CJK, emoji, whitespace runs, HTML, invalid UTF-8,
control-token text). Also times a 100 KB
text. Needs build/libsalign.so and the gemma3-270m model in the cache."""
import atexit
import ctypes
import json
import os
import random
import time

import harness
from harness import test

GEMMA = os.path.join(harness.models_dir(), "gemma3-270m", "gemma-3-270m-q4_k_m.gguf")
LIB = os.path.join(harness.ROOT, os.environ.get("BUILD", "build"), "libsalign.so")


class TokenizeOpts(ctypes.Structure):
    _fields_ = [("add_special", ctypes.c_bool), ("parse_special", ctypes.c_bool)]


class Salign:
    """The few public calls this test needs, through ctypes."""

    def __init__(self, model_path):
        lib = ctypes.CDLL(LIB)
        lib.sa_last_error.restype = ctypes.c_char_p
        lib.sa_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, TokenizeOpts,
                                    ctypes.POINTER(ctypes.POINTER(ctypes.c_int32)), ctypes.POINTER(ctypes.c_size_t)]
        self.lib = lib
        self.libc = ctypes.CDLL(None)
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.g = ctypes.c_void_p()
        self.t = ctypes.c_void_p()
        self._ok(lib.sa_gguf_open(model_path.encode(), ctypes.byref(self.g)), "sa_gguf_open")
        self._ok(lib.sa_tokenizer_load_gguf(self.g, ctypes.byref(self.t)), "sa_tokenizer_load_gguf")

    def _ok(self, status, what):
        if status != 0:
            raise AssertionError("%s: status %d: %s" % (what, status, self.lib.sa_last_error().decode(errors="replace")))

    def tokenize(self, data, add_special=False, parse_special=False):
        ids = ctypes.POINTER(ctypes.c_int32)()
        n = ctypes.c_size_t()
        self._ok(self.lib.sa_tokenize(self.t, data, len(data), TokenizeOpts(add_special, parse_special),
                                      ctypes.byref(ids), ctypes.byref(n)), "sa_tokenize")
        out = [ids[i] for i in range(n.value)]
        self.libc.free(ids)
        return out

    def close(self):
        self.lib.sa_tokenizer_free(self.t)
        self.lib.sa_gguf_free(self.g)


_loaded = {}


def load():
    """(llama.cpp reference, salign) for Gemma 3, loaded once for all tests."""
    if not _loaded:
        import llama_cpp  # here, so that a missing module fails the tests, not the file

        _loaded["ref"] = llama_cpp.Llama(model_path=GEMMA, vocab_only=True, verbose=False)
        _loaded["sa"] = Salign(GEMMA)
        atexit.register(_loaded["sa"].close)
    return _loaded["ref"], _loaded["sa"]


# ---- corpus ----

CODE = [
    "def f(x):\n    return x * 2\n\n\nprint(f(21))\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
    "const x = {a: 1, 'b': [2, 3]};  // comment\n    if (x.a === 1) { console.log(`t ${x}`); }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<div class=\"row\">\n  <span>hi</span>\n</div>\n<ul><li>one</li></ul>",
    "    \t\tindented\t  mixed   \n\n\n\ttabs\t\t\t\tend",
    "fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![0xFF; 3]; Ok(()) }",
]
LATEX = [
    r"\frac{a}{b} + \sqrt{x^2 + y^2} = \int_0^\infty e^{-t^2}\,dt",
    r"$$\sum_{i=1}^{n} i = \frac{n(n+1)}{2}$$",
    r"\begin{align} f(x) &= \alpha x + \beta \\ g(x) &= \mathbb{E}[X] \end{align}",
    "Let $\\epsilon > 0$ and $\\delta = \\epsilon / 2$; then $|f(x) - L| < \\epsilon$.",
]
UNICODE = [
    "日本語のテキストです。東京は日本の首都です。",
    "中文分词测试：我爱自然语言处理，今天天气很好！",
    "한국어 문장입니다. 안녕하세요, 세계!",
    "Ελληνικά: Καλημέρα κόσμε. Русский: Привет, мир! עברית: שלום עולם",
    "العربية: مرحبا بالعالم. हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✨ 🤖🧠 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "combining: e\u0301 a\u0308 n\u0303 Å vs A\u030a; NBSP:\u00a0x; ZWSP:\u200bx; BOM:\ufeffx",
    "math: ∀x∈ℝ, ∃y: x² + y² ≤ 1 → ∫∮∑∏ √π ≈ 1.7724; arrows ⇒ ⇔ ↦",
    "the literal marker ▁ and ▁▁ and ▁the in text",
    "<bos><eos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n<pad><unk><mask>",
    "<0x41><0x0A> [multimodal] <start_of_image> <unused0>",
]
INVALID = [
    b"\xff", b"\xfe\xff", b"\x80", b"\x80\x80abc", b"\xc3", b"abc\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(",
    b"\xe2ab cd", b"\xf0\x9f\x98", b"\xf0\x9f\x98 x", b"\xf0abcdef", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
    b"ok \xff\xfe\xfd ok", b"\x00\x01\x02 nul", b"tab\x0b\x0c\x1b[0m",
]
WS_UNITS = [" ", "  ", "\t", "\n", "\r\n", "\u3000", "\u00a0", "\u2003", "\n\n", "   "]
WORDS = ["the", "The", "cat", "Hello", "world", "123", "4.56", "x", "unbelievable", "naïve", "café",
         "don't", "I'm", "U.S.A.", "e-mail", "foo_bar", "CamelCase", "ALLCAPS", "$100", "50%", "#tag", "@user",
         "https://example.com/a?b=c", "日本", "😀", "Δ", "—", "…", "“quoted”", "(paren)", "[br]", "{c}"]


def gsm8k_lines():
    path = os.path.join(harness.SHARED_DATA, "gsm8k", "test.jsonl")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            out.append(r["question"])
            out.append(r["answer"])
    return out


def corpus():
    """Deterministic list of byte strings: the shared tokenizer corpus (tokenizer_corpus.py)
    and this file's own SPM-oriented cases (~2,100)."""
    import tokenizer_corpus

    return [data for _, data in tokenizer_corpus.corpus()] + own_corpus()


def own_corpus():
    rng = random.Random(1234)
    out = []
    gsm = gsm8k_lines()
    out += [s.encode() for s in gsm[:700]]
    for s in CODE + LATEX + UNICODE:
        out.append(s.encode())
        out.append((" " + s + " ").encode())
        out.append((s + "\n" + s).encode())
    out += INVALID
    out += [b"", b" ", b"  ", b"\n", b" \n ", b"a", b" a", b"a ", b"  a  b   c    d", b"\t\t \t", b"\n\n\n \n\n"]
    pool = WORDS + WS_UNITS + [c for s in UNICODE for c in s[:6]]
    for _ in range(700):  # random mixtures of words, whitespace and symbols
        k = rng.randint(1, 25)
        parts = []
        for _ in range(k):
            r = rng.random()
            parts.append(rng.choice(WORDS) if r < 0.5 else rng.choice(WS_UNITS) if r < 0.75 else rng.choice(pool))
        out.append("".join(parts).encode())
    for _ in range(300):  # random runs of whitespace around words (user-defined tokens in Gemma)
        out.append("".join(rng.choice(WS_UNITS) * rng.randint(1, 40) + rng.choice(WORDS) for _ in range(rng.randint(1, 5))).encode())
    for _ in range(250):  # random code points, and random bytes (invalid UTF-8)
        if rng.random() < 0.5:
            cps = [rng.choice([rng.randint(0x20, 0x7e), rng.randint(0xa0, 0x2fff), rng.randint(0x3000, 0x9fff),
                               rng.randint(0x1f300, 0x1faff), rng.randint(0x10000, 0x10ffff)]) for _ in range(rng.randint(1, 30))]
            out.append("".join(chr(c) for c in cps if not 0xd800 <= c <= 0xdfff).encode())
        else:
            out.append(bytes(rng.choice([rng.randint(0, 255), rng.randint(0x20, 0x7e)]) for _ in range(rng.randint(1, 30))))
    for _ in range(60):  # longer documents
        out.append("\n\n".join(rng.choice(gsm) for _ in range(rng.randint(3, 10))).encode())
    return out


@test
def test_gemma3_ids_match_llama_cpp():
    ref, sa = load()
    texts = corpus()
    assert len(texts) >= 4000, len(texts)
    n_same = 0
    bad = []
    for data in texts:
        want = ref.tokenize(data, add_bos=False, special=False)
        got = sa.tokenize(data)
        if got == want:
            n_same += 1
        else:
            bad.append((data, want, got))
    print("    gemma3: %d strings, %d identical" % (len(texts), n_same))
    for data, want, got in bad[:8]:
        print("    MISMATCH %r\n      llama.cpp %s\n      salign    %s" % (data[:120], want[:40], got[:40]))
    assert not bad, "%d of %d strings differ" % (len(bad), len(texts))


@test
def test_gemma3_special_flags_match_llama_cpp():
    """add_special (BOS) and parse_special (control tokens matched in the text)."""
    ref, sa = load()
    texts = [s.encode() for s in UNICODE[-2:]] + [b"<start_of_turn>user\nHello  there<end_of_turn>\n", b"", b"hi"]
    for data in texts:
        for add_special, parse_special in [(True, False), (False, True), (True, True)]:
            want = ref.tokenize(data, add_bos=add_special, special=parse_special)
            got = sa.tokenize(data, add_special, parse_special)
            assert got == want, "%r add_special=%s parse_special=%s:\n  llama.cpp %s\n  salign    %s" % (
                data, add_special, parse_special, want, got)


@test
def test_gemma3_100kb_speed():
    ref, sa = load()
    gsm = gsm8k_lines()
    text = " ".join(gsm)[:100_000].encode("utf-8", errors="ignore")
    variants = {"prose": text, "one line (no newlines)": text.replace(b"\n", b" "), "CJK": ("日本語のテキスト" * 5000).encode()[:100_000]}
    for name, data in variants.items():
        t0 = time.perf_counter()
        got = sa.tokenize(data)
        dt = time.perf_counter() - t0
        t0 = time.perf_counter()
        want = ref.tokenize(data, add_bos=False, special=False)
        dt_ref = time.perf_counter() - t0
        print("    %-24s %d bytes -> %d tokens: salign %.1f ms, llama.cpp %.1f ms" % (name, len(data), len(got), dt * 1e3, dt_ref * 1e3))
        assert got == want, name
        assert dt < 2.0, "%s: %.2f s for 100 KB" % (name, dt)


if __name__ == "__main__":
    harness.main()
