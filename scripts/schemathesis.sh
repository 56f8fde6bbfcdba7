#!/usr/bin/env bash
# Fuzzes the JSON API of `xmpp-survey serve` with schemathesis (from PyPI,
# installed into .venv/schemathesis) against the OpenAPI document the server
# serves at /api/v1/openapi.json: every check (no 5xx, every response
# matches its schema, status codes and content types as documented, bad
# input refused). The server runs on a crawl of a small testnet, so the
# documented resources exist. Called by scripts/test.sh; needs
# DATABASE_URL (scripts/test.sh sets it) or starts a private PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt python3 python3-venv curl postgresql-client
raise_nofile
ensure_database

VENV=.venv/schemathesis
if [ ! -x "$VENV/bin/schemathesis" ]; then
  say "installing schemathesis from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
cargo build --quiet --features testnet --bin xmpp-survey
BIN=target/debug/xmpp-survey
RUN=.testnet/schemathesis
mkdir -p "$RUN"
NET="${NET:-78}"
DNS_PORT=$(free_port)
start_testnet "$BIN" "$RUN" 24 5 "$NET" "$DNS_PORT"

DB="xs_schemathesis_$$"
psql -X -q "$DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
on_exit 'psql -X -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null'
URL="${DATABASE_URL%/*}/$DB"
"$BIN" db migrate --database-url "$URL" >/dev/null
say "crawling the 24-domain testnet (so the API has domains, crawls and history)"
"$BIN" crawl --label st-1 --source "$RUN/manifest.domains.txt" --database-url "$URL" \
  --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --config "$RUN/manifest.probe.toml" --allow-private \
  --phase-timeout 2s --dns-timeout 1s --retry-base 200ms --max-attempts 2 >/dev/null 2>"$RUN/crawl.err" \
  || { cat "$RUN/crawl.err" >&2; die "crawl failed"; }

PORT=$(free_port)
"$BIN" serve --bind "127.0.0.1:$PORT" --database-url "$URL" --no-live >"$RUN/serve.log" 2>&1 &
SERVE_PID=$!
on_exit 'kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null'
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/v1/openapi.json" && break; sleep 0.2; done

say "schemathesis: every check against http://127.0.0.1:$PORT/api/v1/openapi.json"
# Deterministic and bounded: the same seed every run, a fixed number of
# examples per operation. Every check but positive_data_acceptance: the
# domain parameter's pattern describes the normalised syntax, but a few
# strings matching it are still no domain (an IPv4 address such as
# 1.2.3.4, a bad xn-- label) and get the documented 400.
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --checks all --exclude-checks positive_data_acceptance --seed 1 --max-examples "${MAX_EXAMPLES:-60}" --workers 2 \
  --generation-deterministic --no-color --request-timeout 10 \
  --report junit --report-dir "$RUN/report"
if grep -qE 'panicked|thread .* panicked' "$RUN/serve.log"; then
  cat "$RUN/serve.log" >&2
  die "serve panicked during the fuzzing"
fi
say "schemathesis: no failure"
