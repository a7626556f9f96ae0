//! The queue: whenever something may have freed resources (and every `queue_retry_ms`), every
//! waiting job in order (priority, then age) is looked at ([`queue::step`]). A job that cannot
//! get its resources does not hold up the jobs behind it; it records which party lacks what.
//! Resources are all or nothing: what was granted is given back if any party refuses.

use std::collections::BTreeSet;
use std::time::Duration;

use fedflow_core::JobStatus;
use fedflow_rpc::now_ms;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{App, Error, JobGuard};
use crate::domain::queue::{self, Answer, Step};
use crate::remote::Grant;
use crate::store::Job;

impl App {
    /// Runs queue passes until `shutdown`.
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

    /// The waiting jobs in the order the queue looks at them (priority, then age), at most
    /// `limit`: a job's place in this list is its queue position.
    pub async fn queue_order(&self, limit: u32) -> Result<Vec<Job>, Error> {
        let ids = self.store().job_ids_in(JobStatus::Waiting, limit).await?;
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(job) = self.store().job(&id).await? {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }

    async fn queue_pass(&self) -> Result<(), Error> {
        let waiting = self
            .store()
            .job_ids_in(JobStatus::Waiting, self.inner.scheduling.queue_scan_limit)
            .await?;
        self.inner.metrics.queue_length(waiting.len());
        // Parties on which a job earlier in the queue (higher priority, or older) was refused:
        // later jobs that need them wait their turn instead of overtaking it there. Jobs that
        // need none of them still start (no head-of-line blocking).
        let mut contended: BTreeSet<String> = BTreeSet::new();
        for job_id in waiting {
            let Some((guard, job, spec)) = self.locked_in(&job_id, JobStatus::Waiting).await?
            else {
                continue;
            };
            let limits = self.limits(&spec);
            match queue::step(&job, &spec, &limits, &contended, now_ms()) {
                Step::Skip => {}
                Step::Cancel => self.end_job(&job, JobStatus::Canceled, "").await?,
                Step::TimeOut(reason) => self.end_job(&job, JobStatus::Timeout, &reason).await?,
                Step::Behind {
                    party,
                    pending_reason,
                } => {
                    tracing::trace!(job = %job_id, %party, "queued behind an earlier job on this party");
                    if let Some(reason) = pending_reason {
                        self.store().set_pending_reason(&job_id, &reason).await?;
                    }
                }
                Step::Apply => contended.extend(self.try_start(&guard, &job).await?),
            }
        }
        self.prune_locks();
        Ok(())
    }

    /// Applies for resources on every party (all or nothing: what was granted is returned if
    /// any party refuses) and starts the job. Returns the parties that refused.
    async fn try_start(&self, guard: &JobGuard, job: &Job) -> Result<Vec<String>, Error> {
        let spec = self.spec(job)?;
        let participants = spec.participants();
        let job_id = job.job_id.as_str();
        let grants = join_all(
            participants
                .iter()
                .map(|who| self.inner.remote.apply_resource(job_id, who)),
        )
        .await;
        let answers = participants
            .iter()
            .cloned()
            .zip(grants)
            .map(|(who, grant)| {
                let answer = match grant {
                    Ok(Grant::Granted) => Answer::Granted,
                    Ok(Grant::Refused(what)) => Answer::Refused(what),
                    Err(e) => Answer::Silent(e.to_string()),
                };
                (who, answer)
            })
            .collect();
        let mut admission = queue::admission(answers);
        if admission.missing.is_empty() {
            let started = join_all(
                participants
                    .iter()
                    .map(|who| self.inner.remote.start_job(job_id, job.queued_ms, who)),
            )
            .await;
            if let Some(e) = started.into_iter().find_map(Result::err) {
                admission.missing.push(format!("start failed: {e}"));
            }
        }
        if !admission.missing.is_empty() {
            join_all(
                admission
                    .granted
                    .iter()
                    .map(|who| self.inner.remote.return_resource(job_id, who)),
            )
            .await;
            let reason = queue::waiting_reason(&admission.missing);
            if reason != job.pending_reason {
                tracing::info!(job = %job_id, %reason, "job waits");
            }
            self.store().set_pending_reason(job_id, &reason).await?;
            return Ok(admission.refused);
        }
        if self
            .set_job_status(job, JobStatus::Running, "", &[])
            .await?
        {
            self.inner.timers.wake_at(
                job_id,
                now_ms().saturating_add(self.limits(&spec).job_timeout_ms),
            );
            self.drive(guard).await?;
        }
        Ok(Vec::new())
    }
}
