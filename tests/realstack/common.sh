# Shared defaults for the realstack scripts (sourced, not executed).
#
#   REALSTACK_HOME   where install.sh puts the virtualenvs
#                    (default: $HOME/.cache/drgw/realstack)
#   REALSTACK_STATE  parent of the per-site state dirs (configs, sqlite, logs,
#                    pid files); a site NAME lives in $REALSTACK_STATE/NAME
#                    (default: /tmp/drgw-realstack; drgw's tests use a fresh
#                    temp dir per run)

REALSTACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REALSTACK_HOME=${REALSTACK_HOME:-$HOME/.cache/drgw/realstack}
REALSTACK_STATE=${REALSTACK_STATE:-/tmp/drgw-realstack}
VENV=$REALSTACK_HOME/venv
TEMPEST_VENV=$REALSTACK_HOME/tempest-venv

# Service -> port offset from the site's BASEPORT.
# keystone=BASE, nova=+1, glance=+2, cinder=+3, neutron=+4, placement=+5
declare -A RS_OFFSET=([keystone]=0 [nova]=1 [glance]=2 [cinder]=3 [neutron]=4 [placement]=5)
RS_ALL_SERVICES="keystone nova glance cinder neutron placement"

rs_log() { printf '[realstack %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rs_die() { rs_log "ERROR: $*"; exit 1; }

# True if something already listens on 127.0.0.1:$1.
rs_port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# True if the pid in file $1 is alive.
rs_pidfile_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Print the HTTP status of GET $1 (000 on connection failure), never hangs.
rs_http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }
