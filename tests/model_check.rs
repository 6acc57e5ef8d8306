//! The model check on stable: random op sequences (proptest) and the
//! committed fuzz seed corpus, applied to `Cache` and to `SingleLockCache`
//! and compared op by op with the model in `tests/model/mod.rs`, the same
//! model and applier the fuzz targets in `fuzz/` use; and the same for
//! bounded caches (`check_bounded`, the `ops_bounded` fuzz target).

mod common;
mod model;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, CacheBuilder, Compute, RemovalCause, Stats};

use common::CacheApi;
use model::{
    BoundedApi, BoundedInput, Capacity, Decide, Idle, Input, Key, Model, ModelApi, Op, Shards,
    Step, Tracked, Ttl, Value, Weights, BOUNDED_HEADER_BYTES,
};

/// Bytes per op in the proptest strategy: enough for the largest `Op`
/// (`InsertWithTtl` with a `Secs` TTL takes 15).
const OP_BYTES: usize = 16;
/// Bytes for the shard count, the default TTL and the time-to-idle (read
/// only after a shard code in an upper sixth).
const HEADER_BYTES: usize = 20;

/// Decodes an `Input` from a header and one chunk of bytes per op, so that
/// proptest controls the number of ops (a single random byte string would
/// end the op list at the first "keep going" byte that happens to be even)
/// and shrinks a failure by removing whole ops.
fn decode(header: &[u8], ops: &[Vec<u8>]) -> Input {
    let (shards, default_ttl, time_to_idle) =
        Input::header(&mut Unstructured::new(header)).expect("header decodes");
    Input {
        shards,
        default_ttl,
        time_to_idle,
        ops: ops
            .iter()
            .map(|bytes| Op::arbitrary(&mut Unstructured::new(bytes)).expect("op decodes"))
            .collect(),
    }
}

fn config() -> ProptestConfig {
    if cfg!(miri) {
        // Miri is ~1000 times slower and its isolation forbids the
        // regression file.
        ProptestConfig {
            cases: 4,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    } else {
        ProptestConfig::with_cases(512)
    }
}

fn max_ops() -> usize {
    if cfg!(miri) {
        24
    } else {
        300
    }
}

/// Inputs generated as bytes and decoded, so a failure is reported (and
/// shrunk) as a readable `Input`.
fn inputs() -> impl Strategy<Value = Input> {
    (
        proptest::collection::vec(any::<u8>(), HEADER_BYTES),
        proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), OP_BYTES),
            0..max_ops(),
        ),
    )
        .prop_map(|(header, ops)| decode(&header, &ops))
}

/// Decodes a `BoundedInput`: its own header (capacity, weights, hasher
/// seed), then an `Input` as [`decode`] does.
fn decode_bounded(header: &[u8], ops: &[Vec<u8>]) -> BoundedInput {
    let (own, rest) = header.split_at(BOUNDED_HEADER_BYTES);
    let mut u = Unstructured::new(own);
    BoundedInput {
        capacity: Capacity::arbitrary(&mut u).expect("header decodes"),
        weights: Weights::arbitrary(&mut u).expect("header decodes"),
        seed: u8::arbitrary(&mut u).expect("header decodes"),
        input: decode(rest, ops),
    }
}

fn bounded_inputs() -> impl Strategy<Value = BoundedInput> {
    (
        proptest::collection::vec(any::<u8>(), BOUNDED_HEADER_BYTES + HEADER_BYTES),
        proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), OP_BYTES),
            0..max_ops(),
        ),
    )
        .prop_map(|(header, ops)| decode_bounded(&header, &ops))
}

/// A TTL of `ttl`'s nanoseconds, at most 15: every deadline is near.
fn near(ttl: Ttl) -> Ttl {
    match ttl {
        Ttl::Zero => Ttl::Zero,
        Ttl::Nanos(n) | Ttl::BelowU64Max(n) => Ttl::Nanos(n % 16),
        Ttl::Millis(n) => Ttl::Nanos((n % 16) as u8),
        Ttl::Secs(n) | Ttl::AboveU64Max(n) => Ttl::Nanos((n % 16) as u8),
        Ttl::U64Max | Ttl::Max => Ttl::Nanos(15),
    }
}

/// Bounded inputs focused on eviction meeting expiry: one shard of
/// capacity 1 to 8, every TTL at most 15 ns and every clock step at most
/// 7 ns (but `Max`), so full queues keep holding entries that have just
/// expired; and inserts in place of the ops that empty the cache
/// wholesale (`Clear`, `RemoveExpired`) or check nothing `check_bounded`
/// does not check after every op (`Len`, `IsEmpty`).
fn expiring_bounded_inputs() -> impl Strategy<Value = BoundedInput> {
    (bounded_inputs(), 1..=8u8, 1..=15u8).prop_map(|(mut bounded, capacity, ttl)| {
        bounded.capacity = Capacity(capacity);
        bounded.input.shards = Shards::One;
        bounded.input.default_ttl = Ttl::Nanos(ttl);
        bounded.input.time_to_idle = bounded.input.time_to_idle.map(near);
        for (index, op) in bounded.input.ops.iter_mut().enumerate() {
            match op {
                Op::Clear | Op::RemoveExpired | Op::Len | Op::IsEmpty => {
                    *op = Op::Insert {
                        key: Key((index * 5 % usize::from(model::KEYS)) as u8),
                        value: index as Value,
                    };
                }
                Op::InsertWithTtl { ttl, .. } => *ttl = near(*ttl),
                Op::Advance(Step::Nanos(n) | Step::ToEnd(n)) => {
                    *op = Op::Advance(Step::Nanos(*n % 8))
                }
                Op::Advance(Step::Millis(n)) => *op = Op::Advance(Step::Nanos((*n % 8) as u8)),
                Op::Advance(Step::Secs(n)) => *op = Op::Advance(Step::Nanos((*n % 8) as u8)),
                _ => {}
            }
        }
        bounded
    })
}

/// Bounded inputs aimed at time-to-idle: every input has one, either
/// `Nanos(1..=40)` (its step is the tti itself) with clock steps of at most
/// 7 ns, or `Millis(32..=223)` (a step of 1 to 6.97 ms) with steps of at
/// most 15 ms or 255 ns; one step in 80 goes to the end of the clock
/// (`ToEnd`, where idle deadlines saturate). So reads keep landing before,
/// within and past a step and entries keep going idle between them. The
/// default TTL and `InsertWithTtl`'s TTLs are near (`near`) or none, so
/// the TTL and the idle deadline race. `check` runs on the `Input` too
/// (an unbounded cache, exact to the last value).
fn idle_inputs() -> impl Strategy<Value = BoundedInput> {
    (bounded_inputs(), any::<bool>(), any::<u8>()).prop_map(|(mut bounded, nanos, tti)| {
        let input = &mut bounded.input;
        input.time_to_idle = Some(if nanos {
            Ttl::Nanos(1 + tti % 40)
        } else {
            Ttl::Millis(32 + u16::from(tti % 192))
        });
        input.default_ttl = near(input.default_ttl);
        for op in &mut input.ops {
            match op {
                Op::InsertWithTtl { ttl, .. } => *ttl = near(*ttl),
                Op::Advance(step) => {
                    *step = match (*step, nanos) {
                        (Step::ToEnd(n), _) if n % 16 == 0 => Step::ToEnd(n),
                        (Step::Nanos(n) | Step::ToEnd(n), true) => Step::Nanos(n % 8),
                        (Step::Nanos(n) | Step::ToEnd(n), false) => Step::Nanos(n),
                        (Step::Millis(n), true) => Step::Nanos((n % 8) as u8),
                        (Step::Millis(n), false) => Step::Millis(n % 16),
                        (Step::Secs(n), true) => Step::Nanos((n % 8) as u8),
                        (Step::Secs(n), false) => Step::Millis((n % 16) as u16),
                        (Step::Max, _) => Step::Nanos(1),
                    }
                }
                _ => {}
            }
        }
        bounded
    })
}

