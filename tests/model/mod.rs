//! The reference model of a cache and the one op applier that checks a real
//! cache against it, shared by the stable model check
//! (`tests/model_check.rs`) and the fuzz targets (`fuzz/fuzz_targets/`),
//! which include this file with `#[path = "../../tests/model/mod.rs"]`.
//!
//! An [`Input`] (a shard count, a default TTL, maybe a time-to-idle, and a
//! sequence of [`Op`]s) is decoded from raw bytes with `arbitrary`, so the
//! fuzzer, `proptest` and the committed seed corpus all go through
//! [`check_bytes`] and mean the same thing by the same bytes. Every op is applied to the cache under test
//! (through `CacheApi` and [`ModelApi`], with a `ManualClock`) and to
//! [`Model`], and every result must be equal, and so must the cache's
//! `stats()` and [`Model::stats`]; at the end the contents must be equal
//! too. The loading ops must run `init` exactly when the model
//! says, and a removal listener on the cache must be told exactly the
//! entries the model says left, with their values and causes.
//!
//! Bounded caches have their own applier, [`check_bounded`]: the model
//! cannot predict which entry an insert evicts, so it learns it from the
//! values the cache still holds (every value is a [`Tracked`] registered
//! while alive) and checks that every departure is accounted for, that the
//! bound holds, and that everything else is exactly as the model says. A
//! [`BoundedInput`] is a capacity, a weigher and a hasher seed in front of
//! an [`Input`].
//!
//! Needs `mod common;` (tests/common/mod.rs) at the root of the including
//! crate.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use shardcache::baseline::SingleLockCache;
use shardcache::{Cache, CacheBuilder, Clock, Compute, ManualClock, RemovalCause, Stats};

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
///
/// Decoded by hand (below), not derived: the new loading ops must not
/// change what the bytes of the ops before them mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert {
        key: Key,
        value: Value,
    },
    InsertWithTtl {
        key: Key,
        value: Value,
        ttl: Ttl,
    },
    Get(Key),
    ContainsKey(Key),
    Remove(Key),
    RemoveExpired,
    Clear,
    Len,
    IsEmpty,
    Advance(Step),
    /// `get_or_insert_with(key, || value)`: the live value (`init` must not
    /// run), else `value`, stored with the default TTL.
    GetOrInsertWith {
        key: Key,
        value: Value,
    },
    /// `try_get_or_insert_with(key, || Err(..))`: the live value (`init`
    /// must not run), else the error, and nothing stored.
    TryGetOrInsertWithErr(Key),
    /// `remove_if(key, |v| v % 2 == odd)`.
    RemoveIf {
        key: Key,
        odd: bool,
    },
    /// `retain(|k, _| keep & (1 << k) != 0)`: bit `k` keeps key `k`.
    Retain {
        keep: u8,
    },
    /// `set_max_capacity(n % 33)` on a bounded cache; nothing on others.
    SetMaxCapacity(u8),
    /// `compute(key, f)`, where `f` decides from the live value (if any)
    /// and `value` as `decide` says.
    Compute {
        key: Key,
        value: Value,
        decide: Decide,
    },
}

/// What the function of an [`Op::Compute`] decides, from the live value
/// `old` it is given (if any) and the op's `value`. Derived (a `u32` code
/// read as `(code * 6) >> 32`): a new kind of decision is a new op, not a
/// seventh variant, so that the seeds keep their meaning.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decide {
    /// `Put(value)`.
    Put,
    /// `Put(old + value)` (wrapping), or `Put(value)` with no `old`: a
    /// counter.
    Add,
    /// `Keep`.
    Keep,
    /// `Remove`.
    Remove,
    /// `Keep` if there is an `old`, else `Put(value)`.
    PutIfAbsent,
    /// `Remove` if `old` is odd, else `Keep`.
    RemoveIfOdd,
}

impl Decide {
    /// The decision `f` returns when given `old`.
    pub fn decide(self, old: Option<Value>, value: Value) -> Compute<Value> {
        match (self, old) {
            (Decide::Put, _) | (Decide::PutIfAbsent, None) => Compute::Put(value),
            (Decide::Add, old) => Compute::Put(old.map_or(value, |old| old.wrapping_add(value))),
            (Decide::Keep, _) | (Decide::PutIfAbsent, Some(_)) => Compute::Keep,
            (Decide::Remove, _) => Compute::Remove,
            (Decide::RemoveIfOdd, Some(old)) if old % 2 == 1 => Compute::Remove,
            (Decide::RemoveIfOdd, _) => Compute::Keep,
        }
    }
}

/// `Op` as the derive decoded it when it had its first ten variants, so
/// that every committed seed (and every corpus a fuzzer grew) keeps its
/// meaning. The derive picked variant `(code * 10) >> 32` of a `u32` code;
/// this reads `(code * 40) >> 32`, which is four times that, or one, two
/// or three more. Each old variant's range is thus cut in quarters. The
/// lower half of every range (where every seed's code lies: the seeds use
/// the first code of each range) keeps its old meaning, and so does the
/// upper half but for these quarters, each a newer op's:
///
/// - the upper half of `Get` is `GetOrInsertWith`, of `ContainsKey`
///   `TryGetOrInsertWithErr` (the loading ops: 5 and 7 when this read
///   `(code * 20) >> 32`, now 10-11 and 14-15);
/// - the last quarter of `Remove` is `RemoveIf`, of `RemoveExpired`
///   `Retain`, of `Clear` `SetMaxCapacity`, of `Insert` `Compute`.
///
/// The last quarters of `InsertWithTtl`, `Len` and `IsEmpty` are free for
/// the next ops. Fields follow the code, as in the derive.
impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let code = u64::from(u32::arbitrary(u)?);
        Ok(match (code * 40) >> 32 {
            0..=2 => Op::Insert {
                key: u.arbitrary()?,
                value: u.arbitrary()?,
            },
            3 => Op::Compute {
                key: u.arbitrary()?,
                value: u.arbitrary()?,
                decide: u.arbitrary()?,
            },
            4..=7 => Op::InsertWithTtl {
                key: u.arbitrary()?,
                value: u.arbitrary()?,
                ttl: u.arbitrary()?,
            },
            8 | 9 => Op::Get(u.arbitrary()?),
            10 | 11 => Op::GetOrInsertWith {
                key: u.arbitrary()?,
                value: u.arbitrary()?,
            },
            12 | 13 => Op::ContainsKey(u.arbitrary()?),
            14 | 15 => Op::TryGetOrInsertWithErr(u.arbitrary()?),
            16..=18 => Op::Remove(u.arbitrary()?),
            19 => Op::RemoveIf {
                key: u.arbitrary()?,
                odd: u.arbitrary()?,
            },
            20..=22 => Op::RemoveExpired,
            23 => Op::Retain {
                keep: u.arbitrary()?,
            },
            24..=26 => Op::Clear,
            27 => Op::SetMaxCapacity(u.arbitrary()?),
            28..=31 => Op::Len,
            32..=35 => Op::IsEmpty,
            _ => Op::Advance(u.arbitrary()?),
        })
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        // The code, then at most a key, a value and a TTL.
        arbitrary::size_hint::and(
            u32::size_hint(depth),
            (0, Some(1 + 2 + Ttl::size_hint(depth).1.unwrap_or(8))),
        )
    }
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
///
/// Decoded by hand (below), not derived, so that the header can grow
/// without changing what the seeds mean: see [`Input::header`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub shards: Shards,
    /// The TTL of [`Op::Insert`].
    pub default_ttl: Ttl,
    /// The cache's `time_to_idle`, if it is built with one (decoded only
    /// from a shard code in an upper sixth: see [`Input::header`]).
    pub time_to_idle: Option<Ttl>,
    pub ops: Vec<Op>,
}

