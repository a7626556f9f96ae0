//! The worker API and the monitor: a worker's report and heartbeat (each carries its
//! attempt's token; a stale one changes nothing), and the periodic check that every running
//! attempt's worker is alive and heartbeating, after recovering at start-up the attempts a
//! stopped task-controller claimed but never recorded a worker for.

use std::time::{Duration, Instant};

use fedflow_core::TaskStatus;
use fedflow_core::ids;

use super::{App, Error};
use crate::domain::attempt::{self, Beat, Recovery, Report};
use crate::domain::heartbeat::{self, Verdict};
use crate::domain::{Task, TaskKey};
use crate::engine::WorkerProcess;

/// A worker's `ReportStatus`.
#[derive(Debug, Clone)]
pub struct WorkerReport {
    pub key: ids::TaskKey,
    pub token: String,
    pub status: TaskStatus,
    pub reason: String,
    pub output: String,
    /// With a success: the artifacts the attempt wrote, to register with it.
    pub outputs: Vec<fedflow_core::task_file::OutputArtifact>,
}

impl App {
    /// The row of `key` if `token` is its current attempt's.
    async fn authenticated(&self, key: &TaskKey, token: &str) -> Result<Task, Error> {
        self.check_party(&key.party_id)?;
        let task = self.row(key).await?;
        if !attempt::holds_token(&task, token) {
            return Err(Error::PermissionDenied(format!(
                "stale or missing worker token for task {key}"
            )));
        }
        Ok(task)
    }

    /// A worker's report. Only an end status changes anything; a stale attempt changes nothing.
    pub async fn worker_report(&self, report: WorkerReport) -> Result<bool, Error> {
        let task = self
            .authenticated(&TaskKey::from(report.key), &report.token)
            .await?;
        match attempt::report(&task, report.status, &report.reason, &report.output) {
            Report::Beat => {
                self.touch(&task.key);
                Ok(false)
            }
            Report::Unchanged => Ok(false),
            Report::End(mut end) => {
                if end.to != TaskStatus::Success || report.outputs.is_empty() {
                    return self.apply(&task, &end).await;
                }
                match self.check_outputs(&task.key, &report.outputs) {
                    Ok(artifacts) => self.apply_registering(&task, &end, &artifacts).await,
                    Err(why) => {
                        // A success whose outputs are not there is no success.
                        end.to = TaskStatus::Failed;
                        end.reason = why;
                        end.output = None;
                        self.apply(&task, &end).await
                    }
                }
            }
            Report::Refuse(why) => Err(Error::FailedPrecondition(why)),
        }
    }

    /// A worker's heartbeat; answers whether it should stop.
    pub async fn worker_heartbeat(&self, key: ids::TaskKey, token: &str) -> Result<bool, Error> {
        let key = TaskKey::from(key);
        let task = match self.authenticated(&key, token).await {
            Ok(task) => Some(task),
            Err(Error::PermissionDenied(_)) => None,
            Err(e) => return Err(e),
        };
        match attempt::beat(task.as_ref(), task.is_some()) {
            Beat::Alive => {
                self.touch(&key);
                Ok(false)
            }
            Beat::Stop => Ok(true),
        }
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
        for task in self.inner.store.running().await? {
            match attempt::recover(&task, || self.inner.engine.find_worker(&task.key)) {
                Recovery::Recorded => {}
                Recovery::Adopt(worker) => {
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
                Recovery::Relaunch => {
                    tracing::info!(task = %task.key, "starting the worker of a claimed attempt");
                    self.launch(&task).await?;
                }
            }
        }
        Ok(())
    }

    async fn check_workers(&self) -> Result<(), Error> {
        for task in self.inner.store.running().await? {
            let worker = WorkerProcess {
                pid: task.pid,
                start_time: task.pid_start,
            };
            let alive = task.pid != 0 && self.inner.engine.is_alive(worker);
            let silent = self
                .inner
                .heartbeats
                .lock()
                .silent(&task.key, Instant::now());
            let verdict =
                heartbeat::verdict(&task, alive, silent, self.inner.timing.heartbeat_timeout);
            match verdict {
                Verdict::Alive => {}
                Verdict::Lost(end) | Verdict::Unresponsive(end) => {
                    self.apply(&task, &end).await?;
                }
            }
        }
        Ok(())
    }
}
