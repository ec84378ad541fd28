"""test_arith_check.py: the edit check's arithmetic (src/pipeline/arith_check.c, issue 13)
against the calculator that labels the correction records (bench/arith_records.py): over every
sentence of the shipped records (docs/results/arith), the same equations are found with the
same values and the same verdicts; and sa_pipeline_edit_refused refuses exactly the edits that
write a false equation the draft did not write (arith) or the aligner's input markers or pieces
of them (format) (the four false edits the Qwen aligner made on the dev records among them), and
sa_pipeline_edit_refused_by names the one check that refuses (format, cut, arith in that order),
through ctypes over build/libsalign.so. The rules of issue 13's second round (units inside an
expression, every link of a chain, a variable across blocks, the misreads found in GSM8K train
solutions) have a test each."""
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


class Eq(ctypes.Structure):  # struct sa_arith_eq (src/pipeline/pipeline_impl.h)
    _fields_ = [("start", ctypes.c_size_t), ("end", ctypes.c_size_t), ("value", ctypes.c_double),
                ("result", ctypes.c_double), ("wrong", ctypes.c_bool), ("rs", ctypes.c_size_t),
                ("re", ctypes.c_size_t), ("bare", ctypes.c_bool)]


L = ctypes.CDLL(os.environ.get("SA_LIB") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
L.sa_arith_equations.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Eq), ctypes.c_int32]
L.sa_arith_equations.restype = ctypes.c_int32
L.sa_pipeline_edit_refused.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
L.sa_pipeline_edit_refused.restype = ctypes.c_bool
L.sa_pipeline_edit_refused_by.argtypes = [ctypes.c_uint, ctypes.c_char_p, ctypes.c_char_p]
L.sa_pipeline_edit_refused_by.restype = ctypes.c_uint
L.sa_arith_repair.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int32)]
L.sa_arith_repair.restype = ctypes.c_int
LIBC = ctypes.CDLL(None)
LIBC.free.argtypes = [ctypes.c_void_p]
ARITH, FORMAT, CUT = 1, 2, 4  # SA_PIPELINE_EDIT_CHECK_ARITH, _FORMAT, _CUT


def c_repair(text):
    """sa_arith_repair: (the text after the calculator, results rewritten)."""
    out, n = ctypes.c_void_p(), ctypes.c_int32(-1)
    assert L.sa_arith_repair(text.encode(), ctypes.byref(out), ctypes.byref(n)) == 0
    if not out.value:
        assert n.value == 0
        return text, 0
    fixed = ctypes.string_at(out.value).decode()
    LIBC.free(out)
    assert n.value > 0 and fixed != text
    return fixed, n.value


def c_equations(text):
    b = text.encode()
    out = (Eq * 64)()
    n = L.sa_arith_equations(b, len(b), out, 64)
    res = []
    for e in out[:min(n, 64)]:
        res.append((b[e.start:e.end].decode(), e.value, e.result, e.wrong))
    return res


def py_equations(text):
    return [(text[e.start:e.end], e.value, e.result, e.wrong) for e in ar.equations(text)]


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
    assert c_equations("a = 2 + 3 = 6")[0][3] is True  # after a label it is checked
    assert c_equations("") == []


