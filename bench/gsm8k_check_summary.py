"""gsm8k_check_summary.py: the numbers docs/RESULTS.md ("The edit check") quotes, from the
outputs of bench/gsm8k_check_result.sh (WORKDIR).

For DEV (train ids) and TEST (test ids) alike: the pipeline's answers (X_stream.jsonl, its
trace) against the upstream alone (X_alone.jsonl), on the questions answered both ways (the
others are counted as still to generate alone). An answer without a kept edit is the upstream's
own only in batch-invariant mode, which the exactness check below measures on the questions
without an edit.
Both arms are scored by `salign eval math` (the same extraction as every other result), paired
per question, with an exact two-sided sign test on the discordant pairs, and the edits listed.

usage: python3 bench/gsm8k_check_summary.py WORKDIR [--salign build/salign] [--arm NAME]"""
import argparse
import json
import math
import os
import subprocess
import sys


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sign_test(a, b):
    """Exact two-sided binomial test of a successes against b failures, p = 0.5."""
    n = a + b
    if n == 0:
        return 1.0
    k = min(a, b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(0, k + 1)) / 2 ** n)


def wilson(k, n, z=1.959964):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def score(salign, gold, answers, w, name):
    """id -> correct, by `salign eval math` over `answers` (a list of {id, answer})."""
    path = os.path.join(w, name + ".jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps({"id": a["id"], "answer": a["answer"]}) + "\n" for a in answers)
    det = os.path.join(w, name + ".details.jsonl")
    subprocess.run([salign, "eval", "math", "--data", "gsm8k", "--gold", gold, "--answers", path, "--details", det,
                    "--json"], check=True, capture_output=True, text=True)
    # a details line names its question by `index`, its line in the gold file (matched by id):
    # not the line of the answers file, which may skip questions (N_VERIFY)
    ids = [r["id"] for r in jsonl(gold)]
    return {ids[r["index"]]: bool(r["correct"]) for r in jsonl(det)}


def kept_edits(trace):
    """id -> the rounds whose emitted sentence is not y1: an edit kept (aligned, not a copy, not
    refused, not gated), or a result the calculator rewrote (`repaired`, --calculator)."""
    out = {}
    for t in trace:
        edit = t.get("aligned") and not t.get("copied") and not t.get("refused") and not t.get("gated")
        if edit or t.get("repaired"):
            out.setdefault(t["id"], []).append(t)
    return out


def report(w, salign, split, gold, arm):
    stream = {r["id"]: r for r in jsonl(os.path.join(w, split + "_stream.jsonl"))}
    trace = jsonl(os.path.join(w, split + "_stream.trace.jsonl"))
    alone_run = {r["id"]: r for r in jsonl(os.path.join(w, split + "_alone.jsonl"))}
    edits = kept_edits(trace)
    refused = [t for t in trace if t.get("refused")]
    asked = {r["id"] for r in jsonl(gold)}  # the run may have answered past the current N_TEST
    ids = sorted(i for i in stream if i in asked)
    # the exactness check: questions generated both ways without a kept edit
    both = [i for i in ids if i in alone_run and i not in edits]
    same = [i for i in both if alone_run[i]["answer"] == stream[i]["answer"]]
    alone = []
    missing = []
    for i in ids:  # only answers generated alone count: unedited is not the upstream's own outside
        if i in alone_run:  # batch-invariant mode (docs/RESULTS.md "The edit check")
            alone.append(alone_run[i])
        else:
            missing.append(i)
    ids = [i for i in ids if i not in missing]
    keep = set(ids)  # rounds and edits of the paired questions only
    trace = [t for t in trace if t["id"] in keep]
    edits = {i: e for i, e in edits.items() if i in keep}
    refused = [t for t in refused if t["id"] in keep]
    s = score(salign, gold, [stream[i] for i in ids], w, split + "_stream_scored")
    a = score(salign, gold, [x for x in alone if x["id"] in set(ids)], w, split + "_alone_scored")
    n = len(ids)
    ka, ks = sum(a[i] for i in ids), sum(s[i] for i in ids)
    gained = [i for i in ids if s[i] and not a[i]]
    lost = [i for i in ids if a[i] and not s[i]]
    print("## %s: %d questions (%d with a kept edit; %d still to generate alone)" % (split, n, len(edits), len(missing)))
    if any(t.get("aligned") for t in trace):
        print("exactness check: %d of %d questions generated both ways without a kept edit are byte-identical"
              % (len(same), len(both)))
    else:  # --mode upstream with another upstream (a LoRA baseline): no pipeline, nothing to check
        print("exactness check: not applicable (no aligner round: the arm is another upstream)")
    print("| configuration | correct | accuracy | 95% CI |")
    print("|---|--:|--:|---|")
    for name, k in (("upstream alone", ka), ("+ " + arm, ks)):
        lo, hi = wilson(k, n)
        print("| %s | %d / %d | %.1f%% | [%.1f, %.1f] |" % (name, k, n, 100.0 * k / max(n, 1), 100 * lo, 100 * hi))
    print("wrong->right %d %s, right->wrong %d %s, sign test p = %.3g" % (len(gained), gained, len(lost), lost,
                                                                         sign_test(len(gained), len(lost))))
    n_rounds = sum(1 for t in trace if t.get("aligned"))
    n_copied = sum(1 for t in trace if t.get("copied"))
    n_repaired = sum(1 for t in trace if t.get("repaired"))
    by_check = {}  # "refused_by" (traces before it have none)
    for t in refused:
        if "refused_by" in t:
            by_check[t["refused_by"]] = by_check.get(t["refused_by"], 0) + 1
    by = " (%s)" % ", ".join("%s %d" % kv for kv in sorted(by_check.items())) if by_check else ""
    print("rounds %d, copied %d, refused %d%s, changed sentences %d in %d questions (%d rewritten by the calculator)"
          % (n_rounds, n_copied, len(refused), by, sum(len(v) for v in edits.values()), len(edits), n_repaired))
    for i in sorted(edits):
        tag = "gained" if i in gained else "lost" if i in lost else "same"
        for t in edits[i]:
            edit = not t.get("copied") and not t.get("refused") and not t.get("gated")
            how = ("kept+calc" if edit else "calc") if t.get("repaired") else "kept"
            print("  %s  id %s (%s): %r -> %r" % (how, i, tag, t["y1"][-160:], t["y2"][-160:]))
    for t in refused:
        by = " by %s" % t["refused_by"] if "refused_by" in t else ""
        print("  refused id %s%s: %r -> %r" % (t["id"], by, t["y1"][-120:], t.get("proposed", "")[-120:]))
    return {"arm": arm, "n": n, "alone": ka, "stream": ks, "gained": gained, "lost": lost, "edited": sorted(edits),
            "repaired_rounds": n_repaired,
            "exact_same": len(same), "exact_both": len(both), "missing": missing}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--salign", default="build/salign")
    ap.add_argument("--arm", default="aligner, edit check all", help="what the stream run was (for the table)")
    a = ap.parse_args()
    out = {}
    for split, gold in (("dev", "dev_q.jsonl"), ("test", "test_q.jsonl")):
        if os.path.exists(os.path.join(a.workdir, split + "_stream.jsonl")):
            out[split] = report(a.workdir, a.salign, split, os.path.join(a.workdir, gold), a.arm)
    with open(os.path.join(a.workdir, "summary.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
