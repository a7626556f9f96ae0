//! Attempts: starting one (claim, then launch through the engine), reaping its worker, and
//! stopping a job's attempts. The token is stored with the claim, before the worker exists,
//! so its first report is recognised; a concurrent start that loses the claim launches
//! nothing. Killing a worker is confirmed (its whole process group gone) or retried.

use fedflow_core::TaskStatus;
use fedflow_core::ids::{self, JobId, PartyId};
use fedflow_core::task_file::{DataPlane, DataPlaneParty, TaskFile};
use fedflow_rpc::now_ms;

use super::{App, Error, claimed};
use crate::domain::attempt::{self, Exit, Launched, Report, Start, Which};
use crate::domain::{Task, TaskKey};
use crate::engine::{Launch, WorkerProcess};

/// `StopTasks`: end a job's waiting and running rows that `which` covers as `status`.
#[derive(Debug, Clone)]
pub struct StopTasks {
    pub job_id: JobId,
    pub party_id: PartyId,
    pub which: Which,
    pub status: TaskStatus,
    pub reason: String,
}

impl App {
    /// Launches the attempt's worker (or passes a `need_run: false` task); returns the party
    /// status after the call.
    pub async fn start_task(&self, key: ids::TaskKey) -> Result<TaskStatus, Error> {
        let arrived = now_ms();
        let key = TaskKey::from(key);
        self.check_party(&key.party_id)?;
        let task = self.row(&key).await?;
        match attempt::start(&task) {
            Start::Answer(status) => Ok(status),
            Start::Pass(pass) => {
                self.apply(&task, &pass).await?;
                Ok(self.row(&key).await?.party_status)
            }
            Start::Claim => {
                let token = uuid::Uuid::new_v4().simple().to_string();
                if !self.inner.store.claim_start(&key, &token, now_ms()).await? {
                    return Ok(self.row(&key).await?.party_status);
                }
                self.launch_at(&claimed(&task, &token), arrived).await
            }
        }
    }

    /// What the attempt's worker is told; the error (an input that cannot be resolved) is the
    /// attempt's failure reason.
    async fn task_file(&self, task: &Task, start_task_ms: i64) -> Result<TaskFile, String> {
        // Checked to be an object when the row was created.
        let parameters = serde_json::from_str(&task.parameters).unwrap_or_default();
        let inputs = self.resolve_inputs(task, &parameters).await?;
        Ok(TaskFile {
            component: task.key.component.clone(),
            data_plane: (!self.inner.data_plane.is_empty()).then(|| DataPlane {
                address: self.inner.data_plane.clone(),
                parties: task
                    .parties
                    .iter()
                    .map(|p| DataPlaneParty {
                        role: p.role.clone(),
                        party_id: p.party_id.clone(),
                    })
                    .collect(),
                session: fedflow_core::session::id(
                    &task.key.job_id,
                    &task.key.component,
                    task.key.version,
                ),
            }),
            fate: self.fate_runtime(&task.module),
            heartbeat_interval_ms: self.inner.timing.heartbeat_interval.as_millis() as u64,
            inputs,
            job_id: task.key.job_id.clone(),
            module: task.module.clone(),
            parameters,
            party_id: task.key.party_id.clone(),
            program: self.program(&task.module),
            role: task.key.role.clone(),
            start_task_ms: Some(start_task_ms),
            task_controller: self.inner.advertise.clone(),
            token: task.token.clone(),
            upstream: task.upstream.clone(),
            version: task.key.version,
        })
    }

    /// Launches the worker of the claimed attempt `task` (running, with its token) and
    /// records it; returns the party status after.
    pub(super) async fn launch(&self, task: &Task) -> Result<TaskStatus, Error> {
        self.launch_at(task, now_ms()).await
    }

