//! The scheduler's use cases: submit, query, stop, rerun, status reports, and the two loops
//! that move jobs: the queue (waiting jobs get resources on every party, all or nothing) and
//! the repair pass (re-drives running jobs and pulls statuses from quiet parties).
//!
//! Scheduling is event-driven: a report that ends a task runs [`App::drive`] for its job at
//! once, which derives the federated task and job statuses (FATE's rules, `fedflow_core::
//! aggregate`) and starts every task whose upstream components have succeeded. All decisions
//! about one job are taken under that job's lock; every status write is a compare-and-set.

mod watch;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::dsl::{self, JobSpec};
use fedflow_core::ids::{self, Participant};
use fedflow_core::{JobStatus, TaskStatus, Transition, aggregate};
use fedflow_rpc::error::{Code, RemoteError, ServiceError};
use fedflow_rpc::{now_micros, now_ms};
use futures::future::join_all;
use tokio::sync::{Notify, OwnedMutexGuard, broadcast};
use tokio_util::sync::CancellationToken;

use crate::config::Scheduling;
use crate::events::Event;
use crate::remote::{Grant, Remote};
use crate::store::{self, Job, Store, Task, TaskParty};

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
        }
    }
}

/// Where a job is scheduled.
pub enum Located {
    Here,
    /// By another party's scheduler.
    At(String),
}

/// Time limits (ms) and the retry policy of one job.
struct JobLimits {
    job_timeout_ms: i64,
    task_timeout_ms: i64,
    queue_timeout_ms: i64,
    auto_retries: u32,
    retry_delay_ms: i64,
}

/// A task version with every party's own status.
pub struct TaskView {
    pub task: Task,
    pub parties: Vec<TaskParty>,
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
    /// Pending `wake_at`s: (due time, job), earliest first.
    timers: Mutex<BTreeSet<(i64, String)>>,
    timer_changed: Notify,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    specs: Mutex<HashMap<String, Arc<JobSpec>>>,
    outbox: fedflow_store::Outbox,
    /// The parties of jobs other parties asked about, read once per job.
    known: KnownJobs,
}

/// The latest version of each component.
fn latest(tasks: Vec<Task>) -> BTreeMap<String, Task> {
    let mut by_component: BTreeMap<String, Task> = BTreeMap::new();
    for task in tasks {
        match by_component.get(&task.component) {
            Some(existing) if existing.version >= task.version => {}
            _ => {
                by_component.insert(task.component.clone(), task);
            }
        }
    }
    by_component
}

