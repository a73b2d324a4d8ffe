#!/usr/bin/env bash
# Acts on one node of a cluster made by start.sh:
#
#	scripts/cluster/node.sh DIR N kill    SIGKILL the node's VM (no goodbye to anyone)
#	scripts/cluster/node.sh DIR N start   start it again, same port and database; it rejoins
#	scripts/cluster/node.sh DIR N stop    stop it gracefully (ejabberdctl stop)
#	scripts/cluster/node.sh DIR N pid     print its VM's pid (exit 1 if it is not running)
#	scripts/cluster/node.sh DIR N url     print its MQTT address
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
[ $# = 3 ] || { echo "usage: $0 DIR N kill|start|stop|pid|url" >&2; exit 2; }
DIR="$(cd "$1" && pwd)"
n=$2
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ -f "$DIR/node$n/ejabberd.yml" ] || die "no node $n in $DIR"
case $3 in
  kill) kill_node "$n" ;;
  start) start_node "$n" ;;
  stop) stop_node "$n" ;;
  pid) node_pid "$n" ;;
  url) echo "tcp://127.0.0.1:$(node_port "$n")" ;;
  *) echo "usage: $0 DIR N kill|start|stop|pid|url" >&2; exit 2 ;;
esac
