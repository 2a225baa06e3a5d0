#!/usr/bin/env bash
# Starts drgw as the candidate of ../shared/bench/proxy-bench.sh: every service of both
# sites points at the bench's upstream ($UPSTREAM_URL), the compute listener is $LISTEN,
# the tokio worker count is $WORKERS, $ACCESS_LOG is `[gateway] access_log` ("off"
# unless set, as nginx's in the bench) and $FAST_LANE `[gateway] http1_fast_lane` ("true"
# unless set; "false" measures the general path). Used by the README's benchmark command:
#   CANDIDATE_NAME=drgw CANDIDATE_CMD="exec $PWD/gateway/benches/proxy-candidate.sh" \
#     bash ../shared/bench/proxy-bench.sh
set -euo pipefail
: "${UPSTREAM_URL:?}" "${LISTEN:?}" "${WORKERS:=1}" "${ACCESS_LOG:=off}" "${FAST_LANE:=true}"
DRGW=${DRGW:-${CARGO_TARGET_DIR:-$HOME/.cache/drgw-target}/release/drgw}
dir=${TMPDIR:-/tmp}/drgw-bench-candidate   # rewritten at every start
mkdir -p "$dir"
site() {
  printf '[sites.%s]\nidentity = "%s"\ncompute = "%s"\nnetwork = "%s"\nvolumev3 = "%s"\nimage = "%s"\n\n' \
    "$1" "$UPSTREAM_URL" "$UPSTREAM_URL" "$UPSTREAM_URL" "$UPSTREAM_URL" "$UPSTREAM_URL"
}
port=${LISTEN##*:}
{
  printf '[gateway]\nstate_dir = "%s"\nworkers = %s\naccess_log = "%s"\nhttp1_fast_lane = %s\n\n' \
    "$dir/state" "$WORKERS" "$ACCESS_LOG" "$FAST_LANE"
  site primary; site recovery
  printf '[listeners.compute]\nlisten = "%s"\npublic_url = "http://%s"\n\n' "$LISTEN" "$LISTEN"
  printf '[listeners.shared]\nlisten = "127.0.0.1:%s"\npublic_url = "http://127.0.0.1:%s"\n\n' $((port + 100)) $((port + 100))
  printf '[admin]\nlisten = "127.0.0.1:%s"\n' $((port + 101))
} > "$dir/drgw.toml"
# exec: the PID the bench records (and whose CPU it counts) is the gateway itself.
RUST_LOG=${RUST_LOG:-warn} exec "$DRGW" serve --config "$dir/drgw.toml" --workers "$WORKERS"
