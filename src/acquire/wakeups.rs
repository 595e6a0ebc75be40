//! [`Wakeups`]: the wake-up listeners of a handle's waiter line, held by its head.
//!
//! Only the head of the line (the waiter holding the line's lock) asks the masters and
//! listens; when it leaves, the next head takes the listeners over with their receivers, so
//! a wake-up published between two heads is not lost, and with the stamps of the line's
//! last answered request, so a wake-up older than what that request saw is ignored.

use futures_util::future::select_all;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::quorum::Quorum;
use crate::wake::{self, Listener, Named, Wake};

/// What the head of a handle's waiter line listens with, handed from head to head.
#[derive(Debug, Default)]
pub(crate) struct Wakeups {
    /// Wake-up listeners on every master, made at the first wait.
    listeners: Option<Vec<Listener>>,
    /// Their receivers, with their master: kept from head to head, so a wake-up published
    /// between two heads is not lost.
    receivers: Vec<(usize, broadcast::Receiver<Wake>)>,
    /// Per master, the stamp of the line's last answered request: wake-ups stamped before
    /// it are stale (that request already saw what they announce).
    seen: Vec<u64>,
    /// The outage the line's heads are riding out: when its first unanswered attempt was
    /// made, and when the latest. The next head inherits it, so that the waiters of a
    /// handle give up together, not one outage timeout after another.
    pub(crate) outage: Option<(Instant, Instant)>,
}

impl Wakeups {
    /// Listening on every master, through subscribers that are still running (one
    /// started on a runtime that has shut down since is not).
    pub(crate) fn listening(&self) -> bool {
        self.listeners
            .as_ref()
            .is_some_and(|listeners| listeners.iter().all(Listener::is_alive))
    }

    /// Listens for wake-ups on every master (confirmed by each before this returns);
    /// kept once every master has answered.
    pub(crate) async fn listen(&mut self, quorum: &Quorum) {
        let listeners = quorum.listen().await;
        self.receivers = listeners
            .iter()
            .map(|(master, listener)| (*master, listener.receiver()))
            .collect();
        if listeners.len() == quorum.len() {
            self.listeners = Some(listeners.into_iter().map(|(_, l)| l).collect());
        }
    }

    /// Records the stamps of an answered request.
    pub(crate) fn saw(&mut self, stamps: &[Option<u64>]) {
        self.seen.resize(stamps.len(), 0);
        for (seen, stamp) in self.seen.iter_mut().zip(stamps) {
            if let Some(stamp) = stamp {
                *seen = (*seen).max(*stamp);
            }
        }
    }

    fn named(&self, master: usize, wake: &str, line: &str) -> Named {
        wake::for_line(wake, line, self.seen.get(master).copied().unwrap_or(0))
    }

    /// Whether a fresh wake-up for `line` (or for anyone) arrived since it was last
    /// looked at. (A grant in it was for an earlier waiter of the line: ask.)
    pub(crate) fn woken_meanwhile(&mut self, line: &str) -> bool {
        let mut woken = false;
        for i in 0..self.receivers.len() {
            loop {
                let master = self.receivers[i].0;
                match self.receivers[i].1.try_recv() {
                    Ok(wake) => woken |= self.named(master, &wake, line) != Named::Not,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => woken = true,
                    Err(_) => break,
                }
            }
        }
        woken
    }

    /// Waits for a fresh wake-up for `line` (or for anyone), and says what it brought;
    /// never returns when nothing listens.
    pub(crate) async fn woken(&mut self, line: &str) -> Named {
        if self.receivers.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let (received, index, _) = select_all(
                self.receivers
                    .iter_mut()
                    .map(|(_, receiver)| Box::pin(receiver.recv())),
            )
            .await;
            let master = self.receivers[index].0;
            match received {
                Ok(wake) => match self.named(master, &wake, line) {
                    // Stale, or kept for other lines.
                    Named::Not => {}
                    named => return named,
                },
                // Fell behind: something was freed, try.
                Err(broadcast::error::RecvError::Lagged(_)) => return Named::Ask,
                // The subscriber is gone: the caller's timer will do.
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }
}
