# Sourced by the scripts: checks the toolchain and points cargo at a build cache outside the
# clone, so that CI's fresh clones rebuild incrementally.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    for dir in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
        [ -x "$dir/cargo" ] && export PATH="$dir:$PATH"
    done
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo not found; install Rust $(grep -m1 rust-version Cargo.toml | cut -d'"' -f2) or newer (rustup)" >&2
    exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/spiderpool-rs/target}"
# Incremental caches grow by gigabytes per build and CI never edits: keep them off.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
mkdir -p "$CARGO_TARGET_DIR"
