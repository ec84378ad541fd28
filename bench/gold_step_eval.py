#!/usr/bin/env python3
"""bench/gold_step_eval.py: how an aligner does on gold-step records (bench/gold_step_records.py),
from `salign eval aligner --details` over them (issue 13, session 16; a dev tool).

For the copy records (sentences before the first error, sentences of right drafts): the share
kept unchanged. For the fix records (the first sentence off the reference solution's path):
the share the aligner changed, and of those, the share whose revision is on the path (has an
equation, and every equation's value is on the gold path with a true result: the rule of
bench/gsm8k_gold_path.py) and the share that computes the reference's next step's result.

  python3 bench/gold_step_eval.py --records R.jsonl --details D.jsonl [--gold train.jsonl]
      [--thresholds -inf,0,2] [--show]

An edit refused by `--edit-check` counts as a copy; with --thresholds (the details must come from
`salign eval aligner --edit-threshold`, which writes each edit's margin) the counts are given
again for each threshold, an edit scored below it counting as a copy (the gate).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arith_records import equations  # noqa: E402
from gsm8k_gold_path import TRAIN_GOLD, gold_path  # noqa: E402


def count(recs, det, gold, threshold, show):
    n = {"copy": 0, "kept": 0, "fix": 0, "changed": 0, "on_path": 0, "next_value": 0}
    for i, r in enumerate(recs):
        d = det.get(i)
        if d is None:
            continue
        y2 = d["revision"]
        if d.get("refused") or (threshold is not None and d.get("margin", float("inf")) < threshold):
            y2 = r["last"]
        if r["kind"] == "copy":
            n["copy"] += 1
            n["kept"] += y2 == r["last"]
            continue
        n["fix"] += 1
        if y2 == r["last"]:
            continue
        n["changed"] += 1
        g = gold[r["id"]]
        path = gold_path(g["question"], g["answer"])
        eqs = [e for e in equations(y2) if e.value is not None]
        on = bool(eqs) and all(not e.wrong and round(e.value, 6) in path for e in eqs)
        # the next step's results: the values of the correction's equations
        want = {round(e.value, 6) for e in equations(r["correction"]) if e.value is not None}
        hit = bool(want & {round(e.value, 6) for e in eqs})
        n["on_path"] += on
        n["next_value"] += hit
        if show:
            print("id %d round %d%s%s\n  y1: %s\n  y2: %s\n  gold: %s" % (
                r["id"], r["round"], " ON-PATH" if on else "", " NEXT" if hit else "",
                r["last"].replace("\n", "\\n"), y2.replace("\n", "\\n"), r["correction"]))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", required=True)
    ap.add_argument("--details", required=True)
    ap.add_argument("--gold", default=TRAIN_GOLD)
    ap.add_argument("--thresholds", default="", help="comma list of gate thresholds (nats)")
    ap.add_argument("--show", action="store_true")
    a = ap.parse_args()
    with open(a.gold) as f:
        gold = [json.loads(line) for line in f]
    with open(a.records) as f:
        recs = [json.loads(line) for line in f]
    with open(a.details) as f:
        det = {d["index"]: d for d in map(json.loads, f)}
    for t in [None] + [float(x) for x in a.thresholds.split(",") if x]:
        n = count(recs, det, gold, t, a.show and t is None)
        print(json.dumps(n) if t is None else json.dumps({"threshold": t, **n}))
        print("%scopies kept %d/%d; first errors changed %d/%d, on the path %d, with the next step's value %d" % (
            "" if t is None else "threshold %g: " % t, n["kept"], n["copy"], n["changed"], n["fix"], n["on_path"],
            n["next_value"]))


if __name__ == "__main__":
    main()
