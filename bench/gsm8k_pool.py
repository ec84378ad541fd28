"""gsm8k_pool.py: several arms of bench/gsm8k_check_result.sh, each pooled over run segments
(one WORKDIR or docs/results folder per segment: e.g. test lines 176-295 run with one binary,
296-499 with another), on the questions every arm answered both ways (pipeline and upstream
alone). Each pipeline answer is paired with its own segment's upstream alone, so a pair never
mixes binaries; the pooled sign test counts every segment's discordant pairs.
Both arms are scored by `salign eval math` (the summary's own score()); the scored files are
written under --scratch, never into the segments.

usage: python3 bench/gsm8k_pool.py NAME=DIR[,DIR...] [NAME=DIR[,DIR...] ...]
           [--salign build/salign] [--gold GSM8K test.jsonl] [--scratch DIR] [--json OUT]"""
import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gsm8k_check_summary import jsonl, score, sign_test, wilson  # noqa: E402


def load_arm(dirs):
    """id -> (segment, stream answer, alone answer) over the segments (a later one never
    overrides an earlier one: segments must not overlap, checked)."""
    out = {}
    for seg in dirs:
        st = {r["id"]: r for r in jsonl(os.path.join(seg, "test_stream.jsonl")) if "answer" in r}
        al = {r["id"]: r for r in jsonl(os.path.join(seg, "test_alone.jsonl")) if "answer" in r}
        for i in sorted(set(st) & set(al)):
            if i in out:
                sys.exit("question %d is in two segments (%s, %s)" % (i, out[i][0], seg))
            out[i] = (seg, st[i]["answer"], al[i]["answer"], st[i].get("total_ms"), al[i].get("total_ms"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arms", nargs="+", metavar="NAME=DIR[,DIR...]")
    ap.add_argument("--salign", default="build/salign")
    ap.add_argument("--gold", default=os.path.join(os.environ.get("SA_SHARED_DATA", "../shared/data"),
                                                   "gsm8k", "test.jsonl"))
    ap.add_argument("--scratch", default=None, help="where the scored files go (default: a temp dir)")
    ap.add_argument("--json", default=None, help="write the table as JSON here too")
    a = ap.parse_args()
    scratch = a.scratch or tempfile.mkdtemp(prefix="gsm8k_pool.")
    os.makedirs(scratch, exist_ok=True)
    arms = []
    for spec in a.arms:
        name, dirs = spec.split("=", 1)
        arms.append((name, dirs.split(","), load_arm(dirs.split(","))))
    ids = sorted(set.intersection(*[set(m) for _, _, m in arms]))
    if not ids:
        sys.exit("no question answered both ways by every arm")
    # gold by id (= line index of GSM8K test), as bench/gsm8k_check_result.sh writes test_q.jsonl
    gold = os.path.join(scratch, "gold.jsonl")
    want = set(ids)
    with open(a.gold) as f, open(gold, "w") as o:
        for i, line in enumerate(f):
            if i in want:
                r = json.loads(line)
                o.write(json.dumps({"id": i, "question": r["question"], "answer": r["answer"]}) + "\n")
    rows = []
    for name, dirs, m in arms:
        st = score(a.salign, gold, [{"id": i, "answer": m[i][1]} for i in ids], scratch, name + "_stream")
        al = score(a.salign, gold, [{"id": i, "answer": m[i][2]} for i in ids], scratch, name + "_alone")
        gained = [i for i in ids if st[i] and not al[i]]
        lost = [i for i in ids if al[i] and not st[i]]
        per_seg = []
        for seg in dirs:
            s_ids = [i for i in ids if m[i][0] == seg]
            if s_ids:
                per_seg.append({"segment": seg, "ids": "%d-%d" % (s_ids[0], s_ids[-1]), "n": len(s_ids),
                                "alone": sum(al[i] for i in s_ids), "stream": sum(st[i] for i in s_ids),
                                "gained": [i for i in s_ids if i in gained], "lost": [i for i in s_ids if i in lost]})
        rows.append({"arm": name, "n": len(ids), "alone": sum(al[i] for i in ids), "stream": sum(st[i] for i in ids),
                     "gained": gained, "lost": lost, "p": sign_test(len(gained), len(lost)), "segments": per_seg})
    n = len(ids)
    print("%d questions answered both ways by every arm (ids %d-%d)" % (n, ids[0], ids[-1]))
    print("| arm | upstream alone | pipeline | 95% CI | wrong->right / right->wrong | sign test p |")
    print("|---|--:|--:|---|---|--:|")
    for r in rows:
        lo, hi = wilson(r["stream"], n)
        print("| %s | %d / %d (%.1f%%) | %d / %d (%.1f%%) | [%.1f, %.1f] | %d / %d | %.3g |" % (
            r["arm"], r["alone"], n, 100 * r["alone"] / n, r["stream"], n, 100 * r["stream"] / n,
            100 * lo, 100 * hi, len(r["gained"]), len(r["lost"]), r["p"]))
    for (name, _, m), r in zip(arms, rows):
        # wall time of each question as its record reports it (under --parallel, while batched
        # with the others: compare arms run with the same --parallel and -t only)
        ts = [m[i][3] for i in ids if m[i][3] is not None]
        ta = [m[i][4] for i in ids if m[i][4] is not None]
        if ts and ta:
            r["stream_s"], r["alone_s"] = sum(ts) / len(ts) / 1000, sum(ta) / len(ta) / 1000
            print("%s: mean time per question %.1f s (upstream alone %.1f s, x%.2f)" % (
                name, r["stream_s"], r["alone_s"], r["stream_s"] / r["alone_s"]))
    for r in rows:
        print("%s: gained %s, lost %s" % (r["arm"], r["gained"], r["lost"]))
        for s in r["segments"]:
            print("  %s (ids %s, %d): alone %d, pipeline %d, gained %s, lost %s" % (
                s["segment"], s["ids"], s["n"], s["alone"], s["stream"], s["gained"], s["lost"]))
    # the arms' upstream-alone answers: the same text wherever the binaries give the same bits
    for k in range(1, len(arms)):
        same = sum(arms[0][2][i][2] == arms[k][2][i][2] for i in ids)
        print("upstream alone of %s = of %s: %d of %d answers byte-identical" % (arms[k][0], arms[0][0], same, n))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"ids": [ids[0], ids[-1]], "n": n, "arms": rows}, f, indent=1)


if __name__ == "__main__":
    main()
