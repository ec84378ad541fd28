"""gsm8k_summary.py: the numbers docs/RESULTS.md quotes, from the outputs of
bench/gsm8k_result.sh (WORKDIR): per-configuration accuracy (from `salign eval math --details`
files), the questions each aligner turned from wrong to right and from right to wrong
(paired against the upstream alone, with an exact two-sided sign test), the aligners' edit
statistics and latency from the traces and answer files.

usage: python3 bench/gsm8k_summary.py WORKDIR"""
import json
import math
import os
import statistics
import sys


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def details(w, name):
    """key -> correct (bool) from `salign eval math --details` lines."""
    out = {}
    for r in jsonl(os.path.join(w, name + ".details.jsonl")):
        out[str(r.get("key", r.get("index", r.get("id"))))] = bool(r["correct"])
    return out


def sign_test(a, b):
    """Exact two-sided binomial test of a successes against b failures, p = 0.5."""
    n = a + b
    if n == 0:
        return 1.0
    k = min(a, b)
    p = sum(math.comb(n, i) for i in range(0, k + 1)) / 2 ** n
    return min(1.0, 2 * p)


def main():
    w = sys.argv[1]
    base = details(w, "upstream")
    print("| configuration | correct | accuracy |")
    print("|---|--:|--:|")
    for name in ("upstream", "stream", "aligner"):
        path = os.path.join(w, name + ".details.jsonl")
        if not os.path.exists(path):
            continue
        d = details(w, name)
        print("| %s | %d / %d | %.1f%% |" % (name, sum(d.values()), len(d), 100.0 * sum(d.values()) / len(d)))
    for name in ("stream", "aligner"):
        path = os.path.join(w, name + ".details.jsonl")
        if not os.path.exists(path):
            continue
        d = details(w, name)
        keys = [k for k in d if k in base]
        fixed = sum(1 for k in keys if d[k] and not base[k])
        broke = sum(1 for k in keys if base[k] and not d[k])
        print("%s vs upstream on %d questions: wrong->right %d, right->wrong %d, sign test p = %.3g"
              % (name, len(keys), fixed, broke, sign_test(fixed, broke)))
    tr = os.path.join(w, "stream.trace.jsonl")
    if os.path.exists(tr):
        t = [x for x in jsonl(tr) if x.get("aligned", True)]
        n = len(t)
        copied = sum(1 for x in t if x["copied"])
        edits = [x["edit_ratio"] for x in t if not x["copied"]]
        print("stream rounds: %d, copied %d (%.1f%%), edited %d (median edit ratio %.2f)"
              % (n, copied, 100.0 * copied / max(n, 1), len(edits), statistics.median(edits) if edits else 0))
        up = sum(x["upstream_ms"] for x in t) / 1000
        al = sum(x["aligner_ms"] for x in t) / 1000
        print("stream time: upstream %.0f s, aligner %.0f s (aligner share %.1f%%)" % (up, al, 100 * al / max(up + al, 1e-9)))
    for name in ("upstream", "stream", "aligner"):
        path = os.path.join(w, name + ".jsonl")
        if not os.path.exists(path):
            continue
        a = jsonl(path)
        ms = [x["total_ms"] for x in a]
        tok = [x["tokens"] for x in a]
        print("%s: %d answers, mean %.1f s per question, mean %.0f tokens, stops: %s" % (
            name, len(a), statistics.mean(ms) / 1000, statistics.mean(tok),
            dict(sorted({s: sum(1 for x in a if x["stop"] == s) for s in set(x["stop"] for x in a)}.items()))))


if __name__ == "__main__":
    main()
