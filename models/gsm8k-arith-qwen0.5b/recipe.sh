#!/usr/bin/env bash
# recipe.sh: rebuilds models/gsm8k-arith-qwen0.5b/adapter.gguf from scratch (issue 13).
# 1. Records (already committed as docs/results/arith/arith_train.jsonl; this step regenerates
#    them): the upstream Qwen2.5-Coder-0.5B-Instruct Q4_K_M answers GSM8K *train* questions
#    greedily (`salign align --mode upstream --trace`, answers up to 512 tokens), and
#    bench/arith_records.py labels its sentences with a calculator: a sentence whose written
#    arithmetic is wrong gets the same sentence with the true result as its correction, the
#    sentences before it are copy records, plus synthetic errors (a correct result perturbed).
#    The committed records came from the drafts of train ids 0-79 finished at the time (75
#    questions) and arith_records.py at commit c436210 (its later rule changes, 511a245, find
#    more equations: regenerating with today's tool gives more records, not the same file):
#      STEPS="drafts records" bench/gsm8k_arith_result.sh runs/arith   (train ids 0-79, dev 80-159)
# 2. Training (session 8, 2,487 s on 2 cores; the log is train-log.csv): 45 optimizer steps of
#    2 records, LoRA rank 8 on q k v o gate up down, lr 2e-4, 288 tokens, seed 1, 2 threads.
#    Training is deterministic for a given build, seed and thread count; the shipped file was
#    made by a build of session 8 (commit c436210's tree), so another build may differ in the
#    last bits of the weights.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-runs/gsm8k-arith-qwen0.5b}
build/salign train --base qwen2.5-coder-0.5b-instruct --data docs/results/arith/arith_train.jsonl --out "$OUT" \
  --lora 8 --lr 2e-4 --epochs 1 --max-steps 45 --batch 2 --max-length 288 -t 2 --eval-fraction 0 \
  --save-every 10 --adapter-only --seed 1 --log-every 5
sha256sum "$OUT/model/adapter.gguf" models/gsm8k-arith-qwen0.5b/adapter.gguf
