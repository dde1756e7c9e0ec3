//! A lock-free log-linear latency histogram (microseconds, ~1.6% resolution) and
//! process helpers (server RSS, file limit).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Instant;

const SUB: u64 = 64; // sub-buckets per power of two
const GROUPS: usize = 40;

pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

fn index(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as u64; // >= 6
    let shift = msb - 6;
    let group = msb - 5; // 1..
    let sub = (v >> shift) - SUB; // 0..63
    ((group * SUB + sub) as usize).min(GROUPS * SUB as usize - 1)
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
            buckets: (0..GROUPS * SUB as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    pub fn record(&self, micros: u64) {
        self.buckets[index(micros)].fetch_add(1, Relaxed);
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
    }

    /// Percentile in milliseconds (q in 0..=1); 0 when empty.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
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
    static READ_AT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
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

/// Parse the first unsigned integer found after `from` in `s`.
pub fn first_number(s: &str) -> Option<u64> {
    let b = s.as_bytes();
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
}
