#!/bin/sh
# Reruns every figure of README.md: the fleet of 10,000 of each client on
# both brokers, idle, and the reconnect storms of robustmqtt's three
# strategies with the pictures. About 25 minutes. Run from bench/:
#
#	./fleet/run.sh            # 10,000 clients
#	N=2000 ./fleet/run.sh     # fewer
set -eu
cd "$(dirname "$0")/.."
N=${N:-10000}
out=fleet/results
mkdir -p "$out"
go build -o /tmp/fleet-cmd ./fleet/cmd/fleet
run() { # name, flags...
	name=$1
	shift
	echo "== $name: fleet $*" >&2
	/tmp/fleet-cmd -clients "$N" -json "$out/$name.json" "$@" >"$out/$name.txt" 2>"$out/$name.log"
	cat "$out/$name.txt"
}
for broker in mosquitto mochi; do
	png=fleet/storm.png
	[ "$broker" = mochi ] && png=fleet/storm-mochi.png
	run "$broker-robustmqtt-$N" -broker "$broker" -client robustmqtt -idle 30s \
		-storm default,fixed2s,nojitter -down 5s -png "$png"
	for client in robustmqtt-v5 paho.mqtt.golang paho.golang; do
		run "$broker-$client-$N" -broker "$broker" -client "$client" -idle 30s
	done
done
