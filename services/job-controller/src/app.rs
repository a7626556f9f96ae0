//! The job-controller's use cases. Each re-validates what it is sent (a party never trusts the
//! scheduler's parsing), writes with a compare-and-set, and is idempotent: a repeated create,
//! apply, return, start or status update answers as the first did and changes nothing more.

use std::sync::Arc;

use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::dsl::{self, Limits};
use fedflow_core::ids::{self, Participant};
use fedflow_core::{JobStatus, TaskStatus, Transition};
use fedflow_rpc::error::{Code, RemoteError, ServiceError};
use fedflow_rpc::now_ms;

use crate::config::Resources;
use crate::store::{self, Allocation, Grant, PartyJob, Store};
use crate::tasks::TaskControllerClient;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
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
            Error::InvalidArgument(_) => Code::InvalidArgument,
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
pub struct CreateJob {
    pub job_id: String,
    pub dsl: String,
    pub conf: String,
    pub who: Participant,
    pub scheduler_party_id: String,
}

pub struct ResourceView {
    pub capacity: Resources,
    pub free_cores: u32,
    pub free_memory_mb: u32,
    pub allocations: Vec<Allocation>,
}

#[derive(Clone)]
pub struct App {
    party_id: String,
    capacity: Resources,
    store: Store,
    tasks: TaskControllerClient,
    outbox: fedflow_store::Outbox,
    limits: Limits,
    /// The parties of jobs other parties asked about.
    known: Arc<KnownJobs>,
}

impl App {
    pub fn new(
        party_id: String,
        capacity: Resources,
        store: Store,
        tasks: TaskControllerClient,
    ) -> Self {
        App {
            party_id,
            capacity,
            outbox: store.outbox(),
            store,
            tasks,
            limits: Limits::default(),
            known: Arc::default(),
        }
    }

    /// Delivers the outbox's commands to the task-controller until `shutdown`.
    pub async fn run_outbox(&self, shutdown: tokio_util::sync::CancellationToken) {
        self.outbox
            .run(shutdown, |command| {
                let tasks = self.tasks.clone();
                async move { tasks.deliver(command).await }
            })
            .await;
    }

