//! Request traces: the readers for the text formats people share, and the
//! generated traces used when no file is given.
//!
//! A trace is the sequence of keys requested, as `u64`s. Numeric keys are
//! taken as they are; any other key text is mapped to a `u64` by
//! [`hash_key`] (64-bit FNV-1a and a SplitMix64 finaliser: the same number on
//! every machine). The exact policies work on dense ids, `0..distinct` in
//! order of first request, computed once per trace.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A cache size: a number of entries, or a percentage of a trace's distinct
/// keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Capacity {
    Entries(usize),
    Percent(f64),
}

/// The smallest capacity a percentage resolves to.
pub const MIN_PERCENT_CAPACITY: usize = 1;

/// Capacities of a generated trace: tiny caches of 10, 30 and 100 entries,
/// and 1%, 5% and 20% of its distinct keys.
pub const DEFAULT_CAPACITIES: [Capacity; 6] = [
    Capacity::Entries(10),
    Capacity::Entries(30),
    Capacity::Entries(100),
    Capacity::Percent(1.0),
    Capacity::Percent(5.0),
    Capacity::Percent(20.0),
];

/// Capacities a trace file adds to [`DEFAULT_CAPACITIES`]: the sizes the
/// literature uses on the LIRS traces, 500, 1000 and 2000 entries.
pub const FILE_EXTRA_CAPACITIES: [Capacity; 3] = [
    Capacity::Entries(500),
    Capacity::Entries(1000),
    Capacity::Entries(2000),
];

impl Capacity {
    /// Entries for a trace of `distinct` keys; a percentage gives at least
    /// [`MIN_PERCENT_CAPACITY`].
    pub fn resolve(self, distinct: usize) -> usize {
        match self {
            Capacity::Entries(n) => n,
            Capacity::Percent(p) => {
                ((p / 100.0 * distinct as f64).round() as usize).max(MIN_PERCENT_CAPACITY)
            }
        }
    }

