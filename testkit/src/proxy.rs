//! Fault injection for the reliability suite: a TCP proxy to put between clients and a
//! master.
//!
//! ```ignore
//! let proxy = Proxy::start(&server);        // listens on a free loopback port
//! let sem = AsyncSemaphore::builder("x", 2).master(proxy.url()).build().await?;
//! proxy.set_latency(Duration::from_millis(40)); // each way, for every byte from now on
//! proxy.blackhole(true);                    // accept and read, answer nothing
//! proxy.partition(true);                    // close every connection, refuse new ones
//! proxy.drop_connections();                 // close what is open now, accept again
//! proxy.cut_reply_to(b"EVALSHA");           // the next such request reaches the server,
//!                                           // its reply never comes back
//! proxy.heal();                             // all of it off
//! ```
//!
//! Every proxy runs on one shared Tokio runtime on its own thread (`fault-proxy`), so it
//! works the same from synchronous tests, async tests and worker processes, and keeps
//! forwarding while the test's own runtime is busy or blocked. Everything is bounded:
//! loopback only, at most [`MAX_CONNECTIONS`] connections per proxy, at most
//! [`QUEUED_CHUNKS`] chunks of [`CHUNK`] bytes in flight per direction of a connection (a
//! reader waits when its writer is held up, as TCP would). Dropping the proxy closes its
//! listener and every connection.
//!
//! The faults are the ones a network makes, never corruption: bytes within a connection are
//! delivered in order or the connection is closed. A black hole holds what it read and
//! delivers it when it is lifted (a network that heals); a partition closes connections
//! (a firewall that rejects). The clients see timeouts, resets and refusals, as they would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use crate::Server;

/// Connections one proxy keeps open at once; more are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Bytes read at once from either side of a connection.
pub const CHUNK: usize = 16 * 1024;
/// Chunks read but not yet written, per direction of one connection.
pub const QUEUED_CHUNKS: usize = 64;
/// How long a proxy waits for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a cut connection stays open after the cut request went through, so that the
/// server surely reads and runs it before it sees the connection close.
const CUT_GRACE: Duration = Duration::from_millis(30);
/// EVALSHA digests kept by [`Proxy::evalshas`].
const SHA_LOG: usize = 4096;

/// The runtime every proxy runs on: two worker threads, started on first use, alive until
/// the process exits.
fn runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("the proxy runtime starts");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("the proxy thread starts");
        handle
    })
}

/// What the switches are set to, and what the proxy counted. Shared by the handle and
/// every task of the proxy.
#[derive(Debug)]
struct State {
    target: SocketAddr,
    /// Added latency, client to server and server to client, in µs.
    up_us: AtomicU64,
    down_us: AtomicU64,
    /// Each chunk gets a further random delay below this, in µs (order is kept).
    jitter_us: AtomicU64,
    blackhole: watch::Sender<bool>,
    partitioned: AtomicBool,
    /// Bumped to close every connection open at the time.
    epoch: watch::Sender<u64>,
    /// One-shot: the next request containing these bytes is cut.
    cut_on: Mutex<Option<Vec<u8>>>,
    live: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    cuts: AtomicU64,
    closed_by_fault: AtomicU64,
    shas: Mutex<VecDeque<String>>,
}

impl State {
    fn delay(&self, up: bool) -> Duration {
        let base = if up { &self.up_us } else { &self.down_us };
        let mut us = base.load(Ordering::Relaxed);
        let jitter = self.jitter_us.load(Ordering::Relaxed);
        if jitter > 0 {
            us += rand::random_range(0..jitter);
        }
        Duration::from_micros(us)
    }

    fn is_blackhole(&self) -> bool {
        *self.blackhole.borrow()
    }
}

/// A fault-injecting TCP proxy on a free loopback port, forwarding to one server.
///
/// Built with [`Proxy::start`] (or [`Proxy::to_port`]); switched at run time from any
/// thread; closes everything when dropped. A server restarted on the same port is reached
/// again by new connections.
#[derive(Debug)]
pub struct Proxy {
    state: Arc<State>,
    port: u16,
    listener: AbortHandle,
}

impl Proxy {
    /// A proxy to `server` (to its port, so it follows the server across restarts).
    pub fn start(server: &Server) -> Proxy {
        Proxy::to_port(server.port())
    }

