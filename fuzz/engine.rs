//! A small, dependency-free fuzz engine that runs on stable Rust under `cargo test`.
//!
//! Each crate's `tests/fuzz_*.rs` includes this file (`#[path = "../../fuzz/engine.rs"]`) and
//! calls [`run`] once per target: the committed seed corpus in `fuzz/corpus/<target>/` is
//! replayed first, then a seeded mutation loop (byte-level mutations, splices between corpus
//! entries, dictionary tokens; structure-aware mutations are done by the target itself through
//! [`Input::rng`]) runs until the time budget is spent.
//!
//! Knobs (environment):
//! - `GMSA_FUZZ_SECONDS`: seconds per target (default 2; `scripts/test.d/40-fuzz` uses more).
//! - `GMSA_FUZZ_SEED`: the generator seed (default fixed, so a plain `cargo test` is
//!   deterministic up to the time budget); printed at the end of every run.
//!
//! A panicking input is written to `target/fuzz-failures/<target>-<seed>-<n>.bin` and the
//! test fails naming that file; replay it by copying it into `fuzz/corpus/<target>/`.
//! The process's peak RSS (VmHWM) is checked against a ceiling at the end of the run (no
//! unbounded allocation), and every single input must finish within a per-input limit (no
//! hang).
#![allow(dead_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A xorshift64* generator: fast, seedable, good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped: xorshift must not start at 0).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// What a target gets for one run: the bytes, and a generator for structure-aware work.
pub struct Input<'a> {
    /// The (possibly mutated) bytes.
    pub bytes: &'a [u8],
    /// Randomness for structure-aware mutations done by the target.
    pub rng: &'a mut Rng,
    /// Whether these bytes are a corpus entry replayed unchanged.
    pub from_corpus: bool,
}

/// Settings of one target.
pub struct Target<'a> {
    /// Directory name under `fuzz/corpus/`.
    pub name: &'a str,
    /// Mutants are cut to this length.
    pub max_len: usize,
    /// Tokens worth inserting (field names, delimiters, magic numbers).
    pub dictionary: &'a [&'a [u8]],
    /// The most one input may take (a hang otherwise).
    pub per_input: Duration,
    /// The ceiling for the process's peak RSS at the end, in MiB.
    pub peak_rss_mib: u64,
}

impl<'a> Target<'a> {
    /// Defaults: 64 KiB inputs, 10 s per input (a debug build on a loaded CI machine: the
    /// slowest inputs take well under 1 s; an endless loop still fails), 1 GiB peak RSS.
    pub fn new(name: &'a str, dictionary: &'a [&'a [u8]]) -> Self {
        Self {
            name,
            max_len: 64 * 1024,
            dictionary,
            per_input: Duration::from_secs(10),
            peak_rss_mib: 1024,
        }
    }
}

/// What a run did, printed at the end and returned for assertions.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Corpus entries replayed.
    pub corpus: usize,
    /// Inputs run in total (corpus included).
    pub inputs: u64,
    /// The slowest input.
    pub slowest: Duration,
    /// Peak RSS of the process at the end, in KiB (0 where /proc is missing).
    pub peak_rss_kib: u64,
    /// The seed used.
    pub seed: u64,
}

/// The repository's `fuzz/` directory.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
}

/// Seconds per target from `GMSA_FUZZ_SECONDS` (default 2; 0 replays the corpus only).
pub fn budget() -> Duration {
    let secs = std::env::var("GMSA_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// The seed from `GMSA_FUZZ_SEED` (default fixed).
pub fn seed() -> u64 {
    std::env::var("GMSA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x5EED_6D5A)
}

/// The corpus of a target, sorted by file name. Panics when it is missing or empty: a target
/// without seeds would only ever see random bytes.
pub fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} unreadable: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).expect("read corpus entry");
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    entries.sort();
    assert!(
        !entries.is_empty(),
        "fuzz corpus {} is empty",
        dir.display()
    );
    entries
}

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'"', b'\\', b'{', b'}', b'[', b']', b'\n',
];

