#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licences, banned crates and
# sources always; security advisories when RustSec's advisory database (on github.com) can
# be fetched — some build machines cannot reach it, and then this says so instead of failing.
source "$(dirname "$0")/env.sh"

DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$DENY_VERSION"; then
    echo "installing cargo-deny $DENY_VERSION (once per machine)"
    # In a temporary target dir of its own, not the project's build cache.
    env -u CARGO_TARGET_DIR cargo install --locked --quiet cargo-deny --version "$DENY_VERSION"
fi

cargo deny --log-level error check licenses bans sources
if cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --log-level error --offline check advisories
else
    echo "cargo deny: advisories NOT checked: RustSec's database (github.com/RustSec/advisory-db) is unreachable from this machine"
fi
