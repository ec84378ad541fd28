#!/usr/bin/env python3
"""bench/arith_records.py: aligner records from the upstream's own sentences, labelled by a
calculator (a dev tool for the issue-13 experiment; docs/RESULTS.md says how it was used).

Input: draft traces of `salign align --mode upstream --trace` (one line per sentence: id,
round, y1 = the sentence as written, text = what was appended to the answer), so that the
records look exactly like what the aligner sees at inference (prefix = the texts of the
sentences before, last = the sentence as written).

Each sentence is checked for written arithmetic `a op b [op c ...] = r` (op: + - * / x,
\\times, \\div, \\cdot, with optional $ signs and thousands commas). A sentence whose result
is wrong (off by more than 1% and not a rounding of the true value) is the question's first
error; its correction is the same sentence with the result replaced by the true value,
written as the original was (decimals kept, commas kept). Records:
  - copy:  every sentence before the first error (and every sentence of a draft with none);
  - fix:   the first erroneous sentence -> its calculator correction;
  - synth (only with --synth P): with probability P, a copy record whose sentence has a
    correct equation also yields a record with the result perturbed (last) -> the original
    (correction): more examples of the one skill, from the upstream's own sentences.
Sentences after the first error are not used (their prefix carries the wrong number).
No model is run; the drafts are the only input.

  python3 bench/arith_records.py --trace T.jsonl [--trace T2.jsonl] --out R.jsonl
      [--answers A.jsonl ...] [--synth 0.3] [--plain-copies 1] [--ids FROM-TO] [--seed 1] [--stats]
"""
import argparse
import json
import random
import re
import sys

NUM = r"\\?\$?\s*\d[\d,]*(?:\.\d+)?"
OP = r"\s*(?:\\times|\\div|\\cdot|×|÷|\*|/|\+|-|x)\s*"
EQ = re.compile(r"(?P<expr>" + NUM + r"(?:" + OP + NUM + r")+)\s*=\s*(?P<res>\\?\$?\s*-?\d[\d,]*(?:\.\d+)?)")
BEFORE_BAD = set("()^{}/*+-×÷_=")
AFTER_BAD = re.compile(r"^\s*(?:[\d%(^/*×÷_{]|\.\d|\\(?:times|div|cdot|frac)|[+-]\s*\d|x\s*\d)")


def num_value(s):
    return float(re.sub(r"[\\$,\s]", "", s))


def eval_expr(expr):
    e = expr.replace("\\times", "*").replace("\\div", "/").replace("\\cdot", "*")
    e = e.replace("×", "*").replace("÷", "/")
    e = re.sub(r"\\?\$", "", e).replace(",", "")
    e = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", e)
    if not re.fullmatch(r"[\d.\s+\-*/]+", e):
        return None
    try:
        # digits and + - * / only (checked above), on one line (eval refuses a leading line break)
        return float(eval(" ".join(e.split()), {"__builtins__": {}}))
    except (ZeroDivisionError, SyntaxError):
        return None


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


def equations(sentence):
    """(match, true value) for each well-delimited equation of the sentence."""
    out = []
    for m in EQ.finditer(sentence):
        before = sentence[: m.start()].rstrip()
        latex_open = before.endswith(("\\(", "\\[", "\\{"))
        if before and not latex_open and (before[-1] in BEFORE_BAD or before.endswith(("\\times", "\\div", "\\cdot"))):
            # '=' ends a chain ("2 + 3 = 5 + 1 = 6") only after a number; after a label
            # ("\\text{Total} = 5 \\times 3 = 15") the equation stands on its own
            if not (before[-1] == "=" and not before[:-1].rstrip()[-1:].isdigit()):
                continue
        if AFTER_BAD.match(sentence[m.end():]):
            continue
        v = eval_expr(m.group("expr"))
        if v is None:
            continue
        out.append((m, v))
    return out


def is_wrong(v, res):
    c = num_value(res)
    if abs(v - c) <= max(1e-6, 0.01 * abs(v)):
        return False
    return round(v, decimals(res)) != c


def perturb(res, rng):
    """A plausible wrong result: off by a small amount, by a power of ten, or digits swapped."""
    c = num_value(res)
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
                d = drafts.setdefault(r["id"], {"question": r["question"], "rounds": {}})
                d["rounds"][r["round"]] = (r["y1"], r["text"])
    return drafts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", action="append", required=True)
    ap.add_argument("--out", required=True)
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
    rng = random.Random(a.seed)
    drafts = load_traces(a.trace)
    n = {"questions": 0, "with_error": 0, "copy": 0, "fix": 0, "synth": 0, "equations": 0}
    with open(a.out, "w") as out:
        lo, hi = map(int, a.ids.split("-")) if a.ids else (-1, 1 << 62)
        finished = None
        for p in a.answers:
            finished = finished or set()
            with open(p) as f:
                for line in f:
                    try:
                        finished.add(json.loads(line)["id"])
                    except (json.JSONDecodeError, KeyError):
                        pass
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
                wrong = [(m, v) for m, v in eqs if is_wrong(v, m.group("res"))]
                base = {"question": d["question"], "prefix": prefix, "last": y1, "id": qid, "round": k}
                if wrong:
                    fixed = y1
                    for m, v in reversed(wrong):  # right to left: offsets stay valid
                        s, e = m.span("res")
                        fixed = fixed[:s] + fmt(v, m.group("res")) + fixed[e:]
                    out.write(json.dumps({**base, "correction": fixed, "kind": "fix", "source": "arith:fix"}) + "\n")
                    n["fix"] += 1
                    n["with_error"] += 1
                    break
                if eqs or rng.random() < a.plain_copies:
                    out.write(json.dumps({**base, "correction": y1, "kind": "copy", "source": "arith:copy"}) + "\n")
                    n["copy"] += 1
                if eqs and a.synth > 0 and rng.random() < a.synth:
                    m, v = rng.choice(eqs)
                    s, e = m.span("res")
                    bad = y1[:s] + perturb(m.group("res"), rng) + y1[e:]
                    if bad != y1:
                        out.write(json.dumps({**base, "last": bad, "correction": y1, "kind": "fix",
                                              "source": "arith:synth"}) + "\n")
                        n["synth"] += 1
                prefix += text
    if a.stats:
        print(json.dumps(n), file=sys.stderr)


if __name__ == "__main__":
    main()
