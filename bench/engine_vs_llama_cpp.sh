#!/usr/bin/env bash
# bench/engine_vs_llama_cpp.sh: our engine (`salign bench`) against llama.cpp
# (bench/peer_llama_cpp.py, llama-cpp-python) on the same GGUF files, in the same run:
# prompt processing of PP tokens (pp) and decode of TG tokens (tg), tok/s, per thread count.
# The two engines alternate per (model, threads) for ROUNDS rounds, so a load change on a
# shared machine hits both; each reports its best of REPS repetitions per round, and the
# table shows the best over the rounds and the ratio ours / llama.cpp.
# Models: SmolLM2-135M and Gemma 3 270M as pulled (Q4_1 and Q4_K_M), their Q8_0 and BF16
# re-encodings (`salign convert`, cached in $BUILD/bench-models/), and SmolLM2 in Q4_K_M
# made by llama.cpp's own quantizer from the BF16 file (dev tool only; skipped if it fails).
#   bench/engine_vs_llama_cpp.sh [MODEL.gguf ...]
#   env: THREADS=1,2 PP=512 TG=128 REPS=3 ROUNDS=2 BUILD=build SA_PYTHON=.venv/bin/python
#        MMAP=1 (0: both engines copy the weights into memory at load: salign --no-mmap,
#        llama.cpp use_mmap=False; with the files read from disk, as here, mapping and copy
#        stream about as fast: docs/BENCHMARKS.md, "Page-cache folios")
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
MODELS=${SALIGN_MODELS:-$HOME/.cache/salign}
THREADS=${THREADS:-1,2}
PP=${PP:-512}
TG=${TG:-128}
REPS=${REPS:-3}
ROUNDS=${ROUNDS:-2}
MMAP=${MMAP:-1}
NOMMAP=()
[ "$MMAP" = 0 ] && NOMMAP=(--no-mmap)
CACHE=$BUILD/bench-models
SALIGN=$BUILD/salign
mkdir -p "$CACHE"
[ -x "$SALIGN" ] || { echo "build $SALIGN first (make $SALIGN)" >&2; exit 1; }

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
  SMOL=$MODELS/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
  GEMMA=$MODELS/gemma3-270m/gemma-3-270m-q4_k_m.gguf
  for base in "$SMOL" "$GEMMA"; do
    [ -f "$base" ] || { echo "missing $base (salign pull)" >&2; exit 1; }
    stem=$(basename "$base" .gguf); stem=${stem%.*}; stem=${stem%-q4_k_m}
    models+=("$base")
    for ty in q8_0 bf16; do
      out=$CACHE/$stem.$ty.gguf
      if [ ! -f "$out" ]; then
        "$SALIGN" convert "$base" --to gguf --type "$ty" -q -o "$out.tmp" && mv "$out.tmp" "$out" || { echo "convert $out failed" >&2; continue; }
      fi
      models+=("$out")
    done
  done
  # SmolLM2 as Q4_K_M, quantized by llama.cpp from the BF16 file (576-wide rows are not a
  # multiple of 256: llama.cpp falls back to other types for those tensors, as it does for
  # any Q4_K_M of this model)
  qkm=$CACHE/SmolLM2-135M-Instruct.q4_k_m.gguf
  if [ ! -f "$qkm" ] && [ -f "$CACHE/SmolLM2-135M-Instruct.bf16.gguf" ]; then
    "$PY" - "$CACHE/SmolLM2-135M-Instruct.bf16.gguf" "$qkm" <<'EOF' >/dev/null 2>&1 || rm -f "$qkm"
import sys, llama_cpp
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
p.nthread = 2
rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), p)
sys.exit(1 if rc else 0)
EOF
  fi
  [ -f "$qkm" ] && models+=("$qkm")
fi

# Both engines map the same page-cache pages, whose folio sizes (how many TLB entries a
# pass over the weights walks) depend on how the pages got there: start from the state of
# a file read from disk, for every file (docs/BENCHMARKS.md, "Page-cache folios").
"$PY" -c 'import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "${models[@]}"

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "# threads $THREADS, pp $PP, tg $TG, mmap $MMAP, best of $REPS reps x $ROUNDS rounds, page cache of the files dropped first; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${models[@]}"; do
  for t in ${THREADS//,/ }; do
    for r in $(seq "$ROUNDS"); do
      "$SALIGN" bench -m "$m" -p "$PP" -n "$TG" -t "$t" -r "$REPS" "${NOMMAP[@]}" --json | tee -a "$results" >&2 ||
        echo "salign bench failed on $m" >&2
      "$PY" bench/peer_llama_cpp.py "$m" --threads "$t" --pp "$PP" --tg "$TG" --reps "$REPS" "${NOMMAP[@]}" 2>/dev/null |
        tee -a "$results" >&2 || echo "llama.cpp failed on $m" >&2
    done
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
    key = (r["model"], r["threads"], "ours" if r["engine"] == "salign" else "peer")
    b = best.setdefault(key, [0.0, 0.0])
    b[0] = max(b[0], r["pp_tok_s"]); b[1] = max(b[1], r["tg_tok_s"])
rows = sorted({(k[0], k[1]) for k in best})
print("| model | threads | pp ours | pp llama.cpp | pp ratio | tg ours | tg llama.cpp | tg ratio |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for model, t in rows:
    o = best.get((model, t, "ours"), [0, 0]); p = best.get((model, t, "peer"), [0, 0])
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
    print(f"| {model} | {t} | {o[0]:.1f} | {p[0]:.1f} | {ratio(o[0], p[0])} | {o[1]:.1f} | {p[1]:.1f} | {ratio(o[1], p[1])} |")
EOF
