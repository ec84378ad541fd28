#!/usr/bin/env python3
"""bench/arith_records.py: aligner records from the upstream's own sentences, labelled by a
calculator (a dev tool for the issue-13 experiment; docs/RESULTS.md says how it was used).

Input: draft traces of `salign align --mode upstream --trace` (one line per sentence: id,
round, y1 = the sentence as written, text = what was appended to the answer), so that the
records look exactly like what the aligner sees at inference (prefix = the texts of the
sentences before, last = the sentence as written).

Each sentence is checked for written arithmetic `a op b [op c ...] = r` (op: + - * / x,
\\times, \\div, \\cdot, with optional $ signs, thousands commas and \\text{} units), every link
of a chain `a = b = c`, and a variable's value `x = a op b ... x = r` (equations(): the rules,
which src/pipeline/arith_check.c mirrors). A sentence with a wrong result (a whole number that
is not the whole value, or off by more than 1% and not a rounding of the true value) is the
question's first error; its correction is the same sentence with the result replaced by the
true value, written as the original was (decimals kept, commas kept; none when a wrong link's
right side is an expression, `2 + 2 = 3 + 2`). Records:
  - copy:  every sentence before the first error (and every sentence of a draft with none);
  - fix:   the first erroneous sentence -> its calculator correction;
  - synth (only with --synth P): with probability P, a copy record whose sentence has a
    correct equation also yields a record with the result perturbed (last) -> the original
    (correction): more examples of the one skill, from the upstream's own sentences.
Sentences after the first error are not used (their prefix carries the wrong number).
No model is run; the drafts are the only input.

  python3 bench/arith_records.py --trace T.jsonl [--trace T2.jsonl] --out R.jsonl
      [--answers A.jsonl ...] [--synth 0.3] [--plain-copies 1] [--ids FROM-TO] [--seed 1] [--stats]
  python3 bench/arith_records.py --false-alarms GSM8K_TRAIN.jsonl [RECORDS.jsonl ...]
      (the equations these rules find false in texts known to be right: docs/PIPELINE.md)
"""
import argparse
import json
import random
import re
import sys

SPACE = " \t\n\r\v\f"  # the C check's isspace: ASCII only
DIGITS = "0123456789"
OPS = (("\\times", "*"), ("\\div", "/"), ("\\cdot", "*"), ("×", "*"), ("÷", "/"),
       ("*", "*"), ("/", "/"), ("+", "+"), ("-", "-"), ("x", "*"))
TEXT_CMDS = ("\\text{", "\\mbox{", "\\mathrm{")  # a unit after a number, a name elsewhere
BEFORE_BAD = "()^{}/*+-×÷_"


class Eq:
    """One checked equation (a link of a chain, or a variable's use): the text [start, end)
    (leading spaces excluded), its right side [rs, re) (`bare`: a number, not an expression),
    the value of the left side, the value written on the right, and the verdict."""

    def __init__(self, start, end, rs, re_, value, result, wrong, bare):
        self.start, self.end, self.rs, self.re = start, end, rs, re_
        self.value, self.result, self.wrong, self.bare = value, result, wrong, bare


class Side:
    """One side of a chain: NUM (OP NUM)*; its value (None when not evaluable), its number of
    operators, and its first number's value and decimals (for a running chain)."""

    def __init__(self, start, end, value, nops, lead, lead_dec):
        self.start, self.end, self.value, self.nops = start, end, value, nops
        self.lead, self.lead_dec = lead, lead_dec


def blank_units(s):
    """s with every \\text{...} (\\mbox, \\mathrm) that follows a number (spaces aside) replaced
    by as many spaces: `75000 \\text{ calories} - 1800` is `75000 - 1800`. One that does not
    follow a number (`\\text{Total} = 60 + 180`) is a label and stays."""
    t = list(s)
    i = 0
    while i < len(t):
        cmd = next((c for c in TEXT_CMDS if s.startswith(c, i)), None)
        if cmd is None:
            i += 1
            continue
        close = s.find("}", i + len(cmd))
        k = i
        while k > 0 and t[k - 1] in SPACE:
            k -= 1
        if close < 0 or "{" in s[i + len(cmd):close] or not (k > 0 and t[k - 1] in DIGITS):
            i += 1
            continue
        t[i:close + 1] = " " * (close + 1 - i)
        i = close + 1
    return "".join(t)


