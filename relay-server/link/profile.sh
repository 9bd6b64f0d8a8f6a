#!/usr/bin/env bash
# Regenerates relay-server/link/hot.ld and client/link/hot.ld: the functions `twk-relay` and
# `twk-tunnel` run from their start until they idle with a tunnel up, which each package's
# build.rs has the linker lay out together.
#
# Why: an idle process's memory is mostly its own code, mapped page cache. The kernel maps
# each code fault's whole neighbourhood (fault-around, and whole large folios on filesystems
# that cache files in them), so code that never runs is resident beside code that does. With
# what runs side by side, an idle relay maps ~2 MiB of its 7.7 MiB of code instead of ~5
# (docs/performance.md, thirteenth round).
#
# How: both release binaries run under callgrind (valgrind). A first client registers the
# tunnel's owner key and goes; requests are kept meanwhile; a client with another key (as
# each peers.sh run has) connects while a request polls for it, refuses them, takes GETs and
# POSTs and idles; the first client comes back and takes them. The functions callgrind saw
# by then are written out as input-section patterns. A legacy symbol's hash and a v0 symbol's
# crate disambiguators become `*`: they change with versions and features, the path does
# not; where such a pattern would take far more copies of a generic function than ran, the
# exact names are written instead. A stale entry matches nothing and costs nothing with lld
# or GNU ld; rerun this after large changes.
#
# Needs valgrind, python3, curl. Usage, from anywhere:  relay-server/link/profile.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
for tool in valgrind callgrind_control python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release --locked -p twk-relay-server -p twk-tunnel
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$WORK"' EXIT

