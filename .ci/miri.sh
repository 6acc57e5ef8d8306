#!/usr/bin/env bash
# Runs the library's unit and integration tests under Miri, which checks
# them for undefined behaviour in what the library uses (its striped locks,
# hashbrown, ahash, crossbeam-utils, the std locks and atomics), for data
# races between the tests' threads, and for leaks. Doc tests are left out:
# each would be a separate Miri run of a few seconds and they exercise the
# same code the tests do. Tests Miri cannot run, and single-threaded policy
# tests of safe code that take minutes under Miri, carry
# `#[cfg_attr(miri, ignore = "reason")]`; loops are capped with cfg!(miri).
#
# Miri interprets on one core, so the tests run as two groups side by side,
# each in its own target directory (cargo holds a target directory's lock
# while its tests run). Each group's output goes to target/miri-logs/ and
# is printed when the group ends.
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

# parking_lot_core (the shard writers' mutex) keeps its queue of parked
# threads in an integer and casts it back to a pointer; Miri warns once per
# test binary. Permissive provenance accepts those casts; the library's own
# pointers never come from an integer, so they are still checked strictly.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-permissive-provenance}"

# Group b: the integration tests that fill caches with thousands of entries
# (about half of the time). Group a: the unit tests and every other test
# file, so a new test file runs without editing this list.
group_b=(bounded footprint janitor janitor_panics janitor_shared model_check panic_safety shrink
    threads)
args_a=(--lib)
for file in tests/*.rs; do
    name="$(basename "$file" .rs)"
    if [[ " ${group_b[*]} " != *" $name "* ]]; then args_a+=(--test "$name"); fi
done
args_b=()
for name in "${group_b[@]}"; do args_b+=(--test "$name"); done

# A hang must not eat the CI: each group is bounded (10-15 minutes of
# Miri in all on 2 cores, docs/TESTING.md).
logs="target/miri-logs"
mkdir -p "$logs"
run_group() {
    local name="$1"
    shift
    CARGO_TARGET_DIR="target/miri-$name" timeout "${MIRI_TIMEOUT:-1500}" \
        cargo +nightly miri test "$@" >"$logs/$name.log" 2>&1
}
run_group a "${args_a[@]}" &
pid_a=$!
run_group b "${args_b[@]}" &
pid_b=$!
status=0
for group in a b; do
    pid_var="pid_$group"
    if wait "${!pid_var}"; then
        result="passed"
    else
        result="FAILED"
        status=1
    fi
    echo "==> Miri group $group: $result ($SECONDS s)"
    grep -E '^(     Running|test result|error|failures:|---- )' "$logs/$group.log" || true
    if [[ "$result" == "FAILED" ]]; then tail -n 80 "$logs/$group.log"; fi
done
exit "$status"