def match_num(t, i, sign):
    """NUM (or RES when `sign`) at i: its end, or 0. A NUM gives back trailing commas."""
    n = len(t)
    j = i
    if j < n and t[j] == "\\":
        j += 1
    if j < n and t[j] == "$":
        j += 1
    while j < n and t[j] in SPACE:
        j += 1
    if sign and j < n and t[j] == "-":
        j += 1
    if j >= n or t[j] not in DIGITS:
        return 0
    while j < n and (t[j] in DIGITS or t[j] == ","):
        j += 1
    if not sign:
        while t[j - 1] == ",":
            j -= 1
    if j + 1 < n and t[j] == "." and t[j + 1] in DIGITS:
        j += 1
        while j < n and t[j] in DIGITS:
            j += 1
    return j


def match_op(t, i):
    """OP at i (surrounding spaces included): (end, operation) or (0, None)."""
    n = len(t)
    j = i
    while j < n and t[j] in SPACE:
        j += 1
    for lit, op in OPS:
        if t.startswith(lit, j):
            j += len(lit)
            while j < n and t[j] in SPACE:
                j += 1
            return j, op
    return 0, None


def num_value(t, a, b, bare_backslash):
    """(value, decimals) of the number t[a:b]; value None when Python would not read it (a
    backslash not before $, an integer with a leading zero such as 05)."""
    buf = []
    neg = False
    for i in range(a, b):
        c = t[i]
        if c == "\\":
            if not bare_backslash and not (i + 1 < b and t[i + 1] == "$"):
                return None, 0
            continue
        if c in "$," or c in SPACE:
            continue
        if c == "-":
            neg = True
            continue
        buf.append(c)
    s = "".join(buf)
    dec = len(s.split(".")[1]) if "." in s else 0
    if "." not in s and s[0] == "0" and len(s) > 1 and s.strip("0"):
        return None, 0
    v = float(s)
    return (-v if neg else v), dec


def evaluate(terms, ops):
    """* and / first, then + and - from the left (as the C check); None on a division by 0."""
    if any(v is None for v in terms):
        return None
    if any(ops[k] == "/" and k + 1 < len(ops) and ops[k + 1] == "/" for k in range(1, len(ops))):
        return None  # "25 / 1/3": a / (b/c) or (a/b)/c, not checked
    total, prod, add = 0.0, terms[0], "+"
    for k in range(1, len(terms) + 1):
        if k < len(terms) and ops[k] in "*/":
            if ops[k] == "*":
                prod *= terms[k]
            elif terms[k] == 0:
                return None
            else:
                prod /= terms[k]
            continue
        total = total + prod if add == "+" else total - prod
        if k < len(terms):
            add, prod = ops[k], terms[k]
    return total


def match_side(t, i, first):
    """A side at i: the first one of a chain is NUM (OP NUM)+ (no sign), a later one
    RES (OP NUM)* (a sign; a bare number keeps RES's rules: trailing commas, a backslash)."""
    j = match_num(t, i, not first)
    if not j:
        return None
    starts, ends, ops = [i], [j], [None]
    while True:
        o, op = match_op(t, j)
        if not o:
            break
        e = match_num(t, o, False)
        if not e:
            break
        starts.append(o)
        ends.append(e)
        ops.append(op)
        j = e
    if first and len(starts) < 2:
        return None
    bare = len(starts) == 1
    terms = []
    lead_dec = 0
    for k, (a, b) in enumerate(zip(starts, ends)):
        v, d = num_value(t, a, b, bare)
        terms.append(v)
        if k == 0:
            lead_dec = d
    return Side(i, j, evaluate(terms, ops), len(starts) - 1, terms[0], lead_dec)


def skip_space(t, i):
    while i < len(t) and t[i] in SPACE:
        i += 1
    return i


