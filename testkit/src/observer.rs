//! One observer of who is inside a semaphore, for the tests, the tools and (through its Lua,
//! `lua/observer.lua`) the Python tests.

use std::sync::Arc;

/// The observer's script: enter, exit and fence in one file that the Python tests read too.
pub const SCRIPT: &str = include_str!("../lua/observer.lua");

/// An independent count of who is inside a semaphore, on a server that is none of its
/// masters: every holder counts itself in after its permit is granted and out before it
/// releases, with the slots it holds, and the observer keeps the most it ever saw inside at
/// once. With a limit ([`with_limit`](Self::with_limit)), [`enter`](Self::enter) fails the
/// run the moment more than the limit are inside, or two holders are inside with the same
/// slot. Also a fenced resource: [`fence`](Self::fence) accepts a write only with a fencing
/// token above every token it accepted for that slot.
///
/// Cheap to clone: clones share one multiplexed connection.
#[derive(Clone)]
pub struct Observer {
    conn: redis::aio::MultiplexedConnection,
    script: Arc<redis::Script>,
    /// Prefix of its keys, so one server can observe several semaphores.
    prefix: String,
    /// The semaphore's permits; 0: none, nothing is judged.
    limit: u32,
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("prefix", &self.prefix)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// What one [`Observer::try_enter`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    /// Holders inside now, this one included.
    pub inside: u32,
    /// A slot that another holder inside holds too.
    pub shared_slot: Option<u32>,
}

impl Observer {
    /// Connects to the observing server, with no limit and keys of its own (`inside`, `max`...).
    pub async fn connect(url: &str) -> Observer {
        Observer::connect_named(url, "").await
    }

    /// Connects an observer whose keys start with `prefix`, so that one server can observe
    /// several semaphores.
    pub async fn connect_named(url: &str, prefix: &str) -> Observer {
        let client = redis::Client::open(url).expect("observer url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("observer connects");
        Observer {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            prefix: prefix.to_string(),
            limit: 0,
        }
    }

    /// Holds the semaphore to `limit` holders: [`enter`](Self::enter) panics past it.
    pub fn with_limit(mut self, limit: u32) -> Observer {
        self.limit = limit;
        self
    }

    /// The limit this observer holds the semaphore to (0: none).
    pub fn limit(&self) -> u32 {
        self.limit
    }

    fn invocation(&self, op: &str) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.script.prepare_invoke();
        for key in ["inside", "max", "over", "slots", "fences"] {
            invocation.key(format!("{}{key}", self.prefix));
        }
        invocation.arg(op);
        invocation
    }

    /// Counts a holder in; returns how many are inside now, this one included. Panics if
    /// that makes more than the limit inside.
    pub async fn enter(&self) -> u32 {
        self.enter_holding(&[]).await
    }

    /// Counts a holder of `slots` in; panics if that makes more than the limit inside, or if
    /// another holder inside has one of these slots.
    pub async fn enter_holding(&self, slots: &[u32]) -> u32 {
        let entered = self.try_enter(slots).await;
        if self.limit > 0 {
            assert!(
                entered.inside <= self.limit,
                "over-admission: {} holders inside a semaphore of {}",
                entered.inside,
                self.limit
            );
        }
        assert_eq!(
            entered.shared_slot, None,
            "two holders inside with the same slot"
        );
        entered.inside
    }

    /// Counts a holder of `slots` in and reports what it saw, without judging (the soak
    /// counts violations instead of stopping at the first).
    pub async fn try_enter(&self, slots: &[u32]) -> Entered {
        let mut invocation = self.invocation("enter");
        invocation.arg(self.limit);
        for slot in slots {
            invocation.arg(*slot);
        }
        let (inside, shared): (u32, i64) = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .expect("observer enter");
        Entered {
            inside,
            shared_slot: u32::try_from(shared).ok(),
        }
    }

    /// Counts a holder out; returns how many are left inside.
    pub async fn exit(&self) -> i64 {
        self.exit_holding(&[]).await
    }

    /// Counts a holder of `slots` out; returns how many are left inside.
    pub async fn exit_holding(&self, slots: &[u32]) -> i64 {
        let mut invocation = self.invocation("exit");
        for slot in slots {
            invocation.arg(*slot);
        }
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .expect("observer exit")
    }

    /// A write to the fenced resource guarded by `slot`: accepted (true) only if `token`
    /// is above every token accepted for that slot before.
    pub async fn fence(&self, slot: u32, token: u64) -> bool {
        let mut invocation = self.invocation("fence");
        invocation.arg(slot).arg(token.to_string());
        let accepted: i64 = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .expect("observer fence");
        accepted == 1
    }

    /// The highest number inside at once so far, and the number inside now.
    pub async fn seen(&self) -> (u32, i64) {
        let (max, inside): (Option<u32>, Option<i64>) = redis::cmd("MGET")
            .arg(format!("{}max", self.prefix))
            .arg(format!("{}inside", self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .expect("observer read");
        (max.unwrap_or(0), inside.unwrap_or(0))
    }

    /// The first violation seen, if there was one (`"3 holders"`, `"slot 1 held twice"`).
    pub async fn violation(&self) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}over", self.prefix))
            .query_async(&mut self.conn.clone())
            .await
            .expect("observer read")
    }
}
