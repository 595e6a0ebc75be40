//! The subscriber's task: one pub/sub connection kept up (made again after it drops, to a
//! Sentinel service's primary of the moment), its messages handed to the channels' local
//! listeners; on a cluster, one cluster connection with sharded subscriptions.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{Channels, Command, lock};
use crate::address::Address;

/// Longest pause before reconnecting a dropped subscriber connection.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The subscriber task: keeps one pub/sub connection up and fans messages out. A
/// Sentinel-managed master's is made to the primary the sentinels name at each connect.
pub(super) async fn run(
    address: Address,
    timeout: Duration,
    channels: Channels,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut delay = Duration::from_millis(10);
    loop {
        let connected = tokio::time::timeout(timeout, pubsub(&address)).await;
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
pub(super) async fn run_sharded(
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

/// A pub/sub connection to the master at `address`: for a Sentinel service, to its primary now.
async fn pubsub(address: &Address) -> redis::RedisResult<redis::aio::PubSub> {
    match address {
        Address::Server(client) => client.get_async_pubsub().await,
        Address::Sentinel(service) => service.primary().await?.get_async_pubsub().await,
        #[cfg(feature = "cluster")]
        Address::Cluster(_) => Err((
            redis::ErrorKind::InvalidClientConfig,
            "a cluster subscribes with sharded pub/sub",
        )
            .into()),
    }
}
