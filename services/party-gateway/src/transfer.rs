//! The data plane: FATE's OSX message queues, served to this party's components (pyfate's
//! `osx` federation backend) and fed by other parties' gateways.
//!
//! A queue is (session, topic), FIFO, created by whichever of push or pop comes first. Pops
//! are served here only; a push for another party crosses the federation link and is queued
//! at the receiving party ([`Broker::deliver`]). Messages live in the store (`crate::store`;
//! memory holds only a bounded cache of payloads awaiting their pop): a push is acknowledged
//! once durable at the receiving party, a pop removes its message when it replies (a reply
//! lost on the way is lost: see the README).
//!
//! Default deny: a session must be a running attempt on this party (its task-controller says
//! so); a remote push must come from a participant of the job, say so in its from-party, and
//! be for this party. Quotas per session and per gateway bound what waits here; a push into a
//! full quota waits `transfer.backpressure_ms` for room, then is refused `UNAVAILABLE`.

mod quota;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fedflow_rpc::error::{Code, ServiceError};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::TransferConfig;
use crate::remote::{DeliverError, Delivery, Directory, Peers, Running, SessionState};
use crate::store::{self, NewMessage, Store};
pub use fedflow_core::session::Session;
use quota::Quotas;

/// FATE's code for success.
pub const OK: &str = "E0000000000";
/// FATE's code for a pop that found nothing in time.
pub const TIMED_OUT: &str = "E0000000601";
/// FATE's code for an empty queue on peek.
pub const NOT_FOUND: &str = "E0000000404";

/// Every OSX error code the broker answers with (see [`Error::fate_code`]).
pub const CODES: &[&str] = &[
    "E0000000400",
    "E0000000403",
    NOT_FOUND,
    "E0000000413",
    "E0000000500",
    TIMED_OUT,
    "E0000000607",
    "E0000000700",
];

/// Why a data-plane call was refused; nothing was queued or taken. The message names what
/// is wrong; [`Error::fate_code`] is the OSX status code that goes with it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A missing or malformed header or field.
    #[error("{0}")]
    InvalidArgument(String),
    /// A party id that is not the caller's.
    #[error("{0}")]
    Unauthenticated(String),
    /// Not a running attempt here, not a participant, not for this party.
    #[error("{0}")]
    PermissionDenied(String),
    /// The message exceeds `transfer.max_message_bytes`.
    #[error("{0}")]
    TooLarge(String),
    /// A quota stayed full for `transfer.backpressure_ms`: try again later.
    #[error("{0}")]
    Full(String),
    /// The task-controller, the job-controller or the target party's gateway cannot be
    /// reached: try again.
    #[error("{0}")]
    Unavailable(String),
    /// The target party's gateway refused the message.
    #[error("party {party}'s gateway refused the message: {message}")]
    Refused {
        party: String,
        code: Code,
        message: String,
    },
    #[error("message store: {0}")]
    Store(#[from] store::Error),
}

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::TooLarge(_) => Code::ResourceExhausted,
            Error::Full(_) => Code::Unavailable,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Refused { code, .. } => *code,
            Error::Store(e) if e.is_unavailable() => Code::Unavailable,
            Error::Store(_) => Code::Internal,
        }
    }
}

impl Error {
    /// The OSX status code of the refusal (FATE's `StatusCode`).
    pub fn fate_code(&self) -> &'static str {
        match self.code() {
            Code::InvalidArgument => "E0000000400",
            Code::Unauthenticated | Code::PermissionDenied => "E0000000403",
            Code::ResourceExhausted => "E0000000413",
            Code::Unavailable if matches!(self, Error::Full(_)) => "E0000000700",
            Code::Unavailable => "E0000000607",
            _ => "E0000000500",
        }
    }
}

/// The `x-ptp-*` headers of a call, as sent.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    pub session_id: String,
    pub target_node_id: Option<String>,
    pub from_node_id: Option<String>,
    pub trace_id: String,
}

/// A message that arrived from another party's gateway.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub session_id: String,
    pub topic: String,
    pub payload: Bytes,
    pub from_party_id: String,
    pub target_party_id: String,
    pub message_id: String,
    /// The sending gateway's push span's context (W3C fields); empty without export.
    pub trace_context: HashMap<String, String>,
}

