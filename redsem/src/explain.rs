//! redsem's errors and losses in words for the shell: the library's own messages, except
//! where the remedy at a shell differs from the remedy in code.

use redis_semaphore::{AsyncSemaphore, Error};

/// An error of `run` on semaphore `name`, with what to type next where redsem knows it.
pub(crate) fn run_error(error: &Error, name: &str) -> String {
    match error {
        Error::ConfigMismatch {
            stored_bounded: false,
            ..
        } => format!(
            "{name} is an unbounded semaphore (made by a library handle with \
             .bounded(false)), and redsem makes bounded ones: run it without --permits, to \
             take the stored configuration"
        ),
        Error::ConfigMismatch {
            stored, requested, ..
        } => format!(
            "{name} has {stored} permits, not {requested}: run it with --permits {stored} \
             (or without --permits, to take the stored count), or change the count for \
             everyone with `redsem set-permits {name} {requested}`"
        ),
        Error::NotFound { name } => format!(
            "there is no semaphore named {name:?} yet: give its count to make it, \
             `redsem run {name} --permits N -- CMD...`"
        ),
        other => other.to_string(),
    }
}

/// An error of `status`, `set-permits`, `release` or `delete`.
pub(crate) fn admin_error(error: &Error) -> String {
    match error {
        Error::NotFound { name } => format!(
            "there is no semaphore named {name:?} (the first `redsem run {name} --permits N \
             -- CMD...` makes it)"
        ),
        other => other.to_string(),
    }
}

/// Why a permit was lost: the masters did not answer its renewals, or they answered that
/// it was no longer held (released by someone else, `redsem release --id`, or expired
/// while this process was stalled).
pub(crate) fn loss_reason(sem: &AsyncSemaphore) -> String {
    match sem.last_error() {
        Some(down) => format!("its renewals went unanswered: {}", down.error),
        None => "the masters no longer hold it: released with `redsem release`, or its lease \
                 expired while redsem could not renew it"
            .to_string(),
    }
}

/// The plural ending for `n` of something: `1 permit`, `2 permits`.
pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_semaphore_is_explained_by_how_to_make_it() {
        let missing = Error::NotFound { name: "job".into() };
        assert!(run_error(&missing, "job").contains("`redsem run job --permits N -- CMD...`"));
        assert!(admin_error(&missing).contains("the first `redsem run job --permits N"));
    }

    #[test]
    fn other_errors_keep_the_librarys_message() {
        let lost = Error::PermitLost { id: "p1".into() };
        assert_eq!(run_error(&lost, "job"), lost.to_string());
        assert_eq!(admin_error(&lost), lost.to_string());
    }

    #[test]
    fn plurals() {
        assert_eq!(format!("1 permit{}", plural(1)), "1 permit");
        assert_eq!(format!("0 permit{}", plural(0)), "0 permits");
        assert_eq!(format!("2 permit{}", plural(2)), "2 permits");
    }
}