impl Input {
    /// Decodes the header: the shard count, then the default TTL, as the
    /// derive did when `Input` was derived, then the time-to-idle if the
    /// shard code says so. `Shards` is read from its `u32` code as
    /// `(code * 6) >> 32`: sixths, two for each variant (the derive read
    /// `(code * 3) >> 32`, the same variant). The lower sixth of each
    /// variant is where every seed written before the time-to-idle has its
    /// code (the first code of the variant), and it means no time-to-idle;
    /// the upper sixth means a time-to-idle, a [`Ttl`] read after the
    /// default TTL, so adding it changed no older seed
    /// (`shard_codes_decode_by_sixths` and
    /// `committed_seeds_keep_their_meaning` in `tests/model_check.rs` pin
    /// both).
    pub fn header(u: &mut Unstructured<'_>) -> arbitrary::Result<(Shards, Ttl, Option<Ttl>)> {
        let code = u64::from(u32::arbitrary(u)?);
        let sixth = (code * 6) >> 32;
        let shards = match sixth {
            0 | 1 => Shards::One,
            2 | 3 => Shards::Two,
            _ => Shards::Many,
        };
        let default_ttl = u.arbitrary()?;
        let time_to_idle = if sixth % 2 == 1 {
            Some(u.arbitrary()?)
        } else {
            None
        };
        Ok((shards, default_ttl, time_to_idle))
    }

    /// The bytes [`header`](Self::header) reads: a shard code and the
    /// default TTL, then a time-to-idle only after an upper-sixth code (so
    /// none to a `Ttl`'s most).
    pub fn header_size_hint(depth: usize) -> (usize, Option<usize>) {
        let ttl = Ttl::size_hint(depth);
        arbitrary::size_hint::and_all(&[u32::size_hint(depth), ttl, (0, ttl.1)])
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let (shards, default_ttl, time_to_idle) = Self::header(u)?;
        Ok(Input {
            shards,
            default_ttl,
            time_to_idle,
            ops: u.arbitrary()?,
        })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        let (shards, default_ttl, time_to_idle) = Self::header(&mut u)?;
        Ok(Input {
            shards,
            default_ttl,
            time_to_idle,
            ops: Vec::arbitrary_take_rest(u)?,
        })
    }

    fn size_hint(depth: usize) -> (usize, Option<usize>) {
        arbitrary::size_hint::and(Self::header_size_hint(depth), Vec::<Op>::size_hint(depth))
    }
}

/// The simplest cache with the documented semantics: a sorted map from key
/// to value and deadline, and the current time.
///
/// An entry inserted at `now` with TTL `t` has deadline `now + t`
/// (nanoseconds, computed without overflow) and is live while
/// `now <= deadline`. A zero TTL, or a deadline past `u64::MAX`, means no
/// deadline.
///
/// With a time-to-idle ([`Model::with_idle`]) an entry's deadline is the
/// earlier of that write deadline and its idle deadline, `now + tti` after
/// the write (saturating at `u64::MAX`, never), and a read (a `get`, a
/// loading op's hit, a `compute`'s lookup; not `contains_key`,
/// `remove_if` or `retain`) of a live entry moves it by the cache's step
/// rule, exactly as `src/shard/idle.rs` computes it ([`Idle::touch`]).
#[derive(Debug, Default)]
pub struct Model {
    now: u64,
    default_ttl: Duration,
    /// The time-to-idle, if the cache has one.
    idle: Option<Idle>,
    /// The combined deadline of each entry (`None`: never).
    entries: BTreeMap<u8, (Value, Option<u64>)>,
    /// The write deadline (`u64::MAX`: never) of each key's latest insert;
    /// read only with a time-to-idle, for keys in `entries`.
    writes: BTreeMap<u8, u64>,
    /// What the removal listener must have been told since the last
    /// [`take_told`](Self::take_told): every entry that left, and why.
    told: Vec<Notice>,
    /// What the cache's `stats()` must report (see [`Model::stats`]).
    stats: Stats,
}

/// One call of the removal listener: key, value, cause.
pub type Notice = (u8, Value, RemovalCause);

/// `u64::MAX`: the deadline that never comes.
const NEVER: u64 = u64::MAX;

/// A time-to-idle as the cache keeps it: `tti` and the step by which a
/// read moves an idle deadline, in nanoseconds (`src/shard/idle.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Idle {
    pub tti: u64,
    pub step: u64,
}

impl Idle {
    /// The cache's time-to-idle for `tti`: none for zero or a `tti` of
    /// `u64::MAX` nanoseconds or more (never idle); the step is
    /// `max(tti / 32, min(1 ms, tti))`.
    pub fn new(tti: Duration) -> Option<Self> {
        let tti = u64::try_from(tti.as_nanos()).ok()?;
        if tti == 0 || tti == NEVER {
            return None;
        }
        let step = (tti / 32).max(tti.min(1_000_000));
        Some(Self { tti, step })
    }

    /// The deadline after a read at `now` of a live entry whose deadline
    /// is `current` and write deadline `write`: moved to
    /// `now + tti + step` (capped at `write`, and below `u64::MAX`) only
    /// when it is below `now + tti` and before `write`; a deadline of
    /// `u64::MAX` (never) is left so.
    pub fn touch(self, current: u64, write: u64, now: u64) -> u64 {
        let wanted = now.saturating_add(self.tti);
        if current == NEVER || current >= wanted || current >= write {
            return current;
        }
        wanted.saturating_add(self.step).min(write).min(NEVER - 1)
    }
}