port() { # a free loopback port
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
callgrind() { # OUT-NAME CMD...: CMD under callgrind, in the background; its pid in $LAST
  local out=$1; shift
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/$out.%p" "$@" \
    >"$WORK/$out.log" 2>&1 &
  LAST=$!
}
ORIGIN=$(port)
RELAY=$(port)
(cd "$WORK" && exec python3 -m http.server "$ORIGIN" --bind 127.0.0.1) >/dev/null 2>&1 &
XDG_STATE_HOME=$WORK/state TWK_RELAY_TOKENS=profile-token-0123456789 \
  callgrind relay "$BIN/twk-relay" --listen "127.0.0.1:$RELAY" --domain twk.test --url-style path
RELAY_PID=$LAST
for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$RELAY") 2>/dev/null && break; sleep 0.1; done
tunnel_args() { # KEY: in TUNNEL_ARGS, a client for "bench" whose owner key is in data dir KEY
  TUNNEL_ARGS=(--relay "ws://127.0.0.1:$RELAY" --token profile-token-0123456789 --name bench
    --no-tui --json --data-dir "$WORK/$1" "127.0.0.1:$ORIGIN")
}
url=http://127.0.0.1:$RELAY/t/bench
until_up() { # polls as peers.sh and a first run do: while the tunnel is away, kept
  for _ in $(seq 1 1200); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/") == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}
traffic() {
  for _ in $(seq 1 20); do
    curl -s -o /dev/null "$url/"
    curl -s -o /dev/null -X POST -H 'content-type: application/json' --data '{"ok":true}' "$url/hook"
  done
  curl -s -o /dev/null "http://127.0.0.1:$RELAY/t/nobody/"
}
# First a client with key A (not profiled) names the tunnel's owner key; while it is away,
# requests are kept sealed to A.
tunnel_args a
"$BIN/twk-tunnel" "${TUNNEL_ARGS[@]}" >"$WORK/first.log" 2>&1 &
FIRST=$!
until_up
kill "$FIRST"
wait "$FIRST" || true
curl -s -o /dev/null "$url/kept-1"
curl -s -o /dev/null "$url/kept-2"
# A client with another key B (a fresh data directory, as each peers.sh run has) refuses
# them (422) and idles; then A's client comes back and takes them.
for key in b a; do
  tunnel_args "$key"
  callgrind "tunnel-$key" "$BIN/twk-tunnel" "${TUNNEL_ARGS[@]}"
  until_up
  traffic
  sleep 5
  callgrind_control -d "$LAST" >/dev/null
  kill "$LAST"
  wait "$LAST" || true
  [[ $key == b ]] && curl -s -o /dev/null "$url/kept-3"
done
callgrind_control -d "$RELAY_PID" >/dev/null

hot_ld() { # BINARY DUMP...: the linker script
  python3 - "$@" <<'EOF'
import collections, re, subprocess, sys
binary, dumps = sys.argv[1], sys.argv[2:]

def glob(name):
    """The pattern for a function: its path without what moves from build to build."""
    g = re.sub(r"\.(llvm\.)?\d+$", "", name)
    g = re.sub(r"17h[0-9a-f]{16}E$", "17h*E", g)
    if g.startswith("_R"):
        g = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", g)
    return g + "*"  # and LLVM's clones of it (`.1234`)

size = {}
for p in (l.split() for l in subprocess.run(["nm", "-S", binary], capture_output=True,
          text=True, check=True).stdout.splitlines()):
    if len(p) == 4 and p[2] in "tT":
        size[p[3]] = int(p[1], 16)
by_glob = collections.defaultdict(list)
for name in size:
    by_glob[glob(name)].append(name)
ran = []
for line in (l for d in dumps for l in open(d, errors="replace")):
    m = re.match(r"c?fn=\(\d+\) (\S+)$", line)
    if m and m.group(1) in size and m.group(1) not in ran:
        ran.append(m.group(1))
ran_set = set(ran)
# Code valgrind never runs, as it hides the CPU features that select it (SHA-NI, AVX-512):
# SHA-256 of captured bodies, SHA-1 of every websocket handshake, and the detection itself.
patterns = ["_ZN4sha26sha2563x86*", "_ZN4sha18compress*", "*cpuid*"]
seen = set(patterns)
for name in ran:
    g = glob(name)
    # A generic function's legacy name does not say its types, so its pattern takes every
    # copy the compiler made. Where most of those never ran, the names that did, exactly
    # (they go stale with the hashes, and then only lay out less).
    matched = sum(size[n] for n in by_glob[g])
    used = sum(size[n] for n in by_glob[g] if n in ran_set)
    if matched > 2 * used and matched - used > 16 << 10:
        g = re.sub(r"\.(llvm\.)?\d+$", "", name) + "*"
    if g not in seen:
        seen.add(g)
        patterns.append(g)
print("/* Generated by relay-server/link/profile.sh: the functions this binary runs from its")
print("   start until it idles with a tunnel up, laid out together (link/hot_layout.rs). For")
print("   lld and GNU ld; TWK_NO_HOT_LAYOUT=1 builds without it. */")
print("SECTIONS {")
print("  .text.twk_hot : {")
print("    *crt1.o(.text .text.*) *crti.o(.text .text.*) *crtbegin*.o(.text .text.*)")
for p in patterns:
    # LLVM puts a function it deems cold (run once, say) in `.text.unlikely.<name>`.
    print(f"    *(.text.{p} .text.unlikely.{p})")
print("  }")
print("} INSERT AFTER .text;")
EOF
}
for which in "relay twk-relay relay-server" "tunnel-* twk-tunnel client"; do
  read -r out binary dir <<<"$which"
  dumps=("$WORK"/$out.*.1)
  [[ -f "${dumps[0]}" ]] || { echo "callgrind wrote no dump for $binary" >&2; exit 1; }
  mkdir -p "$ROOT/$dir/link"
  hot_ld "$BIN/$binary" "${dumps[@]}" >"$ROOT/$dir/link/hot.ld"
  echo "wrote $dir/link/hot.ld: $(grep -c '^    \*(' "$ROOT/$dir/link/hot.ld") patterns" >&2
done
