#!/usr/bin/env python3
"""bench/judge_threshold.py: choosing the edit judge's threshold on dev questions (issue 13).

Input: a workdir of bench/gsm8k_check_result.sh whose pipeline ran with
`--edit-judge M --edit-judge-threshold=-inf` (every kept edit judged, none refused: its answers
are those without a judge, and each edit's trace line has `judge_margin`), scored (its
X_stream_scored and X_alone_scored details exist: STEPS="... score").

For each threshold T it prints which questions a run at T would change: those whose first edit
with judge_margin < T comes before any other difference (the judge refuses it, so the answer
goes on from y1 and differs from there on). Every other question's answer at T is the -inf
run's byte for byte (batch-invariant decoding; the judge scores the same texts). For the
questions it changes, their outcome now (gained, lost, right both ways, wrong both ways) says
what is at stake: a good T touches the lost questions and spares the gained ones. The changed
edits are listed with their judge margin, the aligner's margin and the sentences.

With --seed T --out DIR, DIR is made ready for the run at T: the -inf run's answers and trace
lines of the questions T does not change, and its upstream-alone files, so that
bench/gsm8k_check_result.sh DIR (EDIT_JUDGE_THRESHOLD=T) generates only the changed questions
(`salign align --output` resumes by id).

  python3 bench/judge_threshold.py WORKDIR [--prefix dev] [--thresholds=-4,-2,0,2] [--seed=T --out DIR]
"""
import argparse
import json
import os
import shutil


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def outcomes(w, prefix):
    """id -> (alone correct, stream correct), from the score step's files."""
    res = {}
    for arm in ("alone", "stream"):
        answers = jsonl(os.path.join(w, "%s_%s_scored.jsonl" % (prefix, arm)))
        det = jsonl(os.path.join(w, "%s_%s_scored.details.jsonl" % (prefix, arm)))
        for d in det:
            res.setdefault(answers[d["index"]]["id"], {})[arm] = bool(d["correct"])
    return {i: (v.get("alone"), v.get("stream")) for i, v in res.items() if len(v) == 2}


def kind(o):
    a, s = o
    return {(False, True): "gained", (True, False): "lost", (True, True): "right", (False, False): "wrong"}[(a, s)]


def judged_edits(trace):
    """id -> its judged edits in round order: (round, judge margin, aligner margin, y1, y2)."""
    out = {}
    for t in sorted(trace, key=lambda t: (str(t["id"]), t["round"])):
        if "judge_margin" in t:
            y2 = t.get("proposed") if t.get("refused_by") == "judge" else t["y2"]
            out.setdefault(t["id"], []).append((t["round"], t["judge_margin"], t.get("margin"), t["y1"], y2))
    return out


def changed_at(edits, thr):
    """id -> the first edit the judge would refuse at thr (the answer differs from there)."""
    return {i: next(e for e in es if e[1] < thr) for i, es in edits.items() if any(e[1] < thr for e in es)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir")
    ap.add_argument("--prefix", default="dev", help="dev or test: the files X_stream.jsonl, ...")
    ap.add_argument("--thresholds", default="-8,-4,-2,-1,0,1,2")
    ap.add_argument("--seed", type=float, help="prepare --out for the run at this threshold")
    ap.add_argument("--out")
    a = ap.parse_args()
    if (a.seed is None) != (a.out is None):
        ap.error("--seed T and --out DIR go together")
    w, p = a.workdir, a.prefix
    trace = jsonl(os.path.join(w, p + "_stream.trace.jsonl"))
    if any(t.get("refused_by") == "judge" for t in trace):
        raise SystemExit("%s: the judge refused edits in this run: give the run at --edit-judge-threshold=-inf" % w)
    edits = judged_edits(trace)
    if not edits:
        raise SystemExit("%s: no judge_margin in the trace: run with --edit-judge M --edit-judge-threshold=-inf" % w)
    oc = outcomes(w, p)
    n = len(oc)
    print("%s: %d questions scored, %d judged edits in %d questions" % (
        w, n, sum(len(e) for e in edits.values()), len(edits)))
    print("| threshold | edits refused | questions changed | of them gained | lost | right both | wrong both |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for thr in [float(x) for x in a.thresholds.split(",")]:
        ch = changed_at(edits, thr)
        ks = [kind(oc[i]) for i in ch if i in oc]
        refused = sum(1 for es in edits.values() for e in es if e[1] < thr)
        print("| %g | %d | %d | %d | %d | %d | %d |" % (thr, refused, len(ch), ks.count("gained"), ks.count("lost"),
                                                       ks.count("right"), ks.count("wrong")))
    print("\nevery judged edit (id, round, outcome of its question, judge margin, aligner margin):")
    for i in sorted(edits, key=lambda x: (len(str(x)), str(x))):
        for (r, jm, am, y1, y2) in edits[i]:
            print("  %-6s r%-3d %-7s judge %+8.2f aligner %s" % (i, r, kind(oc[i]) if i in oc else "?", jm,
                                                                "%+.2f" % am if am is not None else "-"))
            print("      y1: %s" % y1.replace("\n", "\\n")[:160])
            print("      y2: %s" % y2.replace("\n", "\\n")[:160])
    if a.out:
        ch = changed_at(edits, a.seed)
        os.makedirs(a.out, exist_ok=True)
        for name in (p + "_alone.jsonl", p + "_alone.trace.jsonl", p + "_q.jsonl"):
            if os.path.exists(os.path.join(w, name)):
                shutil.copy(os.path.join(w, name), os.path.join(a.out, name))
        kept = 0
        for name in (p + "_stream.jsonl", p + "_stream.trace.jsonl"):
            with open(os.path.join(w, name)) as f:  # the lines as they were written, byte for byte
                rows = [line for line in f if line.strip() and json.loads(line)["id"] not in ch]
            with open(os.path.join(a.out, name), "w") as f:
                f.writelines(rows)
            if name.endswith("_stream.jsonl"):
                kept = len(rows)
        print("\n%s: seeded with %d answers of questions the threshold %g does not change; %d to generate: %s" % (
            a.out, kept, a.seed, len(ch), sorted(ch, key=lambda x: (len(str(x)), str(x)))))


if __name__ == "__main__":
    main()
