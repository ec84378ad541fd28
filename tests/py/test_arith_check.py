"""test_arith_check.py: the edit check's arithmetic (src/pipeline/arith_check.c, issue 13)
against the calculator that labels the correction records (bench/arith_records.py): over every
sentence of the shipped records (docs/results/arith), the same equations are found with the
same values and the same verdicts; and sa_pipeline_edit_refused refuses exactly the edits that
write a false equation the draft did not write (arith) or the aligner's input markers (format) (the four false edits the Qwen aligner made on
the dev records among them), through ctypes over build/libsalign.so."""
import ctypes
import glob
import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test  # noqa: E402

spec = importlib.util.spec_from_file_location("arith_records", os.path.join(ROOT, "bench", "arith_records.py"))
ar = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ar)


class Eq(ctypes.Structure):
    _fields_ = [("start", ctypes.c_size_t), ("end", ctypes.c_size_t), ("value", ctypes.c_double),
                ("result", ctypes.c_double), ("wrong", ctypes.c_bool)]


L = ctypes.CDLL(os.environ.get("SA_LIB") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
L.sa_arith_equations.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Eq), ctypes.c_int32]
L.sa_arith_equations.restype = ctypes.c_int32
L.sa_pipeline_edit_refused.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
L.sa_pipeline_edit_refused.restype = ctypes.c_bool
ARITH = 1  # SA_PIPELINE_EDIT_CHECK_ARITH


def c_equations(text):
    b = text.encode()
    out = (Eq * 64)()
    n = L.sa_arith_equations(b, len(b), out, 64)
    res = []
    for e in out[:min(n, 64)]:
        res.append((b[e.start:e.end].decode(), e.value, e.result, e.wrong))
    return res


def py_equations(text):
    return [(m.group(0).lstrip(), v, ar.num_value(m.group("res")), ar.is_wrong(v, m.group("res")))
            for m, v in ar.equations(text)]


def same(a, b):
    if len(a) != len(b):
        return False
    for (ta, va, ra, wa), (tb, vb, rb, wb) in zip(a, b):
        if ta != tb or wa != wb or abs(va - vb) > 1e-9 * max(1, abs(vb)) or abs(ra - rb) > 1e-9 * max(1, abs(rb)):
            return False
    return True


CASES = [
    "Next, we sum the skips:\n\\[ 17 + 17 + 17 + 17 = 68 \\]",
    "Total = \\$5 \\times 365 = \\$1825",
    "So 36 - 12 - 9 = 15 cans.",
    "He pays 3 x 4 = 12 dollars, then 12 / 0 = 5.",
    "A chain: 2 + 3 = 5 + 1 = 6, and (2 + 3) = 5, and 1/2 + 1/4 = 0.75",
    "Money: $1,250 + $250 = $1,500, and 0.5 * 3 = 1.5, and 05 + 1 = 6, and 10 ÷ 4 = 2.5, 3 × 3 = 9",
    "Rounded: 10 / 3 = 3.33 and 2 / 3 = 0.67 and 100 / 7 = 14",
    "Cut: 4 * 5 = 20\\frac{1}{2}, 7 + 8 = 15 % and 6 - 2 = -4, and x = 5 + 5 = 10",
    "none here: 5, 6 and 7 = 8; 3 + = 4",
]


@test
def equations_match_the_record_labeller():
    texts = list(CASES)
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "results", "arith", "*.jsonl"))):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                for k in ("last", "correction", "revision", "prefix"):
                    if isinstance(r.get(k), str):
                        texts.append(r[k])
    assert len(texts) > 500, len(texts)
    n_eq = n_wrong = 0
    bad = []
    for t in texts:
        c, p = c_equations(t), py_equations(t)
        n_eq += len(p)
        n_wrong += sum(1 for e in p if e[3])
        if not same(c, p):
            bad.append((t, c, p))
    assert not bad, "%d of %d texts differ; first: %r" % (len(bad), len(texts), bad[0])
    assert n_eq > 300 and n_wrong > 20, (n_eq, n_wrong)  # the corpus exercises both verdicts


@test
def cases_have_the_expected_verdicts():
    eqs = c_equations(CASES[0])
    assert [(e[0], e[1], e[3]) for e in eqs] == [("17 + 17 + 17 + 17 = 68", 68.0, False)], eqs
    assert c_equations("so 17 + 17 + 17 + 17 = 59 skips")[0][3] is True
    assert [e[3] for e in c_equations(CASES[1])] == [False]
    assert c_equations("He pays 3 x 4 = 12 dollars, then 12 / 0 = 5.") == [("3 x 4 = 12", 12.0, 12.0, False)]
    assert c_equations("10 / 3 = 3.33")[0][3] is False and c_equations("100 / 7 = 14")[0][3] is False
    assert c_equations("100 / 7 = 15")[0][3] is True
    assert c_equations("2 + 3 = 5 + 1 = 7") == []  # a chain is not checked
    assert c_equations("a = 2 + 3 = 6")[0][3] is True  # after a label it is
    assert c_equations("") == []


@test
def edits_that_add_a_false_equation_are_refused():
    false_edits = [  # the Qwen LoRA aligner's false edits on the dev records (docs/results/arith)
        ("\\[ 17 + 17 + 17 + 17 = 68 \\]", "\\[ 17 + 17 + 17 + 17 = 59 \\]"),
        ("= \\$5 \\times 365 = \\$1825 \\]", "= \\$5 \\times 365 = \\$1875 \\]"),
        ("\\[\n36 - 12 - 9 = 15\n\\]", "\\[\n36 - 12 - 9 = 13\n\\]"),
        ("\\text{Difference} = 210 - 70 = 140 \\]", "\\text{Difference} = 210 - 70 = 50 \\]"),
    ]
    for y1, y2 in false_edits:
        assert L.sa_pipeline_edit_refused(ARITH, y1.encode(), y2.encode()), (y1, y2)
        assert not L.sa_pipeline_edit_refused(0, y1.encode(), y2.encode())  # NONE refuses nothing
    allowed = [
        ("So 95 + 95 + 95 = 275 apples.", "So 95 + 95 + 95 = 285 apples."),  # a fix
        ("So 95 + 95 + 95 = 275 apples.", "So she has 285 apples."),        # no equation left
        ("She has 3 + 4 = 9 and 2 * 2 = 5.", "She has 3 + 4 = 9 and 2 * 2 = 4."),  # a false one kept, one fixed
        ("He walks 5 miles.", "He walks 5 km."),                              # no arithmetic
        ("Total: 2 + 2 = 4.", "Total:  2+2 = 4 items."),                      # the same equation, spaced
    ]
    for y1, y2 in allowed:
        assert not L.sa_pipeline_edit_refused(ARITH, y1.encode(), y2.encode()), (y1, y2)
    assert L.sa_pipeline_edit_refused(ARITH, b"He has 4 apples.", b"He has 2 + 2 = 5 apples.")
    # the format check: the aligner's input markers in a revision
    FORMAT = 2  # SA_PIPELINE_EDIT_CHECK_FORMAT
    y1, y2 = b"print(total)\n```", b"print(total)\n``` | ##Your_Revision:"
    assert L.sa_pipeline_edit_refused(FORMAT, y1, y2) and not L.sa_pipeline_edit_refused(ARITH, y1, y2)
    assert L.sa_pipeline_edit_refused(ARITH | FORMAT, y1, y2)
    assert not L.sa_pipeline_edit_refused(FORMAT, b"a ##Answer: b", b"a ##Answer: c")  # y1 had it


main()
