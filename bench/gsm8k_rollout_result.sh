#!/usr/bin/env bash
# bench/gsm8k_rollout_result.sh: the issue-13 experiment, end to end, on the CPU: aligners
# trained on the upstream's OWN sentences, labelled by rollouts (docs/DATA_ROLLOUT.md), with
# and without the gated revision (docs/PIPELINE.md), against the upstream alone and the
# Aligner baseline trained on the same data, on GSM8K test.
#   1. rollout records from GSM8K *train* questions (train lines [TRAIN_FROM, TRAIN_FROM +
#      N_TRAIN)) and from a DEV split of train (lines [DEV_FROM, DEV_FROM + N_DEV)), for the
#      gate's threshold; never a test question;
#   2. aligners: Qwen2.5-Coder-0.5B-Instruct LoRA (rank LORA_R, exported as a GGUF adapter
#      over the quantized base) and SmolLM2-135M-Instruct (full); the Aligner baseline (whole
#      answers, Qwen LoRA);
#   3. the threshold: `salign eval aligner --edit-threshold LIST` on the dev records, the one
#      with the best kept(copy records) + changed(first-error records) - 1 (Youden's J);
#   4. GSM8K test, first N_TEST questions: upstream alone, Stream Aligner ungated and gated
#      for each aligner, the Aligner baseline on the upstream's answers; scores, paired flips.
# Every step is resumable: run the script again after an interruption (rollouts and answers
# are append-only with resume by id; training continues from its checkpoint). Steps can be
# run one at a time: STEPS="rollout train gate test" (default: all, in that order).
#   bench/gsm8k_rollout_result.sh [WORKDIR]        (default runs/gsm8k_rollout)
# Knobs (environment): N_TRAIN (400), TRAIN_FROM (0), N_DEV (100), DEV_FROM (7373), N_TEST
# (500), UPSTREAM (qwen2.5-coder-0.5b-instruct), PARALLEL (4 questions at once), THREADS (2),
# ROLLOUT_OPTS (-N 4 -K 4 --temp 0.7 --max-tokens 384 --verify 2), MAX_LEN (512), LORA_R (8),
# EPOCHS (2), THRESHOLDS (-inf,0,1,2,4,8,inf).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
DATA=${SA_SHARED_DATA:-../shared/data}
W=${1:-runs/gsm8k_rollout}
N_TRAIN=${N_TRAIN:-400}
TRAIN_FROM=${TRAIN_FROM:-0}
N_DEV=${N_DEV:-100}
DEV_FROM=${DEV_FROM:-7373}
N_TEST=${N_TEST:-500}
UPSTREAM=${UPSTREAM:-qwen2.5-coder-0.5b-instruct}
SMALL=${SMALL:-smollm2-135m-instruct}
PARALLEL=${PARALLEL:-4}
THREADS=${THREADS:-2}
ROLLOUT_OPTS=${ROLLOUT_OPTS:--N 4 -K 4 --temp 0.7 --max-tokens 384 --verify 2}
MAX_LEN=${MAX_LEN:-512}
LORA_R=${LORA_R:-8}
EPOCHS=${EPOCHS:-2}
THRESHOLDS=${THRESHOLDS:--inf,0,1,2,4,8,inf}
STEPS=${STEPS:-rollout train gate test}
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---- 0. the question files (ids: the 0-based line index in the source file) ----
if [ ! -s "$W/test.jsonl" ]; then
  "$PY" - "$DATA/gsm8k" "$W" "$TRAIN_FROM" "$N_TRAIN" "$DEV_FROM" "$N_DEV" "$N_TEST" <<'EOF'
