#!/usr/bin/env bash
# timed.sh NAME LIMIT CMD [ARGS...]: run CMD under `timeout LIMIT` (seconds), then print
# "time: NAME 12.3 s" (with the exit status when it failed) and exit with CMD's status.
# The Makefile times every step of `make test` and `make book` with it; benchmarks/ci_times.sh
# collects the "time:" lines into a table.
set -u
name=$1 limit=$2
shift 2
t0=$(date +%s%N)
timeout "$limit" "$@"
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
status=""
[ "$rc" -eq 0 ] || status=" (failed, exit status $rc$([ "$rc" -eq 124 ] && echo ": the time limit of ${limit} s"))"
printf 'time: %s %d.%d s%s\n' "$name" $((ms / 1000)) $(((ms % 1000) / 100)) "$status"
exit "$rc"
