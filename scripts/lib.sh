# Shared helpers for the project's scripts. Sourced, not run.
# Says what it does; installs only what is missing.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly when root, else with sudo).
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install sudo or run as root)"; fi
}

# Installs Debian packages that are missing (dpkg -s says which).
ensure_apt() {
  local missing=()
  for p in "$@"; do
    # "deinstall ok config-files" is not installed: ask for the exact status.
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Makes sure cargo, rustfmt and clippy are there.
ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
  for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null || die "cargo $c missing and no rustup to add it"
      say "adding rustup component $c"
      rustup component add "$c"
    fi
  done
}

# The testnet binds thousands of sockets: raise the soft open-file limit
# to the hard one.
raise_nofile() {
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
}

# Cleanup on exit, in reverse order of registration: every helper adds its
# own step, so one script's trap never replaces another's.
EXIT_STEPS=()
run_exit_steps() {
  local i
  for ((i = ${#EXIT_STEPS[@]} - 1; i >= 0; i--)); do eval "${EXIT_STEPS[i]}" || true; done
}
trap run_exit_steps EXIT
on_exit() { EXIT_STEPS+=("$1"); }

# A free TCP port on 127.0.0.1 (nothing answers a connect there), chosen
# below Linux's ephemeral range (32768+) so that no outgoing connection
# can be holding it.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port found on 127.0.0.1"
}

# Exports DATABASE_URL: the caller's, or a private cluster started here
# (stopped and removed on exit). Never silently uses a server that merely
# happens to run on the machine.
ensure_database() {
  if [ -n "${DATABASE_URL:-}" ]; then
    say "using the PostgreSQL in DATABASE_URL"
    return 0
  fi
  PRIVATE_PG=$(mktemp -d /tmp/xmpp-survey-pg.XXXXXX)
  PG_SH="$(dirname "${BASH_SOURCE[0]}")/pg.sh"
  on_exit '"$PG_SH" stop "$PRIVATE_PG/data"; rm -rf "$PRIVATE_PG"'
  local port try
  for try in 1 2 3; do
    port=$(free_port)
    say "starting a private PostgreSQL on 127.0.0.1:$port in $PRIVATE_PG (DATABASE_URL is unset)"
    if DATABASE_URL=$("$(dirname "${BASH_SOURCE[0]}")/pg.sh" start "$PRIVATE_PG/data" "$port"); then
      export DATABASE_URL
      return 0
    fi
    say "port $port was taken after all; trying another (attempt $try)"
  done
  die "could not start a private PostgreSQL"
}

# Starts `BIN testnet up` in the background with the manifest in RUN and
# waits until it has written everything (the probe identity comes last);
# stops it on exit. BIN must be built with `--features testnet` (the
# product binary has no testnet). Usage:
# start_testnet BIN RUN DOMAINS SEED NET DNS_PORT
start_testnet() {
  local bin=$1 run=$2 domains=$3 seed=$4 net=$5 port=$6
  "$bin" testnet --help >/dev/null 2>&1 \
    || die "$bin has no testnet: build it with cargo build --features testnet"
  say "starting the testnet: $domains domains on 127.$net.0.0/16, DNS on 127.$net.0.1:$port"
  rm -f "$run"/manifest.*
  # TESTNET_EXTRA: more `testnet up` options, e.g. "--per-host 64".
  # shellcheck disable=SC2086 # word splitting of TESTNET_EXTRA intended
  "$bin" testnet up --domains "$domains" --seed "$seed" --net "$net" --dns-port "$port" \
    --manifest "$run/manifest.json" ${TESTNET_EXTRA:-} >"$run/testnet.log" 2>&1 &
  TESTNET_PID=$!
  on_exit 'kill "$TESTNET_PID" 2>/dev/null; wait "$TESTNET_PID" 2>/dev/null'
  # 120 s, and 1 s more per 500 domains (a 100,000-domain testnet issues
  # a certificate per domain before it writes its manifest).
  local waits=$(( 240 + domains / 250 ))
  for _ in $(seq 1 "$waits"); do
    [ -s "$run/manifest.probe.toml" ] && return 0
    kill -0 "$TESTNET_PID" 2>/dev/null || { cat "$run/testnet.log" >&2; die "testnet failed to start"; }
    sleep 0.5
  done
  die "testnet did not write its manifest in $(( waits / 2 )) s"
}

# Checks the unit files of scripts/systemd/ with `systemd-analyze verify`
# (Debian's systemd package). It runs offline, without a running systemd
# (in containers too): `--man=no` skips the man-page lookups of
# Documentation=, and since verify insists that ExecStart= names an
# existing executable, it checks copies whose /usr/local/bin/xmpp-survey
# is the binary given as $1. verify exits 0 on an unknown key or a value
# it cannot parse (it only prints "ignoring"): any output is a failure.
verify_units() {
  local bin="$1" tmp f out rc=0
  [ -x "$bin" ] || die "verify_units: $bin is not an executable"
  tmp="$(mktemp -d)"
  for f in scripts/systemd/*.service scripts/systemd/*.timer; do
    sed "s|/usr/local/bin/xmpp-survey|$bin|g" "$f" >"$tmp/$(basename "$f")"
  done
  out="$(systemd-analyze verify --man=no "$tmp"/*.service "$tmp"/*.timer 2>&1)" || rc=$?
  rm -rf "$tmp"
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    die "systemd-analyze verify found problems in scripts/systemd/ (exit status $rc)"
  fi
}