REPAIRS = [  # (text, after the calculator, results rewritten)
    ("\\[ \\$204 + \\$160 + \\$330 = \\$794 \\]", "\\[ \\$204 + \\$160 + \\$330 = \\$694 \\]", 1),
    ("\\[ 4 + 6 + 18 = 30 \\]", "\\[ 4 + 6 + 18 = 28 \\]", 1),
    ("Total: 12 \\times 3 = 38, so 38 + 2 = 40.", "Total: 12 \\times 3 = 36, so 38 + 2 = 40.", 1),  # the comma stays
    ("\\[ 1,200 + 350 = 1,500 \\]", "\\[ 1,200 + 350 = 1,550 \\]", 1),  # thousands commas kept
    ("\\[ 1200 + 350 = 1500 \\]", "\\[ 1200 + 350 = 1550 \\]", 1),
    ("\\[ 10 / 4 = 3 \\]", "\\[ 10 / 4 = 2.50 \\]", 1),  # a fractional value: 2 decimals
    ("\\[ 28.80 \\times 1.20 = 35.76 \\]", "\\[ 28.80 \\times 1.20 = 34.56 \\]", 1),
    ("x = 3755 - 15 \\] \\[ x = 3730 \\]", "x = 3755 - 15 \\] \\[ x = 3740 \\]", 1),  # a variable's use
    ("So 5 - 8 = 3.", "So 5 - 8 = -3.", 1),
    ("2 + 3 = 6 + 1 = 8", "2 + 3 = 6 + 1 = 7", 1),  # a right side that is an expression is not rewritten
    ("17 + 17 + 17 + 17 = 68", "17 + 17 + 17 + 17 = 68", 0),
    ("", "", 0),
]


@test
def the_calculator_rewrites_false_results_as_the_labeller_does():
    for text, want, n in REPAIRS:
        assert c_repair(text) == (want, n), (text, c_repair(text))
        assert ar.repair(text) == (want, n), (text, ar.repair(text))
    texts = [t for t, _, _ in REPAIRS]
    fixes = []
    for path in sorted(glob.glob(os.path.join(ROOT, "docs", "results", "arith", "*.jsonl"))):
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                texts += [r[k] for k in ("last", "correction", "revision", "prefix") if isinstance(r.get(k), str)]
                if r.get("source") == "arith:fix" and "last" in r:
                    fixes.append((r["last"], r["correction"]))
    n_fixed = 0
    for t in texts:
        c = c_repair(t)
        assert c == ar.repair(t), (t, c, ar.repair(t))
        n_fixed += c[1] > 0
    assert n_fixed > 20, n_fixed  # the corpus has false results to rewrite
    # the records' real fixes (one pass of the labeller): the calculator writes the same
    assert len(fixes) >= 5 and all(c_repair(last)[0] == corr for last, corr in fixes), fixes


def verdicts(text):
    """[(equation text, wrong)] from C, after checking that Python says the same."""
    c, p = c_equations(text), py_equations(text)
    assert same(c, p), (text, c, p)
    return [(e[0], e[3]) for e in c]


@test
def units_inside_an_expression_are_dropped():
    # a \text{} (\mbox, \mathrm) after a number is a unit
    assert verdicts("75000 \\text{ calories} - 1800 \\text{ calories} = 73200 \\text{ calories}") == [
        ("75000 \\text{ calories} - 1800 \\text{ calories} = 73200", False)]
    assert verdicts("75000 \\text{ calories} - 1800 \\text{ calories} = 57000 \\text{ calories}")[0][1] is True
    assert verdicts("43 \\text{ brownies} \\times \\$3 \\text{ per brownie} = \\$129")[0][1] is False
    assert verdicts("43 \\text{ brownies} \\times \\$3 \\text{ per brownie} = \\$137")[0][1] is True
    assert verdicts("6 \\mbox{ h} \\times 4 \\mathrm{km/h} = 24 \\mathrm{km}") == [
        ("6 \\mbox{ h} \\times 4 \\mathrm{km/h} = 24", False)]
    # a whole result that is not the whole value is false even within 1%
    assert verdicts("91 \\text{ students/class} \\times 15 \\text{ students/class} = 1355")[0][1] is True
    assert verdicts("So 91 x 15 = 1365 students.")[0][1] is False
    # a \text{} that does not follow a number is a label: the chain after it stands alone
    assert verdicts("\\text{Total} = 60 + 180 = 240") == [("60 + 180 = 240", False)]
    assert verdicts("\\text{Total} = 60 + 180 = 250") == [("60 + 180 = 250", True)]
    # a unit between two numbers without an operator makes no equation
    assert verdicts("2 \\text{ hours} = 120 \\text{ minutes}") == []


