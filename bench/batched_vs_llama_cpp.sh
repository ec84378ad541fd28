#!/usr/bin/env bash
# bench/batched_vs_llama_cpp.sh: batched decoding, our engine (`salign bench --batch`) against
# llama.cpp's own (bench/llama_cpp_batched.py: llama_batch with sequence ids, prefix copied with
# llama_memory_seq_cp) on the same GGUF file, in the same run. For each batch size B: one
# prompt of PP tokens prefilled once and forked to B sequences, then TG decode steps of B
# tokens; aggregate decode tok/s = B * TG / time of the decode steps (llama-batched-bench's
# S_TG). B = 1 is each engine's single-sequence decode. The two engines alternate per thread
# count for ROUNDS rounds (a load change on the shared machine hits both); each reports its
# best of REPS per round; the table shows the best over the rounds, the ratio ours /
# llama.cpp, and each engine's aggregate over its own B = 1.
#   bench/batched_vs_llama_cpp.sh [MODEL.gguf]   (default: Qwen2.5-Coder-0.5B-Instruct Q4_K_M)
#   env: BATCH=1,2,4,8,16 THREADS=1,2 PP=128 TG=64 REPS=3 ROUNDS=2 BUILD=build
#        SA_PYTHON=.venv/bin/python SALIGN_MODELS=~/.cache/salign
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
MODELS=${SALIGN_MODELS:-$HOME/.cache/salign}
BATCH=${BATCH:-1,2,4,8,16}
THREADS=${THREADS:-1,2}
PP=${PP:-128}
TG=${TG:-64}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
SALIGN=$BUILD/salign
[ -x "$SALIGN" ] || { echo "build $SALIGN first (make $SALIGN)" >&2; exit 1; }
model=${1:-$MODELS/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf}
[ -f "$model" ] || { echo "missing $model (salign pull qwen2.5-coder-0.5b-instruct)" >&2; exit 1; }

# start from the page-cache state of a file read from disk, for both (docs/BENCHMARKS.md,
# "Page-cache folios")
"$PY" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$model"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "# $(basename "$model"): batch $BATCH, threads $THREADS, prompt $PP, tg $TG per sequence, best of $REPS reps x $ROUNDS rounds; commit $(git rev-parse --short HEAD 2>/dev/null); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in ${THREADS//,/ }; do
  for r in $(seq "$ROUNDS"); do
    "$SALIGN" bench -m "$model" --batch "$BATCH" -p "$PP" -n "$TG" -t "$t" -r "$REPS" --json | tee -a "$results" >&2 ||
      echo "salign bench failed" >&2
    "$PY" bench/llama_cpp_batched.py --model "$model" --batch "$BATCH" --threads "$t" --prompt-tokens "$PP" \
      --gen-tokens "$TG" --reps "$REPS" --json 2>/dev/null | tee -a "$results" >&2 || echo "llama.cpp failed" >&2
  done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
"$PY" - "$results" <<'EOF'
import json, sys
best = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    key = (r["threads"], r["batch"], "ours" if r["engine"] == "salign" else "peer")
    best[key] = max(best.get(key, 0.0), r["tg_tok_s"])
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
print("| threads | batch | tg ours | tg llama.cpp | ratio | ours / ours B=1 | llama.cpp / llama.cpp B=1 |")
print("|--:|--:|--:|--:|--:|--:|--:|")
for t, b in sorted({(k[0], k[1]) for k in best}):
    o, p = best.get((t, b, "ours"), 0), best.get((t, b, "peer"), 0)
    o1, p1 = best.get((t, 1, "ours"), 0), best.get((t, 1, "peer"), 0)
    print(f"| {t} | {b} | {o:.1f} | {p:.1f} | {ratio(o, p)} | {ratio(o, o1)} | {ratio(p, p1)} |")
EOF
