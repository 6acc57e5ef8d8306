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

/// The operation streams of `threads` threads over a key space of `keys`
/// keys: [`OPS_PER_THREAD`] operations each, from a seed fixed per thread, so
/// every subject replays the same streams.
pub fn streams<V: Value>(workload: Workload, keys: usize, threads: usize) -> Vec<Vec<Op<V>>> {
    assert!(keys > 0, "the key space must not be empty");
    let sampler = KeySampler::new(workload.key_choice(), keys);
    let read_percent = workload.read_percent();
    (0..threads as u64)
        .map(|thread| {
            let mut rng = StdRng::seed_from_u64(SEED ^ (thread + 1).wrapping_mul(0x9E37_79B9));
            (0..OPS_PER_THREAD)
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
        .collect()
}
