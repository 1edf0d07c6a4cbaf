#!/usr/bin/env bash
# Spiderpool's "limit" test without a cluster: DEPLOYS Deployments x REPLICAS replicas against
# one pool of exactly DEPLOYS*REPLICAS addresses, applied through the workload emulation by
# APPLIERS concurrent `spiderpoolctl apply` processes (one per emulated node, each applying
# its share of the Deployments; their reconcile creates and allocates those pods), once on the
# local store (a temp dir) and once on a loopback etcd.
#
# Prints, per store: pods Running, duplicates, leaked IPs, and the wall seconds from the
# first apply to the last applier's exit (when every pod must be Running).
#
#   benches/limit-1000.sh                 # 100 x 10, 10 appliers, local + etcd
#   STORES=local DEPLOYS=10 benches/limit-1000.sh
#   SPIDERPOOLCTL=/path/to/spiderpoolctl benches/limit-1000.sh   # a prebuilt binary
#   SPIDERPOOLCTL_PROFILE=1 benches/limit-1000.sh   # each applier's time and store calls
#
# Spiderpool's own figure for this test (207 s on a 10-node cluster) includes scheduling,
# image pulls and container start-up; here only the IPAM and the emulated controllers run.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"

DEPLOYS=${DEPLOYS:-100}
REPLICAS=${REPLICAS:-10}
APPLIERS=${APPLIERS:-10}
STORES=${STORES:-"local etcd"}
TOTAL=$((DEPLOYS * REPLICAS))
CHECK="$PWD/benches/scripts/limit/check.py"

if [ -z "${SPIDERPOOLCTL:-}" ]; then
    cargo build --release --quiet -p spiderpool-cni --bin spiderpoolctl
    SPIDERPOOLCTL="$CARGO_TARGET_DIR/release/spiderpoolctl"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/limit-1000.XXXXXX")
ETCD_PID=""
cleanup() {
    if [ -n "$ETCD_PID" ]; then
        kill "$ETCD_PID" 2>/dev/null || true
        wait "$ETCD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    [ -n "${ETCD_DATA:-}" ] && rm -rf "$ETCD_DATA"
    return 0
}
trap cleanup EXIT

# The last address of a pool of $TOTAL addresses starting at 10.100.0.1.
last_ip() {
    local n=$1
    echo "10.100.$((n / 256)).$((n % 256))"
}

# Setup: the pool and the nodes (not timed).
{
    cat <<YAML
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata:
  name: limit-pool
spec:
  subnet: 10.100.0.0/16
  ips: ["10.100.0.1-$(last_ip "$TOTAL")"]
  default: true
YAML
    for n in $(seq 1 "$APPLIERS"); do
        printf -- '---\napiVersion: v1\nkind: Node\nmetadata:\n  name: node-%s\n' "$n"
    done
} >"$WORK/setup.yaml"
# Applier k applies Deployments k, k+APPLIERS, …
for k in $(seq 1 "$APPLIERS"); do
    : >"$WORK/apps-$k.yaml"
done
for d in $(seq 1 "$DEPLOYS"); do
    k=$(((d - 1) % APPLIERS + 1))
    cat >>"$WORK/apps-$k.yaml" <<YAML
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: limit-$d
spec:
  replicas: $REPLICAS
  selector:
    matchLabels: {app: limit-$d}
  template:
    metadata:
      labels: {app: limit-$d}
    spec:
      containers: [{name: app, image: nginx}]
YAML
done

start_etcd() {
    local client peer
    client=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    peer=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        ETCD_DATA=$(mktemp -d /dev/shm/limit-etcd.XXXXXX)
    else
        ETCD_DATA="$WORK/etcd"
    fi
    etcd --name limit --data-dir "$ETCD_DATA/data" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "limit=http://127.0.0.1:$peer" --log-level error >"$WORK/etcd.log" 2>&1 &
    ETCD_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$client") 2>/dev/null; then
            ETCD_URL="etcd://127.0.0.1:$client/limit-1000"
            sleep 0.3
            return 0
        fi
        sleep 0.1
    done
    echo "error: etcd did not start; see $WORK/etcd.log" >&2
    cat "$WORK/etcd.log" >&2
    exit 1
}

# run STORE-NAME STORE-URL
run() {
    local name=$1 store=$2 t0 t1 failed=0
    "$SPIDERPOOLCTL" --store "$store" apply -f "$WORK/setup.yaml" >/dev/null
    t0=$(date +%s.%N)
    local pids=()
    for k in $(seq 1 "$APPLIERS"); do
        "$SPIDERPOOLCTL" --store "$store" apply -f "$WORK/apps-$k.yaml" \
            >"$WORK/$name-apply-$k.out" 2>"$WORK/$name-apply-$k.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || failed=$((failed + 1))
    done
    t1=$(date +%s.%N)
    "$SPIDERPOOLCTL" --store "$store" get pods -A -o json >"$WORK/$name-pods.json"
    "$SPIDERPOOLCTL" --store "$store" get sp -o json >"$WORK/$name-pools.json"
    echo "== $name store: $DEPLOYS Deployments x $REPLICAS replicas, $TOTAL-IP pool, $APPLIERS concurrent appliers"
    if [ "$failed" -gt 0 ]; then
        echo "appliers failed: $failed"
        for k in $(seq 1 "$APPLIERS"); do
            [ -s "$WORK/$name-apply-$k.err" ] && sed "s/^/  applier $k: /" "$WORK/$name-apply-$k.err" | head -3
        done
    fi
    if [ -n "${SPIDERPOOLCTL_PROFILE:-}" ]; then
        for k in $(seq 1 "$APPLIERS"); do
            grep -h '^profile:' "$WORK/$name-apply-$k.err" | sed "s/^/  applier $k: /"
        done
    fi
    python3 "$CHECK" "$WORK/$name-pods.json" "$WORK/$name-pools.json" "$TOTAL" || RESULT=1
    printf 'seconds:    %.2f\n' "$(echo "$t1 - $t0" | bc -l)"
}

RESULT=0
for s in $STORES; do
    case $s in
    local)
        mkdir -m 700 "$WORK/local"
        run local "$WORK/local/store"
        ;;
    etcd)
        if ! command -v etcd >/dev/null 2>&1; then
            echo "== etcd store: skipped (no etcd binary; apt-get install etcd-server)"
            continue
        fi
        start_etcd
        run etcd "$ETCD_URL"
        ;;
    *) echo "unknown store $s" >&2; exit 2 ;;
    esac
done
exit $RESULT
