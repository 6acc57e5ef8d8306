//! The model check on stable: random op sequences (proptest) and the
//! committed fuzz seed corpus, applied to `Cache` and to `SingleLockCache`
//! and compared op by op with the model in `tests/model/mod.rs`, the same
//! model and applier the fuzz targets in `fuzz/` use.

mod common;
mod model;

use std::path::Path;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, CacheBuilder, Stats};

use common::CacheApi;
use model::{Input, Key, Model, Op, Shards, Step, Ttl, Value};

/// Bytes per op in the proptest strategy: enough for the largest `Op`
/// (`InsertWithTtl` with a `Secs` TTL takes 15).
const OP_BYTES: usize = 16;
/// Bytes for the shard count and the default TTL.
const HEADER_BYTES: usize = 12;

/// Decodes an `Input` from a header and one chunk of bytes per op, so that
/// proptest controls the number of ops (a single random byte string would
/// end the op list at the first "keep going" byte that happens to be even)
/// and shrinks a failure by removing whole ops.
fn decode(header: &[u8], ops: &[Vec<u8>]) -> Input {
    let mut u = Unstructured::new(header);
    Input {
        shards: Shards::arbitrary(&mut u).expect("header decodes"),
        default_ttl: Ttl::arbitrary(&mut u).expect("header decodes"),
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

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sharded_cache_matches_the_model(input in inputs()) {
        model::check::<Cache<u8, Value>>(&input);
    }

    #[test]
    fn single_lock_cache_matches_the_model(input in inputs()) {
        model::check::<SingleLockCache<u8, Value>>(&input);
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

/// Boundary cases found worth pinning, on both cache types.
#[test]
fn regressions() {
    let cases = [
        // A deadline of exactly u64::MAX: the clock cannot pass it.
        Input {
            shards: Shards::Two,
            default_ttl: Ttl::Zero,
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
    for input in &cases {
        model::check::<Cache<u8, Value>>(input);
        model::check::<SingleLockCache<u8, Value>>(input);
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

#[test]
#[should_panic(expected = "len differs: op #2 Len at t=2ns")]
fn the_check_catches_a_wrong_cache() {
    model::check::<LiveLenOnly>(&Input {
        shards: Shards::Two,
        default_ttl: Ttl::Nanos(1),
        ops: vec![
            Op::Insert {
                key: Key(0),
                value: 1,
            },
            Op::Advance(Step::Nanos(2)),
            Op::Len,
        ],
    });
}
