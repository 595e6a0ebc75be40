//! The quorum's operations besides the acquire: renew (a permit's lease; it also settles an
//! acquire, for [`acquire`](super::acquire)), release, status, holders, and the operators'
//! changes (resize, grow, delete).

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;

use super::decide::{self, Renewal};
use super::{Answers, Leave, Quorum};
use crate::error::Error;
use crate::lua::{self, Cursor, HeldPage, HeldSlot, ReleaseArgs, RenewArgs, Status, millis};

impl Quorum {
    /// Runs the renew script on masters `which` (a renewal, or an acquire's settle); each
    /// reply is the slots held afterwards.
    pub(super) async fn renew_on(
        &self,
        which: impl IntoIterator<Item = usize>,
        id: &str,
        slots: &[u32],
        token: u64,
        lease: Duration,
        line: &str,
    ) -> Vec<(usize, Result<Vec<u32>, Error>)> {
        let args = RenewArgs {
            caller: self.caller(),
            id,
            lease_ms: millis(lease),
            token,
            claim: self.several(),
            line,
            slots,
        }
        .args();
        self.on::<Vec<i64>>(which, &lua::RENEW, &args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply.and_then(|r| {
                    lua::slots_of(&r).ok_or_else(|| self.unexpected(i, lua::RENEW.file, &r))
                });
                (i, parsed)
            })
            .collect()
    }

    /// Renews the lease of permit `id` on every master. `Ok(true)`: each of its slots is
    /// held on a majority again. `Ok(false)`: the answers rule that out, the permit is lost.
    /// An error: too few masters answered to tell; try again before the deadline.
    ///
    /// On several masters the renewal also takes the permit's slots where they are free,
    /// so a permit granted on a bare majority spreads to every master and survives the
    /// loss of one more. That is safe while the permit holds a majority of each slot: no
    /// other id can, so no other permit needs the slot anywhere.
    pub(crate) async fn renew(
        &self,
        id: &str,
        slots: &[u32],
        token: u64,
        lease: Duration,
        current: impl Fn() -> Vec<u32>,
    ) -> Result<bool, Error> {
        let replies = self
            .renew_on(0..self.masters.len(), id, slots, token, lease, "")
            .await;
        let answers = Answers::sort(replies);
        let holding: Vec<&[u32]> = answers.ok.iter().map(|(_, h)| h.as_slice()).collect();
        // Judged on the slots the permit holds now: a partial release may have overtaken
        // this renewal on some master.
        let verdict = decide::judge_renewal(
            self.majority(),
            &current(),
            &holding,
            answers.failures.len(),
        );
        match verdict {
            Renewal::Held => Ok(true),
            Renewal::Lost => Ok(false),
            Renewal::Unknown => Err(self.no_quorum(answers.failures)),
        }
    }

    /// Frees `slots` of `id` (all of them when empty; no permit at all when `id` is empty)
    /// on every master, and does what `leave` says with the acquire's waiter line; returns
    /// the most that any master freed (0: no master knew the permit any more).
    pub(crate) async fn release(
        &self,
        id: &str,
        leave: &Leave,
        slots: &[u32],
    ) -> Result<u32, Error> {
        let (line, leave) = leave.args();
        let args = ReleaseArgs {
            caller: self.caller(),
            id,
            line,
            leave,
            slots,
        }
        .args();
        let replies = self.on_all::<u32>(&lua::RELEASE, &args).await;
        Ok(self
            .agreed(replies)?
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0))
    }

    /// What the semaphore looks like ([`decide::merge_status`] on several masters, which
    /// needs every held slot: a master that holds more than a page of them is asked for
    /// the rest a page at a time).
    pub(crate) async fn status(&self) -> Result<Status, Error> {
        let args = lua::status_args(self.caller(), self.several());
        let replies = self
            .parsed(&lua::STATUS, &args, |_, r| Status::parse(&lua::ints(r)?))
            .await;
        let replies = join_all(replies.into_iter().map(|(i, reply)| async move {
            let mut status = match reply {
                Ok(status) => status,
                Err(error) => return (i, Err(error)),
            };
            if let Some(after) = status.more.take() {
                match self.held_pages(i, Some(after), false).await {
                    Ok(rest) => status.slots.extend(rest.into_iter().map(|held| held.slot)),
                    Err(error) => return (i, Err(error)),
                }
            }
            (i, Ok(status))
        }))
        .await;
        let mut statuses: Vec<Status> = self.agreed(replies)?.into_iter().map(|(_, s)| s).collect();
        if !self.several() {
            return Ok(statuses.remove(0));
        }
        Ok(decide::merge_status(self.majority(), &statuses))
    }

    /// Every held slot on every master that answered.
    pub(crate) async fn holders(&self) -> Result<Vec<HeldSlot>, Error> {
        let replies = join_all(
            (0..self.masters.len())
                .map(|i| async move { (i, self.held_pages(i, None, true).await) }),
        )
        .await;
        Ok(self
            .agreed(replies)?
            .into_iter()
            .flat_map(|(_, held)| held)
            .collect())
    }

    /// The slots held on master `i` after `after` (None: all of them), a page per request
    /// (`holders.lua`), each slot once; with its holder when `detail`. A page is bounded
    /// (`lua::bound::PAGE`) because a script blocks the whole server while it runs. The
    /// pages are not one snapshot: a slot renewed between two pages may be listed twice
    /// (kept once here), and the requests stop after twice as many pages as the slots held
    /// at the first one make, however busy the semaphore.
    async fn held_pages(
        &self,
        i: usize,
        mut after: Option<Cursor>,
        detail: bool,
    ) -> Result<Vec<HeldSlot>, Error> {
        let width = if detail { 4 } else { 1 };
        let mut held = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut pages_left: Option<u64> = None;
        loop {
            let args = lua::holders_args(self.caller(), detail, after);
            let reply = self
                .on::<Vec<redis::Value>>([i], &lua::HOLDERS, &args)
                .await
                .remove(0)
                .1?;
            let page = HeldPage::parse(&reply, width)
                .ok_or_else(|| self.unexpected(i, lua::HOLDERS.file, &reply))?;
            for entry in page.entries {
                let slot = HeldSlot::parse(i, entry)
                    .ok_or_else(|| self.unexpected(i, lua::HOLDERS.file, &reply))?;
                if seen.insert(slot.slot) {
                    held.push(slot);
                }
            }
            let left = pages_left.get_or_insert(2 * page.held / u64::from(lua::bound::PAGE) + 2);
            *left -= 1;
            match page.next {
                Some(next) if *left > 0 => after = Some(next),
                _ => return Ok(held),
            }
        }
    }

    /// Sets the stored permit count on every master, and this handle's.
    pub(crate) async fn resize(&self, n: u32) -> Result<u32, Error> {
        let replies = self
            .on_all::<u32>(&lua::RESIZE, &lua::count_args(self.caller(), n))
            .await;
        let answers = self.agreed(replies)?;
        self.permits.store(n, Ordering::Relaxed);
        Ok(answers.iter().map(|(_, l)| *l).max().unwrap_or(n))
    }

    /// Deletes the semaphore's keys on every master; true if a majority had it.
    pub(crate) async fn delete(&self) -> Result<bool, Error> {
        let replies = self.on_all::<u32>(&lua::DELETE, &[]).await;
        let existed = self
            .agreed(replies)?
            .iter()
            .filter(|(_, e)| *e == 1)
            .count();
        Ok(existed >= self.majority().needed())
    }

    /// Adds `n` permits (an unbounded semaphore released more than it held) on every
    /// master; returns the highest new limit.
    pub(crate) async fn grow(&self, n: u32) -> Result<u32, Error> {
        let replies = self
            .on_all::<u32>(&lua::GROW, &lua::count_args(self.caller(), n))
            .await;
        Ok(self
            .agreed(replies)?
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(0))
    }
}
