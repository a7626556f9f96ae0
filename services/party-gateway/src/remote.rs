//! The data plane's outgoing calls: this party's task-controller (`Sessions.GetSession`: is
//! a session a running attempt here?) and job-controller (`GetJob`: the job's participants),
//! and other parties' gateways (`Transfer.Deliver` over the mTLS federation link). Answers are
//! plain values; generated types stay here.
//!
//! A positive session answer is kept `transfer.session_cache_ms` (an attempt that ends is
//! forgotten at once when the task-controller says so); a negative one is never kept. A
//! job's participants never change and are kept.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedflow_core::access::{JobParties, KnownJobs};
use fedflow_proto::gateway::v1 as gw;
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::taskcontroller::v1 as tc;
use parking_lot::Mutex;
use tonic::transport::Channel;

use fedflow_core::session::Session;

/// A running attempt of a session on this party, and who takes part in its job.
#[derive(Debug, Clone)]
pub struct Running {
    pub scheduler: String,
    pub participants: BTreeSet<String>,
}

/// What this party's task-controller says of a session.
#[derive(Debug, Clone)]
pub enum SessionState {
    Running(Arc<Running>),
    /// Its task waits here to be started: not yet, but soon.
    Pending,
    /// No attempt runs or waits here (never did, or ended).
    Closed,
}

/// Why a question could not be answered: the reason, for an `UNAVAILABLE` refusal.
#[derive(Debug, Clone)]
pub struct Unreachable(pub String);

/// Each job's scheduler and participants, from this party's job-controller (`GetJob`), kept:
/// a job's parties never change. Both the federation port's policy and the data plane ask.
pub struct JobParticipants {
    client: jc::job_controller_client::JobControllerClient<Channel>,
    known: KnownJobs,
}

impl JobParticipants {
    pub fn new(job_controller: Channel) -> JobParticipants {
        JobParticipants {
            client: jc::job_controller_client::JobControllerClient::new(job_controller),
            known: KnownJobs::default(),
        }
    }

