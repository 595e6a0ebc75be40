//! The subcommands that look inside a semaphore and fix it by hand: `status`,
//! `set-permits`, `release` and `delete`. Each prints what it did on stdout; the caller
//! reports an error.

use redis_semaphore::{AsyncSemaphore, Error, Holder};

use crate::explain::plural;

/// A handle on the stored semaphore `name` (`Error::NotFound` if there is none).
async fn open(urls: &[String], name: &str) -> Result<AsyncSemaphore, Error> {
    AsyncSemaphore::open(name).masters(urls).build().await
}

/// `redsem status`: the count, what is available, and every holder, as a table or JSON.
pub(crate) async fn status(urls: &[String], name: &str, json: bool) -> Result<(), Error> {
    let sem = open(urls, name).await?;
    let holders = sem.holders().await?;
    let available = sem.value().await?;
    if json {
        println!("{}", status_json(&sem, available, &holders));
    } else {
        print!("{}", status_table(&sem, available, &holders));
    }
    Ok(())
}

/// `redsem set-permits`: a new count for everyone.
pub(crate) async fn set_permits(urls: &[String], name: &str, permits: u32) -> Result<(), Error> {
    let sem = open(urls, name).await?;
    let before = sem.initial_value();
    sem.set_permits(permits).await?;
    println!("{name}: {before} -> {permits} permits");
    Ok(())
}

/// `redsem release --id`: takes a permit from its holder. Nothing to release is no failure.
pub(crate) async fn release(urls: &[String], name: &str, id: &str) -> Result<(), Error> {
    let sem = match open(urls, name).await {
        Ok(sem) => sem,
        Err(Error::NotFound { .. }) => {
            println!("no semaphore {name}; nothing released");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match sem.release_holder(id).await? {
        0 => println!(
            "{name}: no permit {id}; nothing released (`redsem status {name}` lists the holders)"
        ),
        n => println!("{name}: released {id} ({n} slot{})", plural(n as usize)),
    }
    Ok(())
}

/// `redsem delete`: the semaphore and everything stored with it. Nothing to delete is no
/// failure.
pub(crate) async fn delete(urls: &[String], name: &str) -> Result<(), Error> {
    let deleted = match open(urls, name).await {
        Ok(sem) => sem.delete().await?,
        Err(Error::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    if deleted {
        println!("{name}: deleted");
    } else {
        println!("no semaphore {name}; nothing deleted");
    }
    Ok(())
}

/// `status` for people: a summary line, then a row per holder.
fn status_table(sem: &AsyncSemaphore, available: u32, holders: &[Holder]) -> String {
    let mut out = format!(
        "{}: {} permit{}, {available} available, {} holder{} ({})\n",
        sem.name(),
        sem.initial_value(),
        plural(sem.initial_value() as usize),
        holders.len(),
        plural(holders.len()),
        if sem.bounded() {
            "bounded"
        } else {
            "unbounded"
        },
    );
    if holders.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "{:<10} {:<18} {:>10} {:>8}  {}\n",
        "SLOTS", "TOKEN", "LEASE LEFT", "MASTERS", "ID"
    ));
    for holder in holders {
        out.push_str(&holder_row(holder));
    }
    out
}

/// One holder's row of [`status_table`]. The lease left is the shortest on any master.
fn holder_row(holder: &Holder) -> String {
    let slots = if holder.slots.is_empty() {
        "-".to_string()
    } else {
        holder
            .slots
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let left = holder
        .masters
        .iter()
        .map(|m| m.lease_left)
        .min()
        .unwrap_or_default();
    format!(
        "{:<10} {:<18} {:>9.1}s {:>8}  {}\n",
        slots,
        holder.fencing_token,
        left.as_secs_f64(),
        holder.masters.len(),
        holder.id
    )
}

/// `status --json` for scripts: the same facts, each master's share of a holder included.
fn status_json(sem: &AsyncSemaphore, available: u32, holders: &[Holder]) -> serde_json::Value {
    serde_json::json!({
        "name": sem.name(),
        "permits": sem.initial_value(),
        "bounded": sem.bounded(),
        "available": available,
        "holders": holders.iter().map(|h| serde_json::json!({
            "id": h.id,
            "slots": h.slots,
            "fencing_token": h.fencing_token,
            "masters": h.masters.iter().map(|m| serde_json::json!({
                "master": m.master,
                "slots": m.slots,
                "lease_left_ms": u64::try_from(m.lease_left.as_millis()).unwrap_or(u64::MAX),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
