#!/usr/bin/env bash
# bench/run.sh: `make bench`: every benchmark, with its peer in the same run where there is
# one. Results are printed; docs/BENCHMARKS.md records them with the machine and commands.
#   bench/run.sh [tokenizer|matmul|engine|batched]...   (default: all)
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
MODELS=${SALIGN_MODELS:-$HOME/.cache/salign}
what=("$@"); [ ${#what[@]} -eq 0 ] && what=(tokenizer matmul engine batched)
echo "# machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for w in "${what[@]}"; do
  case "$w" in
    tokenizer)
      echo "## tokenizer encode (one thread)"
      "$BUILD/bench/bench_tokenizer" ;;
    matmul)
      echo "## matrix products (GFLOP/s)"
      "$BUILD/bench/bench_matmul" q8_0 q4_1 q5_0 q4_k q6_k bf16 ;;
    engine)
      echo "## engine: prompt processing (512) and decode (128), ours vs llama.cpp on the same GGUF"
      bench/engine_vs_llama_cpp.sh ;;
    batched)
      echo "## batched decoding: aggregate tok/s at 1..16 sequences, ours vs llama.cpp's batched decoding"
      bench/batched_vs_llama_cpp.sh ;;
    *) echo "unknown benchmark '$w'" >&2; exit 2 ;;
  esac
done
