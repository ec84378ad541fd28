"""tokenizer_corpus.py: a deterministic corpus of >= 2,000 byte strings for tokenizer parity
tests: English prose (GSM8K questions/answers, HH-RLHF helpful dialogues, read in place),
code, math/LaTeX, CJK, emoji (ZWJ, skin tones), whitespace runs, digits, contractions, mixed
scripts, special-token strings, random mixtures, and invalid UTF-8.

corpus() -> list of (category, bytes). Same output on every run (fixed seed)."""
import gzip
import json
import os
import random

from harness import SHARED_DATA

CODE = [
    "def f(x):\n    return x * 2\n",
    "class Foo:\n    def __init__(self, a, b=None):\n        self.a = a\n        self.b = b or []\n\n    def __repr__(self):\n        return f\"Foo({self.a!r})\"\n",
    "for i in range(10):\n\tif i % 2 == 0:\n\t\tprint(i)\n\telse:\n\t\tcontinue\n",
    "import numpy as np\nx = np.zeros((3, 4), dtype=np.float32)\nprint(x.shape)  # (3, 4)\n",
    "#include <stdio.h>\n\nint main(int argc, char **argv) {\n    printf(\"%d\\n\", argc);\n    return 0;\n}\n",
    "static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }",
    "if (a != b && c <= d || e >= f) { x += 1; y -= 2; z *= 3; w /= 4; }",
    "    try:\n        os.makedirs(path, exist_ok=True)\n    except OSError as e:\n        raise RuntimeError(str(e)) from e\n",
    "SELECT name, COUNT(*) AS n FROM users WHERE age > 30 GROUP BY name ORDER BY n DESC;",
    "const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n",
    "fn main() {\n    let v: Vec<i32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "$ ls -la /usr/local/bin | grep -E '^-rwx' | awk '{print $9}'",
    "<html>\n  <body>\n    <div class=\"a\">Hello &amp; welcome</div>\n  </body>\n</html>\n",
    "{\"key\": [1, 2.5, -3e10, true, null], \"nested\": {\"a\": \"b\"}}",
    "x=[i**2 for i in range(100) if i%3==0]\n",
    "        \n    \n\n\t\t  \t",
    "// comment with trailing spaces    \n/* block\n * comment */\n",
    "diff --git a/x.c b/x.c\n@@ -1,3 +1,4 @@\n-old line\n+new line\n",
]

MATH = [
    "$\\int_0^1 x^2\\,dx = \\frac{1}{3}$",
    "\\begin{align} a^2 + b^2 &= c^2 \\\\ e^{i\\pi} + 1 &= 0 \\end{align}",
    "The sum $\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$ holds for all $n \\geq 1$.",
    "f(x) = 3x^2 - 2x + 1, f'(x) = 6x - 2",
    "12 + 7 = 19; 19 * 3 = 57; 57 / 3 = 19.0",
    "∀ε>0 ∃δ>0: |x−a|<δ ⇒ |f(x)−f(a)|<ε",
    "π ≈ 3.14159265358979, e ≈ 2.718281828, √2 ≈ 1.41421356",
    "x₁ + x₂ = −b/a, x₁·x₂ = c/a",
    "\\mathbb{R}^n \\to \\mathbb{R}, \\|x\\|_2 = \\sqrt{\\sum_i x_i^2}",
    "<<48/2=24>>24 clips in May. #### 72",
    "3/4 + 5/6 = 9/12 + 10/12 = 19/12",
    "1,000,000 and 1.000.000 and 1 000 000 and 10^6",
]

CJK = [
    "日本語のテキストを正しく分割できますか？",
    "我爱自然语言处理。今天天气很好！",
    "한국어 문장도 토큰화해야 합니다.",
    "東京は日本の首都です。人口は約1400万人です。",
    "中文、日本語、한국어が混在する文。",
    "ｆｕｌｌｗｉｄｔｈ　ｔｅｘｔ　１２３",
    "「引用」『二重引用』【括弧】〈山括弧〉",
    "漢字かなカナ交じり文",
    "你好，世界！这是一个测试。",
    "ひらがなだけのぶん",
]

EMOJI = [
    "👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏿‍💻 coding", "❤️🔥", "😀😃😄😁😆", "👩🏻‍🔬 and 👨🏾‍🚀",
    "🇯🇵🇺🇸🇩🇪", "✋🏼 hello 👋🏿", "family: 👨‍👨‍👧 👩‍👩‍👦‍👦", "⌚️⌛️⏰", "1️⃣2️⃣3️⃣", "#️⃣ *️⃣",
    "emoji at end 🎉", "🎉 emoji at start", "a🙂b🙃c", "🫠🫡🫶",
]

MIXED = [
    "Привет, мир! Hello, world!",
    "Ελληνικά και English μαζί",
    "עברית ועוד English",
    "العربية مع English و123",
    "हिन्दी पाठ और English",
    "ภาษาไทยไม่มีช่องว่าง",
    "Tiếng Việt có dấu: ă â đ ê ô ơ ư",
    "naïve café résumé coöperate",
    "Zürich, Köln, Straße, ÆØÅ",
    "ﬁ ligature ﬂ and Å vs Å (NFC vs NFD)",
    "e\u0301 vs \u00e9 (combining acute)",
    "zero\u200bwidth\u200cjoiner\u200d test\ufeff",
    "non\u00a0breaking\u2003em\u2009thin\u3000ideographic spaces",
    "line\u2028separator\u2029paragraph",
    "tab\tvt\x0bff\x0ccr\rlf\n",
    "control \x01\x02\x1f\x7f chars",
    "NUL\x00inside",
]

