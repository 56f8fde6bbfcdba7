#!/usr/bin/env bash
# Benchmark (issue 13): crawl a DOMAINS-domain testnet (default 10,000)
# into PostgreSQL without rate limits, passively and with the acceptance
# probe (ACCEPT=0 skips it), and print for each run domains/s, its ratio to
# the machine's raw TLS handshake ceiling expressed in domains (ceiling ÷
# handshakes per domain; a minimal rustls loop against the same testnet in
# the same run), TLS handshakes/s, DB rows/s, peak RSS, and the writer
# alone (`testnet write-bench`: the run's reports stored again through the
# crawl's write path) as results/s and as a multiple of the crawl's rate.
# With the acceptance probe, one more run (`new-accept-real`, REAL=0 skips
# it) presents the server-only certificate alone, as a crawl of the real
# network does.
# BASE_BIN=path runs a baseline binary back-to-back on the same testnet
# and prints the speed-ups; BIG=100000 adds a passive crawl of that many
# domains (peak RSS at both sizes). The profile split (scripts/profile.sh,
# callgrind) is printed from docs/profile-split.txt.
#
# `scripts/bench.sh attacks`: the dialback listener under each attack of
# the "No one outside can change a verdict" issue, one process per case: a
# testnet crawl with the acceptance probe (ATTACK_DOMAINS, default 300)
# while a hostile client attacks from one address and from a /24
# (ATTACK_SECONDS, default 20) from separate `xmpp-survey testnet attack`
# processes; prints manifest mismatches, peak RSS and fds of the crawling
# process (compare with the no-attack row) and the listener's counters.
#
# `scripts/bench.sh report`: the readiness report over 1,000,000 stored
# domain results (100,000 domains x 10 crawls,
# synthetic and deterministic: scripts/bench-report.sql), loaded with COPY
# into a fresh database; prints the load time, the report's wall time and
# peak RSS (GNU time) and the rows per table.
#
# `scripts/bench.sh web`: `serve` on the same 1,000,000 results (the
# latest crawl's results given a real stored report), loaded with wrk:
# requests/s, p99 latency and non-2xx answers for the badge and the domain
# page of random domains, beside a static file as the HTTP stack's
# ceiling in the same run; and serve's peak RSS.
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

# Loads scripts/bench-report.sql (100,000 domains x 10 crawls) into a fresh
# database; sets BENCH_URL, LOAD (seconds), ROWS and SIZE.
load_bench_db() {
  BIN=target/release/xmpp-survey
  SQL=scripts/bench-report.sql
  RUN=.testnet/bench-report
  rm -rf "$RUN" && mkdir -p "$RUN"
  DB="xs_bench_report_$$"
  psql -X -q "$DATABASE_URL" -c "CREATE DATABASE $DB" >/dev/null
  # KEEP=1 keeps the database (to EXPLAIN the report's statements).
  [ "${KEEP:-}" = 1 ] || on_exit 'psql -X -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null'
  BENCH_URL="${DATABASE_URL%/*}/$DB"
  "$BIN" db migrate --database-url "$BENCH_URL" >/dev/null
  # A section of $SQL: the lines after `--@NAME [(columns)]` up to the next.
  section() { awk -v s="$1" '/^--@/ { on = (substr($1, 4) == s); next } on' "$SQL"; }
  columns() { sed -nE "s/^--@$1 (\(.*\))$/\1/p" "$SQL"; }
  # Foreign keys are correct by construction: a superuser skips their
  # per-row triggers while loading (session_replication_role).
  REPLICA=""
  [ "$(psql -X -tA "$BENCH_URL" -c "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")" = t ] \
    && REPLICA="SET session_replication_role = replica"
  say "loading 100,000 domains x 10 crawls (COPY)"
  T0=$(date +%s.%N)
  awk '/^--@/ { exit } { print }' "$SQL" | psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL"
  section crawls | psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL"
  for t in domains crawl_queue certificates results endpoints chain_members acceptance_dialback acceptance_attempts; do
    S=$(date +%s.%N)
    psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" -c "COPY ($(section "$t")) TO STDOUT" \
      | psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" ${REPLICA:+-c "$REPLICA"} -c "COPY $t $(columns "$t") FROM STDIN"
    awk -v t="$t" -v a="$S" -v b="$(date +%s.%N)" 'BEGIN { printf "  %-20s %6.1f s\n", t, b - a }'
  done
  psql -X -q "$BENCH_URL" -c "SET client_min_messages = warning" -c "DROP SCHEMA bench CASCADE" -c "VACUUM ANALYZE"
  LOAD=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  ROWS=$(psql -X -tA "$BENCH_URL" -c "SELECT string_agg(format('%s %s', t, n), ', ' ORDER BY ord) FROM (
    SELECT 1 AS ord, 'results' AS t, count(*) AS n FROM results UNION ALL SELECT 2, 'endpoints', count(*) FROM endpoints
    UNION ALL SELECT 3, 'chain_members', count(*) FROM chain_members UNION ALL SELECT 4, 'certificates', count(*) FROM certificates
    UNION ALL SELECT 5, 'crawl_queue', count(*) FROM crawl_queue UNION ALL SELECT 6, 'acceptance_attempts', count(*) FROM acceptance_attempts
    UNION ALL SELECT 7, 'acceptance_dialback', count(*) FROM acceptance_dialback UNION ALL SELECT 8, 'domains', count(*) FROM domains) x")
  SIZE=$(psql -X -tA "$BENCH_URL" -c "SELECT pg_size_pretty(pg_database_size(current_database()))")
}

