//! The wake-up subscriber: the wake-ups the scripts publish, received on one subscriber
//! connection per master per process.
//!
//! A script that frees a slot wakes the queued waiter lines (one per handle) the free
//! slots are kept for, each on its own process's channel, `semaphore:{name}:wake:<process>`
//! (a line's id starts with its process's, [`line_id`](message::line_id)): a hand-off is
//! one message to one process, however many processes wait, and a script tells a dead
//! process (its subscription gone) from a live one with `PUBSUB NUMSUB`. Waiters outside
//! the queue (an unfair handle's) listen on `semaphore:{name}:wake`, where a message naming
//! no line means anyone may try.
//!
//! Every handle of every semaphore in this process that talks to the same master shares one
//! [`Subscriber`]: one connection and one task, which hands each message to the lines it
//! names only (so a process of a thousand waiting handles wakes one of them). After the
//! connection drops, the task reconnects, subscribes again, and wakes every waiter, since
//! messages may have been missed meanwhile.
//!
//! The connection's task is in [`task`]; what a message says to a line, and the ids of
//! lines and processes it is written with, in [`message`].

mod task;

pub(crate) mod message;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::address::Address;
use message::Wake;

/// How many wake-ups a slow waiter may fall behind before it just tries again.
const BACKLOG: usize = 64;

/// Subscribers by master, for the whole process.
static SUBSCRIBERS: LazyLock<Mutex<HashMap<String, Weak<Subscriber>>>> =
    LazyLock::new(Default::default);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Command {
    Subscribe(String, oneshot::Sender<redis::RedisResult<()>>),
    Unsubscribe(String),
}

/// A channel's local listeners, by waiter line; the line `""` hears every message (the
/// waiters of an unfair handle, which are in no queue).
struct Entry {
    lines: HashMap<String, (broadcast::Sender<Wake>, usize)>,
    /// Whether the server confirmed the subscription (None: not yet). The lines of a
    /// process share their channel, so only the first to listen subscribes.
    subscribed: watch::Sender<Option<bool>>,
}

impl Default for Entry {
    fn default() -> Self {
        Entry {
            lines: HashMap::new(),
            subscribed: watch::channel(None).0,
        }
    }
}

impl Entry {
    /// Hands `wake` to the lines it names (and to those that hear everything); a message
    /// that names no line goes to every listener.
    fn dispatch(&self, wake: &str) {
        let mut named = wake
            .split(' ')
            .skip(1)
            .filter(|entry| !entry.is_empty())
            .map(|entry| entry.split_once('=').map_or(entry, |(line, _)| line))
            .peekable();
        if named.peek().is_none() {
            for (sender, _) in self.lines.values() {
                let _ = sender.send(Wake::from(wake));
            }
            return;
        }
        let wake = Wake::from(wake);
        for line in named.chain([""]) {
            if let Some((sender, _)) = self.lines.get(line) {
                let _ = sender.send(Arc::clone(&wake));
            }
        }
    }
}

/// Channels with their local listeners, shared by the subscriber task and the handles.
type Channels = Arc<Mutex<HashMap<String, Entry>>>;

/// One master's subscriber connection, shared by every handle in this process. The task
/// behind it ends when the last handle lets go.
pub(crate) struct Subscriber {
    commands: mpsc::UnboundedSender<Command>,
    channels: Channels,
    timeout: Duration,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}

impl Subscriber {
    /// The subscriber for the master at `address`, started on the current runtime if there
    /// is none yet (or the runtime of the last one has stopped).
    pub(crate) fn for_address(address: &Address, timeout: Duration) -> Arc<Subscriber> {
        let key_of = |info: &redis::ConnectionInfo| {
            format!(
                "{}/{}",
                info.addr(),
                info.redis_settings().username().unwrap_or_default()
            )
        };
        let key = match address {
            Address::Server(client) => key_of(client.get_connection_info()),
            Address::Sentinel(service) => format!("sentinel {}", service.label()),
            #[cfg(feature = "cluster")]
            Address::Cluster(nodes) => {
                let nodes: Vec<String> = nodes.iter().map(key_of).collect();
                format!("cluster {}", nodes.join(" "))
            }
        };
        let mut subscribers = lock(&SUBSCRIBERS);
        if let Some(live) = subscribers.get(&key).and_then(Weak::upgrade)
            && !live.commands.is_closed()
        {
            return live;
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let channels = Channels::default();
        match address {
            Address::Server(_) | Address::Sentinel(_) => {
                tokio::spawn(task::run(
                    address.clone(),
                    timeout,
                    Arc::clone(&channels),
                    receiver,
                ));
            }
            #[cfg(feature = "cluster")]
            Address::Cluster(nodes) => {
                tokio::spawn(task::run_sharded(
                    nodes.clone(),
                    timeout,
                    Arc::clone(&channels),
                    receiver,
                ));
            }
        }
        let subscriber = Arc::new(Subscriber {
            commands,
            channels,
            timeout,
        });
        subscribers.retain(|_, s| s.strong_count() > 0);
        subscribers.insert(key, Arc::downgrade(&subscriber));
        subscriber
    }

    /// Listens to `channel` for the wake-ups of waiter line `line` (`""`: every message);
    /// returns once the server has confirmed the subscription, so that nothing published
    /// after this returns is missed.
    pub(crate) async fn subscribe(self: &Arc<Self>, channel: &str, line: &str) -> Option<Listener> {
        let (sender, mut subscribed) = {
            let mut channels = lock(&self.channels);
            let entry = channels.entry(channel.to_string()).or_default();
            let (sender, users) = entry
                .lines
                .entry(line.to_string())
                .or_insert_with(|| (broadcast::channel(BACKLOG).0, 0));
            *users += 1;
            (sender.clone(), entry.subscribed.subscribe())
        };
        let listener = Listener {
            subscriber: Arc::clone(self),
            channel: channel.to_string(),
            line: line.to_string(),
            sender,
        };
        if *subscribed.borrow_and_update() == Some(true) {
            // Another line of this process listens on the channel already.
            return Some(listener);
        }
        let (ack, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(channel.to_string(), ack))
            .ok()?;
        let ok = matches!(
            tokio::time::timeout(self.timeout, confirmed).await,
            Ok(Ok(Ok(())))
        );
        if let Some(entry) = lock(&self.channels).get(channel) {
            entry.subscribed.send_replace(Some(ok));
        }
        ok.then_some(listener)
    }
}

/// One waiter line's wake-ups from one master. Unsubscribes when the last listener of the
/// channel in this process is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    subscriber: Arc<Subscriber>,
    channel: String,
    line: String,
    sender: broadcast::Sender<Wake>,
}

impl Listener {
    /// False once the subscriber's task is gone (its runtime shut down): listen again.
    pub(crate) fn is_alive(&self) -> bool {
        !self.subscriber.commands.is_closed()
    }

    /// Wake-ups published from now on.
    pub(crate) fn receiver(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut channels = lock(&self.subscriber.channels);
        if let Some(entry) = channels.get_mut(&self.channel) {
            if let Some((_, users)) = entry.lines.get_mut(&self.line) {
                *users -= 1;
                if *users == 0 {
                    entry.lines.remove(&self.line);
                }
            }
            if entry.lines.is_empty() {
                channels.remove(&self.channel);
                let _ = self
                    .subscriber
                    .commands
                    .send(Command::Unsubscribe(self.channel.clone()));
            }
        }
    }
}
