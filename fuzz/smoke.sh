#!/usr/bin/env bash
# fuzz/smoke.sh: `make fuzz-smoke`. Runs each libFuzzer target build-fuzz/fuzz_<name> for
# FUZZ_SECONDS (default 15) on its seed corpus fuzz/corpus_<name>/ under ASan + UBSan with
# halt_on_error=1: any crash, sanitizer report, leak, timeout or out-of-memory fails the target.
# New inputs go to a scratch corpus (build-fuzz/smoke/<name>/), never into fuzz/; a failing
# input is kept as build-fuzz/smoke/<name>-crash-* (replay: build-fuzz/fuzz_<name> FILE).
# Prints a line per target and ends, like the test harness, with "N passed, N failed".
# SA_TEST_FILTER=regex selects targets.
set -u
cd "$(dirname "$0")/.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-15}
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
passed=0; failed=0
for bin in "$FUZZ_BUILD"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=${bin##*/fuzz_}
  if [ -n "${SA_TEST_FILTER:-}" ] && ! [[ "fuzz_$name" =~ $SA_TEST_FILTER ]]; then continue; fi
  seeds=fuzz/corpus_$name
  work=$FUZZ_BUILD/smoke/$name
  log=$FUZZ_BUILD/smoke/$name.log
  rm -rf "$work" "$FUZZ_BUILD/smoke/$name"-crash-* && mkdir -p "$work"
  if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
    echo "FAIL fuzz_$name: no seed corpus $seeds/"; failed=$((failed + 1)); continue
  fi
  t0=$(date +%s)
  # -timeout: one input running this long is a hang; -rss_limit_mb: a runaway allocation
  "$bin" -max_total_time="$SECONDS_EACH" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_BUILD/smoke/$name-" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ] && ! grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
    passed=$((passed + 1))
    printf 'ok   fuzz_%-22s %8s runs (%ds)\n' "$name" "${runs:-?}" $(( $(date +%s) - t0 ))
  else
    failed=$((failed + 1))
    printf 'FAIL fuzz_%-22s exit %d (%ds); log %s\n' "$name" $rc $(( $(date +%s) - t0 )) "$log"
    grep -E -m1 -A12 'ERROR: |runtime error:|==ERROR|deadly signal' "$log" | sed 's/^/    | /'
    ls "$FUZZ_BUILD/smoke/$name"-crash-* "$FUZZ_BUILD/smoke/$name"-leak-* "$FUZZ_BUILD/smoke/$name"-timeout-* \
       "$FUZZ_BUILD/smoke/$name"-oom-* 2>/dev/null | sed 's/^/    | input: /'
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
