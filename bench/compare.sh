#!/usr/bin/env bash
# Runs every benchmark of bench/ in one go and prints the comparison tables
# (robustmqtt against paho.mqtt.golang, paho.golang and the raw ceiling, each
# row one kind of call for every client, against the mochi broker and the
# sink, medians over the runs, every target of issue 17 checked).
#
#   ./compare.sh                  # 5 rounds, -benchtime 1s: about 15 minutes on 2 cores
#   COUNT=1 ./compare.sh          # one quick pass
#   BENCH=Publish ./compare.sh    # only some benchmarks (a go test -bench pattern)
#   ./compare.sh old-results.txt  # only print the tables of an earlier run
#
# The raw output goes to results/$NAME.txt (NAME=latest by default),
# benchstat's summary (when benchstat is installed: go install
# golang.org/x/perf/cmd/benchstat@latest) to results/$NAME-benchstat.txt,
# and the machine's description and load to results/$NAME-env.txt.
# ROBUSTMQTT_BENCH_BROKER_IN_PROCESS=1 puts the broker in the benchmark's
# process instead of a child process.
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -gt 0 ]; then
	go run ./cmd/ratios "$@"
	exit
fi

count=${COUNT:-5}
benchtime=${BENCHTIME:-1s}
bench=${BENCH:-.}
name=${NAME:-latest}
out=results/$name.txt
mkdir -p results
{
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "go: $(go version)"
	echo "kernel: $(uname -srm)"
	echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'))"
	# The library measured: its commit, and whether the tree differed from it.
	if rev=$(git -C .. rev-parse --short HEAD 2>/dev/null); then
		echo "library: $rev$(git -C .. status --porcelain -- . ':!bench' 2>/dev/null | grep -q . && echo ' with uncommitted changes')"
	else
		echo "library: ${LIBRARY:-not a git checkout}"
	fi
	echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "broker: $([ "${ROBUSTMQTT_BENCH_BROKER_IN_PROCESS:-}" = 1 ] && echo 'in process' || echo 'child process')"
	echo "command: $count rounds of go test -run '^\$' -bench '$bench' -benchtime $benchtime -count 1, round k with ROBUSTMQTT_BENCH_ROUND=k-1 (the clients' order rotated)"
} >"results/$name-env.txt"
# count rounds of -count 1 rather than one -count N: every round measures
# all clients within a few minutes of each other, so a change in the
# machine's load (other tests run on it) shifts a whole round, not one client.
: >"$out"
for round in $(seq "$count"); do
	echo "round $round of $count" >&2
	echo "load at round $round: $(cut -d' ' -f1-3 /proc/loadavg)" >>"results/$name-env.txt"
	# Each round rotates the order in which the clients of a row run by one
	# place (see roundEnv in publish_test.go): no client always runs first.
	ROBUSTMQTT_BENCH_ROUND=$((round - 1)) go test -run '^$' -bench "$bench" -benchtime "$benchtime" -count 1 . | tee -a "$out"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"results/$name-env.txt"

if command -v benchstat >/dev/null; then
	benchstat -confidence 0.9 "$out" >"results/$name-benchstat.txt"
elif [ -x "$(go env GOPATH)/bin/benchstat" ]; then
	"$(go env GOPATH)/bin/benchstat" -confidence 0.9 "$out" >"results/$name-benchstat.txt"
fi
echo
cat "results/$name-env.txt"
echo
go run ./cmd/ratios "$out"