if [ "${1:-}" = report ]; then
  ensure_rust
  ensure_apt time postgresql-client
  ensure_database
  say "building xmpp-survey (release, with the testnet)"
  cargo build --quiet --release --features testnet --bin xmpp-survey
  load_bench_db
  say "report on bench-10 (the 10th crawl)"
  /usr/bin/time -v -o "$RUN/time.txt" "$BIN" report --crawl bench-10 --out "$RUN/out" --database-url "$BENCH_URL" \
    >"$RUN/report.out" 2>"$RUN/report.err" || { tail -n 30 "$RUN/report.err" >&2; die "report failed"; }
  grep -E '^[a-z]+\.csv: ' "$RUN/report.err" || true
  WALL=$(sed -nE 's/.*Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (.*)/\1/p' "$RUN/time.txt" \
    | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
  RSS_KB=$(grep 'Maximum resident set size' "$RUN/time.txt" | awk '{print $NF}')
  awk -v l="$LOAD" -v w="$WALL" -v r="$RSS_KB" -v rows="$ROWS" -v size="$SIZE" 'BEGIN {
    printf "\n== report benchmark (1,000,000 results: 100,000 domains x 10 crawls; PostgreSQL on the same 2 cores)\n";
    printf "rows               %s\n", rows;
    printf "database           %s\n", size;
    printf "load (COPY)        %8.1f s\n", l;
    printf "report wall time   %8.2f s  (target 5 s)\n", w;
    printf "report peak RSS    %8.1f MB (target 200 MB)\n", r / 1024;
  }'
  [ "${KEEP:-}" = 1 ] && say "kept the database: $BENCH_URL"
  exit 0
fi

if [ "${1:-}" = web ]; then
  ensure_rust
  ensure_apt time postgresql-client wrk curl
  ensure_database
  say "building xmpp-survey (release, with the testnet)"
  cargo build --quiet --release --features testnet --bin xmpp-survey
  load_bench_db
  RUN=.testnet/bench-web
  rm -rf "$RUN" && mkdir -p "$RUN"
  # The domain page parses the latest crawl's stored report: give the
  # 100,000 results of bench-10 a real one (a testnet domain's, renamed).
  say "storing a real probe report (scripts/bench-web-report.json) in the 100,000 results of bench-10"
  S=$(date +%s.%N)
  psql -X -q -v ON_ERROR_STOP=1 -v tpl="$(cat scripts/bench-web-report.json)" "$BENCH_URL" <<'SQL'
UPDATE results r SET report = jsonb_set(:'tpl'::jsonb, '{domain}', to_jsonb(d.name))
  FROM domains d, crawls c
 WHERE d.id = r.domain_id AND c.id = r.crawl_id AND c.label = 'bench-10';
