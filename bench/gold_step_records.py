#!/usr/bin/env python3
"""bench/gold_step_records.py: aligner records whose correction of a wrong plan step is the
reference solution's own next step (issue 13, session 16; a dev tool, like arith_records.py).

The first error of a draft is located by the gold path (bench/gsm8k_gold_path.py, the rule that
`salign data rollout --locate gold-path` runs in C): the first sentence with an equation whose
value is on none of the reference solution's <<expr=v>> results, its answer and the question's
numbers, or that writes a false result. Its correction is not sampled from the upstream (its
own alternatives rarely hold a right next step: RESULTS "Session 15") but taken from the
reference solution: the first solution line whose result is not yet among the numbers of the
prefix (the answer before the sentence) and of the question, with its calculator annotation
written as the upstream writes arithmetic (`12 x 2 = <<12*2=24>>24` -> `\\(12 \\times 2 = 24\\)`).
This leaves the upstream's distribution in the words (the lesson of the first RESULTS section);
the equation is the upstream's notation. Records, like arith_records.py's:
  - copy: every sentence before the first error, and every sentence of a right draft
    (--details says which drafts are right); a wrong draft with no sentence off the path
    gives no record at all (its error is not located);
  - fix (source gold:step): the first off-path sentence -> the reference's next step.
Sentences after the first error are not used.
With --style swap the correction keeps the sentence's own words and notation and replaces only
its first off-path equation by the reference's next calculation (`\\[4 + 8 + 27 = 49\\]` ->
`\\[4 + 8 + 27 + 6 = 45\\]`): a smaller edit of the upstream's own sentence, which an aligner decoding
greedily can learn to make (the line style's rewrites, each unlike its sentence, were learnt as
copies: RESULTS "Session 16").

With --after-fixes the traces are a pipeline's (an aligner's kept revisions in their text): an
error the aligner put back on the path does not end the answer, so the states after a
correction, where the upstream goes on from the corrected prefix, give records too: on-policy
data for the next aligner (session 17: the edit-weighted aligner fixed first errors on dev and
the answers stayed wrong at the next error, which no draft-made record shows). A right sentence
the aligner spoiled gives its copy record, then the answer ends.

With --final-check, a wrong answer whose equations never leave the path (which the rule above
cannot locate: it stops at an intermediate value, or states a number it never computed) is
located at its first sentence that states another final answer; the fix is the reference's next
line (source gold:final).

With --continuations ANSWERS the traces are `salign data continue`'s (teacher-forced
continuations: a correction record's fix forced in, the upstream going on from it), keyed by
record; ANSWERS is its --out file and --details `salign eval math --details` over it (one line per
answer, in its order). The forced rounds (the prefix, the fix) give no record; the upstream's
sentences after them are labelled as --after-fixes labels the sentences after a kept fix.

  python3 bench/gold_step_records.py --trace T.jsonl [--trace T2.jsonl] --details D.jsonl
      --out R.jsonl [--gold train.jsonl] [--answers A.jsonl] [--ids FROM-TO]
      [--style line|swap|swap-units] [--after-fixes | --continuations ANSWERS] [--final-check] [--plain-copies P] [--seed 1]
      [--stats] [--show]

D.jsonl: `salign eval math --details` over the drafts' answers (its "index" is the question id).
"""
import argparse
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arith_records import equations, finished_ids, load_traces  # noqa: E402
from gsm8k_gold_path import TRAIN_GOLD, first_off_equation, first_off_path, gold_path, numbers  # noqa: E402

ANNOT = re.compile(r"<<([^=<>]*)=([^<>]*)>>")
# a sentence that states the final answer: \boxed{N}, #### N, "the answer is N"
STATED = re.compile(r"\\boxed\{\s*\\?\$?\s*(-?[\d.,]*\d)|####\s*\$?\s*(-?[\d.,]*\d)|"
                    r"answer is:?\s*\\?\(?\s*\\?\$?\s*(-?[\d.,]*\d)", re.I)


def first_wrong_statement(rounds, gold_value):
    """(round, sentence, value) of the first sentence that states a final answer other than
    gold_value, or None: in an answer whose equations all stay on the reference's path, the error
    is where it stops (at an intermediate value, or at a number it never computed)."""
    for k in sorted(rounds):
        y1 = rounds[k][0]
        m = STATED.search(y1)
        if not m:
            continue
        try:
            v = float(next(x for x in m.groups() if x).replace(",", ""))
        except ValueError:
            continue
        if abs(v - gold_value) > 1e-6:
            return k, y1, v
    return None


