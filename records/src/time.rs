//! UTC dates for run ids and records, without a date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Civil date and time (UTC) of a Unix time: (year, month, day, hour, minute, second).
pub fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Seconds since the Unix epoch, with a fraction: lines up records written by different
/// processes (the load generator's samples, the autoscaler's decisions).
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// `20261122T193000Z`: sorts by time, safe in a folder name.
pub fn utc_stamp() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// `20261123-121500`: the name the lab gives a batch of runs (and their folders' prefix),
/// sorting by time.
pub fn batch_stamp() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// RFC 3339, UTC.
pub fn utc_now() -> String {
    let (y, mo, d, h, mi, s) = civil(now_secs());
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Unix milliseconds as RFC 3339 to the millisecond, UTC (`2026-12-02T01:41:09.123Z`): how
/// Postgres's `finished_at` reads back.
pub fn rfc3339_ms(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = civil((ms.max(0) / 1000) as u64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms.max(0) % 1000
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates_are_right() {
        assert_eq!(super::civil(0), (1970, 1, 1, 0, 0, 0));
        // 2026-11-22T19:30:05Z
        assert_eq!(super::civil(1_795_375_805), (2026, 11, 22, 19, 30, 5));
        // A leap day.
        assert_eq!(super::civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(
            super::rfc3339_ms(1_795_375_805_007),
            "2026-11-22T19:30:05.007Z"
        );
    }
}