    /// The job's parties; `None` for a job this party does not know.
    pub async fn of(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Unreachable> {
        if let Some(known) = self.known.get(job_id) {
            return Ok(Some(known));
        }
        let answer = self
            .client
            .clone()
            .get_job(jc::GetJobRequest {
                job_id: job_id.to_owned(),
            })
            .await;
        let reply = match answer {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => {
                return Err(Unreachable(format!(
                    "cannot read job {job_id}'s participants from this party's job-controller: {}",
                    status.message()
                )));
            }
        };
        let Some(scheduler) = reply.jobs.first().map(|job| job.scheduler_party_id.clone()) else {
            return Ok(None);
        };
        Ok(Some(self.known.insert(
            job_id,
            JobParties {
                scheduler,
                participants: Some(reply.participants.into_iter().collect()),
            },
        )))
    }
}

pub struct Directory {
    sessions: tc::sessions_client::SessionsClient<Channel>,
    jobs: JobParticipants,
    cache: Mutex<HashMap<String, (Instant, Arc<Running>)>>,
    ttl: Duration,
}

impl Directory {
    pub fn new(task_controller: Channel, job_controller: Channel, ttl: Duration) -> Directory {
        Directory {
            sessions: tc::sessions_client::SessionsClient::new(task_controller),
            jobs: JobParticipants::new(job_controller),
            cache: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// The session's running attempt here, or why there is none.
    pub async fn running(&self, session: &Session) -> Result<SessionState, Unreachable> {
        if let Some((at, running)) = self.cache.lock().get(&session.id)
            && at.elapsed() < self.ttl
        {
            return Ok(SessionState::Running(running.clone()));
        }
        let state = self.ask(session).await?;
        if let SessionState::Running(running) = &state {
            let mut cache = self.cache.lock();
            if cache.len() >= 100_000 {
                cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
            }
            cache.insert(session.id.clone(), (Instant::now(), running.clone()));
        }
        Ok(state)
    }

    /// Asks the task-controller, skipping the cache (the sweep).
    pub async fn ask(&self, session: &Session) -> Result<SessionState, Unreachable> {
        let reply = self
            .sessions
            .clone()
            .get_session(tc::GetSessionRequest {
                session_id: session.id.clone(),
            })
            .await
            .map_err(|s| {
                Unreachable(format!(
                    "cannot ask this party's task-controller about session {}: {}",
                    session.id,
                    s.message()
                ))
            })?
            .into_inner();
        if !reply.running {
            return Ok(if reply.pending {
                SessionState::Pending
            } else {
                SessionState::Closed
            });
        }
        let Some(job) = self.job(&session.job_id).await? else {
            return Ok(SessionState::Closed);
        };
        Ok(SessionState::Running(Arc::new(Running {
            scheduler: job.scheduler.clone(),
            participants: job.participants.clone().unwrap_or_default(),
        })))
    }

    /// Forgets a session's positive answer (its attempt ended).
    pub fn forget(&self, session_id: &str) {
        self.cache.lock().remove(session_id);
    }

    async fn job(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Unreachable> {
        self.jobs.of(job_id).await
    }
}

/// One pushed message on its way to another party's gateway.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub session_id: String,
    pub topic: String,
    pub payload: Bytes,
    pub from_party_id: String,
    pub target_party_id: String,
    pub message_id: String,
    pub trace_id: String,
    /// The push span's context (W3C fields), for the receiving gateway.
    pub trace_context: HashMap<String, String>,
}

/// How a delivery failed: worth trying again (`Transient`), the receiver's quota stayed full
/// (`Full`: it waited already), or the receiver's refusal.
#[derive(Debug, Clone)]
pub enum DeliverError {
    Transient(String),
    Full(String),
    Refused(tonic::Code, String),
}

/// Other parties' gateways, over the federation link.
pub struct Peers {
    clients: HashMap<String, gw::transfer_client::TransferClient<Channel>>,
}

impl Peers {
    /// `channels`: the federation channel to each party of the route table.
    pub fn new(channels: HashMap<String, Channel>, max_message: usize) -> Peers {
        Peers {
            clients: channels
                .into_iter()
                .map(|(party, channel)| {
                    let client = gw::transfer_client::TransferClient::new(channel)
                        .max_encoding_message_size(max_message)
                        .max_decoding_message_size(max_message);
                    (party, client)
                })
                .collect(),
        }
    }

    pub fn knows(&self, party: &str) -> bool {
        self.clients.contains_key(party)
    }

    /// Hands `delivery` to its target's gateway once; `Ok` once it is durable there.
    pub async fn deliver(
        &self,
        delivery: &Delivery,
        timeout: Duration,
    ) -> Result<(), DeliverError> {
        let mut client = self
            .clients
            .get(&delivery.target_party_id)
            .ok_or_else(|| {
                DeliverError::Refused(
                    tonic::Code::FailedPrecondition,
                    format!("no route to party {}", delivery.target_party_id),
                )
            })?
            .clone();
        let mut request = tonic::Request::new(gw::DeliverRequest {
            session_id: delivery.session_id.clone(),
            topic: delivery.topic.clone(),
            payload: delivery.payload.clone(),
            from_party_id: delivery.from_party_id.clone(),
            target_party_id: delivery.target_party_id.clone(),
            message_id: delivery.message_id.clone(),
            trace_id: delivery.trace_id.clone(),
            trace_context: delivery.trace_context.clone(),
        });
        request.set_timeout(timeout);
        match client.deliver(request).await {
            Ok(_) => Ok(()),
            Err(s)
                if s.metadata()
                    .get("x-ptp-code")
                    .is_some_and(|c| c == "E0000000700") =>
            {
                Err(DeliverError::Full(s.message().to_owned()))
            }
            Err(s) => {
                let transient = fedflow_rpc::error::RemoteError::from(s.clone()).is_transient();
                if transient {
                    Err(DeliverError::Transient(s.message().to_owned()))
                } else {
                    Err(DeliverError::Refused(s.code(), s.message().to_owned()))
                }
            }
        }
    }
}
