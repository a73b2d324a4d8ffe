#!/usr/bin/env bash
# Stops both nodes of a cluster made by start.sh (gracefully, SIGKILL after
# 30 s) and removes DIR, unless KEEP=1 (its logs: DIR/nodeN/ejabberd.log).
#
# Usage: scripts/cluster/stop.sh DIR
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
[ -d "$1" ] || exit 0
DIR="$(cd "$1" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
# The watchdog, if any, goes first: it would stop the cluster too.
rm -f "$DIR/watchdog.pid"
for n in $CLUSTER_NODES; do
  if [ -f "$DIR/node$n/ejabberd.yml" ]; then
    stop_node "$n"
  fi
done
# Only a directory that start.sh made.
if [ "${KEEP:-}" != 1 ] && [ -f "$DIR/node1/ejabberd.yml" ]; then
  rm -rf "$DIR"
fi
# epmd (Erlang's port mapper, 127.0.0.1:4369), which the first node
# started, stays: other Erlang nodes may be using it, and one that starts
# while it is going away cannot register its name.
