#!/usr/bin/env bash
# Runs every check and test: rustfmt, clippy (-D warnings) and a build of
# the product without the testnet, then clippy, unit and
# integration tests with the `testnet` feature (the truth test included),
# then schemathesis against the web API (scripts/schemathesis.sh). Works on a fresh
# Debian with only Rust installed: it adds what is missing and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt gcc pkg-config ca-certificates
# Debian's headless Chromium opens the generated report in the report test
# (started with an empty profile, a closed loopback proxy and no DNS).
ensure_apt chromium
# ... and ChromeDriver drives it through WebDriver in the browser test of
# the web pages (tests/integration/browser.rs).
ensure_apt chromium-driver
# systemd-analyze checks the unit files of scripts/systemd/.
ensure_apt systemd
# Debian's prosody for the real-server test; its system service stays off.
tests/prosody/install.sh
raise_nofile
ensure_database

say "cargo fmt --check"
cargo fmt --all -- --check
# The product is built without the test federation (feature `testnet`):
# check that it builds and lints clean alone, then everything with it.
say "cargo clippy --all-targets -- -D warnings (the product, no testnet)"
cargo clippy --all-targets --quiet -- -D warnings
# The same features `cargo install` builds (a debug build here: the
# release profile only changes optimisation, and CI time matters).
say "cargo build --bin xmpp-survey (the product's feature set: no testnet)"
cargo build --quiet --bin xmpp-survey
if target/debug/xmpp-survey testnet --help >/dev/null 2>&1; then
  die "the product binary has the testnet subcommands"
fi
say "systemd-analyze verify scripts/systemd/* (offline, --man=no)"
verify_units "$PWD/target/debug/xmpp-survey"
say "cargo clippy --all-targets --features testnet -- -D warnings"
cargo clippy --all-targets --features testnet --quiet -- -D warnings
# The fuzz targets (fuzz/, run by scripts/fuzz.sh) must keep compiling
# against the library's API; checked here on the stable toolchain.
say "cargo check of the fuzz targets (fuzz/)"
cargo check --quiet --manifest-path fuzz/Cargo.toml
say "cargo test --features testnet (unit + integration; loopback only)"
cargo test --all-targets --features testnet -- --test-threads="${TEST_THREADS:-4}"
# The JSON API fuzzed against its own OpenAPI document (schemathesis, PyPI).
scripts/schemathesis.sh
say "all tests passed"
