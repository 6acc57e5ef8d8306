#!/usr/bin/env bash
# Fuzzes shardcache against the model in tests/model/mod.rs: each cargo-fuzz
# target in fuzz/ (ops, ops_single_lock, ops_bounded) runs for FUZZ_SECONDS
# (default 60, so about 3 minutes of fuzzing in all) from the committed seed
# corpus. A divergence from the model, a panic or a hang (>10 s on one
# input) fails the script; cargo-fuzz prints the input and how to replay it.
# Installs the nightly toolchain and cargo-fuzz if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=(ops ops_single_lock ops_bounded)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
# clippy and rustfmt check the fuzz crate, which the main workspace excludes.
rustup component add clippy rustfmt --toolchain nightly
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cargo +nightly fmt --manifest-path fuzz/Cargo.toml -- --check
cargo +nightly clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

cd fuzz
cargo +nightly fuzz build
for target in "${targets[@]}"; do
    echo "==> fuzz $target for ${seconds}s"
    cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1
done
