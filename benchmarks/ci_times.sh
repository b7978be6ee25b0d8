#!/usr/bin/env bash
# Time the README's two commands on this machine, step by step, and print Markdown tables.
#   bash benchmarks/ci_times.sh [--chapters]      (from the root of a fresh clone)
#
# 1. `make setup`: the virtual environment and MathJax (not part of the test-time goal);
# 2. `make test`: its wall time, and each step's own time from the "time: STEP N s" lines that
#    tools/timed.sh prints (the two streams run at once, so the steps add up to more than the whole);
# 3. `make book` from the built venv with an empty _build (a cold execution cache), then once more
#    with the cache full (only Sphinx runs);
# 4. with --chapters: every chapter executed alone, one after another, on one torch thread
#    (benchmarks/chapter_times.py: wall time and the kernel's CPU time).
# Logs are kept in /tmp/ci_times_*.log. Nothing here is a test: it prints measurements.
set -euo pipefail
cd "$(dirname "$0")/.."
chapters=0
[ "${1:-}" = "--chapters" ] && chapters=1
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m)"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $machine; commit: $commit; $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1 /proc/loadavg)"

run() {  # run NAME CMD...: time a whole command, keep its log
  local name=$1
  shift
  local t0
  t0=$(date +%s%N)
  if ! "$@" >"/tmp/ci_times_$name.log" 2>&1; then
    echo "FAILED: $* (see /tmp/ci_times_$name.log)" >&2
    tail -30 "/tmp/ci_times_$name.log" >&2
    exit 1
  fi
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  printf '%d.%d' $((ms / 1000)) $(((ms % 1000) / 100))
}

steps() {  # the "time:" lines of a log as table rows
  sed -n 's/^\(\[[a-z]*\] *\)\{0,1\}time: \([^ ]*\) \([0-9.]*\) s.*/| \1\2 | \3 |/p' "$1" | sed 's/| \[\([a-z]*\)\] */| \1: /'
}

setup=$(run setup make setup)
test=$(run test make test)
echo
echo "| step of \`make test\` (stream: step) | wall time (s) |"
echo "|---|---|"
steps /tmp/ci_times_test.log
echo "| **whole \`make test\`** (set-up done: $setup s) | **$test** |"

rm -rf _build
cold=$(run book make book)
echo
echo "| step of \`make book\` | wall time (s) |"
echo "|---|---|"
steps /tmp/ci_times_book.log
echo "| **whole \`make book\`**, empty cache | **$cold** |"
warm=$(run book_warm make book)
echo "| whole \`make book\` again, every chapter cached | $warm |"

echo
echo "chapters executed by \`make book\` (two at a time):"
grep '^| [0-9]' /tmp/ci_times_book.log || true

if [ "$chapters" = 1 ]; then
  echo
  echo "each chapter alone, one torch thread:"
  .venv/bin/python benchmarks/chapter_times.py 2>/dev/null | grep '^|'
fi