@test
def every_link_of_a_chain_is_checked():
    assert verdicts("400 + 0.10 \\times 400 = 400 + 40 = 440") == [
        ("400 + 0.10 \\times 400 = 400 + 40", False), ("400 + 40 = 440", False)]
    assert verdicts("400 + 0.10 \\times 400 = 400 + 40 = 800") == [
        ("400 + 0.10 \\times 400 = 400 + 40", False), ("400 + 40 = 800", True)]
    assert verdicts("2 + 3 = 6 = 6") == [("2 + 3 = 6", True)]  # two bare numbers: not a link
    # a running chain (the left side's value, then one more step) is true; its last link too
    assert verdicts("2 + 3 = 5 + 1 = 6") == [("2 + 3 = 5 + 1", False), ("5 + 1 = 6", False)]
    assert verdicts("2 + 3 = 5 + 1 = 7") == [("2 + 3 = 5 + 1", False), ("5 + 1 = 7", True)]
    assert verdicts("2 + 2 = 3 + 2 = 5")[0] == ("2 + 2 = 3 + 2", True)
    assert verdicts("\\[ 5 \\times 4 = 20 = 4 \\times 5 \\]") == [("5 \\times 4 = 20", False), ("20 = 4 \\times 5", False)]
    # the last link is not checked when the expression goes on (a fraction, a letter)
    assert verdicts("3 + 4 = 7 = 7\\frac{1}{2}") == [("3 + 4 = 7", False)]
    assert verdicts("100/5 = 5A/5 or 20 = A.") == []


@test
def a_variable_is_checked_across_blocks():
    assert verdicts("\\[ x = 3755 - 15 \\] \\[ x = 3640 \\]") == [("x = 3640", True)]
    assert verdicts("\\[ x = 3755 - 15 \\] \\[ x = 3740 \\]") == [("x = 3740", False)]
    assert verdicts("$x = 3755 - 15$, so\n$x = 3740$.") == [("x = 3740", False)]
    assert verdicts("\\[ \\text{Total} = 60 + 180 \\]\n\\[ \\text{Total} = 250 \\]") == [("\\text{Total} = 250", True)]
    # the nearest earlier definition; a use of another name, or before any definition: nothing
    assert verdicts("y = 2 + 2. y = 3 \\times 3. y = 9.") == [("y = 9", False)]
    assert verdicts("y = 4. y = 2 + 3. z = 9.") == []
    # not a definition: it does not stand alone (goes on with words or a variable), or it is
    # an expression in x ("2x", "3 + x"); another assignment forgets the definition
    assert verdicts("x = 5 + 3 apples. x = 9.") == []
    assert verdicts("3 + x = 5 + 3. x = 9.") == []
    assert verdicts("x = 5 + 3. x = 2y. x = 9.") == []


@test
def true_texts_are_not_misread():
    # the misreads found in GSM8K train solutions (bench/arith_records.py --false-alarms)
    for t in ["ate .50*12 = 6 brownies", "eat 1 1/2 rolls each, 8 x 1 1/2 = 12 dinner rolls",
              "12 x 1 and 1/4 = 15", "There are 60 students x 2/3 = 40 students",
              "he used 25 / 1/3 = 75 decorations", "He spends 50 cents because $1 / 2 = 50 cents",
              "3*30 = 30 + M trees", "it takes 17/3 = 5 and 2/3 loads", "set at 6:00+48=6:48 PM",
              "$100 000 x 10/100 = $10,000", "5/5 \u2013 1/5 = 4/5", "14, 400 / 80 = 180"]:
        assert not [e for e in verdicts(t) if e[1]], t


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
    y1, y2 = b"print(total)\n```", b"print(total)\n``` | ##Your_Revision:"
    assert L.sa_pipeline_edit_refused(FORMAT, y1, y2) and not L.sa_pipeline_edit_refused(ARITH, y1, y2)
    assert L.sa_pipeline_edit_refused(ARITH | FORMAT, y1, y2)
    assert not L.sa_pipeline_edit_refused(FORMAT, b"a ##Answer: b", b"a ##Answer: c")  # y1 had it
    # pieces of the format: a revision that ends in " |", or a " | ##" separator
    assert L.sa_pipeline_edit_refused(FORMAT, b"He won 3 and lost 2 games.", b"He won 3 and lost 2 games lost |")
    assert L.sa_pipeline_edit_refused(FORMAT, b"He won 3 games.", b"He won 3 games. | ##Your")
    assert not L.sa_pipeline_edit_refused(FORMAT, b"| a | b |", b"| a | c |")  # a table row: y1 ended so
    assert not L.sa_pipeline_edit_refused(FORMAT, b"So |x| = 3.", b"So |x| = 4.")