proptest! {
    #![proptest_config(config())]

    // Under Miri `idle_regressions` and the other proptests' inputs with a
    // time-to-idle (half of them) drive the same code: 8 s saved.
    #[test]
    #[cfg_attr(miri, ignore = "idle_regressions covers it under Miri")]
    fn caches_keep_the_time_to_idle(input in idle_inputs()) {
        model::check::<Cache<u8, Value>>(&input.input);
        model::check_bounded::<Cache<u8, Tracked>>(&input);
    }

    #[test]
    fn sharded_cache_matches_the_model(input in inputs()) {
        model::check::<Cache<u8, Value>>(&input);
    }

    #[test]
    fn single_lock_cache_matches_the_model(input in inputs()) {
        model::check::<SingleLockCache<u8, Value>>(&input);
    }

    #[test]
    fn bounded_cache_keeps_its_promises(input in bounded_inputs()) {
        model::check_bounded::<Cache<u8, Tracked>>(&input);
    }

    #[test]
    fn bounded_cache_keeps_its_promises_as_entries_expire(input in expiring_bounded_inputs()) {
        model::check_bounded::<Cache<u8, Tracked>>(&input);
    }
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("seed-"))
        })
        .map(|path| {
            let bytes = std::fs::read(&path).expect("seed file");
            let name = path.file_name().expect("file name").to_string_lossy();
            (format!("{target}/{name}"), bytes)
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no seed-* files in {}", dir.display());
    seeds
}

/// Every committed seed of both targets, on both cache types.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn seed_corpus_replays_on_both_caches() {
    for target in ["ops", "ops_single_lock"] {
        for (name, bytes) in seeds(target) {
            let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
            assert!(input.ops.len() >= 10, "{name} decodes to too few ops");
            eprintln!("replaying {name}: {} ops", input.ops.len());
            model::check_bytes::<Cache<u8, Value>>(&bytes);
            model::check_bytes::<SingleLockCache<u8, Value>>(&bytes);
        }
    }
}

/// The seeds were written by hand against the `arbitrary` encoding; if a new
/// `arbitrary` version changed it, they would silently mean something else.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn seed_encoding_is_stable() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ops/seed-ttl-boundary"),
    )
    .expect("seed file");
    let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(input.shards, Shards::One);
    assert_eq!(input.default_ttl, Ttl::Zero);
    assert_eq!(
        input.ops[..4],
        [
            Op::InsertWithTtl {
                key: Key(1),
                value: 10,
                ttl: Ttl::Nanos(5)
            },
            Op::InsertWithTtl {
                key: Key(2),
                value: 20,
                ttl: Ttl::Nanos(6)
            },
            Op::Advance(Step::Nanos(5)),
            Op::Get(Key(1)),
        ]
    );
}

/// The header bytes of a `BoundedInput` with this capacity byte, weights
/// and seed (see `Capacity::bound` for what the byte means).
fn bounded_header(capacity: u8, weights: Weights, seed: u8) -> Vec<u8> {
    let variant = [Weights::Unit, Weights::One, Weights::Small, Weights::Wide]
        .iter()
        .position(|&w| w == weights)
        .expect("every variant listed") as u32;
    // `arbitrary` picks variant `(u32 * 4) >> 32`.
    let mut header = vec![capacity];
    header.extend_from_slice(&(variant << 30).to_le_bytes());
    header.push(seed);
    assert_eq!(header.len(), BOUNDED_HEADER_BYTES);
    header
}

/// The committed seeds of `ops_bounded`.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn bounded_seed_corpus_replays() {
    for (name, bytes) in seeds("ops_bounded") {
        let input = BoundedInput::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
        assert!(input.input.ops.len() >= 10, "{name} decodes to too few ops");
        eprintln!(
            "replaying {name}: {:?} {:?}, {} ops",
            input.capacity,
            input.weights,
            input.input.ops.len()
        );
        model::check_bounded_bytes::<Cache<u8, Tracked>>(&bytes);
    }
}

/// The unbounded targets' seeds, behind a bounded header: every capacity
/// from 0 to 8, a larger one and none, with every weigher.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn unbounded_seeds_replay_on_bounded_caches() {
    let weights = [Weights::Unit, Weights::One, Weights::Small, Weights::Wide];
    for (name, bytes) in seeds("ops") {
        for capacity in (0..=8).chain([200, 250]) {
            for (seed, &weights) in weights.iter().enumerate() {
                let mut data = bounded_header(capacity, weights, seed as u8);
                data.extend_from_slice(&bytes);
                let input =
                    BoundedInput::arbitrary_take_rest(Unstructured::new(&data)).expect("decodes");
                assert_eq!(
                    (input.capacity, input.weights),
                    (Capacity(capacity), weights)
                );
                let plain = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
                assert_eq!(input.input, plain, "{name}: the header changed the ops");
                model::check_bounded::<Cache<u8, Tracked>>(&input);
            }
        }
    }
}

/// How one bounded seed decodes, pinned like `seed_encoding_is_stable`.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn bounded_seed_encoding_is_stable() {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ops_bounded/seed-hit-survives"),
    )
    .expect("seed file");
    let input = BoundedInput::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(input.capacity.bound(), Some(3));
    assert_eq!(input.weights, Weights::Unit);
    assert_eq!(input.input.shards, Shards::One);
    assert_eq!(input.input.default_ttl, Ttl::Zero);
    assert_eq!(
        input.input.ops[..5],
        [
            Op::Insert {
                key: Key(0),
                value: 10,
            },
            Op::Insert {
                key: Key(1),
                value: 11,
            },
            Op::Insert {
                key: Key(2),
                value: 12,
            },
            Op::Get(Key(0)),
            Op::Insert {
                key: Key(3),
                value: 13,
            },
        ]
    );
}

/// The capacity byte's meaning, and the header encoding the tests use.
#[test]
fn capacity_bytes_decode_as_documented() {
    let bounds: Vec<_> = [0, 8, 9, 17, 179, 180, 203, 204, 239, 240, 255]
        .map(|byte| Capacity(byte).bound())
        .into();
    assert_eq!(
        bounds,
        [
            Some(0),
            Some(8),
            Some(0),
            Some(8),
            Some(8),
            Some(9),
            Some(32),
            Some(9),
            Some(20),
            None,
            None
        ]
    );
    let mut data = bounded_header(5, Weights::Small, 7);
    data.push(0);
    let input = BoundedInput::arbitrary_take_rest(Unstructured::new(&data)).expect("decodes");
    assert_eq!(
        (input.capacity.bound(), input.weights, input.seed),
        (Some(5), Weights::Small, 7)
    );
}

/// The model itself, against the documented semantics written out by hand:
/// a model that agreed with a wrong cache would prove nothing.
#[test]
fn model_follows_the_documented_semantics() {
    let mut m = Model::new(Duration::ZERO);
    let nanos = Duration::from_nanos;

    // Live through the deadline, expired one nanosecond after.
    m.insert_with_ttl(1, 10, nanos(5));
    m.advance(nanos(5));
    assert_eq!(m.get(1), Some(10));
    m.advance(nanos(1));
    assert_eq!(m.len(), 1, "expired entries count until removed");
    assert_eq!(m.get(1), None);
    assert_eq!(m.len(), 0, "an expired get removes the entry");

    // Zero TTL never expires; re-insert replaces value and TTL.
    m.insert_with_ttl(2, 20, Duration::ZERO);
    m.insert_with_ttl(3, 30, nanos(1));
    m.insert_with_ttl(3, 31, Duration::ZERO);
    m.advance(Duration::from_secs(1_000_000));
    assert_eq!((m.get(2), m.get(3)), (Some(20), Some(31)));

    // Expired remove and contains_key say so and remove the entry.
    m.insert_with_ttl(4, 40, nanos(1));
    m.insert_with_ttl(5, 50, nanos(1));
    m.advance(nanos(2));
    assert_eq!(m.remove(4), None);
    assert!(!m.contains_key(5));
    assert_eq!(m.len(), 2);
    assert_eq!(m.remove(2), Some(20));

    // remove_expired counts; clear empties.
    m.insert_with_ttl(6, 60, nanos(1));
    m.insert_with_ttl(7, 70, nanos(3));
    m.advance(nanos(2));
    assert_eq!(m.remove_expired(), 1);
    assert_eq!(m.len(), 2);
    m.clear();
    assert!(m.is_empty());

    // Deadlines past the end of the u64 range never expire, also when the
    // clock saturates; one that just fits does expire.
    let mut m = Model::new(Duration::MAX);
    m.insert(1, 1);
    m.advance(nanos(u64::MAX - 10));
    m.insert_with_ttl(2, 2, nanos(11));
    m.insert_with_ttl(3, 3, nanos(9));
    m.advance(Duration::MAX);
    assert_eq!(m.now(), u64::MAX);
    assert_eq!((m.get(1), m.get(2), m.get(3)), (Some(1), Some(2), None));
}

