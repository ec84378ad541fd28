#!/usr/bin/env bash
# bench/gsm8k_edit_check_arms.sh: two --edit-check settings of the shipped aligner, paired, on
# GSM8K test lines [TEST_FROM, N_TEST) (docs/RESULTS.md "Session 14": `all,cut` against `all`).
#   1. arm A (CHECK_A, default all,cut) in WORKDIR/a: the pipeline, the upstream alone on every
#      question, scored (bench/gsm8k_check_result.sh, steps test upstream score);
#   2. arm B (CHECK_B, default all) in WORKDIR/b, seeded with arm A's answers and trace lines of
#      every question where no edit was refused: with one binary and --batch-invariant the two
#      arms write the same answer up to the first edit that only one of them refuses, and a
#      question without a refused edit has none. B's pipeline then answers the rest (resume by
#      id), and shares A's upstream alone. CHECK_B must refuse no more than CHECK_A (a subset).
# Resumable and growable like gsm8k_check_result.sh: rerun with a larger N_TEST.
#   bench/gsm8k_edit_check_arms.sh [WORKDIR]      (default runs/edit_check_arms)
# Knobs: CHECK_A (all,cut), CHECK_B (all), TEST_FROM (500), N_TEST (540), and those of
# bench/gsm8k_check_result.sh (SALIGN, ADAPTER, PARALLEL, THREADS; BATCH_INVARIANT is forced on).
set -eu
cd "$(dirname "$0")/.."
PY=${SA_PYTHON:-python3}
W=${1:-runs/edit_check_arms}
export BATCH_INVARIANT=1 TEST_FROM=${TEST_FROM:-500} N_TEST=${N_TEST:-540} N_VERIFY=1000000000 ARM=aligner
CHECK_A=${CHECK_A:-all,cut}
CHECK_B=${CHECK_B:-all}
mkdir -p "$W/a" "$W/b"
EDIT_CHECK=$CHECK_A STEPS="test upstream" bench/gsm8k_check_result.sh "$W/a"
EDIT_CHECK=$CHECK_A STEPS="score" bench/gsm8k_check_result.sh "$W/a" > "$W/a/score.log" 2>&1
"$PY" - "$W/a" "$W/b" <<'PY'
import json, os, sys
a, b = sys.argv[1], sys.argv[2]
def rows(p):
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
refused = {t["id"] for t in rows(os.path.join(a, "test_stream.trace.jsonl")) if t.get("refused")}
for name in ("test_stream.jsonl", "test_stream.trace.jsonl", "test_alone.jsonl", "test_alone.trace.jsonl"):
    have = {r["id"] for r in rows(os.path.join(b, name))}
    with open(os.path.join(b, name), "a") as o:
        for line in open(os.path.join(a, name)):
            if not line.endswith("\n") or not line.strip():
                continue  # a line cut by a crash: the pipeline drops it on resume
            i = json.loads(line)["id"]
            if i in have or (name.startswith("test_stream") and i in refused):
                continue
            o.write(line)
PY
EDIT_CHECK=$CHECK_B STEPS="test upstream" bench/gsm8k_check_result.sh "$W/b"
EDIT_CHECK=$CHECK_B STEPS="score" bench/gsm8k_check_result.sh "$W/b" > "$W/b/score.log" 2>&1
grep -v '^\[' "$W/a/score.log" | head -8
grep -v '^\[' "$W/b/score.log" | head -8
