#!/usr/bin/env bash
# Runs every test of drgw, the one test command of the README (and of .ci/run):
#   1. formatting and lints (cargo fmt --check, clippy -D warnings);
#   2. the real OpenStack venv (Keystone, Nova, Glance, Cinder, Neutron, Placement and the
#      openstack CLI from PyPI), installed once into $HOME/.cache/drgw/realstack;
#   3. cargo test for the whole workspace: unit tests, simulator integration tests, the
#      real `openstack` CLI against the sandbox, and the real-services tier (which starts
#      two real sites itself and fails loudly, never skips, when something is missing).
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

t=$SECONDS
cargo build --workspace --quiet
stamp "build: $((SECONDS - t)) s"

t=$SECONDS
cargo test --workspace --no-fail-fast
stamp "cargo test: $((SECONDS - t)) s; whole run: $((SECONDS - t0)) s"
