#!/usr/bin/env bash
# The main job, end to end on this machine, loopback only:
#   1. build xmpp-survey;
#   2. start the local test federation (private CA, DNS, simulated servers);
#   3. probe every testnet domain, passively and with the active acceptance
#      probe (the testnet's own probe identity and our dialback listener),
#      and print the results table;
#   4. check every measured fact against the testnet's manifest.
# Works on a fresh Debian with only Rust installed; installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DOMAINS="${DOMAINS:-200}"
NET="${NET:-20}"
DNS_PORT="${DNS_PORT:-5300}"
RUN=.testnet/demo
mkdir -p "$RUN"

ensure_rust
ensure_apt gcc pkg-config ca-certificates
raise_nofile

say "building xmpp-survey"
cargo build --quiet --bin xmpp-survey
BIN=target/debug/xmpp-survey

say "starting the testnet: $DOMAINS domains on 127.$NET.0.0/16, DNS on 127.$NET.0.1:$DNS_PORT"
rm -f "$RUN/manifest.json"
"$BIN" testnet up --domains "$DOMAINS" --seed 7 --net "$NET" --dns-port "$DNS_PORT" \
  --manifest "$RUN/manifest.json" >"$RUN/testnet.log" 2>&1 &
TESTNET_PID=$!
trap 'kill "$TESTNET_PID" 2>/dev/null || true; wait "$TESTNET_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  [ -s "$RUN/manifest.json" ] && break
  kill -0 "$TESTNET_PID" 2>/dev/null || { cat "$RUN/testnet.log" >&2; die "testnet failed to start"; }
  sleep 0.5
done
[ -s "$RUN/manifest.json" ] || die "testnet did not write its manifest in 60 s"

say "probing every testnet domain as probe.xs.test (passive + acceptance; the testnet CA is trusted only through --extra-ca)"
"$BIN" probe --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --config "$RUN/manifest.probe.toml" \
  --allow-private --phase-timeout 3s --dns-timeout 1s --concurrency 32 \
  --file "$RUN/manifest.domains.txt" --table --json-out "$RUN/probe.jsonl"

say "two domains in full (the evidence behind a table row)"
"$BIN" probe --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
  --config "$RUN/manifest.probe.toml" --listen "127.$NET.0.2:5269" \
  --allow-private --phase-timeout 3s \
  "$(grep -m1 '^strict-eku-[0-9]' "$RUN/manifest.domains.txt")" \
  "$(grep -m1 '^cert-le-client-and-server' "$RUN/manifest.domains.txt")"

say "checking every measured fact against the manifest"
"$BIN" testnet check --manifest "$RUN/manifest.json" --reports "$RUN/probe.jsonl"
say "done: results in $RUN/probe.jsonl (JSON lines, docs/probe-json-schema.md)"