    /// [`App::launch`] for a `StartTask` that arrived at `start_task_ms` (unix ms).
    async fn launch_at(&self, task: &Task, start_task_ms: i64) -> Result<TaskStatus, Error> {
        let key = &task.key;
        let file = match self.task_file(task, start_task_ms).await {
            Ok(file) => file,
            Err(why) => {
                tracing::info!(task = %key, reason = %why, "inputs not resolved");
                self.apply(task, &attempt::inputs_unresolved(&why)).await?;
                // As for a worker stopped at once: the failure, with its reason, reaches the
                // scheduler as this party's report, so the start answers that the task ran.
                return Ok(TaskStatus::Running);
            }
        };
        self.inner.metrics.started(key, &task.module);
        match self.inner.engine.launch(key, &file) {
            Ok(Launch::Process { mut child, worker }) => {
                let recorded = self
                    .inner
                    .store
                    .set_worker(key, worker.pid, worker.start_time, &task.token)
                    .await;
                if let Err(e) = &recorded
                    && e.is_unavailable()
                {
                    // The store cannot take it now (a full disk, a database restarting), but
                    // the worker runs, heartbeats and reports all the same: it is watched, and
                    // recorded once the store takes it (a restart before then adopts it).
                    tracing::warn!(task = %key, pid = worker.pid, error = %e, "worker started, not yet recorded");
                    self.touch(key);
                    let (app, unrecorded) = (self.clone(), task.clone());
                    tokio::spawn(async move { app.record_later(worker, &unrecorded).await });
                    let (app, launched) = (self.clone(), task.clone());
                    tokio::spawn(async move { app.watch(child, worker, launched).await });
                    return Ok(TaskStatus::Running);
                }
                match attempt::launched(matches!(recorded, Ok(true))) {
                    Launched::Stop => {
                        // The outcome, with its reason, reaches the scheduler as this party's
                        // report, so the start answers that the task ran.
                        self.inner
                            .engine
                            .kill(worker, self.inner.timing.kill_grace)
                            .await;
                        let _ = child.wait().await;
                        self.inner.engine.ended(worker);
                        recorded?;
                    }
                    Launched::Watch => {
                        self.touch(key);
                        tracing::debug!(task = %key, pid = worker.pid, "worker started");
                        let app = self.clone();
                        let task = task.clone();
                        tokio::spawn(async move { app.watch(child, worker, task).await });
                    }
                }
                Ok(TaskStatus::Running)
            }
            Ok(Launch::Done { status, output }) => {
                // As if its worker had reported at once (the benchmark engine).
                let app = self.clone();
                let task = task.clone();
                tokio::spawn(async move {
                    if let Report::End(end) = attempt::report(&task, status, "", &output)
                        && let Err(e) = app.apply(&task, &end).await
                    {
                        tracing::warn!(task = %task.key, error = %e, "instant engine");
                    }
                });
                Ok(TaskStatus::Running)
            }
            Err(e) => {
                tracing::warn!(task = %key, error = %e, "worker not started");
                self.apply(task, &attempt::not_launched(&e.to_string()))
                    .await?;
                Ok(TaskStatus::Failed)
            }
        }
    }

    /// Records a started worker the store could not take at its launch, trying again on the
    /// outbox's schedule while the store is unavailable; stops the worker if its attempt
    /// ended meanwhile.
    async fn record_later(&self, worker: WorkerProcess, task: &Task) {
        for attempt in 0.. {
            tokio::time::sleep(fedflow_rpc::retry::outbox().nth(attempt)).await;
            match self
                .inner
                .store
                .set_worker(&task.key, worker.pid, worker.start_time, &task.token)
                .await
            {
                Ok(true) => {
                    tracing::info!(task = %task.key, pid = worker.pid, "worker recorded");
                    return;
                }
                Ok(false) => {
                    self.inner
                        .engine
                        .kill(worker, self.inner.timing.kill_grace)
                        .await;
                    return;
                }
                Err(e) if e.is_unavailable() => {}
                Err(e) => {
                    tracing::warn!(task = %task.key, error = %e, "could not record a worker");
                    return;
                }
            }
        }
    }

    /// Reaps a worker; one that exits while its attempt still runs failed without a word.
    async fn watch(&self, mut child: tokio::process::Child, worker: WorkerProcess, launched: Task) {
        let waited = child.wait().await;
        self.inner.engine.ended(worker);
        let exit = match waited {
            Ok(status) => match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                _ => Exit::Unknown,
            },
            Err(e) => Exit::Error(e.to_string()),
        };
        let Ok(task) = self.row(&launched.key).await else {
            return;
        };
        let Some(lost) = attempt::exited(&task, &launched.token, &exit) else {
            return;
        };
        if let Err(e) = self.apply(&task, &lost).await {
            tracing::warn!(task = %task.key, error = %e, "could not record a lost worker");
        }
    }

    /// Stops the job's waiting and running tasks that `stop` covers: sets its status and
    /// kills their workers' process groups, confirming they are gone.
    pub async fn stop_tasks(&self, stop: StopTasks) -> Result<u32, Error> {
        self.check_party(stop.party_id.as_str())?;
        attempt::check_stop_status(stop.status).map_err(Error::InvalidArgument)?;
        let tasks = self.inner.store.job_tasks(stop.job_id.as_str()).await?;
        let mut stopped = 0;
        for task in &tasks {
            let Some(end) = attempt::stop(task, &stop.which, stop.status, &stop.reason) else {
                continue;
            };
            if self.apply(task, &end).await? {
                stopped += 1;
            }
        }
        Ok(stopped)
    }

    /// Kills a task's worker; if its death cannot be confirmed, keeps trying in the background.
    pub(super) async fn kill_worker(&self, task: &Task) {
        // The pid may not be stored yet if the start is still in flight: re-read.
        let worker = match self.row(&task.key).await {
            Ok(row) => WorkerProcess {
                pid: row.pid,
                start_time: row.pid_start,
            },
            Err(_) => return,
        };
        let grace = self.inner.timing.kill_grace;
        if self.inner.engine.kill(worker, grace).await {
            return;
        }
        tracing::warn!(task = %task.key, pid = worker.pid, "worker survived SIGKILL; retrying");
        let engine = self.inner.engine.clone();
        let key = task.key.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                if engine.kill(worker, grace).await {
                    return;
                }
            }
            tracing::error!(task = %key, pid = worker.pid, "could not confirm the worker is gone");
        });
    }
}
