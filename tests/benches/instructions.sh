#!/usr/bin/env bash
# instructions.sh — instructions per request of the tunnel client or the relay, counted by
# valgrind's callgrind: the same figure on every run, where wall-clock figures on a shared
# 2-core machine move by ±10 % between runs (docs/performance.md, twenty-first round).
#
#   tests/benches/instructions.sh [client|relay] [extra twk-tunnel flags...]
#   TWK_BIN=target/release SECS=10 tests/benches/instructions.sh client --no-capture
#   RETENTION=1024 tests/benches/instructions.sh client   # the capture store at its cap
#   REOPEN=1 RETENTION=1024 tests/benches/instructions.sh client   # a store opened before
#
# One process runs under callgrind (all its threads), the other natively; wrk sends GETs
# with 4 connections for SECS seconds to nginx through them. The process is run twice, with
# no load and with load, and the difference is divided by wrk's request count, so start-up
# does not count. Needs valgrind, nginx, wrk and curl (Debian packages of those names).
# With RETENTION=N the client keeps N exchanges (its config file's `[capture] retention`):
# once past it, every batch also deletes as many old rows as it adds, as a store at its
# default cap of 10,000 does under load (peers.sh reaches it within a second or two).
# With REOPEN=1 a tunnel runs first (natively) on the same data directory until its first
# exchange, and stops: the measured one opens a store a tunnel has opened before, as every
# run after a user's first does (docs/performance.md, thirtieth round).
# Under callgrind a process runs ~50 times slower: counts are exact, times are not.
set -euo pipefail
WHO=${1:-client}
shift || true
BIN=${TWK_BIN:-target/release}
SECS=${SECS:-10}
for tool in valgrind nginx wrk curl; do
  command -v "$tool" > /dev/null || { echo "instructions.sh: needs $tool" >&2; exit 1; }
done
[[ -x "$BIN/twk-relay" && -x "$BIN/twk-tunnel" ]] || {
  echo "instructions.sh: no twk-relay and twk-tunnel in $BIN (set TWK_BIN)" >&2; exit 1; }
case "$WHO" in client | relay) ;; *) echo "instructions.sh: client or relay, not $WHO" >&2; exit 2 ;; esac

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until URL answers 200 through the tunnel.
ready() {
  for _ in $(seq 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$1") == 200 ]] && return
    sleep 0.2
  done
}

# Prints "requests instructions" for one run of LOAD seconds (0: no requests but the check).
run() {
  local load=$1 dir origin relay_port pids=() counted n=0 ir
  shift
  dir=$(mktemp -d /tmp/twk-instructions.XXXXXX)
  origin=$(free_port)
  relay_port=$(free_port)
  cat > "$dir/nginx.conf" <<EOF
master_process off; worker_processes 1; daemon off; user root;
pid $dir/nginx.pid; error_log $dir/nginx-error.log warn;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 10000000;
  server { listen 127.0.0.1:$origin; location / { return 200 '{"ok":true}\n'; } } }
EOF
  nginx -c "$dir/nginx.conf" -p "$dir" & pids+=($!)
  mkdir -p "$dir/config/twk"
  [[ -n ${RETENTION:-} ]] && printf '[capture]\nretention = %d\n' "$RETENTION" > "$dir/config/twk/config.toml"
  chmod -R go-rwx "$dir/config"
  local cg=(valgrind --tool=callgrind "--callgrind-out-file=$dir/callgrind.out")
  # Exported, not given through `env`: callgrind must run the binary itself, not `env`.
  # A state directory of its own: the relay's default one keeps the names it reserved and
  # the requests it kept across runs, and every run would hand the last runs' to a client
  # that cannot open them (an x25519 each), counted as requests' work.
  export TWK_RELAY_TOKENS=bench-token-0123456789 RUST_LOG=warn XDG_CONFIG_HOME=$dir/config \
    XDG_STATE_HOME=$dir/state
  local relay=("$BIN/twk-relay" --listen "127.0.0.1:$relay_port" --domain twk.test --url-style path)
  local tunnel=("$BIN/twk-tunnel" --relay "ws://127.0.0.1:$relay_port"
    --token bench-token-0123456789 --name bench --no-tui --json --data-dir "$dir/data" "$@"
    "127.0.0.1:$origin")
  local first=("${tunnel[@]}")
  if [[ $WHO == relay ]]; then relay=("${cg[@]}" "${relay[@]}"); else tunnel=("${cg[@]}" "${tunnel[@]}"); fi
  "${relay[@]}" > "$dir/relay.log" 2>&1 & pids+=($!)
  [[ $WHO == relay ]] && counted=$! || true
  for _ in $(seq 600); do (exec 3<> "/dev/tcp/127.0.0.1/$relay_port") 2> /dev/null && break; sleep 0.2; done
  local url="http://127.0.0.1:$relay_port/t/bench/"
  if [[ -n ${REOPEN:-} ]]; then
    "${first[@]}" > /dev/null 2>> "$dir/tunnel.log" &
    local pid=$!
    ready "$url"
    kill -INT "$pid"
    wait "$pid" 2> /dev/null || true
  fi
  "${tunnel[@]}" > /dev/null 2>> "$dir/tunnel.log" & pids+=($!)
  [[ $WHO == client ]] && counted=$! || true
  ready "$url"
  if [[ $load != 0 ]]; then
    n=$(wrk -t1 -c4 "-d$load" "$url" | awk '/requests in/ {print $1}')
  fi
  # SIGINT: both binaries shut down cleanly, and callgrind writes its counts on exit.
  kill -INT "$counted"
  wait "$counted" 2> /dev/null || true
  kill "${pids[@]}" 2> /dev/null || true
  wait 2> /dev/null || true
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$dir/callgrind.out")
  rm -rf "$dir"
  echo "$n $ir"
}

read -r _ idle < <(run 0 "$@")
read -r n busy < <(run "$SECS" "$@")
awk -v who="$WHO" -v retention="${RETENTION:+ retention $RETENTION}${REOPEN:+, reopened}" -v n="$n" -v idle="$idle" -v busy="$busy" -v flags="$*" 'BEGIN {
  printf "%s %s: %d requests, %.1f k instructions per request (start-up %.1f M excluded)\n",
    who, (flags == "" ? "(capture)" : flags) retention, n, (busy - idle) / n / 1000, idle / 1e6 }'
