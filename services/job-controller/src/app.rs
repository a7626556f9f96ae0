//! The job-controller's use cases. Each takes a command whose ids the gRPC layer has already
//! checked, decides with the pure rules of [`crate::domain`], writes with a compare-and-set,
//! and is idempotent: a repeated create, apply, return, start or status update answers as the
//! first did and changes nothing more. Jobs: `app/jobs.rs`; the ledger: `app/resources.rs`.
//! Task rows and their stops are the scheduler's: this service calls its task-controller only to
//! create the version-0 rows the scheduler planned and sent with `CreateJob` (so creating a job
//! is one party call), and to deliver `StopTasks` commands that earlier versions left in its
//! outbox.

mod jobs;
mod resources;

use std::sync::Arc;

use fedflow_core::JobStatus;
use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::dsl::{self, Limits};
use fedflow_core::ids::{self, FieldError, JobId, Participant, PartyId, Role};
use fedflow_rpc::error::{Code, RemoteError, ServiceError};
use tokio_util::sync::CancellationToken;

use crate::domain::{Capacity, JobView, PartyJob};
use crate::remote::TaskControllerClient;
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    InvalidField(#[from] FieldError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("task-controller: {0}")]
    TaskController(#[from] RemoteError),
    #[error(transparent)]
    Denied(#[from] access::Denied),
    #[error("store: {0}")]
    Store(#[from] store::Error),
}

impl ServiceError for Error {
    fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::InvalidField(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::Denied(e) => e.code(),
            Error::TaskController(e) if e.is_transient() => Code::Unavailable,
            Error::TaskController(_) => Code::FailedPrecondition,
            Error::Store(e) if e.is_unavailable() => Code::Unavailable,
            Error::Store(_) => Code::Internal,
        }
    }
}

/// A job to create on this party.
#[derive(Debug, Clone)]
pub struct CreateJob {
    /// The row to create.
    pub job: JobRef,
    pub dsl: String,
    pub conf: String,
    pub scheduler_party_id: PartyId,
    /// Version 0 of the participant's tasks, as the scheduler planned them (empty from a
    /// scheduler that sends `CreateTasks` itself).
    pub tasks: Vec<dsl::TaskPlan>,
}

/// The row a call is about: a job, as one participant.
#[derive(Debug, Clone)]
pub struct JobRef {
    pub job_id: JobId,
    pub role: Role,
    pub party_id: PartyId,
}

impl JobRef {
    /// The participant, as the DSL and the task-controller client name it.
    pub fn who(&self) -> Participant {
        Participant {
            role: self.role.into_inner(),
            party_id: self.party_id.to_string(),
        }
    }
}

/// The status a job's scheduler decided for a row.
#[derive(Debug, Clone)]
pub struct UpdateJobStatus {
    pub job: JobRef,
    pub status: JobStatus,
    pub reason: String,
}

/// The job-controller: cheap to clone (one shared [`Inner`]).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    party_id: String,
    capacity: Capacity,
    store: Store,
    tasks: TaskControllerClient,
    outbox: fedflow_store::Outbox,
    limits: Limits,
    /// The parties of jobs other parties asked about, read once per job.
    known: KnownJobs,
}

impl App {
    pub fn new(
        party_id: String,
        capacity: Capacity,
        store: Store,
        tasks: TaskControllerClient,
    ) -> Self {
        App {
            inner: Arc::new(Inner {
                party_id,
                capacity,
                outbox: store.outbox(),
                store,
                tasks,
                limits: Limits::default(),
                known: KnownJobs::default(),
            }),
        }
    }

    /// The outbox sender (for its gauges).
    pub fn outbox(&self) -> &fedflow_store::Outbox {
        &self.inner.outbox
    }

    pub fn party_id(&self) -> &str {
        &self.inner.party_id
    }

    /// Delivers the outbox's commands to the task-controller until `shutdown`.
    pub async fn run_outbox(&self, shutdown: CancellationToken) {
        let tasks = self.inner.tasks.clone();
        self.inner
            .outbox
            .run(shutdown, move |command| {
                let tasks = tasks.clone();
                async move { tasks.deliver(command).await }
            })
            .await;
    }

    /// Refuses `caller` unless it plays the part `need`s in the job (this party's own calls
    /// pass): the job's scheduler party from its row, the participants kept with it.
    pub async fn authorize(&self, caller: &Caller, job_id: &str, need: Need) -> Result<(), Error> {
        if *caller == Caller::Local {
            return Ok(());
        }
        let job = self.parties(job_id).await?;
        Ok(caller.may(job_id, job.as_deref(), need)?)
    }

    /// The job's rows here (one per role this party plays) and every participant's party id.
    pub async fn get_job(&self, job_id: &JobId) -> Result<JobView, Error> {
        let jobs = self.inner.store.jobs(job_id.as_str()).await?;
        let Some(first) = jobs.first() else {
            return Err(Error::NotFound(format!(
                "job {job_id} is not on party {}",
                self.inner.party_id
            )));
        };
        let participants = self
            .parties_of(first)
            .participants
            .clone()
            .unwrap_or_default();
        Ok(JobView {
            jobs,
            participants: participants.into_iter().collect(),
        })
    }

    /// The job's parties, read once per job; `None` when the job is not here.
    async fn parties(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Error> {
        if let Some(known) = self.inner.known.get(job_id) {
            return Ok(Some(known));
        }
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let job = self.inner.store.jobs(job_id).await?.into_iter().next();
        Ok(job.map(|job| self.parties_of(&job)))
    }

    /// The parties of the job `job` is a row of: its scheduler party, and the participants
    /// kept with the row at creation (a row stored before they were kept has its conf parsed,
    /// once: the result is remembered with the job).
    fn parties_of(&self, job: &PartyJob) -> Arc<JobParties> {
        if let Some(known) = self.inner.known.get(&job.job_id) {
            return known;
        }
        let participants = job.participants.clone().unwrap_or_else(|| {
            dsl::parse(&job.dsl, &job.conf, &self.inner.limits)
                .map(|spec| spec.party_ids())
                .unwrap_or_default()
        });
        self.inner.known.insert(
            &job.job_id,
            JobParties {
                scheduler: job.scheduler_party_id.clone(),
                participants: Some(participants),
            },
        )
    }

    /// `InvalidArgument` unless the row is this party's.
    fn check_party(&self, job: &JobRef) -> Result<(), Error> {
        if job.party_id != *self.inner.party_id {
            return Err(Error::InvalidArgument(format!(
                "party_id {:?} is not this party ({})",
                job.party_id.as_str(),
                self.inner.party_id
            )));
        }
        Ok(())
    }

    /// The row `job` names, which must be here.
    async fn existing(&self, job: &JobRef) -> Result<PartyJob, Error> {
        self.check_party(job)?;
        self.inner
            .store
            .job(job.job_id.as_str(), job.role.as_str())
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "job {} ({}) is not on this party",
                    job.job_id,
                    job.who()
                ))
            })
    }
}
