#!/usr/bin/env bash
# Builds the Debian package target/debian/xmpp-survey_<version>_<arch>.deb
# with cargo-deb (installed with `cargo install --locked cargo-deb` when
# missing): the release binary in /usr/bin, the systemd units in
# /lib/systemd/system (their ExecStart rewritten to /usr/bin), the config
# file /etc/xmpp-survey/config.toml as a conffile (scripts/debian/), the
# cron line and the docs in /usr/share/doc/xmpp-survey. The postinst
# creates the xmpp-survey user and its folders; nothing is enabled until
# the operator has configured it (docs/operating.md).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_apt gcc pkg-config ca-certificates dpkg-dev
if ! cargo deb --version >/dev/null 2>&1; then
  say "installing cargo-deb (cargo install --locked cargo-deb)"
  cargo install --locked cargo-deb
fi
say "cargo build --release --bin xmpp-survey (the product: no testnet)"
cargo build --release --locked --bin xmpp-survey
rm -rf target/deb-units && mkdir -p target/deb-units
for f in scripts/systemd/*.service scripts/systemd/*.timer; do
  sed "s|/usr/local/bin/xmpp-survey|/usr/bin/xmpp-survey|g" "$f" >"target/deb-units/$(basename "$f")"
done
say "cargo deb --no-build"
deb="$(cargo deb --no-build 2>&1 | tail -n 1)"
[ -f "$deb" ] || die "cargo deb did not print the package it wrote: $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
say "wrote $deb"
