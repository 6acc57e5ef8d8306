#!/usr/bin/env bash
# Smoke run of the benchmark harness (docs/BENCHMARKS.md): every criterion
# benchmark once, then each mode of the compare example in its --quick form,
# then the hitratio example in its --quick form (with 2 replay threads), then
# the read_through example in its --quick form and the sessions example
# (a few seconds each; both exit non-zero if the cache misbehaves: a load
# that should have been saved, or idle sessions the janitor did not sweep).
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
# Instruction counts need valgrind; where it is missing the mode says so and
# this smoke run skips it rather than fail for the machine's sake.
if command -v valgrind >/dev/null; then
    cargo run --release --example compare -- --quick --callgrind --subjects cache,rwlock --out "$out"
    test -s "$out/callgrind.json" || { echo "bench-smoke: callgrind.json is missing" >&2; exit 1; }
else
    echo "bench-smoke: valgrind not found, --callgrind skipped"
fi
cargo run --release --example compare -- --quick --writers --out "$out"
cargo run --release --example hitratio -- --quick --threads 2 --out "$out"
cargo run --release --example read_through -- --quick
cargo run --release --example sessions

for file in compare.json compare.svg shards.json shards.svg memory.json janitor.json writers.json \
    hitratio.json hitratio.svg; do
    test -s "$out/$file" || { echo "bench-smoke: $out/$file is missing or empty" >&2; exit 1; }
done
echo "bench-smoke: all benchmarks, compare modes, hitratio, read_through and sessions ran"
