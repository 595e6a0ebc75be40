//! Wake-ups published by the scripts, received on one subscriber connection per master per
//! process.
//!
//! A script that frees a slot publishes on `semaphore:{name}:wake`: the ids of the queued
//! waiters the free slots are kept for, or an empty message when anyone may try. Every
//! handle of every semaphore in this process that talks to the same master shares one
//! [`Subscriber`]: one connection and one task, which fans each message out to the
//! handles subscribed to its channel. After the connection drops, the task reconnects,
//! subscribes again, and wakes every waiter, since messages may have been missed meanwhile.
//! Waiters also sleep with a cap, so a missed message delays them, never strands them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::select_all;
use tokio::sync::{broadcast, mpsc, oneshot};

/// A wake-up: the space-separated ids of the waiters the free slots are kept for, or empty
/// when anyone may try.
pub(crate) type Wake = Arc<str>;

/// How many wake-ups a slow waiter may fall behind before it just tries again.
const BACKLOG: usize = 64;

/// Longest pause before reconnecting a dropped subscriber connection.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

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

struct Entry {
    sender: broadcast::Sender<Wake>,
    users: usize,
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
    /// The subscriber for the master `client` connects to, started on the current runtime
    /// if there is none yet (or the runtime of the last one has stopped).
    pub(crate) fn for_master(client: &redis::Client, timeout: Duration) -> Arc<Subscriber> {
        let info = client.get_connection_info();
        let key = format!(
            "{}/{}",
            info.addr(),
            info.redis_settings().username().unwrap_or_default()
        );
        let mut subscribers = lock(&SUBSCRIBERS);
        if let Some(live) = subscribers.get(&key).and_then(Weak::upgrade)
            && !live.commands.is_closed()
        {
            return live;
        }
        let (commands, receiver) = mpsc::unbounded_channel();
        let channels = Channels::default();
        tokio::spawn(run(
            client.clone(),
            timeout,
            Arc::clone(&channels),
            receiver,
        ));
        let subscriber = Arc::new(Subscriber {
            commands,
            channels,
            timeout,
        });
        subscribers.retain(|_, s| s.strong_count() > 0);
        subscribers.insert(key, Arc::downgrade(&subscriber));
        subscriber
    }

    /// Listens to `channel`; returns once the server has confirmed the subscription, so
    /// that nothing published after this returns is missed.
    pub(crate) async fn subscribe(self: &Arc<Self>, channel: &str) -> Option<Listener> {
        let sender = {
            let mut channels = lock(&self.channels);
            let entry = channels
                .entry(channel.to_string())
                .or_insert_with(|| Entry {
                    sender: broadcast::channel(BACKLOG).0,
                    users: 0,
                });
            entry.users += 1;
            entry.sender.clone()
        };
        let listener = Listener {
            subscriber: Arc::clone(self),
            channel: channel.to_string(),
            sender,
        };
        let (ack, confirmed) = oneshot::channel();
        self.commands
            .send(Command::Subscribe(channel.to_string(), ack))
            .ok()?;
        match tokio::time::timeout(self.timeout, confirmed).await {
            Ok(Ok(Ok(()))) => Some(listener),
            _ => None,
        }
    }
}

/// One semaphore's wake-ups from one master. Unsubscribes when the last listener of the
/// channel in this process is dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    subscriber: Arc<Subscriber>,
    channel: String,
    sender: broadcast::Sender<Wake>,
}

impl Listener {
    /// Wake-ups published from now on.
    pub(crate) fn receiver(&self) -> broadcast::Receiver<Wake> {
        self.sender.subscribe()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut channels = lock(&self.subscriber.channels);
        if let Some(entry) = channels.get_mut(&self.channel) {
            entry.users -= 1;
            if entry.users == 0 {
                channels.remove(&self.channel);
                let _ = self
                    .subscriber
                    .commands
                    .send(Command::Unsubscribe(self.channel.clone()));
            }
        }
    }
}

/// Waits for a wake-up meant for `id` (or for anyone) on any of `receivers`; never returns
/// when there are none.
pub(crate) async fn woken(receivers: &mut [broadcast::Receiver<Wake>], id: &str) {
    if receivers.is_empty() {
        return std::future::pending().await;
    }
    loop {
        let (received, _, _) = select_all(receivers.iter_mut().map(|r| Box::pin(r.recv()))).await;
        match received {
            Ok(ids) if ids.is_empty() || ids.split(' ').any(|waiter| waiter == id) => return,
            // Kept for other waiters.
            Ok(_) => {}
            // Fell behind: something was freed, try.
            Err(broadcast::error::RecvError::Lagged(_)) => return,
            // The subscriber is gone: the caller's timer will do.
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// The subscriber task: keeps one pub/sub connection up and fans messages out.
async fn run(
    client: redis::Client,
    timeout: Duration,
    channels: Channels,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut delay = Duration::from_millis(10);
    loop {
        let connected = tokio::time::timeout(timeout, client.get_async_pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            // Down: answer subscriptions at once (the waiters poll meanwhile) and retry.
            let retry = tokio::time::sleep(delay);
            tokio::pin!(retry);
            loop {
                tokio::select! {
                    _ = &mut retry => break,
                    command = commands.recv() => match command {
                        None => return,
                        Some(Command::Subscribe(_, ack)) => {
                            let _ = ack.send(Err(not_connected()));
                        }
                        Some(Command::Unsubscribe(_)) => {}
                    },
                }
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            continue;
        };
        delay = Duration::from_millis(10);
        let (mut sink, mut stream) = pubsub.split();
        let names: Vec<String> = lock(&channels).keys().cloned().collect();
        if !names.is_empty() {
            match tokio::time::timeout(timeout, sink.subscribe(&names)).await {
                Ok(Ok(())) => {}
                _ => continue,
            }
        }
        // Whatever was published while the connection was down is lost: everyone tries.
        for entry in lock(&channels).values() {
            let _ = entry.sender.send(Wake::from(""));
        }
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Subscribe(name, ack)) => {
                        let done = tokio::time::timeout(timeout, sink.subscribe(&name)).await;
                        let done = done.unwrap_or_else(|_| Err(not_connected()));
                        let failed = done.is_err();
                        let _ = ack.send(done);
                        if failed {
                            break;
                        }
                    }
                    Some(Command::Unsubscribe(name)) => {
                        // Unless someone subscribed again meanwhile.
                        if !lock(&channels).contains_key(&name) {
                            let _ = tokio::time::timeout(timeout, sink.unsubscribe(&name)).await;
                        }
                    }
                },
                message = stream.next() => match message {
                    None => break,
                    Some(message) => {
                        let ids: String = message.get_payload().unwrap_or_default();
                        if let Some(entry) = lock(&channels).get(message.get_channel_name()) {
                            let _ = entry.sender.send(Wake::from(ids));
                        }
                    }
                },
            }
        }
    }
}

fn not_connected() -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the subscriber connection is down",
    )
    .into()
}
