#!/usr/bin/env bash
# Time each step of the README's test command on this machine and print a Markdown table row per step.
#   bash benchmarks/ci_times.sh            (run from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $machine; commit: $commit"
echo "| step | wall time (s) |"
echo "|---|---|"
for step in setup unit nbval book-check; do
  start=$(date +%s%N)
  make -s "$step" >/tmp/ci_times_"$step".log 2>&1
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  printf '| make %s | %d.%d |\n' "$step" $((ms / 1000)) $(((ms % 1000) / 100))
done
