//! A lock-free log-linear latency histogram (microseconds, ~1.6% resolution), an
//! event counter, and process helpers (server RSS, file limit).
//!
//! The histogram and the counter take one update per delivered message, tens of
//! millions a second on one core: each thread writes its own shard with a plain load
//! and store, not a locked read-modify-write (two of those per message were a tenth of
//! the load generator's CPU). Readers sum the shards.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

const SUB: u64 = 64; // sub-buckets per power of two
const GROUPS: usize = 40;
const BUCKETS: usize = GROUPS * SUB as usize;

/// Threads that get a shard of their own; any further ones share with locked adds.
const SHARDS: usize = 8;

/// This thread's shard, and whether it is the only thread writing it.
fn shard() -> (usize, bool) {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    let id = SHARD.with(|s| {
        if s.get() == usize::MAX {
            s.set(NEXT.fetch_add(1, Relaxed));
        }
        s.get()
    });
    (id % SHARDS, id < SHARDS)
}

fn bump(cell: &AtomicU64, alone: bool) {
    if alone {
        cell.store(cell.load(Relaxed) + 1, Relaxed);
    } else {
        cell.fetch_add(1, Relaxed);
    }
}

/// A count of events, cheap to bump from any thread.
pub struct Counter {
    shards: [AtomicU64; SHARDS],
}

impl Counter {
    pub fn new() -> Counter {
        Counter {
            shards: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    pub fn add_one(&self) {
        let (i, alone) = shard();
        bump(&self.shards[i], alone);
    }

    /// Events counted so far (never reset: callers keep a baseline).
    pub fn get(&self) -> u64 {
        self.shards.iter().map(|s| s.load(Relaxed)).sum()
    }
}

pub struct Histogram {
    /// `SHARDS` runs of `BUCKETS` counts.
    buckets: Vec<AtomicU64>,
    /// The counts at the last [`Histogram::reset`]: writers never see a reset.
    baseline: Mutex<Vec<u64>>,
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as u64; // >= 6
    let shift = msb - 6;
    let group = msb - 5; // 1..
    let sub = (v >> shift) - SUB; // 0..63
    ((group * SUB + sub) as usize).min(BUCKETS - 1)
}

fn value_of(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let group = i / SUB;
    let sub = i % SUB;
    let shift = group - 1;
    // midpoint of the bucket
    ((SUB + sub) << shift) + ((1u64 << shift) >> 1)
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            buckets: (0..SHARDS * BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            baseline: Mutex::new(vec![0; BUCKETS]),
        }
    }

    pub fn record(&self, micros: u64) {
        let (i, alone) = shard();
        bump(&self.buckets[i * BUCKETS + index(micros)], alone);
    }

    /// Counts since `new`, summed over the shards.
    fn totals(&self) -> Vec<u64> {
        let mut sum = vec![0; BUCKETS];
        for run in self.buckets.chunks(BUCKETS) {
            for (total, count) in sum.iter_mut().zip(run) {
                *total += count.load(Relaxed);
            }
        }
        sum
    }

    /// Starts a new measurement: later percentiles count only what is recorded from now.
    pub fn reset(&self) {
        let now = self.totals();
        *self.baseline.lock().unwrap() = now;
    }

    /// Percentile in milliseconds (q in 0..=1); 0 when empty.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let baseline = self.baseline.lock().unwrap().clone();
        let counts: Vec<u64> = self
            .totals()
            .iter()
            .zip(&baseline)
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return (value_of(i) as f64 / 1000.0 * 1000.0).round() / 1000.0;
            }
        }
        0.0
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Microseconds since this process's epoch: the timestamps the payloads carry.
pub fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

thread_local! {
    static READ_AT: Cell<u64> = const { Cell::new(0) };
}

/// Transports call this after each read: every packet parsed from that read arrived
/// at that moment, and the handlers timestamp deliveries with [`read_at_us`] instead of
/// reading the clock once per message (a quarter of the load generator's CPU otherwise).
pub fn mark_read() {
    READ_AT.with(|c| c.set(now_us()));
}

pub fn read_at_us() -> u64 {
    let t = READ_AT.with(|c| c.get());
    if t == 0 {
        now_us()
    } else {
        t
    }
}

pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

pub fn raise_nofile() -> u64 {
    // SAFETY: plain libc calls on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
            return lim.rlim_cur as u64;
        }
    }
    0
}

/// CPU time (user+system) of this process in seconds, to show the load generator's cost.
pub fn self_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Parse the first unsigned integer in `b`.
pub fn first_number(b: &[u8]) -> Option<u64> {
    let start = b.iter().position(|c| c.is_ascii_digit())?;
    let mut v: u64 = 0;
    for &c in &b[start..] {
        if !c.is_ascii_digit() {
            break;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    Some(v)
}

/// Busy CPU ticks of the whole machine (all cores), from /proc/stat.
pub fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or("");
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum()
}

/// user+system ticks of a process (all its threads); 0 if it is gone.
pub fn pid_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn buckets_are_monotonic_and_close() {
        let mut last = 0;
        for v in [0u64, 1, 63, 64, 65, 100, 1000, 12345, 1_000_000, 60_000_000] {
            let i = index(v);
            assert!(i >= last);
            last = i;
            let back = value_of(i) as f64;
            assert!(
                (back - v as f64).abs() <= (v as f64 * 0.02).max(1.0),
                "{v} -> {back}"
            );
        }
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        assert!((h.percentile_ms(0.5) - 500.0).abs() < 10.0);
        assert!((h.percentile_ms(0.99) - 990.0).abs() < 20.0);
    }

    #[test]
    fn a_reset_starts_afresh_and_threads_past_the_shards_still_count() {
        let h = std::sync::Arc::new(Histogram::new());
        let c = std::sync::Arc::new(Counter::new());
        h.record(5_000_000);
        h.reset();
        let threads: Vec<_> = (0..SHARDS + 4)
            .map(|_| {
                let (h, c) = (h.clone(), c.clone());
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        h.record(2000);
                        c.add_one();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(), 1000 * (SHARDS as u64 + 4));
        assert!((h.percentile_ms(1.0) - 2.0).abs() < 0.1);
    }
}
