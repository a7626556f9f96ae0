//! The scheduler's use cases, one file each: submit, control (stop, rerun), drive (reports and
//! the drive loop), queue, repair, status (job status writes and the outbox), query; the timer
//! list in `timers`. The rules they apply are pure functions in [`crate::domain`].
//!
//! Scheduling is event-driven: a report that ends a task drives its job at once, which derives
//! the federated task and job statuses and starts every task whose upstream components have
//! succeeded. All decisions about one job are taken under that job's lock (a [`JobGuard`]);
//! every status write is a compare-and-set. Every party call goes through [`Remote`].

mod control;
mod data;
mod drive;
mod query;
mod queue;
mod repair;
mod status;
mod submit;
mod timers;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::dsl::{self, JobSpec};
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, ids};
use fedflow_rpc::error::{Code, RemoteError, ServiceError};
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedMutexGuard, broadcast};

pub use self::query::{Located, TaskView};
use crate::config::Scheduling;
use crate::domain::plan::JobLimits;
use crate::events::Event;
use crate::remote::Remote;
use crate::store::{self, Job, Store};

/// How many jobs' participants are kept parsed before the cache starts afresh: more than a
/// listing's largest page, few enough (about half a KiB each) that a long-running scheduler
/// holding them for every job it ever showed stays small.
const PARTICIPANTS_CACHED: usize = 2_048;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Remote(#[from] RemoteError),
    #[error("store: {0}")]
    Store(#[from] store::Error),
    #[error(transparent)]
    Denied(#[from] access::Denied),
    /// The queue is full: try again after `retry_after_ms`.
    #[error("{message}")]
    QueueFull {
        message: String,
        retry_after_ms: u64,
    },
}

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Remote(e) if e.is_transient() => Code::Unavailable,
            Error::Remote(_) => Code::FailedPrecondition,
            Error::Store(e) if e.is_unavailable() => Code::Unavailable,
            Error::Store(_) => Code::Internal,
            Error::Denied(e) => e.code(),
            Error::QueueFull { .. } => Code::ResourceExhausted,
        }
    }
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    party_id: String,
    store: Store,
    remote: Remote,
    limits: dsl::Limits,
    scheduling: Scheduling,
    events: broadcast::Sender<Event>,
    queue: Notify,
    timers: timers::Timers,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Parsed specs of the jobs in play, by job id: parsed once, served to every use case.
    specs: Mutex<HashMap<String, Arc<JobSpec>>>,
    /// The participants of the jobs shown lately (ended ones too, for listings): parsed once,
    /// at most [`PARTICIPANTS_CACHED`] of them.
    participants: Mutex<HashMap<String, Arc<Vec<Participant>>>>,
    outbox: fedflow_store::Outbox,
    /// The parties of jobs other parties asked about, read once per job.
    known: KnownJobs,
    metrics: crate::metrics::Metrics,
}

/// Proof that the job's lock is held: every decision about the job takes one.
pub(crate) struct JobGuard {
    job_id: String,
    _held: OwnedMutexGuard<()>,
}

impl JobGuard {
    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }
}

impl App {
    pub fn new(
        party_id: String,
        store: Store,
        remote: Remote,
        limits: dsl::Limits,
        scheduling: Scheduling,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        let (events, _) = broadcast::channel(4096);
        let outbox = store.outbox();
        App {
            inner: Arc::new(Inner {
                party_id,
                store,
                remote,
                limits,
                scheduling,
                events,
                queue: Notify::new(),
                timers: timers::Timers::default(),
                locks: Mutex::new(HashMap::new()),
                specs: Mutex::new(HashMap::new()),
                participants: Mutex::new(HashMap::new()),
                outbox,
                known: KnownJobs::default(),
                metrics,
            }),
        }
    }

    /// The outbox sender (for its gauges).
    pub fn outbox(&self) -> &fedflow_store::Outbox {
        &self.inner.outbox
    }

    /// Sets the job gauges from the job table (at start-up).
    pub async fn count_jobs(&self) -> Result<(), Error> {
        let counts = self.store().count_jobs_by_status().await?;
        self.inner.metrics.counted(&counts);
        Ok(())
    }

