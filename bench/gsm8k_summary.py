"""gsm8k_summary.py: the numbers docs/RESULTS.md quotes, from the outputs of
bench/gsm8k_result.sh (WORKDIR): per-configuration accuracy (from `salign eval math --details`
files), the questions each aligner turned from wrong to right and from right to wrong
(paired against the upstream alone, with an exact two-sided sign test), the aligners' edit
statistics and latency from the traces and answer files.

usage: python3 bench/gsm8k_summary.py WORKDIR [NAME...]"""
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


def edit_summary(w, base, stream, name="stream"):
    """Edit kinds over the rounds of run `name` (edits the gate replaced by the draft are not
    edits), and per question group (wrong->right, right->wrong, unchanged) how many questions
    had an edit of each kind and how many hit the length limit."""
    rounds = [x for x in jsonl(os.path.join(w, name + ".trace.jsonl"))
              if x.get("aligned", True) and not x["copied"] and not x.get("gated")]
    kinds = {}
    per_q = {}
    for x in rounds:
        k = edit_kind(x["y1"], x["y2"])
        kinds[k] = kinds.get(k, 0) + 1
        per_q.setdefault(str(x["id"]), set()).add(k)
    print("%s edits by kind: " % name + ", ".join("%s %d" % kv for kv in sorted(kinds.items())))
    stops = {str(x["id"]): x["stop"] for x in jsonl(os.path.join(w, name + ".jsonl"))}
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
    """usage: gsm8k_summary.py WORKDIR [NAME...]: NAME.details.jsonl, NAME.jsonl and
    NAME.trace.jsonl of each configuration (default: upstream stream aligner); the first is
    the baseline the others are paired against."""
    w = sys.argv[1]
    names = sys.argv[2:] or ["upstream", "stream", "aligner"]
    names = [n for n in names if os.path.exists(os.path.join(w, n + ".details.jsonl"))]
    if not names:
        sys.exit("no NAME.details.jsonl in " + w)
    base = details(w, names[0])
    print("| configuration | correct | accuracy |")
    print("|---|--:|--:|")
    for name in names:
        d = details(w, name)
        print("| %s | %d / %d | %.1f%% |" % (name, sum(d.values()), len(d), 100.0 * sum(d.values()) / len(d)))
    for name in names[1:]:
        d = details(w, name)
        keys = [k for k in d if k in base]
        fixed = sum(1 for k in keys if d[k] and not base[k])
        broke = sum(1 for k in keys if base[k] and not d[k])
        print("%s vs %s on %d questions: wrong->right %d, right->wrong %d, sign test p = %.3g"
              % (name, names[0], len(keys), fixed, broke, sign_test(fixed, broke)))
    for name in names[1:]:
        tr = os.path.join(w, name + ".trace.jsonl")
        if not os.path.exists(tr):
            continue
        t = [x for x in jsonl(tr) if x.get("aligned", True)]
        if not t:
            continue
        n = len(t)
        copied = sum(1 for x in t if x["copied"])
        gated = sum(1 for x in t if x.get("gated"))
        edits = [x["edit_ratio"] for x in t if not x["copied"] and not x.get("gated")]
        print("%s rounds: %d, copied %d (%.1f%%), gated %d, edited %d (median edit ratio %.2f)"
              % (name, n, copied, 100.0 * copied / max(n, 1), gated, len(edits),
                 statistics.median(edits) if edits else 0))
        up = sum(x["upstream_ms"] for x in t) / 1000
        al = sum(x["aligner_ms"] for x in t) / 1000
        print("%s time: upstream %.0f s, aligner %.0f s (aligner share %.1f%%)"
              % (name, up, al, 100 * al / max(up + al, 1e-9)))
        if os.path.exists(os.path.join(w, name + ".jsonl")):
            edit_summary(w, base, details(w, name), name)
    for name in names:
        path = os.path.join(w, name + ".jsonl")
        if not os.path.exists(path):
            continue
        a = jsonl(path)
        ms = [x["total_ms"] for x in a if "total_ms" in x]
        tok = [x["tokens"] for x in a if "tokens" in x]
        if not ms:
            continue
        print("%s: %d answers, mean %.1f s per question, mean %.0f tokens, stops: %s" % (
            name, len(a), statistics.mean(ms) / 1000, statistics.mean(tok),
            dict(sorted({s: sum(1 for x in a if x.get("stop") == s) for s in set(x.get("stop") for x in a)}.items()))))


if __name__ == "__main__":
    main()
