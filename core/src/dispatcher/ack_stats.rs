//! What the workers' acknowledgements tell about dispatch: the time from the
//! primary's `accept` of a connection to the acknowledgement of the worker
//! that took it (a fixed-bucket histogram), and how many times a worker
//! refused one (at `maxConnections`, or closing).
//!
//! The dispatcher thread alone writes it, so plain integers suffice; the JS
//! thread gets a copy with the stats. The time includes any wait in the
//! primary (no worker listening, all of them refusing or out of credit), so a
//! cluster that falls behind shows here before connections expire.

use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (100 µs to 10 s; Prometheus'
/// `le`). A time above the last is counted only in `count` (the `+Inf` bucket).
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AckStats {
    /// Per bucket, not cumulative: `buckets[i]` counts times in
    /// `(BOUNDS_US[i - 1], BOUNDS_US[i]]`.
    pub buckets: [u64; BOUNDS_US.len()],
    /// Every accepted acknowledgement, whatever its time.
    pub count: u64,
    /// The sum of the times, in microseconds.
    pub sum_us: u64,
    /// Refusals by workers (each offer of a connection a worker refused).
    pub refused: u64,
    /// Connections taken back from a worker whose event loop stayed busy
    /// before it read them, and dealt to another (docs/DESIGN.md §15).
    pub taken_back: u64,
}

impl AckStats {
    /// A worker acknowledged taking a connection `elapsed` after its accept.
    pub fn accepted(&mut self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = BOUNDS_US.iter().position(|&b| us <= b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }

    /// A worker refused a connection it was offered.
    pub fn refused(&mut self) {
        self.refused += 1;
    }

    /// Adds another dispatcher thread's counts to these.
    pub fn add(&mut self, other: &AckStats) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.refused += other.refused;
        self.taken_back += other.taken_back;
    }

    /// A connection was taken back from a blocked worker.
    pub fn taken_back(&mut self) {
        self.taken_back += 1;
    }

    /// Cumulative counts per bound, as Prometheus' `_bucket{le}` lines are.
    pub fn cumulative(&self) -> [u64; BOUNDS_US.len()] {
        let mut out = [0; BOUNDS_US.len()];
        let mut sum = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            sum += n;
            out[i] = sum;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_fall_in_the_first_bucket_that_holds_them() {
        let mut s = AckStats::default();
        s.accepted(Duration::from_micros(100)); // on a bound: that bucket (le)
        s.accepted(Duration::from_micros(101));
        s.accepted(Duration::from_millis(3));
        s.accepted(Duration::from_secs(11)); // only +Inf
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[1], 1);
        assert_eq!(s.buckets[5], 1);
        assert_eq!(s.buckets.iter().sum::<u64>(), 3);
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_us, 100 + 101 + 3_000 + 11_000_000);
        let c = s.cumulative();
        assert_eq!(c[0], 1);
        assert_eq!(c[4], 2);
        assert_eq!(c[BOUNDS_US.len() - 1], 3);
    }

    #[test]
    fn refusals_are_counted_apart() {
        let mut s = AckStats::default();
        s.refused();
        s.refused();
        assert_eq!(s.refused, 2);
        assert_eq!(s.count, 0);
    }
}
