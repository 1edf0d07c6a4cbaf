#!/usr/bin/env bash
# The demo: reads the seed objects and examples, admits them with Spiderpool's rules and prints
# them as `kubectl get` tables with each pool's free addresses. Extra arguments replace the
# default folders.
source "$(dirname "$0")/env.sh"
if [ "$#" -eq 0 ]; then
    set -- examples/seeds/* examples/dual-stack
fi
cargo run --quiet -p spiderpool-core --example get -- "$@"
