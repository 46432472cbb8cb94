//! Wall-clock time, in one place so tests and recovery agree on the unit.

/// Milliseconds since the Unix epoch (0 if the clock is before it, or
/// cannot be read).
///
/// Read with the C library's `clock_gettime(CLOCK_REALTIME)` (the vDSO,
/// no system call; the same call `SystemTime::now` makes) and converted
/// in integer arithmetic: every commit reads the clock, and
/// `SystemTime::duration_since(UNIX_EPOCH)` spent about 85 of the 160
/// instructions normalising a `Duration` that is then cut to
/// milliseconds. (rustix's own vDSO reader was tried first: it crashes
/// under valgrind, which has no vDSO to parse.)
pub fn wall_clock_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the call's
    // duration, and CLOCK_REALTIME is a clock every supported system has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    match (rc, u64::try_from(now.tv_sec), u64::try_from(now.tv_nsec)) {
        (0, Ok(secs), Ok(nanos)) => secs.saturating_mul(1000).saturating_add(nanos / 1_000_000),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    fn std_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    /// The same milliseconds `SystemTime` gives, read between two of its
    /// readings.
    #[test]
    fn wall_clock_ms_agrees_with_system_time() {
        for _ in 0..1000 {
            let before = std_ms();
            let ours = super::wall_clock_ms();
            let after = std_ms();
            assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        }
    }
}
