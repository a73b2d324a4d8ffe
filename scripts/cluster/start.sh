#!/usr/bin/env bash
# Starts a two-node ejabberd (mod_mqtt) cluster on 127.0.0.1 and prints the
# MQTT address of each node, one a line:
#
#	node1 tcp://127.0.0.1:PORT1
#	node2 tcp://127.0.0.1:PORT2
#
# Usage: scripts/cluster/start.sh [DIR]
#
# DIR (default: a new directory under ${TMPDIR:-/tmp}) holds everything of
# the cluster: each node's ejabberd.yml, Mnesia database, logs and pid. Pass
# it to node.sh (kill, start, stop a node) and stop.sh. Ports: MQTT_PORT1
# and MQTT_PORT2 if set, else free ones. Node names robustmqttN_PORT@localhost
# (PORT: the node's MQTT port), with a cookie of their own; Erlang distribution
# and epmd listen on 127.0.0.1 only. Node 2 joins node 1 with
# `join_cluster` (ejabberdctl's command), so both share Mnesia: the session
# table, subscriptions and retained messages.
#
# ejabberd comes from Debian's package (bookworm: 23.01, with mod_mqtt for
# MQTT 3.1.1 and 5.0). When it is missing and this runs as root, the script
# installs it (apt-get install --no-install-recommends ejabberd, ~35 MB) and
# keeps the system service from starting; otherwise it exits 3 saying how to
# install it. With MQTT_CLUSTER_PARENT=PID, the cluster is stopped once
# process PID has exited (the tests pass their own). MQTT_CLUSTER_INSTALL=0 forbids installing (exit 3
# instead). Any failure to start exits non-zero with the reason on stderr.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-}"
if [ -z "$DIR" ]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/robustmqtt-cluster.XXXXXX")
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"

if ! have_ejabberd; then
  if [ "${MQTT_CLUSTER_INSTALL:-1}" != 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "scripts/cluster: ejabberd is not installed; installing Debian's package" >&2
    # The package would start its system service: keep it from doing so.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
    fi
    status=0
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ejabberd; } >&2 || status=$?
    [ -n "$created_policy" ] && rm -f "$policy"
    [ "$status" = 0 ] || EXIT_CODE=3 die "apt-get install ejabberd failed (exit $status)"
    have_ejabberd || EXIT_CODE=3 die "ejabberd installed but its libraries were not found"
  else
    EXIT_CODE=3 die "ejabberd is not installed: apt-get install --no-install-recommends ejabberd (Debian/Ubuntu; as root this script installs it)"
  fi
fi

if [ -e "$DIR/node1/pid" ] && node_pid 1 >/dev/null; then
  die "a cluster already runs in $DIR (stop it with stop.sh $DIR)"
fi

# If anything below fails, leave no VM behind.
trap 'status=$?; if [ $status != 0 ]; then stop_node 2; stop_node 1; fi' EXIT

# start_new N PORTVAR: writes node N's configuration and starts it; a free
# port can be taken between the check and ejabberd's bind, so a node whose
# port was taken gets another, up to 5 times (not a port set by the caller).
start_new() {
  local n=$1 fixed=$2 port status
  for _ in 1 2 3 4 5; do
    port=${fixed:-$(free_port)}
    while [ "$n" = 2 ] && [ "$port" = "$(node_port 1)" ]; do port=$(free_port); done
    rm -rf "$DIR/node$n"
    write_config "$n" "$port"
    status=0
    start_node "$n" || status=$?
    [ "$status" = 2 ] && [ -z "$fixed" ] && continue
    return "$status"
  done
  return 1
}
start_new 1 "${MQTT_PORT1:-}" || die "node 1 did not start"
start_new 2 "${MQTT_PORT2:-}" || die "node 2 did not start"
# join_cluster restarts ejabberd on node 2 with node 1's database.
if ! out=$(ctl 2 join_cluster "$(node_name 1)" 2>&1); then
  die "node 2 could not join node 1: $out"
fi
wait_started 2 || die "node 2 did not come back after joining"
members=$(ctl 1 list_cluster 2>&1 || true)
for n in $CLUSTER_NODES; do
  grep -q "$(node_name "$n")" <<<"$members" || die "node $n is not in the cluster: $members"
done
# A watchdog stops the cluster once process MQTT_CLUSTER_PARENT is gone: a
# test that dies without its cleanup leaves no VM behind.
if [ -n "${MQTT_CLUSTER_PARENT:-}" ]; then
  nohup bash "$HERE/watchdog.sh" "$DIR" "$MQTT_CLUSTER_PARENT" </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/watchdog.pid"
fi
echo "node1 tcp://127.0.0.1:$(node_port 1)"
echo "node2 tcp://127.0.0.1:$(node_port 2)"
echo "$DIR" >"$DIR/dir"
echo "scripts/cluster: cluster in $DIR (stop: $HERE/stop.sh $DIR)" >&2