CONTRACTIONS = [
    "I'm", "you're", "he's", "she'll", "we've", "they'd", "don't", "can't", "won't", "it's",
    "I'M SHOUTING", "YOU'RE", "WE'VE", "THEY'LL", "It'S", "rock 'n' roll", "'twas", "o'clock",
    "the dog's bone", "James' book", "''quoted''", "'s 't 're 've 'm 'll 'd",
]

SPECIAL = [
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>", "text<|endoftext|>text", "<|im_start|><|im_end|>", "<|im_start", "im_end|>",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", "<bos>hello<eos>", "<pad><unk><mask>",
    "<s> </s>", "<|begin_of_text|><|eot_id|>", "[multimodal]", "<unused0><unused99>",
    "<b>bold</b> <table><tr><td>1</td></tr></table>", "<|im_end|><|im_end|>", " <|im_start|> spaced ",
    "<repo_name>x<file_sep>y<filename>z", "<jupyter_code>print(1)<jupyter_output>1",
]

INVALID = [
    b"\xff", b"\xfe\xff", b"abc\x80def", b"\xc3", b"\xc3(", b"\xe2\x82", b"\xe2\x82(", b"\xf0\x9f\x98",
    b"\xf0\x9f\x98 x", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf",
    b"\xf4\x8f\xbf\xbf", b"\xf8\x88\x80\x80\x80", b"\x80\x80\x80", b"hello \xff world", b"\xf0\x9f\x98\x80\xff",
    b"caf\xe9", b"na\xefve", b"\xa0\xa1", b"  \xff  ", b"123\xff456", b"\xc3\xa9\xc3",
]


def _gsm8k():
    out = []
    path = os.path.join(SHARED_DATA, "gsm8k", "test.jsonl")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 450:
                break
            r = json.loads(line)
            out.append(("gsm8k-q", r["question"].encode()))
            if i % 2 == 0:
                out.append(("gsm8k-a", r["answer"].encode()))
    return out


def _hh():
    """Helpful-base dialogues only (no red-team prompts); never printed by the tests."""
    out = []
    path = os.path.join(SHARED_DATA, "hh-rlhf", "helpful-base.test.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 300:
                break
            out.append(("hh", json.loads(line)["chosen"].encode()))
    return out


def _whitespace(rng):
    out = []
    atoms = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   ", "\u00a0", "\u3000"]
    for _ in range(160):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append("".join(rng.choice(atoms) for _ in range(rng.randint(1, 4))))
            if rng.random() < 0.6:
                parts.append(rng.choice(["word", "a", "X", "12", ".", "日本", "👍", "'s", "x_y"]))
        out.append(("ws", "".join(parts).encode()))
    for n in (1, 2, 3, 5, 8, 16, 33):
        out.append(("ws", (" " * n).encode()))
        out.append(("ws", ("\n" * n).encode()))
        out.append(("ws", (" " * n + "x" + " " * n).encode()))
        out.append(("ws", ("\t" * n + "y").encode()))
    return out


def _digits(rng):
    out = []
    for _ in range(120):
        n = rng.randint(1, 25)
        d = "".join(rng.choice("0123456789") for _ in range(n))
        pre = rng.choice(["", " ", "x", "$", "-", "v", "(", "a "])
        post = rng.choice(["", " ", "%", ".5", "th", ")", " apples", ",000"])
        out.append(("digits", (pre + d + post).encode()))
    out += [("digits", s.encode()) for s in ["٣٤٥ Arabic-Indic", "४५६ Devanagari", "①②③ circled", "Ⅻ roman", "½ ¾ ⅞"]]
    return out


def _random_mix(rng, pool):
    out = []
    for _ in range(500):
        k = rng.randint(2, 5)
        parts = [rng.choice(pool) for _ in range(k)]
        seps = [rng.choice(["", " ", "\n", "  ", "\t", ", "]) for _ in range(k)]
        s = "".join(p + q for p, q in zip(parts, seps))
        if rng.random() < 0.3:
            cut = rng.randint(0, len(s))
            s = s[:cut]
        out.append(("mix", s.encode()))
    return out


def _invalid(rng, texts):
    out = [("invalid", b) for b in INVALID]
    for _ in range(100):
        base = bytearray(rng.choice(texts)[:80])
        for _ in range(rng.randint(1, 3)):
            pos = rng.randint(0, len(base))
            junk = bytes(rng.choice([0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf5, 0xff]) for _ in range(rng.randint(1, 3)))
            base[pos:pos] = junk
        out.append(("invalid", bytes(base)))
    return out


def corpus():
    rng = random.Random(1234)
    prose = _gsm8k() + _hh()
    small = CODE + MATH + CJK + EMOJI + MIXED + CONTRACTIONS + SPECIAL
    items = list(prose)
    items += [("code", s.encode()) for s in CODE]
    items += [("math", s.encode()) for s in MATH]
    items += [("cjk", s.encode()) for s in CJK]
    items += [("emoji", s.encode()) for s in EMOJI]
    items += [("mixed", s.encode()) for s in MIXED]
    items += [("contraction", s.encode()) for s in CONTRACTIONS]
    items += [("special", s.encode()) for s in SPECIAL]
    items += _whitespace(rng) + _digits(rng)
    # leading/trailing spaces around real sentences
    for _, b in prose[:80]:
        s = b.decode()[:120]
        items.append(("edges", (" " + s).encode()))
        items.append(("edges", (s + "  ").encode()))
    words = [w for _, b in prose[:200] for w in b.decode().split()[:20]]
    items += _random_mix(rng, small + words)
    items += _invalid(rng, [b for _, b in items])
    items.append(("empty", b""))
    return items


if __name__ == "__main__":
    c = corpus()
    from collections import Counter
    print(len(c), dict(Counter(k for k, _ in c)))
