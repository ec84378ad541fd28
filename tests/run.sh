#!/usr/bin/env bash
# tests/run.sh: runs every test program (build/tests/test_* and tests/py/test_*.py), each of
# which ends with "N passed, N failed"; prints a line per program and the total, the last line
# being "N passed, N failed". A program that crashes or prints no summary counts as 1 failure.
# SA_C_ONLY=1 skips the Python reference checks; SA_TEST_FILTER=regex selects programs.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${SA_PYTHON:-.venv/bin/python}
TIMEOUT=${SA_TEST_TIMEOUT:-900}
export SA_TEST_TMP=${SA_TEST_TMP:-tests/tmp}
mkdir -p "$SA_TEST_TMP" "$BUILD/test-logs"
total_p=0; total_f=0
progs=()
for b in "$BUILD"/tests/test_*; do [ -x "$b" ] && progs+=("$b"); done
if [ -z "${SA_C_ONLY:-}" ]; then
  for p in tests/py/test_*.py; do [ -f "$p" ] && progs+=("$p"); done
fi
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
  if [ -n "$line" ]; then
    p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  else
    p=0; f=0
  fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=$((f + 1)); fi
  total_p=$((total_p + p)); total_f=$((total_f + f))
  status="ok  "; [ "$f" -ne 0 ] && status="FAIL"
  printf '%s %-32s %4d passed, %3d failed  (%ds)\n' "$status" "$name" "$p" "$f" $((t1 - t0))
  if [ "$f" -ne 0 ]; then
    grep -E '^(FAIL|    )' "$log" | head -40 | sed 's/^/    | /'
    [ $rc -ne 0 ] && [ -z "$line" ] && tail -15 "$log" | sed 's/^/    | /'
  fi
done
echo "suite time: $(( $(date +%s) - start_all ))s"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
