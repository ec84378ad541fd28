#!/usr/bin/env bash
# bench/serve_vs_llama_cpp.sh: the load benchmark of issue 14 in one command. Starts `salign
# serve` (the README's default pair, or the models given) with --parallel PARALLEL and loads it
# with bench/serve_load.py (CLIENTS streaming clients for SECONDS, RSS sampled from its pid);
# then starts llama.cpp's server (llama-cpp-python, `python -m llama_cpp.server`) serving the
# upstream GGUF alone and loads it the same way, for scale. Prints both JSON results and a
# Markdown table row for docs/BENCHMARKS.md. Both servers are stopped at the end (trap). "First
# content" is the first sentence for salign serve, the first token for llama.cpp's server.
#   bench/serve_vs_llama_cpp.sh [UPSTREAM [ALIGNER]]   (names in ~/.cache/salign or GGUF paths;
#                                 default qwen2.5-coder-0.5b-instruct, smollm2-135m-instruct)
#   env: CLIENTS=32 SECONDS=300 PARALLEL=4 QUEUE=16 MAX_TOKENS=128 WARMUP=30 THREADS=(all cores)
#        QUESTIONS=$SA_SHARED_DATA/gsm8k/train.jsonl if present  BUILD=build
#        SA_PYTHON=.venv/bin/python SALIGN_MODELS=~/.cache/salign
# Run it on a quiet machine: the two servers are measured one after the other.
set -uo pipefail
# SECONDS is bash's own clock, which starts from the caller's value: read it first thing
if printenv SECONDS >/dev/null; then DURATION=$SECONDS; else DURATION=300; fi
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
MODELS=${SALIGN_MODELS:-$HOME/.cache/salign}
CLIENTS=${CLIENTS:-32}
PARALLEL=${PARALLEL:-4}
QUEUE=${QUEUE:-16}
MAX_TOKENS=${MAX_TOKENS:-128}
WARMUP=${WARMUP:-30}
THREADS=${THREADS:-$(nproc)}
SALIGN=$BUILD/salign
[ -x "$SALIGN" ] || { echo "build $SALIGN first (make $SALIGN)" >&2; exit 1; }
up=${1:-qwen2.5-coder-0.5b-instruct}
al=${2:-smollm2-135m-instruct}
# the upstream's GGUF file, for llama.cpp: a path as given, else the cached model's file
if [ -f "$up" ]; then up_gguf=$up
else up_gguf=$(ls "$MODELS/$up"/*.gguf 2>/dev/null | head -n1); fi
[ -n "$up_gguf" ] && [ -f "$up_gguf" ] || { echo "missing the GGUF of $up in $MODELS (salign pull $up)" >&2; exit 1; }
QUESTIONS=${QUESTIONS:-${SA_SHARED_DATA:-../shared/data}/gsm8k/train.jsonl}
qargs=()
[ -f "$QUESTIONS" ] && qargs=(--questions "$QUESTIONS")
if [ "$WARMUP" -ge "$DURATION" ] 2>/dev/null; then WARMUP=$((DURATION / 3)); fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_http() { # URL PID LOG: until URL answers 200 (120 s), or the process exits
  local t0=$SECONDS
  until "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "the server exited:" >&2; tail -n 20 "$3" >&2; exit 1; }
    [ $((SECONDS - t0)) -lt 120 ] || { echo "the server did not start in 120 s:" >&2; tail -n 20 "$3" >&2; exit 1; }
    sleep 0.5
  done
}

echo "# salign serve --parallel $PARALLEL --queue $QUEUE ($up + $al) vs llama.cpp server ($(basename "$up_gguf")):" \
     "$CLIENTS clients, ${DURATION} s, max_tokens $MAX_TOKENS, $THREADS threads; commit $(git rev-parse --short HEAD 2>/dev/null);" \
     "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# 1. salign serve
port=$(free_port)
"$SALIGN" serve --upstream "$up" --aligner "$al" --port "$port" --parallel "$PARALLEL" --queue "$QUEUE" \
  -t "$THREADS" 2>"$tmp/salign.log" &
spid=$!
pids+=("$spid")
wait_http "http://127.0.0.1:$port/health" "$spid" "$tmp/salign.log"
"$PY" bench/serve_load.py --url "http://127.0.0.1:$port" --model stream-aligner --clients "$CLIENTS" \
  --seconds "$DURATION" --warmup "$WARMUP" --max-tokens "$MAX_TOKENS" --pid "$spid" "${qargs[@]}" >"$tmp/salign.json"
src=$?
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null

# 2. llama.cpp's server, the upstream alone: one request at a time, the others wait (no 429).
#    --interrupt_requests False: by default a new request cuts the stream in progress short
#    (an empty answer counted as ok); its usage is not streamed, so a token is a content event
port=$(free_port)
PYTHONUNBUFFERED=1 "$PY" -m llama_cpp.server --model "$up_gguf" --model_alias upstream --host 127.0.0.1 \
  --port "$port" --n_ctx 2048 --n_threads "$THREADS" --n_threads_batch "$THREADS" --interrupt_requests False \
  >"$tmp/llama.log" 2>&1 &
lpid=$!
pids+=("$lpid")
wait_http "http://127.0.0.1:$port/v1/models" "$lpid" "$tmp/llama.log"
"$PY" bench/serve_load.py --url "http://127.0.0.1:$port" --model upstream --clients "$CLIENTS" \
  --seconds "$DURATION" --warmup "$WARMUP" --max-tokens "$MAX_TOKENS" --pid "$lpid" "${qargs[@]}" >"$tmp/llama.json"
lrc=$?
kill "$lpid" 2>/dev/null
wait "$lpid" 2>/dev/null

echo "salign serve: $(cat "$tmp/salign.json")"
echo "llama.cpp server: $(cat "$tmp/llama.json")"
"$PY" - "$tmp/salign.json" "$tmp/llama.json" "$PARALLEL" <<'EOF'
import json, sys
def load(p):
    try:
        with open(p) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
s, l, par = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
def f(x, d=2):
    return "-" if x is None else ("%.*f" % (d, x) if isinstance(x, float) else str(x))
def row(name, r):
    if not r:
        return "| %s | (no result) |" % name
    rss = r["rss_kb"]
    mb = lambda kb: "-" if kb is None else "%.0f" % (kb / 1024)
    errs = sum(r["errors"].values()) if r["errors"] else 0
    return "| %s | %d | %d s (wall %d s) | %d | %d | %d | %s | %s / %s | %s | %s -> %s (max %s) |" % (
        name, r["clients"], round(r["seconds"]), round(r["wall_s"]), r["requests"], r["ok"], r["n_429"],
        errs if not errs else "%d %s" % (errs, json.dumps(r["errors"])),
        f(r["first_sentence_s"]["p50"]), f(r["first_sentence_s"]["p99"]), f(r["tokens_per_s"]),
        mb(rss["after_warmup"]), mb(rss["last"]), mb(rss["max"]))
print()
print("| server | clients | time | requests | ok | 429 | errors | first content p50 / p99 (s) | tokens/s | RSS MiB after warm-up -> last |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(row("salign serve --parallel %s (aligned)" % par, s))
print(row("llama.cpp server (upstream alone)", l))
EOF
[ "$src" -eq 0 ] && [ "$lrc" -eq 0 ]
