#!/usr/bin/env bash
# Profile: where a domain's instructions go (issue 13). Runs a PROFILE_DOMAINS
# (default 300) domain testnet and a passive crawl of it into PostgreSQL,
# each process under `valgrind --tool=callgrind` (instruction counts:
# repeatable on a shared machine, unlike wall time); the testnet's counters
# are zeroed once it is up, so its start-up (certificate generation) is not
# counted. Prints the split per domain (scripts/profile_split.py) and
# writes it to docs/profile-split.txt (printed by scripts/bench.sh).
# MODE=accept profiles the acceptance probe instead; BIN picks the binary
# (TESTNET_BIN the testnet's, by default the same); PER_HOST sets the
# domains per shared testnet host (default 8); SAVE=0 keeps docs/ as is.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

N="${PROFILE_DOMAINS:-300}"
NET="${NET:-161}"
MODE="${MODE:-passive}"
RUN=.testnet/profile
rm -rf "$RUN" && mkdir -p "$RUN"
ensure_apt valgrind postgresql-client
# Building the binary here needs a C compiler (aws-lc, mimalloc).
[ -n "${BIN:-}" ] || { ensure_rust; ensure_apt gcc pkg-config ca-certificates; }
raise_nofile
ensure_database
if [ -z "${BIN:-}" ]; then
  cargo build --quiet --release --features testnet --bin xmpp-survey
  BIN=target/release/xmpp-survey
fi
TESTNET_BIN="${TESTNET_BIN:-$BIN}"
DNS_PORT=$(free_port)
say "testnet ($N domains, ${PER_HOST:-8} per shared host) under callgrind"
valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.testnet" \
  "$TESTNET_BIN" testnet up --domains "$N" --seed 11 --net "$NET" --dns-port "$DNS_PORT" \
  --per-host "${PER_HOST:-8}" --manifest "$RUN/manifest.json" >"$RUN/testnet.log" 2>&1 &
TESTNET_PID=$!
on_exit 'kill "$TESTNET_PID" 2>/dev/null; wait "$TESTNET_PID" 2>/dev/null'
for _ in $(seq 1 1200); do
  [ -s "$RUN/manifest.probe.toml" ] && break
  kill -0 "$TESTNET_PID" 2>/dev/null || { cat "$RUN/testnet.log" >&2; die "testnet failed"; }
  sleep 0.5
done
[ -s "$RUN/manifest.probe.toml" ] || die "testnet did not start"
sleep 2
callgrind_control -z "$TESTNET_PID" >/dev/null
DB="xs_profile_$$"
psql -X -q "$DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
on_exit 'psql -X -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null'
URL="${DATABASE_URL%/*}/$DB"
"$BIN" db migrate --database-url "$URL" >/dev/null
extra=()
[ "$MODE" = accept ] && extra=(--config "$RUN/manifest.probe.toml")
say "crawl ($MODE) under callgrind"
valgrind --tool=callgrind --callgrind-out-file="$RUN/callgrind.crawl" \
  "$BIN" crawl --label profile --source "$RUN/manifest.domains.txt" --database-url "$URL" \
  --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" "${extra[@]}" \
  --allow-private --no-limits --concurrency 32 --phase-timeout 60s --connect-timeout 30s \
  --dns-timeout 10s --max-attempts 1 >"$RUN/crawl.out" 2>"$RUN/crawl.err" || { tail -n 20 "$RUN/crawl.err" >&2; die "crawl failed"; }
grep -m1 '^worker ' "$RUN/crawl.out"
grep -m1 '^dns: ' "$RUN/crawl.out" || true
callgrind_control -d "$TESTNET_PID" >/dev/null
sleep 2
DUMP=$(ls -t "$RUN"/callgrind.testnet* | head -1)
RESULTS=$(psql -X -tA "$URL" -c "SELECT count(*) FROM results")
python3 scripts/profile_split.py "$RESULTS" "crawler ($MODE)=$RUN/callgrind.crawl" "testnet servers=$DUMP" \
  | tee "$RUN/split.txt"
if [ "${SAVE:-1}" = 1 ]; then
  if [ "$MODE" = accept ]; then cp "$RUN/split.txt" docs/profile-split-accept.txt; else cp "$RUN/split.txt" docs/profile-split.txt; fi
fi