/// The model's loading ops and what it says the removal listener is told,
/// written out by hand.
#[test]
fn model_loads_and_tells_as_documented() {
    use RemovalCause::{Cleared, Expired, Removed, Replaced};
    let nanos = Duration::from_nanos;
    let mut m = Model::new(nanos(5));

    // A miss runs init and stores its value with the default TTL; a hit
    // returns the live value and runs nothing; a failing init stores
    // nothing.
    assert_eq!(m.get_or_insert_with(1, 10), (10, true));
    assert_eq!(m.get_or_insert_with(1, 11), (10, false));
    assert_eq!(m.try_get_or_insert_with_err(1), Some(10));
    assert_eq!(m.try_get_or_insert_with_err(2), None);
    assert_eq!(m.len(), 1);
    assert_eq!(m.take_told(), []);

    // An expired entry is told `Expired`, then loaded over.
    m.advance(nanos(6));
    assert_eq!(m.get_or_insert_with(1, 12), (12, true));
    assert_eq!(m.take_told(), [(1, 10, Expired)]);

    // Replaced (also when expired), removed, cleared, swept.
    m.insert(1, 13);
    m.insert_with_ttl(2, 20, nanos(1));
    m.advance(nanos(2));
    m.insert(2, 21);
    assert_eq!(m.remove(1), Some(13));
    m.insert_with_ttl(3, 30, nanos(1));
    m.insert_with_ttl(4, 40, nanos(1));
    m.advance(nanos(2));
    assert_eq!(m.remove(3), None);
    assert_eq!(m.remove_expired(), 1);
    m.clear();
    assert_eq!(
        m.take_told(),
        [
            (1, 12, Replaced),
            (2, 20, Replaced),
            (1, 13, Removed),
            (3, 30, Expired),
            (4, 40, Expired),
            (2, 21, Cleared),
        ]
    );
}

/// The model's counters (`Model::stats`), op by op, against the `Stats`
/// docs written out by hand: (hits, misses, inserts, removals,
/// expirations, evictions).
#[test]
fn model_counts_as_documented() {
    let nanos = Duration::from_nanos;
    let counts = |m: &Model| {
        let s = m.stats();
        let reads = (s.hits, s.misses);
        (reads, s.inserts, s.removals, s.expirations, s.evictions)
    };
    let mut m = Model::new(nanos(5));

    // Every value stored is an insert (a load's, a `compute`'s `Put`);
    // every lookup a hit or a miss (`remove_if` and `retain` look up none).
    m.insert(1, 10);
    m.insert_with_ttl(2, 20, Duration::ZERO);
    assert_eq!(m.get(1), Some(10));
    assert!(!m.contains_key(3));
    assert_eq!(m.get_or_insert_with(3, 30), (30, true));
    assert_eq!(m.get_or_insert_with(3, 31), (30, false));
    assert_eq!(m.try_get_or_insert_with_err(4), None);
    assert_eq!(m.compute(4, |_| Compute::Put(40)), (None, Some(40)));
    assert_eq!(counts(&m), ((2, 4), 4, 0, 0, 0));

    // A live entry taken out is a removal, by any op; a missing one is
    // nothing.
    assert_eq!(m.remove(1), Some(10));
    assert_eq!(m.remove(1), None);
    assert_eq!(m.remove_if(2, |_| true), Some(20));
    assert_eq!(m.compute(3, |_| Compute::Remove), (Some(30), None));
    m.retain(|_| false);
    assert_eq!(counts(&m), ((3, 4), 4, 4, 0, 0));

    // An expired entry taken out is an expiration, by any op.
    for key in 0..6 {
        m.insert(key, key.into());
    }
    m.advance(nanos(6));
    assert_eq!(m.get(0), None);
    assert!(!m.contains_key(1));
    assert_eq!(m.remove(2), None);
    assert_eq!(m.remove_if(3, |_| false), None);
    assert_eq!(m.compute(4, |_| Compute::Keep), (None, None));
    assert_eq!(m.remove_expired(), 1);
    assert_eq!(counts(&m), ((3, 7), 10, 4, 6, 0));
    m.insert(0, 0);
    m.insert(1, 1);
    m.advance(nanos(6));
    m.insert(1, 2);
    m.retain(|_| true);
    assert_eq!(counts(&m), ((3, 7), 13, 4, 7, 0));

    // What a bounded cache evicts: an expiration if it had expired, else
    // an eviction. `clear` counts nothing.
    m.insert(2, 2);
    m.advance(nanos(6));
    m.evict(1, true);
    m.insert(3, 3);
    m.evict(3, false);
    m.clear();
    assert_eq!(counts(&m), ((3, 7), 15, 4, 8, 1));
}

/// The loading ops are decoded from the upper halves of the code ranges
/// of `Get` and `ContainsKey`; every other code means what the derived
/// decoding of the ten-variant `Op` made of it, so the seeds and grown
/// corpora of before keep their meaning.
#[test]
fn op_codes_keep_their_old_meaning() {
    let decode = |code: u32| {
        let mut bytes = code.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[3, 7, 0, 0, 0, 0, 0, 0, 0, 0]);
        Op::arbitrary(&mut Unstructured::new(&bytes)).expect("decodes")
    };
    let old = [
        Op::Insert {
            key: Key(3),
            value: 7,
        },
        Op::InsertWithTtl {
            key: Key(3),
            value: 7,
            ttl: Ttl::Zero,
        },
        Op::Get(Key(3)),
        Op::ContainsKey(Key(3)),
        Op::Remove(Key(3)),
        Op::RemoveExpired,
        Op::Clear,
        Op::Len,
        Op::IsEmpty,
        Op::Advance(Step::Nanos(0)),
    ];
    for (i, &want) in old.iter().enumerate() {
        // The first code of variant i of 10 (what the seeds use), and the
        // last one of its lower half.
        let first = (((i as u64) << 32).div_ceil(10)) as u32;
        let last_lower = ((((2 * i + 1) as u64) << 32).div_ceil(20) - 1) as u32;
        assert_eq!(
            (decode(first), decode(last_lower)),
            (want, want),
            "variant {i}"
        );
    }
    let upper = |i: u64| (((2 * i + 1) << 32).div_ceil(20)) as u32;
    assert_eq!(
        decode(upper(2)),
        Op::GetOrInsertWith {
            key: Key(3),
            value: 7
        }
    );
    assert_eq!(decode(upper(3)), Op::TryGetOrInsertWithErr(Key(3)));
    assert_eq!(decode(upper(4)), Op::Remove(Key(3)));
    // The last quarters of `Remove`, `RemoveExpired` and `Clear` (the
    // decoder reads `(code * 40) >> 32`), and the code just below each.
    let quarter = |q: u64| ((q << 32).div_ceil(40)) as u32;
    assert_eq!(decode(quarter(19) - 1), Op::Remove(Key(3)));
    assert_eq!(
        decode(quarter(19)),
        Op::RemoveIf {
            key: Key(3),
            odd: true
        }
    );
    assert_eq!(decode(quarter(23) - 1), Op::RemoveExpired);
    assert_eq!(decode(quarter(23)), Op::Retain { keep: 3 });
    assert_eq!(decode(quarter(27) - 1), Op::Clear);
    assert_eq!(decode(quarter(27)), Op::SetMaxCapacity(3));
    assert_eq!(decode(quarter(28)), Op::Len);
    // The last quarter of `Insert` is `Compute`; those of `InsertWithTtl`,
    // `Len` and `IsEmpty` are still free: their old op.
    assert_eq!(
        decode(quarter(3) - 1),
        Op::Insert {
            key: Key(3),
            value: 7
        }
    );
    assert_eq!(
        decode(quarter(3)),
        Op::Compute {
            key: Key(3),
            value: 7,
            decide: Decide::Put
        }
    );
    assert_eq!(decode(quarter(4)), old[1]);
    assert_eq!(decode(quarter(7)), old[1]);
    assert_eq!(decode(quarter(31)), Op::Len);
    assert_eq!(decode(quarter(35)), Op::IsEmpty);
    assert_eq!(decode(quarter(36)), Op::Advance(Step::Nanos(0)));
    assert_eq!(decode(u32::MAX), Op::Advance(Step::Nanos(0)));
}

/// The shard code of an `Input` in its lower or upper sixth of each
/// variant: the same shard count, and the upper sixths read a time-to-idle
/// after the default TTL (see `Input::header`).
#[test]
fn shard_codes_decode_by_sixths() {
    let shards = |code: u32| {
        let mut bytes = code.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 4]);
        Input::header(&mut Unstructured::new(&bytes))
            .expect("decodes")
            .0
    };
    // A default TTL of `Nanos(3)`, then the bytes of a `Millis(32)`.
    let header = |code: u32| {
        let mut bytes = code.to_le_bytes().to_vec();
        bytes.extend_from_slice(&(1u32 << 29).to_le_bytes());
        bytes.push(3);
        bytes.extend_from_slice(&(2u32 << 29).to_le_bytes());
        bytes.extend_from_slice(&32u16.to_le_bytes());
        Input::header(&mut Unstructured::new(&bytes)).expect("decodes")
    };
    let sixth = |s: u64| ((s << 32).div_ceil(6)) as u32;
    let want = [Shards::One, Shards::Two, Shards::Many];
    for s in 0..6 {
        assert_eq!(shards(sixth(s)), want[s as usize / 2], "sixth {s}");
        let tti = (s % 2 == 1).then_some(Ttl::Millis(32));
        let last = ((s + 1) << 32).div_ceil(6) - 1;
        for code in [sixth(s), last as u32] {
            assert_eq!(
                header(code),
                (want[s as usize / 2], Ttl::Nanos(3), tti),
                "code {code}"
            );
        }
        if s > 0 {
            assert_eq!(shards(sixth(s) - 1), want[(s as usize - 1) / 2]);
        }
    }
    assert_eq!(shards(u32::MAX), Shards::Many);
}

