//! The task-controller's use cases: creating task rows, starting and stopping workers, taking
//! workers' reports and heartbeats, syncing the federated status, and watching for workers
//! that die or hang. The party-status compare-and-set `waiting -> running` is what guards a
//! start: a repeated `StartTask` finds the row running and never launches a second worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedflow_core::access::{self, Caller, JobParties, KnownJobs, Need};
use fedflow_core::ids::{self, Participant};
use fedflow_core::{TaskStatus, Transition};
use fedflow_rpc::error::{Code, ServiceError};
use fedflow_rpc::now_ms;
use serde_json::json;

use crate::engine::{self, Engine, WorkerProcess};
use crate::reporter::Reporter;
use crate::store::{self, Store, Task, TaskKey};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    PermissionDenied(String),
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
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Denied(e) => e.code(),
            Error::Store(e) if e.is_unavailable() => Code::Unavailable,
            Error::Store(_) => Code::Internal,
        }
    }
}

/// A task to create, as the job-controller or the scheduler sends it.
pub struct NewTask {
    pub component: String,
    pub module: String,
    pub parameters_json: String,
    pub need_run: bool,
    pub upstream: Vec<String>,
}

/// Timing knobs and the engine.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Benchmark engine: tasks succeed at once, no worker process.
    pub instant: bool,
    pub heartbeat_interval: Duration,
    /// A running worker silent for this long is killed and its task failed.
    pub heartbeat_timeout: Duration,
    pub kill_grace: Duration,
    /// Self-fencing after this long without reaching a job's scheduler; `None` = never.
    pub fence_after: Option<Duration>,
    pub fence_probe_interval: Duration,
}

#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    party_id: String,
    store: Store,
    engine: Engine,
    reporter: Reporter,
    /// Where workers dial back.
    advertise: String,
    timing: Timing,
    /// Last heartbeat per running attempt (kept in memory: a restart gives every worker a
    /// fresh grace period).
    heartbeats: Mutex<HashMap<TaskKey, tokio::time::Instant>>,
    /// When each scheduler party last answered a probe (or when probing began).
    contact: Mutex<HashMap<String, tokio::time::Instant>>,
    outbox: fedflow_store::Outbox,
    /// Each job's scheduler party, once read for another party's call (it never changes).
    known: KnownJobs,
}

impl App {
    pub fn new(
        party_id: String,
        store: Store,
        engine: Engine,
        reporter: Reporter,
        advertise: String,
        timing: Timing,
    ) -> Self {
        let outbox = store.outbox();
        App {
            inner: Arc::new(Inner {
                party_id,
                store,
                engine,
                reporter,
                advertise,
                timing,
                heartbeats: Mutex::new(HashMap::new()),
                contact: Mutex::new(HashMap::new()),
                outbox,
                known: KnownJobs::default(),
            }),
        }
    }

