//! Workloads: what fraction of operations read, how keys are chosen, and the
//! value type; and the per-thread operation streams generated from them.

use std::sync::Arc;

use clap::builder::PossibleValue;
use clap::ValueEnum;
use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Keys in the prefilled key space unless `--keys` says otherwise.
pub const DEFAULT_KEYS: usize = 100_000;

/// Exponent of the Zipf distribution: rank `r` is drawn with weight `1 / r^s`.
pub const ZIPF_EXPONENT: f64 = 1.0;

/// Seed of every random choice the harness makes.
pub const SEED: u64 = 0x5EED_CAC4E;

/// Operations generated per thread; the runner replays them in a loop.
pub const OPS_PER_THREAD: usize = 1 << 16;

/// Operations a thread runs between two looks at the clock or stop flag; one
/// criterion iteration is one batch per thread. Divides [`OPS_PER_THREAD`].
pub const BATCH: usize = 256;

/// Thread counts to measure by default: 1, 2, 4, ... up to twice the
/// available parallelism, at most 32.
pub fn default_thread_counts() -> Vec<usize> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max = (2 * cores).min(32);
    std::iter::successors(Some(1), |&n| Some(n * 2))
        .take_while(|&n| n <= max)
        .collect()
}

/// How keys are drawn from the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyChoice {
    /// Every key equally likely.
    Uniform,
    /// Zipf over ranks, with the ranks scrambled onto keys, so hot keys are
    /// spread over the key space (and over the shards).
    Zipf,
}

/// The value type a workload stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// `u64`: a clone is a copy.
    U64,
    /// `Arc<str>`: a clone is an atomic increment on the value's count,
    /// shared with every other thread reading the same key.
    ArcStr,
}

/// One benchmark workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    Read100Uniform,
    Read95Uniform,
    Read50Uniform,
    Read100Zipf,
    Read95Zipf,
    Read50Zipf,
    Read95ZipfArcStr,
}

impl Workload {
    /// Every workload, in table order.
    pub const ALL: [Workload; 7] = [
        Workload::Read100Uniform,
        Workload::Read95Uniform,
        Workload::Read50Uniform,
        Workload::Read100Zipf,
        Workload::Read95Zipf,
        Workload::Read50Zipf,
        Workload::Read95ZipfArcStr,
    ];

    /// Name on the command line, in tables and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Read100Uniform => "read100-uniform",
            Workload::Read95Uniform => "read95-uniform",
            Workload::Read50Uniform => "read50-uniform",
            Workload::Read100Zipf => "read100-zipf",
            Workload::Read95Zipf => "read95-zipf",
            Workload::Read50Zipf => "read50-zipf",
            Workload::Read95ZipfArcStr => "read95-zipf-arcstr",
        }
    }

    /// Percentage of operations that are `get`s; the rest overwrite a key.
    pub fn read_percent(self) -> u32 {
        match self {
            Workload::Read100Uniform | Workload::Read100Zipf => 100,
            Workload::Read95Uniform | Workload::Read95Zipf | Workload::Read95ZipfArcStr => 95,
            Workload::Read50Uniform | Workload::Read50Zipf => 50,
        }
    }

    pub fn key_choice(self) -> KeyChoice {
        match self {
            Workload::Read100Uniform | Workload::Read95Uniform | Workload::Read50Uniform => {
                KeyChoice::Uniform
            }
            _ => KeyChoice::Zipf,
        }
    }

    pub fn value_type(self) -> ValueType {
        match self {
            Workload::Read95ZipfArcStr => ValueType::ArcStr,
            _ => ValueType::U64,
        }
    }

    /// One line for `--help` and table headings.
    pub fn describe(self) -> String {
        let keys = match self.key_choice() {
            KeyChoice::Uniform => "uniform keys".to_owned(),
            KeyChoice::Zipf => format!("Zipf({ZIPF_EXPONENT}) keys"),
        };
        let value = match self.value_type() {
            ValueType::U64 => "u64 -> u64",
            ValueType::ArcStr => "u64 -> Arc<str>",
        };
        format!("{}% reads, {keys}, {value}", self.read_percent())
    }
}

impl ValueEnum for Workload {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()).help(self.describe()))
    }
}

/// A value type the harness can store: built from its key, cheap or not to
/// clone depending on the type.
pub trait Value: Clone + Send + Sync + 'static {
    fn for_key(key: u64) -> Self;
}

impl Value for u64 {
    fn for_key(key: u64) -> Self {
        key
    }
}

impl Value for Arc<str> {
    fn for_key(key: u64) -> Self {
        Arc::from(format!("value of key {key:>12}"))
    }
}

/// One pre-generated operation. An insert carries its value, made before
/// timing; applying it costs one clone of that value.
#[derive(Clone, Debug)]
pub enum Op<V> {
    Get(u64),
    Insert(u64, V),
}

/// Draws keys from `0..keys` as the workload says.
enum KeySampler {
    Uniform(u64),
    Zipf {
        ranks: WeightedIndex<f64>,
        /// `keys_by_rank[r]` is the key of rank `r + 1`.
        keys_by_rank: Vec<u64>,
    },
}