impl Model {
    pub fn new(default_ttl: Duration) -> Self {
        Self {
            now: 0,
            default_ttl,
            idle: None,
            entries: BTreeMap::new(),
            writes: BTreeMap::new(),
            told: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The model of a cache built with `time_to_idle(tti)` (`None` for a
    /// `tti` that never idles).
    pub fn with_idle(mut self, tti: Duration) -> Self {
        self.idle = Idle::new(tti);
        self
    }

    /// The notices of the entries that left since the last call, in the
    /// order they left.
    pub fn take_told(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.told)
    }

    pub fn now(&self) -> u64 {
        self.now
    }

    /// The counters a cache built with `record_stats(true)` must report
    /// after the same ops, as `Stats` documents them: a hit or a miss for
    /// every lookup (`get`, `contains_key`, a loading op's, a `compute`'s);
    /// an insert for every value stored (`insert`, `insert_with_ttl`, a
    /// load, a `compute`'s `Put`); a removal for every live entry `remove`,
    /// `remove_if`, `retain` or a `compute`'s `Remove` took out; an
    /// expiration for every expired entry any op removed (a lookup,
    /// `remove`, `remove_if`, `retain`, `remove_expired`, or a bounded
    /// cache's eviction: [`evict`](Self::evict)); an eviction for every
    /// live entry [`evict`](Self::evict)ed. `clear` counts nothing.
    pub fn stats(&self) -> Stats {
        self.stats
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
        let mut deadline = self.deadline(ttl);
        if let Some(idle) = self.idle {
            let write = deadline.unwrap_or(NEVER);
            self.writes.insert(key, write);
            let earlier = write.min(self.now.saturating_add(idle.tti));
            deadline = (earlier != NEVER).then_some(earlier);
        }
        self.stats.inserts += 1;
        // Expired or not, the old value is replaced.
        if let Some((old, _)) = self.entries.insert(key, (value, deadline)) {
            self.told.push((key, old, RemovalCause::Replaced));
        }
    }

    /// The live value, read (an access: with a time-to-idle its deadline
    /// may move); an expired entry is removed.
    pub fn get(&mut self, key: u8) -> Option<Value> {
        self.lookup(key, true)
    }

    /// The live value; an expired entry is removed. With `access`, a live
    /// entry's idle deadline moves by the step rule. Counts a hit or a
    /// miss.
    fn lookup(&mut self, key: u8, access: bool) -> Option<Value> {
        let Some(&(value, deadline)) = self.entries.get(&key) else {
            self.stats.misses += 1;
            return None;
        };
        if self.is_live(deadline) {
            if let (true, Some(idle), Some(current)) = (access, self.idle, deadline) {
                let moved = idle.touch(current, self.writes[&key], self.now);
                self.entries.insert(key, (value, Some(moved)));
            }
            self.stats.hits += 1;
            Some(value)
        } else {
            self.entries.remove(&key);
            self.told.push((key, value, RemovalCause::Expired));
            self.stats.misses += 1;
            self.stats.expirations += 1;
            None
        }
    }

    /// `get_or_insert_with(key, || value)`: the live value, or (after
    /// removing an expired one) `value`, inserted with the default TTL.
    /// Also whether `init` runs: exactly when there was no live value.
    pub fn get_or_insert_with(&mut self, key: u8, value: Value) -> (Value, bool) {
        match self.get(key) {
            Some(live) => (live, false),
            None => {
                self.insert(key, value);
                (value, true)
            }
        }
    }

    /// `try_get_or_insert_with` with an `init` that fails: the live value
    /// (`init` does not run), or `None` (it runs) and nothing stored.
    pub fn try_get_or_insert_with_err(&mut self, key: u8) -> Option<Value> {
        self.get(key)
    }

    /// Not an access: no deadline moves.
    pub fn contains_key(&mut self, key: u8) -> bool {
        self.lookup(key, false).is_some()
    }

    /// Removes the entry; returns its value only if it was live.
    pub fn remove(&mut self, key: u8) -> Option<Value> {
        let (value, deadline) = self.entries.remove(&key)?;
        let live = self.is_live(deadline);
        let cause = if live {
            self.stats.removals += 1;
            RemovalCause::Removed
        } else {
            self.stats.expirations += 1;
            RemovalCause::Expired
        };
        self.told.push((key, value, cause));
        live.then_some(value)
    }

    /// `remove_if`: an expired entry is removed (told `Expired`) without
    /// asking `pred`; a live one only if `pred` holds.
    pub fn remove_if(&mut self, key: u8, pred: impl FnOnce(Value) -> bool) -> Option<Value> {
        let (value, deadline) = *self.entries.get(&key)?;
        if self.is_live(deadline) && !pred(value) {
            return None;
        }
        self.remove(key)
    }

    /// `retain`: removes the expired entries (`Expired`) and the live ones
    /// `keep` rejects (`Removed`).
    pub fn retain(&mut self, keep: impl Fn(u8) -> bool) {
        let (now, told, stats) = (self.now, &mut self.told, &mut self.stats);
        self.entries.retain(|&key, &mut (value, deadline)| {
            let cause = if !live_at(now, deadline) {
                stats.expirations += 1;
                RemovalCause::Expired
            } else if !keep(key) {
                stats.removals += 1;
                RemovalCause::Removed
            } else {
                return true;
            };
            told.push((key, value, cause));
            false
        });
    }

    /// `compute(key, f)`: an expired entry leaves first (told `Expired`,
    /// as on a `get`); `f` is given the live value; `Put` stores its value
    /// with the default TTL (the old one told `Replaced`), `Remove` takes
    /// a live value out (`Removed`), `Keep` changes nothing. Returns what
    /// `f` was given and the value stored afterwards (`Put`'s, even where a
    /// bounded cache then evicts it).
    pub fn compute(
        &mut self,
        key: u8,
        f: impl FnOnce(Option<Value>) -> Compute<Value>,
    ) -> (Option<Value>, Option<Value>) {
        let current = self.get(key);
        let stored = match f(current) {
            Compute::Put(value) => {
                self.insert(key, value);
                Some(value)
            }
            Compute::Keep => current,
            Compute::Remove => {
                if current.is_some() {
                    self.remove(key);
                }
                None
            }
        };
        (current, stored)
    }

    pub fn remove_expired(&mut self) -> usize {
        let before = self.entries.len();
        let now = self.now;
        let told = &mut self.told;
        self.entries.retain(|&key, &mut (value, deadline)| {
            let live = live_at(now, deadline);
            if !live {
                told.push((key, value, RemovalCause::Expired));
            }
            live
        });
        let removed = before - self.entries.len();
        self.stats.expirations += removed as u64;
        removed
    }

    pub fn clear(&mut self) {
        for (key, (value, _)) in std::mem::take(&mut self.entries) {
            self.told.push((key, value, RemovalCause::Cleared));
        }
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

    /// The entry under `key`, expired or not: its value and deadline.
    pub fn entry(&self, key: u8) -> Option<(Value, Option<u64>)> {
        self.entries.get(&key).copied()
    }

    /// Every entry, expired ones included, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (u8, Value, Option<u64>)> + '_ {
        self.entries
            .iter()
            .map(|(&key, &(value, deadline))| (key, value, deadline))
    }

    /// Whether an entry with this deadline is live now.
    pub fn live(&self, deadline: Option<u64>) -> bool {
        self.is_live(deadline)
    }

    /// Forgets `key`: a bounded cache evicted it, and counts it as an
    /// expiration if it was `expired`, else as an eviction. Tells nothing:
    /// what the cache says of it is for [`check_bounded`] to judge.
    pub fn evict(&mut self, key: u8, expired: bool) {
        if self.entries.remove(&key).is_some() {
            if expired {
                self.stats.expirations += 1;
            } else {
                self.stats.evictions += 1;
            }
        }
    }
}

/// Whether an entry with this deadline is live at `now`.
fn live_at(now: u64, deadline: Option<u64>) -> bool {
    match deadline {
        None => true,
        Some(deadline) => now <= deadline,
    }
}

/// The error of [`Op::TryGetOrInsertWithErr`]'s `init`.
pub const LOAD_FAILED: &str = "load failed";

/// What the model check needs of a cache beyond [`CacheApi`]: the loading
/// ops, and whether its builder takes a removal listener.
pub trait ModelApi<V>: CacheApi<u8, V> {
    /// Whether [`check`] and [`check_bounded`] may give the builder a
    /// removal listener (`SingleLockCache` refuses one).
    const LISTENS: bool = true;
    /// Whether its builder takes a `time_to_idle` (`SingleLockCache` has
    /// none: [`check`] then tests it without one, as if the input had none).
    const IDLES: bool = true;
    fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> V) -> V;
    fn try_get_or_insert_with(
        &self,
        key: u8,
        init: impl FnOnce() -> Result<V, &'static str>,
    ) -> Result<V, &'static str>;
    /// `remove_if` and `retain`, or `None` where `C` has neither (the
    /// baseline): the check then skips those ops.
    fn remove_if(&self, key: u8, pred: impl FnOnce(&V) -> bool) -> Option<Option<V>>;
    fn retain(&self, keep: impl FnMut(&u8, &V) -> bool) -> Option<()>;
    /// `compute`, or `None` where `C` has none (the baseline).
    fn compute(&self, key: u8, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<Option<V>>;
}

impl<V: Clone + Send + Sync + 'static> ModelApi<V> for Cache<u8, V> {
    fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> V) -> V {
        Cache::get_or_insert_with(self, key, init)
    }
    fn try_get_or_insert_with(
        &self,
        key: u8,
        init: impl FnOnce() -> Result<V, &'static str>,
    ) -> Result<V, &'static str> {
        Cache::try_get_or_insert_with(self, key, init)
    }
    fn remove_if(&self, key: u8, pred: impl FnOnce(&V) -> bool) -> Option<Option<V>> {
        Some(Cache::remove_if(self, &key, pred))
    }
    fn retain(&self, keep: impl FnMut(&u8, &V) -> bool) -> Option<()> {
        Cache::retain(self, keep);
        Some(())
    }
    fn compute(&self, key: u8, f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<Option<V>> {
        Some(Cache::compute(self, key, f))
    }
}

