//! The `Date` header value (RFC 9110 §5.6.7 IMF-fixdate), formatted once per
//! second rather than per response.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;

/// The current `Date` value, refreshed by the server on a 1 s timer.
#[derive(Debug, Clone)]
pub struct DateCache {
    value: [u8; DATE_LEN],
    second: u64,
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    /// A cache holding the current time.
    pub fn new() -> Self {
        let mut c = DateCache {
            value: [b' '; DATE_LEN],
            second: u64::MAX,
        };
        c.refresh();
        c
    }

    /// Re-formats if the wall-clock second changed.
    pub fn refresh(&mut self) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.second {
            self.second = secs;
            self.value = format_imf_fixdate(secs);
        }
    }

    /// A cache holding `second` (seconds since the Unix epoch); `refresh`
    /// moves it to the present.
    pub fn at(second: u64) -> Self {
        DateCache {
            value: format_imf_fixdate(second),
            second,
        }
    }

    /// The formatted value.
    pub fn value(&self) -> &[u8; DATE_LEN] {
        &self.value
    }

    /// The second the value shows: equal seconds, equal values (one
    /// compare instead of 29 bytes).
    pub fn second(&self) -> u64 {
        self.second
    }
}

/// The proleptic Gregorian (year, month, day) `days` after 1970-01-01
/// (Howard Hinnant's algorithm: eras of 400 years).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
pub fn format_imf_fixdate(secs: u64) -> [u8; DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (hour, minute, second) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (year, month, day) = civil_from_days(days as i64);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |v: u64, at: &mut [u8]| {
        at[0] = b'0' + (v / 10) as u8;
        at[1] = b'0' + (v % 10) as u8;
    };
    two(day as u64, &mut out[5..7]);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    let y = year.clamp(0, 9999) as u64;
    two(y / 100, &mut out[12..14]);
    two(y % 100, &mut out[14..16]);
    two(hour, &mut out[17..19]);
    two(minute, &mut out[20..22]);
    two(second, &mut out[23..25]);
    out
}

/// Seconds since the Unix epoch of an IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`); `None` for anything else (the
/// obsolete formats too: a validator that does not parse is ignored).
pub fn parse_imf_fixdate(text: &[u8]) -> Option<u64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let t: &[u8; DATE_LEN] = text.trim_ascii().try_into().ok()?;
    if &t[3..5] != b", " || &t[25..] != b" GMT" || t[7] != b' ' || t[11] != b' ' {
        return None;
    }
    let num = |s: &[u8]| -> Option<i64> {
        s.iter().try_fold(0i64, |n, b| {
            b.is_ascii_digit().then(|| n * 10 + i64::from(b - b'0'))
        })
    };
    let day = num(&t[5..7])?;
    let month = MONTHS.iter().position(|m| &t[8..11] == *m)? as i64 + 1;
    let year = num(&t[12..16])?;
    if t[16] != b' ' || t[19] != b':' || t[22] != b':' {
        return None;
    }
    let (h, m, s) = (num(&t[17..19])?, num(&t[20..22])?, num(&t[23..25])?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 || year < 1970 {
        return None;
    }
    // Days since 1970-01-01 from a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + h * 3600 + m * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::{format_imf_fixdate, parse_imf_fixdate};

    #[test]
    fn parses_what_it_formats() {
        for secs in [0, 784_111_777, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_imf_fixdate(&format_imf_fixdate(secs)), Some(secs));
        }
        assert_eq!(
            parse_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_imf_fixdate(b"Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate(b"Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }

    #[test]
    fn formats_known_dates() {
        let cases: [(u64, &str); 4] = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_795_392_000, "Mon, 23 Nov 2026 00:00:00 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                std::str::from_utf8(&format_imf_fixdate(secs)).unwrap(),
                want
            );
        }
    }
}