@test
def edits_that_add_a_false_equation_by_the_new_rules_are_refused():
    refused = [
        ("75000 \\text{ cal} - 1800 \\text{ cal} = 73200 \\text{ cal}",
         "75000 \\text{ cal} - 1800 \\text{ cal} = 57000 \\text{ cal}"),  # units
        ("400 + 0.10 \\times 400 = 400 + 40 = 440", "400 + 0.10 \\times 400 = 400 + 40 = 800"),  # a chain
        ("\\[ x = 3755 - 15 \\] \\[ x = 3740 \\]", "\\[ x = 3755 - 15 \\] \\[ x = 3640 \\]"),  # a variable
    ]
    for y1, y2 in refused:
        assert L.sa_pipeline_edit_refused(ARITH, y1.encode(), y2.encode()), (y1, y2)
        assert not L.sa_pipeline_edit_refused(ARITH, y2.encode(), y1.encode()), (y2, y1)  # the fix passes
    # y1's false use of x kept as it was, with x's definition unchanged: passes; with another
    # definition it is another false equation: refused
    y1 = b"\\[ x = 3755 - 15 \\] \\[ x = 3640 \\]"
    assert not L.sa_pipeline_edit_refused(ARITH, y1, y1 + b" So")
    assert L.sa_pipeline_edit_refused(ARITH, y1, b"\\[ x = 3755 - 25 \\] \\[ x = 3640 \\]")


@test
def refused_by_names_the_check_and_agrees_with_refused():
    """sa_pipeline_edit_refused_by: the one check that refuses (format, then cut, then arith
    when several would), 0 exactly when sa_pipeline_edit_refused is false, for every set of
    checks."""
    pairs = [  # (y1, y2, the checks that refuse it alone)
        ("\\[ 17 + 17 + 17 + 17 = 68 \\]", "\\[ 17 + 17 + 17 + 17 = 59 \\]", ARITH),
        ("print(total)\n```", "print(total)\n``` | ##Your_Revision:", FORMAT),
        ("He has 3 apples.", "He has 3.", CUT),
        ("So 2 + 2 = 4.", "So 2 + 2 = 5. ##Your_Revision:", ARITH | FORMAT),
        ("So 2 + 2 = 4 and 10 + 5 = 15.", "So 2 + 2 = 45.", ARITH | CUT),
        ("So 2 + 2 = 4 and 10 + 5 = 15 |x", "So 2 + 2 = 45 |", ARITH | FORMAT | CUT),
        ("So 95 + 95 + 95 = 275 apples.", "So 95 + 95 + 95 = 285 apples.", 0),  # a fix
    ]
    for y1, y2, refusing in pairs:
        a, b = y1.encode(), y2.encode()
        for checks in range(8):
            want = next((c for c in (FORMAT, CUT, ARITH) if checks & refusing & c), 0)
            got = L.sa_pipeline_edit_refused_by(checks, a, b)
            assert got == want, (y1, y2, checks, got, want)
            assert L.sa_pipeline_edit_refused(checks, a, b) == (got != 0), (y1, y2, checks)


main()
