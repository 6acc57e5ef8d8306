#!/usr/bin/env bash
# Runs the library's unit and integration tests under Miri, which checks
# them for undefined behaviour in what the library uses (hashbrown, ahash,
# crossbeam-utils, the std locks and atomics), for data races between the
# tests' threads, and for leaks. Doc tests are left out (--lib --tests):
# each would be a separate Miri run of a few seconds and they exercise the
# same code the tests do. Tests Miri cannot run carry
# `#[cfg_attr(miri, ignore = "reason")]`; loops are capped with cfg!(miri).
#
# Miri runs with its default isolation: no test needs the host's files,
# environment or wall clock (time in Miri is a virtual monotonic clock).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
fi
rustup component add miri rust-src --toolchain nightly
cargo +nightly miri setup

# Bounded: the whole run takes 10-15 minutes on 2 cores (docs/TESTING.md);
# a hang must not eat the CI.
# The library's unit tests and the integration tests; the examples' own
# tests (hitratio's trace readers, manual_clock) hold no unsafe code and
# would only add minutes.
# parking_lot_core (the shard writers' mutex) keeps its queue of parked
# threads in an integer and casts it back to a pointer; Miri warns once per
# test binary. Permissive provenance accepts those casts; the library's own
# pointers never come from an integer, so they are still checked strictly.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance}"
timeout "${MIRI_TIMEOUT:-1800}" cargo +nightly miri test --lib --test '*'