/// `Input::header_size_hint` bounds what `Input::header` reads, with and
/// without a time-to-idle: the longest header (an upper-sixth code, then two
/// `Secs` TTLs) and the shortest (a lower-sixth code, then `Zero`).
#[test]
fn header_size_hint_bounds_every_header() {
    let (least, most) = Input::header_size_hint(0);
    let most = most.expect("a header has a most");
    let read = |bytes: &[u8]| {
        let mut u = Unstructured::new(bytes);
        Input::header(&mut u).expect("decodes");
        bytes.len() - u.len()
    };
    let secs = |n: u32| [(3u32 << 29).to_le_bytes(), n.to_le_bytes()].concat();
    let upper_sixth = ((1u64 << 32) / 6 + 1) as u32;
    let longest = [upper_sixth.to_le_bytes().to_vec(), secs(7), secs(9)].concat();
    let shortest = [0u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
    assert_eq!(read(&longest), 20, "code, default TTL and time-to-idle");
    assert_eq!(read(&shortest), 8, "code and default TTL");
    assert_eq!((least, most), (8, 20));
}

/// Every committed seed keeps its meaning: its shard code is in a lower
/// sixth (no time-to-idle, as when it was written) but for the `seed-tti`
/// seeds, which have one, and the seeds written before `Compute` decode to
/// no `Compute` (its codes were `Insert`'s, so a seed with one would have
/// changed; the `seed-tti` seeds came after it).
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn committed_seeds_keep_their_meaning() {
    for target in ["ops", "ops_single_lock", "ops_bounded"] {
        for (name, bytes) in seeds(target) {
            let data = if target == "ops_bounded" {
                &bytes[BOUNDED_HEADER_BYTES..]
            } else {
                &bytes[..]
            };
            let code = u32::from_le_bytes(data[..4].try_into().expect("4 bytes"));
            let tti_seed = name.contains("/seed-tti");
            assert_eq!(
                (u64::from(code) * 6) >> 32 & 1,
                u64::from(tti_seed),
                "{name}: shard code in the wrong sixth"
            );
            let input = Input::arbitrary_take_rest(Unstructured::new(data)).expect("decodes");
            assert_eq!(input.time_to_idle.is_some(), tti_seed, "{name}");
            let computes = input
                .ops
                .iter()
                .filter(|op| matches!(op, Op::Compute { .. }))
                .count();
            if name.contains("/seed-compute") {
                assert!(computes >= 10, "{name}: {computes} computes");
            } else if !tti_seed {
                assert_eq!(computes, 0, "{name} decodes to a Compute");
            }
        }
    }
}

/// How the loading seed decodes, pinned like `seed_encoding_is_stable`.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn loading_seed_encoding_is_stable() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let bytes = std::fs::read(corpus.join("ops/seed-loading")).expect("seed file");
    let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(
        (input.shards, input.default_ttl, input.ops.len()),
        (Shards::Two, Ttl::Nanos(5), 19)
    );
    assert_eq!(
        input.ops[..5],
        [
            Op::GetOrInsertWith {
                key: Key(1),
                value: 10
            },
            Op::GetOrInsertWith {
                key: Key(1),
                value: 11
            },
            Op::TryGetOrInsertWithErr(Key(1)),
            Op::TryGetOrInsertWithErr(Key(2)),
            Op::ContainsKey(Key(2)),
        ]
    );
    let bounded = std::fs::read(corpus.join("ops_bounded/seed-loading-cap2")).expect("seed file");
    assert_eq!(bounded[BOUNDED_HEADER_BYTES..], bytes[..]);
    assert_eq!(
        std::fs::read(corpus.join("ops_single_lock/seed-loading")).expect("seed file"),
        bytes
    );
}

/// Boundary cases found worth pinning, on both cache types.
#[test]
fn regressions() {
    let cases = [
        // A deadline of exactly u64::MAX: the clock cannot pass it.
        Input {
            shards: Shards::Two,
            default_ttl: Ttl::Zero,
            time_to_idle: None,
            ops: vec![
                Op::Advance(Step::ToEnd(5)),
                Op::InsertWithTtl {
                    key: Key(0),
                    value: 1,
                    ttl: Ttl::Nanos(5),
                },
                Op::InsertWithTtl {
                    key: Key(1),
                    value: 2,
                    ttl: Ttl::Nanos(4),
                },
                Op::Advance(Step::Max),
                Op::Len,
                Op::RemoveExpired,
                Op::Get(Key(0)),
                Op::Get(Key(1)),
            ],
        },
        // Re-inserting an expired key revives it with the new TTL.
        Input {
            shards: Shards::One,
            default_ttl: Ttl::Nanos(1),
            time_to_idle: None,
            ops: vec![
                Op::Insert {
                    key: Key(3),
                    value: 1,
                },
                Op::Advance(Step::Nanos(2)),
                Op::Insert {
                    key: Key(3),
                    value: 2,
                },
                Op::Len,
                Op::Get(Key(3)),
                Op::Advance(Step::Nanos(2)),
                Op::Remove(Key(3)),
                Op::IsEmpty,
            ],
        },
    ];
    for input in cases.iter().chain([&loading_case()]) {
        model::check::<Cache<u8, Value>>(input);
        model::check::<SingleLockCache<u8, Value>>(input);
    }
}

/// Loads on a miss, on a hit and over an expired entry, a failing load, and
/// the listener told of each way an entry leaves.
fn loading_case() -> Input {
    let load = |key, value| Op::GetOrInsertWith {
        key: Key(key),
        value,
    };
    Input {
        shards: Shards::One,
        default_ttl: Ttl::Nanos(3),
        time_to_idle: None,
        ops: vec![
            load(1, 10),
            load(1, 11),
            Op::TryGetOrInsertWithErr(Key(2)),
            Op::TryGetOrInsertWithErr(Key(1)),
            Op::Advance(Step::Nanos(4)),
            Op::TryGetOrInsertWithErr(Key(1)),
            load(1, 12),
            load(1, 13),
            put(1, 14),
            Op::Remove(Key(1)),
            load(2, 20),
            Op::Advance(Step::Nanos(4)),
            load(3, 30),
            Op::RemoveExpired,
            Op::Clear,
        ],
    }
}

/// A cache that gets one semantic wrong: its `len` leaves out expired
/// entries. The model check must catch it.
struct LiveLenOnly(Cache<u8, Value>);

impl CacheApi<u8, Value> for LiveLenOnly {
    fn build(builder: CacheBuilder<u8, Value>) -> Self {
        Self(builder.build())
    }
    fn insert(&self, key: u8, value: Value) {
        self.0.insert(key, value);
    }
    fn insert_with_ttl(&self, key: u8, value: Value, ttl: Duration) {
        self.0.insert_with_ttl(key, value, ttl);
    }
    fn get(&self, key: &u8) -> Option<Value> {
        self.0.get(key)
    }
    fn contains_key(&self, key: &u8) -> bool {
        self.0.contains_key(key)
    }
    fn remove(&self, key: &u8) -> Option<Value> {
        self.0.remove(key)
    }
    fn remove_expired(&self) -> usize {
        self.0.remove_expired()
    }
    fn len(&self) -> usize {
        self.0.remove_expired();
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn shard_count(&self) -> usize {
        self.0.shard_count()
    }
    fn stats(&self) -> Stats {
        self.0.stats()
    }
    fn close(&self) {
        self.0.close();
    }
}

impl ModelApi<Value> for LiveLenOnly {
    fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> Value) -> Value {
        self.0.get_or_insert_with(key, init)
    }
    fn try_get_or_insert_with(
        &self,
        key: u8,
        init: impl FnOnce() -> Result<Value, &'static str>,
    ) -> Result<Value, &'static str> {
        self.0.try_get_or_insert_with(key, init)
    }
    fn remove_if(&self, key: u8, pred: impl FnOnce(&Value) -> bool) -> Option<Option<Value>> {
        ModelApi::remove_if(&self.0, key, pred)
    }
    fn retain(&self, keep: impl FnMut(&u8, &Value) -> bool) -> Option<()> {
        ModelApi::retain(&self.0, keep)
    }
    fn compute(
        &self,
        key: u8,
        f: impl FnOnce(Option<&Value>) -> Compute<Value>,
    ) -> Option<Option<Value>> {
        ModelApi::compute(&self.0, key, f)
    }
}

