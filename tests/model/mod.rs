//! The reference model of a cache and the one op applier that checks a real
//! cache against it, shared by the stable model check
//! (`tests/model_check.rs`) and the fuzz targets (`fuzz/fuzz_targets/`),
//! which include this file with `#[path = "../../tests/model/mod.rs"]`.
//!
//! An [`Input`] (a shard count, a default TTL and a sequence of [`Op`]s) is
//! decoded from raw bytes with `arbitrary`, so the fuzzer, `proptest` and the
//! committed seed corpus all go through [`check_bytes`] and mean the same
//! thing by the same bytes. Every op is applied to the cache under test
//! (through `CacheApi`, with a `ManualClock`) and to [`Model`], and every
//! result must be equal; at the end the contents must be equal too.
//!
//! Needs `mod common;` (tests/common/mod.rs) at the root of the including
//! crate.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use shardcache::{Cache, Clock, ManualClock};

use crate::common::CacheApi;

/// Keys are `0..KEYS`: few enough that operations keep meeting the same
/// entries.
pub const KEYS: u8 = 8;

/// Shard count of [`Shards::Many`].
pub const MANY_SHARDS: usize = 16;

/// The value type of the caches under test.
pub type Value = u16;

/// A key in `0..KEYS`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub u8);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Key(u8::arbitrary(u)? % KEYS))
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        u8::size_hint(depth)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k{}", self.0)
    }
}

/// A time to live, drawn so that the interesting ones are common: zero,
/// a few nanoseconds (deadlines the clock steps over one by one), and the
/// ones around and past the end of the `u64` nanosecond range.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// `Duration::ZERO`: never expires.
    Zero,
    Nanos(u8),
    Millis(u16),
    Secs(u32),
    /// `u64::MAX - n` nanoseconds: overflows unless the clock is below `n`.
    BelowU64Max(u8),
    /// Exactly `u64::MAX` nanoseconds.
    U64Max,
    /// `u64::MAX + 1 + n` nanoseconds: never fits.
    AboveU64Max(u32),
    /// `Duration::MAX`.
    Max,
}

impl Ttl {
    pub fn duration(self) -> Duration {
        match self {
            Ttl::Zero => Duration::ZERO,
            Ttl::Nanos(n) => Duration::from_nanos(n.into()),
            Ttl::Millis(n) => Duration::from_millis(n.into()),
            Ttl::Secs(n) => Duration::from_secs(n.into()),
            Ttl::BelowU64Max(n) => Duration::from_nanos(u64::MAX - u64::from(n)),
            Ttl::U64Max => Duration::from_nanos(u64::MAX),
            Ttl::AboveU64Max(n) => {
                Duration::from_nanos(u64::MAX) + Duration::from_nanos(u64::from(n) + 1)
            }
            Ttl::Max => Duration::MAX,
        }
    }
}

/// How far an [`Op::Advance`] moves the clock.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Nanos(u8),
    Millis(u16),
    Secs(u32),
    /// To `u64::MAX - n` nanoseconds, or by zero if the clock is past it.
    ToEnd(u8),
    /// `Duration::MAX`: the clock saturates at `u64::MAX`.
    Max,
}

impl Step {
    /// The duration to advance by when the clock reads `now`.
    pub fn duration(self, now: u64) -> Duration {
        match self {
            Step::Nanos(n) => Duration::from_nanos(n.into()),
            Step::Millis(n) => Duration::from_millis(n.into()),
            Step::Secs(n) => Duration::from_secs(n.into()),
            Step::ToEnd(n) => Duration::from_nanos((u64::MAX - u64::from(n)).saturating_sub(now)),
            Step::Max => Duration::MAX,
        }
    }
}

/// One operation of the cache API.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert { key: Key, value: Value },
    InsertWithTtl { key: Key, value: Value, ttl: Ttl },
    Get(Key),
    ContainsKey(Key),
    Remove(Key),
    RemoveExpired,
    Clear,
    Len,
    IsEmpty,
    Advance(Step),
}

/// The shard count of the cache under test (`SingleLockCache` ignores it).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shards {
    One,
    Two,
    Many,
}

impl Shards {
    pub fn count(self) -> usize {
        match self {
            Shards::One => 1,
            Shards::Two => 2,
            Shards::Many => MANY_SHARDS,
        }
    }
}

/// One test case: how to build the cache, then what to do with it.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub shards: Shards,
    /// The TTL of [`Op::Insert`].
    pub default_ttl: Ttl,
    pub ops: Vec<Op>,
}

/// The simplest cache with the documented semantics: a sorted map from key
/// to value and deadline, and the current time.
///
/// An entry inserted at `now` with TTL `t` has deadline `now + t`
/// (nanoseconds, computed without overflow) and is live while
/// `now <= deadline`. A zero TTL, or a deadline past `u64::MAX`, means no
/// deadline.
#[derive(Debug, Default)]
pub struct Model {
    now: u64,
    default_ttl: Duration,
    entries: BTreeMap<u8, (Value, Option<u64>)>,
}

