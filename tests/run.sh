#!/usr/bin/env bash
# tests/run.sh: runs every test program (build/tests/test_* and tests/py/test_*.py), each of
# which ends with "N passed, N failed, N skipped" (tests/harness.h); prints a line per program
# and the total, the last line being "N passed, N failed, N skipped". A program that crashes,
# prints no summary, or runs nothing (0 passed, 0 failed, 0 skipped) counts as 1 failure.
# SA_C_ONLY=1 skips the Python reference checks; SA_TEST_FILTER=regex selects programs.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
TIMEOUT=${SA_TEST_TIMEOUT:-900}
export SA_TEST_TMP=${SA_TEST_TMP:-tests/tmp}
mkdir -p "$SA_TEST_TMP" "$BUILD/test-logs"
total_p=0; total_f=0; total_s=0
progs=()
for b in "$BUILD"/tests/test_*; do [ -x "$b" ] && progs+=("$b"); done
if [ -z "${SA_C_ONLY:-}" ]; then
  for p in tests/py/test_*.py; do [ -f "$p" ] && progs+=("$p"); done
fi
# the shared data (GSM8K, HH-RLHF) that some programs read: say once, up front and again above
# the summary, when it is not there (those programs then fail and say so themselves)
shared=${SA_SHARED_DATA:-../shared/data}
shared_note=""
[ -f "$shared/gsm8k/test.jsonl" ] || shared_note="note: the shared data is missing (no $shared/gsm8k/test.jsonl): the programs that read GSM8K or HH-RLHF will fail. Set SA_SHARED_DATA to the folder that holds gsm8k/ and hh-rlhf/ (by default ../shared/data beside the checkout)."
[ -n "$shared_note" ] && echo "$shared_note"
start_all=$(date +%s)
for prog in "${progs[@]}"; do
  if [ -n "${SA_TEST_FILTER:-}" ] && ! [[ "$prog" =~ $SA_TEST_FILTER ]]; then continue; fi
  name=$(basename "$prog")
  log="$BUILD/test-logs/$name.log"
  t0=$(date +%s)
  case "$prog" in
    *.py) timeout "$TIMEOUT" "$PY" "$prog" >"$log" 2>&1 ;;
    *)    timeout "$TIMEOUT" "$prog" >"$log" 2>&1 ;;
  esac
  rc=$?
  t1=$(date +%s)
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
  p=0; f=0; s=0
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
    s=$(echo "$line" | sed -n 's/.* \([0-9][0-9]*\) skipped.*/\1/p'); s=${s:-0}
  fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=$((f + 1)); fi
  if [ $((p + f + s)) -eq 0 ]; then f=1; fi # ran nothing
  total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
  status="ok  "; [ "$s" -ne 0 ] && status="skip"; [ "$f" -ne 0 ] && status="FAIL"
  printf '%s %-32s %4d passed, %3d failed, %2d skipped  (%ds)\n' "$status" "$name" "$p" "$f" "$s" $((t1 - t0))
  [ "$s" -ne 0 ] && grep -E '^skip ' "$log" | head -10 | sed 's/^/    | /'
  if [ "$f" -ne 0 ]; then
    grep -E '^(FAIL|    )' "$log" | head -40 | sed 's/^/    | /'
    [ $rc -ne 0 ] && [ -z "$line" ] && tail -15 "$log" | sed 's/^/    | /'
  fi
done
echo "suite time: $(( $(date +%s) - start_all ))s"
[ -n "$shared_note" ] && echo "$shared_note"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ] && [ $((total_p + total_s)) -gt 0 ]
