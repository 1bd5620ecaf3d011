//! Transactions: each holds a dedicated connection with an open PostgreSQL
//! transaction, found by its id.
//!
//! As the service does (Aurora user guide, "Troubleshooting Amazon RDS Data
//! API" and BeginTransaction in the API reference):
//! - a transaction idle for the idle timeout (3 minutes) or older than the
//!   maximum lifetime (24 hours) is rolled back and forgotten;
//! - a statement error ends the transaction (it is rolled back);
//! - a call on an unknown or ended transaction is a
//!   `TransactionNotFoundException` whose message ends with the cause:
//!   "Transaction may be expired.", "One previous call resulted in a
//!   termination of your transaction." or "Transaction has been aborted due
//!   to an error from a previous call.";
//! - a call while another call of the same transaction runs is refused at
//!   once with `DatabaseErrorException: Transaction is still running a
//!   query` (Aurora Serverless v2 and provisioned behaviour).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use crate::error::ApiError;
use crate::pool::Conn;

/// How many ended transaction ids are remembered for their cause.
const ENDED_MEMORY: usize = 10_000;

/// Why a transaction is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Idle too long, or older than the maximum lifetime.
    Expired,
    /// Committed or rolled back by a call.
    Ended,
    /// A statement failed.
    Aborted,
}

impl EndReason {
    fn cause(self) -> &'static str {
        match self {
            EndReason::Expired => "Transaction may be expired.",
            EndReason::Ended => "One previous call resulted in a termination of your transaction.",
            EndReason::Aborted => {
                "Transaction has been aborted due to an error from a previous call."
            }
        }
    }
}

/// The message of a `TransactionNotFoundException`.
pub fn not_found_message(id: &str, reason: EndReason) -> String {
    format!("Transaction {id} is not found. {}", reason.cause())
}

/// A live transaction.
#[derive(Debug)]
pub struct Txn {
    /// Its id.
    pub id: String,
    slot: Arc<tokio::sync::Mutex<Option<Conn>>>,
    started: Instant,
    last_used: Mutex<Instant>,
}

impl Txn {
    fn expired(&self, now: Instant, idle: Duration, lifetime: Duration) -> bool {
        let last = *self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        now.duration_since(last) > idle || now.duration_since(self.started) > lifetime
    }

    /// Marks the end of a call.
    pub fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

/// Exclusive use of a transaction's connection for one call.
pub type Lease = OwnedMutexGuard<Option<Conn>>;

/// The live transactions and the causes of the ended ones.
#[derive(Debug)]
pub struct Registry {
    live: Mutex<HashMap<String, Arc<Txn>>>,
    ended: Mutex<(HashMap<String, EndReason>, VecDeque<String>)>,
    idle_timeout: Duration,
    max_lifetime: Duration,
}

impl Registry {
    /// An empty registry with the given limits.
    pub fn new(idle_timeout: Duration, max_lifetime: Duration) -> Registry {
        Registry {
            live: Mutex::new(HashMap::new()),
            ended: Mutex::new((HashMap::new(), VecDeque::new())),
            idle_timeout,
            max_lifetime,
        }
    }

    /// Registers a connection that has just run `BEGIN`; returns the id.
    pub fn insert(&self, conn: Conn) -> String {
        let id = new_id();
        let now = Instant::now();
        let txn = Arc::new(Txn {
            id: id.clone(),
            slot: Arc::new(tokio::sync::Mutex::new(Some(conn))),
            started: now,
            last_used: Mutex::new(now),
        });
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), txn);
        id
    }

    fn remember(&self, id: &str, reason: EndReason) {
        let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        let (map, order) = &mut *ended;
        if map.insert(id.to_owned(), reason).is_none() {
            order.push_back(id.to_owned());
        }
        while order.len() > ENDED_MEMORY {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    fn not_found(&self, id: &str) -> ApiError {
        let reason = self
            .ended
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(id)
            .copied()
            .unwrap_or(EndReason::Expired);
        ApiError::TransactionNotFound(not_found_message(id, reason))
    }

    /// Takes the transaction for one call. Refuses an unknown, ended or
    /// expired one, and one that is running another call.
    pub fn lease(&self, id: &str) -> Result<(Arc<Txn>, Lease), ApiError> {
        let txn = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| self.not_found(id))?;
        let lease = Arc::clone(&txn.slot)
            .try_lock_owned()
            .map_err(|_| ApiError::Database("Transaction is still running a query".into()))?;
        if txn.expired(Instant::now(), self.idle_timeout, self.max_lifetime) {
            // Dropping the connection closes it, which rolls back.
            self.end(id, EndReason::Expired);
            return Err(self.not_found(id));
        }
        if lease.is_none() {
            return Err(self.not_found(id));
        }
        Ok((txn, lease))
    }

    /// Forgets a transaction, remembering why.
    pub fn end(&self, id: &str, reason: EndReason) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.remember(id, reason);
    }

    /// Ends the expired transactions that are not running a call; returns
    /// their connections (dropping them rolls back).
    pub fn reap(&self) -> Vec<Conn> {
        let now = Instant::now();
        let candidates: Vec<Arc<Txn>> = self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|t| t.expired(now, self.idle_timeout, self.max_lifetime))
            .cloned()
            .collect();
        let mut conns = Vec::new();
        for txn in candidates {
            if let Ok(mut slot) = Arc::clone(&txn.slot).try_lock_owned() {
                self.end(&txn.id, EndReason::Expired);
                conns.extend(slot.take());
            }
        }
        conns
    }

    /// How often the reaper should look.
    pub fn reap_interval(&self) -> Duration {
        (self.idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(5))
    }

    /// Ends every transaction (at shutdown).
    pub fn clear(&self) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A transaction id: 48 random bytes in base64, the shape (and about the
/// length) of the service's ids.
fn new_id() -> String {
    let mut bytes = [0u8; 48];
    for chunk in bytes.chunks_mut(16) {
        chunk.copy_from_slice(&rand::random::<u128>().to_le_bytes());
    }
    aws_smithy_types::base64::encode(bytes)
}