import json, sys
src, w, tf, nt, df, nd, ne = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])
train = [json.loads(l) for l in open(src + "/train.jsonl")]
test = [json.loads(l) for l in open(src + "/test.jsonl")]
assert tf + nt <= df or df + nd <= tf, "train and dev lines overlap"
def write(path, rows, first):
    with open(path, "w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({"id": first + i, "question": r["question"], "answer": r["answer"]}) + "\n")
write(w + "/train_q.jsonl", train[tf:tf + nt], tf)
write(w + "/dev_q.jsonl", train[df:df + nd], df)
with open(w + "/test.jsonl", "w") as f:  # no gold in the pipeline's input
    for i, r in enumerate(test[:ne]):
        f.write(json.dumps({"id": i, "question": r["question"]}) + "\n")
EOF
fi

# ---- 1. rollout records (train and dev) ----
if want rollout; then
  for split in train dev; do
    log "rollouts: $split"
    # shellcheck disable=SC2086
    "$S" data rollout --upstream "$UPSTREAM" --input "$W/${split}_q.jsonl" --out "$W/${split}_records.jsonl" \
      --answers-out "$W/${split}_whole.jsonl" $ROLLOUT_OPTS --max-length "$MAX_LEN" --seed 1 \
      --parallel "$PARALLEL" -t "$THREADS" 2>> "$W/rollout_$split.log"
  done
fi

# ---- 2. training ----
train() { # name base records max-length [options...]
  local name=$1 base=$2 data=$3 len=$4; shift 4
  local out="$W/${name}_run"
  if [ -s "$out/model/model-f16.gguf" ] || [ -s "$out/model/adapter.gguf" ]; then return; fi  # done
  local resume=""
  [ -d "$out/checkpoint" ] && resume="--resume"
  log "training $name"
  "$S" train --base "$base" --data "$data" --out "$out" --epochs "$EPOCHS" --batch 4 --max-length "$len" \
    -t "$THREADS" --save-every 25 --eval-fraction 0.05 --log-every 5 "$@" $resume 2>> "$W/train_$name.log"
}
if want train; then
  # the merged F16 export too: `salign eval aligner` (the threshold sweep) takes a model file
  train qwen_lora "$UPSTREAM" "$W/train_records.jsonl" 384 --lora "$LORA_R" --lr 2e-4 --gguf-type f16
  train smol_full "$SMALL" "$W/train_records.jsonl" 384 --lr 5e-5 --gguf-type f16
  train whole_lora "$UPSTREAM" "$W/train_whole.jsonl" 768 --lora "$LORA_R" --lr 2e-4 --adapter-only
fi
QWEN=(--aligner "$UPSTREAM" --aligner-lora "$W/qwen_lora_run/model/adapter.gguf")
SMOL=(--aligner "$W/smol_full_run/model/model-f16.gguf")
WHOLE=(--aligner "$UPSTREAM" --aligner-lora "$W/whole_lora_run/model/adapter.gguf")

# ---- 3. the gate's threshold, on the dev records ----
pick() { # name -> prints the threshold with the best Youden J on dev
  "$PY" - "$W/gate_$1.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["gate"]["thresholds"]
def j(r):
    return r["kept"]["rate"] + r["changed"]["rate"] - 1
best = max(rows, key=j)
print(best["threshold"])
EOF
}
if want gate; then
  for name in qwen smol; do
    if [ ! -s "$W/gate_$name.json" ]; then
      log "threshold sweep: $name"
      m="$W/qwen_lora_run/model/model-f16.gguf"
      [ "$name" = smol ] && m="$W/smol_full_run/model/model-f16.gguf"
      "$S" eval aligner --aligner "$m" --records "$W/dev_records.jsonl" --edit-threshold "$THRESHOLDS" \
        -t "$THREADS" --json > "$W/gate_$name.json.tmp" && mv "$W/gate_$name.json.tmp" "$W/gate_$name.json"
    fi
    pick "$name" > "$W/threshold_$name.txt"
    log "threshold $name: $(cat "$W/threshold_$name.txt")"
  done
fi

# ---- 4. GSM8K test ----
run() { # name [align options...]
  local name=$1; shift
  log "test: $name"
  "$S" align "$@" --input "$W/test.jsonl" --output "$W/$name.jsonl" --trace "$W/$name.trace.jsonl" \
    --max-length "$MAX_LEN" --parallel "$PARALLEL" -t "$THREADS" 2>> "$W/$name.log"
  "$S" eval math --data gsm8k --answers "$W/$name.jsonl" --details "$W/$name.details.jsonl" --json \
    > "$W/$name.math.json"
}
if want test; then
  run upstream --upstream "$UPSTREAM" --mode upstream
  run stream_qwen --upstream "$UPSTREAM" "${QWEN[@]}"
  run stream_qwen_gated --upstream "$UPSTREAM" "${QWEN[@]}" --edit-threshold "$(cat "$W/threshold_qwen.txt")"
  run stream_smol --upstream "$UPSTREAM" "${SMOL[@]}"
  run stream_smol_gated --upstream "$UPSTREAM" "${SMOL[@]}" --edit-threshold "$(cat "$W/threshold_smol.txt")"
  run aligner_whole --mode aligner --answers "$W/upstream.jsonl" "${WHOLE[@]}"
  "$PY" bench/gsm8k_summary.py "$W" upstream stream_qwen stream_qwen_gated stream_smol stream_smol_gated aligner_whole
fi
