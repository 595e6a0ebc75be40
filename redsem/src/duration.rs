//! Durations as people write them on a command line (`250ms`, `1.5s`, `1h30m`, `100d`),
//! read for `--timeout`, `--lease` and `--grace`, and written back the same way in
//! redsem's messages.

use std::time::Duration;

/// The units a duration may use, longest first.
const UNITS: [(&str, f64); 5] = [
    ("d", 86_400.0),
    ("h", 3_600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
];

/// What every message about an unreadable duration ends with.
const HINT: &str = "use a duration such as 250ms, 1.5s, 90s, 30m, 1h30m or 100d";

/// `250ms`, `1.5s`, `90s`, `30m`, `1h30m`, `100d`: numbers each with a unit (ms, s, m, h,
/// d), or a plain number of seconds.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("an empty duration: {HINT}"));
    }
    let seconds = if number_len(text) == text.len() {
        number(text).ok_or_else(|| format!("{text:?}: {HINT}"))?
    } else {
        compound_seconds(text)?
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// The seconds in `text`, a run of numbers each followed by its unit (`1h30m`).
fn compound_seconds(text: &str) -> Result<f64, String> {
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let (digits, after) = rest.split_at(number_len(rest));
        let value = number(digits).ok_or_else(|| format!("{text:?}: {HINT}"))?;
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        seconds += value * seconds_per(unit, text)?;
        rest = after;
    }
    Ok(seconds)
}

/// How many seconds one `unit` is; `text` (the whole duration) is for the message.
fn seconds_per(unit: &str, text: &str) -> Result<f64, String> {
    UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, scale)| *scale)
        .ok_or_else(|| {
            if unit.is_empty() {
                format!("{text:?}: a number without a unit; {HINT}")
            } else {
                format!("unknown unit {unit:?} in {text:?}: use ms, s, m, h or d")
            }
        })
}

/// The length of the number at the start of `text` (its digits and dots).
fn number_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len())
}

/// `digits` (digits and dots only) as a number; `None` for nothing, a lone dot, or two dots.
fn number(digits: &str) -> Option<f64> {
    if digits.is_empty() || digits == "." {
        return None;
    }
    digits.parse().ok()
}

/// A duration as a person writes it, in the units [`parse`] reads: `0s`, `250ms`, `1.5s`,
/// `1m30s`, `1h30m`, `100d` (and `20µs` below a millisecond, which only redsem writes).
pub(crate) fn human(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    if duration < Duration::from_millis(1) {
        return format!("{}µs", duration.as_micros());
    }
    if duration < Duration::from_secs(1) {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    let mut out = String::new();
    for (value, unit) in [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
    ] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    out.push_str(&seconds_part(secs % 60, duration.subsec_millis()));
    out
}

/// The seconds of a [`human`] duration: `1.25s`, `30s`, or nothing for none.
fn seconds_part(secs: u64, millis: u32) -> String {
    if millis > 0 {
        let fraction = format!("{millis:03}");
        format!("{secs}.{}s", fraction.trim_end_matches('0'))
    } else if secs > 0 {
        format!("{secs}s")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        assert_eq!(parse("500ms"), Ok(ms(500)));
        assert_eq!(parse("250ms"), Ok(ms(250)));
        assert_eq!(parse("30s"), Ok(secs(30)));
        assert_eq!(parse("90s"), Ok(secs(90)));
        assert_eq!(parse("1.5s"), Ok(ms(1500)));
        assert_eq!(parse("2"), Ok(secs(2)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5m"), Ok(secs(90)));
        assert_eq!(parse("1h"), Ok(secs(3600)));
        assert_eq!(parse("1h30m"), Ok(secs(5400)));
        assert_eq!(parse("1m30s"), Ok(secs(90)));
        assert_eq!(parse("1s500ms"), Ok(ms(1500)));
        assert_eq!(parse("100d"), Ok(secs(100 * 86_400)));
        assert_eq!(parse("2d12h"), Ok(secs(60 * 3600)));
        for bad in [
            "", "soon", "5 days", "-1s", "1x", "1h30", ".s", "s", "1..5s", "ms5",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse("3w").unwrap_err().contains("use ms, s, m, h or d"));
    }

    #[test]
    fn prints_durations_humanly() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(ms(250)), "250ms");
        assert_eq!(human(ms(1500)), "1.5s");
        assert_eq!(human(ms(1250)), "1.25s");
        assert_eq!(human(secs(10)), "10s");
        assert_eq!(human(secs(90)), "1m30s");
        assert_eq!(human(secs(5400)), "1h30m");
        assert_eq!(human(secs(86_400)), "1d");
        assert_eq!(human(secs(100 * 86_400)), "100d");
        assert_eq!(human(Duration::from_micros(20)), "20µs");
        // What is printed reads back as the same duration.
        for d in [ms(250), ms(1500), secs(90), secs(5400), secs(100 * 86_400)] {
            assert_eq!(parse(&human(d)), Ok(d));
        }
    }
}
