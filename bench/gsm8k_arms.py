"""gsm8k_arms.py: several runs of bench/gsm8k_check_result.sh (one WORKDIR per ARM, e.g. the
aligner and the calculator on the same test lines) side by side, on the questions every run
answered and generated alone: accuracy of each run's upstream alone and pipeline, the paired
sign test of each pipeline against its own upstream alone, and whether the runs' upstream-alone
answers are the same text (they are when the binaries' kernels give the same bits).
Reads the scored files the summary step wrote (X_stream_scored*.jsonl, X_alone_scored*.jsonl).

usage: python3 bench/gsm8k_arms.py NAME=WORKDIR [NAME=WORKDIR ...] [--split test]"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gsm8k_check_summary import jsonl, sign_test, wilson  # noqa: E402


def scored(w, name):
    """id -> (answer, correct) from the files score() wrote."""
    ans = jsonl(os.path.join(w, name + ".jsonl"))
    det = jsonl(os.path.join(w, name + ".details.jsonl"))
    return {ans[d["index"]]["id"]: (ans[d["index"]]["answer"], bool(d["correct"])) for d in det}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", metavar="NAME=WORKDIR")
    ap.add_argument("--split", default="test")
    a = ap.parse_args()
    runs = []
    for r in a.runs:
        name, w = r.split("=", 1)
        runs.append((name, scored(w, a.split + "_alone_scored"), scored(w, a.split + "_stream_scored")))
    ids = sorted(set.intersection(*[set(al) & set(st) for _, al, st in runs]))
    n = len(ids)
    print("%d questions answered by every run (ids %s-%s)" % (n, ids[0] if ids else "-", ids[-1] if ids else "-"))
    print("| run | upstream alone | pipeline | wrong->right / right->wrong | sign test p |")
    print("|---|--:|--:|---|--:|")
    for name, al, st in runs:
        ka, ks = sum(al[i][1] for i in ids), sum(st[i][1] for i in ids)
        g = [i for i in ids if st[i][1] and not al[i][1]]
        l_ = [i for i in ids if al[i][1] and not st[i][1]]
        lo, hi = wilson(ks, n)
        print("| %s | %d / %d | %d / %d (%.1f%%, [%.1f, %.1f]) | %d %s / %d %s | %.3g |"
              % (name, ka, n, ks, n, 100.0 * ks / max(n, 1), 100 * lo, 100 * hi, len(g), g, len(l_), l_,
                 sign_test(len(g), len(l_))))
    base = runs[0][1]
    for name, al, _ in runs[1:]:
        same = sum(1 for i in ids if al[i][0] == base[i][0])
        print("upstream alone of %s = of %s: %d of %d answers byte-identical" % (name, runs[0][0], same, n))


if __name__ == "__main__":
    sys.exit(main())