    /// The job, task and party tables of the jobs this party schedules.
    fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Delivers an outbox command (the outbox retries it).
    async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        self.inner.remote.deliver(command).await
    }

    fn publish(&self, event: Event) {
        let _ = self.inner.events.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub fn party_id(&self) -> &str {
        &self.inner.party_id
    }

    /// Serialises every decision about one job.
    async fn lock(&self, job_id: &str) -> JobGuard {
        let mutex = self
            .inner
            .locks
            .lock()
            .entry(job_id.to_owned())
            .or_default()
            .clone();
        let held = mutex.lock_owned().await;
        self.recall_trace(job_id).await;
        JobGuard {
            job_id: job_id.to_owned(),
            _held: held,
        }
    }

    /// Makes the job's stored trace context known to this process again (after a restart),
    /// so its spans join the job's trace. Only when spans are exported; best effort.
    async fn recall_trace(&self, job_id: &str) {
        use fedflow_telemetry::context;
        if !context::exporting() || context::jobs::get(job_id).is_some() {
            return;
        }
        match self.store().trace_parent(job_id).await {
            Ok(Some(traceparent)) => {
                context::jobs::remember(job_id, &context::carrier(&traceparent))
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(job = %job_id, error = %e, "cannot read the job's trace"),
        }
    }

    /// Drops the locks no one holds or waits for.
    fn prune_locks(&self) {
        self.inner
            .locks
            .lock()
            .retain(|_, m| Arc::strong_count(m) > 1);
    }

    /// The job's parsed spec, from the cache while the job is in play.
    pub(crate) fn spec(&self, job: &Job) -> Result<Arc<JobSpec>, Error> {
        if let Some(spec) = self.inner.specs.lock().get(&job.job_id) {
            return Ok(spec.clone());
        }
        let spec = Arc::new(
            dsl::parse(&job.dsl, &job.conf, &self.inner.limits).map_err(|e| {
                store::Error::Corrupt(format!("stored job {} no longer parses: {e}", job.job_id))
            })?,
        );
        // Only jobs still in play are cached; ended ones are rarely asked about again.
        if !job.status.is_end() {
            let mut specs = self.inner.specs.lock();
            if specs.len() > self.inner.scheduling.spec_cache_size {
                specs.clear();
            }
            specs.insert(job.job_id.clone(), spec.clone());
        }
        Ok(spec)
    }

    /// The job's participants, from the spec cache or parsed once and kept (a job's parties
    /// never change), so a listing of ended jobs parses none of them twice.
    pub(crate) fn participants(&self, job: &Job) -> Result<Arc<Vec<Participant>>, Error> {
        if let Some(known) = self.inner.participants.lock().get(&job.job_id) {
            return Ok(known.clone());
        }
        let participants = Arc::new(self.spec(job)?.participants());
        let mut cache = self.inner.participants.lock();
        if cache.len() >= PARTICIPANTS_CACHED {
            cache.clear();
        }
        cache.insert(job.job_id.clone(), participants.clone());
        Ok(participants)
    }

    /// Forgets an ended job's spec (a rerun parses it again).
    fn forget_spec(&self, job_id: &str) {
        self.inner.specs.lock().remove(job_id);
    }

    /// The job's time limits, retry policy and parallelism.
    fn limits(&self, spec: &JobSpec) -> JobLimits {
        JobLimits::from_spec(spec, &self.inner.scheduling)
    }

    async fn job(&self, job_id: &str) -> Result<Job, Error> {
        self.store().job(job_id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "job {job_id} is not scheduled by party {}",
                self.inner.party_id
            ))
        })
    }

    /// The job, locked, with its spec, while it is still in `status`; None once it moved on.
    async fn locked_in(
        &self,
        job_id: &str,
        status: JobStatus,
    ) -> Result<Option<(JobGuard, Job, Arc<JobSpec>)>, Error> {
        let guard = self.lock(job_id).await;
        let job = self.job(job_id).await?;
        if job.status != status {
            return Ok(None);
        }
        let spec = self.spec(&job)?;
        Ok(Some((guard, job, spec)))
    }

    /// A job this party schedules.
    pub async fn job_here(&self, job_id: &str) -> Result<Job, Error> {
        self.job(job_id).await
    }

    /// Refuses another party's call about `job_id` unless it takes part in the job, which this
    /// party must schedule. This party's own calls pass.
    pub async fn authorize(&self, caller: &Caller, job_id: &str) -> Result<(), Error> {
        if *caller == Caller::Local {
            return Ok(());
        }
        let job = match self.inner.known.get(job_id) {
            Some(known) => Some(known),
            None => {
                ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                match self.store().job(job_id).await? {
                    None => None,
                    Some(job) => {
                        let participants = self
                            .spec(&job)
                            .map(|spec| spec.party_ids())
                            .unwrap_or_default();
                        Some(self.inner.known.insert(
                            job_id,
                            JobParties {
                                scheduler: self.inner.party_id.clone(),
                                participants: Some(participants),
                            },
                        ))
                    }
                }
            }
        };
        Ok(caller.may(job_id, job.as_deref(), Need::Participant)?)
    }
}

/// A stored spec that no longer yields its plans is a corrupt row.
fn corrupt(e: impl std::fmt::Display) -> Error {
    Error::Store(store::Error::Corrupt(e.to_string()))
}
