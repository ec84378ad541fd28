#!/usr/bin/env python3
"""bench/whole_answer_records.py: the Aligner baseline's training records (whole answers,
`{question, answer, correction}`) made from the same data as a Stream Aligner's sentence
records (issues 13 and 15: "the Aligner baseline trained on the same data").

Input: the sentence records (bench/arith_records.py: copy, fix, synth; each with its question
id and round), the upstream's drafts of those questions (`salign align --mode upstream
--trace`: the answers and one trace line per sentence) and, for the questions with a real fix,
the answers of the calculator pipeline (`salign align --copy-aligner --calculator`: the draft up
to the first false result, that result rewritten, and the upstream's own continuation from the
corrected prefix, its later false results rewritten too). Per question of the records:
  - no fix record:  copy,  the draft -> itself;
  - a fix record:   fix,   the draft -> the calculator pipeline's answer (the corrected
                    sentence followed by the upstream's completion);
  - each synth record (sentence k's result perturbed): synth, the draft with sentence k
    replaced by the perturbed one -> the draft (the same corruption, the whole answer around it).
A question whose regenerated draft does not match its records (prefix and sentence, byte for
byte) is left out and counted: the drafts must be the ones the records were cut from. So is a
fix whose calculator answer does not start with the record's prefix and correction.
No model is run.

  python3 bench/whole_answer_records.py --records R.jsonl --drafts D.jsonl --trace D.trace.jsonl
      [--fixed C.jsonl] --out W.jsonl [--stats]
"""
import argparse
import json
import sys


def jsonl(path):
    out = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass  # a cut last line of a run still going
    return out


def load_drafts(answers, trace):
    """id -> (answer, [(y1, text)] by round) for the finished drafts (no error record)."""
    done = {r["id"]: r["answer"] for r in jsonl(answers) if "answer" in r and "error" not in r}
    rounds = {}
    for t in jsonl(trace):
        if t["id"] in done:
            rounds.setdefault(t["id"], {})[t["round"]] = (t["y1"], t["text"])
    return {i: (a, [rounds[i][k] for k in sorted(rounds.get(i, {}))]) for i, a in done.items()}


def build(records, drafts, fixed):
    """The whole-answer records and the counts. records: sentence records; drafts: id ->
    (answer, rounds); fixed: id -> the calculator pipeline's answer."""
    by_id = {}
    for r in records:
        by_id.setdefault(r["id"], []).append(r)
    out = []
    n = {"questions": 0, "copy": 0, "fix": 0, "synth": 0, "no_draft": 0, "draft_differs": 0,
         "fix_unmatched": 0}
    for qid in sorted(by_id):
        recs = by_id[qid]
        if qid not in drafts:
            n["no_draft"] += 1
            continue
        answer, rounds = drafts[qid]
        prefixes, p = [], ""
        for y1, text in rounds:
            prefixes.append(p)
            p += text

        def matches(r):
            k = r["round"] - 1
            if not 0 <= k < len(rounds) or prefixes[k] != r["prefix"]:
                return False
            y1, text = rounds[k]
            return (r["correction"] if r["source"] == "arith:synth" else r["last"]) == y1 and y1 in text

        def sep(k):  # what the answer has between sentence k's prefix and its y1 (a line break)
            y1, text = rounds[k]
            return text[:text.find(y1)]

        if p != answer or not all(matches(r) for r in recs):
            n["draft_differs"] += 1
            continue
        q = recs[0]["question"]
        fixes = [r for r in recs if r["source"] == "arith:fix"]
        if fixes:
            f = fixed.get(qid)
            head = fixes[0]["prefix"] + sep(fixes[0]["round"] - 1) + fixes[0]["correction"]
            if f is None or not f.startswith(head):
                n["fix_unmatched"] += 1
                continue
            out.append({"question": q, "answer": answer, "correction": f, "id": qid, "kind": "fix",
                        "source": "whole:fix"})
            n["fix"] += 1
        else:
            out.append({"question": q, "answer": answer, "correction": answer, "id": qid, "kind": "copy",
                        "source": "whole:copy"})
            n["copy"] += 1
        for r in recs:
            if r["source"] != "arith:synth":
                continue
            k = r["round"] - 1
            at = len(prefixes[k]) + len(sep(k))
            bad = answer[:at] + r["last"] + answer[at + len(rounds[k][0]):]
            out.append({"question": q, "answer": bad, "correction": answer, "id": qid, "round": r["round"],
                        "kind": "fix", "source": "whole:synth"})
            n["synth"] += 1
        n["questions"] += 1
    return out, n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", required=True, help="the sentence records (bench/arith_records.py)")
    ap.add_argument("--drafts", required=True, help="the drafts' answers (salign align --mode upstream --output)")
    ap.add_argument("--trace", required=True, help="the drafts' trace (--trace): one line per sentence")
    ap.add_argument("--fixed", help="the calculator pipeline's answers of the questions with a fix")
    ap.add_argument("--out", required=True)
    ap.add_argument("--stats", action="store_true")
    a = ap.parse_args()
    fixed = {r["id"]: r["answer"] for r in jsonl(a.fixed) if "answer" in r} if a.fixed else {}
    out, n = build(jsonl(a.records), load_drafts(a.drafts, a.trace), fixed)
    with open(a.out + ".tmp", "w") as f:
        for r in out:
            f.write(json.dumps(r) + "\n")
    import os
    os.replace(a.out + ".tmp", a.out)
    if a.stats:
        print(json.dumps(n), file=sys.stderr)


if __name__ == "__main__":
    main()