impl KeySampler {
    fn new(choice: KeyChoice, keys: usize) -> Self {
        match choice {
            KeyChoice::Uniform => KeySampler::Uniform(keys as u64),
            KeyChoice::Zipf => {
                let weights = (1..=keys).map(|rank| (rank as f64).powf(-ZIPF_EXPONENT));
                let ranks = WeightedIndex::new(weights).expect("Zipf weights are positive");
                let mut keys_by_rank: Vec<u64> = (0..keys as u64).collect();
                keys_by_rank.shuffle(&mut StdRng::seed_from_u64(SEED));
                KeySampler::Zipf {
                    ranks,
                    keys_by_rank,
                }
            }
        }
    }

    fn sample(&self, rng: &mut StdRng) -> u64 {
        match self {
            KeySampler::Uniform(keys) => rng.random_range(0..*keys),
            KeySampler::Zipf {
                ranks,
                keys_by_rank,
            } => keys_by_rank[ranks.sample(rng)],
        }
    }
}

/// Passes over the key space that the streams of a read-through subject make
/// together, at every thread count, unless a run asks for fewer.
///
/// The streams are replayed in a loop, and a key that one loop draws once
/// and the next draws again is a miss in an endless stream but may still be
/// cached when the loop comes round: a loop too short lifts the hit ratio.
/// Measured with `Cache` and quick_cache at half of 100 000 keys and Zipf
/// keys (hit ratio 92.8%), at 1, 2 and 4 threads: 8 passes lift the hit
/// ratio by up to 2 points, 16 passes by up to 0.4, while 32 and 128
/// passes agree within 0.1 point. Uniform keys need fewer (8 passes: up to
/// 1.3 points).
pub const READ_THROUGH_PASSES: usize = 32;

/// Passes of the read-through subjects' streams in a smoke run (`compare
/// --quick`, criterion's test mode), which measures nothing: their hit
/// ratios come out a point or two high, and the streams take an eighth of
/// the time to generate.
pub const SMOKE_READ_THROUGH_PASSES: usize = 4;

/// The longest stream of one thread of a read-through subject (96 MiB of
/// `u64` operations): past about 130 000 keys at one thread, or more keys
/// at more threads, the streams make fewer than [`READ_THROUGH_PASSES`].
pub const MAX_READ_THROUGH_OPS: usize = 1 << 22;

/// Operations per thread in the streams of a read-through subject (a bounded
/// cache with less room than the key space) at `threads` threads: together
/// `passes` times the key space, at least [`OPS_PER_THREAD`] and at most
/// [`MAX_READ_THROUGH_OPS`].
pub fn read_through_ops(keys: usize, threads: usize, passes: usize) -> usize {
    (passes * keys)
        .div_ceil(threads.max(1))
        .next_multiple_of(BATCH)
        .clamp(OPS_PER_THREAD, MAX_READ_THROUGH_OPS)
}

/// The operation streams of one workload over a key space of `keys` keys,
/// for every thread count of a run: thread `i`'s operations come from a
/// seed fixed per thread, so every subject replays the same streams, and
/// the streams of `t` threads are the first `t` of them.
pub struct Streams<V> {
    threads: Vec<Vec<Op<V>>>,
    keys: usize,
    /// Passes of the read-through streams; `None` if there are none.
    read_through_passes: Option<usize>,
}

impl<V: Value> Streams<V> {
    /// Generates each thread's stream as long as its longest use:
    /// [`OPS_PER_THREAD`] operations, or if `read_through_passes` is given,
    /// as many as [`read_through_ops`] asks for at the fewest
    /// `thread_counts` threads that include the thread.
    pub fn new(
        workload: Workload,
        keys: usize,
        thread_counts: &[usize],
        read_through_passes: Option<usize>,
    ) -> Self {
        assert!(keys > 0, "the key space must not be empty");
        let sampler = KeySampler::new(workload.key_choice(), keys);
        let read_percent = workload.read_percent();
        let most = thread_counts.iter().copied().max().unwrap_or(0);
        let longest = |thread: usize| {
            thread_counts
                .iter()
                .filter(|&&t| t > thread)
                .map(|&t| match read_through_passes {
                    Some(passes) => read_through_ops(keys, t, passes),
                    None => OPS_PER_THREAD,
                })
                .max()
                .unwrap_or(OPS_PER_THREAD)
        };
        let threads = (0..most)
            .map(|thread| {
                let seed = SEED ^ (thread as u64 + 1).wrapping_mul(0x9E37_79B9);
                let mut rng = StdRng::seed_from_u64(seed);
                (0..longest(thread))
                    .map(|_| {
                        let key = sampler.sample(&mut rng);
                        if rng.random_range(0..100) < read_percent {
                            Op::Get(key)
                        } else {
                            Op::Insert(key, V::for_key(key))
                        }
                    })
                    .collect()
            })
            .collect();
        Self {
            threads,
            keys,
            read_through_passes,
        }
    }

    /// The streams of `threads` threads, for a read-through subject or not:
    /// the first [`OPS_PER_THREAD`] or [`read_through_ops`] operations of
    /// each thread's stream.
    ///
    /// # Panics
    ///
    /// If `threads` is more than the streams were generated for, or
    /// `read_through` asks for streams generated without.
    pub fn of(&self, threads: usize, read_through: bool) -> Vec<&[Op<V>]> {
        let len = if read_through {
            let passes = self
                .read_through_passes
                .expect("streams generated without read-through passes");
            read_through_ops(self.keys, threads, passes)
        } else {
            OPS_PER_THREAD
        };
        self.threads[..threads]
            .iter()
            .map(|ops| &ops[..len])
            .collect()
    }
}
