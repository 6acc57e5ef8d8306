#!/usr/bin/env bash
# Smoke run of the benchmark harness (docs/BENCHMARKS.md): every criterion
# benchmark once, then each mode of the compare example in its --quick form.
# Checks that the harness builds and runs, not how fast anything is. Called
# by .ci/run; about a minute once built.
set -euo pipefail
cd "$(dirname "$0")/.."

out="target/bench-smoke"

# criterion's --test mode runs each benchmark exactly once.
cargo bench --bench contention --bench shards -- --test

cargo run --release --example compare -- --quick --out "$out"
cargo run --release --example compare -- --quick --shards --out "$out"
cargo run --release --example compare -- --quick --memory --out "$out"
cargo run --release --example compare -- --quick --janitor --out "$out"

for file in compare.json compare.svg shards.json shards.svg memory.json janitor.json; do
    test -s "$out/$file" || { echo "bench-smoke: $out/$file is missing or empty" >&2; exit 1; }
done
echo "bench-smoke: all benchmarks and compare modes ran"
