#!/usr/bin/env bash
# Runs every test of drgw, the one test command of the README (and of .ci/run):
#   1. formatting and lints (cargo fmt --check, clippy -D warnings);
#   2. the real OpenStack venv (Keystone, Nova, Glance, Cinder, Neutron, Placement and the
#      openstack CLI from PyPI), installed once into $HOME/.cache/drgw/realstack;
#   3. cargo test for the whole workspace: unit tests, simulator integration tests and the
#      real `openstack` CLI against the sandbox; beside them the real-services tier (which
#      starts two real sites itself and fails loudly, never skips, when something is missing).
# The cargo target dir is cached outside the clone: $HOME/.cache/drgw-target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/drgw-target}
export CARGO_TERM_COLOR=never
t0=$SECONDS
stamp() { printf '[run-all %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Debian packages the tests use (curl for the real-site scripts).
need=()
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3 python3-venv)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  stamp "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

stamp "cargo fmt --check"
cargo fmt --all -- --check
stamp "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

t=$SECONDS
bash tests/realstack/install.sh
stamp "real OpenStack and tempest venvs ready in $((SECONDS - t)) s (cached after the first run)"

# The cached target dir gathers test binaries and incremental state for every clone path
# and profile it has built. Those not rebuilt for three days are dropped, so the cache does
# not fill the disk run after run; cargo rebuilds any that it still needs.
if [ -d "$CARGO_TARGET_DIR/debug" ]; then
  find "$CARGO_TARGET_DIR/debug/incremental" -mindepth 1 -maxdepth 1 -type d -mtime +3 \
    -exec rm -rf {} + 2>/dev/null || true
  find "$CARGO_TARGET_DIR/debug/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' \
    -mtime +3 -delete 2>/dev/null || true
fi

# The real tier (tests/tests/real_sites.rs, `test = false`: only named, never by a plain
# `cargo test`) goes one Python CLI call or tempest run at a time against its sites, so it
# runs beside the rest rather than after it. It is built first (the gateway's library, the
# test bed's and its own binary) and starts its sites while the other test binaries build.
# cargo holds its build lock only while it builds, and the two builds share every unit they
# both need. Its output goes to a file and is printed whole when it ends.
t=$SECONDS
cargo test --workspace --test real_sites --no-run --quiet
stamp "real tier built: $((SECONDS - t)) s"
real_log=$(mktemp "${TMPDIR:-/tmp}/drgw-real-tier.XXXXXX")
t_real=$SECONDS
cargo test --workspace --test real_sites >"$real_log" 2>&1 &
real_pid=$!
stop_real_tier() {   # on an early exit: TERM makes the tier stop both sites (by PID) first
  if kill -0 "$real_pid" 2>/dev/null; then
    pkill -TERM -P "$real_pid" 2>/dev/null || true
    wait "$real_pid" 2>/dev/null || true
  fi
}
trap stop_real_tier EXIT
# The other build starts once the tier runs: until then the tier's cargo may need the lock.
until grep -q "^real_sites: starting" "$real_log" || ! kill -0 "$real_pid" 2>/dev/null; do
  sleep 1
done

# The test build makes every binary the tests run (target/debug/drgw among them); a
# separate `cargo build` would compile the gateway a second time, without the dependency
# features that the tests' dev-dependencies add (tokio's test-util).
t=$SECONDS
cargo test --workspace --no-run --quiet
stamp "other test binaries built: $((SECONDS - t)) s"
t=$SECONDS
rest=0
cargo test --workspace --no-fail-fast || rest=$?
stamp "cargo test (all but the real tier): $((SECONDS - t)) s, exit $rest; waiting for the real tier"
real=0
wait "$real_pid" || real=$?
trap - EXIT
cat "$real_log"
rm -f "$real_log"
stamp "real tier: exit $real, $((SECONDS - t_real)) s; whole run: $((SECONDS - t0)) s"
[ "$rest" -eq 0 ] && [ "$real" -eq 0 ]
