//! Wake-ups published by the scripts, received on one subscriber connection per master per
//! process.
//!
//! A script that frees a slot wakes the queued waiter lines (one per handle) the free
//! slots are kept for, each on its own process's channel, `semaphore:{name}:wake:<process>`
//! (a line's id starts with its process's, [`line_id`]): a hand-off is one message to one
//! process, however many processes wait, and a script tells a dead process (its
//! subscription gone) from a live one with `PUBSUB NUMSUB`. Waiters outside the queue (an
//! unfair handle's) listen on `semaphore:{name}:wake`, where a message naming no line means
//! anyone may try.
//!
//! Every handle of every semaphore in this process that talks to the same master shares one
//! [`Subscriber`]: one connection and one task, which hands each message to the lines it
//! names only (so a process of a thousand waiting handles wakes one of them). After the
//! connection drops, the task reconnects, subscribes again, and wakes every waiter, since
//! messages may have been missed meanwhile.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::sentinel::Service;

/// Where a master's subscriber connection for wake-ups comes from: the server, the
/// primary a Sentinel service names now, or (feature `cluster`) the cluster's seed nodes.
#[derive(Clone)]
pub(crate) enum Source {
    Server(Box<redis::Client>),
    /// The primary the sentinels name now.
    Sentinel(Arc<Service>),
    #[cfg(feature = "cluster")]
    Cluster(Vec<redis::ConnectionInfo>),
}

impl Source {
    /// A pub/sub connection to this master: for a Sentinel service, to its primary now.
    pub(crate) async fn pubsub(&self) -> redis::RedisResult<redis::aio::PubSub> {
        match self {
            Source::Server(client) => client.get_async_pubsub().await,
            Source::Sentinel(service) => service.primary().await?.get_async_pubsub().await,
            #[cfg(feature = "cluster")]
            Source::Cluster(_) => Err((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster subscribes with sharded pub/sub",
            )
                .into()),
        }
    }
}

/// A wake-up: the publishing script's stamp, then the waiter lines the free slots are kept
/// for (none: anyone may try), separated by spaces.
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

/// This process's part of its waiter lines' ids, and so of its wake-up channels: 64
/// random bits, made again in a forked child (which must not share its parent's channel).
pub(crate) fn process_id() -> String {
    static PROCESS: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut process = lock(&PROCESS);
    match &*process {
        Some((made_in, id)) if *made_in == pid => id.clone(),
        _ => {
            let id = format!("{:016x}", rand::random::<u64>());
            *process = Some((pid, id.clone()));
            id
        }
    }
}

/// A fresh waiter line id: this process's id, a dot, then 64 random bits. The scripts
/// read the process from it, to wake the line on its process's channel.
pub(crate) fn line_id() -> String {
    format!("{}.{:016x}", process_id(), rand::random::<u64>())
}

/// The part of a line's id before the dot: its process.
pub(crate) fn process_of(line: &str) -> Option<&str> {
    line.split_once('.').map(|(process, _)| process)
}

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
    /// The subscriber for master `source`, started on the current runtime if there is none
    /// yet (or the runtime of the last one has stopped).
    pub(crate) fn for_source(source: &Source, timeout: Duration) -> Arc<Subscriber> {
        let key_of = |info: &redis::ConnectionInfo| {
            format!(
                "{}/{}",
                info.addr(),
                info.redis_settings().username().unwrap_or_default()
            )
        };
        let key = match source {
            Source::Server(client) => key_of(client.get_connection_info()),
            Source::Sentinel(service) => format!("sentinel {}", service.label()),
            #[cfg(feature = "cluster")]
            Source::Cluster(nodes) => {
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
        match source {
            Source::Server(_) | Source::Sentinel(_) => {
                tokio::spawn(run(
                    source.clone(),
                    timeout,
                    Arc::clone(&channels),
                    receiver,
                ));
            }
            #[cfg(feature = "cluster")]
            Source::Cluster(nodes) => {
                tokio::spawn(run_sharded(
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

/// What a wake-up means for one waiter line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// Not for it (kept for other lines), or stale.
    Not,
    /// Its turn, or anyone's: ask.
    Ask,
    /// The waiter registered as `id` was granted these slots with this token, by the script
    /// that freed them, stamped `stamp` (µs on the master's clock).
    Granted {
        id: String,
        token: u64,
        slots: Vec<u32>,
        stamp: u64,
    },
}

/// What wake-up `wake` ("stamp entry entry ...", an entry being `line` or
/// `line=id:token:slot,slot`) means for waiter line `line`. It is stale when stamped before
/// `seen`, the stamp of the line's last answered request on that master (whose own wake-up
/// may name the line). No entries: anyone may try. An empty wake-up (the subscriber
/// reconnected) is for everyone.
pub(crate) fn for_line(wake: &str, line: &str, seen: u64) -> Named {
    let mut parts = wake.split(' ').filter(|p| !p.is_empty());
    let Some(stamp) = parts.next() else {
        return Named::Ask;
    };
    let stamp = stamp.parse::<u64>().ok();
    if stamp.is_some_and(|stamp| stamp < seen) {
        return Named::Not;
    }
    let mut entries = parts.peekable();
    if entries.peek().is_none() {
        return Named::Ask;
    }
    for entry in entries {
        let (named, grant) = entry.split_once('=').unwrap_or((entry, ""));
        if named != line {
            continue;
        }
        return stamp
            .and_then(|stamp| parse_grant(grant, stamp))
            .unwrap_or(Named::Ask);
    }
    Named::Not
}

/// `id:token:slot,slot` in a wake-up stamped `stamp`, or None.
fn parse_grant(grant: &str, stamp: u64) -> Option<Named> {
    let mut fields = grant.split(':');
    let id = fields.next().filter(|id| !id.is_empty())?.to_string();
    let token = fields.next()?.parse().ok()?;
    let slots = fields
        .next()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some(Named::Granted {
        id,
        token,
        slots,
        stamp,
    })
}

/// The subscriber task: keeps one pub/sub connection up and fans messages out. A
/// Sentinel-managed master's is made to the primary the sentinels name at each connect.
async fn run(
    source: Source,
    timeout: Duration,
    channels: Channels,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut delay = Duration::from_millis(10);
    loop {
        let connected = tokio::time::timeout(timeout, source.pubsub()).await;
        let Ok(Ok(pubsub)) = connected else {
            if !wait_while_down(&mut commands, &mut delay).await {
                return;
            }
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
            entry.subscribed.send_replace(Some(true));
            entry.dispatch("");
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
                        let wake: String = message.get_payload().unwrap_or_default();
                        if let Some(entry) = lock(&channels).get(message.get_channel_name()) {
                            entry.dispatch(&wake);
                        }
                    }
                },
            }
        }
        // Down: a line that starts to listen now subscribes (and fails) rather than count on
        // a subscription that is gone.
        for entry in lock(&channels).values() {
            entry.subscribed.send_replace(None);
        }
    }
}

/// The subscriber task on a cluster: one cluster connection speaking RESP3, on which
/// each channel is a sharded subscription (SSUBSCRIBE) to the shard that owns the
/// semaphore's hash tag. The cluster connection subscribes again by itself after a
/// reconnect or a failover; each confirmation it then pushes wakes the channel's waiters.
#[cfg(feature = "cluster")]
async fn run_sharded(
    nodes: Vec<redis::ConnectionInfo>,
    timeout: Duration,
    channels: Channels,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let (pushes, mut pushed) = mpsc::unbounded_channel();
    let client = redis::cluster::ClusterClientBuilder::new(nodes)
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(pushes)
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .build();
    let mut delay = Duration::from_millis(10);
    let mut conn = loop {
        let connected = match &client {
            Ok(client) => tokio::time::timeout(timeout, client.get_async_connection())
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        if let Some(conn) = connected {
            break conn;
        }
        if !wait_while_down(&mut commands, &mut delay).await {
            return;
        }
    };
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Subscribe(name, ack)) => {
                    let done = tokio::time::timeout(timeout, conn.ssubscribe(&name)).await;
                    let _ = ack.send(done.unwrap_or_else(|_| Err(not_connected())));
                }
                Some(Command::Unsubscribe(name)) => {
                    if !lock(&channels).contains_key(&name) {
                        let _ = tokio::time::timeout(timeout, conn.sunsubscribe(&name)).await;
                    }
                }
            },
            push = pushed.recv() => match push {
                None => return,
                Some(push) => dispatch_push(&channels, push),
            },
        }
    }
}

