#!/bin/sh
# run-bench.sh BUILD_DIR - runs the driver benchmarks; human-readable lines first, then ONE JSON
# object on the last line (merged from bench-cache and bench-port).
set -e
b="$1"
a=$("$b/bench-cache")
p=$("$b/bench-port" "$b/agentsh-sim" 5000)
printf '%s,%s\n' "${a%\}}" "${p#\{}"
