#!/usr/bin/env bash
# Fuzzes every target (or the ones named) for a fixed time each with cargo-fuzz (libFuzzer),
# then copies new crash, timeout and out-of-memory reproducers to fuzz/artifacts/<target>/,
# where tests/replay.rs replays them on every test run.
#
#   bash fuzz/run.sh                        # every target, 60 s each
#   SECONDS_PER_TARGET=300 bash fuzz/run.sh range ipset
#
# Environment:
#   SECONDS_PER_TARGET  time per target (default 60)
#   TOOLCHAIN           rustup toolchain for the fuzz build (default: nightly when installed,
#                       else stable: with --sanitizer none, cargo-fuzz works on stable too)
#   SANITIZER           none (default: the code has no unsafe; std is not instrumented either)
#                       or address (nightly only)
#   JOBS                libFuzzer -fork=JOBS with -ignore_crashes: keep fuzzing after a crash
#                       and collect every reproducer (default: stop a target at its first crash)
#   NICE                niceness of the builds and runs (default 15)
#   FUZZ_ARGS           extra libFuzzer arguments
#
# The corpus a run grows stays in fuzz/target/corpus/<target>/ (seeded from fuzz/corpus/);
# fold useful new inputs into fuzz/corpus/ by hand or with `cargo fuzz cmin`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# Never the workspace's shared target directory: fuzz builds are instrumented.
unset CARGO_TARGET_DIR

SECONDS_PER_TARGET="${SECONDS_PER_TARGET:-60}"
SANITIZER="${SANITIZER:-none}"
NICE="${NICE:-15}"
if [ -z "${TOOLCHAIN:-}" ]; then
    if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        TOOLCHAIN=nightly
    else
        TOOLCHAIN=stable
    fi
fi
if [ "$SANITIZER" != none ] && [ "$TOOLCHAIN" != nightly ]; then
    echo "error: --sanitizer $SANITIZER needs a nightly toolchain" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz (about 2 minutes)"
    nice -n "$NICE" cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

fuzz=(cargo "+$TOOLCHAIN" fuzz)
flags=(--sanitizer "$SANITIZER")
echo "== cargo +$TOOLCHAIN fuzz build --sanitizer $SANITIZER"
nice -n "$NICE" "${fuzz[@]}" build "${flags[@]}"

mkdir -p target/fuzz-logs
summary=()
new_crashes=0
for t in "${targets[@]}"; do
    work="target/corpus/$t"
    scratch="target/artifacts/$t"
    mkdir -p "$work" "$scratch" "artifacts/$t"
    cp -n corpus/"$t"/* "$work"/ 2>/dev/null || true
    log="target/fuzz-logs/$t.log"
    libfuzzer=(-max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048
        -artifact_prefix="$scratch/" -print_final_stats=1)
    if [ -n "${JOBS:-}" ]; then
        libfuzzer+=(-fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    # shellcheck disable=SC2086
    libfuzzer+=(${FUZZ_ARGS:-})
    echo "== $t: ${SECONDS_PER_TARGET} s"
    set +e
    nice -n "$NICE" "${fuzz[@]}" run "${flags[@]}" "$t" "$work" "corpus/$t" -- "${libfuzzer[@]}" \
        >"$log" 2>&1
    status=$?
    set -e
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)
    [ -n "$runs" ] || runs=$(grep -Eo '^#[0-9]+' "$log" | tail -n 1 | tr -d '#' || true)
    found=0
    for f in "$scratch"/crash-* "$scratch"/timeout-* "$scratch"/oom-* "$scratch"/leak-*; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        if [ ! -e "artifacts/$t/$name" ]; then
            cp "$f" "artifacts/$t/$name"
            echo "   new reproducer: fuzz/artifacts/$t/$name"
            new_crashes=$((new_crashes + 1))
        fi
        found=$((found + 1))
    done
    if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then
        echo "   exit status $status without a reproducer; see fuzz/$log" >&2
    fi
    if [ "$found" -gt 0 ]; then
        grep -m 1 -E "panicked at|ERROR: libFuzzer" -A 2 "$log" | sed 's/^/   /' || true
    fi
    summary+=("$(printf '%-14s %12s runs  %3s s  %s' "$t" "${runs:-?}" "$SECONDS_PER_TARGET" \
        "$([ "$found" -gt 0 ] && echo "$found reproducer(s)" || echo ok)")")
done

echo "== summary (logs in fuzz/target/fuzz-logs/)"
printf '%s\n' "${summary[@]}"
if [ "$new_crashes" -gt 0 ]; then
    echo "$new_crashes new reproducer(s) in fuzz/artifacts/: replay them with"
    echo "  cargo test --manifest-path fuzz/Cargo.toml --no-default-features --test replay"
    exit 1
fi