def latex(expr, math=True):
    """A calculator expression `12*2+3/4` in the upstream's notation: `12 \\times 2 + 3 \\div 4`
    inside math delimiters, `12 * 2 + 3 / 4` in plain text (math=False)."""
    times, div = (" \\times ", " \\div ") if math else (" * ", " / ")
    out = []
    for c in expr.replace(" ", ""):
        if c == "*":
            out.append(times)
        elif c == "/":
            out.append(div)
        elif c in "+-":
            out.append(" %s " % c)
        else:
            out.append(c)
    return re.sub(r"\(\s+-\s+", "(-", "".join(out)).strip()


def in_math(text, i):
    """Whether position i of text is inside \\( \\) or \\[ \\] (the last opener before it is not closed)."""
    before = text[:i]
    opened = max(before.rfind("\\("), before.rfind("\\["))
    closed = max(before.rfind("\\)"), before.rfind("\\]"))
    return opened > closed


def written_start(before, expr):
    """Where the written left side of an annotation starts in the text before it: at the last
    occurrence of the expression's first number (with a `$` or `(` just before it), so that
    units between the operands go with it (`5 snakes/jaguar * 6 jaguars = `); None if absent."""
    first = re.match(r"\(*(\d*\.?\d+)", expr.replace(" ", ""))
    if not first:
        return None
    last = None
    for m in re.finditer(r"(?<![\d.])\(?\$?" + re.escape(first.group(1)) + r"(?![\d])", before):
        last = m
    if not last:
        return None
    start = last.start()
    # the first number may be written after others (`2*250 = <<250*2=500>>`): take them too
    while True:
        m = re.search(r"(?<![\w.])\$?\d*\.?\d+\s*[-+*/x×÷]\s*$", before[:start])
        if not m:
            return start
        start = m.start()


def render(line):
    """A reference solution line with each `written = <<expr=v>>v` as `\\(expr = v\\)`; None if
    an annotation is not of that form."""
    out, pos = [], 0
    for m in ANNOT.finditer(line):
        before = line[pos:m.start()]
        start = written_start(before, m.group(1))
        if start is None or "=" not in before[start:]:
            return None
        # the result written after the annotation (a number, maybe with a unit sign)
        after = re.match(r"\$?-?\d*\.?\d[\d,]*(?:\.\d+)?", line[m.end():])
        if not after:
            return None
        lead = before[:start].rstrip()
        out.append(lead + " " if lead else "")
        out.append("\\(%s = %s\\)" % (latex(m.group(1)), m.group(2).strip()))
        pos = m.end() + after.end()
    out.append(line[pos:])
    return "".join(out).strip()


def next_step(answer, known):
    """The first line of the reference solution whose annotated results are not all among the
    known numbers, rendered; None when every result is known or the line cannot be rendered."""
    for line in answer.split("####")[0].split("\n"):
        vals = set()
        for m in ANNOT.finditer(line):
            vals |= numbers(m.group(2))
        if vals and not vals <= known:
            return render(line)
    return None


def next_annotation(answer, known):
    """(expr, value) of the reference solution's first calculator annotation whose result is not
    among the known numbers, or None."""
    for m in ANNOT.finditer(answer.split("####")[0]):
        vals = numbers(m.group(2))
        if vals and not vals <= known:
            v = m.group(2).strip()
            try:
                f = float(v.replace(",", ""))
                v = str(int(f)) if f == int(f) else v
            except ValueError:
                pass
            return m.group(1), v
    return None


NUM = re.compile(r"(?<![\d.])\d*\.?\d+")
UNIT_AFTER = re.compile(r"\s*\\(?:text|mbox|mathrm)\{[^{}]*\}")


def operand_units(left):
    """(number, unit) for each number of an equation's left side, the unit being the
    \\text{...} written right after it or "" (`6 \\text{ tubs} \\times 3` -> [("6", " \\text{
    tubs}"), ("3", "")])."""
    out = []
    for n in NUM.finditer(left):
        m = UNIT_AFTER.match(left, n.end())
        out.append((n.group(0), m.group(0) if m else ""))
    return out


