//! A user's control of a job: stop (no new task starts, every party stops the job's workers,
//! the job ends canceled) and rerun (new versions of the chosen components and everything
//! downstream, on every party, and the job queued again under the same id). The live stop of
//! tasks on every party, [`App::stop_everywhere`], is shared with the drive's timeouts and
//! retries.

use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::{ComponentName, JobId};
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_rpc::now_ms;
use futures::future::join_all;

use super::{App, Error};
use crate::domain::plan::latest;
use crate::domain::versions::{self, RerunRefused};
use crate::events::Event;

impl App {
    /// Records a stop: no new task starts, every party kills the job's workers, the job ends
    /// canceled. Returns the status after the call and what happened.
    pub async fn stop(&self, job_id: &JobId) -> Result<(JobStatus, String), Error> {
        let job_id = job_id.as_str();
        let guard = self.lock(job_id).await;
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
                self.stop_everywhere(
                    &spec,
                    job_id,
                    job.queued_ms,
                    None,
                    TaskStatus::Canceled,
                    "job canceled",
                )
                .await;
                self.drive(&guard).await?;
            }
        }
        let job = self.job(job_id).await?;
        Ok((job.status, "job stopping".into()))
    }

    /// Stops the job's workers on every participant, live (best effort, retried): of one task
    /// version, or with `None` of the whole run `epoch` (when the job last entered the queue).
    /// Each party sets its rows to `status`.
    pub(super) async fn stop_everywhere(
        &self,
        spec: &JobSpec,
        job_id: &str,
        epoch: i64,
        task: Option<(&str, i32)>,
        status: TaskStatus,
        reason: &str,
    ) {
        let participants = spec.participants();
        let results = join_all(participants.iter().map(|who| {
            self.inner
                .remote
                .stop_tasks(job_id, epoch, who, task, status, reason)
        }))
        .await;
        for (who, result) in participants.iter().zip(results) {
            if let Err(e) = result {
                match task {
                    Some((component, _)) => {
                        tracing::warn!(job = %job_id, %component, party = %who.party_id, error = %e, "task stop not confirmed");
                    }
                    None => {
                        tracing::warn!(job = %job_id, party = %who.party_id, error = %e, "stop not confirmed by party");
                    }
                }
            }
        }
    }

    /// Makes new versions of the failed (or named) components and of everything downstream of
    /// them, on every party, and queues the job again under the same id.
    pub async fn rerun(
        &self,
        job_id: &JobId,
        component: Option<&ComponentName>,
        force: bool,
    ) -> Result<Vec<String>, Error> {
        let (job_id, component) = (job_id.as_str(), component.map_or("", ComponentName::as_str));
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
        // The end must have reached every party (its status, and the stop of what it ran)
        // before new versions go out, or a late stop could overtake them.
        self.inner
            .outbox
            .flush_job(job_id, |command| {
                let app = self.clone();
                async move { app.deliver(command).await }
            })
            .await
            .map_err(|e| {
                Error::FailedPrecondition(format!(
                    "job {job_id} cannot be rerun yet: its end has not reached every party ({e}); try again"
                ))
            })?;
        let spec = self.spec(&job)?;
        let latest = latest(self.store().tasks(job_id).await?);
        let rerun =
            versions::rerun(job_id, &spec, &latest, component, force).map_err(|e| match e {
                RerunRefused::NoSuchComponent { .. } => Error::InvalidArgument(e.to_string()),
                RerunRefused::NothingToRerun { .. } => Error::FailedPrecondition(e.to_string()),
            })?;
        let now = now_ms();
        // Create the new versions on every party first; nothing changes here if one refuses.
        self.create_versions(job_id, &spec, &rerun.versions).await?;
        let (tasks, parties) = versions::new_version_rows(
            job_id,
            &spec,
            &rerun.versions,
            self.limits(&spec).auto_retries,
            0,
            now,
        );
        if !self
            .store()
            .insert_rerun(job_id, job.status, &tasks, &parties, now)
            .await?
        {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} changed while the rerun was prepared; try again"
            )));
        }
        self.inner.metrics.moved(job.status, JobStatus::Waiting);
        self.publish(Event::Job {
            job_id: job_id.to_owned(),
            time_ms: now,
            status: JobStatus::Waiting,
            reason: String::new(),
        });
        self.sync_job_status(job_id, now, &spec.participants(), JobStatus::Waiting, "")
            .await;
        self.inner.queue.notify_one();
        tracing::info!(job = %job_id, components = ?rerun.components, "job rerun");
        Ok(rerun.components.into_iter().collect())
    }
}
