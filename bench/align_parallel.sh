#!/usr/bin/env bash
# bench/align_parallel.sh: `salign align --parallel N` against --parallel 1 on the same
# GSM8K test questions, greedy and batch-invariant: questions per hour of each, the ratio, and
# whether every answer is the same (issue 12's target: >= 3x at N = 8 on 40 questions, the
# same answers on all 40). Upstream Qwen2.5-Coder-0.5B-Instruct Q4_K_M, aligner SmolLM2-135M
# (the stand-in the pipeline benchmarks use; any aligner: ALIGNER=...).
#   bench/align_parallel.sh
#   env: N_Q=40 PARALLEL=8 THREADS=2 MAX_LENGTH=256 UPSTREAM=qwen2.5-coder-0.5b-instruct
#        ALIGNER=smollm2-135m-instruct BUILD=build OUT=$BUILD/bench-align-parallel
# Resumable: each run appends to its own output (a rerun continues a stopped run; delete OUT
# to start over); the timings are those of the runs that finished in one go (total_ms sums
# are not used: the wall time of each run is).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N_Q=${N_Q:-40}
PARALLEL=${PARALLEL:-8}
THREADS=${THREADS:-2}
MAX_LENGTH=${MAX_LENGTH:-256}
UPSTREAM=${UPSTREAM:-qwen2.5-coder-0.5b-instruct}
ALIGNER=${ALIGNER:-smollm2-135m-instruct}
OUT=${OUT:-$BUILD/bench-align-parallel}
DATA=${SA_SHARED_DATA:-../shared/data}
SALIGN=$BUILD/salign
mkdir -p "$OUT"
[ -x "$SALIGN" ] || { echo "build $SALIGN first" >&2; exit 1; }
Q=$OUT/questions.jsonl
head -n "$N_Q" "$DATA/gsm8k/test.jsonl" |
  python3 -c 'import sys, json
for i, l in enumerate(sys.stdin): print(json.dumps({"id": i, "question": json.loads(l)["question"]}))' >"$Q"

run() { # $1: parallel
  local out=$OUT/p$1.jsonl t0 t1
  t0=$(date +%s.%N)
  "$SALIGN" align --upstream "$UPSTREAM" --aligner "$ALIGNER" --input "$Q" --output "$out" \
    --max-length "$MAX_LENGTH" --batch-invariant -t "$THREADS" --parallel "$1" -v 2>"$OUT/p$1.log" || {
    echo "run --parallel $1 failed: see $OUT/p$1.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$1 $(python3 -c "print($t1 - $t0)")" >>"$OUT/times.txt"
}
: >"$OUT/times.txt"
rm -f "$OUT/p1.jsonl" "$OUT/p$PARALLEL.jsonl"
run 1
run "$PARALLEL"
python3 - "$OUT" "$PARALLEL" "$N_Q" <<'EOF'
import json, sys
out, par, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = dict(l.split() for l in open(out + "/times.txt"))
a = {r["id"]: r for r in map(json.loads, open(out + "/p1.jsonl"))}
b = {r["id"]: r for r in map(json.loads, open(out + "/p%s.jsonl" % par))}
same = sum(1 for k in a if k in b and a[k].get("answer") == b[k].get("answer"))
q1, qn = 3600 * n / float(t["1"]), 3600 * n / float(t[par])
print("questions: %d; --parallel 1: %.0f s (%.1f q/h); --parallel %s: %.0f s (%.1f q/h); ratio %.2fx; "
      "same answers: %d of %d" % (n, float(t["1"]), q1, par, float(t[par]), qn, qn / q1, same, len(a)))
EOF
grep -h "decode calls" "$OUT/p$PARALLEL.log" | tail -1