def swap(y1, e, expr, value, units=False):
    """y1 with the equation e replaced by `expr = value` in the upstream's notation; a unit
    written right after the old result (`= 50 \\text{ hours}`) goes with it. With `units`
    (--style swap-units), a number of the new expression that the old left side also has keeps
    the unit written after it there (each old number used once), and when every number of the
    new expression found its old one, the result keeps its unit too: `6 \\text{ tubs} \\times 3
    \\text{ people per tub} = 18 \\text{ people}` -> `6 \\text{ tubs} \\times 2 = 12` (2 is
    new), `4 \\text{ cats} + 3 \\text{ cats} = 8 \\text{ cats}` -> `4 \\text{ cats} + 3 \\text{
    cats} = 7 \\text{ cats}`. A unit is never moved to another number: the reference's
    operands do not come in the draft's order."""
    new = latex(expr, in_math(y1, e.start))
    rest = y1[e.end:]
    old = operand_units(y1[e.start:e.rs]) if units else []
    found = []

    def unit_of(m):
        for i, (num, u) in enumerate(old):
            if u and float(num) == float(m.group(0)):
                del old[i]
                found.append(True)
                return m.group(0) + u
        found.append(False)
        return m.group(0)

    if old:
        new = NUM.sub(unit_of, new)
    if not (found and all(found)):
        rest = re.sub(r"^\s*\\text\{[^{}]*\}", "", rest)
    return y1[:e.start] + "%s = %s" % (new, value) + rest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", action="append", required=True)
    ap.add_argument("--details", action="append", required=True, help="salign eval math --details of the drafts")
    ap.add_argument("--out", required=True)
    ap.add_argument("--gold", default=TRAIN_GOLD)
    ap.add_argument("--answers", action="append", default=[], help="only questions finished in these files")
    ap.add_argument("--ids", default=None, help="only these ids: FROM-TO (inclusive)")
    ap.add_argument("--plain-copies", type=float, default=1.0,
                    help="share of the copy records of sentences without an equation to keep")
    ap.add_argument("--style", choices=("line", "swap", "swap-units"), default="line",
                    help="line: the correction is the reference's next line, rendered (the default); swap: "
                    "the sentence itself with its first off-path equation replaced by the reference's next "
                    "calculation (the upstream's words kept); swap-units: swap keeping the unit of each "
                    "number the old equation also had (and the result's when all had one)")
    ap.add_argument("--after-fixes", action="store_true",
                    help="pipeline traces (salign align with an aligner): a located error whose kept revision "
                    "is back on the path does not end the answer's records; the sentences after it, written "
                    "by the upstream from the corrected prefix, give records too (their own first error "
                    "included); a kept revision of a sentence on the path gives none")
    ap.add_argument("--continuations", metavar="ANSWERS",
                    help="the traces are `salign data continue`'s and ANSWERS its --out (--details graded it): "
                    "the forced rounds give no record, the sentences after the forced fix are labelled as "
                    "--after-fixes labels those after a kept fix")
    ap.add_argument("--final-check", action="store_true",
                    help="a wrong answer whose equations never leave the path is located at its first sentence "
                    "that states another final answer (\\boxed{N}, #### N, 'the answer is N'); its fix is the "
                    "reference's next line, rendered (source gold:final), whatever --style")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats", action="store_true")
    ap.add_argument("--show", action="store_true", help="print each fix record: the sentence and its correction")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    with open(a.gold) as f:
        gold = [json.loads(line) for line in f]
    right = {}
    for p in a.details:
        with open(p) as f:
            for line in f:
                r = json.loads(line)
                right[r["index"]] = r["correct"]
    finished = finished_ids(a.answers)
    gold_of = None  # --continuations: a record's gold line, found by its question
    if a.continuations:
        if a.after_fixes or a.answers:
            ap.error("--continuations labels after the fix itself; it takes no --after-fixes nor --answers")
        a.after_fixes = True
        with open(a.continuations) as f:
            conts = [json.loads(line) for line in f if line.strip()]
        dets = [json.loads(line) for p in a.details for line in open(p) if line.strip()]
        if len(dets) != len(conts):
            ap.error("--details has %d lines, --continuations %d answers: grade that file with `salign eval math "
                     "--details`" % (len(dets), len(conts)))
        by_question = {}
        for i, g in enumerate(gold):
            by_question.setdefault(g["question"], i)
        gold_of, right, finished = {}, {}, set()
        for c, det in zip(conts, dets):
            if c["question"] not in by_question or by_question[c["question"]] != det["index"]:
                ap.error("record %s: its question is not line %s of --gold" % (c["record"], det["index"]))
            gold_of[c["record"]], right[c["record"]] = det["index"], det["correct"]
            finished.add(c["record"])
    lo, hi = map(int, a.ids.split("-")) if a.ids else (-1, 1 << 62)
    drafts = load_traces(a.trace)
    n = {"questions": 0, "right": 0, "located": 0, "on_path": 0, "no_step": 0, "copy": 0, "fix": 0}
    if a.final_check:
        n["final"] = 0
    if a.after_fixes:
        n.update(after_fix=0, revised=0, spoiled=0)
    with open(a.out, "w") as out:
        for qid in sorted(drafts):
            if qid not in right or (finished is not None and qid not in finished):
                continue
            gid = qid if gold_of is None else gold_of[qid]
            if not lo <= gid <= hi:
                continue
            d, g = drafts[qid], gold[gid]
            n["questions"] += 1
            rounds = d["rounds"]
            path = gold_path(g["question"], g["answer"])
            # the forced rounds of a continuation (its fix's y1 is the wrong sentence) are not the upstream's
            written = {k: v for k, v in rounds.items() if k not in d["forced"]}
            off = None if right[qid] else first_off_path(written, path)
            final = None  # --final-check: the first sentence stating a wrong final answer
            if not right[qid] and off is None and a.final_check:
                final = first_wrong_statement(written, float(g["answer"].split("####")[-1].strip().replace(",", "")))
            if right[qid]:
                n["right"] += 1
            elif off is None and final is None:
                n["on_path"] += 1
                continue
            prefix = ""
            fixed = False  # --after-fixes: an earlier error of this answer was put back on the path
            for k in sorted(rounds):
                y1, text = rounds[k]
                if k in d["forced"]:  # given, not written: the prefix, or the fix forced in
                    fixed = fixed or text.strip() != y1.strip()
                    prefix += text
                    continue
                base = {"question": d["question"], "prefix": prefix, "last": y1, "id": gid, "round": k}
                if gold_of is not None:
                    base["record"] = qid
                revised = a.after_fixes and text.strip() != y1.strip()
                at_off = bool(off) and k == off[0]
                e = first_off_equation(y1, path) if a.after_fixes or at_off else None
                at_final = bool(final) and k == final[0]
                located = at_final or (at_off if not a.after_fixes else e is not None and (not right[qid] or revised))
                if located:
                    n["located"] += 1
                    known = numbers(prefix) | numbers(g["question"])
                    if a.style == "line" or at_final:
                        step = next_step(g["answer"], known)
                    else:
                        nxt = next_annotation(g["answer"], known)
                        step = swap(y1, e, *nxt, units=a.style == "swap-units") if e and nxt else None
                    if step is None or step == y1:
                        n["no_step"] += 1
                    else:
                        source = "gold:final" if at_final else "gold:step"
                        out.write(json.dumps({**base, "correction": step, "kind": "fix", "source": source}) + "\n")
                        n["fix"] += 1
                        if at_final:
                            n["final"] += 1
                        if a.after_fixes:
                            n["after_fix"] += fixed
                        if a.show:
                            print("id %d round %d\n  y1: %s\n  ->: %s" % (qid, k, y1.replace("\n", "\\n"), step))
                    if revised and first_off_equation(text, path) is None:
                        fixed = True  # the aligner's revision is on the path: the upstream went on from it
                        prefix += text
                        continue
                    break
                spoiled = revised and first_off_equation(text, path) is not None
                if revised and not spoiled:
                    n["revised"] += 1  # a kept revision of a sentence on the path, still on it: no record
                    prefix += text
                    continue
                if spoiled or equations(y1) or rng.random() < a.plain_copies:
                    out.write(json.dumps({**base, "correction": y1, "kind": "copy", "source": "gold:copy"}) + "\n")
                    n["copy"] += 1
                if spoiled:
                    n["spoiled"] += 1  # the aligner made a right sentence wrong: its copy is the label, then stop
                    break
                prefix += text
    if a.stats:
        print(json.dumps(n), file=sys.stderr)


if __name__ == "__main__":
    main()