    /// Releases, every `period`, reservations that should not exist: of jobs that ended or
    /// are unknown here, and of jobs still not running `reservation_timeout` after the grant
    /// (their scheduler stopped between asking and starting).
    pub async fn run_reconciler(
        &self,
        period: std::time::Duration,
        reservation_timeout: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let stale_before =
                now_ms() - i64::try_from(reservation_timeout.as_millis()).unwrap_or(i64::MAX / 2);
            match self.store.stray_allocations(stale_before).await {
                Ok(stray) => {
                    for a in stray {
                        match self.store.release(&a.job_id, &a.role).await {
                            Ok(true) => {
                                tracing::info!(job = %a.job_id, role = %a.role, cores = a.cores, "released a stray reservation")
                            }
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(job = %a.job_id, error = %e, "could not release a stray reservation")
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reservation check failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    fn check_party(&self, who: &Participant) -> Result<(), Error> {
        ids::role(&who.role).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if who.party_id != self.party_id {
            return Err(Error::InvalidArgument(format!(
                "party_id {:?} is not this party ({})",
                who.party_id, self.party_id
            )));
        }
        Ok(())
    }

    /// Stores the party's job row (`ready`) and its task rows (version 0); answers which
    /// components run here.
    pub async fn create_job(&self, job: CreateJob) -> Result<Vec<(String, bool)>, Error> {
        ids::job_id(&job.job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::party_id(&job.scheduler_party_id)
            .map_err(|e| Error::InvalidArgument(format!("scheduler_party_id: {e}")))?;
        self.check_party(&job.who)?;
        let spec = dsl::parse(&job.dsl, &job.conf, &self.limits)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !spec.participants().contains(&job.who) {
            return Err(Error::InvalidArgument(format!(
                "{} is not a participant of job {}",
                job.who, job.job_id
            )));
        }
        if spec.initiator.party_id != job.scheduler_party_id {
            return Err(Error::InvalidArgument(format!(
                "scheduler party {} is not the job's initiator {}",
                job.scheduler_party_id, spec.initiator
            )));
        }
        let params = spec
            .job_params(&job.who)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let cores = params.job_cores();
        let memory = params.job_memory_mb();
        if cores > self.capacity.cores {
            return Err(Error::FailedPrecondition(format!(
                "party {} ({}) can never run this job: it needs {cores} cores (task_cores {} x task_parallelism {}) and has {} in all",
                self.party_id,
                job.who.role,
                params.task_cores,
                params.task_parallelism,
                self.capacity.cores
            )));
        }
        if self.capacity.memory_mb > 0 && memory > self.capacity.memory_mb {
            return Err(Error::FailedPrecondition(format!(
                "party {} ({}) can never run this job: it needs {memory} MB and has {} MB in all",
                self.party_id, job.who.role, self.capacity.memory_mb
            )));
        }
        let plans = spec
            .task_plans(&job.who)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let now = now_ms();
        let row = PartyJob {
            job_id: job.job_id.clone(),
            role: job.who.role.clone(),
            party_id: job.who.party_id.clone(),
            status: JobStatus::Ready,
            reason: String::new(),
            scheduler_party_id: job.scheduler_party_id.clone(),
            dsl: job.dsl,
            conf: job.conf,
            cores,
            memory_mb: memory,
            create_ms: now,
            start_ms: 0,
            end_ms: 0,
        };
        if !self.store.insert_job(&row).await? {
            let existing = self.store.job(&job.job_id, &job.who.role).await?;
            if existing.is_some_and(|e| e.scheduler_party_id != job.scheduler_party_id) {
                return Err(Error::FailedPrecondition(format!(
                    "job {} already exists here with another scheduler",
                    job.job_id
                )));
            }
        }
        self.tasks
            .create_tasks(&job.job_id, &job.who, &job.scheduler_party_id, 0, &plans)
            .await?;
        Ok(plans
            .into_iter()
            .map(|plan| (plan.component, plan.need_run))
            .collect())
    }

    async fn existing(&self, job_id: &str, who: &Participant) -> Result<PartyJob, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.check_party(who)?;
        self.store
            .job(job_id, &who.role)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {job_id} ({}) is not on this party", who)))
    }

    /// Reserves the job's resources; `Err(reason)` inside `Ok` when the ledger lacks room.
    pub async fn apply_resource(
        &self,
        job_id: &str,
        who: &Participant,
    ) -> Result<(Grant, u32, u32), Error> {
        let job = self.existing(job_id, who).await?;
        if job.status.is_end() {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} has ended ({}) on this party",
                job.status
            )));
        }
        let grant = self
            .store
            .apply(
                job_id,
                &who.role,
                job.cores,
                job.memory_mb,
                &self.capacity,
                now_ms(),
            )
            .await?;
        Ok((grant, job.cores, job.memory_mb))
    }

    pub async fn return_resource(&self, job_id: &str, who: &Participant) -> Result<bool, Error> {
        self.existing(job_id, who).await?;
        Ok(self.store.release(job_id, &who.role).await?)
    }

    /// `ready|waiting -> running`.
    pub async fn start_job(&self, job_id: &str, who: &Participant) -> Result<JobStatus, Error> {
        let job = self.existing(job_id, who).await?;
        if job.status == JobStatus::Ready {
            self.set_status(&job, JobStatus::Waiting, "", &[]).await?;
        }
        self.set_status(&job, JobStatus::Running, "", &[]).await?;
        Ok(JobStatus::Running)
    }

    /// Sets the status the scheduler decided. An end status releases the allocation and stops
    /// the job's remaining tasks here, also when repeated (so a retry finishes the effects).
    pub async fn update_job_status(
        &self,
        job_id: &str,
        who: &Participant,
        to: JobStatus,
        reason: &str,
    ) -> Result<(bool, JobStatus), Error> {
        let job = self.existing(job_id, who).await?;
        // A lost `waiting` sync must not block `running`: ready moves through waiting.
        if job.status == JobStatus::Ready && to == JobStatus::Running {
            self.set_status(&job, JobStatus::Waiting, "", &[]).await?;
        }
        // An end stops what still runs here: the stop is committed with the end status (the
        // outbox delivers it to the task-controller), so a crash cannot leave workers running
        // for a job that has ended.
        let mut commands = Vec::new();
        if to.is_end() && to != JobStatus::Success {
            let task_status = match to {
                JobStatus::Timeout => TaskStatus::Timeout,
                _ => TaskStatus::Canceled,
            };
            let why = if reason.is_empty() {
                format!("job {to}")
            } else {
                format!("job {to}: {reason}")
            };
            commands.push(TaskControllerClient::stop_command(
                job_id,
                who,
                task_status,
                &why,
            ));
        }
        let applied = self.set_status(&job, to, reason, &commands).await?;
        if to.is_end() {
            self.store.release(job_id, &who.role).await?;
        }
        if to.is_end() {
            // Acknowledged only once the stop reached the task-controller (a repeated call
            // delivers what is still pending), so that when the scheduler has every party's
            // acknowledgement nothing of the job runs anywhere and a rerun cannot be
            // overtaken by a late stop.
            let tasks = self.tasks.clone();
            self.outbox
                .flush_job(job_id, |c| {
                    let tasks = tasks.clone();
                    async move { tasks.deliver(c).await }
                })
                .await
                .map_err(|e| {
                    Error::Unavailable(format!("the job's tasks are not stopped yet: {e}"))
                })?;
        }
        Ok((applied, to))
    }

    /// Compare-and-set to `to`, re-reading after a lost race; `Ok(false)` when already there.
    async fn set_status(
        &self,
        job: &PartyJob,
        to: JobStatus,
        reason: &str,
        commands: &[fedflow_store::Command],
    ) -> Result<bool, Error> {
        let mut current = self
            .store
            .job(&job.job_id, &job.role)
            .await?
            .map_or(job.status, |row| row.status);
        for _ in 0..5 {
            match current.apply(to) {
                Ok(Transition::AlreadyThere) => return Ok(false),
                Ok(Transition::Changed) => {}
                Err(e) => return Err(Error::FailedPrecondition(e.to_string())),
            }
            let moved = self
                .store
                .cas_status(
                    &job.job_id,
                    &job.role,
                    (current, to),
                    reason,
                    commands,
                    now_ms(),
                )
                .await?;
            if moved {
                tracing::debug!(job = %job.job_id, role = %job.role, from = %current, %to, "job status");
                return Ok(true);
            }
            current = self
                .store
                .job(&job.job_id, &job.role)
                .await?
                .ok_or_else(|| Error::NotFound(format!("job {} vanished", job.job_id)))?
                .status;
        }
        Err(Error::FailedPrecondition(format!(
            "job {} keeps changing concurrently; {to} not applied",
            job.job_id
        )))
    }

    /// The job's rows here (one per role this party plays) and every participant's party id.
    pub async fn get_job(&self, job_id: &str) -> Result<(Vec<PartyJob>, Vec<String>), Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let jobs = self.store.jobs(job_id).await?;
        if jobs.is_empty() {
            return Err(Error::NotFound(format!(
                "job {job_id} is not on party {}",
                self.party_id
            )));
        }
        let participants = self
            .parties_of(&jobs[0])
            .participants
            .clone()
            .unwrap_or_default();
        Ok((jobs, participants.into_iter().collect()))
    }

