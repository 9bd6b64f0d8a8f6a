#!/usr/bin/env bash
# peers-nginx.sh — ../shared/bench/peers.sh with two more targets: nginx as an HTTP-aware
# tunnel, the floor for a tunnel that parses HTTP at both ends (docs/performance.md,
# thirteenth round).
#   nginx-proxy  wrk -> nginx (proxy_pass, kept upstream connections) -> nginx origin
#   nginx-2hop   wrk -> nginx -> nginx -> nginx origin: parsed at both ends, nothing else
# Each proxy is one process (`master_process off`, one worker), so its CPU and RSS are
# counted like a tunnel's. Same environment variables as peers.sh, e.g. from the project root:
#   TARGETS="direct rathole-ws nginx-proxy nginx-2hop twk-nocap twk" DUR=4 tests/benches/peers-nginx.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PEERS_SH=${PEERS_SH:-$HERE/../../../shared/bench/peers.sh}
[[ -f "$PEERS_SH" ]] || { echo "no peers.sh at $PEERS_SH (set PEERS_SH)" >&2; exit 1; }
COPY=$(mktemp /tmp/peers-nginx.XXXXXX.sh)
trap 'rm -f "$COPY"' EXIT
python3 - "$PEERS_SH" "$COPY" <<'EOF'
import sys
src = open(sys.argv[1]).read()
targets = r'''
# ---- nginx as the tunnel (added by tests/benches/peers-nginx.sh) ----------------------------
nginx_proxy() { # NAME LISTEN-PORT UPSTREAM-PORT; its pid in LAST_PID
  cat > "$RUN/$1.conf" <<EOF2
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
daemon off;
user root;
pid $RUN/$1.pid;
error_log $RUN/$1-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path $RUN/$1-body;
  proxy_temp_path $RUN/$1-ptemp;
  client_max_body_size 8m;
  upstream up { server 127.0.0.1:$3; keepalive 1024; keepalive_requests 10000000; }
  server {
    listen 127.0.0.1:$2;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF2
  start "$1" nginx -c "$RUN/$1.conf" -p "$RUN"
}
up_nginx-proxy() {
  nginx_proxy px1 18501 "$ORIGIN_PORT"; local a=$LAST_PID
  URL="http://127.0.0.1:18501"; HOST_HDR=""; TUNNEL_PIDS=("$a")
  wait_http "$URL/"
}
up_nginx-2hop() {
  nginx_proxy px2b 18503 "$ORIGIN_PORT"; local b=$LAST_PID
  nginx_proxy px2a 18502 18503; local a=$LAST_PID
  URL="http://127.0.0.1:18502"; HOST_HDR=""; TUNNEL_PIDS=("$a" "$b")
  wait_http "$URL/"
}

# ---- one wrk run'''
marker = '\n# ---- one wrk run'
assert marker in src, "peers.sh changed: no '# ---- one wrk run' section"
open(sys.argv[2], 'w').write(src.replace(marker, targets, 1))
EOF
# peers.sh re-executes itself inside a network namespace, so the copy must outlive this shell
# until it is done: run it, not exec.
bash "$COPY" "$@"
