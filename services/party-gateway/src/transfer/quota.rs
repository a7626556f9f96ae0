//! The data plane's byte quotas: what waits here unpopped, per session and for the whole
//! gateway. A push reserves its bytes before it is stored (and gives them back if it is not);
//! a pop or a dropped session frees them. A push that finds no room waits for some, up to
//! `transfer.backpressure_ms`, then is refused as [`Error::Full`].

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Error;
use crate::config::TransferConfig;

#[derive(Default)]
struct Usage {
    sessions: HashMap<String, u64>,
    total: u64,
}

pub struct Quotas {
    party_id: String,
    session_quota: u64,
    gateway_quota: u64,
    backpressure: Duration,
    usage: Mutex<Usage>,
    /// Woken when bytes leave.
    room: Notify,
}

impl Quotas {
    /// `held`: the bytes each session holds in the store already (after a restart).
    pub fn new(party_id: &str, limits: &TransferConfig, held: Vec<(String, u64)>) -> Quotas {
        let mut usage = Usage::default();
        for (session, bytes) in held {
            usage.total += bytes;
            usage.sessions.insert(session, bytes);
        }
        Quotas {
            party_id: party_id.to_owned(),
            session_quota: limits.session_quota_bytes,
            gateway_quota: limits.gateway_quota_bytes,
            backpressure: Duration::from_millis(limits.backpressure_ms),
            usage: Mutex::new(usage),
            room: Notify::new(),
        }
    }

    /// Counts `size` bytes against the quotas, waiting for room up to the backpressure time.
    pub async fn reserve(&self, session_id: &str, size: u64) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + self.backpressure;
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let Some(refusal) = self.try_reserve(session_id, size) else {
                return Ok(());
            };
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(Error::Full(format!(
                    "queue full: {refusal} (waited {} ms for receivers to pop)",
                    self.backpressure.as_millis()
                )));
            }
        }
    }

    /// Reserves, or says which quota is full.
    fn try_reserve(&self, session_id: &str, size: u64) -> Option<String> {
        let mut usage = self.usage.lock();
        let held = usage.sessions.get(session_id).copied().unwrap_or(0);
        if held + size > self.session_quota {
            return Some(format!(
                "session {session_id} holds {held} bytes not yet popped on party {}; {size} more would pass transfer.session_quota_bytes = {}",
                self.party_id, self.session_quota
            ));
        }
        if usage.total + size > self.gateway_quota {
            return Some(format!(
                "party {}'s gateway holds {} bytes not yet popped; {size} more would pass transfer.gateway_quota_bytes = {}",
                self.party_id, usage.total, self.gateway_quota
            ));
        }
        *usage.sessions.entry(session_id.to_owned()).or_default() += size;
        usage.total += size;
        None
    }

    /// Gives back `size` bytes of a session (popped, or never stored).
    pub fn release(&self, session_id: &str, size: u64) {
        {
            let mut usage = self.usage.lock();
            if let Some(held) = usage.sessions.get_mut(session_id) {
                *held = held.saturating_sub(size);
            }
            usage.total = usage.total.saturating_sub(size);
        }
        self.room.notify_waiters();
    }

    /// Gives back everything a session holds (its queues were dropped).
    pub fn forget(&self, session_id: &str) {
        {
            let mut usage = self.usage.lock();
            let held = usage.sessions.remove(session_id).unwrap_or(0);
            usage.total = usage.total.saturating_sub(held);
        }
        self.room.notify_waiters();
    }
}
