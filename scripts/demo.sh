#!/usr/bin/env bash
# The main job, end to end on this machine, loopback only:
#   1. build xmpp-survey;
#   2. start the local test federation (private CA, DNS, a few hundred
#      simulated servers, every profile);
#   3. PostgreSQL: the one in DATABASE_URL, else a private cluster started
#      here (as the postgres user when run as root) and removed at the end;
#   4. migrate the schema, crawl every testnet domain into PostgreSQL with
#      the active acceptance probe (the testnet's own probe identity);
#   5. print the crawl summary read back from PostgreSQL, a few SQL-ready
#      queries (one over the acceptance-evidence tables), and check every
#      stored report against the manifest;
#   6. write the readiness report, show an operator's `lookup`, and start
#      the web server on the crawl (checked page by page; DEMO_SERVE=yes or
#      answering y leaves it running and prints its URL).
# Works on a fresh Debian with only Rust installed; installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DOMAINS="${DOMAINS:-300}"
NET="${NET:-20}"
RUN=.testnet/demo
mkdir -p "$RUN"

ensure_rust
ensure_apt gcc pkg-config ca-certificates postgresql-client curl
raise_nofile
ensure_database

say "building xmpp-survey (with the testnet)"
cargo build --quiet --features testnet --bin xmpp-survey
BIN=target/debug/xmpp-survey
DNS_PORT=$(free_port)

start_testnet "$BIN" "$RUN" "$DOMAINS" 7 "$NET" "$DNS_PORT"

DB="xmpp_survey_demo"
say "database $DB on ${DATABASE_URL%/*} (recreated)"
psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" >/dev/null
export DATABASE_URL="${DATABASE_URL%/*}/$DB"
"$BIN" db migrate

LABEL="demo-$(date +%G-W%V)"
say "crawling every testnet domain into PostgreSQL as probe.xs.test (crawl $LABEL)"
"$BIN" crawl --label "$LABEL" --source "$RUN/manifest.domains.txt" \
  --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --config "$RUN/manifest.probe.toml" --allow-private \
  --phase-timeout 3s --dns-timeout 1s --retry-base 1s --max-attempts 2 \
  --concurrency 64 --per-ip-rate 25 --per-ip-concurrency 8

say "a few SQL-ready queries (psql \"$DATABASE_URL\")"
q() { echo "-- $1"; echo "$2"; psql -P pager=off "$DATABASE_URL" -c "$2"; }
q "s2s acceptance of server-only certificates, by server software" \
  "SELECT acceptance, software_name, software_version, count(*) FROM results GROUP BY 1,2,3 ORDER BY 4 DESC;"
q "EKU class of the s2s certificates, and how many are Let's Encrypt" \
  "SELECT s2s_eku_class, s2s_lets_encrypt, count(*) FROM results GROUP BY 1,2 ORDER BY 3 DESC;"
q "certificates that will renew as server-only, by month" \
  "SELECT date_trunc('month', renews_server_only)::date AS month, count(*) FROM certificates WHERE renews_server_only IS NOT NULL GROUP BY 1 ORDER BY 1;"
q "domains whose c2s STARTTLS is not required" \
  "SELECT d.name, r.c2s_starttls, r.c2s_sasl_before_tls FROM results r JOIN domains d ON d.id = r.domain_id WHERE r.c2s_starttls IS DISTINCT FROM 'required' AND r.c2s_status <> 'no_address' ORDER BY 1 LIMIT 10;"

say "the acceptance evidence (schema 2 tables: acceptance_attempts, inbound_streams)"
q "acceptance verdict x reason x what EXTERNAL answered the server-only certificate" \
  "SELECT r.acceptance, r.acceptance_reason, a.external_outcome, a.external_condition, count(*) FROM results r LEFT JOIN acceptance_attempts a ON a.crawl_id = r.crawl_id AND a.domain_id = r.domain_id AND a.cert_kind = 'server_only' WHERE r.acceptance <> 'not_run' GROUP BY 1,2,3,4 ORDER BY 5 DESC, 1, 2;"
q "streams the targets opened back to the probe: their client certificate's EKU and purpose, and how they authenticated" \
  "SELECT client_eku_class, client_purpose, auth_method, auth_outcome, count(*) FROM inbound_streams GROUP BY 1,2,3,4 ORDER BY 5 DESC;"

say "checking every stored report against the manifest"
psql -tA "$DATABASE_URL" -c "SELECT report FROM results" >"$RUN/reports.jsonl"
"$BIN" testnet check --manifest "$RUN/manifest.json" --reports "$RUN/reports.jsonl"
say "done: the crawl is in $DATABASE_URL (schema: schema.sql + migrations/)"

say "writing the readiness report of crawl $LABEL"
REPORT=$("$BIN" report --crawl "$LABEL" --out "reports/$LABEL")
say "report: $REPORT (also report.md, summary.json and CSV files beside it)"

DOMAIN=$(grep -m1 '^strict-eku-[0-9]' "$RUN/manifest.domains.txt" || head -n1 "$RUN/manifest.domains.txt")
say "what an operator of $DOMAIN reads: xmpp-survey lookup $DOMAIN"
"$BIN" lookup "$DOMAIN"

# The web server on the demo's crawl: pages, badge, feeds, JSON API and
# "test now" (live probes of the testnet, hence its resolver, CA and
# identity, and --allow-private). DEMO_SERVE=yes leaves it running without
# asking, DEMO_SERVE=no stops it after the check; otherwise a terminal is
# asked.
PORT="${SERVE_PORT:-$(free_port)}"
URL="http://127.0.0.1:$PORT"
say "starting the web server: $BIN serve --bind 127.0.0.1:$PORT"
"$BIN" serve --bind "127.0.0.1:$PORT" --reports-dir reports \
  --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --config "$RUN/manifest.probe.toml" --allow-private >"$RUN/serve.log" 2>&1 &
SERVE_PID=$!
on_exit 'kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null'
for _ in $(seq 1 100); do curl -sf -o /dev/null "$URL/" && break; sleep 0.2; done
for path in / "/domain/$DOMAIN" "/badge/$DOMAIN.svg" "/feed.atom" "/reports/" "/api/v1/stats" "/api/v1/openapi.json"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$URL$path")
  printf '  %s %s\n' "$code" "$URL$path"
  [ "$code" = 200 ] || { cat "$RUN/serve.log" >&2; die "$path answered $code"; }
done
keep="${DEMO_SERVE:-}"
if [ -z "$keep" ] && [ -t 0 ]; then
  read -r -p "leave the web server running at $URL (Ctrl-C stops it)? [y/N] " keep || keep=no
fi
case "$keep" in
  y|Y|yes)
    say "the web server runs at $URL (domain page: $URL/domain/$DOMAIN); Ctrl-C stops it and the demo"
    wait "$SERVE_PID" ;;
  *) say "web server checked at $URL and stopped (DEMO_SERVE=yes keeps it running)" ;;
esac
