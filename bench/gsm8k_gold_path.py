#!/usr/bin/env python3
"""bench/gsm8k_gold_path.py: a probe for a cheaper first-error label (issue 13, not built into
`salign data rollout`): does the first step of a wrong draft that leaves the reference
solution's path show in its equations?

GSM8K's reference solutions write every intermediate result as <<expr=v>>. The gold path of a
question is those values, the final answer and the numbers of the question. A sentence of a
draft is *off the path* when one of its equations (bench/arith_records.py's `equations()`, the
`arith` check's finder) computes a value (the true value of its left side) that is on none of
them, or that writes a false result for it (the `arith` check's verdict: "48 / 2 = 16" leaves
the path though 24 is on it). The first such sentence is a candidate first error, found with no rollout at all; this
probe counts how often one is found in wrong drafts and, as a false-alarm rate, in right ones
(a right draft may take another valid route), and compares it with rollout labels
(`salign data rollout`'s FILE.done lines) where given.

  bench/gsm8k_gold_path.py --trace DRAFTS.trace.jsonl --details EVAL_DETAILS.jsonl
      [--gold train.jsonl] [--rollout-done FILE.done] [--show]

DRAFTS: `salign align --mode upstream --trace` over GSM8K train questions (ids = line numbers
of --gold); EVAL_DETAILS: `salign eval math --details` over their answers (which is right).
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arith_records import equations, load_traces  # noqa: E402

TRAIN_GOLD = os.path.join(os.environ.get("SA_SHARED_DATA", "../shared/data"), "gsm8k", "train.jsonl")
NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")


def numbers(s):
    out = set()
    for m in NUM.findall(s):
        try:
            out.add(round(float(m.replace(",", "")), 6))
        except ValueError:
            pass
    return out


def gold_path(question, answer):
    """The values a reference solution passes through: its <<expr=v>> results, its final
    answer, and the question's own numbers."""
    vals = set()
    for m in re.finditer(r"<<[^>]*=([^>]*)>>", answer):
        vals |= numbers(m.group(1))
    vals |= numbers(answer.split("####")[-1])
    return vals | numbers(question)


def first_off_equation(y1, path):
    """The first equation of a sentence whose value is off the path or whose result is false, or None."""
    for e in equations(y1):
        if e.value is not None and (e.wrong or round(e.value, 6) not in path):
            return e
    return None


def first_off_path(rounds, path):
    """(round, sentence, value) of the first sentence with an equation whose value is off the
    path, or None."""
    for k in sorted(rounds):
        y1 = rounds[k][0]
        e = first_off_equation(y1, path)
        if e is not None:
            return k, y1, e.value
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trace", required=True)
    ap.add_argument("--details", required=True)
    ap.add_argument("--gold", default=TRAIN_GOLD)
    ap.add_argument("--rollout-done", help="salign data rollout's FILE.done over the same drafts")
    ap.add_argument("--show", action="store_true", help="one line per draft")
    a = ap.parse_args()
    with open(a.gold) as f:
        gold = [json.loads(line) for line in f]
    right = {}
    with open(a.details) as f:
        for line in f:
            r = json.loads(line)
            right[r["index"]] = r["correct"]
    rollout = {}
    if a.rollout_done:
        with open(a.rollout_done) as f:
            for line in f:
                r = json.loads(line)
                rollout[r["id"]] = r
    drafts = load_traces([a.trace])
    count = {True: [0, 0], False: [0, 0]}
    agree = []
    for qid in sorted(drafts):
        if qid not in right:
            continue
        g = gold[qid]
        off = first_off_path(drafts[qid]["rounds"], gold_path(g["question"], g["answer"]))
        ok = right[qid]
        count[ok][0] += 1
        count[ok][1] += off is not None
        r = rollout.get(qid)
        if r and r["outcome"] in ("fixed", "no_alternative"):
            agree.append((qid, r["first_error"], off[0] if off else None))
        if a.show:
            n = len(drafts[qid]["rounds"])
            where = ("off the path at sentence %d/%d (computes %g): %s" %
                     (off[0], n, off[2], off[1][:140].replace("\n", " ")) if off else "on the path (%d sentences)" % n)
            print("%4d %-5s %s" % (qid, "right" if ok else "wrong", where))
    for ok in (False, True):
        n, f = count[ok]
        print("%s drafts: %d; with a sentence off the gold path: %d (%.0f%%)" %
              ("wrong" if not ok else "right", n, f, 100.0 * f / n if n else 0))
    if agree:
        same = sum(1 for _, h, k in agree if h == k)
        print("rollout first errors: %d; the gold path's first off-path sentence is the same sentence in %d" %
              (len(agree), same))
        for qid, h, k in agree:
            print("  id %d: rollout sentence %d, gold path %s" % (qid, h, k if k else "none"))


if __name__ == "__main__":
    main()
