//! The library's [`Error`] as the Python layer receives it, said in Python's terms.
//!
//! Errors cross as `NativeError(kind, message, details)`; the Python layer turns them into
//! its public exceptions (`SemaphoreError`, `BoundedSemaphoreError`, ...), so that their
//! hierarchy lives in one place, in Python. An invalid argument is a `ValueError` at once.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use redis_semaphore::{Error, MasterError};

use crate::duration::{next_debug_duration, seconds_text};

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the Rust library: args are (kind, message, details)."
);

/// `True` or `False`, as Python writes them.
fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The error as the Python layer receives it: `kind` picks the public exception, and
/// `details` become its attributes.
pub(crate) fn native_error(py: Python<'_>, error: Error) -> PyErr {
    if let Error::InvalidArgument(_) = &error {
        return PyValueError::new_err(python_message(&error));
    }
    let details = PyDict::new(py);
    let kind = match &error {
        Error::Bounded { held, requested } => {
            let _ = details.set_item("held", held);
            let _ = details.set_item("requested", requested);
            "bounded"
        }
        Error::PermitLost { id } => {
            let _ = details.set_item("id", id);
            "permit_lost"
        }
        Error::ConfigMismatch {
            stored,
            requested,
            stored_bounded,
            requested_bounded,
            ..
        } => {
            let _ = details.set_item("stored", stored);
            let _ = details.set_item("requested", requested);
            let _ = details.set_item("stored_bounded", stored_bounded);
            let _ = details.set_item("requested_bounded", requested_bounded);
            "config_mismatch"
        }
        Error::NotFound { .. } => "not_found",
        Error::Outage { .. } => "outage",
        Error::Redis { .. } => "redis",
        Error::Quorum { .. } => "quorum",
        Error::WrongType { .. } => "wrong_type",
        _ => "other",
    };
    let message = match &error {
        // The Rust text names Rust functions (`AsyncSemaphore::open`, `set_permits`) that
        // this package does not have: say what a Python caller can do.
        Error::ConfigMismatch {
            stored,
            requested,
            stored_bounded,
            requested_bounded,
            ..
        } => format!(
            "the semaphore exists with {stored} permits (bounded={}), this handle asked for \
             {requested} (bounded={}); pass value={stored}, bounded={} to use it as it is, or \
             change the stored count for every handle with `redsem set-permits <key> \
             {requested}`",
            py_bool(*stored_bounded),
            py_bool(*requested_bounded),
            py_bool(*stored_bounded),
        ),
        _ => python_message(&error),
    };
    NativeError::new_err((kind, message, details.unbind()))
}

/// `last_error()`'s text: the master, its failure, and how many in a row.
pub(crate) fn last_error_text(last: &MasterError) -> String {
    // An `Error::Redis` names its master itself: say the address once.
    let error = match &last.error {
        Error::Redis { source, .. } => python_text(&source.to_string()),
        other => python_message(other),
    };
    let failures = match last.failures {
        1 => "1 failure".to_string(),
        n => format!("{n} failures in a row"),
    };
    format!("{}: {error} ({failures})", last.master)
}

/// The error's message in Python's terms: seconds as numbers, keyword arguments rather than
/// the Rust builder's methods.
fn python_message(error: &Error) -> String {
    match error {
        Error::Outage { lasted, error } => format!(
            "gave up after {} seconds without an answer from the masters (the outage \
             timeout: outage_timeout=, None to wait through any outage); the last error: {}",
            seconds_text(*lasted),
            python_message(error)
        ),
        other => python_text(&other.to_string()),
    }
}

/// The library's words for Rust callers, said for Python ones: the builder's methods as
/// keyword arguments, and durations as Rust's `Debug` writes them (`200ms`, `3.001026684s`)
/// as seconds (`0.2 seconds`).
fn python_text(text: &str) -> String {
    let text = text
        .replace("Builder::request_timeout", "request_timeout=")
        .replace("Builder::outage_timeout", "outage_timeout=")
        .replace("Builder::lease", "lease=")
        .replace(".bounded(false)", "bounded=False")
        .replace(".bounded(true)", "bounded=True")
        .replace("AsyncSemaphore::open", "Semaphore.open");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some((at, duration, len)) = next_debug_duration(rest) {
        out.push_str(&rest[..at]);
        out.push_str(&seconds_text(duration));
        out.push_str(" seconds");
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}