impl Model {
    pub fn new(default_ttl: Duration) -> Self {
        Self {
            now: 0,
            default_ttl,
            entries: BTreeMap::new(),
        }
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    fn deadline(&self, ttl: Duration) -> Option<u64> {
        if ttl.is_zero() {
            return None;
        }
        u64::try_from(u128::from(self.now) + ttl.as_nanos()).ok()
    }

    fn is_live(&self, deadline: Option<u64>) -> bool {
        live_at(self.now, deadline)
    }

    pub fn insert(&mut self, key: u8, value: Value) {
        self.insert_with_ttl(key, value, self.default_ttl);
    }

    pub fn insert_with_ttl(&mut self, key: u8, value: Value, ttl: Duration) {
        let deadline = self.deadline(ttl);
        self.entries.insert(key, (value, deadline));
    }

    /// The live value; an expired entry is removed.
    pub fn get(&mut self, key: u8) -> Option<Value> {
        let (value, deadline) = *self.entries.get(&key)?;
        if self.is_live(deadline) {
            Some(value)
        } else {
            self.entries.remove(&key);
            None
        }
    }

    pub fn contains_key(&mut self, key: u8) -> bool {
        self.get(key).is_some()
    }

    /// Removes the entry; returns its value only if it was live.
    pub fn remove(&mut self, key: u8) -> Option<Value> {
        let (value, deadline) = self.entries.remove(&key)?;
        self.is_live(deadline).then_some(value)
    }

    pub fn remove_expired(&mut self) -> usize {
        let before = self.entries.len();
        let now = self.now;
        self.entries
            .retain(|_, (_, deadline)| live_at(now, *deadline));
        before - self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries stored, expired ones included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Moves time forward, saturating at `u64::MAX`.
    pub fn advance(&mut self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.now = self.now.saturating_add(by);
    }
}

/// Whether an entry with this deadline is live at `now`.
fn live_at(now: u64, deadline: Option<u64>) -> bool {
    match deadline {
        None => true,
        Some(deadline) => now <= deadline,
    }
}

/// Decodes an [`Input`] from `data` and runs [`check`] on it. Every byte
/// string decodes to some input, so the fuzzer never wastes a run.
pub fn check_bytes<C: CacheApi<u8, Value>>(data: &[u8]) {
    let input = Input::arbitrary_take_rest(Unstructured::new(data))
        .expect("every byte string decodes to an Input");
    check::<C>(&input);
}

/// Applies `input` to a fresh `C` and to a fresh [`Model`]; panics on the
/// first difference, naming the op and its index.
pub fn check<C: CacheApi<u8, Value>>(input: &Input) {
    let clock = ManualClock::new();
    let default_ttl = input.default_ttl.duration();
    let cache = C::build(
        Cache::builder()
            .shards(input.shards.count())
            .default_ttl(default_ttl)
            .clock(clock.clone()),
    );
    let mut model = Model::new(default_ttl);

    for (index, &op) in input.ops.iter().enumerate() {
        let now = model.now();
        let at = || format!("op #{index} {op:?} at t={now}ns");
        match op {
            Op::Insert { key, value } => {
                cache.insert(key.0, value);
                model.insert(key.0, value);
            }
            Op::InsertWithTtl { key, value, ttl } => {
                cache.insert_with_ttl(key.0, value, ttl.duration());
                model.insert_with_ttl(key.0, value, ttl.duration());
            }
            Op::Get(key) => {
                let want = model.get(key.0);
                assert_eq!(cache.get(&key.0), want, "get differs: {}", at());
            }
            Op::ContainsKey(key) => {
                let want = model.contains_key(key.0);
                assert_eq!(
                    cache.contains_key(&key.0),
                    want,
                    "contains_key differs: {}",
                    at()
                );
            }
            Op::Remove(key) => {
                let want = model.remove(key.0);
                assert_eq!(cache.remove(&key.0), want, "remove differs: {}", at());
            }
            Op::RemoveExpired => {
                let want = model.remove_expired();
                assert_eq!(
                    cache.remove_expired(),
                    want,
                    "remove_expired differs: {}",
                    at()
                );
            }
            Op::Clear => {
                cache.clear();
                model.clear();
            }
            Op::Len => assert_eq!(cache.len(), model.len(), "len differs: {}", at()),
            Op::IsEmpty => {
                assert_eq!(
                    cache.is_empty(),
                    model.is_empty(),
                    "is_empty differs: {}",
                    at()
                );
            }
            Op::Advance(step) => {
                let by = step.duration(model.now());
                clock.advance(by);
                model.advance(by);
                assert_eq!(clock.now_nanos(), model.now(), "clock differs: {}", at());
            }
        }
    }

    // Final contents. `get` removes expired entries, so compare the count
    // with expired entries first, then every key, then the live count.
    let end = format!("after {} ops at t={}ns", input.ops.len(), model.now());
    assert_eq!(cache.len(), model.len(), "final len differs {end}");
    for key in 0..KEYS {
        let want = model.get(key);
        assert_eq!(cache.get(&key), want, "final get(k{key}) differs {end}");
    }
    assert_eq!(
        cache.len(),
        model.len(),
        "final len of live entries differs {end}"
    );
}