def match_chain(t, i):
    """SIDE (= SIDE)+ at i, the first side with an operator: its sides, or None."""
    first = match_side(t, i, True)
    if first is None:
        return None
    sides = [first]
    while True:
        k = skip_space(t, sides[-1].end)
        if k >= len(t) or t[k] != "=":
            break
        side = match_side(t, skip_space(t, k + 1), False)
        if side is None:
            break
        sides.append(side)
    return sides if len(sides) >= 2 else None


DASHES = "\u2013\u2212"  # an en dash, a minus sign: operators this check does not evaluate


def is_alpha(c):
    return c.isascii() and c.isalpha()


def is_alnum(c):
    return c.isascii() and c.isalnum()


def bad_before(t, start):
    """The chain at t[start] is cut out of something longer (its first link is not checked):
    the text before it ends in an operator or a bracket, in '=' after a number (a chain; after
    a label such as "\\text{Total} =" it stands on its own), in a number or a number and a comma ("1 1/2", "100 000", "14, 400"),
    in "NUMBER and" ("1 and 1/4"), in x as a word ("60 minutes x 2/3"); or a point or a colon
    is right before it (".50", "6:00")."""
    k = skip_space(t, start)
    if k > 0 and t[k - 1] in ".:":
        return True
    before = t[:start].rstrip(SPACE)
    if not before or before.endswith(("\\(", "\\[", "\\{")):
        return False
    if before[-1] == "=":
        return before[:-1].rstrip(SPACE)[-1:] in tuple(DIGITS)
    if before[-1] in BEFORE_BAD or before[-1] in DIGITS or before[-1] in DASHES:
        return True
    if before[-1] == "," and before[-2:-1] in tuple(DIGITS):  # "14, 400"
        return True
    if before[-1] == "x" and not (len(before) >= 2 and is_alnum(before[-2])):
        return True
    if before.endswith(("\\times", "\\div", "\\cdot")):
        return True
    if before.endswith("and") and not (len(before) >= 4 and is_alnum(before[-4])):
        return before[:-3].rstrip(SPACE)[-1:] in tuple(DIGITS)
    return False


def bad_after(t, i):
    """The text after the chain's end i goes on with the expression (its last link is not
    checked): right after it a letter ("5A", "20cm") or a colon and a digit ("6:48"); then, on
    the same line (a line break ends it), a digit, % ( ^ / * × ÷ _ {, a point and a digit,
    \\times \\div \\cdot \\frac, an en dash or minus sign, a sign or x and a digit, a sign and a
    one-letter variable ("= 30 + M"), "and" and a digit or ( ("5 and 2/3"), or cents."""
    n = len(t)
    if i < n and is_alpha(t[i]):
        return True
    if i + 1 < n and t[i] == ":" and t[i + 1] in DIGITS:
        return True
    while i < n and t[i] in SPACE:
        if t[i] == "\n":
            return False
        i += 1
    if i >= n:
        return False
    if t[i] in DIGITS or t[i] in "%(^/*_{×÷" or t[i] in DASHES:
        return True
    if t[i] == "." and i + 1 < n and t[i + 1] in DIGITS:
        return True
    if t.startswith(("\\times", "\\div", "\\cdot", "\\frac"), i):
        return True
    if t[i] in "+-x":
        j = skip_space(t, i + 1)
        if j < n and t[j] in DIGITS:
            return True
        return t[i] != "x" and j < n and is_alpha(t[j]) and not (j + 1 < n and is_alnum(t[j + 1]))
    if t.startswith("and", i) and i + 3 < n and t[i + 3] in SPACE:
        j = skip_space(t, i + 3)
        return j < n and (t[j] in DIGITS or t[j] == "(")
    return t.startswith("cent", i)


def whole(v):
    return abs(v - round(v)) <= 1e-9 * max(1.0, abs(v))


def mismatch(v, c, dec):
    """c is not v: a whole number that is not the whole value (91 x 15 = 1355), or more than
    1% (and 1e-6) away and, when dec is not None, not v rounded to dec decimals (half to even,
    as C's nearbyint)."""
    if abs(v - c) <= 1e-6 * max(1.0, abs(v)):
        return False
    if whole(v) and whole(c):
        return True
    if abs(v - c) <= max(1e-6, 0.01 * abs(v)):
        return False
    if dec is None:
        return True
    scale = 10.0 ** dec
    return round(v * scale) / scale != c


