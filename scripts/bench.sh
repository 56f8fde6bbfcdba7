#!/usr/bin/env bash
# Benchmark: crawl a DOMAINS-domain testnet (default 10,000) into
# PostgreSQL without rate limits and print domains/s, TLS handshakes/s,
# DB rows/s and the crawler's peak RSS, plus the machine's raw TLS
# handshake ceiling against the same testnet measured in the same run
# (a minimal rustls loop), so the crawler's figure is also a ratio.
#
# `scripts/bench.sh attacks`: the dialback listener under each attack of
# the "No one outside can change a verdict" issue, one process per case: a
# testnet crawl with the acceptance probe (ATTACK_DOMAINS, default 300)
# while a hostile client attacks from one address and from a /24
# (ATTACK_SECONDS, default 20) from separate `xmpp-survey testnet attack`
# processes; prints manifest mismatches, peak RSS and fds of the crawling
# process (compare with the no-attack row) and the listener's counters.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

if [ "${1:-}" = attacks ]; then
  ensure_rust
  raise_nofile
  say "building the stress test"
  cargo test --quiet --features testnet --test integration --no-run 2>/dev/null
  header=1
  for kind in none verify_flood idle_hold slow_text big_client_chain forged_from; do
    if [ -n "$header" ]; then export ATTACK_HEADER=1; header=; else unset ATTACK_HEADER; fi
    ATTACK_ONLY=$kind cargo test --quiet --features testnet --test integration attack_figures -- --ignored --nocapture 2>/dev/null \
      | grep -E '^(attack|none|verify_flood|idle_hold|slow_text|big_client_chain|forged_from) ' \
      || die "attack case $kind failed"
  done
  exit 0
fi

DOMAINS="${DOMAINS:-10000}"
NET="${NET:-23}"
CONCURRENCY="${CONCURRENCY:-512}"
RUN=.testnet/bench
mkdir -p "$RUN"

ensure_rust
ensure_apt gcc pkg-config ca-certificates time postgresql-client
raise_nofile
ensure_database

say "building xmpp-survey (release, with the testnet)"
cargo build --quiet --release --features testnet --bin xmpp-survey
BIN=target/release/xmpp-survey
DNS_PORT=$(free_port)

start_testnet "$BIN" "$RUN" "$DOMAINS" 11 "$NET" "$DNS_PORT"

DB="xs_bench_$$"
psql -q "$DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
BENCH_URL="${DATABASE_URL%/*}/$DB"
"$BIN" db migrate --database-url "$BENCH_URL" >/dev/null

say "baseline: raw rustls handshakes against the same testnet (10 s)"
CEILING_LINE=$("$BIN" testnet tls-ceiling --manifest "$RUN/manifest.json" --duration 10s --concurrency 64)
echo "$CEILING_LINE"
CEILING=$(echo "$CEILING_LINE" | sed -E 's/.*= ([0-9]+)\/s.*/\1/')

say "crawl: $DOMAINS domains, no rate limits, concurrency $CONCURRENCY"
/usr/bin/time -v -o "$RUN/time.txt" "$BIN" crawl --label bench --source "$RUN/manifest.domains.txt" \
  --database-url "$BENCH_URL" --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --allow-private --no-limits --concurrency "$CONCURRENCY" --phase-timeout 2s --connect-timeout 2s \
  --dns-timeout 1s --max-attempts 1 >"$RUN/crawl.out" 2>"$RUN/crawl.err" || { tail -n 30 "$RUN/crawl.err" >&2; die "crawl failed"; }
WORKER=$(grep -m1 '^worker ' "$RUN/crawl.out")
echo "$WORKER"
SECS=$(echo "$WORKER" | sed -E 's/.* in ([0-9.]+)s .*/\1/')

RSS_KB=$(grep 'Maximum resident set size' "$RUN/time.txt" | awk '{print $NF}')
HANDSHAKES=$(psql -tA "$BENCH_URL" -c "SELECT count(*) FROM endpoints WHERE tls_version IS NOT NULL")
RESULTS=$(psql -tA "$BENCH_URL" -c "SELECT count(*) FROM results")
ROWS=$(psql -tA "$BENCH_URL" -c "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM certificates) + (SELECT count(*) FROM chain_members) + (SELECT count(*) FROM dns_records) + (SELECT count(*) FROM crawl_queue)")
psql -q "$DATABASE_URL" -c "DROP DATABASE $DB" >/dev/null || true

awk -v d="$RESULTS" -v s="$SECS" -v h="$HANDSHAKES" -v r="$ROWS" -v rss="$RSS_KB" -v c="$CEILING" -v n="$DOMAINS" 'BEGIN {
  printf "\n== benchmark (%d domains, testnet and PostgreSQL on the same 2 cores)\n", n;
  printf "domains/s          %8.1f  (%d results in %.1f s)\n", d/s, d, s;
  printf "TLS handshakes/s   %8.1f  (%d completed; ceiling %d/s; ratio %.2f)\n", h/s, h, c, (h/s)/c;
  printf "DB rows/s          %8.1f  (%d rows)\n", r/s, r;
  printf "peak RSS           %8.1f MB\n", rss/1024;
}'