/// A pushed message: a wake-up for its channel's listeners, or a (re)subscription, after
/// which anything published meanwhile may have been missed.
#[cfg(feature = "cluster")]
fn dispatch_push(channels: &Channels, push: redis::PushInfo) {
    use redis::{FromRedisValue, PushKind};
    let text = |value: &redis::Value| String::from_redis_value(value.clone()).ok();
    let (channel, wake) = match (&push.kind, push.data.as_slice()) {
        (PushKind::SMessage | PushKind::Message, [channel, payload, ..]) => {
            (text(channel), text(payload).unwrap_or_default())
        }
        (PushKind::SSubscribe | PushKind::Subscribe, [channel, ..]) => {
            (text(channel), String::new())
        }
        _ => return,
    };
    if let Some(channel) = channel
        && let Some(entry) = lock(channels).get(&channel)
    {
        entry.dispatch(&wake);
    }
}

/// While the subscriber is down: answers subscriptions at once (the waiters fall back on
/// their timers meanwhile) until `delay` has passed, then doubles it for the next time.
/// False when every handle has let go and the task should end.
async fn wait_while_down(
    commands: &mut mpsc::UnboundedReceiver<Command>,
    delay: &mut Duration,
) -> bool {
    let retry = tokio::time::sleep(*delay);
    tokio::pin!(retry);
    *delay = (*delay * 2).min(MAX_RECONNECT_DELAY);
    loop {
        tokio::select! {
            _ = &mut retry => return true,
            command = commands.recv() => match command {
                None => return false,
                Some(Command::Subscribe(_, ack)) => {
                    let _ = ack.send(Err(not_connected()));
                }
                Some(Command::Unsubscribe(_)) => {}
            },
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

#[cfg(test)]
mod tests {
    use super::{Named, for_line};

    #[test]
    fn wake_ups_are_for_named_lines_and_fresh() {
        assert_eq!(
            for_line("", "a", 100),
            Named::Ask,
            "a reconnect wakes everyone"
        );
        assert_eq!(
            for_line("100", "a", 100),
            Named::Ask,
            "no line named: anyone"
        );
        assert_eq!(for_line("150 b a", "a", 100), Named::Ask);
        assert_eq!(for_line("150 b c", "a", 100), Named::Not, "kept for others");
        assert_eq!(for_line("99 a", "a", 100), Named::Not, "stale");
    }

    #[test]
    fn wake_ups_carry_grants() {
        assert_eq!(
            for_line("150 b=x:7:0 a=id1:42:3,5", "a", 100),
            Named::Granted {
                id: "id1".into(),
                token: 42,
                slots: vec![3, 5],
                stamp: 150,
            }
        );
        assert_eq!(for_line("150 a=id1:42:3", "b", 100), Named::Not);
        assert_eq!(for_line("150 a=garbled", "a", 100), Named::Ask);
    }
}