    fn check_key(&self, key: &TaskKey) -> Result<(), Error> {
        ids::job_id(&key.job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::component(&key.component).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.check_party(&key.role, &key.party_id)?;
        if key.version < 0 {
            return Err(Error::InvalidArgument(format!(
                "version {} is negative",
                key.version
            )));
        }
        Ok(())
    }

    pub fn party_id(&self) -> &str {
        &self.inner.party_id
    }

    /// Only the job's scheduler party (and this party's own services) may drive or read the
    /// job's tasks here; another party is refused whether or not the job is here.
    pub async fn authorize(&self, caller: &Caller, job_id: &str) -> Result<(), Error> {
        if *caller == Caller::Local {
            return Ok(());
        }
        let job = self.parties(job_id).await?;
        Ok(caller.may(job_id, job.as_deref(), Need::Scheduler)?)
    }

    /// Creating tasks: the scheduler party they name must be the caller, and the job's own
    /// when the job is here already.
    pub async fn authorize_create(
        &self,
        caller: &Caller,
        job_id: &str,
        scheduler_party_id: &str,
    ) -> Result<(), Error> {
        caller.claims(scheduler_party_id, "scheduler_party_id")?;
        match self.parties(job_id).await? {
            Some(job) => Ok(caller.may(job_id, Some(&job), Need::Scheduler)?),
            None => Ok(()),
        }
    }

    /// The job's scheduler party, once read; `None` when no task of the job is here.
    async fn parties(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Error> {
        if let Some(known) = self.inner.known.get(job_id) {
            return Ok(Some(known));
        }
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let scheduler = self.inner.store.job_scheduler(job_id).await?;
        Ok(scheduler.map(|scheduler| {
            self.inner.known.insert(
                job_id,
                JobParties {
                    scheduler,
                    participants: None,
                },
            )
        }))
    }

    fn check_party(&self, role: &str, party_id: &str) -> Result<(), Error> {
        ids::role(role).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if party_id != self.inner.party_id {
            return Err(Error::InvalidArgument(format!(
                "party_id {party_id:?} is not this party ({})",
                self.inner.party_id
            )));
        }
        Ok(())
    }

    async fn row(&self, key: &TaskKey) -> Result<Task, Error> {
        self.inner
            .store
            .task(key)
            .await?
            .ok_or_else(|| Error::NotFound(format!("task {key} is not on this party")))
    }

    pub async fn create_tasks(
        &self,
        job_id: &str,
        who: &Participant,
        scheduler_party_id: &str,
        version: i32,
        tasks: Vec<NewTask>,
    ) -> Result<u32, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::party_id(scheduler_party_id)
            .map_err(|e| Error::InvalidArgument(format!("scheduler_party_id: {e}")))?;
        self.check_party(&who.role, &who.party_id)?;
        if version < 0 {
            // Such a row could never start (StartTask refuses it): refuse it here, store nothing.
            return Err(Error::InvalidArgument(format!(
                "version {version} is negative"
            )));
        }
        let mut rows = Vec::with_capacity(tasks.len());
        for task in tasks {
            ids::component(&task.component).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            if !fedflow_core::modules::is_known(&task.module) {
                return Err(Error::InvalidArgument(format!(
                    "unknown module {:?} for component {}",
                    task.module, task.component
                )));
            }
            let params: serde_json::Value =
                serde_json::from_str(&task.parameters_json).map_err(|e| {
                    Error::InvalidArgument(format!("parameters of {}: {e}", task.component))
                })?;
            let params = params.as_object().cloned().ok_or_else(|| {
                Error::InvalidArgument(format!("parameters of {}: not an object", task.component))
            })?;
            fedflow_core::modules::validate_params(&task.module, &params).map_err(|e| {
                Error::InvalidArgument(format!("parameters of {}: {e}", task.component))
            })?;
            for up in &task.upstream {
                ids::component(up).map_err(|e| Error::InvalidArgument(e.to_string()))?;
            }
            rows.push(Task {
                key: TaskKey {
                    job_id: job_id.to_owned(),
                    component: task.component,
                    version,
                    role: who.role.clone(),
                    party_id: who.party_id.clone(),
                },
                module: task.module,
                parameters: task.parameters_json,
                need_run: task.need_run,
                upstream: task.upstream,
                scheduler_party_id: scheduler_party_id.to_owned(),
                party_status: TaskStatus::Waiting,
                status: TaskStatus::Waiting,
                reason: String::new(),
                pid: 0,
                pid_start: 0,
                token: String::new(),
                output: String::new(),
                start_ms: 0,
                end_ms: 0,
            });
        }
        Ok(self.inner.store.insert_tasks(&rows, now_ms()).await?)
    }

    /// Launches the attempt's worker (or passes a `need_run: false` task); returns the party
    /// status after the call.
    pub async fn start_task(&self, key: TaskKey) -> Result<TaskStatus, Error> {
        self.check_key(&key)?;
        let task = self.row(&key).await?;
        if task.party_status != TaskStatus::Waiting {
            return Ok(task.party_status);
        }
        if !task.need_run {
            self.end(
                &task,
                TaskStatus::Waiting,
                TaskStatus::Pass,
                "need_run is false",
                None,
            )
            .await?;
            return Ok(self.row(&key).await?.party_status);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        // The token is stored with the claim, before the worker exists, so its first report
        // is recognised; a concurrent start that loses the claim launches nothing.
        if !self.inner.store.claim_start(&key, &token, now_ms()).await? {
            return Ok(self.row(&key).await?.party_status);
        }
        if self.inner.timing.instant {
            // Benchmark engine: the task succeeds at once, as if its worker reported.
            let mut running = task.clone();
            running.party_status = TaskStatus::Running;
            let app = self.clone();
            tokio::spawn(async move {
                let result = app
                    .end(
                        &running,
                        TaskStatus::Running,
                        TaskStatus::Success,
                        "",
                        Some("{}"),
                    )
                    .await;
                if let Err(e) = result {
                    tracing::warn!(task = %running.key, error = %e, "instant engine");
                }
            });
            return Ok(TaskStatus::Running);
        }
        self.launch(&task, key, token).await
    }

    /// Launches the worker of a claimed attempt (`token`) and records it; returns the party
    /// status after.
    async fn launch(&self, task: &Task, key: TaskKey, token: String) -> Result<TaskStatus, Error> {
        let launched = self.inner.engine.task_dir(&key).and_then(|dir| {
            let parameters: serde_json::Value =
                serde_json::from_str(&task.parameters).unwrap_or_else(|_| json!({}));
            let config = json!({
                "job_id": key.job_id,
                "component": key.component,
                "version": key.version,
                "role": key.role,
                "party_id": key.party_id,
                "module": task.module,
                "parameters": parameters,
                "upstream": task.upstream,
                "task_controller": self.inner.advertise,
                "token": token,
                "heartbeat_interval_ms": self.inner.timing.heartbeat_interval.as_millis() as u64,
            });
            self.inner
                .engine
                .launch(&dir, config.to_string().as_bytes())
        });
        let mut running = task.clone();
        running.party_status = TaskStatus::Running;
        match launched {
            Ok((mut child, worker)) => {
                let recorded = self
                    .inner
                    .store
                    .set_worker(&key, worker.pid, worker.start_time, &token)
                    .await;
                if !matches!(recorded, Ok(true)) {
                    // The attempt moved on while its worker started: the worker already
                    // reported its outcome (a fast task), or the task was stopped. Either way
                    // it must not run on; the outcome, with its reason, reaches the scheduler
                    // as this party's report, so the start answers that the task ran.
                    engine::kill(worker, self.inner.timing.kill_grace).await;
                    let _ = child.wait().await;
                    recorded?;
                    return Ok(TaskStatus::Running);
                }
                self.touch(&key);
                tracing::debug!(task = %key, pid = worker.pid, "worker started");
                let app = self.clone();
                tokio::spawn(async move { app.watch(child, key, token).await });
                Ok(TaskStatus::Running)
            }
            Err(e) => {
                tracing::warn!(task = %key, error = %e, "worker not started");
                let reason = format!("could not start worker: {e}");
                self.end(
                    &running,
                    TaskStatus::Running,
                    TaskStatus::Failed,
                    &reason,
                    None,
                )
                .await?;
                Ok(TaskStatus::Failed)
            }
        }
    }

    /// Reaps a worker; one that exits while its task still runs failed without a word.
    async fn watch(&self, mut child: tokio::process::Child, key: TaskKey, token: String) {
        let exit = child.wait().await;
        let Ok(task) = self.row(&key).await else {
            return;
        };
        if task.party_status != TaskStatus::Running || task.token != token {
            return;
        }
        let reason = match exit {
            Ok(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => {
                    format!("worker lost: exited with code {code} without reporting a result")
                }
                (None, Some(signal)) => format!("worker lost: killed by signal {signal}"),
                _ => "worker lost".to_owned(),
            },
            Err(e) => format!("worker lost: {e}"),
        };
        if let Err(e) = self
            .end(
                &task,
                TaskStatus::Running,
                TaskStatus::Failed,
                &reason,
                None,
            )
            .await
        {
            tracing::warn!(task = %key, error = %e, "could not record a lost worker");
        }
    }

    /// Moves `task` from `from` to the end status `to` (compare-and-set) and reports it.
    async fn end(
        &self,
        task: &Task,
        from: TaskStatus,
        to: TaskStatus,
        reason: &str,
        output: Option<&str>,
    ) -> Result<bool, Error> {
        let report = Reporter::report_command(&task.scheduler_party_id, &task.key, to, reason);
        let moved = self
            .inner
            .store
            .cas_party_status(
                &task.key,
                (from, to),
                reason,
                output,
                std::slice::from_ref(&report),
                now_ms(),
            )
            .await?;
        if moved {
            self.forget(&task.key);
            tracing::debug!(task = %task.key, %from, %to, reason, "task status");
            self.inner.outbox.wake();
        }
        Ok(moved)
    }

    /// Stops the job's waiting and running tasks for `who` (one component, or all): sets
    /// `status` and kills their workers' process groups, confirming they are gone.
    pub async fn stop_tasks(
        &self,
        job_id: &str,
        component: Option<&str>,
        version: Option<i32>,
        who: &Participant,
        status: TaskStatus,
        reason: &str,
    ) -> Result<u32, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.check_party(&who.role, &who.party_id)?;
        if !status.is_interrupt() {
            return Err(Error::InvalidArgument(format!(
                "stop status must be canceled, failed or timeout, not {status}"
            )));
        }
        let tasks = self.inner.store.job_tasks(job_id).await?;
        let mut stopped = 0;
        for task in tasks.iter().filter(|t| {
            t.key.role == who.role
                && component.is_none_or(|c| c == t.key.component)
                && version.is_none_or(|v| v == t.key.version)
                && !t.party_status.is_end()
        }) {
            if !self
                .end(task, task.party_status, status, reason, None)
                .await?
            {
                continue;
            }
            stopped += 1;
            if task.party_status == TaskStatus::Running {
                self.kill_worker(task).await;
            }
        }
        Ok(stopped)
    }

    /// Fails a running task with `reason` and, if that moved it, stops its worker.
    async fn fail_and_stop(&self, task: &Task, reason: &str) -> Result<(), Error> {
        if self
            .end(task, TaskStatus::Running, TaskStatus::Failed, reason, None)
            .await?
        {
            self.kill_worker(task).await;
        }
        Ok(())
    }

    /// Kills a task's worker; if its death cannot be confirmed, keeps trying in the background.
    async fn kill_worker(&self, task: &Task) {
        // The pid may not be stored yet if the start is still in flight: re-read.
        let worker = match self.row(&task.key).await {
            Ok(row) => WorkerProcess {
                pid: row.pid,
                start_time: row.pid_start,
            },
            Err(_) => return,
        };
        if engine::kill(worker, self.inner.timing.kill_grace).await {
            return;
        }
        tracing::warn!(task = %task.key, pid = worker.pid, "worker survived SIGKILL; retrying");
        let grace = self.inner.timing.kill_grace;
        let key = task.key.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                if engine::kill(worker, grace).await {
                    return;
                }
            }
            tracing::error!(task = %key, pid = worker.pid, "could not confirm the worker is gone");
        });
    }

    /// Records the federated status the scheduler decided, on every role's row here.
    pub async fn update_task_status(
        &self,
        job_id: &str,
        component: &str,
        version: i32,
        to: TaskStatus,
    ) -> Result<u32, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::component(component).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let tasks = self.inner.store.job_tasks(job_id).await?;
        let mut updated = 0;
        for task in tasks
            .iter()
            .filter(|t| t.key.component == component && t.key.version == version)
        {
            if let Ok(Transition::Changed) = task.status.apply(to)
                && self
                    .inner
                    .store
                    .cas_status(&task.key, task.status, to, now_ms())
                    .await?
            {
                updated += 1;
            }
        }
        Ok(updated)
    }

    pub async fn list_tasks(&self, job_id: &str) -> Result<Vec<Task>, Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(self.inner.store.job_tasks(job_id).await?)
    }

    /// The output of the latest version of `component` that succeeded here for `who`.
    pub async fn task_output(
        &self,
        job_id: &str,
        component: &str,
        who: &Participant,
    ) -> Result<(i32, String), Error> {
        ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        ids::component(component).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.check_party(&who.role, &who.party_id)?;
        let tasks = self.inner.store.job_tasks(job_id).await?;
        tasks
            .into_iter()
            .filter(|t| {
                t.key.component == component
                    && t.key.role == who.role
                    && t.party_status.is_success()
            })
            .max_by_key(|t| t.key.version)
            .map(|t| (t.key.version, t.output))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no successful task of component {component} of job {job_id} for {who}"
                ))
            })
    }

    async fn authenticated(&self, key: &TaskKey, token: &str) -> Result<Task, Error> {
        self.check_key(key)?;
        let task = self.row(key).await?;
        if token.is_empty() || task.token.is_empty() || task.token != token {
            return Err(Error::PermissionDenied(format!(
                "stale or missing worker token for task {key}"
            )));
        }
        Ok(task)
    }

    /// A worker's report. Only an end status changes anything; a stale attempt changes nothing.
    pub async fn worker_report(
        &self,
        key: TaskKey,
        token: &str,
        to: TaskStatus,
        reason: &str,
        output: &str,
    ) -> Result<bool, Error> {
        let task = self.authenticated(&key, token).await?;
        if to == TaskStatus::Running {
            self.touch(&key);
            return Ok(false);
        }
        match task.party_status.apply(to) {
            Ok(Transition::AlreadyThere) => Ok(false),
            Ok(Transition::Changed) if task.party_status == TaskStatus::Running => {
                let output = (!output.is_empty()).then_some(output);
                self.end(&task, TaskStatus::Running, to, reason, output)
                    .await
            }
            _ => Err(Error::FailedPrecondition(format!(
                "task {key} is {}, a worker cannot move it to {to}",
                task.party_status
            ))),
        }
    }

    /// A worker's heartbeat; answers whether it should stop.
    pub async fn worker_heartbeat(&self, key: TaskKey, token: &str) -> Result<bool, Error> {
        let task = match self.authenticated(&key, token).await {
            Ok(task) => task,
            Err(Error::PermissionDenied(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        if task.party_status != TaskStatus::Running {
            return Ok(true);
        }
        self.touch(&key);
        Ok(false)
    }

    fn touch(&self, key: &TaskKey) {
        if let Ok(mut beats) = self.inner.heartbeats.lock() {
            beats.insert(key.clone(), tokio::time::Instant::now());
        }
    }

    fn forget(&self, key: &TaskKey) {
        if let Ok(mut beats) = self.inner.heartbeats.lock() {
            beats.remove(key);
        }
    }

    fn last_beat(&self, key: &TaskKey) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        self.inner
            .heartbeats
            .lock()
            .map(|mut beats| *beats.entry(key.clone()).or_insert(now))
            .unwrap_or(now)
    }

    /// Every running task's worker must be alive (same pid and start time) and heartbeating:
    /// a gone worker's task fails as `worker lost`, a silent one is killed and fails as
    /// `worker unresponsive`. Runs at start-up and then periodically until `shutdown`.
    pub async fn monitor(&self, shutdown: tokio_util::sync::CancellationToken) {
        let period = self
            .inner
            .timing
            .heartbeat_interval
            .max(Duration::from_millis(100));
        if let Err(e) = self.recover_unrecorded().await {
            tracing::warn!(error = %e, "recovery of unrecorded workers failed");
        }
        loop {
            if let Err(e) = self.check_workers().await {
                tracing::warn!(error = %e, "worker check failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    /// At start-up: attempts claimed by a task-controller that stopped before it recorded
    /// their worker. A worker already running for the attempt is adopted; otherwise the
    /// worker was never started, and the attempt's one worker is started now.
    async fn recover_unrecorded(&self) -> Result<(), Error> {
        if self.inner.timing.instant {
            return Ok(());
        }
        for task in self.inner.store.running().await? {
            if task.key.party_id != self.inner.party_id || task.pid != 0 {
                continue;
            }
            let found = self
                .inner
                .engine
                .task_dir(&task.key)
                .ok()
                .and_then(|dir| engine::find_worker(&dir));
            match found {
                Some(worker) => {
                    if self
                        .inner
                        .store
                        .set_worker(&task.key, worker.pid, worker.start_time, &task.token)
                        .await?
                    {
                        tracing::info!(task = %task.key, pid = worker.pid, "adopted an unrecorded worker");
                        self.touch(&task.key);
                    }
                }
                None => {
                    tracing::info!(task = %task.key, "starting the worker of a claimed attempt");
                    self.launch(&task, task.key.clone(), task.token.clone())
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn check_workers(&self) -> Result<(), Error> {
        for task in self.inner.store.running().await? {
            if task.key.party_id != self.inner.party_id {
                continue;
            }
            let worker = WorkerProcess {
                pid: task.pid,
                start_time: task.pid_start,
            };
            let silent = self.last_beat(&task.key).elapsed();
            if task.pid != 0 && !engine::is_alive(worker) {
                let reason = format!("worker lost: process {} is gone", task.pid);
                self.end(
                    &task,
                    TaskStatus::Running,
                    TaskStatus::Failed,
                    &reason,
                    None,
                )
                .await?;
            } else if silent > self.inner.timing.heartbeat_timeout {
                let reason = format!(
                    "worker unresponsive: no heartbeat for {} ms",
                    silent.as_millis()
                );
                self.fail_and_stop(&task, &reason).await?;
            }
        }
        Ok(())
    }

    /// Delivers the outbox's status reports until `shutdown`.
    pub async fn run_outbox(&self, shutdown: tokio_util::sync::CancellationToken) {
        self.inner
            .outbox
            .run(shutdown, |command| {
                let reporter = self.inner.reporter.clone();
                async move { reporter.deliver(command).await }
            })
            .await;
    }

    /// Self-fencing: probes, every `fence_probe_interval`, each scheduler party with tasks
    /// running here; when one has not been reached for `fence_after`, this party's running
    /// tasks of its jobs fail as `fenced` and their workers are stopped, so nothing runs on
    /// for a scheduler that has given the job up. When the network heals, the scheduler's
    /// verdict reaches the job-controller as usual.
    pub async fn fence(&self, shutdown: tokio_util::sync::CancellationToken) {
        let Some(after) = self.inner.timing.fence_after else {
            return;
        };
        let period = self
            .inner
            .timing
            .fence_probe_interval
            .max(Duration::from_millis(100));
        loop {
            if let Err(e) = self.fence_pass(after).await {
                tracing::warn!(error = %e, "fencing pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn fence_pass(&self, after: Duration) -> Result<(), Error> {
        let mut by_scheduler: HashMap<String, Vec<Task>> = HashMap::new();
        for task in self.inner.store.running().await? {
            if task.key.party_id == self.inner.party_id {
                by_scheduler
                    .entry(task.scheduler_party_id.clone())
                    .or_default()
                    .push(task);
            }
        }
        let now = tokio::time::Instant::now();
        self.inner
            .contact
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|party, _| by_scheduler.contains_key(party));
        for (scheduler, tasks) in by_scheduler {
            // A hung peer holds a call until its deadline; a probe waits one period at most.
            let reached = tokio::time::timeout(
                self.inner
                    .timing
                    .fence_probe_interval
                    .max(Duration::from_secs(1)),
                self.inner
                    .reporter
                    .probe(&scheduler, &tasks[0].key, TaskStatus::Running),
            )
            .await
            .unwrap_or(false);
            let silent = {
                let mut contact = self.inner.contact.lock().unwrap_or_else(|e| e.into_inner());
                let last = contact.entry(scheduler.clone()).or_insert(now);
                if reached {
                    *last = tokio::time::Instant::now();
                }
                last.elapsed()
            };
            if reached || silent < after {
                continue;
            }
            let reason = format!(
                "fenced: the job's scheduler, party {scheduler}, unreachable for {}s",
                silent.as_secs()
            );
            tracing::warn!(%scheduler, tasks = tasks.len(), %reason, "fencing");
            for task in tasks {
                self.fail_and_stop(&task, &reason).await?;
            }
        }
        Ok(())
    }
}
