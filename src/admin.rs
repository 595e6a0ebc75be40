//! Who holds a semaphore, as operators and monitoring see it: [`Holder`] and [`HeldOn`],
//! made from the held slots each master lists. The operators' methods themselves
//! (`holders`, `set_permits`, `release_holder`, `delete`, `last_error`) are the façade's,
//! in `semaphore.rs`.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Error;
use crate::quorum::Quorum;

/// A permit as the masters see it: one entry of
/// [`AsyncSemaphore::holders`](crate::AsyncSemaphore::holders).
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

/// Who holds the semaphore now, as `quorum`'s masters list the held slots: one
/// [`Holder`] per permit id, lowest slot first, with each master's view.
pub(crate) async fn holders(quorum: &Quorum) -> Result<Vec<Holder>, Error> {
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