    pub fn party_id(&self) -> &str {
        &self.party_id
    }

    /// Refuses `caller` unless it plays the part `need`s in the job (this party's own calls
    /// pass): the job's scheduler party from its row, the participants from its conf.
    pub async fn authorize(&self, caller: &Caller, job_id: &str, need: Need) -> Result<(), Error> {
        if *caller == Caller::Local {
            return Ok(());
        }
        let job = self.parties(job_id).await?;
        Ok(caller.may(job_id, job.as_deref(), need)?)
    }

    /// The job's parties, read once per job; `None` when the job is not here.
    async fn parties(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Error> {
        if let Some(known) = self.known.get(job_id) {
            return Ok(Some(known));
        }
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let job = self.store.jobs(job_id).await?.into_iter().next();
        Ok(job.map(|job| self.parties_of(&job)))
    }

    /// The parties of the job `job` is a row of: its scheduler party, and the participants
    /// from its conf (parsed once per job).
    fn parties_of(&self, job: &PartyJob) -> Arc<JobParties> {
        if let Some(known) = self.known.get(&job.job_id) {
            return known;
        }
        let participants = dsl::parse(&job.dsl, &job.conf, &self.limits)
            .map(|spec| spec.party_ids())
            .unwrap_or_default();
        self.known.insert(
            &job.job_id,
            JobParties {
                scheduler: job.scheduler_party_id.clone(),
                participants: Some(participants),
            },
        )
    }

    pub async fn resources(&self) -> Result<ResourceView, Error> {
        let allocations = self.store.allocations().await?;
        let used: u32 = allocations.iter().map(|a| a.cores).sum();
        let used_memory: u32 = allocations.iter().map(|a| a.memory_mb).sum();
        Ok(ResourceView {
            free_cores: self.capacity.cores.saturating_sub(used),
            free_memory_mb: self.capacity.memory_mb.saturating_sub(used_memory),
            capacity: self.capacity.clone(),
            allocations,
        })
    }
}