VACUUM ANALYZE results;
SQL
  awk -v a="$S" -v b="$(date +%s.%N)" 'BEGIN { printf "  %-20s %6.1f s\n", "reports", b - a }'
  psql -X -q "$BENCH_URL" -c "\copy (SELECT name FROM domains ORDER BY id) TO '$RUN/domains.txt'"
  PORT=$(free_port)
  "$BIN" serve --bind "127.0.0.1:$PORT" --database-url "$BENCH_URL" >"$RUN/serve.log" 2>&1 &
  SERVE_PID=$!
  on_exit 'kill "$SERVE_PID" 2>/dev/null; wait "$SERVE_PID" 2>/dev/null'
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.2; done
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/" || { cat "$RUN/serve.log" >&2; die "serve did not answer"; }
  THREADS="${THREADS:-2}" CONNS="${CONNS:-32}" SECS="${SECS:-20}"
  # name  prefix  suffix: /static/site.css is the HTTP stack's ceiling on
  # this machine in the same run (no database), the baseline of the ratios.
  printf '%s\n' "static /static/site.css -" "badge /badge/ .svg" "page /domain/ -" >"$RUN/cases"
  : >"$RUN/figures"
  while read -r name prefix suffix; do
    [ "$suffix" = - ] && suffix=""
    domains="$RUN/domains.txt"; [ "$name" = static ] && domains=/dev/null
    say "wrk: $name ($THREADS threads, $CONNS connections, ${SECS}s after a 5s warm-up)"
    WRK_PREFIX="$prefix" WRK_SUFFIX="$suffix" WRK_DOMAINS="$domains" \
      wrk -t"$THREADS" -c"$CONNS" -d5s -s scripts/bench-web.lua "http://127.0.0.1:$PORT" >/dev/null
    WRK_PREFIX="$prefix" WRK_SUFFIX="$suffix" WRK_DOMAINS="$domains" \
      wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -s scripts/bench-web.lua "http://127.0.0.1:$PORT" \
      | tee "$RUN/wrk-$name.txt"
    RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$RUN/wrk-$name.txt")
    P99=$(awk '$1 == "99%" { print $2 }' "$RUN/wrk-$name.txt")
    BAD=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$RUN/wrk-$name.txt")
    echo "$name $RPS $P99 ${BAD:-0}" >>"$RUN/figures"
  done <"$RUN/cases"
  RSS=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVE_PID/status")
  BASE=$(awk '$1 == "static" { print $2 }' "$RUN/figures")
  printf '\n== web benchmark (100,000 domains x 10 crawls; wrk, server and PostgreSQL on the same 2 cores)\n'
  printf 'rows         %s\n' "$ROWS"
  printf '%-8s %12s %10s %10s %14s\n' case "requests/s" p99 "non-2xx" "ratio/static"
  while read -r name rps p99 bad; do
    awk -v n="$name" -v r="$rps" -v p="$p99" -v b="$bad" -v base="$BASE" \
      'BEGIN { printf "%-8s %12.0f %10s %10s %14.2f\n", n, r, p, b, r / base }'
  done <"$RUN/figures"
  printf 'serve peak RSS %.1f MB\n' "$(awk -v k="$RSS" 'BEGIN { print k / 1024 }')"
  exit 0
fi

DOMAINS="${DOMAINS:-10000}"
# BIG=100000: also a passive crawl of BIG domains (the testnet is then BIG
# domains and the DOMAINS runs take its first DOMAINS): peak RSS must stay
# flat between the two. The testnet's listening sockets must then fit under
# the open-file limit (one per simulated host and port): it is started with
# --dedicated-by-profile (domains that would get an address of their own
# share one per profile) and, unless PER_HOST says otherwise, 64 domains
# per shared host.
BIG="${BIG:-}"
[ -n "$BIG" ] && PER_HOST="${PER_HOST:-64}"
# BASE_BIN: a baseline binary (e.g. built from an earlier commit into its
# own target dir) crawled back-to-back with this one on the same testnet.
BASE_BIN="${BASE_BIN:-}"
# ACCEPT=0 skips the acceptance-probe runs.
ACCEPT="${ACCEPT:-1}"
# REAL=0 skips the extra acceptance run of this binary with the identity a
# crawl of the real network has: the server-only certificate alone (no
# public CA issues the client_and_server control certificate any more,
# MEASUREMENTS §3), so two attempts per domain instead of three. The
# issue's target is the run with the testnet's full identity
# (`new-accept`); this row is what a real crawl's probe costs.
REAL="${REAL:-1}"
# PER_HOST: domains per shared testnet host and SRV target name (default 8);
# more models a few hosting providers serving many domains.
[ -n "${PER_HOST:-}" ] && TESTNET_EXTRA="--per-host $PER_HOST"
[ -n "$BIG" ] && TESTNET_EXTRA="${TESTNET_EXTRA:-} --dedicated-by-profile"
NET="${NET:-23}"
CONCURRENCY="${CONCURRENCY:-512}"
RUN=.testnet/bench
mkdir -p "$RUN"

