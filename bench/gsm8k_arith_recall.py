"""gsm8k_arith_recall.py: how much of the upstream's error is arithmetic the calculator can see,
and what the aligner did with it, in a run of bench/gsm8k_check_result.sh (WORKDIR):
- the upstream-alone answers (X_alone.jsonl, scored in X_alone_scored.details.jsonl) that write
  a false equation (bench/arith_records.py `equations()`, the `arith` check's rules), wrong and
  right ones;
- the pipeline's rounds whose y1 writes one (X_stream.trace.jsonl): copied as they were, the
  edit refused by the check, an edit kept that leaves no false equation (fixed) or leaves one.
usage: python3 bench/gsm8k_arith_recall.py WORKDIR [--ids FROM-TO] [--split test]"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arith_records import equations  # noqa: E402
from gsm8k_check_summary import jsonl  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--ids", default="0-999999")
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.ids.split("-"))
    w, sp = a.workdir, a.split
    alone = jsonl(os.path.join(w, sp + "_alone_scored.jsonl"))
    det = jsonl(os.path.join(w, sp + "_alone_scored.details.jsonl"))
    ok = {alone[d["index"]]["id"]: d["correct"] for d in det}
    n = wrong = wrong_eq = right_eq = 0
    for r in alone:
        if not lo <= r["id"] <= hi or r["id"] not in ok:
            continue
        n += 1
        wrong += not ok[r["id"]]
        if any(e.wrong for e in equations(r["answer"])):
            if ok[r["id"]]:
                right_eq += 1
            else:
                wrong_eq += 1
    print("upstream alone: %d answers, %d wrong; %d wrong and %d right ones write a false equation"
          % (n, wrong, wrong_eq, right_eq))
    kinds = {}
    for t in jsonl(os.path.join(w, sp + "_stream.trace.jsonl")):
        if not lo <= t["id"] <= hi or t["id"] not in ok or not t.get("y1"):
            continue
        if not any(e.wrong for e in equations(t["y1"])):
            continue
        if t.get("copied"):
            k = "copied"
        elif t.get("refused"):
            k = "edit refused (y1 emitted)"
        elif t.get("gated"):
            k = "edit gated (y1 emitted)"
        else:
            k = "edit kept, " + ("no false equation left" if not any(e.wrong for e in equations(t["y2"]))
                                 else "a false equation left")
        kinds[k] = kinds.get(k, 0) + 1
    print("pipeline rounds whose y1 writes a false equation: %d" % sum(kinds.values()))
    for k in sorted(kinds):
        print("  %-40s %d" % (k, kinds[k]))


if __name__ == "__main__":
    sys.exit(main())