impl App {
    pub fn new(
        party_id: String,
        store: Store,
        remote: Remote,
        limits: dsl::Limits,
        scheduling: Scheduling,
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
                timers: Mutex::new(BTreeSet::new()),
                timer_changed: Notify::new(),
                locks: Mutex::new(HashMap::new()),
                specs: Mutex::new(HashMap::new()),
                outbox,
                known: KnownJobs::default(),
            }),
        }
    }

    fn store(&self) -> &Store {
        &self.inner.store
    }

    fn remote(&self) -> &Remote {
        &self.inner.remote
    }

    fn publish(&self, event: Event) {
        let _ = self.inner.events.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Serialises every decision about one job.
    async fn lock(&self, job_id: &str) -> OwnedMutexGuard<()> {
        let mutex = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(job_id.to_owned()).or_default().clone()
        };
        mutex.lock_owned().await
    }

    fn spec(&self, job: &Job) -> Result<Arc<JobSpec>, Error> {
        if let Some(spec) = self
            .inner
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job.job_id)
        {
            return Ok(spec.clone());
        }
        let spec = Arc::new(
            dsl::parse(&job.dsl, &job.conf, &self.inner.limits).map_err(|e| {
                store::Error::Corrupt(format!("stored job {} no longer parses: {e}", job.job_id))
            })?,
        );
        // Only jobs still in play are cached; ended ones are rarely asked about again.
        if !job.status.is_end() {
            let mut specs = self.inner.specs.lock().unwrap_or_else(|e| e.into_inner());
            if specs.len() > 10_000 {
                specs.clear();
            }
            specs.insert(job.job_id.clone(), spec.clone());
        }
        Ok(spec)
    }

    /// The job's time limits and retry policy: the initiator's job parameters, else the
    /// scheduler's defaults.
    fn limits(&self, spec: &JobSpec) -> JobLimits {
        let params = spec.job_params(&spec.initiator).ok();
        let d = &self.inner.scheduling;
        let ms = |secs: Option<u64>, default: u64| {
            i64::try_from(secs.unwrap_or(default).saturating_mul(1000)).unwrap_or(i64::MAX)
        };
        JobLimits {
            job_timeout_ms: ms(
                params.as_ref().and_then(|p| p.timeout_secs),
                d.default_job_timeout_s,
            ),
            task_timeout_ms: ms(
                params.as_ref().and_then(|p| p.task_timeout_secs),
                d.default_task_timeout_s,
            ),
            queue_timeout_ms: ms(
                params.as_ref().and_then(|p| p.queue_timeout_secs),
                d.default_queue_timeout_s,
            ),
            auto_retries: params.as_ref().map_or(0, |p| p.auto_retries),
            retry_delay_ms: params
                .as_ref()
                .map_or(1000, |p| (p.auto_retry_delay_secs * 1000.0) as i64),
        }
    }

    /// Drives the job again at `at_ms` (a retry delay or a time limit falls due then). Held in
    /// one timer list served by [`App::run_timers`]; lost on restart, when the repair pass
    /// catches what falls due meanwhile.
    fn wake_at(&self, job_id: &str, at_ms: i64) {
        let mut timers = self.inner.timers.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = timers.first().map(|(at, _)| *at);
        timers.insert((at_ms, job_id.to_owned()));
        if earliest.is_none_or(|e| at_ms < e) {
            self.inner.timer_changed.notify_one();
        }
    }

    /// Forgets a job's timers (it ended).
    fn forget_timers(&self, job_id: &str) {
        self.inner
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, job)| job != job_id);
    }

    /// Serves the timers set by `wake_at` until `shutdown`.
    pub async fn run_timers(&self, shutdown: CancellationToken) {
        loop {
            let now = now_ms();
            let (due, next): (Vec<String>, Option<i64>) = {
                let mut timers = self.inner.timers.lock().unwrap_or_else(|e| e.into_inner());
                let mut due = Vec::new();
                while let Some((at, _)) = timers.first() {
                    if *at > now {
                        break;
                    }
                    if let Some((_, job)) = timers.pop_first() {
                        due.push(job);
                    }
                }
                (due, timers.first().map(|(at, _)| *at))
            };
            for job_id in due {
                let _guard = self.lock(&job_id).await;
                if let Err(e) = self.drive_locked(&job_id).await {
                    tracing::warn!(job = %job_id, error = %e, "timed drive failed");
                }
            }
            let pause = next.map_or(Duration::from_secs(3600), |at| {
                Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0))
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.timer_changed.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn job(&self, job_id: &str) -> Result<Job, Error> {
        self.store().job(job_id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "job {job_id} is not scheduled by party {}",
                self.inner.party_id
            ))
        })
    }

    /// Validates and stores a job, creates it on every party, and queues it. Returns its id.
    pub async fn submit(
        &self,
        dsl_text: String,
        conf_text: String,
        request_id: String,
    ) -> Result<String, Error> {
        ids::request_id(&request_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !request_id.is_empty()
            && let Some(job) = self.store().job_by_request(&request_id).await?
        {
            return Ok(job.job_id);
        }
        let spec = dsl::parse(&dsl_text, &conf_text, &self.inner.limits)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if spec.initiator.party_id != self.inner.party_id {
            return Err(Error::InvalidArgument(format!(
                "runtime_conf.initiator: party {} is not this scheduler's party {}; submit to the initiator's scheduler",
                spec.initiator.party_id, self.inner.party_id
            )));
        }
        let job_id = ids::new_job_id(now_micros());
        let now = now_ms();
        let participants = spec.participants();
        let retries = self.limits(&spec).auto_retries;
        let tasks: Vec<Task> = spec
            .components
            .iter()
            .map(|c| Task {
                job_id: job_id.clone(),
                component: c.name.clone(),
                version: 0,
                module: c.module.clone(),
                status: TaskStatus::Waiting,
                reason: String::new(),
                retries_left: retries,
                not_before_ms: 0,
                start_ms: 0,
                end_ms: 0,
            })
            .collect();
        let parties: Vec<TaskParty> = spec
            .components
            .iter()
            .flat_map(|c| {
                participants.iter().map(|who| TaskParty {
                    job_id: job_id.clone(),
                    component: c.name.clone(),
                    version: 0,
                    who: who.clone(),
                    status: TaskStatus::Waiting,
                    reason: String::new(),
                    update_ms: now,
                })
            })
            .collect();
        let job = Job {
            job_id: job_id.clone(),
            status: JobStatus::Ready,
            dsl: dsl_text,
            conf: conf_text,
            initiator: spec.initiator.clone(),
            priority: spec.priority(),
            reason: String::new(),
            pending_reason: String::new(),
            cancel_requested: false,
            progress: 0,
            request_id: (!request_id.is_empty()).then(|| request_id.clone()),
            create_ms: now,
            start_ms: 0,
            end_ms: 0,
            queued_ms: now,
        };
        if let Err(e) = self.store().insert_job(&job, &tasks, &parties).await {
            if e.is_unique_violation()
                && let Some(existing) = self.store().job_by_request(&request_id).await?
            {
                return Ok(existing.job_id);
            }
            return Err(e.into());
        }
        let _guard = self.lock(&job_id).await;
        let created = join_all(participants.iter().map(|who| {
            retrying(|| {
                self.remote()
                    .create_job(&job_id, who, &job.dsl, &job.conf, &self.inner.party_id)
            })
        }))
        .await;
        let refusal = participants
            .iter()
            .zip(&created)
            .find_map(|(who, r)| r.as_ref().err().map(|e| (who, e)));
        if let Some((who, err)) = refusal {
            let reason = format!(
                "party {} ({}) refused the job: {err}",
                who.party_id, who.role
            );
            tracing::info!(job = %job_id, %reason, "job failed at creation");
            self.end_job(&job, JobStatus::Failed, &reason).await?;
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} failed: {reason}"
            )));
        }
        self.set_job_status(&job, JobStatus::Waiting, "", &[])
            .await?;
        // Awaited, so a later status can never be overtaken by this one.
        self.sync_job_status(
            &job_id,
            job.queued_ms,
            &participants,
            JobStatus::Waiting,
            "",
        )
        .await;
        self.inner.queue.notify_one();
        tracing::info!(job = %job_id, parties = participants.len(), "job submitted");
        Ok(job_id)
    }

    /// Moves the job with a compare-and-set and announces it.
    /// `commands` are committed with the change (to the outbox) and sent once it is.
    async fn set_job_status(
        &self,
        job: &Job,
        to: JobStatus,
        reason: &str,
        commands: &[fedflow_store::Command],
    ) -> Result<bool, Error> {
        match job.status.apply(to) {
            Ok(Transition::AlreadyThere) => return Ok(false),
            Ok(Transition::Changed) => {}
            Err(e) => return Err(Error::FailedPrecondition(e.to_string())),
        }
        if !self
            .store()
            .cas_job_status(&job.job_id, job.status, to, reason, commands, now_ms())
            .await?
        {
            return Ok(false);
        }
        let reason = if reason.is_empty() && to.is_end() {
            self.job(&job.job_id).await?.reason
        } else {
            reason.to_owned()
        };
        tracing::info!(job = %job.job_id, from = %job.status, %to, %reason, "job status");
        self.publish(Event::Job {
            job_id: job.job_id.clone(),
            time_ms: now_ms(),
            status: to,
            reason,
        });
        Ok(true)
    }

    /// Sends a job status to every participant, in parallel, retrying transient failures.
    /// True when every participant acknowledged it. `epoch` (when the job last entered the
    /// queue) makes each run's status calls their own requests: a rerun's `waiting` is not a
    /// repeat of the first run's.
    async fn sync_job_status(
        &self,
        job_id: &str,
        epoch: i64,
        participants: &[Participant],
        status: JobStatus,
        reason: &str,
    ) -> bool {
        let failures = join_all(participants.iter().map(|who| {
            retrying(move || {
                self.remote()
                    .update_job_status(job_id, epoch, who, status, reason)
            })
        }))
        .await
        .into_iter()
        .zip(participants)
        .filter_map(|(r, who)| r.err().map(|e| (who, e)))
        .inspect(|(who, e)| {
            tracing::warn!(job = %job_id, party = %who.party_id, role = %who.role, %status, error = %e, "status sync failed");
        })
        .count();
        failures == 0
    }

    /// Ends a job: compare-and-set, with the end status for every party committed to the
    /// outbox in the same transaction (each party returns its resources and stops what still
    /// runs when it is delivered); the queue looks again once parties acknowledge.
    async fn end_job(&self, job: &Job, to: JobStatus, reason: &str) -> Result<(), Error> {
        let spec = self.spec(job)?;
        // The stored reason stays when the new one is empty.
        let told = if reason.is_empty() {
            &job.reason
        } else {
            reason
        };
        let commands: Vec<_> = spec
            .participants()
            .iter()
            .map(|who| Remote::job_status_command(&job.job_id, job.queued_ms, who, to, told))
            .collect();
        if !self.set_job_status(job, to, reason, &commands).await? {
            return Ok(());
        }
        self.inner.outbox.wake();
        // An ended job needs no timers and no cached spec (a rerun parses it again).
        self.forget_timers(&job.job_id);
        self.inner
            .specs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&job.job_id);
        Ok(())
    }

    /// Tells every party a task version's federated end status, once, in the background. It
    /// is for display on the parties (their own statuses drive everything), so it is not
    /// worth an outbox write per party on the hot path.
    fn announce_task_status(&self, spec: &JobSpec, task: &Task, status: TaskStatus) {
        let commands: Vec<_> = spec
            .party_ids()
            .into_iter()
            .map(|party| {
                Remote::task_status_command(
                    &task.job_id,
                    &party,
                    &task.component,
                    task.version,
                    status,
                )
            })
            .collect();
        let app = self.clone();
        tokio::spawn(async move {
            join_all(commands.into_iter().map(|c| app.remote().deliver(c))).await;
        });
    }

    /// Delivers the outbox's commands through the gateway until `shutdown`.
    pub async fn run_outbox(&self, shutdown: CancellationToken) {
        self.inner
            .outbox
            .run(shutdown, |command| {
                let app = self.clone();
                async move {
                    let frees = command.method == "UpdateJobStatus";
                    let result = app.remote().deliver(command).await;
                    if result.is_ok() && frees {
                        // A party that learnt of an end released its resources.
                        app.inner.queue.notify_one();
                    }
                    result
                }
            })
            .await;
    }

    pub fn party_id(&self) -> &str {
        &self.inner.party_id
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
                self.store().job(job_id).await?.map(|job| {
                    let participants = dsl::parse(&job.dsl, &job.conf, &self.inner.limits)
                        .map(|spec| spec.party_ids())
                        .unwrap_or_default();
                    self.inner.known.insert(
                        job_id,
                        JobParties {
                            scheduler: self.inner.party_id.clone(),
                            participants: Some(participants),
                        },
                    )
                })
            }
        };
        Ok(caller.may(job_id, job.as_deref(), Need::Participant)?)
    }

    /// A job this party schedules.
    pub async fn job_here(&self, job_id: &str) -> Result<Job, Error> {
        self.job(job_id).await
    }

    pub async fn locate(&self, job_id: &str) -> Result<Located, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if self.store().job(job_id).await?.is_some() {
            return Ok(Located::Here);
        }
        let rows = self
            .remote()
            .party_jobs(&self.inner.party_id, job_id)
            .await
            .map_err(|e| {
                if e.code == tonic::Code::NotFound {
                    Error::NotFound(format!(
                        "job {job_id} not found on party {}",
                        self.inner.party_id
                    ))
                } else {
                    Error::Remote(e)
                }
            })?;
        match rows.into_iter().next() {
            Some((_, scheduler)) if scheduler != self.inner.party_id => Ok(Located::At(scheduler)),
            _ => Err(Error::NotFound(format!(
                "job {job_id} not found on party {}",
                self.inner.party_id
            ))),
        }
    }

    pub async fn list_jobs(&self, limit: u32) -> Result<Vec<Job>, Error> {
        let limit = match limit {
            0 => 20,
            n => n.min(1000),
        };
        Ok(self.store().list_jobs(limit).await?)
    }

    /// The job's tasks (latest versions, or all) with every party's status.
    pub async fn tasks(&self, job_id: &str, all_versions: bool) -> Result<Vec<TaskView>, Error> {
        let job = self.job(job_id).await?;
        let spec = self.spec(&job)?;
        let mut parties = self.store().task_parties(job_id).await?;
        let tasks = self.store().tasks(job_id).await?;
        let mut tasks: Vec<Task> = if all_versions {
            tasks
        } else {
            latest(tasks).into_values().collect()
        };
        let order: HashMap<&str, usize> = spec
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        tasks.sort_by_key(|t| (order.get(t.component.as_str()).copied(), t.version));
        Ok(tasks
            .into_iter()
            .map(|task| {
                let (mine, rest): (Vec<_>, Vec<_>) = parties
                    .drain(..)
                    .partition(|p| p.component == task.component && p.version == task.version);
                parties = rest;
                TaskView {
                    task,
                    parties: mine,
                }
            })
            .collect())
    }

    /// Everything a watcher needs first: the job status, then each task's federated and
    /// party statuses.
    pub async fn snapshot(&self, job_id: &str) -> Result<Vec<Event>, Error> {
        let job = self.job(job_id).await?;
        let now = now_ms();
        let mut events = Vec::new();
        for view in self.tasks(job_id, false).await? {
            for party in &view.parties {
                events.push(Event::Task {
                    job_id: job_id.to_owned(),
                    time_ms: now,
                    component: view.task.component.clone(),
                    version: view.task.version,
                    who: Some(party.who.clone()),
                    status: party.status,
                    reason: party.reason.clone(),
                });
            }
            events.push(Event::Task {
                job_id: job_id.to_owned(),
                time_ms: now,
                component: view.task.component.clone(),
                version: view.task.version,
                who: None,
                status: view.task.status,
                reason: view.task.reason.clone(),
            });
        }
        events.push(Event::Job {
            job_id: job_id.to_owned(),
            time_ms: now,
            status: job.status,
            reason: if job.status == JobStatus::Waiting {
                job.pending_reason
            } else {
                job.reason
            },
        });
        Ok(events)
    }

    /// Records a stop: no new task starts, every party kills the job's workers, the job ends
    /// canceled. Returns the status after the call and what happened.
    pub async fn stop(&self, job_id: &str) -> Result<(JobStatus, String), Error> {
        let _guard = self.lock(job_id).await;
        let job = self.job(job_id).await?;
        if job.status.is_end() {
            return Ok((job.status, format!("job already ended: {}", job.status)));
        }
        if job.cancel_requested {
            return Ok((job.status, "job already stopping".into()));
        }
        let reason = format!(
            "canceled by a stop request to party {}",
            self.inner.party_id
        );
        self.store()
            .request_cancel(job_id, &reason, now_ms())
            .await?;
        let job = self.job(job_id).await?;
        let spec = self.spec(&job)?;
        match job.status {
            JobStatus::Ready | JobStatus::Waiting => {
                self.end_job(&job, JobStatus::Canceled, &reason).await?;
            }
            _ => {
                let results = join_all(spec.participants().iter().map(|who| {
                    retrying(move || {
                        self.remote().stop_tasks(
                            job_id,
                            job.queued_ms,
                            who,
                            None,
                            TaskStatus::Canceled,
                            "job canceled",
                        )
                    })
                }))
                .await;
                for (who, result) in spec.participants().iter().zip(results) {
                    if let Err(e) = result {
                        tracing::warn!(job = %job_id, party = %who.party_id, error = %e, "stop not confirmed by party");
                    }
                }
                self.drive_locked(job_id).await?;
            }
        }
        let job = self.job(job_id).await?;
        Ok((job.status, "job stopping".into()))
    }

    /// Makes new versions of the failed (or named) components and of everything downstream of
    /// them, on every party, and queues the job again under the same id.
    pub async fn rerun(
        &self,
        job_id: &str,
        component: &str,
        force: bool,
    ) -> Result<Vec<String>, Error> {
        let _guard = self.lock(job_id).await;
        let job = self.job(job_id).await?;
        // A repeated rerun request (a retry, a replay) reruns nothing again.
        let request_id = fedflow_store::audit::current_request();
        if !request_id.is_empty() && self.store().job_changed_by(job_id, &request_id).await? {
            tracing::info!(job = %job_id, %request_id, "rerun request seen before; not rerun again");
            return Ok(Vec::new());
        }
        if !job.status.is_end() {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} is {}; only an ended job can be rerun (stop it first)",
                job.status
            )));
        }
        // The end must have reached every party (and each party stopped what it ran) before
        // new versions go out, or a late stop could overtake them.
        self.inner
            .outbox
            .flush_job(job_id, |command| {
                let app = self.clone();
                async move { app.remote().deliver(command).await }
            })
            .await
            .map_err(|e| {
                Error::FailedPrecondition(format!(
                    "job {job_id} cannot be rerun yet: its end has not reached every party ({e}); try again"
                ))
            })?;
        let spec = self.spec(&job)?;
        let latest = latest(self.store().tasks(job_id).await?);
        let roots: Vec<String> = if !component.is_empty() {
            if spec.component(component).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "component: job {job_id} has no component {component:?}"
                )));
            }
            vec![component.to_owned()]
        } else {
            latest
                .values()
                .filter(|t| force || !t.status.is_success())
                .map(|t| t.component.clone())
                .collect()
        };
        if roots.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id}: every component succeeded; nothing to rerun (use --force)"
            )));
        }
        let closure = spec.downstream_closure(&roots);
        let now = now_ms();
        let versions: BTreeMap<String, i32> = closure
            .iter()
            .map(|c| (c.clone(), latest.get(c).map_or(0, |t| t.version + 1)))
            .collect();
        let participants = spec.participants();
        // Create the new versions on every party first; nothing changes here if one refuses.
        let mut creations = Vec::new();
        for who in &participants {
            let plans = spec
                .task_plans(who)
                .map_err(|e| store::Error::Corrupt(e.to_string()))?;
            let mut by_version: BTreeMap<i32, Vec<dsl::TaskPlan>> = BTreeMap::new();
            for plan in plans {
                if let Some(v) = versions.get(&plan.component) {
                    by_version.entry(*v).or_default().push(plan);
                }
            }
            for (version, plans) in by_version {
                creations.push((who.clone(), version, plans));
            }
        }
        let created = join_all(creations.iter().map(|(who, version, plans)| {
            retrying(move || {
                self.remote()
                    .create_tasks(job_id, who, &self.inner.party_id, *version, plans)
            })
        }))
        .await;
        if let Some(err) = created.into_iter().find_map(Result::err) {
            return Err(Error::Remote(err));
        }
        let retries = self.limits(&spec).auto_retries;
        let tasks: Vec<Task> = versions
            .iter()
            .map(|(component, version)| Task {
                job_id: job_id.to_owned(),
                component: component.clone(),
                version: *version,
                module: spec
                    .component(component)
                    .map(|c| c.module.clone())
                    .unwrap_or_default(),
                status: TaskStatus::Waiting,
                reason: String::new(),
                retries_left: retries,
                not_before_ms: 0,
                start_ms: 0,
                end_ms: 0,
            })
            .collect();
        let parties: Vec<TaskParty> = versions
            .iter()
            .flat_map(|(component, version)| {
                participants.iter().map(|who| TaskParty {
                    job_id: job_id.to_owned(),
                    component: component.clone(),
                    version: *version,
                    who: who.clone(),
                    status: TaskStatus::Waiting,
                    reason: String::new(),
                    update_ms: now,
                })
            })
            .collect();
        if !self
            .store()
            .insert_rerun(job_id, job.status, &tasks, &parties, now)
            .await?
        {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} changed while the rerun was prepared; try again"
            )));
        }
        self.publish(Event::Job {
            job_id: job_id.to_owned(),
            time_ms: now,
            status: JobStatus::Waiting,
            reason: String::new(),
        });
        self.sync_job_status(job_id, now, &participants, JobStatus::Waiting, "")
            .await;
        self.inner.queue.notify_one();
        tracing::info!(job = %job_id, components = ?closure, "job rerun");
        Ok(closure.into_iter().collect())
    }

    /// A party's report of its own status of a task version. Returns whether it changed
    /// anything (a repeat or an older status does not).
    pub async fn report(
        &self,
        job_id: &str,
        component: &str,
        version: i32,
        who: &Participant,
        status: TaskStatus,
        reason: &str,
    ) -> Result<bool, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::component(component).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::party_id(&who.party_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let _guard = self.lock(job_id).await;
        let row = self
            .store()
            .task_party(job_id, component, version, who)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "task {component} v{version} of job {job_id} has no row for {who}"
                ))
            })?;
        let applied = self.apply_reported(&row, status, reason).await?;
        if applied {
            self.drive_locked(job_id).await?;
        }
        Ok(applied)
    }

    /// Applies a status a party itself reported (or answered, or was pulled from it).
    async fn apply_reported(
        &self,
        row: &TaskParty,
        to: TaskStatus,
        reason: &str,
    ) -> Result<bool, Error> {
        // A party that reports an outcome of a run before its start was confirmed here (the
        // start's answer was lost and the task ran fast) did run: its `running` is recorded
        // and announced first, so every party's history reads waiting → running → outcome.
        if row.status == TaskStatus::Waiting
            && matches!(
                to,
                TaskStatus::Success | TaskStatus::Failed | TaskStatus::Timeout
            )
            && self
                .apply_party_status(row, TaskStatus::Running, "")
                .await?
        {
            let mut running = row.clone();
            running.status = TaskStatus::Running;
            return self.apply_party_status(&running, to, reason).await;
        }
        self.apply_party_status(row, to, reason).await
    }

    async fn apply_party_status(
        &self,
        row: &TaskParty,
        to: TaskStatus,
        reason: &str,
    ) -> Result<bool, Error> {
        match row.status.apply(to) {
            Ok(Transition::Changed) => {}
            Ok(Transition::AlreadyThere) => return Ok(false),
            Err(_) => {
                tracing::debug!(job = %row.job_id, component = %row.component, from = %row.status, %to, "stale party status ignored");
                return Ok(false);
            }
        }
        if !self
            .store()
            .cas_party_status(row, to, reason, now_ms())
            .await?
        {
            return Ok(false);
        }
        self.publish(Event::Task {
            job_id: row.job_id.clone(),
            time_ms: now_ms(),
            component: row.component.clone(),
            version: row.version,
            who: Some(row.who.clone()),
            status: to,
            reason: reason.to_owned(),
        });
        Ok(true)
    }

    /// Derives federated statuses from party statuses, ends the job when its tasks say so, and
    /// starts every ready task; repeats while starting tasks changes something. Call with the
    /// job's lock held.
    async fn drive_locked(&self, job_id: &str) -> Result<(), Error> {
        for _ in 0..64 {
            let job = self.job(job_id).await?;
            let spec = self.spec(&job)?;
            let parties = self.store().task_parties(job_id).await?;
            let mut latest = latest(self.store().tasks(job_id).await?);
            for task in latest.values_mut() {
                let rows: Vec<&TaskParty> = parties
                    .iter()
                    .filter(|p| p.component == task.component && p.version == task.version)
                    .collect();
                let statuses: Vec<TaskStatus> = rows.iter().map(|p| p.status).collect();
                let federated = aggregate::task_status(&statuses);
                if federated == task.status
                    || !matches!(task.status.apply(federated), Ok(Transition::Changed))
                {
                    continue;
                }
                let reason = if federated.is_interrupt() {
                    rows.iter()
                        .filter(|p| p.status == federated)
                        .map(|p| {
                            format!(
                                "component {} {} on {} {}: {}",
                                task.component, federated, p.who.role, p.who.party_id, p.reason
                            )
                        })
                        .next()
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                if self
                    .store()
                    .cas_task_status(task, federated, &reason, &[], now_ms())
                    .await?
                {
                    if federated.is_end() {
                        self.announce_task_status(&spec, task, federated);
                    }
                    tracing::debug!(job = %job_id, component = %task.component, version = task.version, from = %task.status, to = %federated, "task status");
                    self.publish(Event::Task {
                        job_id: job_id.to_owned(),
                        time_ms: now_ms(),
                        component: task.component.clone(),
                        version: task.version,
                        who: None,
                        status: federated,
                        reason: reason.clone(),
                    });
                    task.status = federated;
                    task.reason = reason;
                }
            }
            if job.status != JobStatus::Running {
                return Ok(());
            }
            let limits = self.limits(&spec);
            let now = now_ms();
            if job.start_ms > 0 && now >= job.start_ms.saturating_add(limits.job_timeout_ms) {
                let reason = format!(
                    "job timeout: still running after {}s (timeout, counted from the job's start)",
                    limits.job_timeout_ms / 1000
                );
                self.end_job(&job, JobStatus::Timeout, &reason).await?;
                return Ok(());
            }
            if self
                .time_out_tasks(&spec, &latest, &parties, &limits, now)
                .await?
            {
                continue;
            }
            if !job.cancel_requested && self.retry_tasks(&spec, &latest, &limits).await? {
                continue;
            }
            let statuses: Vec<TaskStatus> = latest.values().map(|t| t.status).collect();
            let progress = aggregate::progress(&statuses);
            if progress > job.progress {
                self.store().raise_progress(job_id, progress).await?;
            }
            let job_status = aggregate::job_status(&statuses, job.cancel_requested);
            if job_status.is_end() {
                let reason = match job_status {
                    JobStatus::Success => String::new(),
                    JobStatus::Canceled if job.cancel_requested => String::new(),
                    _ => latest
                        .values()
                        .filter(|t| t.status.is_interrupt())
                        .max_by_key(|t| t.status.severity())
                        .map(|t| {
                            if t.version > 0 {
                                format!("{} (attempt {})", t.reason, t.version + 1)
                            } else {
                                t.reason.clone()
                            }
                        })
                        .unwrap_or_default(),
                };
                self.end_job(&job, job_status, &reason).await?;
                return Ok(());
            }
            if job.cancel_requested {
                return Ok(());
            }
            let parallelism = spec
                .job_params(&spec.initiator)
                .map(|p| p.task_parallelism)
                .unwrap_or(1) as usize;
            let running = latest
                .values()
                .filter(|t| t.status == TaskStatus::Running)
                .count();
            let upstream_done: Vec<&Task> = spec
                .components
                .iter()
                .filter_map(|c| latest.get(&c.name))
                .filter(|t| t.status == TaskStatus::Waiting)
                .filter(|t| {
                    spec.component(&t.component).is_some_and(|c| {
                        c.upstream
                            .iter()
                            .all(|u| latest.get(u).is_some_and(|up| up.status.is_success()))
                    })
                })
                .collect();
            // A retry waits out its delay.
            if let Some(due) = upstream_done
                .iter()
                .filter(|t| t.not_before_ms > now)
                .map(|t| t.not_before_ms)
                .min()
            {
                self.wake_at(job_id, due);
            }
            let ready: Vec<Task> = upstream_done
                .into_iter()
                .filter(|t| t.not_before_ms <= now)
                .take(parallelism.saturating_sub(running))
                .cloned()
                .collect();
            if ready.is_empty() {
                return Ok(());
            }
            self.start_tasks(&spec, &ready).await?;
            self.wake_at(job_id, now.saturating_add(limits.task_timeout_ms));
        }
        tracing::warn!(job = %job_id, "drive did not settle; the repair pass will continue");
        Ok(())
    }

    /// Ends every running task that passed its `task_timeout`: its workers are stopped on every
    /// party and each party's status becomes timeout. True when any did.
    async fn time_out_tasks(
        &self,
        spec: &JobSpec,
        latest: &BTreeMap<String, Task>,
        parties: &[TaskParty],
        limits: &JobLimits,
        now: i64,
    ) -> Result<bool, Error> {
        let mut any = false;
        for task in latest.values().filter(|t| {
            t.status == TaskStatus::Running
                && t.start_ms > 0
                && now >= t.start_ms.saturating_add(limits.task_timeout_ms)
        }) {
            let reason = format!(
                "task timeout: component {} still running after {}s (task_timeout)",
                task.component,
                limits.task_timeout_ms / 1000
            );
            tracing::info!(job = %task.job_id, component = %task.component, %reason);
            self.stop_task_everywhere(spec, task, TaskStatus::Timeout, &reason)
                .await;
            for row in parties.iter().filter(|p| {
                p.component == task.component && p.version == task.version && !p.status.is_end()
            }) {
                self.apply_party_status(row, TaskStatus::Timeout, &reason)
                    .await?;
            }
            any = true;
        }
        Ok(any)
    }

    /// Gives every failed or timed-out task with retries left a new version on every party,
    /// to start after `auto_retry_delay`. The failed version keeps its reason. True when any.
    async fn retry_tasks(
        &self,
        spec: &JobSpec,
        latest: &BTreeMap<String, Task>,
        limits: &JobLimits,
    ) -> Result<bool, Error> {
        let mut any = false;
        for task in latest.values().filter(|t| {
            matches!(t.status, TaskStatus::Failed | TaskStatus::Timeout) && t.retries_left > 0
        }) {
            // What still runs of the failed version on other parties goes first.
            self.stop_task_everywhere(
                spec,
                task,
                TaskStatus::Canceled,
                &format!("another party's copy ended {}; retrying", task.status),
            )
            .await;
            let version = task.version + 1;
            let participants = spec.participants();
            let mut plans = Vec::new();
            for who in &participants {
                let plan: Vec<dsl::TaskPlan> = spec
                    .task_plans(who)
                    .map_err(|e| store::Error::Corrupt(e.to_string()))?
                    .into_iter()
                    .filter(|p| p.component == task.component)
                    .collect();
                plans.push((who, plan));
            }
            let created = join_all(plans.iter().map(|(who, plan)| {
                retrying(move || {
                    self.remote().create_tasks(
                        &task.job_id,
                        who,
                        &self.inner.party_id,
                        version,
                        plan,
                    )
                })
            }))
            .await;
            if let Some(err) = created.into_iter().find_map(Result::err) {
                return Err(Error::Remote(err));
            }
            let now = now_ms();
            let next = Task {
                version,
                status: TaskStatus::Waiting,
                reason: String::new(),
                retries_left: task.retries_left - 1,
                not_before_ms: now.saturating_add(limits.retry_delay_ms),
                start_ms: 0,
                end_ms: 0,
                ..task.clone()
            };
            let rows: Vec<TaskParty> = participants
                .iter()
                .map(|who| TaskParty {
                    job_id: task.job_id.clone(),
                    component: task.component.clone(),
                    version,
                    who: who.clone(),
                    status: TaskStatus::Waiting,
                    reason: String::new(),
                    update_ms: now,
                })
                .collect();
            self.store().insert_retry(&next, &rows, now).await?;
            tracing::info!(
                job = %task.job_id,
                component = %task.component,
                version,
                retries_left = next.retries_left,
                reason = %task.reason,
                "task retry"
            );
            self.publish(Event::Task {
                job_id: task.job_id.clone(),
                time_ms: now,
                component: task.component.clone(),
                version,
                who: None,
                status: TaskStatus::Waiting,
                reason: format!("retry of version {} after: {}", task.version, task.reason),
            });
            self.wake_at(&task.job_id, next.not_before_ms);
            any = true;
        }
        Ok(any)
    }

    /// Stops one task's workers on every participant (best effort, retried); each party sets
    /// its rows to `status`.
    async fn stop_task_everywhere(
        &self,
        spec: &JobSpec,
        task: &Task,
        status: TaskStatus,
        reason: &str,
    ) {
        let participants = spec.participants();
        let results = join_all(participants.iter().map(|who| {
            retrying(move || {
                self.remote().stop_tasks(
                    &task.job_id,
                    0,
                    who,
                    Some((&task.component, task.version)),
                    status,
                    reason,
                )
            })
        }))
        .await;
        for (who, result) in participants.iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(job = %task.job_id, component = %task.component, party = %who.party_id, error = %e, "task stop not confirmed");
            }
        }
    }

    /// Moves each task to running and starts it on every participant, in parallel; records
    /// each party's answer as its status.
    async fn start_tasks(&self, spec: &JobSpec, ready: &[Task]) -> Result<(), Error> {
        let participants = spec.participants();
        let mut started = Vec::new();
        for task in ready {
            if self
                .store()
                .cas_task_status(task, TaskStatus::Running, "", &[], now_ms())
                .await?
            {
                self.publish(Event::Task {
                    job_id: task.job_id.clone(),
                    time_ms: now_ms(),
                    component: task.component.clone(),
                    version: task.version,
                    who: None,
                    status: TaskStatus::Running,
                    reason: String::new(),
                });
                started.push(task);
            }
        }
        let calls = started.iter().flat_map(|task| {
            participants.iter().map(move |who| async move {
                let result = self.start_on(task, who).await;
                (*task, who, result)
            })
        });
        for (task, who, result) in join_all(calls).await {
            let Some(row) = self
                .store()
                .task_party(&task.job_id, &task.component, task.version, who)
                .await?
            else {
                continue;
            };
            match result {
                Ok(status) if status != TaskStatus::Waiting => {
                    self.apply_reported(&row, status, "").await?;
                }
                Ok(_) => {}
                // Not reached (or no answer in time): the start stays due, and the repair pass
                // sends it again (a start is idempotent) until the party answers or is
                // declared unreachable.
                Err(e) if e.is_transient() => {
                    tracing::warn!(job = %task.job_id, component = %task.component, party = %who.party_id, error = %e, "start not confirmed; will be sent again");
                }
                Err(e) => {
                    let reason = format!("could not start on party {}: {e}", who.party_id);
                    tracing::warn!(job = %task.job_id, component = %task.component, %reason);
                    self.apply_party_status(&row, TaskStatus::Failed, &reason)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Starts a task version on one participant; a connection that failed outright is tried
    /// twice more at once, a call that timed out is left to the repair pass.
    async fn start_on(&self, task: &Task, who: &Participant) -> Result<TaskStatus, RemoteError> {
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 1;
        loop {
            let result = self
                .remote()
                .start_task(&task.job_id, who, &task.component, task.version)
                .await;
            match result {
                Err(e)
                    if attempt < 3
                        && matches!(e.code, tonic::Code::Unavailable | tonic::Code::Unknown) =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// The queue: whenever something may have freed resources (and every `queue_retry_ms`),
    /// tries every waiting job in order (priority, then age). A job that cannot get its
    /// resources does not hold up the jobs behind it; it records which party lacks what.
    pub async fn run_queue(&self, shutdown: CancellationToken) {
        let retry = Duration::from_millis(self.inner.scheduling.queue_retry_ms.max(10));
        loop {
            if let Err(e) = self.queue_pass().await {
                tracing::warn!(error = %e, "queue pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.queue.notified() => {}
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }

    async fn queue_pass(&self) -> Result<(), Error> {
        let waiting = self
            .store()
            .job_ids_in(JobStatus::Waiting, self.inner.scheduling.queue_scan_limit)
            .await?;
        // Parties on which a job earlier in the queue (higher priority, or older) was refused:
        // later jobs that need them wait their turn instead of overtaking it there. Jobs that
        // need none of them still start (no head-of-line blocking).
        let mut contended: BTreeSet<String> = BTreeSet::new();
        for job_id in waiting {
            let _guard = self.lock(&job_id).await;
            let job = self.job(&job_id).await?;
            if job.status != JobStatus::Waiting {
                continue;
            }
            if job.cancel_requested {
                self.end_job(&job, JobStatus::Canceled, "").await?;
                continue;
            }
            let spec = self.spec(&job)?;
            let limits = self.limits(&spec);
            if now_ms() >= job.queued_ms.saturating_add(limits.queue_timeout_ms) {
                let reason = format!(
                    "queue timeout: waited more than {}s for resources (queue_timeout); {}",
                    limits.queue_timeout_ms / 1000,
                    job.pending_reason
                );
                self.end_job(&job, JobStatus::Timeout, &reason).await?;
                continue;
            }
            if let Some(party) = spec.party_ids().into_iter().find(|p| contended.contains(p)) {
                tracing::trace!(job = %job_id, %party, "queued behind an earlier job on this party");
                if job.pending_reason.is_empty() {
                    self.store()
                        .set_pending_reason(
                            &job_id,
                            &format!("queued behind earlier jobs waiting for party {party}"),
                        )
                        .await?;
                }
                continue;
            }
            contended.extend(self.try_start(&job).await?);
        }
        self.inner
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, m| Arc::strong_count(m) > 1);
        Ok(())
    }

    /// Applies for resources on every party (all or nothing: what was granted is returned if
    /// any party refuses) and starts the job. Returns the parties that refused.
    async fn try_start(&self, job: &Job) -> Result<Vec<String>, Error> {
        let spec = self.spec(job)?;
        let participants = spec.participants();
        let job_id = job.job_id.as_str();
        let grants = join_all(
            participants
                .iter()
                .map(|who| self.remote().apply_resource(job_id, who)),
        )
        .await;
        let mut granted = Vec::new();
        let mut missing = Vec::new();
        let mut refused = Vec::new();
        for (who, grant) in participants.iter().zip(grants) {
            match grant {
                Ok(Grant::Granted) => granted.push(who),
                Ok(Grant::Refused(what)) => {
                    refused.push(who.party_id.clone());
                    missing.push(format!(
                        "party {} ({}) lacks {what}",
                        who.party_id, who.role
                    ))
                }
                Err(e) => missing.push(format!(
                    "party {} ({}) did not answer: {e}",
                    who.party_id, who.role
                )),
            }
        }
        if missing.is_empty() {
            let started =
                join_all(participants.iter().map(|who| {
                    retrying(move || self.remote().start_job(job_id, job.queued_ms, who))
                }))
                .await;
            if let Some(e) = started.into_iter().find_map(Result::err) {
                missing.push(format!("start failed: {e}"));
            }
        }
        if !missing.is_empty() {
            join_all(
                granted
                    .iter()
                    .map(|who| retrying(move || self.remote().return_resource(job_id, who))),
            )
            .await;
            let reason = format!("waiting for resources: {}", missing.join("; "));
            if reason != job.pending_reason {
                tracing::info!(job = %job_id, %reason, "job waits");
            }
            self.store().set_pending_reason(job_id, &reason).await?;
            return Ok(refused);
        }
        if self
            .set_job_status(job, JobStatus::Running, "", &[])
            .await?
        {
            self.wake_at(
                job_id,
                now_ms().saturating_add(self.limits(&spec).job_timeout_ms),
            );
            self.drive_locked(job_id).await?;
        }
        Ok(Vec::new())
    }

    /// Repairs what events missed: pulls the statuses of running tasks whose parties have been
    /// quiet, and re-drives every running job. Runs at start-up, then every
    /// `repair_interval_ms`.
    pub async fn run_repair(&self, shutdown: CancellationToken) {
        let period = Duration::from_millis(self.inner.scheduling.repair_interval_ms.max(100));
        loop {
            if let Err(e) = self.repair_pass(period).await {
                tracing::warn!(error = %e, "repair pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn repair_pass(&self, quiet: Duration) -> Result<(), Error> {
        // A job still `ready` long after its submit was interrupted (a crash between storing it
        // and creating it on every party): it fails, and every party is told.
        let stale_before = now_ms()
            - 2 * i64::try_from(self.inner.scheduling.call_timeout_ms).unwrap_or(10_000)
            - 1_000;
        for job_id in self.store().job_ids_in(JobStatus::Ready, 1_000).await? {
            let _guard = self.lock(&job_id).await;
            let job = self.job(&job_id).await?;
            if job.status == JobStatus::Ready && job.create_ms < stale_before {
                self.end_job(
                    &job,
                    JobStatus::Failed,
                    "submission interrupted before every party created the job",
                )
                .await?;
            }
        }
        let running = self.store().job_ids_in(JobStatus::Running, 100_000).await?;
        let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        let unreachable_ms = i64::try_from(
            self.inner
                .scheduling
                .party_unreachable_timeout_s
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        // A party that did not answer once in this pass is not called again in it, so one
        // hung party costs one call deadline per pass, not one per job.
        let mut down: BTreeSet<String> = BTreeSet::new();
        for job_id in running {
            let _guard = self.lock(&job_id).await;
            let job = self.job(&job_id).await?;
            if job.status != JobStatus::Running {
                continue;
            }
            let spec = self.spec(&job)?;
            let now = now_ms();
            if let Some((party, for_ms)) = spec
                .party_ids()
                .into_iter()
                .filter_map(|p| Some((p.clone(), self.remote().unreachable_for(&p, now)?)))
                .find(|(_, for_ms)| *for_ms > unreachable_ms)
            {
                let reason = format!(
                    "party {party} unreachable for {}s (party_unreachable_timeout is {}s)",
                    for_ms / 1000,
                    unreachable_ms / 1000
                );
                tracing::warn!(job = %job_id, %reason, "job fails");
                self.end_job(&job, JobStatus::Failed, &reason).await?;
                continue;
            }
            let parties = self.store().task_parties(&job_id).await?;
            // Starts that no party confirmed are sent again (idempotent on the receiver).
            let running_tasks: BTreeSet<(String, i32)> = self
                .store()
                .tasks(&job_id)
                .await?
                .into_iter()
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| (t.component, t.version))
                .collect();
            for row in parties.iter().filter(|p| {
                p.status == TaskStatus::Waiting
                    && now - p.update_ms > quiet_ms
                    && running_tasks.contains(&(p.component.clone(), p.version))
            }) {
                if down.contains(&row.who.party_id) {
                    continue;
                }
                match self
                    .remote()
                    .start_task(&job_id, &row.who, &row.component, row.version)
                    .await
                {
                    Ok(status) if status != TaskStatus::Waiting => {
                        self.apply_reported(row, status, "").await?;
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {
                        down.insert(row.who.party_id.clone());
                    }
                    Err(e) => {
                        let reason = format!("could not start on party {}: {e}", row.who.party_id);
                        self.apply_party_status(row, TaskStatus::Failed, &reason)
                            .await?;
                    }
                }
            }
            let quiet_parties: BTreeSet<String> = parties
                .iter()
                .filter(|p| p.status == TaskStatus::Running && now - p.update_ms > quiet_ms)
                .map(|p| p.who.party_id.clone())
                .filter(|p| !down.contains(p))
                .collect();
            for party in quiet_parties {
                match self.remote().party_tasks(&party, &job_id).await {
                    Ok(rows) => {
                        for pulled in rows {
                            if let Some(row) = parties.iter().find(|p| {
                                p.component == pulled.component
                                    && p.version == pulled.version
                                    && p.who == pulled.who
                            }) {
                                self.apply_reported(row, pulled.party_status, &pulled.reason)
                                    .await?;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(job = %job_id, %party, error = %e, "status pull failed");
                        if e.is_transient() {
                            down.insert(party);
                        }
                    }
                }
            }
            self.drive_locked(&job_id).await?;
        }
        Ok(())
    }
}

/// Runs a party call, retrying transient failures (unreachable, deadline) with backoff.
async fn retrying<T, F, Fut>(mut call: F) -> Result<T, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RemoteError>>,
{
    let mut backoff = Duration::from_millis(50);
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_transient() && attempt < 5 => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                attempt += 1;
            }
            other => return other,
        }
    }
}

impl App {
    /// Passes a client call on to the scheduler of `party` (the job's), through the gateways.
    pub async fn forward<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        party: &str,
        job_id: &str,
        method: &str,
        request: &Req,
    ) -> Result<Resp, Error> {
        Ok(self
            .remote()
            .scheduler(party, job_id, method, request)
            .await?)
    }
}

impl App {
    /// A component's output on one participant of a job this party schedules.
    pub async fn task_output(
        &self,
        job_id: &str,
        component: &str,
        who: &Participant,
    ) -> Result<(i32, String), Error> {
        let job = self.job(job_id).await?;
        let spec = self.spec(&job)?;
        if spec.component(component).is_none() {
            return Err(Error::InvalidArgument(format!(
                "component: job {job_id} has no component {component:?}"
            )));
        }
        if !spec.participants().contains(who) {
            return Err(Error::InvalidArgument(format!(
                "{who} is not a participant of job {job_id}"
            )));
        }
        self.remote()
            .task_output(job_id, component, who)
            .await
            .map_err(|e| match e.code {
                tonic::Code::NotFound => Error::NotFound(e.message),
                _ => Error::Remote(e),
            })
    }
}
