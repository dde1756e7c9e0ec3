//! The `date` response header, formatted once per second per thread.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; LEN],
}

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(Cached { second: u64::MAX, text: [b' '; LEN] }) };
}

/// Appends the current date (IMF-fixdate) to `out`.
pub(crate) fn append(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.second != now {
            cache.text = format(now);
            cache.second = now;
        }
        out.extend_from_slice(&cache.text);
    });
}

/// Formats seconds since the Unix epoch as an IMF-fixdate (RFC 9110 §5.6.7).
fn format(secs: u64) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = [0u8; LEN];
    text[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    text[3..5].copy_from_slice(b", ");
    two(&mut text[5..7], day);
    text[7] = b' ';
    text[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    text[11] = b' ';
    let y = year % 10_000;
    two(&mut text[12..14], y / 100);
    two(&mut text[14..16], y % 100);
    text[16] = b' ';
    two(&mut text[17..19], of_day / 3600);
    text[19] = b':';
    two(&mut text[20..22], of_day / 60 % 60);
    text[22] = b':';
    two(&mut text[23..25], of_day % 60);
    text[25..].copy_from_slice(b" GMT");
    text
}

fn two(out: &mut [u8], n: u64) {
    out[0] = b'0' + (n / 10 % 10) as u8;
    out[1] = b'0' + (n % 10) as u8;
}

/// Year, month (1-12) and day (1-31) of a day count since 1970-01-01
/// (proleptic Gregorian calendar, counting in 400-year eras from March 1st).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(&format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format(1_798_761_599), b"Thu, 31 Dec 2026 23:59:59 GMT");
    }

    #[test]
    fn appends() {
        let mut out = Vec::new();
        append(&mut out);
        assert_eq!(out.len(), LEN);
        assert!(out.ends_with(b" GMT"));
    }
}
