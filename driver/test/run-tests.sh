#!/bin/sh
# run-tests.sh - runs the ASan+UBSan test binary and (if built) the TSan concurrency binary, then
# prints ONE summary line: "driver-c: N passed, M failed". Exit status non-zero on any failure.
set -u
asan="$1"; tsan="${2:-}"
total_pass=0; total_fail=0; status=0
run() {
  label="$1"; shift
  out=$(AGENTSH_TEST_SUMMARY=part ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 "$@" 2>&1); rc=$?
  printf '%s\n' "$out" | grep -v '^part: ' | sed "s/^/[$label] /"
  line=$(printf '%s\n' "$out" | grep '^part: ' | tail -1)
  p=$(printf '%s' "$line" | sed -n 's/^part: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
  f=$(printf '%s' "$line" | sed -n 's/^part: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
  if [ -z "$p" ]; then p=0; f=1; echo "[$label] FAIL binary crashed or produced no summary (exit $rc)"; fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "[$label] FAIL sanitizer report (exit $rc)"; fi
  total_pass=$((total_pass + p)); total_fail=$((total_fail + f))
  [ "$rc" -ne 0 ] && status=1
  return 0
}
run asan+ubsan "$asan"
if [ -n "$tsan" ]; then run tsan "$tsan" collapse concurrency port_; fi
echo "driver-c: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ] && [ "$status" -eq 0 ]
