#!/usr/bin/env python3
"""bench/mix_records.py: one training set from record files (a dev tool of
bench/gsm8k_gold_step_result.sh): every non-copy record, the copies sampled down to SHARE of the
set (or all of them with SHARE "all"), shuffled with seed 1; prints the count by source.

  python3 bench/mix_records.py OUT SHARE|all FILE [FILE ...]
"""
import json
import random
import sys


def main():
    out, share, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    rng = random.Random(1)
    recs = [json.loads(line) for p in files for line in open(p) if line.strip()]
    fixes = [r for r in recs if r["kind"] != "copy"]
    copies = [r for r in recs if r["kind"] == "copy"]
    if share == "all":
        chosen = fixes + copies
    else:
        n_copy = min(len(copies), int(round(len(fixes) * float(share) / (1 - float(share)))))
        chosen = fixes + rng.sample(copies, n_copy)
    rng.shuffle(chosen)
    with open(out, "w") as f:
        for r in chosen:
            f.write(json.dumps(r) + "\n")
    kinds = {}
    for r in chosen:
        kinds[r["source"]] = kinds.get(r["source"], 0) + 1
    print(json.dumps({"records": len(chosen), "by_source": kinds}), file=sys.stderr)


if __name__ == "__main__":
    main()
