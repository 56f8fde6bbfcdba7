#!/usr/bin/env bash
# Installs Debian's prosody package for the Prosody integration test
# (tests/integration/prosody.rs) when it is missing, without leaving the
# packaged system-wide service running or enabled: the test starts its
# own instance from its own config, never the system one.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

# "install ok installed": dpkg -s also succeeds for a removed package
# whose config files remain.
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }
# lua-unbound is only a Recommends of prosody, but without it Prosody falls
# back to its legacy DNS code, which ignores the test's resolv.conf.
installed prosody && installed lua-unbound && command -v prosody >/dev/null && exit 0

# invoke-rc.d asks /usr/sbin/policy-rc.d whether a maintainer script may
# start a service; exit 101 = no. Add one for the install only if the
# system has none (Debian containers usually do).
guard=
if [ ! -e /usr/sbin/policy-rc.d ]; then
  guard=/usr/sbin/policy-rc.d
  say "denying service starts during the install ($guard, removed afterwards)"
  printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
  as_root chmod 755 "$guard"
  on_exit 'as_root rm -f "$guard"'
fi

say "installing Debian packages prosody and lua-unbound (for the Prosody integration test)"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prosody lua-unbound
installed prosody || die "prosody did not install"
installed lua-unbound || die "lua-unbound did not install"

# Belt and braces: stop an instance the package may have started anyway,
# and keep the system service from starting at boot.
if [ -x /etc/init.d/prosody ] && /etc/init.d/prosody status >/dev/null 2>&1; then
  say "stopping the system-wide prosody the package started"
  as_root /etc/init.d/prosody stop || true
fi
say "disabling the system-wide prosody service (the test runs its own)"
if command -v deb-systemd-helper >/dev/null; then
  as_root deb-systemd-helper disable prosody.service >/dev/null 2>&1 || true
fi
if command -v update-rc.d >/dev/null; then
  as_root update-rc.d prosody disable >/dev/null 2>&1 || true
fi