/// `k0` inserted with a TTL of 1 ns, the clock moved past it, then `last`
/// at t=2ns (op #2).
fn expired_then(last: Op) -> Input {
    Input {
        shards: Shards::Two,
        default_ttl: Ttl::Nanos(1),
        time_to_idle: None,
        ops: vec![
            Op::Insert {
                key: Key(0),
                value: 1,
            },
            Op::Advance(Step::Nanos(2)),
            last,
        ],
    }
}

#[test]
#[should_panic(expected = "len differs: op #2 Len at t=2ns")]
fn the_check_catches_a_wrong_cache() {
    model::check::<LiveLenOnly>(&expired_then(Op::Len));
}

/// The one flaw of a cache wrapped by [`wrap_cache_api`]: each method
/// passes through to the `Cache` unless the wrapper overrides it.
trait Flaw {
    fn cache(&self) -> &Cache<u8, Value>;
    fn insert_flawed(&self, key: u8, value: Value) {
        self.cache().insert(key, value);
    }
    fn get_or_insert_with_flawed(&self, key: u8, init: impl FnOnce() -> Value) -> Value {
        self.cache().get_or_insert_with(key, init)
    }
    fn compute_flawed(
        &self,
        key: u8,
        f: impl FnOnce(Option<&Value>) -> Compute<Value>,
    ) -> Option<Value> {
        self.cache().compute(key, f)
    }
    fn stats_flawed(&self) -> Stats {
        self.cache().stats()
    }
}

/// `CacheApi` and `ModelApi` for a wrapper of a `Cache`, through its
/// [`Flaw`], whose methods (those overriding the pass-through) follow.
macro_rules! wrap_cache_api {
    ($ty:ident { $($flaw:item)* }) => {
        impl Flaw for $ty {
            fn cache(&self) -> &Cache<u8, Value> {
                &self.0
            }
            $($flaw)*
        }

        impl CacheApi<u8, Value> for $ty {
            fn build(builder: CacheBuilder<u8, Value>) -> Self {
                Self(builder.build())
            }
            fn insert(&self, key: u8, value: Value) {
                self.insert_flawed(key, value);
            }
            fn insert_with_ttl(&self, key: u8, value: Value, ttl: Duration) {
                self.0.insert_with_ttl(key, value, ttl);
            }
            fn get(&self, key: &u8) -> Option<Value> {
                self.0.get(key)
            }
            fn contains_key(&self, key: &u8) -> bool {
                self.0.contains_key(key)
            }
            fn remove(&self, key: &u8) -> Option<Value> {
                self.0.remove(key)
            }
            fn remove_expired(&self) -> usize {
                self.0.remove_expired()
            }
            fn len(&self) -> usize {
                self.0.len()
            }
            fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
            fn clear(&self) {
                self.0.clear();
            }
            fn shard_count(&self) -> usize {
                self.0.shard_count()
            }
            fn stats(&self) -> Stats {
                self.stats_flawed()
            }
            fn close(&self) {
                self.0.close();
            }
        }

        impl ModelApi<Value> for $ty {
            fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> Value) -> Value {
                self.get_or_insert_with_flawed(key, init)
            }
            fn try_get_or_insert_with(
                &self,
                key: u8,
                init: impl FnOnce() -> Result<Value, &'static str>,
            ) -> Result<Value, &'static str> {
                self.0.try_get_or_insert_with(key, init)
            }
            fn remove_if(
                &self,
                key: u8,
                pred: impl FnOnce(&Value) -> bool,
            ) -> Option<Option<Value>> {
                ModelApi::remove_if(&self.0, key, pred)
            }
            fn retain(&self, keep: impl FnMut(&u8, &Value) -> bool) -> Option<()> {
                ModelApi::retain(&self.0, keep)
            }
            fn compute(
                &self,
                key: u8,
                f: impl FnOnce(Option<&Value>) -> Compute<Value>,
            ) -> Option<Option<Value>> {
                Some(self.compute_flawed(key, f))
            }
        }
    };
}

/// A cache whose `get_or_insert_with` runs `init` also on a hit (and
/// throws its value away).
struct InitsOnHit(Cache<u8, Value>);

wrap_cache_api!(InitsOnHit {
    fn get_or_insert_with_flawed(&self, key: u8, init: impl FnOnce() -> Value) -> Value {
        let loaded = init();
        self.0.get_or_insert_with(key, || loaded)
    }
});

/// A cache whose `insert` removes the old value first, so the listener is
/// told `Removed` where it should be told `Replaced`.
struct RemovesToReplace(Cache<u8, Value>);

wrap_cache_api!(RemovesToReplace {
    fn insert_flawed(&self, key: u8, value: Value) {
        self.0.remove(&key);
        self.0.insert(key, value);
    }
});

/// A cache whose `compute` stores a `Put` with no TTL, not the default.
struct ComputesWithoutTtl(Cache<u8, Value>);

wrap_cache_api!(ComputesWithoutTtl {
    fn compute_flawed(
        &self,
        key: u8,
        f: impl FnOnce(Option<&Value>) -> Compute<Value>,
    ) -> Option<Value> {
        // Keeps what is there, then stores `f`'s value without a TTL:
        // the same results, notices and stats, but for the deadline.
        let mut put = None;
        let kept = self.0.compute(key, |old| match f(old) {
            Compute::Put(value) => {
                put = Some(value);
                Compute::Keep
            }
            other => other,
        });
        match put {
            Some(value) => {
                self.0.insert_with_ttl(key, value, Duration::ZERO);
                Some(value)
            }
            None => kept,
        }
    }
});

/// A cache whose `stats` report no expirations.
struct HidesExpirations(Cache<u8, Value>);

wrap_cache_api!(HidesExpirations {
    fn stats_flawed(&self) -> Stats {
        let mut stats = self.0.stats();
        stats.expirations = 0;
        stats
    }
});

#[test]
#[should_panic(expected = "init ran 1 times, not 0: op #1 GetOrInsertWith { key: k1, value: 11 }")]
fn the_check_catches_init_on_a_hit() {
    model::check::<InitsOnHit>(&loading_case());
}

#[test]
#[should_panic(
    expected = "the removal listener was told other (key, value, cause) than the model: op #8"
)]
fn the_check_catches_a_wrong_removal_cause() {
    model::check::<RemovesToReplace>(&loading_case());
}

/// `check` compares `stats` after every op: a `get` that finds its entry
/// expired counts an expiration, which this cache hides.
#[test]
#[should_panic(expected = "stats differ: op #2 Get(k0) at t=2ns")]
fn the_check_catches_uncounted_expirations() {
    model::check::<HidesExpirations>(&expired_then(Op::Get(Key(0))));
}

/// Shorthands for the hand-written bounded cases.
fn put(key: u8, value: Value) -> Op {
    Op::Insert {
        key: Key(key),
        value,
    }
}

fn bounded(bound: u8, weights: Weights, shards: Shards, ttl: Ttl, ops: Vec<Op>) -> BoundedInput {
    BoundedInput {
        capacity: Capacity(bound),
        weights,
        seed: 0,
        input: Input {
            shards,
            default_ttl: ttl,
            time_to_idle: None,
            ops,
        },
    }
}

