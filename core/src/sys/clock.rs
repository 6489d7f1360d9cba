//! The monotonic clock as a number both sides of a loop stamp read
//! (`crate::loop_stamp`): a worker writes it, the primary compares it with its
//! own reading. `Instant` is the same clock on Linux but cannot be turned into
//! a number another process could write.

/// Nanoseconds of `CLOCK_MONOTONIC`: the same clock in every process of the
/// machine, never going back, not counting time before boot.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a local the call fills; CLOCK_MONOTONIC always exists,
    // so the call cannot fail (through the vDSO: no system call is made).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    // Both fields are non-negative for CLOCK_MONOTONIC.
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_back() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
    }
}