ensure_rust
ensure_apt gcc pkg-config ca-certificates time postgresql-client
raise_nofile
ensure_database

# NEW_BIN: measure that binary instead of building this tree's.
if [ -n "${NEW_BIN:-}" ]; then
  BIN=$NEW_BIN
else
  say "building xmpp-survey (release, with the testnet)"
  cargo build --quiet --release --features testnet --bin xmpp-survey
  BIN=target/release/xmpp-survey
fi
DNS_PORT=$(free_port)

start_testnet "$BIN" "$RUN" "${BIG:-$DOMAINS}" 11 "$NET" "$DNS_PORT"
head -n "$DOMAINS" "$RUN/manifest.domains.txt" >"$RUN/domains.small.txt"

# Warm-up: the testnet's servers make each domain's key and certificate on
# the first connection to it and keep them, so whichever crawl came first
# paid for them (a bias of ~1/3 of the testnet's CPU towards the second
# binary, seen on 2026-12-01). One untimed crawl of the measured list
# first (with the acceptance probe when the acceptance runs follow, so
# that what the servers make for those is warm too); the ceiling and every
# timed run then meet warm servers.
WARM_UP="${WARM_UP:-1}"

# run_one NAME BIN LIST MODE: one crawl into a fresh database; appends
# "NAME results secs handshakes rows rss_kb write_results_per_s" to
# $RUN/figures. MODE passive or accept (the acceptance probe, with the
# testnet's probe identity).
: >"$RUN/figures"
: >"$RUN/cpu"
# cpu_ticks PID...: user+system clock ticks (/proc/PID/stat fields 14, 15)
# summed over the processes (and their reaped children); 0 for none.
cpu_ticks() {
  local t=0 p f
  for p in "$@"; do
    f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    t=$(( t + $(echo "$f" | awk '{ print $12 + $13 + $14 + $15 }') ))
  done
  echo "$t"
}
run_one() {
  local name=$1 bin=$2 list=$3 mode=$4 db="xs_bench_$$_${1//-/_}" url extra=()
  psql -X -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  url="${DATABASE_URL%/*}/$db"
  "$bin" db migrate --database-url "$url" >/dev/null
  [ "$mode" = accept ] && extra=(--config "$RUN/manifest.probe.toml")
  [ "$mode" = accept-real ] && extra=(--config "$RUN/manifest.probe-real.toml")
  say "crawl $name: $(wc -l <"$list") domains ($mode, $bin), no rate limits, concurrency $CONCURRENCY"
  local tn0 pg0
  tn0=$(cpu_ticks "$TESTNET_PID"); pg0=$(cpu_ticks $(pgrep -x postgres))
  /usr/bin/time -v -o "$RUN/$name.time" "$bin" crawl --label bench --source "$list" \
    --database-url "$url" --resolver "127.$NET.0.1:$DNS_PORT" --extra-ca "$RUN/manifest.ca.pem" \
    "${extra[@]}" --allow-private --no-limits --concurrency "$CONCURRENCY" --phase-timeout 2s --connect-timeout 2s \
    --dns-timeout 1s --max-attempts 1 >"$RUN/$name.out" 2>"$RUN/$name.err" || { tail -n 30 "$RUN/$name.err" >&2; die "crawl $name failed"; }
  local tn1 pg1 cu cs
  tn1=$(cpu_ticks "$TESTNET_PID"); pg1=$(cpu_ticks $(pgrep -x postgres))
  cu=$(awk -F': ' '/User time/ { print $2 }' "$RUN/$name.time")
  cs=$(awk -F': ' '/System time/ { print $2 }' "$RUN/$name.time")
  local worker secs rss hs results rows wps=0
  worker=$(grep -m1 '^worker ' "$RUN/$name.out"); echo "$worker"
  grep -m1 '^dns: ' "$RUN/$name.out" || true
  secs=$(echo "$worker" | sed -E 's/.* in ([0-9.]+)s .*/\1/')
  rss=$(grep 'Maximum resident set size' "$RUN/$name.time" | awk '{print $NF}')
  # TLS handshakes completed: the probe's own endpoints, and with the
  # acceptance probe also its attempts (our client certificates) and the
  # targets' streams into our listener (dialback verification, replies).
  hs=$(psql -X -tA "$url" -c "SELECT (SELECT count(*) FROM endpoints WHERE tls_version IS NOT NULL)
    + (SELECT count(*) FROM acceptance_attempts WHERE tls_version IS NOT NULL)
    + (SELECT count(*) FROM inbound_streams WHERE tls)")
  results=$(psql -X -tA "$url" -c "SELECT count(*) FROM results")
  rows=$(psql -X -tA "$url" -c "SELECT (SELECT count(*) FROM results) + (SELECT count(*) FROM endpoints) + (SELECT count(*) FROM certificates) + (SELECT count(*) FROM chain_members) + (SELECT count(*) FROM dns_records) + (SELECT count(*) FROM crawl_queue) + (SELECT count(*) FROM acceptance_attempts) + (SELECT count(*) FROM acceptance_dialback) + (SELECT count(*) FROM inbound_streams)")
  # The writer alone: the same reports stored again through the crawl's
  # write path (binaries that have `testnet write-bench`).
  if [ "${WRITE:-1}" = 1 ] && "$bin" testnet write-bench --help >/dev/null 2>&1; then
    psql -X -tA "$url" -c "SELECT report FROM results" >"$RUN/$name.reports.jsonl"
    local wl
    wl=$("$bin" testnet write-bench --reports "$RUN/$name.reports.jsonl" --database-url "$url")
    echo "$wl"
    wps=$(echo "$wl" | sed -E 's/.* = ([0-9]+) results\/s.*/\1/')
    rm -f "$RUN/$name.reports.jsonl"
  fi
  [ "${KEEP:-}" = 1 ] || psql -X -q "$DATABASE_URL" -c "DROP DATABASE $db" >/dev/null || true
  echo "$name $results $secs $hs $rows $rss $wps" >>"$RUN/figures"
  echo "$name $results $secs $cu $cs $(( (tn1 - tn0) )) $(( (pg1 - pg0) ))" >>"$RUN/cpu"
}

if [ "$WARM_UP" = 1 ]; then
  warm_mode=passive; [ "$ACCEPT" = 1 ] && warm_mode=accept
  WRITE=0 run_one warm-up "$BIN" "$RUN/domains.small.txt" "$warm_mode"
  sed -i '/^warm-up /d' "$RUN/figures" "$RUN/cpu"
fi
say "baseline: raw rustls handshakes against the same testnet (10 s)"
CEILING_LINE=$("$BIN" testnet tls-ceiling --manifest "$RUN/manifest.json" --duration 10s --concurrency 64)
echo "$CEILING_LINE"
CEILING=$(echo "$CEILING_LINE" | sed -E 's/.*= ([0-9]+)\/s.*/\1/')

for who in ${BASE_BIN:+base} new; do
  b=$BIN; [ "$who" = base ] && b=$BASE_BIN
  run_one "$who-passive" "$b" "$RUN/domains.small.txt" passive
  [ "$ACCEPT" = 1 ] && run_one "$who-accept" "$b" "$RUN/domains.small.txt" accept
done
if [ "$ACCEPT" = 1 ] && [ "$REAL" = 1 ]; then
  # The same identity without the control certificate (its key and
  # certificate lines removed; the paths stay relative to the file).
  grep -v '^client_and_server_' "$RUN/manifest.probe.toml" >"$RUN/manifest.probe-real.toml"
  WRITE=0 run_one "new-accept-real" "$BIN" "$RUN/domains.small.txt" accept-real
fi
[ -n "$BIG" ] && WRITE=0 run_one "new-passive-big" "$BIN" "$RUN/manifest.domains.txt" passive

# Handshakes per domain of this binary's runs: the ceiling in domains of
# each mode (the acceptance probe makes more handshakes per domain).
hpd_of() { awk -v m="$1" '$1 == "new-" m { printf "%.3f", $4 / $2 }' "$RUN/figures"; }
HPD=$(hpd_of passive)
printf '\n== benchmark (%s domains, testnet and PostgreSQL on the same 2 cores)\n' "$DOMAINS"
printf 'tls ceiling        %8d handshakes/s; %.2f handshakes per domain = %.0f domains/s\n' \
  "$CEILING" "$HPD" "$(awk -v c="$CEILING" -v h="$HPD" 'BEGIN { print c / h }')"
if [ "$ACCEPT" = 1 ]; then
  HPD_ACCEPT=$(hpd_of accept)
  printf 'with the acceptance probe: %.2f handshakes per domain = %.0f domains/s\n' \
    "$HPD_ACCEPT" "$(awk -v c="$CEILING" -v h="$HPD_ACCEPT" 'BEGIN { print c / h }')"
fi
printf '%-18s %9s %9s %8s %11s %9s %9s %12s %8s\n' run domains/s "/ceiling" results "handshake/s" rows/s "RSS MB" "writer res/s" "writer×"
while read -r name results secs hs rows rss wps; do
  hpd=$HPD; case "$name" in *-accept) hpd=$HPD_ACCEPT ;; *-accept-real) hpd=$(hpd_of accept-real) ;; esac
  awk -v n="$name" -v d="$results" -v s="$secs" -v h="$hs" -v r="$rows" -v rss="$rss" -v w="$wps" -v c="$CEILING" -v hpd="$hpd" 'BEGIN {
    printf "%-18s %9.1f %9.2f %8d %11.1f %9.0f %9.1f %12.0f %8s\n", n, d/s, (d/s)/(c/hpd), d, h/s, r/s, rss/1024, w,
      (w > 0 ? sprintf("%.1f", w/(d/s)) : "-") }'