/// The baseline has no loading methods and no listener: a `get`, then an
/// `insert` on a miss, is what `get_or_insert_with` means with one thread.
impl<V: Clone + Send + Sync + 'static> ModelApi<V> for SingleLockCache<u8, V> {
    const LISTENS: bool = false;
    const IDLES: bool = false;
    fn get_or_insert_with(&self, key: u8, init: impl FnOnce() -> V) -> V {
        self.get(&key).unwrap_or_else(|| {
            let value = init();
            self.insert(key, value.clone());
            value
        })
    }
    fn try_get_or_insert_with(
        &self,
        key: u8,
        init: impl FnOnce() -> Result<V, &'static str>,
    ) -> Result<V, &'static str> {
        match self.get(&key) {
            Some(value) => Ok(value),
            None => {
                let value = init()?;
                self.insert(key, value.clone());
                Ok(value)
            }
        }
    }
    fn remove_if(&self, _key: u8, _pred: impl FnOnce(&V) -> bool) -> Option<Option<V>> {
        None
    }
    fn retain(&self, _keep: impl FnMut(&u8, &V) -> bool) -> Option<()> {
        None
    }
    fn compute(&self, _key: u8, _f: impl FnOnce(Option<&V>) -> Compute<V>) -> Option<Option<V>> {
        None
    }
}

/// What a removal listener was told, in order.
pub type Told<T> = Arc<Mutex<Vec<T>>>;

/// Takes what the listener was told since the last call.
fn take<T>(told: &Told<T>) -> Vec<T> {
    std::mem::take(&mut *told.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Sorts notices by key, value (or serial), then cause: the entries one op
/// removes may be told in any order.
fn sorted<T: Ord + Copy>(mut notices: Vec<(u8, T, RemovalCause)>) -> Vec<(u8, T, RemovalCause)> {
    notices.sort_by_key(|&(key, value, cause)| (key, value, cause_rank(cause)));
    notices
}

/// `RemovalCause` is not `Ord` (and is `non_exhaustive`).
fn cause_rank(cause: RemovalCause) -> u8 {
    match cause {
        RemovalCause::Expired => 0,
        RemovalCause::Evicted => 1,
        RemovalCause::Replaced => 2,
        RemovalCause::Removed => 3,
        RemovalCause::Cleared => 4,
        _ => 5,
    }
}

/// Decodes an [`Input`] from `data` and runs [`check`] on it. Every byte
/// string decodes to some input, so the fuzzer never wastes a run.
pub fn check_bytes<C: ModelApi<Value>>(data: &[u8]) {
    let input = Input::arbitrary_take_rest(Unstructured::new(data))
        .expect("every byte string decodes to an Input");
    check::<C>(&input);
}

/// Applies `input` to a fresh `C` and to a fresh [`Model`]; panics on the
/// first difference, naming the op and its index. After every op the
/// removal listener (where `C` takes one) must have been told exactly the
/// entries the model says left, each with the value and cause it says,
/// and `stats()` (the cache records them) must be [`Model::stats`];
/// `init` of the loading ops must have run exactly when the model says.
pub fn check<C: ModelApi<Value>>(input: &Input) {
    let clock = ManualClock::new();
    let default_ttl = input.default_ttl.duration();
    let mut builder: CacheBuilder<u8, Value> = Cache::builder()
        .shards(input.shards.count())
        .default_ttl(default_ttl)
        .clock(clock.clone())
        .record_stats(true);
    let tti = input.time_to_idle.filter(|_| C::IDLES).map(Ttl::duration);
    if let Some(tti) = tti {
        builder = builder.time_to_idle(tti);
    }
    let told: Told<Notice> = Told::default();
    if C::LISTENS {
        let log = Arc::clone(&told);
        builder = builder.removal_listener(move |key, value, cause| {
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.push((key, value, cause));
        });
    }
    let cache = C::build(builder);
    let mut model = Model::new(default_ttl).with_idle(tti.unwrap_or_default());
    // What the listener was told, against what the model says.
    let check_told = |model: &mut Model, at: &dyn Fn() -> String| {
        let want = sorted(model.take_told());
        if C::LISTENS {
            assert_eq!(
                sorted(take(&told)),
                want,
                "the removal listener was told other (key, value, cause) than the model: {}",
                at()
            );
        }
    };

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
            Op::GetOrInsertWith { key, value } => {
                let (want, must_init) = model.get_or_insert_with(key.0, value);
                let ran = Cell::new(0);
                let got = cache.get_or_insert_with(key.0, || {
                    ran.set(ran.get() + 1);
                    value
                });
                assert_eq!(
                    ran.get(),
                    usize::from(must_init),
                    "init ran {} times, not {}: {}",
                    ran.get(),
                    usize::from(must_init),
                    at()
                );
                assert_eq!(got, want, "get_or_insert_with differs: {}", at());
            }
            Op::TryGetOrInsertWithErr(key) => {
                let live = model.try_get_or_insert_with_err(key.0);
                let ran = Cell::new(0);
                let got = cache.try_get_or_insert_with(key.0, || {
                    ran.set(ran.get() + 1);
                    Err(LOAD_FAILED)
                });
                assert_eq!(
                    ran.get(),
                    usize::from(live.is_none()),
                    "init ran {} times, not {}: {}",
                    ran.get(),
                    usize::from(live.is_none()),
                    at()
                );
                assert_eq!(
                    got,
                    live.ok_or(LOAD_FAILED),
                    "try_get_or_insert_with differs: {}",
                    at()
                );
            }
            Op::RemoveIf { key, odd } => {
                let pred = |v: Value| v % 2 == u16::from(odd);
                if let Some(got) = cache.remove_if(key.0, |v| pred(*v)) {
                    let want = model.remove_if(key.0, pred);
                    assert_eq!(got, want, "remove_if differs: {}", at());
                }
            }
            Op::Retain { keep } => {
                let kept = |k: u8| keep & (1 << k) != 0;
                if cache.retain(|&k, _| kept(k)).is_some() {
                    model.retain(kept);
                }
            }
            // Unbounded: no capacity to set.
            Op::SetMaxCapacity(_) => {}
            Op::Compute { key, value, decide } => {
                let given = Cell::new(None);
                let got = cache.compute(key.0, |old| {
                    given.set(Some(old.copied()));
                    decide.decide(old.copied(), value)
                });
                if let Some(got) = got {
                    let (live, want) = model.compute(key.0, |old| decide.decide(old, value));
                    assert_eq!(
                        given.get(),
                        Some(live),
                        "compute's f was not given the live value once: {}",
                        at()
                    );
                    assert_eq!(got, want, "compute differs: {}", at());
                }
            }
        }
        check_told(&mut model, &at);
        assert_eq!(cache.stats(), model.stats(), "stats differ: {}", at());
    }

    // Final contents. `get` removes expired entries, so compare the count
    // with expired entries first, then every key, then the live count.
    let end = format!("after {} ops at t={}ns", input.ops.len(), model.now());
    assert_eq!(cache.len(), model.len(), "final len differs {end}");
    for key in 0..KEYS {
        let want = model.get(key);
        assert_eq!(cache.get(&key), want, "final get(k{key}) differs {end}");
    }
    check_told(&mut model, &|| format!("final get {end}"));
    assert_eq!(cache.stats(), model.stats(), "final stats differ {end}");
    assert_eq!(
        cache.len(),
        model.len(),
        "final len of live entries differs {end}"
    );
}

