#!/usr/bin/env bash
# Starts nginx as a candidate of ../shared/bench/proxy-bench.sh, configured as the bench's
# own nginx proxy plus the headers drgw adds to every call: X-Forwarded-For, -Proto, -Host
# and a generated X-Openstack-Request-Id up, the request id down (drgw answers with it when
# the upstream gives none, as the bench's does not). The bench's nginx adds none of them, so
# its figures are those of a proxy doing less than drgw; this candidate is nginx doing
# drgw's job. The bench takes one candidate, so run it as its own invocation and compare
# its "x nginx" ratios with drgw's:
#   CANDIDATE_NAME=nginx-fwd CANDIDATE_CMD="exec $PWD/gateway/benches/nginx-forwarding-candidate.sh" \
#     bash ../shared/bench/proxy-bench.sh
set -euo pipefail
: "${UPSTREAM:?}" "${LISTEN:?}" "${WORKERS:=1}"
dir=${TMPDIR:-/tmp}/drgw-bench-nginx-fwd   # rewritten at every start
mkdir -p "$dir"
nofile=$(ulimit -n); [ "$nofile" = unlimited ] && nofile=65536
maxconn=$(( (nofile - 200) / 3 )); [ "$maxconn" -gt 8192 ] && maxconn=8192
cat >"$dir/nginx.conf" <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile $nofile;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections $maxconn; }
http {
  access_log off;
  sendfile off; tcp_nodelay on;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy_temp;
  fastcgi_temp_path $dir/fastcgi_temp;
  uwsgi_temp_path $dir/uwsgi_temp;
  scgi_temp_path $dir/scgi_temp;
  upstream backend {
    server $UPSTREAM;
    keepalive 256;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen $LISTEN backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      # What drgw adds (gateway/src/stack.rs append_forwarded, the request id).
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Openstack-Request-Id req-\$request_id;
      # drgw answers with the request id when the upstream gives none (as here).
      add_header X-Openstack-Request-Id req-\$request_id always;
      proxy_buffer_size 16k;
      proxy_buffers 8 16k;
      proxy_busy_buffers_size 32k;
      proxy_max_temp_file_size 0;
    }
  }
}
EOF
# exec: the PID the bench records (and whose CPU it counts) is nginx's master; its workers
# are in the same process group.
exec nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
