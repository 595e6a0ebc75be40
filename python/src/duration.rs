//! Seconds, the way Python code writes durations, to and from [`Duration`].

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Seconds as a Duration; `None` or infinity is no limit. `what` names the argument in
/// the `ValueError` for a negative or NaN value.
pub(crate) fn seconds(what: &str, secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} must be a non-negative number of seconds, got {s}"
            ))
        }),
    }
}

/// Seconds as a Python user writes them: `3.0`, `0.25`, `0.001`.
pub(crate) fn seconds_text(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s > 0.0 && s < 0.001 {
        format!("{s:e}")
    } else if s >= 10.0 {
        format!("{s:.1}")
    } else {
        let mut text = format!("{s:.3}");
        while text.ends_with('0') && !text.ends_with(".0") {
            text.pop();
        }
        text
    }
}

/// The first duration written as Rust's `Debug` does (a number, then `ns`, `µs`, `ms` or
/// `s`, as a word of its own) in `text`: its byte offset, its value and its length.
pub(crate) fn next_debug_duration(text: &str) -> Option<(usize, Duration, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        if !(starts_word && bytes[i].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        let number: Option<f64> = text[i..end].parse().ok();
        let unit = ["ns", "µs", "ms", "s"]
            .into_iter()
            .find(|unit| text[end..].starts_with(unit));
        if let (Some(number), Some(unit)) = (number, unit) {
            let after = end + unit.len();
            if bytes.get(after).is_none_or(|b| !b.is_ascii_alphanumeric()) {
                let scale = match unit {
                    "ns" => 1e-9,
                    "µs" => 1e-6,
                    "ms" => 1e-3,
                    _ => 1.0,
                };
                return Some((i, Duration::from_secs_f64(number * scale), after - i));
            }
        }
        i = end.max(i + 1);
    }
    None
}