    /// A proxy to `127.0.0.1:port`.
    pub fn to_port(port: u16) -> Proxy {
        let target = SocketAddr::from(([127, 0, 0, 1], port));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("the proxy cannot bind 127.0.0.1:0: {e}"));
        let port = std_listener.local_addr().expect("bound address").port();
        std_listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let state = Arc::new(State {
            target,
            up_us: AtomicU64::new(0),
            down_us: AtomicU64::new(0),
            jitter_us: AtomicU64::new(0),
            blackhole: watch::Sender::new(false),
            partitioned: AtomicBool::new(false),
            epoch: watch::Sender::new(0),
            cut_on: Mutex::new(None),
            live: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            closed_by_fault: AtomicU64::new(0),
            shas: Mutex::new(VecDeque::new()),
        });
        let handle = runtime();
        let listener = {
            let _entered = handle.enter();
            TcpListener::from_std(std_listener).expect("tokio listener")
        };
        let listener = handle
            .spawn(accept_loop(listener, Arc::clone(&state)))
            .abort_handle();
        Proxy {
            state,
            port,
            listener,
        }
    }

    /// `redis://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The proxy's own port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port it forwards to.
    pub fn target_port(&self) -> u16 {
        self.state.target.port()
    }

    /// Adds `latency` to every chunk in each direction (so a round trip gains twice it),
    /// from the next chunk read on. Chunks in flight keep the delay they were read with.
    pub fn set_latency(&self, latency: Duration) {
        self.set_latencies(latency, latency);
    }

    /// Adds `up` to what clients send and `down` to what the server answers.
    pub fn set_latencies(&self, up: Duration, down: Duration) {
        self.state
            .up_us
            .store(up.as_micros() as u64, Ordering::Relaxed);
        self.state
            .down_us
            .store(down.as_micros() as u64, Ordering::Relaxed);
    }

    /// Adds a random delay below `jitter` to each chunk, on top of the latency. Bytes keep
    /// their order: a chunk never overtakes the one before it.
    pub fn set_jitter(&self, jitter: Duration) {
        self.state
            .jitter_us
            .store(jitter.as_micros() as u64, Ordering::Relaxed);
    }

    /// Closes every connection open now; new ones are accepted as before.
    pub fn drop_connections(&self) {
        self.state.epoch.send_modify(|epoch| *epoch += 1);
    }

    /// Black hole on: connections are accepted and read, nothing is forwarded either way
    /// (held, up to the bounds, and delivered when it is turned off).
    pub fn blackhole(&self, on: bool) {
        self.state.blackhole.send_replace(on);
    }

    /// Partition on: every open connection is closed and new ones are closed as soon as
    /// they are accepted, until it is turned off.
    pub fn partition(&self, on: bool) {
        self.state.partitioned.store(on, Ordering::SeqCst);
        if on {
            self.drop_connections();
        }
    }

    /// Turns every fault off: no latency, no jitter, no black hole, no partition, no cut
    /// armed. Open connections stay open.
    pub fn heal(&self) {
        self.set_latency(Duration::ZERO);
        self.set_jitter(Duration::ZERO);
        self.blackhole(false);
        self.partition(false);
        *self
            .state
            .cut_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// One-shot: the next request (client to server) that contains `pattern` is forwarded,
    /// then its connection is closed before any reply gets back. The server runs the
    /// request; the client never learns what came of it. [`cuts`](Self::cuts) counts the
    /// cuts made.
    pub fn cut_reply_to(&self, pattern: impl Into<Vec<u8>>) {
        *self
            .state
            .cut_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(pattern.into());
    }

    /// Whether a cut is armed and has not happened yet.
    pub fn cut_armed(&self) -> bool {
        self.state
            .cut_on
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Requests cut so far.
    pub fn cuts(&self) -> u64 {
        self.state.cuts.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed at once because of a partition or the connection limit.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// Open connections closed by a fault (a drop, a partition, a cut).
    pub fn closed_by_fault(&self) -> u64 {
        self.state.closed_by_fault.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn live_connections(&self) -> usize {
        self.state.live.load(Ordering::Relaxed)
    }

    /// The script digests of the EVALSHA requests forwarded so far, oldest first (the last
    /// few thousand). A test learns which digest is which script by watching what one call
    /// sends, without depending on the scripts' text.
    pub fn evalshas(&self) -> Vec<String> {
        self.state
            .shas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Forgets the digests logged so far.
    pub fn clear_evalshas(&self) {
        self.state
            .shas
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.state.partitioned.store(true, Ordering::SeqCst);
        self.drop_connections();
        // Release whatever a black hole holds, so its tasks see the close.
        self.state.blackhole.send_replace(false);
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        state.accepted.fetch_add(1, Ordering::Relaxed);
        if state.partitioned.load(Ordering::SeqCst)
            || state.live.load(Ordering::Relaxed) >= MAX_CONNECTIONS
        {
            state.refused.fetch_add(1, Ordering::Relaxed);
            drop(client);
            continue;
        }
        state.live.fetch_add(1, Ordering::Relaxed);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            connection(client, &state).await;
            state.live.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// One proxied connection: two directions, torn down together when either ends or a fault
/// closes it.
async fn connection(client: TcpStream, state: &Arc<State>) {
    let mut epoch = state.epoch.subscribe();
    let started_in = *epoch.borrow_and_update();
    let upstream =
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(state.target)).await {
            Ok(Ok(upstream)) => upstream,
            // The server is down: the client sees its connection closed, as with a refusal.
            _ => return,
        };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = upstream.into_split();
    // Set by a cut: from then on nothing more goes back to the client.
    let muted = Arc::new(AtomicBool::new(false));
    let (cut_tx, mut cut_rx) = mpsc::channel::<()>(1);
    let up = direction(
        client_read,
        server_write,
        Arc::clone(state),
        true,
        Arc::clone(&muted),
        Some(cut_tx),
    );
    let down = direction(
        server_read,
        client_write,
        Arc::clone(state),
        false,
        muted,
        None,
    );
    let faulted = tokio::select! {
        _ = up => false,
        _ = down => false,
        _ = epoch.wait_for(|e| *e != started_in) => true,
        Some(()) = cut_rx.recv() => true,
    };
    if faulted {
        state.closed_by_fault.fetch_add(1, Ordering::Relaxed);
    }
    // Returning drops all four halves: both sockets close.
}

/// Chunks read on one side, waiting to be written on the other.
struct Chunk {
    deliver_at: Instant,
    /// Empty: the reader saw end of file.
    bytes: Vec<u8>,
    /// A cut request: close the connection once it is written.
    cut: bool,
}

/// Copies one direction with the proxy's delay, holding data while a black hole is on.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: Arc<State>,
    up: bool,
    muted: Arc<AtomicBool>,
    cut: Option<mpsc::Sender<()>>,
) {
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUED_CHUNKS);
    let reader = {
        let state = Arc::clone(&state);
        let muted = Arc::clone(&muted);
        async move {
            let mut last = Instant::now();
            // The end of the previous chunk, so a pattern split across reads is still seen.
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match from.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx
                            .send(Chunk {
                                deliver_at: last,
                                bytes: Vec::new(),
                                cut: false,
                            })
                            .await;
                        return;
                    }
                    Ok(n) => n,
                };
                let bytes = buf[..n].to_vec();
                let mut is_cut = false;
                if up {
                    let mut seen = std::mem::take(&mut tail);
                    let old = seen.len();
                    seen.extend_from_slice(&bytes);
                    log_evalshas(&state, &seen, old);
                    is_cut = take_cut(&state, &seen, old);
                    if is_cut {
                        state.cuts.fetch_add(1, Ordering::Relaxed);
                        muted.store(true, Ordering::SeqCst);
                    }
                    tail = seen[seen.len().saturating_sub(64)..].to_vec();
                }
                last = last.max(Instant::now() + state.delay(up));
                let chunk = Chunk {
                    deliver_at: last,
                    bytes,
                    cut: is_cut,
                };
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let writer = async move {
        let mut blackhole = state.blackhole.subscribe();
        while let Some(chunk) = rx.recv().await {
            // A timer costs up to a millisecond even when it is due: only wait when needed.
            if chunk.deliver_at > Instant::now() {
                sleep_until(chunk.deliver_at).await;
            }
            if state.is_blackhole() {
                let _ = blackhole.wait_for(|on| !*on).await;
            }
            if chunk.bytes.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            if !up && muted.load(Ordering::SeqCst) {
                continue;
            }
            if to.write_all(&chunk.bytes).await.is_err() {
                return;
            }
            if chunk.cut {
                tokio::time::sleep(CUT_GRACE).await;
                if let Some(cut) = &cut {
                    let _ = cut.send(()).await;
                }
                std::future::pending::<()>().await;
            }
        }
    };
    // The reader ends at end of file, the writer once it has written everything after it.
    tokio::join!(reader, writer);
}

/// Logs the digest of every `EVALSHA` in `bytes` (a RESP request: `*N`, `$7 EVALSHA`,
/// `$40 <sha>`). The first `old` bytes are the end of the previous read, carried over so
/// that a request split between two reads is seen: only digests that end after them are new.
fn log_evalshas(state: &State, bytes: &[u8], old: usize) {
    const HEAD: &[u8] = b"EVALSHA\r\n$40\r\n";
    let mut at = 0;
    while let Some(found) = find_ignore_case(&bytes[at..], HEAD) {
        let start = at + found + HEAD.len();
        let Some(sha) = bytes.get(start..start + 40) else {
            return;
        };
        if start + 40 > old {
            let mut shas = state.shas.lock().unwrap_or_else(PoisonError::into_inner);
            if shas.len() == SHA_LOG {
                shas.pop_front();
            }
            shas.push_back(String::from_utf8_lossy(sha).to_ascii_lowercase());
        }
        at = start + 40;
    }
}

/// Disarms and reports the armed cut if `bytes` contain its pattern, ending past the first
/// `old` bytes (those were forwarded before).
fn take_cut(state: &State, bytes: &[u8], old: usize) -> bool {
    let mut armed = state.cut_on.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(pattern) = armed.as_deref() else {
        return false;
    };
    let mut at = 0;
    while let Some(found) = find_ignore_case(&bytes[at..], pattern) {
        if at + found + pattern.len() > old {
            *armed = None;
            return true;
        }
        at += found + 1;
    }
    false
}

fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}