/// The span of one data-plane hop (`push`: `data push` on the sending gateway, else `data
/// deliver` on the receiving one) of a message of `session`; disabled when spans are not exported.
fn data_span(
    push: bool,
    session: &Session,
    party_id: &str,
    target: &str,
    topic: &str,
) -> tracing::Span {
    if !fedflow_telemetry::context::exporting() {
        return tracing::Span::none();
    }
    if push {
        tracing::info_span!(
            "data push",
            job_id = %session.job_id,
            component = %session.component,
            version = session.version,
            party_id = %party_id,
            dest_party_id = %target,
            topic = %topic,
        )
    } else {
        tracing::info_span!(
            "data deliver",
            job_id = %session.job_id,
            component = %session.component,
            version = session.version,
            party_id = %party_id,
            dest_party_id = %target,
            topic = %topic,
        )
    }
}

pub struct Broker {
    party_id: String,
    limits: TransferConfig,
    store: Store,
    directory: Directory,
    peers: Peers,
    quotas: Quotas,
    /// Woken when a queue gets a message: one per queue a pop waits on.
    arrivals: Mutex<HashMap<(String, String), Arc<Notify>>>,
}

impl Broker {
    pub async fn new(
        party_id: String,
        limits: TransferConfig,
        store: Store,
        directory: Directory,
        peers: Peers,
    ) -> Result<Broker, Error> {
        let quotas = Quotas::new(&party_id, &limits, store.usage().await?);
        Ok(Broker {
            party_id,
            limits,
            store,
            directory,
            peers,
            quotas,
            arrivals: Mutex::new(HashMap::new()),
        })
    }

    /// This party's id.
    pub fn party_id(&self) -> &str {
        &self.party_id
    }

    /// The largest payload a push may carry.
    pub fn max_message(&self) -> usize {
        usize::try_from(self.limits.max_message_bytes).unwrap_or(usize::MAX)
    }

    /// A push from one of this party's components: queued here when it is for this party,
    /// else delivered to the target party's gateway. Returns once durable at the receiver.
    pub async fn push(&self, headers: &Headers, topic: &str, payload: Bytes) -> Result<(), Error> {
        let session = session_of(headers)?;
        check_topic(topic)?;
        self.check_size(payload.len())?;
        let target = headers.target_node_id.as_deref().ok_or_else(|| {
            Error::InvalidArgument("push: the x-ptp-target-node-id header is missing".into())
        })?;
        fedflow_core::ids::party_id(target)
            .map_err(|e| Error::InvalidArgument(format!("x-ptp-target-node-id: {e}")))?;
        if let Some(from) = &headers.from_node_id
            && from != &self.party_id
        {
            return Err(Error::Unauthenticated(format!(
                "x-ptp-from-node-id is party {from}, but this is party {}'s gateway: a component pushes only as its own party",
                self.party_id
            )));
        }
        let running = self.running(&session).await?;
        if target != self.party_id && !running.participants.contains(target) {
            return Err(Error::PermissionDenied(format!(
                "party {target} is not a participant of job {}",
                session.job_id
            )));
        }
        let message_id = fedflow_rpc::new_request_id();
        if target == self.party_id {
            self.enqueue(NewMessage {
                session_id: session.id,
                topic: topic.to_owned(),
                message_id,
                payload,
            })
            .await?;
            return Ok(());
        }
        let span = data_span(true, &session, &self.party_id, target, topic);
        let mut trace_context = Default::default();
        fedflow_telemetry::context::join_job(&span, &session.job_id);
        fedflow_telemetry::context::inject(&span, &mut trace_context);
        self.forward(Delivery {
            session_id: session.id,
            topic: topic.to_owned(),
            payload,
            from_party_id: self.party_id.clone(),
            target_party_id: target.to_owned(),
            message_id,
            trace_id: headers.trace_id.clone(),
            trace_context,
        })
        .instrument(span)
        .await
    }

    /// A message from another party's gateway; `peer` is the party its connection
    /// authenticated as (`None` in insecure mode: the message's from-party is taken).
    /// Returns false when the message id was stored before (a retry).
    pub async fn deliver(&self, peer: Option<&str>, arrival: Arrival) -> Result<bool, Error> {
        let session = Session::parse(&arrival.session_id).map_err(Error::InvalidArgument)?;
        check_topic(&arrival.topic)?;
        self.check_size(arrival.payload.len())?;
        fedflow_core::ids::request_id(&arrival.message_id)
            .map_err(|e| Error::InvalidArgument(format!("message_id: {e}")))?;
        let caller = peer.unwrap_or(&arrival.from_party_id);
        if arrival.from_party_id != caller {
            return Err(Error::Unauthenticated(format!(
                "x-ptp-from-node-id is party {:?}, but the connection is authenticated as party {caller}",
                arrival.from_party_id
            )));
        }
        if arrival.target_party_id != self.party_id {
            return Err(Error::PermissionDenied(format!(
                "the message is for party {:?}; this is party {}'s gateway, which does not relay",
                arrival.target_party_id, self.party_id
            )));
        }
        let running = self.running(&session).await?;
        if !running.participants.contains(caller) && running.scheduler != caller {
            return Err(Error::PermissionDenied(format!(
                "party {caller} is not a participant of job {}",
                session.job_id
            )));
        }
        let span = data_span(
            false,
            &session,
            &self.party_id,
            &arrival.target_party_id,
            &arrival.topic,
        );
        fedflow_telemetry::context::set_parent(&span, &arrival.trace_context);
        self.enqueue(NewMessage {
            session_id: session.id,
            topic: arrival.topic,
            message_id: arrival.message_id,
            payload: arrival.payload,
        })
        .instrument(span)
        .await
    }

