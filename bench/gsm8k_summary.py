"""gsm8k_summary.py: the numbers docs/RESULTS.md quotes, from the outputs of
bench/gsm8k_result.sh (WORKDIR): per-configuration accuracy (from `salign eval math --details`
files), the questions each aligner turned from wrong to right and from right to wrong
(paired against the upstream alone, with an exact two-sided sign test), the aligners' edit
statistics and latency from the traces and answer files.

usage: python3 bench/gsm8k_summary.py WORKDIR"""
import json
import math
import re
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


NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def norm_text(s):
    """Text with typographic quotes made plain and whitespace collapsed."""
    for a, b in (("\u2019", "'"), ("\u2018", "'"), ("\u201c", '"'), ("\u201d", '"')):
        s = s.replace(a, b)
    return " ".join(s.split())


def edit_kind(y1, y2):
    """What an aligner edit did to the upstream's sentence y1: 'cosmetic' (the same after
    norm_text), 'cut' (y2 is a shorter prefix of y1: the rest dropped), 'numbers' (the numbers
    differ), else 'reworded'."""
    a, b = norm_text(y1), norm_text(y2)
    if a == b:
        return "cosmetic"
    if len(b) < len(a) and a.startswith(b):
        return "cut"
    nums = lambda t: sorted(x.replace(",", "") for x in NUM.findall(t))
    if nums(a) != nums(b):
        return "numbers"
    return "reworded"


def edit_summary(w, base, stream):
    """Edit kinds over the stream rounds, and per question group (wrong->right, right->wrong,
    unchanged) how many questions had an edit of each kind and how many hit the length limit."""
    rounds = [x for x in jsonl(os.path.join(w, "stream.trace.jsonl")) if x.get("aligned", True) and not x["copied"]]
    kinds = {}
    per_q = {}
    for x in rounds:
        k = edit_kind(x["y1"], x["y2"])
        kinds[k] = kinds.get(k, 0) + 1
        per_q.setdefault(str(x["id"]), set()).add(k)
    print("stream edits by kind: " + ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
    stops = {str(x["id"]): x["stop"] for x in jsonl(os.path.join(w, "stream.jsonl"))}
    groups = {"wrong->right": [], "right->wrong": [], "right both": [], "wrong both": []}
    for k, ok in stream.items():
        if k not in base:
            continue
        g = ("right both" if ok else "right->wrong") if base[k] else ("wrong->right" if ok else "wrong both")
        groups[g].append(k)
    print("| questions | n | had a 'numbers' edit | had a 'cut' | stream hit the length limit |")
    print("|---|--:|--:|--:|--:|")
    for g, ks in groups.items():
        print("| %s | %d | %d | %d | %d |" % (g, len(ks), sum("numbers" in per_q.get(k, ()) for k in ks),
                                             sum("cut" in per_q.get(k, ()) for k in ks),
                                             sum(stops.get(k) == "max_length" for k in ks)))


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
        if os.path.exists(os.path.join(w, "stream.details.jsonl")) and os.path.exists(os.path.join(w, "stream.jsonl")):
            edit_summary(w, base, details(w, "stream"))
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