/// Bounded cases worth pinning: each path of the eviction code once.
#[test]
fn bounded_regressions() {
    use Shards::{Many, One, Two};
    use Weights::{Small, Unit, Wide};
    let get = |key| Op::Get(Key(key));
    let cases = [
        // Capacity 3: a key read before the insert that would evict it
        // moves to the main queue, and the next one in line goes instead.
        bounded(
            3,
            Unit,
            One,
            Ttl::Zero,
            vec![put(0, 1), put(1, 1), put(2, 1), get(0), put(3, 1), Op::Len],
        ),
        // Evicted keys come back (through the ghost) and evict others.
        bounded(
            2,
            Unit,
            One,
            Ttl::Zero,
            vec![
                put(0, 1),
                put(1, 2),
                put(2, 3),
                put(0, 4),
                get(1),
                put(3, 5),
            ],
        ),
        // A replacement heavier than the shard (9 > 4) removes the old
        // value and is not stored; one that fits evicts others.
        bounded(
            4,
            Wide,
            One,
            Ttl::Zero,
            vec![
                put(1, 2),
                put(1, 9),
                get(1),
                put(2, 1),
                put(3, 1),
                put(2, 3),
            ],
        ),
        // Expired entries are evicted first and count as expirations.
        bounded(
            2,
            Unit,
            One,
            Ttl::Nanos(5),
            vec![
                put(0, 1),
                put(1, 1),
                Op::Advance(Step::Nanos(6)),
                put(2, 1),
                put(3, 1),
            ],
        ),
        // Capacity 0: only weightless entries (value % 4 == 0) are stored.
        bounded(
            0,
            Small,
            One,
            Ttl::Zero,
            vec![put(0, 4), put(1, 1), put(2, 8)],
        ),
        // 8 over 16 shards: half of them hold one entry, half nothing.
        bounded(
            8,
            Unit,
            Many,
            Ttl::Zero,
            (0..8).map(|k| put(k, 1)).chain([Op::Clear]).collect(),
        ),
        // Loads that evict, over an expired entry, and a failing one.
        bounded(
            2,
            Unit,
            One,
            Ttl::Nanos(3),
            loading_case()
                .ops
                .into_iter()
                .chain([
                    put(4, 1),
                    Op::GetOrInsertWith {
                        key: Key(5),
                        value: 2,
                    },
                ])
                .collect(),
        ),
        // No bound, with a weigher: weights tracked, nothing evicted.
        bounded(
            250,
            Wide,
            Two,
            Ttl::Zero,
            (0..8).map(|k| put(k, 9)).collect(),
        ),
    ];
    for input in &cases {
        model::check_bounded::<Cache<u8, Tracked>>(input);
    }
}

/// A bounded cache with one flaw each, chosen by `FLAW`: the bounded check
/// must catch every one.
struct Flawed<const FLAW: u8>(Cache<u8, Tracked>, Mutex<BTreeSet<u8>>);

/// `stats` reports no evictions.
const HIDES_EVICTIONS: u8 = 0;
/// An insert under a key inserted before keeps the old value.
const KEEPS_OLD_VALUE: u8 = 1;
/// `weighted_size` counts entries, ignoring the weigher.
const IGNORES_WEIGHTS: u8 = 2;
/// `get_or_insert_with` runs `init` on a hit too.
const INITS_ON_HIT: u8 = 3;
/// An insert under a key inserted before removes the old value first (the
/// listener is told `Removed`, not `Replaced`).
const REMOVES_TO_REPLACE: u8 = 4;
/// `retain` leaves expired entries in place.
const RETAINS_EXPIRED: u8 = 5;
/// `set_max_capacity(max)` bounds the cache at `max + 1`.
const RESIZES_ONE_OVER: u8 = 6;
/// `compute` keeps an entry its `f` decided to remove.
const COMPUTE_NEVER_REMOVES: u8 = 7;
/// Marks a `Flawed<RESIZES_ONE_OVER>` resized (no key is this large).
const RESIZED: u8 = u8::MAX;

impl<const FLAW: u8> CacheApi<u8, Tracked> for Flawed<FLAW> {
    fn build(builder: CacheBuilder<u8, Tracked>) -> Self {
        Self(builder.build(), Mutex::default())
    }
    fn insert(&self, key: u8, value: Tracked) {
        let again = !self.1.lock().unwrap().insert(key);
        if FLAW == KEEPS_OLD_VALUE && again {
            return;
        }
        if FLAW == REMOVES_TO_REPLACE && again {
            self.0.remove(&key);
        }
        self.0.insert(key, value);
    }
    fn insert_with_ttl(&self, key: u8, value: Tracked, ttl: Duration) {
        self.0.insert_with_ttl(key, value, ttl);
    }
    fn get(&self, key: &u8) -> Option<Tracked> {
        self.0.get(key)
    }
    fn contains_key(&self, key: &u8) -> bool {
        self.0.contains_key(key)
    }
    fn remove(&self, key: &u8) -> Option<Tracked> {
        self.0.remove(key)
    }
    fn remove_expired(&self) -> usize {
        self.0.remove_expired()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    fn clear(&self) {
        self.0.clear();
    }
    fn shard_count(&self) -> usize {
        self.0.shard_count()
    }
    fn stats(&self) -> Stats {
        let mut stats = self.0.stats();
        if FLAW == HIDES_EVICTIONS {
            stats.evictions = 0;
        }
        stats
    }
    fn close(&self) {
        self.0.close();
    }
}

impl<const FLAW: u8> ModelApi<Tracked> for Flawed<FLAW> {
    fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> Tracked) -> Tracked {
        if FLAW == INITS_ON_HIT {
            let loaded = init();
            return self.0.get_or_insert_with(key, || loaded);
        }
        self.0.get_or_insert_with(key, init)
    }
    fn try_get_or_insert_with(
        &self,
        key: u8,
        init: impl FnOnce() -> Result<Tracked, &'static str>,
    ) -> Result<Tracked, &'static str> {
        self.0.try_get_or_insert_with(key, init)
    }
    fn remove_if(&self, key: u8, pred: impl FnOnce(&Tracked) -> bool) -> Option<Option<Tracked>> {
        ModelApi::remove_if(&self.0, key, pred)
    }
    fn retain(&self, mut keep: impl FnMut(&u8, &Tracked) -> bool) -> Option<()> {
        if FLAW == RETAINS_EXPIRED {
            // Removes what `keep` rejects, but leaves the expired entries.
            let rejected: Vec<u8> = self
                .0
                .iter()
                .map(|(k, _)| k)
                .filter(|k| {
                    let value = self.0.get(k);
                    value.is_some_and(|v| !keep(k, &v))
                })
                .collect();
            for key in rejected {
                self.0.remove(&key);
            }
            return Some(());
        }
        ModelApi::retain(&self.0, keep)
    }
    fn compute(
        &self,
        key: u8,
        f: impl FnOnce(Option<&Tracked>) -> Compute<Tracked>,
    ) -> Option<Option<Tracked>> {
        if FLAW == COMPUTE_NEVER_REMOVES {
            return Some(self.0.compute(key, |old| match f(old) {
                Compute::Remove => Compute::Keep,
                other => other,
            }));
        }
        ModelApi::compute(&self.0, key, f)
    }
}

impl<const FLAW: u8> BoundedApi for Flawed<FLAW> {
    fn weighted_size(&self) -> u64 {
        if FLAW == IGNORES_WEIGHTS {
            self.0.len() as u64
        } else {
            self.0.weighted_size()
        }
    }
    fn max_capacity(&self) -> Option<u64> {
        let max = self.0.max_capacity();
        if FLAW == RESIZES_ONE_OVER && self.1.lock().unwrap().contains(&RESIZED) {
            return max.map(|max| max - 1); // hides the flaw from `max_capacity`
        }
        max
    }
    fn set_max_capacity(&self, max: u64) {
        if FLAW == RESIZES_ONE_OVER {
            self.1.lock().unwrap().insert(RESIZED);
            return self.0.set_max_capacity(max + 1);
        }
        self.0.set_max_capacity(max)
    }
}

