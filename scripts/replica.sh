#!/usr/bin/env bash
# A streaming replica of the local PostgreSQL, for the read replica tests:
#   scripts/replica.sh start    a hot standby on 127.0.0.1:5433 (a running one is reused)
#   scripts/replica.sh stop
#   scripts/replica.sh status
#   scripts/replica.sh promote  end its recovery: it becomes a primary of its own (tests)
# It is a plain data directory (`pg_basebackup -R`), not a cluster of the system's; the
# primary gets a `host replication` line in pg_hba.conf (then a reload) if it lacks one.
# A replication slot (crudkit_replica_<port>) keeps the WAL the replica has not received
# yet on a busy primary; `stop` drops it, so a stopped replica holds no WAL back.
# CRUDKIT_REPLICA_DIR, CRUDKIT_REPLICA_PORT and CRUDKIT_PRIMARY_PORT change the defaults.
set -euo pipefail

version=${PG_VERSION:-$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)}
bin=/usr/lib/postgresql/$version/bin
primary_port=${CRUDKIT_PRIMARY_PORT:-5432}
port=${CRUDKIT_REPLICA_PORT:-5433}
dir=${CRUDKIT_REPLICA_DIR:-/var/lib/postgresql/crudkit-replica}
log=$dir.log
slot=crudkit_replica_$port

# The server must not run as root: as root, everything below runs as postgres.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

running() {
  as_postgres "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1
}

in_recovery() {
  [ "$(psql -h 127.0.0.1 -p "$port" -U postgres -XAtc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]
}

allow_replication() {
  local hba
  hba=$(psql -h 127.0.0.1 -p "$primary_port" -U postgres -XAtc 'SHOW hba_file')
  local line="host replication all 127.0.0.1/32 trust"
  if ! grep -qxF "$line" "$hba"; then
    echo "$line" >>"$hba"
    psql -h 127.0.0.1 -p "$primary_port" -U postgres -XAtc 'SELECT pg_reload_conf()' >/dev/null
  fi
}

drop_slot() {
  for _ in $(seq 20); do
    psql -h 127.0.0.1 -p "$primary_port" -U postgres -XAtc \
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
       WHERE slot_name = '$slot' AND NOT active" >/dev/null
    [ -z "$(psql -h 127.0.0.1 -p "$primary_port" -U postgres -XAtc \
      "SELECT 1 FROM pg_replication_slots WHERE slot_name = '$slot'")" ] && return
    sleep 0.5  # still held by a walsender that is going away
  done
  echo "replica: slot $slot is still in use" >&2
  exit 1
}

# A hot standby needs these at least as high as on the primary.
primary_setting() {
  psql -h 127.0.0.1 -p "$primary_port" -U postgres -XAtc "SHOW $1"
}

start() {
  if running && in_recovery; then
    echo "replica: running on 127.0.0.1:$port (reused)"
    return
  fi
  if running; then  # up but no longer a standby (promoted): start over
    as_postgres "$bin/pg_ctl" -D "$dir" -m immediate stop >/dev/null
  fi
  allow_replication
  # A fresh copy each time: a stopped replica may need WAL the primary has recycled.
  drop_slot
  rm -rf "$dir"
  as_postgres mkdir -p "$(dirname "$dir")"
  as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir" \
    -R -X stream -c fast -C -S "$slot"
  # A Debian cluster keeps its configuration outside the data directory: write our own.
  as_postgres tee "$dir/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '/tmp'
hot_standby = on
hot_standby_feedback = on
max_connections = $(primary_setting max_connections)
max_worker_processes = $(primary_setting max_worker_processes)
max_wal_senders = $(primary_setting max_wal_senders)
max_prepared_transactions = $(primary_setting max_prepared_transactions)
max_locks_per_transaction = $(primary_setting max_locks_per_transaction)
shared_buffers = 32MB
EOF
  as_postgres tee "$dir/pg_hba.conf" >/dev/null <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
  as_postgres rm -f "$dir/postmaster.pid" "$dir/postmaster.opts"
  as_postgres "$bin/pg_ctl" -D "$dir" -l "$log" -w -t 60 start >/dev/null
  for _ in $(seq 60); do in_recovery && break; sleep 0.5; done
  in_recovery || { echo "replica: did not start as a standby, see $log" >&2; exit 1; }
  echo "replica: started on 127.0.0.1:$port"
}

stop() {
  if running; then
    as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
    echo "replica: stopped"
  else
    echo "replica: not running"
  fi
  drop_slot
}

status() {
  if ! running; then
    echo "replica: not running"
    return 1
  fi
  psql -h 127.0.0.1 -p "$port" -U postgres -XAtc "SELECT 'replica: in recovery ' || pg_is_in_recovery() || ', replayed ' || coalesce(pg_last_wal_replay_lsn()::text, '-')"
}

promote() {
  as_postgres "$bin/pg_ctl" -D "$dir" -w promote >/dev/null
  echo "replica: promoted"
}

case "${1:-}" in
  start) start ;;
  promote) promote ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status|promote" >&2; exit 2 ;;
esac
