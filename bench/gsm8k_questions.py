#!/usr/bin/env python3
"""bench/gsm8k_questions.py: the questions file the GSM8K scripts feed `salign align --input`:
one {"id": line index, "question", "answer"} per chosen line of a GSM8K JSONL file, written
whole or not at all (a temporary file, renamed).

  python3 bench/gsm8k_questions.py SRC OUT --lines A-B       lines A..B (inclusive)
  python3 bench/gsm8k_questions.py SRC OUT --fix-ids RECORDS  the ids of RECORDS' real fixes
                                                              (source "arith:fix")"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--lines", help="A-B: lines A..B, inclusive (0-based)")
    g.add_argument("--fix-ids", metavar="RECORDS", help="the question ids of these records' real fixes")
    a = ap.parse_args()
    if a.lines:
        lo, hi = map(int, a.lines.split("-"))
        want = lambda i: lo <= i <= hi  # noqa: E731
    else:
        with open(a.fix_ids) as f:
            ids = {r["id"] for r in map(json.loads, f) if r.get("source") == "arith:fix"}
        want = ids.__contains__
    with open(a.src) as f, open(a.out + ".tmp", "w") as o:
        for i, line in enumerate(f):
            if want(i):
                r = json.loads(line)
                o.write(json.dumps({"id": i, "question": r["question"], "answer": r["answer"]}) + "\n")
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