    /// `1000` or `5%`, as given on the command line.
    pub fn parse(text: &str) -> Result<Capacity, String> {
        let text = text.trim();
        let capacity = match text.strip_suffix('%') {
            Some(number) => {
                let p: f64 = number
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{text}` is not a percentage such as 5%"))?;
                if !(p > 0.0 && p.is_finite()) {
                    return Err(format!("`{text}` must be a positive percentage"));
                }
                Capacity::Percent(p)
            }
            None => {
                let n: usize = text.parse().map_err(|_| {
                    format!("`{text}` is neither a number of entries nor a percentage")
                })?;
                if n == 0 {
                    return Err("a capacity must be at least 1 entry".to_owned());
                }
                Capacity::Entries(n)
            }
        };
        Ok(capacity)
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capacity::Entries(n) => write!(f, "{n}"),
            Capacity::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// One trace, loaded.
#[derive(Debug)]
pub struct Trace {
    /// Short name for tables: the file name without compression suffix
    /// and extension, or the generator's name.
    pub name: String,
    /// Where it came from: a path and its format, or the generator.
    pub source: String,
    /// The keys requested, in order.
    pub keys: Vec<u64>,
    /// `ids[i]` is the dense id of `keys[i]`: ids are `0..distinct`, in
    /// order of first request.
    pub ids: Vec<u32>,
    pub distinct: usize,
    /// The capacities to replay it at unless `--capacities` says otherwise.
    pub capacities: Vec<Capacity>,
}

impl Trace {
    pub fn new(name: String, source: String, keys: Vec<u64>, capacities: Vec<Capacity>) -> Trace {
        let mut dense: HashMap<u64, u32, ahash::RandomState> =
            HashMap::with_hasher(ahash::RandomState::with_seeds(1, 2, 3, 4));
        let ids = keys
            .iter()
            .map(|&key| {
                let next = dense.len() as u32;
                *dense.entry(key).or_insert(next)
            })
            .collect();
        Trace {
            name,
            source,
            keys,
            ids,
            distinct: dense.len(),
            capacities,
        }
    }

    /// The capacities in entries, ascending, without duplicates, and
    /// below the trace's distinct keys: a cache that holds every key misses
    /// only the first request of each, whatever its policy.
    pub fn resolve_capacities(&self, list: &[Capacity]) -> Vec<usize> {
        let mut entries: Vec<usize> = list
            .iter()
            .map(|c| c.resolve(self.distinct))
            .filter(|&n| n < self.distinct)
            .collect();
        entries.sort_unstable();
        entries.dedup();
        entries
    }
}

/// Maps a non-numeric key to a `u64`: 64-bit FNV-1a, then SplitMix64's
/// finaliser to spread the bits. Fixed, so a trace maps to the same keys on
/// every machine.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

/// SplitMix64's finaliser: a bijection on `u64`.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A trace file's text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Guess from the first line that is not empty and does not start with
    /// `*`: a comma means csv; exactly four unsigned integers mean arc;
    /// anything else means lines.
    Auto,
    /// One key per line (LIRS traces, libCacheSim txt).
    Lines,
    /// ARC traces: `start count ignored ignored`, i.e. requests for the keys
    /// start, start+1, ..., start+count-1.
    Arc,
    /// libCacheSim csv: a header line, then one request per line; the key is
    /// the column named by --key-column, or else the first of obj_id,
    /// object_id, objid, key, id (case-insensitive).
    Csv,
}

/// Column names taken as the object id of a csv trace, in order of preference.
pub const CSV_KEY_COLUMNS: [&str; 5] = ["obj_id", "object_id", "objid", "key", "id"];

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Lines => "lines",
            Format::Arc => "arc",
            Format::Csv => "csv",
        }
    }

    /// The format of a trace whose first meaningful line is `line`.
    fn guess(line: &str) -> Format {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if line.contains(',') {
            Format::Csv
        } else if fields.len() == 4 && fields.iter().all(|f| f.parse::<u64>().is_ok()) {
            Format::Arc
        } else {
            Format::Lines
        }
    }
}

/// How to read a trace file.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub format: Format,
    /// The csv column holding the key, overriding [`CSV_KEY_COLUMNS`].
    pub key_column: Option<String>,
}

/// The parser of one file, fixed by its first meaningful line.
enum Parser {
    Lines,
    Arc,
    Csv { column: usize },
}

impl Parser {
    /// A parser for `format` whose first meaningful line is `first`; the
    /// csv parser takes that line as its header and consumes it.
    fn new(format: Format, first: &str, options: &ReadOptions) -> Result<(Parser, bool), String> {
        Ok(match format {
            Format::Auto => Parser::new(Format::guess(first), first, options)?,
            Format::Lines => (Parser::Lines, false),
            Format::Arc => (Parser::Arc, false),
            Format::Csv => {
                let header: Vec<String> = first
                    .split(',')
                    .map(|f| f.trim().trim_matches('"').to_ascii_lowercase())
                    .collect();
                let wanted: Vec<String> = match &options.key_column {
                    Some(name) => vec![name.to_ascii_lowercase()],
                    None => CSV_KEY_COLUMNS.iter().map(|s| (*s).to_owned()).collect(),
                };
                let column = wanted
                    .iter()
                    .find_map(|name| header.iter().position(|h| h == name))
                    .ok_or_else(|| {
                        format!(
                            "csv header `{first}` has no key column (looked for {}); \
                             name it with --key-column, or force --format lines",
                            wanted.join(", ")
                        )
                    })?;
                (Parser::Csv { column }, true)
            }
        })
    }

    fn format(&self) -> Format {
        match self {
            Parser::Lines => Format::Lines,
            Parser::Arc => Format::Arc,
            Parser::Csv { .. } => Format::Csv,
        }
    }

    fn parse(&self, line: &str, keys: &mut Vec<u64>) -> Result<(), String> {
        match self {
            Parser::Lines => keys.push(parse_key(line)),
            Parser::Arc => {
                let mut fields = line.split_whitespace();
                let mut number = |what: &str| -> Result<u64, String> {
                    fields
                        .next()
                        .and_then(|f| f.parse::<u64>().ok())
                        .ok_or_else(|| format!("arc line `{line}`: no {what}"))
                };
                let start = number("start")?;
                let count = number("count")?;
                let end = start
                    .checked_add(count)
                    .ok_or_else(|| format!("arc line `{line}`: start + count overflows"))?;
                keys.extend(start..end);
            }
            Parser::Csv { column } => {
                let field = line
                    .split(',')
                    .nth(*column)
                    .ok_or_else(|| format!("csv line `{line}` has no column {}", column + 1))?;
                keys.push(parse_key(field.trim().trim_matches('"')));
            }
        }
        Ok(())
    }
}

/// A key as written: a `u64` if it is one, else [`hash_key`] of the text.
fn parse_key(text: &str) -> u64 {
    text.parse().unwrap_or_else(|_| hash_key(text.as_bytes()))
}

/// Reads the keys of a trace from `reader`: splits lines on `\n`, drops a
/// trailing `\r`, skips lines that are empty (after trimming) or start with
/// `*`, and returns the keys with the format used.
pub fn parse(reader: impl BufRead, options: &ReadOptions) -> Result<(Vec<u64>, Format), String> {
    let mut keys = Vec::new();
    let mut parser: Option<Parser> = None;
    for (number, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(|e| format!("line {}: {e}", number + 1))?;
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() || text.starts_with('*') {
            continue;
        }
        match &parser {
            Some(p) => p.parse(text, &mut keys),
            None => {
                let (p, header) = Parser::new(options.format, text, options)?;
                let parsed = if header {
                    Ok(())
                } else {
                    p.parse(text, &mut keys)
                };
                parser = Some(p);
                parsed
            }
        }
        .map_err(|e| format!("line {}: {e}", number + 1))?;
    }
    let format = parser.map_or(options.format, |p| p.format());
    Ok((keys, format))
}

/// Opens `path`, decompressing `.gz` (gzip) and `.xz` files.
fn open(path: &Path) -> Result<Box<dyn BufRead>, Box<dyn Error>> {
    let file = File::open(path)?;
    Ok(match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file))),
        Some("xz") => {
            let mut bytes = Vec::new();
            lzma_rs::xz_decompress(&mut BufReader::new(file), &mut bytes)
                .map_err(|e| format!("xz: {e}"))?;
            Box::new(Cursor::new(bytes))
        }
        _ => Box::new(BufReader::new(file)),
    })
}

/// The short name of a trace file: `lirs-loop.trace.gz` is `lirs-loop`.
pub fn trace_name(path: &Path) -> String {
    let mut name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    for suffix in [".gz", ".xz"] {
        if let Some(stripped) = name.strip_suffix(suffix) {
            name = stripped.to_owned();
        }
    }
    match name.rfind('.') {
        Some(dot) if dot > 0 => name[..dot].to_owned(),
        _ => name,
    }
}

/// Reads the trace file at `path`.
pub fn read(path: &Path, options: &ReadOptions) -> Result<Trace, Box<dyn Error>> {
    let describe = |e: &dyn fmt::Display| format!("{}: {e}", path.display());
    let reader = open(path).map_err(|e| describe(&e))?;
    let (keys, format) = parse(reader, options).map_err(|e| describe(&e))?;
    if keys.is_empty() {
        return Err(describe(&"no requests").into());
    }
    if keys.len() >= u32::MAX as usize {
        return Err(describe(&"more than 4G requests").into());
    }
    let source = format!("{} ({} format)", path.display(), format.name());
    Ok(Trace::new(
        trace_name(path),
        source,
        keys,
        DEFAULT_CAPACITIES
            .into_iter()
            .chain(FILE_EXTRA_CAPACITIES)
            .collect(),
    ))
}

/// The trace files of `dir`: every file in it, sorted by name, except
/// hidden ones, `README*` and `*.md`.
pub fn files_in(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let skipped = name.starts_with('.') || name.starts_with("README") || name.ends_with(".md");
        if path.is_file() && !skipped {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Sizes of the generated traces.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Keys the Zipf traces draw from.
    pub keys: usize,
    /// Requests of each Zipf trace (the scan trace adds its scans).
    pub requests: usize,
    /// Keys of the loop trace.
    pub loop_keys: usize,
    /// Passes over the loop.
    pub loop_passes: usize,
}

/// The default run: Zipf over 1M keys.
pub const FULL: Scale = Scale {
    keys: 1_000_000,
    requests: 2_000_000,
    loop_keys: 110_000,
    loop_passes: 10,
};

/// `--quick`.
pub const QUICK: Scale = Scale {
    keys: 20_000,
    requests: 100_000,
    loop_keys: 2_200,
    loop_passes: 10,
};

/// Seed of the generated traces' random numbers.
pub const TRACE_SEED: u64 = 0x5EED_0F7A_CE00;

/// Draws ranks `0..n` with probability proportional to `1 / (rank+1)^s`,
/// by binary search in the cumulative weights.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += (rank as f64).powf(-s);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut StdRng) -> usize {
        let total = self.cumulative[self.cumulative.len() - 1];
        let u = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
    }
}

/// Rank `r` of a Zipf trace is key `mix(r)`: hot keys are not small
/// numbers, and the scans' fresh keys (ranks past the key space) never
/// collide with them.
fn zipf_keys(zipf: &Zipf, requests: usize, rng: &mut StdRng) -> Vec<u64> {
    (0..requests)
        .map(|_| mix(zipf.sample(rng) as u64))
        .collect()
}

fn millions(n: usize) -> String {
    if n >= 1_000_000 && n % 100_000 == 0 {
        format!("{}M", n as f64 / 1e6)
    } else if n >= 1_000 && n % 1_000 == 0 {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

/// The generated traces at `scale`, each from its own fixed seed:
/// Zipf 0.7, 0.9 and 1.1; Zipf 0.9 with a scan of fresh keys after every
/// 5% of its requests, each scan 2% of the key space long; and a loop over
/// `loop_keys` keys, replayed at 1/2, 3/4 and 1/1.1 of the loop.
pub fn generate(scale: Scale) -> Vec<Trace> {
    let mut traces = Vec::new();
    for (index, s) in [0.7, 0.9, 1.1].into_iter().enumerate() {
        let mut rng = StdRng::seed_from_u64(TRACE_SEED + index as u64);
        let keys = zipf_keys(&Zipf::new(scale.keys, s), scale.requests, &mut rng);
        traces.push(Trace::new(
            format!("zipf-{s}"),
            format!(
                "generated: Zipf {s} over {} keys, {} requests, seed {:#x}",
                millions(scale.keys),
                millions(scale.requests),
                TRACE_SEED + index as u64
            ),
            keys,
            DEFAULT_CAPACITIES.to_vec(),
        ));
    }

    let seed = TRACE_SEED + 3;
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(scale.keys, 0.9);
    let period = scale.requests / 20;
    let scan = scale.keys / 50;
    let mut fresh = scale.keys as u64;
    let mut keys = Vec::with_capacity(scale.requests + 20 * scan);
    for _ in 0..20 {
        keys.extend(zipf_keys(&zipf, period, &mut rng));
        keys.extend((fresh..fresh + scan as u64).map(mix));
        fresh += scan as u64;
    }
    traces.push(Trace::new(
        "zipf-0.9-scans".to_owned(),
        format!(
            "generated: Zipf 0.9 over {} keys, {} requests, then a scan of {} fresh keys, \
             20 times, seed {seed:#x}",
            millions(scale.keys),
            millions(period),
            millions(scan)
        ),
        keys,
        DEFAULT_CAPACITIES.to_vec(),
    ));

    let n = scale.loop_keys;
    let keys = (0..scale.loop_passes)
        .flat_map(|_| (0..n as u64).map(mix))
        .collect();
    traces.push(Trace::new(
        format!("loop-{}", millions(n)),
        format!(
            "generated: {} passes over the same {} keys in the same order",
            scale.loop_passes,
            millions(n)
        ),
        keys,
        vec![
            Capacity::Entries(n / 2),
            Capacity::Entries(n * 3 / 4),
            Capacity::Entries((n as f64 / 1.1).round() as usize),
        ],
    ));
    traces
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn read_all(mut reader: impl Read) -> Vec<u8> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).expect("readable");
        bytes
    }

    fn options(format: Format) -> ReadOptions {
        ReadOptions {
            format,
            key_column: None,
        }
    }

    fn keys(text: &str, format: Format) -> (Vec<u64>, Format) {
        parse(text.as_bytes(), &options(format)).expect("parses")
    }

    #[test]
    fn lines_skip_empty_and_star_lines_and_handle_crlf_and_no_final_newline() {
        let text = "*\r\n1\r\n\r\n 2 \r\n*checkpoint\n3\n1";
        assert_eq!(keys(text, Format::Auto), (vec![1, 2, 3, 1], Format::Lines));
        assert_eq!(keys(text, Format::Lines), (vec![1, 2, 3, 1], Format::Lines));
    }

    #[test]
    fn text_keys_are_hashed_consistently() {
        let (parsed, format) = keys("a/b.html\nx y\na/b.html\n", Format::Auto);
        assert_eq!(format, Format::Lines);
        assert_eq!(parsed[0], parsed[2]);
        assert_ne!(parsed[0], parsed[1]);
        assert_eq!(parsed[0], hash_key(b"a/b.html"));
    }

    #[test]
    fn arc_lines_expand_to_ranges() {
        let text = "10 3 0 1\n5 1 0 2\r\n7 0 0 3\n10 2 0 4";
        assert_eq!(
            keys(text, Format::Auto),
            (vec![10, 11, 12, 5, 10, 11], Format::Arc)
        );
    }

    #[test]
    fn arc_rejects_a_short_line() {
        assert!(parse("1 2 0 0\n3\n".as_bytes(), &options(Format::Arc)).is_err());
    }

    #[test]
    fn csv_picks_the_key_column_by_name() {
        let text = "timestamp,obj_id,obj_size\n1,42,100\n2,abc,10\n3,42,100\n";
        let (parsed, format) = keys(text, Format::Auto);
        assert_eq!(format, Format::Csv);
        assert_eq!(parsed, vec![42, hash_key(b"abc"), 42]);

        let text = "time,Key,size\r\n1,7,1\r\n2,8,1";
        assert_eq!(keys(text, Format::Csv).0, vec![7, 8]);

        let named = ReadOptions {
            format: Format::Auto,
            key_column: Some("size".to_owned()),
        };
        let (sizes, _) = parse("t,obj_id,size\n1,2,3\n".as_bytes(), &named).unwrap();
        assert_eq!(sizes, vec![3]);
    }

    #[test]
    fn csv_without_a_key_column_is_an_error() {
        let error = parse("a,b\n1,2\n".as_bytes(), &options(Format::Auto)).unwrap_err();
        assert!(error.contains("--key-column"), "{error}");
    }

    #[test]
    fn gzip_and_xz_files_are_decompressed_by_extension() {
        let dir = std::env::temp_dir().join(format!("hitratio-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let text = b"*\n1\n2\n1";

        let gz = dir.join("small.trace.gz");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text).unwrap();
        fs::write(&gz, encoder.finish().unwrap()).unwrap();

        let xz = dir.join("small.trace.xz");
        let mut compressed = Vec::new();
        lzma_rs::xz_compress(&mut &text[..], &mut compressed).unwrap();
        fs::write(&xz, compressed).unwrap();

        fs::write(dir.join("README.md"), "not a trace").unwrap();
        assert_eq!(files_in(&dir).unwrap(), vec![gz.clone(), xz.clone()]);
        for path in [&gz, &xz] {
            let trace = read(path, &options(Format::Auto)).unwrap();
            assert_eq!(trace.name, "small");
            assert_eq!(trace.keys, vec![1, 2, 1]);
            assert_eq!(trace.ids, vec![0, 1, 0]);
            assert_eq!(trace.distinct, 2);
        }
        assert_eq!(read_all(open(&gz).unwrap()), text);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn capacities_resolve_percentages_with_a_floor() {
        assert_eq!(Capacity::parse("5%").unwrap(), Capacity::Percent(5.0));
        assert_eq!(Capacity::parse("1000").unwrap(), Capacity::Entries(1000));
        assert!(Capacity::parse("0").is_err());
        assert!(Capacity::parse("x%").is_err());
        assert_eq!(Capacity::Percent(5.0).resolve(100_000), 5_000);
        assert_eq!(Capacity::Percent(1.0).resolve(1_000), 10);
        assert_eq!(Capacity::Percent(0.01).resolve(1_000), MIN_PERCENT_CAPACITY);
        assert_eq!(Capacity::Entries(7).resolve(1_000), 7);
    }

    #[test]
    fn names_drop_compression_and_extension() {
        assert_eq!(trace_name(Path::new("/t/lirs-loop.trace.gz")), "lirs-loop");
        assert_eq!(trace_name(Path::new("w.csv.xz")), "w");
        assert_eq!(trace_name(Path::new("plain")), "plain");
    }

    #[test]
    fn generated_traces_are_fixed() {
        let scale = Scale {
            keys: 1_000,
            requests: 2_000,
            loop_keys: 110,
            loop_passes: 3,
        };
        let a = generate(scale);
        let b = generate(scale);
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.keys, y.keys);
        }
        let looped = &a[4];
        assert_eq!(looped.distinct, 110);
        assert_eq!(looped.keys.len(), 330);
        assert_eq!(
            looped.resolve_capacities(&looped.capacities),
            vec![55, 82, 100]
        );
        // The scans' keys are fresh: each appears once.
        let scans = &a[3];
        assert_eq!(scans.keys.len(), 2_000 + 20 * 20);
    }
}
