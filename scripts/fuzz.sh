#!/usr/bin/env bash
# Coverage-guided fuzzing of everything the survey reads from the outside:
# the XMPP stream reader, certificate analysis, SRV answers, domain names and
# the text / CSV / providers-JSON source formats (targets in fuzz/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs each target (default: all) for SECONDS (default 60) with libFuzzer via
# cargo-fuzz, seeded with the kept regression inputs in
# tests/regressions/<target>/ (read-only) plus the growing corpus in
# fuzz/corpus/<target>/. A crash, panic, leak-free timeout or broken
# invariant stops that target: libFuzzer writes the input to
# fuzz/artifacts/<target>/; copy it to tests/regressions/<target>/ and give
# it an expectation in tests/integration/regressions.rs so it is replayed by
# every `cargo test`. At the end the script prints executions per target
# and any findings, and exits non-zero if there were findings.
#
# Needs cargo-fuzz (installed here with `cargo install cargo-fuzz` if it is
# missing). cargo-fuzz wants nightly flags: RUSTC_BOOTSTRAP=1 enables them
# on the stable toolchain. No sanitizer by default (the crate forbids
# unsafe code; set FUZZ_SANITIZER=address to add ASan, much slower to build);
# debug assertions are on. Jobs: FUZZ_JOBS (default 1), keeping the machine
# usable for other builds.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

seconds="${1:-60}"
shift || true
[[ "$seconds" =~ ^[0-9]+$ ]] || die "SECONDS must be a whole number, got '$seconds'"
all_targets=(stream_reader cert_analyze srv_order domain_normalize source_text source_csv source_providers)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

ensure_rust
ensure_apt gcc g++ pkg-config
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install cargo-fuzz)"
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

say "building fuzz targets (sanitizer: $sanitizer, debug assertions on)"
(cd fuzz && cargo fuzz build -s "$sanitizer" -a)

summary=()
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "tests/regressions/$t"
  log="fuzz/artifacts/$t/last-run.log"
  say "fuzzing $t for ${seconds}s (corpus fuzz/corpus/$t, seeds tests/regressions/$t)"
  before=$(find "fuzz/artifacts/$t" -type f ! -name '*.log' | wc -l)
  set +e
  parallel=()
  [ "$jobs" -le 1 ] || parallel=(-jobs="$jobs" -workers="$jobs")
  (cd fuzz && cargo fuzz run -s "$sanitizer" -a "$t" "corpus/$t" "../tests/regressions/$t" -- \
    -max_total_time="$seconds" "${parallel[@]}" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048) >"$log" 2>&1
  rc=$?
  set -e
  execs=$(cat "$log" fuzz/fuzz-*.log 2>/dev/null | awk '/stat::number_of_executed_units/ {s+=$2} END {print s+0}' || true)
  rm -f fuzz/fuzz-*.log
  after=$(find "fuzz/artifacts/$t" -type f ! -name '*.log' | wc -l)
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    failed=1
    summary+=("$t: $execs executions, FINDING (exit $rc), see $log and fuzz/artifacts/$t/")
    tail -n 30 "$log" >&2
  else
    summary+=("$t: $execs executions, no findings")
  fi
done

say "summary"
printf '  %s\n' "${summary[@]}"
exit "$failed"
