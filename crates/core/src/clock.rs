//! The wall clock, read in one place. Timestamps fedflow stores and sends are milliseconds
//! since the Unix epoch as `i64` (proto `int64`, the stores' integer columns); a clock set
//! before 1970 reads 0 and one past the `i64` range saturates, so reading the clock cannot
//! fail.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Microseconds since the Unix epoch (the input of [`crate::ids::new_job_id`]).
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_reads_after_2020_in_both_units() {
        let ms = now_ms();
        let micros = now_micros();
        assert!(ms > 1_577_836_800_000, "{ms}");
        assert!(micros / 1000 >= ms, "{micros} {ms}");
    }
}
