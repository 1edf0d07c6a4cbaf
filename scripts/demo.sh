#!/usr/bin/env bash
# The demo, on the embedded local store in a temporary directory:
#   1. spiderpoolctl applies a subnet, a pool and a reserved IP (examples/local/lab.yaml);
#   2. the `spiderpool` CNI plugin binary allocates for a few pods, as a runtime would call it;
#   3. spiderpoolctl shows the pools, subnets and endpoints with their counts;
#   4. one pod is deleted (CNI DEL) and the counts follow;
#   5. workload emulation: a Deployment with a SpiderSubnet auto-pool of replicas + 3 (seed 002)
#      grows when the Deployment scales;
#   6. the seed documents' objects are admitted and tabulated (examples/seeds, examples/dual-stack).
# Arguments, if any, replace the folders of step 6.
source "$(dirname "$0")/env.sh"
cargo build --quiet -p spiderpool-cni
bin="$CARGO_TARGET_DIR/debug"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SPIDERPOOL_STORE="$work/store"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
cni() { # cni COMMAND CONTAINER POD
    printf '{"cniVersion":"1.0.0","name":"lab","type":"bridge","ipam":{"type":"spiderpool","store":"%s"}}' "$SPIDERPOOL_STORE" |
        CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS=/var/run/netns/demo CNI_IFNAME=eth0 \
        CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=$3;K8S_POD_UID=uid-$3" "$bin/spiderpool"
    echo
}

step "spiderpoolctl apply -f examples/local/lab.yaml"
"$bin/spiderpoolctl" apply -f examples/local/lab.yaml
for pod in web-1 web-2 web-3; do
    step "CNI ADD for pod $pod (spiderpool plugin binary)"
    cni ADD "ctr-$pod" "$pod"
done
step "spiderpoolctl get sp"
"$bin/spiderpoolctl" get sp
step "spiderpoolctl get ss"
"$bin/spiderpoolctl" get ss
step "spiderpoolctl get se -A"
"$bin/spiderpoolctl" get se -A
step "CNI DEL for pod web-2, then spiderpoolctl get sp"
cni DEL ctr-web-2 web-2
"$bin/spiderpoolctl" get sp
step "spiderpoolctl describe sp lab-pool"
"$bin/spiderpoolctl" describe sp lab-pool

export SPIDERPOOL_STORE="$work/emulation"
step "spiderpoolctl apply -f examples/scenarios/002-deployment-auto-pool/app.yaml"
"$bin/spiderpoolctl" apply -f examples/scenarios/002-deployment-auto-pool/app.yaml
step "spiderpoolctl get sp   (the auto-pool: 2 replicas + 3)"
"$bin/spiderpoolctl" get sp
step "spiderpoolctl get pods -o wide"
"$bin/spiderpoolctl" get pods -o wide
step "spiderpoolctl scale deploy/nginx --replicas 4"
"$bin/spiderpoolctl" scale deploy/nginx --replicas 4
step "spiderpoolctl get sp   (the auto-pool follows: 4 + 3)"
"$bin/spiderpoolctl" get sp
step "spiderpoolctl get ss"
"$bin/spiderpoolctl" get ss

if [ "$#" -eq 0 ]; then
    set -- examples/seeds/* examples/dual-stack
fi
step "the seed documents' objects, admitted and tabulated"
cargo run --quiet -p spiderpool-core --example get -- "$@"
