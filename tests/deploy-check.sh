#!/usr/bin/env bash
# Follows docs/deploy.md step by step on this machine, loopback only: a fresh state directory,
# an unprivileged user (when run as root), Pebble as the ACME CA. CI runs it (.ci/run), so the
# guide cannot rot. Needs: pebble, curl, python3 (a free-port helper and the local app).
set -euo pipefail
cd "$(dirname "$0")/.."

# Step 2: build the binaries (up to date in a moment when they already are).
cargo build --locked -q -p twk-relay-server -p twk-tunnel
BIN=${TWK_BIN:-${CARGO_TARGET_DIR:-target}/debug}
BIN=$(cd "$BIN" && pwd)
passed=0
failed=0
check() { # $1 description, rest: command
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "deploy-check: ok: $what"
  else failed=$((failed + 1)); echo "deploy-check: FAILED: $what" >&2; fi
}
# N distinct free ports, all bound at once: one port at a time, closed before the next was
# asked for, could come back twice (Pebble then held the relay's port: a flaky CI run).
free_ports() {
  python3 -c 'import socket,sys; ss=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))' "$1"
}

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
STATE=$WORK/var/lib/twk-relay
read -r RELAY_PORT APP_PORT PEBBLE_PORT PEBBLE_MGMT PEBBLE_HTTP < <(free_ports 5)

# The relay runs as an unprivileged user, as the systemd unit does (DynamicUser).
RUN_AS=()
if [[ $(id -u) == 0 ]]; then
  id twk-deploy-check >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin twk-deploy-check
  RUN_AS=(setpriv --reuid=twk-deploy-check --regid=twk-deploy-check --clear-groups --)
  chmod 0755 "$WORK"
fi

# A stand-in CA: Pebble validating TLS-ALPN-01 on the relay's port.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -addext "basicConstraints=critical,CA:FALSE" \
  -keyout "$WORK/pebble-key.pem" -out "$WORK/pebble-cert.pem" 2>/dev/null
chmod 0644 "$WORK/pebble-cert.pem"
cat > "$WORK/pebble.json" <<JSON
{"pebble": {"listenAddress": "127.0.0.1:$PEBBLE_PORT", "managementListenAddress": "127.0.0.1:$PEBBLE_MGMT",
  "certificate": "$WORK/pebble-cert.pem", "privateKey": "$WORK/pebble-key.pem",
  "httpPort": $PEBBLE_HTTP, "tlsPort": $RELAY_PORT, "ocspResponderURL": "", "externalAccountBindingRequired": false}}
JSON
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config "$WORK/pebble.json" -strict=false >"$WORK/pebble.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "Listening on" "$WORK/pebble.log" && break; sleep 0.1; done

# Step 3: create a token (printed once; only its hash is stored).
install -d -m 0700 "$STATE"
TOKEN=$("$BIN/twk-relay" token add alice --tokens-file "$STATE/tokens" 2>/dev/null)
check "token add prints a token" test "${TOKEN:0:4}" = "twk_"
check "the tokens file keeps only the hash" bash -c "! grep -q '$TOKEN' '$STATE/tokens'"
[[ ${#RUN_AS[@]} -gt 0 ]] && chown -R twk-deploy-check: "$STATE"

# Step 4: the one command, with Pebble standing in for Let's Encrypt.
env STATE_DIRECTORY="$STATE" TWK_LOG=info "${RUN_AS[@]}" "$BIN/twk-relay" \
  --listen "127.0.0.1:$RELAY_PORT" --domain "localhost:$RELAY_PORT" \
  --acme-email ops@example.com --acme-directory "https://127.0.0.1:$PEBBLE_PORT/dir" \
  --acme-ca-root "$WORK/pebble-cert.pem" --metrics-listen "127.0.0.1:0" \
  >"$WORK/relay.out" 2>"$WORK/relay.log" &
PIDS+=($!)
curl -sf --cacert "$WORK/pebble-cert.pem" "https://127.0.0.1:$PEBBLE_MGMT/roots/0" >"$WORK/root.pem"
CURL=(curl -sf --max-time 5 --cacert "$WORK/root.pem" --resolve "localhost:$RELAY_PORT:127.0.0.1")
for _ in $(seq 1 300); do "${CURL[@]}" "https://localhost:$RELAY_PORT/_twk/health" >"$WORK/health" 2>/dev/null && break; sleep 0.2; done
check "https health with the obtained certificate" grep -q '"status":"ok"' "$WORK/health"
check "the state directory is private" test "$(stat -c %a "$STATE/acme")" = 700
check "certificate and key are 0600" bash -c "ls '$STATE'/acme/*.pem >/dev/null && for f in '$STATE'/acme/*; do test \$(stat -c %a \"\$f\") = 600 || exit 1; done"
check "the relay runs unprivileged" bash -c "[[ ${#RUN_AS[@]} == 0 ]] || test \$(stat -c %U '$STATE/acme') = twk-deploy-check"

# Step 5: a laptop connects; a webhook reaches its local app through https.
python3 -m http.server "$APP_PORT" --bind 127.0.0.1 --directory "$WORK" >/dev/null 2>&1 &
PIDS+=($!)
TWK_RELAY="wss://localhost:$RELAY_PORT" TWK_TOKEN="$TOKEN" XDG_DATA_HOME="$WORK/laptop" \
  "$BIN/twk-tunnel" --relay-ca "$WORK/root.pem" --name shop --no-tui --no-capture "127.0.0.1:$APP_PORT" \
  >"$WORK/tunnel.out" 2>"$WORK/tunnel.log" &
PIDS+=($!)
for _ in $(seq 1 100); do grep -q "^Forwarding" "$WORK/tunnel.out" && break; sleep 0.1; done
check "the tunnel reports its https URL" grep -q "^Forwarding https://localhost:$RELAY_PORT/t/shop" "$WORK/tunnel.out"
for _ in $(seq 1 50); do "${CURL[@]}" "https://localhost:$RELAY_PORT/t/shop/pebble.json" >"$WORK/fetched" 2>/dev/null && break; sleep 0.1; done
check "a request reaches the local app through the relay" grep -q listenAddress "$WORK/fetched"

# Step 7: metrics on the operator's address only.
METRICS=$(sed -n 's/^metrics on //p' "$WORK/relay.out")
check "metrics count the request" bash -c "curl -sf http://$METRICS/_twk/metrics | grep -q 'twk_relay_requests_total{class=\"2xx\",side=\"none\"} [1-9]'"
check "the token never reaches the relay log" bash -c "! grep -q '$TOKEN' '$WORK/relay.log'"

# Step 3 again: revoking closes the tunnel without a restart.
"$BIN/twk-relay" token revoke alice --tokens-file "$STATE/tokens" 2>/dev/null
for _ in $(seq 1 100); do grep -q "token revoked" "$WORK/relay.log" && break; sleep 0.1; done
check "a revoked token's tunnel is closed" grep -q "token revoked" "$WORK/relay.log"

echo "deploy-check: $passed passed, $failed failed"
if [[ $failed -gt 0 ]]; then
  for f in relay.log tunnel.log pebble.log; do echo "---- $f"; tail -20 "$WORK/$f"; done >&2
  exit 1
fi
