# pgbouncer.sh: throwaway PgBouncers for the integration tests (after pg.sh).
#
# pgb_start NAME SERVER [POOL_MODE]: a PgBouncer of its own (Debian's
# pgbouncer package: never its system service) on a free 127.0.0.1 port,
# as the `postgres` OS user when we are root (it refuses root too), with
# its own ini file in $TEST_TMP/NAME/: entry `app` pointing at server
# SERVER's database app over its unix socket, an entry `other` that the
# switchover must leave alone, a comment, trust authentication for every
# user of the servers (auth_file lists postgres and app_rw), admin_users
# postgres, POOL_MODE (default transaction); PGB_ENTRY_OPTS (e.g.
# min_pool_size=2) are added to entry app; PGB_ALIAS=NAME adds an entry
# NAME that leads to the same database as app. After it:
#   NAME_PORT, NAME_INI, NAME_ADMIN (the admin console's conninfo),
#   NAME_APP (a conninfo for database app through it as app_rw).
# pgb q NAME CMD runs an admin console command, rows unaligned.
# pgb_entry NAME: "host|port|database|paused" of entry app (SHOW DATABASES).
# Every PgBouncer started here is stopped when the test exits.
# Without pgbouncer the test skips, except on CI (CI=true), where it must run.
if ! command -v pgbouncer >/dev/null; then
  [ "${CI:-}" = true ] && bail "pgbouncer is not installed (scripts/install-deps.sh installs it)"
  skip_all "pgbouncer is not installed (scripts/install-deps.sh installs it)"
fi
PGB_PIDFILES=""

pgb_cleanup() {
  local f
  for f in $PGB_PIDFILES; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
  done
  pg_cleanup
}
trap pgb_cleanup EXIT

pgb_start() {  # pgb_start NAME SERVER [POOL_MODE]
  local name=$1 server=$2 mode=${3:-transaction} dir="$TEST_TMP/$1" port up sup sock sport try
  sup=$(echo "$server" | tr '[:lower:]' '[:upper:]')
  eval "sock=\$${sup}_SOCK sport=\$${sup}_PORT"
  mkdir -p "$dir"
  for try in 1 2 3 4 5; do
    port=$(free_port) || bail "no free port"
    cat >"$dir/pgbouncer.ini" <<INI
;; a PgBouncer for ferry's tests: ferry rewrites only the entry app
[databases]
app = host=$sock port=$sport dbname=app${PGB_ENTRY_OPTS:+ $PGB_ENTRY_OPTS}
other = host=$sock port=$sport dbname=postgres pool_size=2
${PGB_ALIAS:+$PGB_ALIAS = host=$sock port=$sport dbname=app}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = $mode
default_pool_size = 20
max_client_conn = 200
pidfile = $dir/pgbouncer.pid
logfile = $dir/pgbouncer.log
INI
    printf '"postgres" ""\n"app_rw" ""\n' >"$dir/userlist.txt"
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
    rm -f "$dir/pgbouncer.pid"
    if as_pg pgbouncer -d "$dir/pgbouncer.ini" >>"$dir/start.log" 2>&1; then
      for _ in $(seq 1 50); do
        [ -f "$dir/pgbouncer.pid" ] && "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$port" -U postgres pgbouncer -c "SHOW VERSION" >/dev/null 2>&1 && break
        sleep 0.1
      done
      if [ -f "$dir/pgbouncer.pid" ]; then
        PGB_PIDFILES="$PGB_PIDFILES $dir/pgbouncer.pid"
        up=$(echo "$name" | tr '[:lower:]' '[:upper:]')
        eval "${up}_PORT=$port ${up}_INI='$dir/pgbouncer.ini'"
        eval "${up}_ADMIN='host=127.0.0.1 port=$port dbname=pgbouncer user=postgres'"
        eval "${up}_APP='host=127.0.0.1 port=$port dbname=app user=app_rw'"
        return 0
      fi
    fi
  done
  cat "$dir/start.log" "$dir/pgbouncer.log" >&2 2>/dev/null
  bail "could not start pgbouncer $name"
}

pgb() {  # pgb q NAME CMD
  local up port; up=$(echo "$2" | tr '[:lower:]' '[:upper:]')
  eval "port=\$${up}_PORT"
  "$PGBIN/psql" -XAtq -h 127.0.0.1 -p "$port" -U postgres pgbouncer -c "$3"
}

pgb_entry() {  # pgb_entry NAME: host|port|database|paused of entry app
  pgb q "$1" "SHOW DATABASES" | awk -F'|' '$1 == "app" { print $2 "|" $3 "|" $4 "|" $(NF-1) }'
}
