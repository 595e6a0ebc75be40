//! [`Listeners`]: the wake-up listeners of a handle's waiter line, held by its head.
//!
//! Only the head of the line (the waiter holding the line's lock) asks the masters and
//! listens; when it leaves, the next head takes the listeners over with their receivers, so
//! a wake-up published between two heads is not lost, and with the stamps of the line's
//! last answered request, so a wake-up older than what that request saw is ignored.

use std::time::Duration;

use futures_util::future::select_all;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::quorum::Quorum;
use crate::subscriber::Listener;
use crate::subscriber::message::{self, Named, Wake};

/// How far apart a master's clock and this process's may run, as a fraction of the time
/// passed: 0.1%, twice the most NTP slews a clock (500 ppm). A clock that is stepped is
/// outside it, as it is outside every lease (docs: "What Redis must promise").
const CLOCK_RATE: f64 = 0.001;

/// What the head of a handle's waiter line listens with, handed from head to head.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    /// Wake-up listeners on every master, made at the first wait.
    listeners: Option<Vec<Listener>>,
    /// Their receivers, with their master: kept from head to head, so a wake-up published
    /// between two heads is not lost.
    receivers: Vec<(usize, broadcast::Receiver<Wake>)>,
    /// Per master, the stamp of the line's last answered request: wake-ups stamped before
    /// it are stale (that request already saw what they announce).
    seen: Vec<u64>,
    /// Per master, when that request was sent: with its stamp, the earliest a grant pushed
    /// later can have started by this process's clock ([`Listeners::started`]).
    sent: Vec<Option<Instant>>,
    /// The outage the line's heads are riding out: when its first unanswered attempt was
    /// made, and when the latest. The next head inherits it, so that the waiters of a
    /// handle give up together, not one outage timeout after another.
    pub(crate) outage: Option<(Instant, Instant)>,
}

impl Listeners {
    /// Listening on every master, through subscribers that are still running (one
    /// started on a runtime that has shut down since is not).
    pub(crate) fn listening(&self) -> bool {
        self.listeners
            .as_ref()
            .is_some_and(|listeners| listeners.iter().all(Listener::is_alive))
    }

    /// Listens for wake-ups on every master (confirmed by each before this returns): those
    /// of `line` in a fair queue, or every one (None); kept once every master has answered.
    pub(crate) async fn listen(&mut self, quorum: &Quorum, line: Option<&str>) {
        let listeners = quorum.listen(line).await;
        self.receivers = listeners
            .iter()
            .map(|(master, listener)| (*master, listener.receiver()))
            .collect();
        if listeners.len() == quorum.len() {
            self.listeners = Some(listeners.into_iter().map(|(_, l)| l).collect());
        }
    }

    /// Records the stamps of an answered request, sent at `sent`.
    pub(crate) fn saw(&mut self, stamps: &[Option<u64>], sent: Instant) {
        self.seen.resize(stamps.len(), 0);
        self.sent.resize(stamps.len(), None);
        for ((seen, at), stamp) in self.seen.iter_mut().zip(&mut self.sent).zip(stamps) {
            if let Some(stamp) = stamp
                && *stamp >= *seen
            {
                *seen = *stamp;
                *at = Some(sent);
            }
        }
    }

    /// The earliest this process's clock can have read when master `master` ran the
    /// script stamped `stamp` (µs on the master's clock): the line's last answered request
    /// to it was sent at `sent` and ran at `seen` on the master's clock, so at least
    /// `stamp - seen` of the master's time has passed since `sent`, less what the two
    /// clocks can drift apart meanwhile ([`CLOCK_RATE`]). This is what lets a waiter that
    /// slept for minutes take a pushed grant without asking: counting its lease from the
    /// request would leave nothing of it.
    fn started(&self, master: usize, stamp: u64) -> Option<Instant> {
        let sent = (*self.sent.get(master)?)?;
        let elapsed = stamp.checked_sub(self.seen[master])?;
        let elapsed = Duration::from_micros(elapsed).mul_f64(1.0 - CLOCK_RATE);
        Some(sent + elapsed)
    }

    fn named(&self, master: usize, wake: &str, line: &str) -> Named {
        message::for_line(wake, line, self.seen.get(master).copied().unwrap_or(0))
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

    /// Waits for a fresh wake-up for `line` (or for anyone), and says what it brought: for
    /// a pushed grant, with the earliest it can have started ([`Listeners::started`]). Never
    /// returns when nothing listens.
    pub(crate) async fn woken(&mut self, line: &str) -> (Named, Option<Instant>) {
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
                    named => {
                        let started = match &named {
                            Named::Granted { stamp, .. } => self.started(master, *stamp),
                            _ => None,
                        };
                        return (named, started);
                    }
                },
                // Fell behind: something was freed, try.
                Err(broadcast::error::RecvError::Lagged(_)) => return (Named::Ask, None),
                // The subscriber is gone: the caller's timer will do.
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }
}
