#!/usr/bin/env bash
# A private PostgreSQL cluster for the demo, the tests and the benchmark,
# so nothing depends on a server that happens to run on the machine.
#
#   scripts/pg.sh start DIR PORT   initdb (once) + start on 127.0.0.1:PORT; prints the URL
#   scripts/pg.sh stop DIR         fast shutdown
#   scripts/pg.sh url PORT         the URL for PORT
#
# Installs Debian's PostgreSQL server when missing. As root it runs the
# server as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh"

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    say "installing Debian's PostgreSQL server (for a private test cluster)"
    ensure_apt postgresql
    d=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$d"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "user postgres missing (install the postgresql package)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

start() {
  local dir=$1 port=$2 bin
  bin=$(bindir)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    # The owner must reach the directory (mktemp makes parents 0700).
    chmod a+x "$(dirname "$dir")"
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir" -U postgres -A trust -E UTF8 --no-sync >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; die "initdb failed in $dir"; }
  fi
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
    start >/dev/null || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start on 127.0.0.1:$port"; }
  url "$port"
}

stop() {
  local dir=$1 bin
  bin=$(bindir)
  [ -f "$dir/postmaster.pid" ] || return 0
  as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
}

case "${1:-}" in
  start) start "${2:?DIR}" "${3:?PORT}" ;;
  stop) stop "${2:?DIR}" ;;
  url) url "${2:?PORT}" ;;
  *) die "usage: scripts/pg.sh start DIR PORT | stop DIR | url PORT" ;;
esac
