#!/usr/bin/env bash
# Everything CI checks: installs what the tests need on a fresh Debian machine, then runs
# formatting, clippy with -D warnings, every test (unit, integration, property, doc) and the
# demo.
source "$(dirname "$0")/env.sh"

bash scripts/deps.sh

for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        rustup component add "$component"
    fi
done

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc (a broken link is an error)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== cargo test"
cargo test --workspace
echo "== cargo deny (licences, bans, sources; advisories when reachable)"
bash scripts/deny.sh
echo "== fuzz corpus and crash reproducers, replayed on stable"
cargo test --manifest-path fuzz/Cargo.toml --no-default-features
echo "== demo"
out=$(bash scripts/demo.sh examples/seeds/003-reserved-ip)
echo "$out"
grep -q "free in test-ippool (1 of 3): 10.6.168.133" <<<"$out" || {
    echo "demo: seed 003 should leave exactly 10.6.168.133 free" >&2
    exit 1
}
grep -Eq "auto4-nginx-eth0-[a-z0-9]+ +4 +10.244.0.0/16 +4 +7 " <<<"$out" || {
    echo "demo: the auto-pool should hold 4 of 7 after scaling nginx to 4" >&2
    exit 1
}
grep -q "lab-pool   4         10.250.0.0/24   2                    21" <<<"$out" || {
    echo "demo: after three ADDs and one DEL the lab pool should hold 2 of 21" >&2
    exit 1
}
echo "all checks passed"