// ---------------------------------------------------------------------------
// Bounded caches
// ---------------------------------------------------------------------------

/// The bound of the cache under [`check_bounded`], from one byte: mostly 0
/// to 8 (with [`KEYS`] = 8 keys, so inserts keep evicting), sometimes 9 to
/// 32, sometimes no bound at all (then a weigher makes the weight-tracking
/// cache that never evicts, and no weigher the plain unbounded one).
#[derive(Arbitrary, Clone, Copy, PartialEq, Eq)]
pub struct Capacity(pub u8);

impl Capacity {
    /// `max_capacity`, or `None` for no bound.
    pub fn bound(self) -> Option<u64> {
        match self.0 {
            0..=179 => Some(u64::from(self.0 % 9)),
            180..=239 => Some(9 + u64::from((self.0 - 180) % 24)),
            240..=255 => None,
        }
    }
}

/// Shows the byte, so a printed input can be pasted into a test, and what
/// it means: `Capacity(200 /* max 29 */)`.
impl fmt::Debug for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bound() {
            Some(max) => write!(f, "Capacity({} /* max {max} */)", self.0),
            None => write!(f, "Capacity({} /* unbounded */)", self.0),
        }
    }
}

/// How much an entry weighs, computed from its value.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// No weigher: every entry weighs 1.
    Unit,
    /// A weigher that returns 1 (the weigher path, unit weights).
    One,
    /// `value % 4`: 0 to 3, so some entries weigh nothing.
    Small,
    /// `value % 10`: 0 to 9, some heavier than a shard may hold.
    Wide,
}

impl Weights {
    /// The weight of an entry holding `value`.
    pub fn of(self, value: Value) -> u32 {
        match self {
            Weights::Unit | Weights::One => 1,
            Weights::Small => u32::from(value % 4),
            Weights::Wide => u32::from(value % 10),
        }
    }
}

/// One test case for a bounded cache: its capacity, weigher and hasher
/// seed, in front of an [`Input`] (shards, default TTL, ops). The header
/// takes the first 6 bytes, so an `ops` seed with a header in front means
/// the same ops here.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub struct BoundedInput {
    pub capacity: Capacity,
    pub weights: Weights,
    /// Seeds the hasher, which places keys in shards and in the ghost.
    pub seed: u8,
    pub input: Input,
}

/// Bytes before the [`Input`] in an encoded [`BoundedInput`].
pub const BOUNDED_HEADER_BYTES: usize = 6;

/// What [`check_bounded`] needs of a cache beyond [`CacheApi`].
pub trait BoundedApi: ModelApi<Tracked> {
    fn weighted_size(&self) -> u64;
    fn max_capacity(&self) -> Option<u64>;
    fn set_max_capacity(&self, max: u64);
}

impl BoundedApi for Cache<u8, Tracked> {
    fn weighted_size(&self) -> u64 {
        Cache::weighted_size(self)
    }
    fn max_capacity(&self) -> Option<u64> {
        Cache::max_capacity(self)
    }
    fn set_max_capacity(&self, max: u64) {
        Cache::set_max_capacity(self, max)
    }
}

/// Every [`Tracked`] value alive, by serial: its key and how many copies.
#[derive(Debug, Default)]
pub struct Registry {
    state: Mutex<RegistryState>,
}

#[derive(Debug, Default)]
struct RegistryState {
    live: BTreeMap<u32, (u8, usize)>,
    /// Drops of a value with no copy left (a double drop).
    errors: Vec<String>,
}

impl Registry {
    fn state(&self) -> MutexGuard<'_, RegistryState> {
        // A panic elsewhere must not hide what the registry knows.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the cache holds, from the values alive while the test holds
    /// none: key to serial. Fails on a double drop, on two copies of one
    /// value, or on two values of one key.
    pub fn stored(&self) -> Result<BTreeMap<u8, u32>, String> {
        let state = self.state();
        if let Some(error) = state.errors.first() {
            return Err(error.clone());
        }
        let mut stored = BTreeMap::new();
        for (&serial, &(key, copies)) in &state.live {
            if copies != 1 {
                return Err(format!("{copies} copies of k{key}#{serial} alive"));
            }
            if let Some(other) = stored.insert(key, serial) {
                return Err(format!(
                    "two values of k{key} alive: #{other} and #{serial}"
                ));
            }
        }
        Ok(stored)
    }

    /// Values alive, copies included.
    pub fn alive(&self) -> usize {
        self.state().live.values().map(|&(_, copies)| copies).sum()
    }
}

/// The value type of [`check_bounded`]: the op's `u16`, and the serial of
/// the insert that made it (unique per check). Every copy is counted in a
/// [`Registry`] from construction to drop, so the check knows which entries
/// the cache holds without reading it (a read would count as a hit and
/// change what the policy evicts).
pub struct Tracked {
    key: u8,
    value: Value,
    serial: u32,
    registry: Arc<Registry>,
}

impl Tracked {
    pub fn new(registry: &Arc<Registry>, key: u8, value: Value, serial: u32) -> Self {
        let previous = registry.state().live.insert(serial, (key, 1));
        assert!(previous.is_none(), "serial {serial} used twice");
        Self {
            key,
            value,
            serial,
            registry: Arc::clone(registry),
        }
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        let mut state = self.registry.state();
        match state.live.get_mut(&self.serial) {
            Some((_, copies)) => *copies += 1,
            None => {
                let error = format!("k{}#{} cloned after its last drop", self.key, self.serial);
                state.errors.push(error);
            }
        }
        drop(state);
        Self {
            registry: Arc::clone(&self.registry),
            ..*self
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut state = self.registry.state();
        match state.live.get_mut(&self.serial) {
            Some((_, copies)) if *copies > 1 => *copies -= 1,
            Some(_) => {
                state.live.remove(&self.serial);
            }
            None => {
                let error = format!("k{}#{} dropped twice", self.key, self.serial);
                state.errors.push(error);
            }
        }
    }
}

impl fmt::Debug for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k{}={}#{}", self.key, self.value, self.serial)
    }
}

