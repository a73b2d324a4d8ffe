#!/usr/bin/env bash
# Started by start.sh with MQTT_CLUSTER_PARENT: stops the cluster in DIR
# once process PID has exited, or once stop.sh removed DIR/watchdog.pid.
#
# Usage: scripts/cluster/watchdog.sh DIR PID
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR=$1
parent=$2
while kill -0 "$parent" 2>/dev/null && [ -f "$DIR/watchdog.pid" ]; do
  sleep 1
done
[ -f "$DIR/watchdog.pid" ] && exec bash "$HERE/stop.sh" "$DIR"
