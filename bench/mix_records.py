#!/usr/bin/env python3
"""bench/mix_records.py: one training set from record files (a dev tool of
bench/gsm8k_gold_step_result.sh): every non-copy record, the copies sampled down to SHARE of the
set (or all of them with SHARE "all"), shuffled with seed 1; prints the count by source.

  python3 bench/mix_records.py [--fixes N] [--copies N] [--sources S,S] OUT SHARE|all FILE [FILE ...]

--sources keeps only the fixes whose "source" is listed (copies are kept whatever their source);
--fixes N and --copies N sample N of each (seed 1) instead of taking them all, to size a set
for a training budget; with them SHARE is ignored.
"""
import json
import random
import sys


def main():
    args = sys.argv[1:]
    opts = {}
    while args and args[0].startswith("--"):
        if len(args) < 2:
            sys.exit("mix_records.py: %s needs a value" % args[0])
        opts[args[0]] = args[1]
        args = args[2:]
    if len(args) < 3 or set(opts) - {"--fixes", "--copies", "--sources"}:
        sys.exit(__doc__)
    out, share, files = args[0], args[1], args[2:]
    rng = random.Random(1)
    recs = [json.loads(line) for p in files for line in open(p) if line.strip()]
    fixes = [r for r in recs if r["kind"] != "copy"]
    copies = [r for r in recs if r["kind"] == "copy"]
    if "--sources" in opts:
        keep = set(opts["--sources"].split(","))
        fixes = [r for r in fixes if r["source"] in keep]
    if "--fixes" in opts or "--copies" in opts:
        n_fix = min(len(fixes), int(opts.get("--fixes", len(fixes))))
        n_copy = min(len(copies), int(opts.get("--copies", len(copies))))
        chosen = rng.sample(fixes, n_fix) + rng.sample(copies, n_copy)
    elif share == "all":
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
