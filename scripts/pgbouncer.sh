#!/usr/bin/env bash
# A PgBouncer in transaction pooling mode in front of a PostgreSQL server, for the test
# suite and CI (Debian's `pgbouncer` package). Every database of the server is reachable
# through it under its own name, as every user the server trusts.
#
#   scripts/pgbouncer.sh start DIR [PORT] [SERVER_HOST] [SERVER_PORT]   # 6432 -> 127.0.0.1:5432
#   scripts/pgbouncer.sh stop DIR
#
# DIR holds its configuration, log and pid file. `start` returns once it accepts
# connections; `stop` returns once it has exited (connections are dropped at once).
set -euo pipefail

command=${1:?usage: pgbouncer.sh start|stop DIR [PORT] [SERVER_HOST] [SERVER_PORT]}
dir=${2:?usage: pgbouncer.sh start|stop DIR [PORT] [SERVER_HOST] [SERVER_PORT]}
port=${3:-6432}
server_host=${4:-127.0.0.1}
server_port=${5:-5432}
bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

stop() {
  local pid
  pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null) || return 0
  kill -TERM "$pid" 2>/dev/null || return 0 # SIGTERM: immediate shutdown
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  echo "pgbouncer ($pid) did not stop" >&2
  return 1
}

start() {
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # trust still needs each user listed; these are the users the suite connects as.
  printf '"%s" ""\n' postgres "$(id -un)" | sort -u >"$dir/userlist.txt"
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=$server_host port=$server_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
admin_users = postgres
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  local user=()
  if [ "$(id -u)" = 0 ]; then # pgbouncer refuses to run as root
    chown -R postgres "$dir"
    user=(-u postgres)
  fi
  "$bin" -d "${user[@]}" "$dir/pgbouncer.ini"
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "pgbouncer did not start on port $port; its log:" >&2
  cat "$dir/pgbouncer.log" >&2 || true
  return 1
}

case $command in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: pgbouncer.sh start|stop DIR [PORT] [SERVER_HOST] [SERVER_PORT]" >&2
    exit 2
    ;;
esac