/// Decodes a [`BoundedInput`] from `data` and runs [`check_bounded`] on it.
pub fn check_bounded_bytes<C: BoundedApi>(data: &[u8]) {
    let input = BoundedInput::arbitrary_take_rest(Unstructured::new(data))
        .expect("every byte string decodes to a BoundedInput");
    check_bounded::<C>(&input);
}

/// Applies `input` to a fresh bounded `C` and to a [`Model`]; panics on the
/// first broken promise, naming the op and its index.
///
/// The model is exact except for what inserts evict, which it learns after
/// each insert from the values still alive, so after every op:
///
/// - the cache holds exactly the entries the model has, each with the
///   latest value inserted under its key (never a replaced or removed one);
/// - `len` is their number, `weighted_size` the sum of their weights, at
///   most the bound, and every counter of `stats` is what the model counted;
/// - `get`, `contains_key`, `remove` and `remove_expired` return exactly
///   what the model says (never an expired value), and nothing but an
///   insert removes an entry the model did not;
/// - an entry an insert removed counts once: as an expiration if it was
///   expired, else as an eviction; the inserted entry itself, if not
///   stored, as an eviction;
/// - an insert evicts nothing while everything fits the smallest shard's
///   share of the bound, an entry heavier than the largest share is not
///   stored and evicts nothing else, a new entry that fits the smallest
///   share is stored, and (with one shard, where the model knows the
///   shard's capacity) an insert stops evicting once it fits.
///
/// The loading ops are a lookup, then (on a miss) an insert whose value
/// `init` makes: `init` must run exactly on a miss. The removal listener
/// must have been told every value that left during the op, once, with
/// the cause it left for, and nothing else (see
/// [`BoundedRun::verify_told`]).
///
/// At the end every key is read, and once the cache is dropped no value is
/// left alive: nothing leaked and nothing was dropped twice.
pub fn check_bounded<C: BoundedApi>(bounded: &BoundedInput) {
    let input = &bounded.input;
    let clock = ManualClock::new();
    let default_ttl = input.default_ttl.duration();
    let bound = bounded.capacity.bound();
    let weights = bounded.weights;
    let seed = u64::from(bounded.seed);
    let mut builder = Cache::builder()
        .shards(input.shards.count())
        .default_ttl(default_ttl)
        .clock(clock.clone())
        .record_stats(true)
        .hasher(ahash::RandomState::with_seeds(
            seed,
            0x243f_6a88_85a3_08d3,
            0x1319_8a2e_0370_7344,
            0xa409_3822_299f_31d0,
        ));
    if let Some(max) = bound {
        builder = builder.max_capacity(max);
    }
    let tti = input.time_to_idle.map(Ttl::duration);
    if let Some(tti) = tti {
        builder = builder.time_to_idle(tti);
    }
    if weights != Weights::Unit {
        builder = builder.weigher(move |_key, value: &Tracked| weights.of(value.value));
    }
    // The listener keeps the key, serial and cause, and drops the value at
    // once, so that the registry sees it leave.
    let told: Told<Departed> = Told::default();
    if C::LISTENS {
        let log = Arc::clone(&told);
        builder = builder.removal_listener(move |key, value: Tracked, cause| {
            let serial = value.serial;
            drop(value);
            let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
            log.push((key, serial, cause));
        });
    }
    let registry = Arc::new(Registry::default());
    let mut run = BoundedRun {
        cache: C::build(builder),
        registry: Arc::clone(&registry),
        told,
        want_told: Vec::new(),
        held: BTreeMap::new(),
        made: Vec::new(),
        model: Model::new(default_ttl).with_idle(tti.unwrap_or_default()),
        serials: [0; KEYS as usize],
        next_serial: 0,
        weights,
        bound,
        shards: input.shards.count() as u64,
    };
    assert_eq!(run.cache.max_capacity(), bound, "max_capacity differs");

    for (index, &op) in input.ops.iter().enumerate() {
        let now = run.model.now();
        let at = || format!("op #{index} {op:?} at t={now}ns");
        run.apply(op, &clock, &at);
        run.verify(&at);
    }

    let ops = input.ops.len();
    let end = || format!("final get after {ops} ops at t={}ns", clock.now_nanos());
    for key in 0..KEYS {
        run.apply(Op::Get(Key(key)), &clock, &end);
    }
    run.verify(&end);
    drop(run);
    assert_eq!(
        registry.stored().map(|stored| stored.len()),
        Ok(0),
        "values left alive after the cache was dropped"
    );
    assert_eq!(registry.alive(), 0, "value copies leaked");
}

/// A value that left a bounded cache: its key, serial, and why.
pub type Departed = (u8, u32, RemovalCause);

/// How [`BoundedRun::insert`] stores a value.
#[derive(Clone, Copy)]
enum Store {
    Insert,
    WithTtl(Duration),
    /// `get_or_insert_with` of a key with no live value.
    Load,
    /// `compute` whose `f` decides `Put`, and must be given this live
    /// value (value, serial).
    Compute(Option<(Value, u32)>),
}

/// The state of one [`check_bounded`] run.
struct BoundedRun<C> {
    cache: C,
    registry: Arc<Registry>,
    /// What the removal listener was told.
    told: Told<Departed>,
    /// What it must have been told since the last op.
    want_told: Vec<Departed>,
    /// What the cache held after the last op (key to serial).
    held: BTreeMap<u8, u32>,
    /// The values made during this op (key, serial).
    made: Vec<(u8, u32)>,
    model: Model,
    /// The serial of the latest insert of each key.
    serials: [u32; KEYS as usize],
    next_serial: u32,
    weights: Weights,
    bound: Option<u64>,
    shards: u64,
}

impl<C: BoundedApi> BoundedRun<C> {
    /// The least and the most any shard may hold: the bound split over the
    /// shards, the first `bound % shards` holding one more.
    fn shares(&self) -> (u64, u64) {
        match self.bound {
            Some(max) => (
                max / self.shards,
                max / self.shards + u64::from(max % self.shards != 0),
            ),
            None => (u64::MAX, u64::MAX),
        }
    }

    /// The model's entries as the registry should show them: key to the
    /// serial of its latest insert.
    fn expected(&self) -> BTreeMap<u8, u32> {
        self.model
            .entries()
            .map(|(key, _, _)| (key, self.serials[usize::from(key)]))
            .collect()
    }

    /// The weight of the model's entries.
    fn weight(&self) -> u64 {
        self.model
            .entries()
            .map(|(_, value, _)| u64::from(self.weights.of(value)))
            .sum()
    }

    /// Moves what the model says left into `want_told`, each with the
    /// serial its key has now (call it before the key's serial changes).
    fn note_model_told(&mut self) {
        for (key, _, cause) in self.model.take_told() {
            let serial = self.serial(key);
            self.want_told.push((key, serial, cause));
        }
    }

