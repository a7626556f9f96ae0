//! Submit: validate the DSL and conf, store the job with version 0 of every task, create the
//! job (`waiting`) and its version-0 task rows on every participant in one call each, and
//! queue it. A repeated request id answers the
//! job it created. A party that refuses fails the job at once, with that party's reason. The
//! job's root span is made here; its traceparent is stored with the job.

use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, dsl};
use fedflow_rpc::{now_micros, now_ms};
use futures::future::join_all;
use tracing::Instrument;

use super::{App, Error};
use crate::domain::versions;
use crate::store::Job;

impl App {
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
        // The count kept in memory (the jobs-by-status gauge), not a read of the queue:
        // admission must not cost more as the queue grows.
        let max_waiting = self.inner.scheduling.max_waiting_jobs;
        let waiting = self.inner.metrics.jobs_in(JobStatus::Waiting).max(0);
        if waiting >= i64::from(max_waiting) {
            let retry_after_ms = self.inner.scheduling.queue_retry_ms;
            return Err(Error::QueueFull {
                message: format!(
                    "the queue of party {}'s scheduler is full ({waiting} waiting jobs, scheduling.max_waiting_jobs = {max_waiting}); submit again after {retry_after_ms} ms (metadata retry-after-ms)",
                    self.inner.party_id
                ),
                retry_after_ms,
            });
        }
        let spec = dsl::parse(&dsl_text, &conf_text, &self.inner.limits)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if spec.initiator.party_id != self.inner.party_id {
            return Err(Error::InvalidArgument(format!(
                "{}: party {} is not this scheduler's party {}; submit to the initiator's scheduler",
                spec.initiator_field(),
                spec.initiator.party_id,
                self.inner.party_id
            )));
        }
        let job_id = ids::new_job_id(now_micros());
        let now = now_ms();
        let participants = spec.participants();
        let first = versions::first_versions(&spec);
        let (tasks, parties) = versions::new_version_rows(
            &job_id,
            &spec,
            &first,
            self.limits(&spec).auto_retries,
            0,
            now,
        );
        let creations = versions::creations(&spec, &first)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
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
        if let Err(e) = self
            .store()
            .insert_job(&job, &participants, &tasks, &parties)
            .await
        {
            if e.is_unique_violation()
                && let Some(existing) = self.store().job_by_request(&request_id).await?
            {
                return Ok(existing.job_id);
            }
            return Err(e.into());
        }
        self.inner.metrics.created(job.status);
        // The job's root span: every later span about the job, here and on the other
        // parties, joins its trace (remembered here, stored with the job, carried by calls).
        let job_span = if fedflow_telemetry::context::exporting() {
            tracing::info_span!(
                parent: None,
                "job",
                job_id = %job_id,
                party_id = %self.inner.party_id,
                role = %spec.initiator.role,
            )
        } else {
            tracing::Span::none()
        };
        if let Some(traceparent) = fedflow_telemetry::context::traceparent(&job_span) {
            fedflow_telemetry::context::jobs::remember(
                &job_id,
                &fedflow_telemetry::context::carrier(&traceparent),
            );
            self.store().set_trace_parent(&job_id, &traceparent).await?;
        }
        self.create_everywhere(job, participants, creations)
            .instrument(job_span)
            .await
    }

    /// Creates a stored job on every participant and queues it; fails it when one refuses.
    async fn create_everywhere(
        &self,
        job: Job,
        participants: Vec<Participant>,
        creations: Vec<(Participant, i32, Vec<TaskPlan>)>,
    ) -> Result<String, Error> {
        let job_id = job.job_id.clone();
        let _guard = self.lock(&job_id).await;
        // One call per party: its job-controller stores the job (already `waiting` there) and
        // creates version 0 of its tasks on its task-controller before it answers.
        let create = |i: usize| {
            let who = &participants[i];
            let plans = creations
                .iter()
                .find(|(to, version, _)| to == who && *version == 0)
                .map_or(&[][..], |(_, _, plans)| plans.as_slice());
            self.inner.remote.create_job(
                &job_id,
                who,
                &job.dsl,
                &job.conf,
                &self.inner.party_id,
                plans,
            )
        };
        let mut created = join_all((0..participants.len()).map(create)).await;
        // A party that could not be reached (its gateway restarting, say) is asked again until
        // `create_retry_ms` has passed: creating is idempotent, and failing the job for a
        // moment's outage would make a rolling restart fail every job submitted during it.
        let until = tokio::time::Instant::now()
            + std::time::Duration::from_millis(self.inner.scheduling.create_retry_ms);
        let mut pause = std::time::Duration::from_millis(50);
        loop {
            let unreached: Vec<usize> = created
                .iter()
                .enumerate()
                .filter(|(_, r)| r.as_ref().is_err_and(|e| e.is_transient()))
                .map(|(i, _)| i)
                .collect();
            if unreached.is_empty() || tokio::time::Instant::now() + pause > until {
                break;
            }
            tracing::debug!(job = %job_id, parties = unreached.len(), "creation not answered; asking again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(1));
            let again = join_all(unreached.iter().map(|&i| create(i))).await;
            for (i, result) in unreached.into_iter().zip(again) {
                created[i] = result;
            }
        }
        let refusal = participants
            .iter()
            .zip(created)
            .find_map(|(who, r)| r.err().map(|e| (who.clone(), e)));
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
        self.inner.queue.notify_one();
        tracing::info!(job = %job_id, parties = participants.len(), "job submitted");
        Ok(job_id)
    }
}