done <"$RUN/figures"
# Where the two cores went during each crawl: CPU seconds per 1,000
# domains by process (the crawler's user and kernel time from GNU time;
# the testnet's servers and every PostgreSQL backend from /proc), and the
# share of the machine's 2 × wall seconds nobody used (idle: the crawl
# waited on something other than CPU).
HZ=$(getconf CLK_TCK)
printf '\n%-18s %28s %9s %9s %9s %7s\n' "cpu split" "crawler user+sys s/1k dom" "testnet" postgres total idle
while read -r name results secs cu cs tn pg; do
  awk -v n="$name" -v d="$results" -v s="$secs" -v cu="$cu" -v cs="$cs" -v tn="$tn" -v pg="$pg" -v hz="$HZ" -v cores="$(nproc)" 'BEGIN {
    k = 1000 / d; t = cu + cs + tn/hz + pg/hz
    printf "%-18s %13.2f + %5.2f = %5.2f %9.2f %9.2f %9.2f %6.0f%%\n", n, cu*k, cs*k, (cu+cs)*k, tn/hz*k, pg/hz*k, t*k,
      100 * (1 - t / (cores * s)) }'
done <"$RUN/cpu"
if [ -n "$BASE_BIN" ]; then
  for m in passive accept; do
    awk -v m="$m" '$1 == "base-" m { b = $2 / $3 } $1 == "new-" m { n = $2 / $3 }
      END { if (b > 0 && n > 0) printf "speed-up %-9s %.2fx (same run)\n", m, n / b }' "$RUN/figures"
  done
fi
if [ -n "$BIG" ]; then
  awk '$1 == "new-passive" { a = $6 } $1 == "new-passive-big" { b = $6 }
    END { printf "peak RSS: %.1f MB at the small run, %.1f MB at the big run (%+.0f%%)\n", a/1024, b/1024, (b-a)*100/a }' "$RUN/figures"
fi
# The time split of the latest callgrind profile (scripts/profile.sh).
[ -s docs/profile-split.txt ] && { echo; echo "profile split (docs/profile-split.txt, callgrind instructions):"; cat docs/profile-split.txt; }
exit 0