    fn apply(&mut self, op: Op, clock: &ManualClock, at: &dyn Fn() -> String) {
        self.made.clear();
        match op {
            Op::Insert { key, value } => self.insert(key.0, value, Store::Insert, at),
            Op::InsertWithTtl { key, value, ttl } => {
                self.insert(key.0, value, Store::WithTtl(ttl.duration()), at);
            }
            Op::GetOrInsertWith { key, value } => {
                let live = self.model.get(key.0);
                self.note_model_told();
                match live {
                    Some(v) => {
                        let want = (v, self.serial(key.0));
                        let ran = Cell::new(0);
                        let got = self.cache.get_or_insert_with(key.0, || {
                            ran.set(ran.get() + 1);
                            // Never kept: the check fails first.
                            Tracked::new(&self.registry, key.0, value, u32::MAX)
                        });
                        assert_eq!(ran.get(), 0, "init ran on a hit: {}", at());
                        let got = (got.value, got.serial);
                        assert_eq!(
                            got,
                            want,
                            "get_or_insert_with (value, serial) differs: {}",
                            at()
                        );
                    }
                    None => self.insert(key.0, value, Store::Load, at),
                }
            }
            Op::TryGetOrInsertWithErr(key) => {
                let live = self.model.try_get_or_insert_with_err(key.0);
                self.note_model_told();
                let want = live.map(|v| (v, self.serial(key.0))).ok_or(LOAD_FAILED);
                let ran = Cell::new(0);
                let got = self.cache.try_get_or_insert_with(key.0, || {
                    ran.set(ran.get() + 1);
                    Err(LOAD_FAILED)
                });
                assert_eq!(
                    ran.get(),
                    usize::from(live.is_none()),
                    "init ran {} times on a {}: {}",
                    ran.get(),
                    if live.is_some() { "hit" } else { "miss" },
                    at()
                );
                let got = got.map(|t| (t.value, t.serial));
                assert_eq!(
                    got,
                    want,
                    "try_get_or_insert_with (value, serial) differs: {}",
                    at()
                );
            }
            Op::Get(key) => {
                let want = self.model.get(key.0).map(|v| (v, self.serial(key.0)));
                let got = self.cache.get(&key.0).map(|t| (t.value, t.serial));
                assert_eq!(got, want, "get (value, serial) differs: {}", at());
            }
            Op::ContainsKey(key) => {
                let want = self.model.contains_key(key.0);
                let got = self.cache.contains_key(&key.0);
                assert_eq!(got, want, "contains_key differs: {}", at());
            }
            Op::Remove(key) => {
                let want = self.model.remove(key.0).map(|v| (v, self.serial(key.0)));
                let got = self.cache.remove(&key.0).map(|t| (t.value, t.serial));
                assert_eq!(got, want, "remove (value, serial) differs: {}", at());
            }
            Op::RemoveExpired => {
                let want = self.model.remove_expired();
                let got = self.cache.remove_expired();
                assert_eq!(got, want, "remove_expired differs: {}", at());
            }
            Op::Clear => {
                self.cache.clear();
                self.model.clear();
            }
            Op::RemoveIf { key, odd } => {
                let pred = |v: Value| v % 2 == u16::from(odd);
                let want = self
                    .model
                    .remove_if(key.0, pred)
                    .map(|v| (v, self.serial(key.0)));
                let got = self.cache.remove_if(key.0, |t| pred(t.value));
                let got = got
                    .expect("Cache has remove_if")
                    .map(|t| (t.value, t.serial));
                assert_eq!(got, want, "remove_if (value, serial) differs: {}", at());
            }
            Op::Retain { keep } => {
                let kept = |k: u8| keep & (1 << k) != 0;
                self.model.retain(kept);
                let asked = self.cache.retain(|&k, _| kept(k));
                asked.expect("Cache has retain");
            }
            Op::SetMaxCapacity(n) => {
                if self.bound.is_some() || self.weights != Weights::Unit {
                    let max = u64::from(n % 33);
                    self.cache.set_max_capacity(max);
                    self.bound = Some(max);
                    assert_eq!(self.cache.max_capacity(), Some(max), "{}", at());
                    let expired: Vec<u8> = self
                        .model
                        .entries()
                        .filter(|&(_, _, deadline)| !self.model.live(deadline))
                        .map(|(key, _, _)| key)
                        .collect();
                    let stored = self
                        .registry
                        .stored()
                        .unwrap_or_else(|e| panic!("{e}: {}", at()));
                    let left = self.learn_evictions(&stored, &expired);
                    if self.shards == 1 && !left.is_empty() {
                        let heaviest = left.iter().map(|&(_, w)| w).max().unwrap_or(0);
                        assert!(
                            self.weight() + heaviest > max,
                            "set_max_capacity evicted more than needed (left: {left:?}): {}",
                            at()
                        );
                    }
                }
            }
            Op::Compute { key, value, decide } => self.compute(key.0, value, decide, at),
            Op::Len => {}
            Op::IsEmpty => {
                let want = self.model.is_empty();
                assert_eq!(self.cache.is_empty(), want, "is_empty differs: {}", at());
            }
            Op::Advance(step) => {
                let by = step.duration(self.model.now());
                clock.advance(by);
                self.model.advance(by);
                assert_eq!(
                    clock.now_nanos(),
                    self.model.now(),
                    "clock differs: {}",
                    at()
                );
            }
        }
        self.note_model_told();
    }

    fn serial(&self, key: u8) -> u32 {
        self.serials[usize::from(key)]
    }