#[test]
#[should_panic(expected = "stats differ: op #2 Insert { key: k2, value: 1 }")]
fn the_bounded_check_catches_uncounted_evictions() {
    let ops = vec![put(0, 1), put(1, 1), put(2, 1)];
    model::check_bounded::<Flawed<HIDES_EVICTIONS>>(&bounded(
        2,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(expected = "the cache holds k0#1, not the latest value of k0: op #1")]
fn the_bounded_check_catches_a_replaced_value() {
    let ops = vec![put(0, 1), put(0, 2)];
    model::check_bounded::<Flawed<KEEPS_OLD_VALUE>>(&bounded(
        4,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(expected = "weighted_size differs: op #0")]
fn the_bounded_check_catches_a_wrong_weight() {
    let ops = vec![put(0, 5)];
    model::check_bounded::<Flawed<IGNORES_WEIGHTS>>(&bounded(
        8,
        Weights::Wide,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(expected = "init ran on a hit: op #1 GetOrInsertWith")]
fn the_bounded_check_catches_init_on_a_hit() {
    let ops = vec![
        Op::GetOrInsertWith {
            key: Key(0),
            value: 1,
        },
        Op::GetOrInsertWith {
            key: Key(0),
            value: 2,
        },
    ];
    model::check_bounded::<Flawed<INITS_ON_HIT>>(&bounded(
        4,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(
    expected = "the removal listener was told other (key, serial, cause) than the model: op #1"
)]
fn the_bounded_check_catches_a_wrong_removal_cause() {
    let ops = vec![put(0, 1), put(0, 2)];
    model::check_bounded::<Flawed<REMOVES_TO_REPLACE>>(&bounded(
        4,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(
    expected = "told other (key, serial, cause) than the model: op #3 Retain { keep: 255 }"
)]
fn the_bounded_check_catches_a_retain_that_keeps_expired_entries() {
    let ops = vec![
        Op::InsertWithTtl {
            key: Key(0),
            value: 1,
            ttl: Ttl::Nanos(1),
        },
        put(1, 1),
        Op::Advance(Step::Nanos(2)),
        Op::Retain { keep: 0xff },
    ];
    model::check_bounded::<Flawed<RETAINS_EXPIRED>>(&bounded(
        4,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

#[test]
#[should_panic(expected = "is over the bound 2: op #4 SetMaxCapacity(2)")]
fn the_bounded_check_catches_a_bound_set_too_high() {
    let ops = vec![
        put(0, 1),
        put(1, 1),
        put(2, 1),
        put(3, 1),
        Op::SetMaxCapacity(2),
    ];
    model::check_bounded::<Flawed<RESIZES_ONE_OVER>>(&bounded(
        8,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

/// How the seed of `remove_if`, `retain` and `set_max_capacity` decodes,
/// pinned like `loading_seed_encoding_is_stable`.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn bulk_seed_encoding_is_stable() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let bytes = std::fs::read(corpus.join("ops/seed-bulk")).expect("seed file");
    let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(
        (input.shards, input.default_ttl, input.ops.len()),
        (Shards::Two, Ttl::Zero, 23)
    );
    assert_eq!(
        input.ops[9..15],
        [
            Op::RemoveIf {
                key: Key(2),
                odd: false
            },
            Op::RemoveIf {
                key: Key(3),
                odd: false
            },
            Op::RemoveIf {
                key: Key(6),
                odd: true
            },
            Op::Retain { keep: 0b1111_0011 },
            Op::SetMaxCapacity(2),
            Op::Insert {
                key: Key(7),
                value: 17
            },
        ]
    );
    let bounded = std::fs::read(corpus.join("ops_bounded/seed-bulk-cap4")).expect("seed file");
    assert_eq!(bounded[BOUNDED_HEADER_BYTES..], bytes[..]);
    assert_eq!(
        std::fs::read(corpus.join("ops_single_lock/seed-bulk")).expect("seed file"),
        bytes
    );
}

/// A `compute` op: `f` decides from the live value as `decide` says.
fn compute(key: u8, value: Value, decide: Decide) -> Op {
    Op::Compute {
        key: Key(key),
        value,
        decide,
    }
}

/// How the `compute` seeds decode, pinned like `loading_seed_encoding_is_stable`.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn compute_seed_encoding_is_stable() {
    use Decide::{Add, Keep, PutIfAbsent, Remove, RemoveIfOdd};
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let bytes = std::fs::read(corpus.join("ops/seed-compute")).expect("seed file");
    let input = Input::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(
        (input.shards, input.default_ttl, input.ops.len()),
        (Shards::Two, Ttl::Nanos(5), 24)
    );
    assert_eq!(
        input.ops[..11],
        [
            compute(1, 10, Add),
            compute(1, 5, Add),
            compute(1, 99, PutIfAbsent),
            compute(2, 20, PutIfAbsent),
            compute(2, 0, Keep),
            compute(3, 0, Keep),
            compute(3, 0, Remove),
            compute(1, 0, RemoveIfOdd),
            compute(2, 0, RemoveIfOdd),
            Op::Advance(Step::Nanos(6)),
            compute(2, 0, Keep),
        ]
    );
    let bounded = std::fs::read(corpus.join("ops_bounded/seed-compute-cap2")).expect("seed file");
    assert_eq!(bounded[BOUNDED_HEADER_BYTES..], bytes[..]);
    assert_eq!(
        std::fs::read(corpus.join("ops_single_lock/seed-compute")).expect("seed file"),
        bytes
    );
    let bytes = std::fs::read(corpus.join("ops_bounded/seed-compute-resize-cap8")).expect("seed");
    let input = BoundedInput::arbitrary_take_rest(Unstructured::new(&bytes)).expect("decodes");
    assert_eq!(
        (input.capacity.bound(), input.weights, input.input.ops.len()),
        (Some(8), Weights::Small, 18)
    );
    assert_eq!(
        input.input.ops[3..10],
        [
            compute(3, 1, Decide::Put),
            compute(0, 2, Add),
            Op::SetMaxCapacity(3),
            compute(1, 1, Add),
            compute(4, 7, Decide::Put),
            Op::SetMaxCapacity(0),
            compute(5, 4, Decide::Put),
        ]
    );
}

/// The model's `compute` and the decisions of `Op::Compute`, written out
/// by hand.
#[test]
fn model_computes_as_documented() {
    use RemovalCause::{Expired, Removed, Replaced};
    let nanos = Duration::from_nanos;
    let mut m = Model::new(nanos(5));

    // A miss: `f` is given nothing, and `Put` stores with the default TTL;
    // on a hit `f` is given the live value: `Put` replaces it, `Keep`
    // leaves it, `Remove` removes it. Keep and Remove of a miss do nothing.
    assert_eq!(m.compute(1, |_| Compute::Put(10)), (None, Some(10)));
    assert_eq!(
        m.compute(1, |old| Compute::Put(old.map_or(0, |v| v + 1))),
        (Some(10), Some(11))
    );
    assert_eq!(m.compute(1, |_| Compute::Keep), (Some(11), Some(11)));
    assert_eq!(m.compute(2, |_| Compute::Keep), (None, None));
    assert_eq!(m.compute(2, |_| Compute::Remove), (None, None));
    assert_eq!((m.len(), m.take_told()), (1, vec![(1, 10, Replaced)]));

    // `Put` gives a fresh TTL: stored at 3, live through 8.
    m.advance(nanos(3));
    assert_eq!(m.compute(1, |_| Compute::Put(12)), (Some(11), Some(12)));
    m.advance(nanos(5));
    assert_eq!(m.compute(1, |_| Compute::Remove), (Some(12), None));

    // An expired entry leaves before `f` runs, which is given nothing.
    m.insert(3, 30);
    m.advance(nanos(6));
    assert_eq!(m.compute(3, |_| Compute::Keep), (None, None));
    assert!(m.is_empty());
    assert_eq!(
        m.take_told(),
        [(1, 11, Replaced), (1, 12, Removed), (3, 30, Expired)]
    );

    let decisions = |old| {
        [
            Decide::Put,
            Decide::Add,
            Decide::Keep,
            Decide::Remove,
            Decide::PutIfAbsent,
            Decide::RemoveIfOdd,
        ]
        .map(|decide| decide.decide(old, 7))
    };
    use Compute::{Keep, Put, Remove};
    assert_eq!(
        decisions(None),
        [Put(7), Put(7), Keep, Remove, Put(7), Keep]
    );
    assert_eq!(
        decisions(Some(u16::MAX)),
        [Put(7), Put(6), Keep, Remove, Keep, Remove]
    );
    assert_eq!(
        decisions(Some(4)),
        [Put(7), Put(11), Keep, Remove, Keep, Keep]
    );
}

/// Every decision of `compute` over a miss, a hit and an expired entry,
/// a fresh TTL, and (bounded) a `Put` that evicts, one that is not stored
/// and a `set_max_capacity` between them.
fn compute_case() -> Input {
    use Decide::{Add, Keep, PutIfAbsent, Remove, RemoveIfOdd};
    Input {
        shards: Shards::One,
        default_ttl: Ttl::Nanos(3),
        time_to_idle: None,
        ops: vec![
            compute(1, 10, Add),
            compute(1, 5, Add),
            compute(1, 0, PutIfAbsent),
            compute(2, 20, PutIfAbsent),
            compute(1, 0, RemoveIfOdd),
            Op::Advance(Step::Nanos(4)),
            compute(2, 0, Keep),
            put(3, 30),
            Op::Advance(Step::Nanos(2)),
            compute(3, 1, Add),
            Op::Advance(Step::Nanos(2)),
            Op::Get(Key(3)),
            Op::SetMaxCapacity(0),
            compute(5, 50, Decide::Put),
            Op::SetMaxCapacity(1),
            compute(4, 0, Remove),
            compute(5, 51, Decide::Put),
            compute(6, 60, Decide::Put),
            Op::Clear,
        ],
    }
}

/// `compute_case` on both caches and on three bounded ones: capacity 1,
/// capacity 2 with weights `value % 4`, and a weigher with no bound (under
/// Miri only `Cache` and the second: 2.7 s instead of 6.3).
#[test]
fn compute_regressions() {
    let input = compute_case();
    model::check::<Cache<u8, Value>>(&input);
    let mut bounds = vec![(2, Weights::Small)];
    if !cfg!(miri) {
        // The baseline has no `compute`: the check skips those ops.
        model::check::<SingleLockCache<u8, Value>>(&input);
        bounds.extend([(1, Weights::Unit), (250, Weights::Wide)]);
    }
    for (capacity, weights) in bounds {
        model::check_bounded::<Cache<u8, Tracked>>(&bounded(
            capacity,
            weights,
            input.shards,
            input.default_ttl,
            input.ops.clone(),
        ));
    }
}

#[test]
#[should_panic(expected = "final get(k1) differs after 2 ops at t=3ns")]
fn the_check_catches_a_compute_without_ttl() {
    model::check::<ComputesWithoutTtl>(&Input {
        shards: Shards::One,
        default_ttl: Ttl::Nanos(2),
        time_to_idle: None,
        ops: vec![compute(1, 1, Decide::Put), Op::Advance(Step::Nanos(3))],
    });
}

#[test]
#[should_panic(expected = "compute (value, serial) differs: op #1 Compute")]
fn the_bounded_check_catches_a_compute_that_does_not_remove() {
    let ops = vec![put(0, 1), compute(0, 0, Decide::Remove)];
    model::check_bounded::<Flawed<COMPUTE_NEVER_REMOVES>>(&bounded(
        4,
        Weights::Unit,
        Shards::One,
        Ttl::Zero,
        ops,
    ));
}

// ---------------------------------------------------------------------------
// Time to idle
// ---------------------------------------------------------------------------

const MS: u64 = 1_000_000;

/// How the `seed-tti` seeds decode, pinned like
/// `loading_seed_encoding_is_stable`; in `ops_bounded` the same bytes
/// behind a header.
#[test]
#[cfg_attr(
    miri,
    ignore = "reads fuzz/corpus from disk, which Miri's isolation forbids"
)]
fn tti_seed_encoding_is_stable() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let read = |path: &str| std::fs::read(corpus.join(path)).expect("seed file");
    let decode = |bytes: &[u8]| Input::arbitrary_take_rest(Unstructured::new(bytes)).expect("ok");
    let first = decode(&read("ops/seed-tti"));
    assert_eq!(
        (first.shards, first.default_ttl, first.time_to_idle),
        (Shards::One, Ttl::Zero, Some(Ttl::Millis(32)))
    );
    let mut ops = idle_case().ops;
    ops.drain(6..8);
    ops.truncate(23);
    ops.push(Op::Get(Key(1)));
    assert_eq!(first.ops, ops, "idle_case's first part, in whole ms");
    let second = decode(&read("ops/seed-tti-ttl-end"));
    assert_eq!(
        (second.shards, second.default_ttl, second.time_to_idle),
        (Shards::Two, Ttl::Nanos(20), Some(Ttl::Nanos(8)))
    );
    assert_eq!(second.ops.len(), 28);
    assert_eq!(
        second.ops[19..22],
        [
            Op::InsertWithTtl {
                key: Key(6),
                value: 6,
                ttl: Ttl::Nanos(2)
            },
            Op::Get(Key(6)),
            Op::Advance(Step::Nanos(2)),
        ]
    );
    for (plain, bounded, capacity, weights) in [
        (
            "ops/seed-tti",
            "ops_bounded/seed-tti-cap4",
            4,
            Weights::Unit,
        ),
        (
            "ops/seed-tti-ttl-end",
            "ops_bounded/seed-tti-ttl-end-cap3",
            3,
            Weights::Small,
        ),
    ] {
        let mut want = bounded_header(capacity, weights, 0);
        want.extend(read(plain));
        assert_eq!(read(bounded), want, "{bounded}");
    }
}

/// The model's step rule and accesses, written out by hand: a read moves
/// the deadline to `now + tti + step` only when it is below `now + tti`;
/// `contains_key` is no access; the TTL caps the idle deadline.
#[test]
fn model_idles_as_documented() {
    assert_eq!(
        Idle::new(Duration::from_millis(64)),
        Some(Idle {
            tti: 64 * MS,
            step: 2 * MS
        })
    );
    assert_eq!(
        Idle::new(Duration::from_millis(10)).map(|i| i.step),
        Some(MS)
    );
    assert_eq!(Idle::new(Duration::from_nanos(7)).map(|i| i.step), Some(7));
    assert_eq!(Idle::new(Duration::ZERO), None);
    assert_eq!(Idle::new(Duration::from_nanos(u64::MAX)), None);
    assert_eq!(Idle::new(Duration::MAX), None);

    let mut model = Model::new(Duration::ZERO).with_idle(Duration::from_millis(32));
    model.insert(0, 10);
    model.insert(1, 11);
    model.insert_with_ttl(2, 12, Duration::from_millis(40));
    assert_eq!(model.entry(0), Some((10, Some(32 * MS))), "exactly tti");
    model.advance(Duration::from_millis(20));
    assert_eq!(model.get(0), Some(10));
    assert_eq!(model.entry(0), Some((10, Some(53 * MS))), "20 + 32 + 1 ms");
    model.advance(Duration::from_nanos(200));
    assert_eq!(model.get(0), Some(10));
    assert_eq!(model.entry(0), Some((10, Some(53 * MS))), "within a step");
    assert!(model.contains_key(1));
    assert_eq!(model.entry(1), Some((11, Some(32 * MS))), "not an access");
    assert_eq!(model.get(2), Some(12));
    assert_eq!(model.entry(2), Some((12, Some(40 * MS))), "the TTL caps it");
    model.advance(Duration::from_millis(12));
    assert!(!model.contains_key(1), "idle for tti and a step");
    let (value, _) = model.compute(2, |_| shardcache::Compute::Keep);
    assert_eq!(value, Some(12), "the TTL has not passed");
    assert_eq!(model.entry(2), Some((12, Some(40 * MS))), "at the TTL");
    model.advance(Duration::from_millis(21) - Duration::from_nanos(200));
    assert_eq!(model.get(0), Some(10), "exactly at the deadline");
    assert_eq!(model.get(2), None, "the TTL ends first");
    model.advance(Duration::from_millis(33) + Duration::from_nanos(1));
    assert_eq!(model.get(0), None);
    assert_eq!(
        model.take_told(),
        vec![
            (1, 11, RemovalCause::Expired),
            (2, 12, RemovalCause::Expired),
            (0, 10, RemovalCause::Expired)
        ]
    );
}

/// Reads that move the idle deadline and looks that do not, the TTL
/// ending first, an idle deadline that overflows (never), and a TTL set
/// where the idle deadline overflows (the TTL still ends it).
fn idle_case() -> Input {
    let get = |key| Op::Get(Key(key));
    let ms = |n| Op::Advance(Step::Millis(n));
    Input {
        shards: Shards::One,
        default_ttl: Ttl::Zero,
        time_to_idle: Some(Ttl::Millis(32)),
        ops: vec![
            put(0, 1),
            put(1, 2),
            Op::InsertWithTtl {
                key: Key(2),
                value: 3,
                ttl: Ttl::Millis(40),
            },
            ms(20),
            get(0),
            Op::ContainsKey(Key(1)),
            Op::Advance(Step::Nanos(200)),
            get(0),
            get(2),
            ms(12),
            Op::ContainsKey(Key(1)),
            get(0),
            ms(8),
            get(2),
            Op::GetOrInsertWith {
                key: Key(3),
                value: 7,
            },
            Op::GetOrInsertWith {
                key: Key(0),
                value: 8,
            },
            Op::TryGetOrInsertWithErr(Key(0)),
            compute(0, 9, Decide::Keep),
            Op::RemoveIf {
                key: Key(3),
                odd: false,
            },
            Op::Retain { keep: 0xff },
            ms(33),
            get(0),
            Op::RemoveExpired,
            ms(34),
            get(0),
            // Near the end of the clock: the idle deadline overflows.
            Op::Advance(Step::ToEnd(10)),
            put(5, 5),
            Op::InsertWithTtl {
                key: Key(4),
                value: 4,
                ttl: Ttl::Nanos(5),
            },
            get(4),
            get(5),
            Op::Advance(Step::Nanos(6)),
            get(4),
            Op::Advance(Step::Max),
            get(5),
        ],
    }
}

/// `idle_case` on `Cache` and on bounded caches (capacity 2, so the loads
/// evict; and a weigher with no bound). Under Miri on `Cache` only (its
/// shards are the bounded kind, with no bound: the same touch code).
#[test]
fn idle_regressions() {
    let input = idle_case();
    model::check::<Cache<u8, Value>>(&input);
    let bounds = if cfg!(miri) {
        vec![]
    } else {
        vec![(2, Weights::Unit), (250, Weights::Small)]
    };
    for (capacity, weights) in bounds {
        let mut bounded = bounded(
            capacity,
            weights,
            input.shards,
            input.default_ttl,
            input.ops.clone(),
        );
        bounded.input.time_to_idle = input.time_to_idle;
        model::check_bounded::<Cache<u8, Tracked>>(&bounded);
    }
}