/// Mutates `bytes` in place with 1..=8 random byte-level operations; `others` are spliced in.
pub fn mutate_bytes(
    rng: &mut Rng,
    bytes: &mut Vec<u8>,
    dictionary: &[&[u8]],
    others: &[(String, Vec<u8>)],
    max_len: usize,
) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = *rng.pick(INTERESTING);
            }
            2 => bytes.insert(at, rng.next_u64() as u8),
            3 if !dictionary.is_empty() => {
                let token = *rng.pick(dictionary);
                bytes.splice(at..at, token.iter().copied());
            }
            4 if len > 0 => {
                let end = (at + 1 + rng.below(64)).min(len);
                bytes.drain(at.min(len - 1)..end);
            }
            5 if len > 0 => {
                // Duplicate a range (repeated structure: many containers, deep nesting).
                let start = rng.below(len);
                let end = (start + 1 + rng.below(256)).min(len);
                let copy = bytes[start..end].to_vec();
                let times = 1 + rng.below(4);
                for _ in 0..times {
                    bytes.splice(at..at, copy.iter().copied());
                }
            }
            6 => bytes.truncate(at),
            7 if !others.is_empty() => {
                // Splice: our head, another entry's tail.
                let other = &rng.pick(others).1;
                let from = rng.below(other.len() + 1);
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
            8 => {
                // A run of one delimiter (nesting bombs, long strings).
                let c = *rng.pick(b"[{\"\\ a0");
                let n = 1 + rng.below(4096);
                bytes.splice(at..at, std::iter::repeat_n(c, n));
            }
            9 if len > 1 => {
                let i = rng.below(len);
                let j = rng.below(len);
                bytes.swap(i, j);
            }
            _ => {
                let v = rng.next_u64().to_le_bytes();
                let n = 1 + rng.below(8);
                bytes.splice(at..at, v[..n].iter().copied());
            }
        }
    }
    bytes.truncate(max_len);
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn save_failure(target: &str, seed: u64, n: u64, bytes: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{seed}-{n}.bin"));
    let _ = std::fs::write(&path, bytes);
    path
}

/// Runs `check` on every corpus entry of `target`, then on mutants until the budget is spent.
/// `check` must panic on a broken invariant; any panic fails the run, naming the saved input.
pub fn run(target: &Target<'_>, mut check: impl FnMut(Input<'_>)) -> Stats {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let corpus = corpus(target.name);
    let budget = budget();
    let started = Instant::now();
    let mut stats = Stats {
        corpus: corpus.len(),
        seed,
        ..Stats::default()
    };
    let mut failures: Vec<String> = Vec::new();
    let mut one =
        |bytes: &[u8], from_corpus: bool, rng: &mut Rng, stats: &mut Stats| -> Option<String> {
            let t = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| {
                check(Input {
                    bytes,
                    rng,
                    from_corpus,
                })
            }));
            let took = t.elapsed();
            stats.inputs += 1;
            stats.slowest = stats.slowest.max(took);
            if let Err(panic) = result {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let path = save_failure(target.name, seed, stats.inputs, bytes);
                Some(format!("{}: {message}", path.display()))
            } else if took > target.per_input {
                let path = save_failure(target.name, seed, stats.inputs, bytes);
                Some(format!(
                    "{}: took {took:?} (limit {:?}): a hang",
                    path.display(),
                    target.per_input
                ))
            } else {
                None
            }
        };
    for (_, bytes) in &corpus {
        failures.extend(one(bytes, true, &mut rng, &mut stats));
    }
    while started.elapsed() < budget && failures.len() < 5 {
        let mut bytes = rng.pick(&corpus).1.clone();
        // One in eight mutants starts from nothing but random bytes.
        if rng.one_in(8) {
            let n = rng.below(256);
            bytes = (0..n).map(|_| rng.next_u64() as u8).collect();
        }
        mutate_bytes(
            &mut rng,
            &mut bytes,
            target.dictionary,
            &corpus,
            target.max_len,
        );
        failures.extend(one(&bytes, false, &mut rng, &mut stats));
        // Half of the iterations hand the unmutated seed to the target for its own
        // structure-aware mutation.
        let seed_bytes = rng.pick(&corpus).1.clone();
        failures.extend(one(&seed_bytes, false, &mut rng, &mut stats));
    }
    stats.peak_rss_kib = peak_rss_kib();
    eprintln!(
        "fuzz {} ({}): {} inputs ({} corpus) in {:.1}s, seed {}, slowest {:?}, peak RSS {} MiB",
        target.name,
        std::thread::current().name().unwrap_or("main"),
        stats.inputs,
        stats.corpus,
        started.elapsed().as_secs_f64(),
        seed,
        stats.slowest,
        stats.peak_rss_kib / 1024
    );
    assert!(
        failures.is_empty(),
        "fuzz {}: {} failing input(s) (seed {seed}):\n{}",
        target.name,
        failures.len(),
        failures.join("\n")
    );
    assert!(
        stats.peak_rss_kib <= target.peak_rss_mib * 1024,
        "fuzz {}: peak RSS {} MiB over the {} MiB ceiling (unbounded allocation?)",
        target.name,
        stats.peak_rss_kib / 1024,
        target.peak_rss_mib
    );
    stats
}

