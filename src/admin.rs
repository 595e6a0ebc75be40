//! What operators and monitoring need: who holds a semaphore, a change of its permit count,
//! the release of someone else's permit, deleting it, and the masters' failures.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Error;
use crate::quorum::Leave;
use crate::semaphore::AsyncSemaphore;

/// A permit as the masters see it: one entry of [`AsyncSemaphore::holders`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The permit's id ([`Permit::id`](crate::Permit::id)).
    pub id: String,
    /// The slots it holds on a majority of the masters (so the slots it keeps others out
    /// of), lowest first. Empty for a stray: a grant on a minority of masters that is
    /// about to be given back or to expire.
    pub slots: Vec<u32>,
    /// Its fencing token (the highest any master recorded).
    pub fencing_token: u64,
    /// What each master that answered holds for it.
    pub masters: Vec<HeldOn>,
}

/// One master's view of a [`Holder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeldOn {
    /// The master, as `host:port`.
    pub master: String,
    /// The slots it holds for the permit there.
    pub slots: Vec<u32>,
    /// Time left on the permit's lease there, by that master's clock (a live holder renews
    /// it every lease / 3).
    pub lease_left: Duration,
}

impl AsyncSemaphore {
    /// Who holds the semaphore now, lowest slot first, with each master's view. Needs a
    /// majority of the masters to answer.
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// for holder in sem.holders().await? {
    ///     println!("{} holds {:?} (token {})", holder.id, holder.slots, holder.fencing_token);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn holders(&self) -> Result<Vec<Holder>, Error> {
        let quorum = &self.core().quorum;
        let held = quorum.holders().await?;
        let mut holders: Vec<Holder> = Vec::new();
        // Each holder's place in `holders`: thousands of holders are listed in linear time.
        let mut index: HashMap<String, usize> = HashMap::new();
        for entry in held {
            let at = *index.entry(entry.id.clone()).or_insert_with(|| {
                holders.push(Holder {
                    id: entry.id.clone(),
                    slots: Vec::new(),
                    fencing_token: 0,
                    masters: Vec::new(),
                });
                holders.len() - 1
            });
            let holder = &mut holders[at];
            holder.fencing_token = holder.fencing_token.max(entry.token);
            let master = quorum.master_name(entry.master);
            match holder.masters.iter_mut().find(|m| m.master == master) {
                Some(on) => {
                    on.slots.push(entry.slot);
                    on.lease_left = on.lease_left.min(entry.lease_left);
                }
                None => holder.masters.push(HeldOn {
                    master: master.to_string(),
                    slots: vec![entry.slot],
                    lease_left: entry.lease_left,
                }),
            }
        }
        for holder in &mut holders {
            for on in &mut holder.masters {
                on.slots.sort_unstable();
            }
            let mut slots: Vec<u32> = holder
                .masters
                .iter()
                .flat_map(|m| m.slots.iter().copied())
                .collect();
            slots.sort_unstable();
            slots.dedup();
            holder.slots = slots
                .into_iter()
                .filter(|slot| {
                    let on = holder.masters.iter().filter(|m| m.slots.contains(slot));
                    on.count() >= quorum.needed()
                })
                .collect();
            holder.masters.sort_by(|a, b| a.master.cmp(&b.master));
        }
        holders.sort_by_key(|h| (h.slots.first().copied().unwrap_or(u32::MAX), h.id.clone()));
        Ok(holders)
    }

    /// Changes the semaphore's permit count to `n`, for everyone: handles built with the
    /// old count get [`Error::ConfigMismatch`] at their next call, this one takes the new
    /// count. Lowering it does not take permits away: holders past the new count keep
    /// their permits until they release them, and only slots below it are granted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0 or a count past `u32::MAX` with the permits added
    /// by unbounded releases;
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the change may or may not have been made on each master,
    /// and this handle keeps its old count until a call completes: call it again.
    pub async fn set_permits(&self, n: u32) -> Result<(), Error> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore needs at least 1 permit".into(),
            ));
        }
        self.core().quorum.resize(n).await?;
        Ok(())
    }

    /// Releases the permit with id `id`, whoever holds it (an operator's fix for a holder
    /// that is stuck but still renewing). Returns the number of slots freed (0: no such
    /// permit). The holder finds its permit lost at its next renewal.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the release may or may not have been done: call it again
    /// (releasing a permit that is gone frees nothing).
    pub async fn release_holder(&self, id: &str) -> Result<u32, Error> {
        self.core().quorum.release(id, &Leave::Stay, &[]).await
    }

    /// Deletes the semaphore: its stored count, its token counter and every lease. Holders
    /// lose their permits at their next renewal; a handle's next call creates the
    /// semaphore again with its own count. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, some masters may have deleted the semaphore and others
    /// not: call it again.
    pub async fn delete(&self) -> Result<bool, Error> {
        self.core().quorum.delete().await
    }

    /// The latest failure of a master that has not answered since, or `None` when every
    /// master answered its latest request.
    ///
    /// This is how to tell "no permit" from "no server" where the API cannot: with
    /// [`raise_on_redis_errors(false)`](crate::Builder::raise_on_redis_errors) (the default, as
    /// in pottery-semaphore) a [`try_acquire`](Self::try_acquire) on an unreachable master
    /// returns `Ok(None)`, the same as when every permit is held, and a waiting acquire
    /// keeps trying (up to the [outage timeout](crate::Builder::outage_timeout)). Every request of
    /// the handle counts: acquires, renewals, background releases, [`value`](Self::value).
    /// A master's entry is cleared by its next answer. On several masters this is the
    /// most recent of [`master_errors`](Self::master_errors).
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// match sem.try_acquire().await? {
    ///     Some(permit) => { /* work */ drop(permit) }
    ///     None => match sem.last_error() {
    ///         Some(down) => eprintln!("no answer for {:?}: {}", down.since.elapsed().unwrap_or_default(), down.error),
    ///         None => eprintln!("every permit is held"),
    ///     },
    /// }
    /// # Ok(()) }
    /// ```
    pub fn last_error(&self) -> Option<crate::MasterError> {
        self.master_errors().into_iter().next()
    }

    /// Every master that failed and has not answered since, the latest failure first;
    /// empty when all of them answer. See [`last_error`](Self::last_error).
    pub fn master_errors(&self) -> Vec<crate::MasterError> {
        self.core().quorum.master_errors()
    }
}