def link_wrong(vl, r):
    """The verdict on L = R (vl: L's value): R a number: not vl (rounding allowed); R an
    expression: neither its value nor (a running chain: `2 + 3 = 5 + 1 = 6`) its first number."""
    if r.nops == 0:
        return mismatch(vl, r.value, r.lead_dec)
    return mismatch(vl, r.value, None) and mismatch(vl, r.lead, r.lead_dec)


def var_at(t, i):
    """A variable being set at i (`x =`, `\\text{Total} =`, not after a number or an operator):
    (name, where its value starts) or None."""
    n = len(t)
    cmd = next((c for c in TEXT_CMDS if t.startswith(c, i)), None)
    if cmd is not None:
        close = t.find("}", i + len(cmd))
        if close < 0 or "{" in t[i + len(cmd):close]:
            return None
        name = t[i + len(cmd):close].strip(SPACE)
        j = close + 1
    elif t[i].isascii() and t[i].isalpha() and not (i + 1 < n and t[i + 1].isascii() and t[i + 1].isalnum()) \
            and not (i > 0 and ((t[i - 1].isascii() and t[i - 1].isalnum()) or t[i - 1] in "\\_")):
        name, j = t[i], i + 1
    else:
        return None
    if not name:
        return None
    before = t[:i].rstrip(SPACE)
    if before and (before[-1] in DIGITS or before[-1] in "+-*/^_=)}|×÷"
                   or before.endswith(("\\times", "\\div", "\\cdot"))):
        return None
    j = skip_space(t, j)
    if j >= n or t[j] != "=" or (j + 1 < n and t[j + 1] == "="):
        return None
    return name, skip_space(t, j + 1)


def stands_alone(t, j):
    """What follows a variable's value ends it: the end, a point or comma (not before a digit),
    ; : $ \\] \\) or \\\\ (spaces and line breaks aside)."""
    j = skip_space(t, j)
    if j >= len(t):
        return True
    if t[j] in ".,;:":
        return not (j + 1 < len(t) and t[j + 1] in DIGITS)
    return t[j] == "$" or t.startswith(("\\]", "\\)", "\\\\"), j)


def equations(text):
    """The equations of a text that can be checked, left to right (a list of Eq):
    - every link L = R of a chain SIDE (= SIDE)+ whose first side is NUM (OP NUM)+ (units
      \\text{...} after a number dropped), where L or R has an operator and both evaluate; the
      first link not when the chain is cut out of a longer expression (bad_before), the last
      not when the expression goes on after it (AFTER_BAD);
    - a variable's value: `x = EXPR` (a single letter or a \\text{} name, standing alone) and
      later `x = NUMBER`: the number against EXPR's value (the nearest earlier definition)."""
    t = blank_units(text)
    out = []
    defs = {}
    i = 0
    while i < len(t):
        sides = match_chain(t, i)
        if sides is None:
            v = var_at(t, i)
            if v is not None:
                name, p = v
                side = match_side(t, p, True)
                r_end = match_num(t, p, True)
                if side is not None and stands_alone(t, side.end):
                    defs[name] = side.value
                elif r_end and stands_alone(t, r_end) and defs.get(name) is not None:
                    c, dec = num_value(t, p, r_end, True)
                    if c is not None:
                        out.append(Eq(i, r_end, p, r_end, defs[name], c, mismatch(defs[name], c, dec), True))
                elif not r_end or not stands_alone(t, r_end):
                    defs.pop(name, None)
            i += 1
            continue
        # finditer semantics: the chain is consumed even when the filters drop its links
        start = i
        i = sides[-1].end
        for k in range(len(sides) - 1):
            left, right = sides[k], sides[k + 1]
            if k == 0 and bad_before(t, start):
                continue
            if k == len(sides) - 2 and bad_after(t, right.end):
                continue
            if (left.nops == 0 and right.nops == 0) or left.value is None or right.value is None:
                continue
            a = skip_space(t, left.start)
            out.append(Eq(a, right.end, right.start, right.end, left.value, right.value,
                          link_wrong(left.value, right), right.nops == 0))
    return out