    /// Inserts into both, then learns from the registry what the insert
    /// pushed out, accounts for it and checks the eviction rules.
    fn insert(&mut self, key: u8, value: Value, store: Store, at: &dyn Fn() -> String) {
        let weight = u64::from(self.weights.of(value));
        let had_key = self.model.entry(key).is_some();
        // The weight if the insert removed nothing.
        let total: u64 = self
            .model
            .entries()
            .filter(|&(k, _, _)| k != key)
            .map(|(_, v, _)| u64::from(self.weights.of(v)))
            .sum::<u64>()
            + weight;
        let before: BTreeMap<u8, (Value, Option<u64>)> = self
            .model
            .entries()
            .map(|(k, v, deadline)| (k, (v, deadline)))
            .collect();
        self.next_serial += 1;
        let serial = self.next_serial;
        let tracked = Tracked::new(&self.registry, key, value, serial);
        self.made.push((key, serial));
        match store {
            Store::Insert => {
                self.cache.insert(key, tracked);
                self.model.insert(key, value);
            }
            Store::WithTtl(ttl) => {
                self.cache.insert_with_ttl(key, tracked, ttl);
                self.model.insert_with_ttl(key, value, ttl);
            }
            Store::Load => {
                let ran = Cell::new(0);
                let got = self.cache.get_or_insert_with(key, || {
                    ran.set(ran.get() + 1);
                    tracked
                });
                assert_eq!(
                    ran.get(),
                    1,
                    "init ran {} times on a miss: {}",
                    ran.get(),
                    at()
                );
                let got = (got.value, got.serial);
                assert_eq!(
                    got,
                    (value, serial),
                    "get_or_insert_with (value, serial) differs: {}",
                    at()
                );
                self.model.insert(key, value);
            }
            Store::Compute(live) => {
                let given = Cell::new(None);
                let got = self.cache.compute(key, |old| {
                    given.set(Some(old.map(|t| (t.value, t.serial))));
                    Compute::Put(tracked)
                });
                assert_eq!(
                    given.get(),
                    Some(live),
                    "compute's f was not given the live (value, serial) once: {}",
                    at()
                );
                let got = got.expect("Cache has compute").map(|t| (t.value, t.serial));
                assert_eq!(
                    got,
                    Some((value, serial)),
                    "compute (value, serial) differs: {}",
                    at()
                );
                self.model.insert(key, value);
            }
        }
        // The old value of `key`, if any, was replaced.
        self.note_model_told();
        self.serials[usize::from(key)] = serial;

        let stored = self
            .registry
            .stored()
            .unwrap_or_else(|e| panic!("{e}: {}", at()));
        for (&k, &s) in &stored {
            let latest = self.model.entry(k).map(|_| self.serial(k));
            assert_eq!(
                Some(s),
                latest,
                "the cache holds k{k}#{s}, not the latest value of k{k}: {}",
                at()
            );
        }
        // What left: the new entry if it was not stored, and every other
        // entry the insert evicted.
        let expired: Vec<u8> = before
            .iter()
            .filter(|&(&k, &(_, d))| k != key && !self.model.live(d))
            .map(|(&k, _)| k)
            .collect();
        let left = self.learn_evictions(&stored, &expired);

        let stays = stored.contains_key(&key);
        let only_itself = left.iter().all(|&(k, _)| k == key);
        let (least, most) = self.shares();
        if weight > most {
            assert!(
                !stays,
                "an entry heavier than every shard's share was stored: {}",
                at()
            );
            assert!(
                only_itself,
                "an entry heavier than every shard's share evicted others: {}",
                at()
            );
        }
        if weight <= least && !had_key {
            assert!(
                stays,
                "a new entry that fits every shard was not stored: {}",
                at()
            );
        }
        if total <= least {
            assert!(
                left.is_empty(),
                "evicted although everything fits: {}",
                at()
            );
        }
        if let (1, Some(max)) = (self.shards, self.bound) {
            if weight <= max && !left.is_empty() {
                let heaviest = left.iter().map(|&(_, w)| w).max().unwrap_or(0);
                assert!(
                    self.weight() + heaviest > max,
                    "evicted more than needed to fit (left: {left:?}): {}",
                    at()
                );
            }
        }
    }

    /// `compute(key, f)`: a lookup (a hit or a miss, an expired entry
    /// leaving as on a `get`), then what `decide` makes of the live value:
    /// a `Put` is an insert of a fresh `Tracked` (through
    /// [`insert`](Self::insert), which learns what it evicted), a `Remove`
    /// of a live value a removal, a `Keep` nothing.
    fn compute(&mut self, key: u8, value: Value, decide: Decide, at: &dyn Fn() -> String) {
        let live = self.model.get(key);
        self.note_model_told();
        let live_serial = live.map(|v| (v, self.serial(key)));
        let keep = match decide.decide(live, value) {
            Compute::Put(value) => return self.insert(key, value, Store::Compute(live_serial), at),
            Compute::Keep => true,
            Compute::Remove => false,
        };
        let given = Cell::new(None);
        let got = self.cache.compute(key, |old| {
            given.set(Some(old.map(|t| (t.value, t.serial))));
            if keep {
                Compute::Keep
            } else {
                Compute::Remove
            }
        });
        assert_eq!(
            given.get(),
            Some(live_serial),
            "compute's f was not given the live (value, serial) once: {}",
            at()
        );
        let got = got.expect("Cache has compute").map(|t| (t.value, t.serial));
        let want = if keep { live_serial } else { None };
        assert_eq!(got, want, "compute (value, serial) differs: {}", at());
        if !keep && live.is_some() {
            self.model.remove(key);
        }
    }

    /// Learns from the registry's `stored` what an insert or
    /// `set_max_capacity` pushed out: every entry of the model the cache no
    /// longer holds, counted and told as `Expired` if its key is in
    /// `expired`, else `Evicted`. Returns each with its weight.
    fn learn_evictions(&mut self, stored: &BTreeMap<u8, u32>, expired: &[u8]) -> Vec<(u8, u64)> {
        let left: Vec<(u8, u64)> = self
            .model
            .entries()
            .filter(|(k, _, _)| !stored.contains_key(k))
            .map(|(k, v, _)| (k, u64::from(self.weights.of(v))))
            .collect();
        for &(k, _) in &left {
            let was_expired = expired.contains(&k);
            let cause = if was_expired {
                RemovalCause::Expired
            } else {
                RemovalCause::Evicted
            };
            self.want_told.push((k, self.serial(k), cause));
            self.model.evict(k, was_expired);
        }
        left
    }

    /// The removal listener's part of the checks after every op. First,
    /// from the registry alone: every value that left the cache during the
    /// op (held after the last op, or made by this one, and not held now)
    /// was told exactly once, and nothing the cache still holds was told.
    /// Then, against the model: each was told with the cause it left for
    /// (`Replaced`, `Removed`, `Cleared`, `Expired` as the model says; an
    /// entry an insert evicted as `Expired` if it had expired, else as
    /// `Evicted`; an inserted value not stored as `Evicted`).
    fn verify_told(&mut self, stored: &BTreeMap<u8, u32>, at: &dyn Fn() -> String) {
        let told = sorted(take(&self.told));
        let want = sorted(std::mem::take(&mut self.want_told));
        if C::LISTENS {
            let held_now: Vec<u32> = stored.values().copied().collect();
            let mut left: Vec<(u8, u32)> = self
                .held
                .iter()
                .map(|(&k, &s)| (k, s))
                .chain(self.made.iter().copied())
                .filter(|(_, s)| !held_now.contains(s))
                .collect();
            left.sort_unstable();
            left.dedup();
            let mut told_values: Vec<(u8, u32)> = told.iter().map(|&(k, s, _)| (k, s)).collect();
            told_values.sort_unstable();
            assert_eq!(
                told_values,
                left,
                "the removal listener was told other values (key, serial) than left: {}",
                at()
            );
            assert_eq!(
                told,
                want,
                "the removal listener was told other (key, serial, cause) than the model: {}",
                at()
            );
        }
        self.held = stored.clone();
    }

    /// The checks after every op.
    fn verify(&mut self, at: &dyn Fn() -> String) {
        let stored = self
            .registry
            .stored()
            .unwrap_or_else(|e| panic!("{e}: {}", at()));
        self.verify_told(&stored, at);
        assert_eq!(
            stored,
            self.expected(),
            "the cache holds other entries (key => serial) than the model: {}",
            at()
        );
        assert_eq!(self.cache.len(), self.model.len(), "len differs: {}", at());
        let weighted_size = self.cache.weighted_size();
        assert_eq!(
            weighted_size,
            self.weight(),
            "weighted_size differs: {}",
            at()
        );
        if let Some(max) = self.bound {
            assert!(
                weighted_size <= max,
                "weighted_size {weighted_size} is over the bound {max}: {}",
                at()
            );
        }
        assert_eq!(
            self.cache.stats(),
            self.model.stats(),
            "stats differ: {}",
            at()
        );
    }
}