/// Structure-aware JSON mutation: 1..=4 edits at random nodes of `value` (replace with an odd
/// scalar, drop a key, duplicate an array element, wrap in arrays, set a key from `keys`
/// to one of `values`).
pub fn mutate_json(
    rng: &mut Rng,
    value: &mut serde_json::Value,
    keys: &[&str],
    values: &[serde_json::Value],
) {
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let count = count_nodes(value);
        let target = rng.below(count);
        let mut index = 0;
        edit_node(rng, value, target, &mut index, keys, values);
    }
}

fn count_nodes(value: &serde_json::Value) -> usize {
    1 + match value {
        serde_json::Value::Array(a) => a.iter().map(count_nodes).sum(),
        serde_json::Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn odd_scalar(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(12) {
        0 => json!(null),
        1 => json!(true),
        2 => json!(-1),
        3 => json!(u64::MAX),
        4 => json!(1.5e300),
        5 => json!(""),
        6 => json!("x".repeat(rng.below(5000))),
        7 => json!("ünï\u{0}cødé\u{202e}"),
        8 => json!({}),
        9 => json!([]),
        10 => json!("{\"a\":1}"),
        _ => json!("WebApp01"),
    }
}

fn edit_node(
    rng: &mut Rng,
    value: &mut serde_json::Value,
    target: usize,
    index: &mut usize,
    keys: &[&str],
    values: &[serde_json::Value],
) -> bool {
    if *index == target {
        match rng.below(6) {
            0 => *value = odd_scalar(rng),
            1 if !values.is_empty() => *value = rng.pick(values).clone(),
            2 => {
                if let serde_json::Value::Object(o) = value {
                    if !o.is_empty() {
                        let k = o.keys().nth(rng.below(o.len())).cloned();
                        if let Some(k) = k {
                            o.remove(&k);
                        }
                    }
                }
            }
            3 => {
                if let serde_json::Value::Array(a) = value {
                    if !a.is_empty() {
                        let i = rng.below(a.len());
                        let copy = a[i].clone();
                        let times = 1 + rng.below(20);
                        for _ in 0..times {
                            a.push(copy.clone());
                        }
                    }
                }
            }
            4 if !keys.is_empty() && !values.is_empty() => {
                if let serde_json::Value::Object(o) = value {
                    let k = rng.pick(keys).to_string();
                    o.insert(k, rng.pick(values).clone());
                }
            }
            _ => {
                let inner = std::mem::take(value);
                *value = serde_json::Value::Array(vec![inner]);
            }
        }
        return true;
    }
    *index += 1;
    match value {
        serde_json::Value::Array(a) => {
            for v in a {
                if edit_node(rng, v, target, index, keys, values) {
                    return true;
                }
            }
            false
        }
        serde_json::Value::Object(o) => {
            for (_, v) in o.iter_mut() {
                if edit_node(rng, v, target, index, keys, values) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}
