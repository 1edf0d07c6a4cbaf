#!/usr/bin/env bash
# Whole-process CNI IPAM ADD: our `spiderpool` plugin on the local store against Debian's
# `host-local`, on the same range (a /20: 4,093 addresses), at fill levels 0 %, 50 % and 90 %.
#
# Usage: bash benches/cni-vs-host-local.sh          (N=500 timed calls per measurement)
#        N=100 LEVELS="0 90" bash benches/cni-vs-host-local.sh
#
# Method: both plugins keep their state in one fresh temporary directory (same filesystem).
# Each range is first filled to the level by ADDs of other containers (untimed). Then N ADDs
# are timed, each followed by an untimed DEL of the same container so that the range stays at
# the level; then N VERSION calls of our binary (the floor: starting the process). Every call
# is a separate process with only the CNI variables in its environment and the netconf on
# stdin; the harness (benches/scripts/cni_time.rs, std only) measures spawn to exit.
# Our plugin is measured twice: alone (each process reads and decodes the store itself) and
# with the node agent (`spiderpoolctl agent`, started here, named by the netconf's
# `ipam_unix_socket_path`: each plugin process hands its command to the agent, which keeps the
# store open and the pool decoded; Spiderpool's own plugin always works through its agent).
# Both use the same local store, and the agent's ADD is followed by an untimed DEL through it.
# The table gives median and p90 in ms per level and the ratios per level; then the worst
# level's ratios of the plugin alone, and, as the last two lines, the worst level's ratios
# with the agent (the targets must hold at every level).
source "$(dirname "$0")/../scripts/env.sh"

N="${N:-500}"
LEVELS="${LEVELS:-0 50 90}"
HOST_LOCAL=/usr/lib/cni/host-local
if [ ! -x "$HOST_LOCAL" ]; then
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containernetworking-plugins
fi

echo "== building (release)" >&2
cargo build --release --quiet -p spiderpool-cni --bin spiderpool --bin spiderpoolctl
BIN="$CARGO_TARGET_DIR/release"
HARNESS="$BIN/cni_time"
if [ ! -x "$HARNESS" ] || [ benches/scripts/cni_time.rs -nt "$HARNESS" ]; then
    rustc --edition 2021 -O -o "$HARNESS" benches/scripts/cni_time.rs
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/cni-vs-host-local.XXXXXX")"
AGENT_PID=
trap '[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null; rm -rf "$WORK"' EXIT

# The range: 10.77.0.2-10.77.15.254, gateway 10.77.0.1, for both.
SIZE=4093
cat >"$WORK/pool.yaml" <<'EOF'
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: bench}
spec: {subnet: 10.77.0.0/20, ips: [10.77.0.2-10.77.15.254], gateway: 10.77.0.1, default: true}
EOF
"$BIN/spiderpoolctl" --store "$WORK/spiderpool" apply -f "$WORK/pool.yaml" >/dev/null
cat >"$WORK/spiderpool.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
 "ipam": {"type": "spiderpool", "store": "$WORK/spiderpool", "default_ipv4_ippool": ["bench"]}}
EOF
cat >"$WORK/agent.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
 "ipam": {"type": "spiderpool", "store": "$WORK/spiderpool", "default_ipv4_ippool": ["bench"],
          "ipam_unix_socket_path": "$WORK/agent.sock"}}
EOF
"$BIN/spiderpoolctl" agent --socket "$WORK/agent.sock" 2>/dev/null &
AGENT_PID=$!
for _ in $(seq 100); do [ -S "$WORK/agent.sock" ] && break; sleep 0.05; done
[ -S "$WORK/agent.sock" ] || { echo "the agent did not start" >&2; exit 1; }
cat >"$WORK/host-local.json" <<EOF
{"cniVersion": "1.0.0", "name": "bench", "type": "bridge",
 "ipam": {"type": "host-local", "dataDir": "$WORK/host-local",
          "ranges": [[{"subnet": "10.77.0.0/20", "rangeStart": "10.77.0.2",
                       "rangeEnd": "10.77.15.254", "gateway": "10.77.0.1"}]]}}
EOF

echo "== N=$N per measurement, levels: $LEVELS, range: $SIZE addresses, state in $WORK" >&2
printf '%-6s %-6s | %-15s | %-15s | %-15s | %-15s | %-6s %-7s | %-6s %-7s\n' \
    level held "host-local ADD" "spiderpool ADD" "with agent ADD" "VERSION" \
    "HL/SP" "ADD/VER" "HL/AG" "AG/VER"
printf '%-6s %-6s | %-15s | %-15s | %-15s | %-15s | %-14s | %-14s\n' \
    "" "" "median p90 (ms)" "median p90" "median p90" "median p90" "alone" "with agent"
held=0
rows=()
agent_rows=()
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
for level in $LEVELS; do
    target=$((SIZE * level / 100))
    if [ "$target" -gt "$held" ]; then
        echo "   filling both ranges to $level % ($target addresses)" >&2
        "$HARNESS" "$HOST_LOCAL" "$WORK/host-local.json" fill $((target - held)) "fill$level"
        "$HARNESS" "$BIN/spiderpool" "$WORK/spiderpool.json" fill $((target - held)) "fill$level"
        held=$target
    fi
    read -r hl hl90 < <("$HARNESS" "$HOST_LOCAL" "$WORK/host-local.json" add "$N" "add$level")
    read -r sp sp90 < <("$HARNESS" "$BIN/spiderpool" "$WORK/spiderpool.json" add "$N" "add$level")
    read -r ag ag90 < <("$HARNESS" "$BIN/spiderpool" "$WORK/agent.json" add "$N" "agt$level")
    read -r ver ver90 < <("$HARNESS" "$BIN/spiderpool" "$WORK/spiderpool.json" version "$N" "ver$level")
    r1=$(ratio "$hl" "$sp")
    r2=$(ratio "$sp" "$ver")
    r3=$(ratio "$hl" "$ag")
    r4=$(ratio "$ag" "$ver")
    printf '%-6s %-6s | %6.3f %8.3f | %6.3f %8.3f | %6.3f %8.3f | %6.3f %8.3f | %-6s %-7s | %-6s %-7s\n' \
        "$level%" "$held" "$hl" "$hl90" "$sp" "$sp90" "$ag" "$ag90" "$ver" "$ver90" \
        "$r1" "$r2" "$r3" "$r4"
    rows+=("$level $r1 $r2")
    agent_rows+=("$level $r3 $r4")
done
# The worst level of each ratio.
worst() { printf '%s\n' "$@" | sort -k2,2g | head -1; }
worst_ver() { printf '%s\n' "$@" | sort -k3,3g | tail -1; }
w1=$(worst "${rows[@]}")
w2=$(worst_ver "${rows[@]}")
echo "plugin alone: ratio host-local/spiderpool median ADD: $(awk '{print $2}' <<<"$w1") (at ${w1%% *} %)," \
    "ADD/VERSION: $(awk '{print $3}' <<<"$w2") (at ${w2%% *} %)"
w3=$(worst "${agent_rows[@]}")
w4=$(worst_ver "${agent_rows[@]}")
echo "with the node agent, worst levels: host-local/spiderpool at ${w3%% *} %, ADD/VERSION at ${w4%% *} %"
echo "ratio host-local/spiderpool median ADD: $(awk '{print $2}' <<<"$w3")"
echo "ratio spiderpool ADD/VERSION median: $(awk '{print $3}' <<<"$w4")"
