#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian machine (a C linker, Debian's
# CNI plugins and `ip`, etcd and protoc for the etcd backend); installs nothing already there.
# `scripts/test.sh` runs it; run it once before `cargo bench` on a fresh machine.
source "$(dirname "$0")/env.sh"

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    fi
}
command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
# The CNI end-to-end tests: Debian's reference plugins (bridge, …) and `ip netns`.
apt_install containernetworking-plugins iproute2
# The etcd backend: a real etcd for its tests, and protoc for the etcd-client crate's build.
apt_install etcd-server etcd-client protobuf-compiler
