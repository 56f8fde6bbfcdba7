#!/usr/bin/env bash
# Runs every check and test: rustfmt, clippy (-D warnings), unit and
# integration tests (the testnet truth test included). Works on a fresh
# Debian with only Rust installed: it adds what is missing and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt gcc pkg-config ca-certificates
# Debian's prosody for the real-server test; its system service stays off.
tests/prosody/install.sh
raise_nofile
ensure_database

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
say "cargo test (unit + integration; loopback only)"
cargo test --all-targets -- --test-threads="${TEST_THREADS:-4}"
say "all tests passed"