    /// The oldest message of (session, topic), removed; waits up to `timeout_ms` (at most
    /// `transfer.max_pop_wait_ms`) for one. `None`: none came in time.
    pub async fn pop(
        &self,
        headers: &Headers,
        topic: &str,
        timeout_ms: i32,
    ) -> Result<Option<Bytes>, Error> {
        let session = self.local_reader(headers, topic).await?;
        let wait = u64::try_from(timeout_ms.max(0))
            .unwrap_or(0)
            .min(self.limits.max_pop_wait_ms);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
        let key = (session.id.clone(), topic.to_owned());
        loop {
            let notify = self.arrivals.lock().entry(key.clone()).or_default().clone();
            let arrived = notify.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(head) = self.store.pop(&session.id, topic).await? {
                self.quotas.release(&session.id, head.payload.len() as u64);
                return Ok(Some(head.payload));
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// The oldest message of (session, topic), left in place.
    pub async fn peek(&self, headers: &Headers, topic: &str) -> Result<Option<Bytes>, Error> {
        let session = self.local_reader(headers, topic).await?;
        Ok(self
            .store
            .peek(&session.id, topic)
            .await?
            .map(|h| h.payload))
    }

    /// Drops every queue of the session (pyfate's component cleanup). Allowed for any
    /// well-formed session: it only removes what this party's components would read.
    pub async fn release(&self, headers: &Headers) -> Result<u64, Error> {
        let session = session_of(headers)?;
        self.drop_session(&session.id).await
    }

    /// Drops a session's queues (its attempt ended here, or release); the bytes dropped.
    pub async fn drop_session(&self, session_id: &str) -> Result<u64, Error> {
        Session::parse(session_id).map_err(Error::InvalidArgument)?;
        self.directory.forget(session_id);
        let bytes = self.store.drop_session(session_id).await?;
        self.quotas.forget(session_id);
        self.arrivals
            .lock()
            .retain(|(session, _), _| session != session_id);
        if bytes > 0 {
            tracing::info!(session = %session_id, bytes, "session's queues dropped");
        }
        Ok(bytes)
    }

    /// Every `transfer.sweep_interval_ms`, drops the queues of sessions whose attempt no
    /// longer runs here (the task-controller's word; sessions it cannot answer for are kept).
    pub async fn sweep(&self, stop: CancellationToken) {
        let every = Duration::from_millis(self.limits.sweep_interval_ms.max(100));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let sessions = match self.store.sessions().await {
                Ok(sessions) => {
                    tracing::debug!(
                        sessions = sessions.len(),
                        commits = self.store.commits(),
                        "sweep"
                    );
                    sessions
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sweep: cannot list sessions");
                    continue;
                }
            };
            for id in sessions {
                let Ok(session) = Session::parse(&id) else {
                    continue;
                };
                match self.directory.ask(&session).await {
                    Ok(SessionState::Closed) => {
                        if let Err(e) = self.drop_session(&id).await {
                            tracing::warn!(session = %id, error = %e, "sweep: drop failed");
                        }
                    }
                    Ok(SessionState::Running(_) | SessionState::Pending) => {}
                    Err(e) => tracing::debug!(session = %id, reason = %e.0, "sweep: kept"),
                }
            }
        }
    }

    async fn local_reader(&self, headers: &Headers, topic: &str) -> Result<Session, Error> {
        let session = session_of(headers)?;
        check_topic(topic)?;
        if let Some(from) = &headers.from_node_id
            && from != &self.party_id
        {
            return Err(Error::Unauthenticated(format!(
                "x-ptp-from-node-id is party {from}, but this is party {}'s gateway: a component reads only its own party's queues",
                self.party_id
            )));
        }
        self.running(&session).await?;
        Ok(session)
    }

    /// The session's running attempt here. One whose task waits to start here is
    /// `UNAVAILABLE` (a sending gateway retries until it starts); any other is refused.
    async fn running(&self, session: &Session) -> Result<Arc<Running>, Error> {
        let state = self
            .directory
            .running(session)
            .await
            .map_err(|e| Error::Unavailable(e.0))?;
        match state {
            SessionState::Running(running) => Ok(running),
            SessionState::Pending => Err(Error::Unavailable(format!(
                "session {} has not started on party {} yet",
                session.id, self.party_id
            ))),
            SessionState::Closed => Err(Error::PermissionDenied(format!(
                "session {} is not a running task attempt on party {} (component {} version {} of job {})",
                session.id, self.party_id, session.component, session.version, session.job_id
            ))),
        }
    }

    fn check_size(&self, len: usize) -> Result<(), Error> {
        if len as u64 > self.limits.max_message_bytes {
            return Err(Error::TooLarge(format!(
                "message of {len} bytes is larger than transfer.max_message_bytes = {}",
                self.limits.max_message_bytes
            )));
        }
        Ok(())
    }

    /// Stores the message once there is room for it in the quotas, then wakes its readers.
    async fn enqueue(&self, message: NewMessage) -> Result<bool, Error> {
        let size = message.payload.len() as u64;
        self.quotas.reserve(&message.session_id, size).await?;
        let session_id = message.session_id.clone();
        let key = (message.session_id.clone(), message.topic.clone());
        match self.store.insert(message).await {
            Ok(stored) => {
                if !stored {
                    tracing::info!(session = %session_id, "message already stored; a repeated delivery is not queued again");
                    self.quotas.release(&session_id, size);
                }
                if let Some(notify) = self.arrivals.lock().get(&key) {
                    notify.notify_waiters();
                }
                Ok(stored)
            }
            Err(e) => {
                self.quotas.release(&session_id, size);
                Err(e.into())
            }
        }
    }

    /// Delivers to the target party's gateway, retrying transient failures with the same
    /// message id (the receiver stores it once) until `transfer.deliver_timeout_ms`.
    async fn forward(&self, delivery: Delivery) -> Result<(), Error> {
        let party = delivery.target_party_id.clone();
        if !self.peers.knows(&party) {
            return Err(Error::PermissionDenied(format!(
                "no route to party {party} in the route table of party {}'s gateway",
                self.party_id
            )));
        }
        let budget = Duration::from_millis(self.limits.deliver_timeout_ms);
        let deadline = tokio::time::Instant::now() + budget;
        let mut pause = Duration::from_millis(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self
                .peers
                .deliver(&delivery, left.max(Duration::from_millis(1)))
                .await
            {
                Ok(()) => return Ok(()),
                Err(DeliverError::Refused(code, message)) => {
                    return Err(Error::Refused {
                        party,
                        code: code_of(code),
                        message,
                    });
                }
                Err(DeliverError::Full(message)) => {
                    return Err(Error::Full(format!("party {party}'s gateway: {message}")));
                }
                Err(DeliverError::Transient(reason)) => {
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(Error::Unavailable(format!(
                            "party {party}'s gateway did not take the message from party {} within {} ms (tried again with the same message id); the last failure: {reason}",
                            self.party_id, self.limits.deliver_timeout_ms
                        )));
                    }
                    tracing::debug!(party = %party, reason = %reason, "delivery failed; retrying with the same message id");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(1_000));
                }
            }
        }
    }
}

fn session_of(headers: &Headers) -> Result<Session, Error> {
    if headers.session_id.is_empty() {
        return Err(Error::InvalidArgument(
            "the x-ptp-session-id header is missing".into(),
        ));
    }
    Session::parse(&headers.session_id).map_err(Error::InvalidArgument)
}

fn check_topic(topic: &str) -> Result<(), Error> {
    if topic.is_empty() || topic.len() > 1024 {
        return Err(Error::InvalidArgument(format!(
            "topic: must be 1 to 1024 bytes, got {}",
            topic.len()
        )));
    }
    Ok(())
}

/// A receiver's refusal, classified as the receiver did.
fn code_of(code: tonic::Code) -> Code {
    match code {
        tonic::Code::InvalidArgument => Code::InvalidArgument,
        tonic::Code::PermissionDenied => Code::PermissionDenied,
        tonic::Code::Unauthenticated => Code::Unauthenticated,
        tonic::Code::ResourceExhausted => Code::ResourceExhausted,
        tonic::Code::FailedPrecondition => Code::FailedPrecondition,
        tonic::Code::NotFound => Code::NotFound,
        tonic::Code::AlreadyExists => Code::AlreadyExists,
        _ => Code::Internal,
    }
}
