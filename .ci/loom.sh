#!/usr/bin/env bash
# Runs the loom models in loom-tests/ against the library built with
# `--cfg shardcache_loom` (every lock, atomic and thread from loom).
#
# CI bound: LOOM_MAX_PREEMPTIONS=2 (a few seconds after the build on a
# 2-core machine; see docs/TESTING.md for measured times). Override it:
#   LOOM_MAX_PREEMPTIONS=3 bash .ci/loom.sh      # the documented default run
#   LOOM_MAX_PREEMPTIONS= bash .ci/loom.sh       # no bound: exhaustive
# Extra arguments go to `cargo test` (e.g. a model name: `m1`).
set -euo pipefail

cd "$(dirname "$0")/../loom-tests"

export RUSTFLAGS="--cfg shardcache_loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS-2}"
if [[ -z "$LOOM_MAX_PREEMPTIONS" ]]; then
    # loom reads an empty value as an error; unset means no bound.
    unset LOOM_MAX_PREEMPTIONS
fi

echo "loom models: LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-unbounded}"
time cargo test --release "$@"