def is_wrong(v, res):
    c, dec = num_value(res, 0, len(res), True)
    return c is not None and mismatch(v, c, dec)


def decimals(s):
    s = re.sub(r"[\\$,\s]", "", s)
    return len(s.split(".")[1]) if "." in s else 0


def fmt(v, like):
    """v written as the result `like` was: its decimals (or 2 for a non-integer true value)
    and thousands commas when it had them."""
    d = decimals(like)
    if d == 0 and abs(v - round(v)) > 1e-9:
        d = 2
    s = f"{v:,.{d}f}" if "," in like else f"{v:.{d}f}"
    m = re.match(r"^(\\?\$?\s*)", like)
    return (m.group(1) if m else "") + s


def repair(text, passes=8):
    """The calculator of the pipeline (`salign align --calculator`, sa_arith_repair in
    src/pipeline/arith_check.c): the written result of each false equation whose right side is
    one number replaced by fmt(true value), left to right, pass after pass (a fixed result can make
    a later step that used it false) until none is left, at most `passes`. (text, results rewritten)."""
    n = 0
    for _ in range(passes):
        parts, last, fixed = [], 0, 0
        for e in equations(text):
            if not (e.wrong and e.bare) or e.rs < last:
                continue
            end = e.re
            while end > e.rs and text[end - 1] == ",":  # "= 38, so": the comma is the sentence's
                end -= 1
            v = fmt(e.value, text[e.rs:end])
            if v == text[e.rs:end]:
                continue
            parts += [text[last:e.rs], v]
            last, fixed = end, fixed + 1
        if not fixed:
            break
        text = "".join(parts) + text[last:]
        n += fixed
    return text, n


def perturb(res, rng):
    """A plausible wrong result: off by a small amount, by a power of ten, or digits swapped."""
    c = num_value(res, 0, len(res), True)[0]
    d = decimals(res)
    kind = rng.choice(["add", "add", "scale", "swap"])
    if kind == "swap":
        digits = re.sub(r"\D", "", f"{c:.{d}f}")
        if len(digits) >= 2 and len(set(digits)) > 1:
            i = rng.randrange(len(digits) - 1)
            sw = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2:]
            w = int(sw) / 10**d
            if w != c:
                return fmt(w, res)
        kind = "add"
    if kind == "scale" and c != 0:
        w = c * rng.choice([10, 0.1]) if d else c * 10
        if w != c and (d or abs(w - round(w)) < 1e-9):
            return fmt(w, res)
    step = 10 ** -d if d else max(1, round(abs(c) * rng.choice([0.05, 0.1, 0.2]))) if abs(c) >= 20 else 1
    w = c + rng.choice([-1, 1]) * step * rng.choice([1, 1, 2, 10])
    if w < 0:
        w = c + step
    return fmt(w, res)


def load_traces(paths):
    drafts = {}
    for p in paths:
        with open(p) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a cut last line
                # `salign data continue` keys its trace by "record" and marks the rounds it was given
                d = drafts.setdefault(r["id"] if "id" in r else r["record"],
                                      {"question": r["question"], "rounds": {}, "forced": set()})
                d["rounds"][r["round"]] = (r["y1"], r["text"])
                if r.get("forced"):
                    d["forced"].add(r["round"])
    return drafts


def finished_ids(paths):
    """The ids answered in these runs' answer files (a cut last line skipped), or None when no
    file is given: a trace of a run still going holds a partial answer."""
    finished = None
    for p in paths:
        finished = finished or set()
        with open(p) as f:
            for line in f:
                try:
                    finished.add(json.loads(line)["id"])
                except (json.JSONDecodeError, KeyError):
                    pass
    return finished


