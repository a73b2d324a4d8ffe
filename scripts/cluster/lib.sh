# Shared by start.sh, node.sh and stop.sh: a two-node ejabberd cluster whose
# nodes run mod_mqtt on 127.0.0.1, each with its configuration, Mnesia
# database, log and pid file in DIR/nodeN. Not the system service: the
# nodes are Erlang VMs started here with erl, under the caller's user, with a
# cookie of their own, distribution on 127.0.0.1 only.
#
# Sourced, not run. Needs DIR set.

CLUSTER_NODES="1 2"
CLUSTER_COOKIE="robustmqtt-cluster"

die() {
  echo "scripts/cluster: $*" >&2
  exit "${EXIT_CODE:-1}"
}

# ejabberd_lib_dir prints the directory that holds Debian's ejabberd-VERSION
# application (the ERL_LIBS of ejabberdctl), or nothing.
ejabberd_lib_dir() {
  local d
  for d in /usr/lib/*/ejabberd-*/ebin /usr/lib/ejabberd-*/ebin /usr/lib/erlang/lib/ejabberd-*/ebin; do
    if [ -f "$d/ejabberd.app" ]; then
      dirname "$(dirname "$d")"
      return
    fi
  done
}

have_ejabberd() {
  command -v erl >/dev/null && [ -n "$(ejabberd_lib_dir)" ]
}

# node_name N prints the Erlang node name of node N: with its MQTT port in
# it, so that clusters in different directories never share a name.
node_name() { echo "robustmqtt$1_$(node_port "$1")@localhost"; }

# node_port N prints the MQTT port of node N, fixed when the cluster was made.
node_port() { cat "$DIR/node$1/port"; }

# node_pid N prints the pid of node N's VM, if it runs (a zombie that no
# one has reaped yet does not).
node_pid() {
  local pid state
  pid=$(cat "$DIR/node$1/pid" 2>/dev/null) || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  case $state in "" | Z | X) return 1 ;; esac
  echo "$pid"
}

# erl_env runs a command with the environment of an Erlang process of the
# cluster: epmd on 127.0.0.1 only, and ejabberd's libraries.
erl_env() {
  ERL_EPMD_ADDRESS=127.0.0.1 ERL_LIBS="$(ejabberd_lib_dir)" HOME="$DIR" "$@"
}

# ctl N ARGS... runs an ejabberdctl command (status, join_cluster NODE,
# list_cluster, stop, ...) against node N, as ejabberdctl does it: a hidden
# Erlang node that calls ejabberd_ctl.
ctl() {
  local n=$1
  shift
  erl_env erl -sname "ctl$$-$RANDOM@localhost" -setcookie "$CLUSTER_COOKIE" -hidden -noinput \
    -kernel inet_dist_use_interface '{127,0,0,1}' \
    -s ejabberd_ctl -extra "$(node_name "$n")" "$@"
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on now,
# below Linux's ephemeral range (32768 on), which outgoing connections take
# from at any moment.
free_port() {
  local p
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 12768))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# write_config N PORT writes node N's ejabberd.yml: one host, anonymous
# login (MQTT clients must still send a username and a non-empty password),
# mod_mqtt on 127.0.0.1:PORT and nothing else.
write_config() {
  local n=$1 port=$2 d="$DIR/node$1"
  mkdir -p "$d/db"
  echo "$port" >"$d/port"
  cat >"$d/ejabberd.yml" <<YML
hosts:
  - localhost
loglevel: info
log_rotate_count: 0
certfiles: []
auth_method: [anonymous]
anonymous_protocol: login_anon
acl:
  local:
    user_regexp: ""
access_rules:
  mqtt_all:
    allow: all
listen:
  -
    port: $port
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1000
modules:
  mod_mqtt:
    access_publish:
      "#": mqtt_all
    access_subscribe:
      "#": mqtt_all
    # An offline session keeps up to this many messages (default 5000),
    # for up to session_expiry (default 5 minutes).
    max_queue: 100000
    session_expiry: 1 hour
YML
}

# start_node N starts node N's VM in the background and waits until
# ejabberd says it has started (status 0), for up to 60 s.
start_node() {
  local n=$1 d="$DIR/node$1"
  if node_pid "$n" >/dev/null; then
    return 0
  fi
  rm -f "$d/pid"
  # epmd, once, before the VM: two VMs that both find none start one each.
  erl_env epmd -daemon >/dev/null 2>&1 || true
  # erl execs erlexec, which execs beam.smp: $! is the VM itself, which is
  # what node.sh kill sends SIGKILL to (ejabberd writes the same pid to
  # ejabberd.pid). No setsid: it would fork when it is a group leader.
  (
    export EJABBERD_CONFIG_PATH="$d/ejabberd.yml" EJABBERD_LOG_PATH="$d/ejabberd.log" \
      EJABBERD_PID_PATH="$d/ejabberd.pid" ERL_EPMD_ADDRESS=127.0.0.1 \
      ERL_LIBS="$(ejabberd_lib_dir)" HOME="$DIR"
    exec erl -sname "$(node_name "$n")" -setcookie "$CLUSTER_COOKIE" -noinput \
      -kernel inet_dist_use_interface '{127,0,0,1}' \
      -mnesia dir "\"$d/db\"" -s ejabberd \
      </dev/null >>"$d/console.log" 2>&1
  ) &
  echo $! >"$d/pid"
  wait_started "$n"
}

# wait_started N waits until node N answers status with 0 (started) and its
# MQTT port accepts connections.
wait_started() {
  local n=$1 deadline=$((SECONDS + 60)) port
  port=$(node_port "$n")
  while :; do
    if ! node_pid "$n" >/dev/null; then
      if grep -qs eaddrinuse "$DIR/node$n/ejabberd.log"; then
        echo "scripts/cluster: node $n: port $port is taken" >&2
        return 2
      fi
      echo "scripts/cluster: node $n exited during start; the end of its logs:" >&2
      tail -20 "$DIR/node$n/console.log" "$DIR/node$n/ejabberd.log" >&2 2>/dev/null
      return 1
    fi
    if ctl "$n" status >/dev/null 2>&1 && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "scripts/cluster: node $n not started after 60 s; see $DIR/node$n/ejabberd.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# kill_node N sends SIGKILL to node N's VM and waits until it is gone.
kill_node() {
  local n=$1 pid
  pid=$(node_pid "$n") || return 0
  kill -KILL "$pid"
  while node_pid "$n" >/dev/null; do sleep 0.01; done
}

# stop_node N stops node N gracefully (ejabberdctl stop), SIGKILL after 30 s.
stop_node() {
  local n=$1 pid deadline=$((SECONDS + 30))
  pid=$(node_pid "$n") || return 0
  ctl "$n" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
  while node_pid "$n" >/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      kill -KILL "$pid" 2>/dev/null
    fi
    sleep 0.1
  done
}