def false_alarms(gsm8k, records, show):
    """The equations found false in texts known to be right: GSM8K *train* reference solutions
    (their <<a*b=c>> calculator annotations stripped) and the corrections of the records
    (copies and calculator fixes). Prints each one with its line and the counts; returns them."""
    texts = []
    with open(gsm8k) as f:
        for line in f:
            texts.append(("gsm8k-train", re.sub(r"<<[^>]*>>", "", json.loads(line)["answer"])))
    for p in records:
        with open(p) as f:
            for line in f:
                texts.append(("records", json.loads(line)["correction"]))
    n = {}
    for src, t in texts:
        k = n.setdefault(src, {"texts": 0, "equations": 0, "false": 0})
        k["texts"] += 1
        for e in equations(t):
            k["equations"] += 1
            if e.wrong:
                k["false"] += 1
                if show:
                    a, b = t.rfind("\n", 0, e.start) + 1, t.find("\n", e.end)
                    print("%s\t%s\t(value %g)\t%s" % (src, t[e.start:e.end], e.value, t[a:b if b >= 0 else len(t)]))
    print(json.dumps(n))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--false-alarms", nargs="+", metavar=("GSM8K_TRAIN", "RECORDS"),
                    help="instead of building records: list the equations found false in true texts "
                    "(GSM8K train solutions, the corrections of record files) and count them")
    ap.add_argument("--trace", action="append")
    ap.add_argument("--out")
    ap.add_argument("--synth", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plain-copies", type=float, default=1.0,
                    help="share of the copy records of sentences without an equation to keep")
    ap.add_argument("--answers", action="append", default=[],
                    help="the runs' answer files: only finished questions are used (a trace of a run "
                    "still going holds a partial answer)")
    ap.add_argument("--ids", default=None, help="only these question ids: FROM-TO (inclusive)")
    ap.add_argument("--stats", action="store_true")
    a = ap.parse_args()
    if a.false_alarms:
        false_alarms(a.false_alarms[0], a.false_alarms[1:], True)
        return
    if not a.trace or not a.out:
        ap.error("--trace and --out are required")
    rng = random.Random(a.seed)
    drafts = load_traces(a.trace)
    n = {"questions": 0, "with_error": 0, "copy": 0, "fix": 0, "synth": 0, "equations": 0}
    with open(a.out, "w") as out:
        lo, hi = map(int, a.ids.split("-")) if a.ids else (-1, 1 << 62)
        finished = finished_ids(a.answers)
        for qid in sorted(drafts):
            if not lo <= qid <= hi or (finished is not None and qid not in finished):
                continue
            d = drafts[qid]
            rounds = [d["rounds"][k] for k in sorted(d["rounds"])]
            n["questions"] += 1
            prefix = ""
            for k, (y1, text) in enumerate(rounds, 1):
                eqs = equations(y1)
                n["equations"] += len(eqs)
                wrong = [e for e in eqs if e.wrong]
                base = {"question": d["question"], "prefix": prefix, "last": y1, "id": qid, "round": k}
                if wrong:
                    # the first error; a wrong link whose right side is an expression
                    # (`2 + 2 = 3 + 2`) has no one-number correction: no record
                    if all(e.bare for e in wrong):
                        fixed = y1
                        for e in reversed(wrong):  # right to left: offsets stay valid
                            fixed = fixed[:e.rs] + fmt(e.value, y1[e.rs:e.re]) + fixed[e.re:]
                        out.write(json.dumps({**base, "correction": fixed, "kind": "fix", "source": "arith:fix"}) + "\n")
                        n["fix"] += 1
                    n["with_error"] += 1
                    break
                if eqs or rng.random() < a.plain_copies:
                    out.write(json.dumps({**base, "correction": y1, "kind": "copy", "source": "arith:copy"}) + "\n")
                    n["copy"] += 1
                bare = [e for e in eqs if e.bare]
                if bare and a.synth > 0 and rng.random() < a.synth:
                    e = rng.choice(bare)
                    bad = y1[:e.rs] + perturb(y1[e.rs:e.re], rng) + y1[e.re:]
                    if bad != y1:
                        out.write(json.dumps({**base, "last": bad, "correction": y1, "kind": "fix",
                                              "source": "arith:synth"}) + "\n")
                        n["synth"] += 1
                prefix += text
    if a.stats:
        print(json.dumps(n), file=sys.stderr)


if __name__ == "__main__":
    main()
