//! A party's job rows: creating one (re-validating the job, which this party never takes on
//! the scheduler's word), starting it, and setting the status its scheduler decided. Status
//! writes follow [`crate::domain::job`]: the path to the target, what each change writes, and
//! what an end asks of the job's tasks here.

use fedflow_core::JobStatus;
use fedflow_core::dsl;
use fedflow_rpc::now_ms;

use super::{App, CreateJob, Error, JobRef, UpdateJobStatus};
use crate::domain::ledger::{self, NeverFits};
use crate::domain::{Amount, PartyJob, StatusSet, job};

impl App {
    /// Stores the party's job row (`waiting`: its scheduler queues it once every party has
    /// it) and creates the version-0 task rows the scheduler sent on this party's
    /// task-controller; answers which components run here, in the DSL's order.
    pub async fn create_job(&self, create: CreateJob) -> Result<Vec<(String, bool)>, Error> {
        self.check_party(&create.job)?;
        let who = create.job.who();
        let spec = dsl::parse(&create.dsl, &create.conf, &self.inner.limits)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if !spec.participants().contains(&who) {
            return Err(Error::InvalidArgument(format!(
                "{who} is not a participant of job {}",
                create.job.job_id
            )));
        }
        if create.scheduler_party_id != *spec.initiator.party_id {
            return Err(Error::InvalidArgument(format!(
                "scheduler party {} is not the job's initiator {}",
                create.scheduler_party_id, spec.initiator
            )));
        }
        let params = spec
            .job_params(&who)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let need = Amount {
            cores: params.job_cores(),
            memory_mb: params.job_memory_mb(),
        };
        let capacity = self.inner.capacity;
        match ledger::never_fits(capacity, need) {
            Some(NeverFits::Cores) => {
                return Err(Error::FailedPrecondition(format!(
                    "party {} ({}) can never run this job: it needs {} cores (task_cores {} x task_parallelism {}) and has {} in all",
                    self.inner.party_id,
                    who.role,
                    need.cores,
                    params.task_cores,
                    params.task_parallelism,
                    capacity.cores
                )));
            }
            Some(NeverFits::Memory) => {
                return Err(Error::FailedPrecondition(format!(
                    "party {} ({}) can never run this job: it needs {} MB and has {} MB in all",
                    self.inner.party_id, who.role, need.memory_mb, capacity.memory_mb
                )));
            }
            None => {}
        }
        let plans = spec
            .task_plans(&who)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        // The scheduler's plans, checked against this party's own reading of the job.
        if let Some(task) = create
            .tasks
            .iter()
            .find(|task| !plans.iter().any(|plan| plan.component == task.component))
        {
            return Err(Error::InvalidArgument(format!(
                "tasks: component {} is not a component of job {} for {who}",
                task.component, create.job.job_id
            )));
        }
        let row = PartyJob {
            job_id: create.job.job_id.to_string(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            status: JobStatus::Waiting,
            reason: String::new(),
            scheduler_party_id: create.scheduler_party_id.to_string(),
            dsl: create.dsl.clone(),
            conf: create.conf.clone(),
            // Parsed here, once: authorisation and GetJob read them from the row.
            participants: Some(spec.party_ids()),
            cores: need.cores,
            memory_mb: need.memory_mb,
            create_ms: now_ms(),
            start_ms: 0,
            end_ms: 0,
        };
        if self.inner.store.insert_job(&row).await? {
            self.parties_of(&row);
            // The trace the job came with (remembered as the call was served), kept.
            if let Some(traceparent) = fedflow_telemetry::context::jobs::traceparent(&row.job_id)
                && let Err(e) = self
                    .inner
                    .store
                    .set_trace_parent(&row.job_id, &traceparent)
                    .await
            {
                tracing::debug!(job = %row.job_id, error = %e, "cannot record the job's trace");
            }
        } else {
            let existing = self.inner.store.job(&row.job_id, &row.role).await?;
            if existing.is_some_and(|e| e.scheduler_party_id != row.scheduler_party_id) {
                return Err(Error::FailedPrecondition(format!(
                    "job {} already exists here with another scheduler",
                    row.job_id
                )));
            }
        }
        if !create.tasks.is_empty() {
            self.inner
                .tasks
                .create_tasks(
                    create.job.job_id.as_str(),
                    &who,
                    create.scheduler_party_id.as_str(),
                    &create.tasks,
                    &spec.participants(),
                )
                .await?;
        }
        Ok(plans
            .into_iter()
            .map(|plan| (plan.component, plan.need_run))
            .collect())
    }

    /// `ready|waiting -> running`.
    pub async fn start_job(&self, job: JobRef) -> Result<JobStatus, Error> {
        let row = self.existing(&job).await?;
        for step in job::steps(row.status, JobStatus::Running) {
            self.set_status(&row, step, "").await?;
        }
        Ok(JobStatus::Running)
    }

    /// Sets the status the scheduler decided. An end releases the allocation, also when
    /// repeated, so a retry finishes what a crash interrupted. (The job's tasks are stopped by
    /// the scheduler, which commits `StopTasks` for every party with the end.)
    pub async fn update_job_status(&self, update: UpdateJobStatus) -> Result<StatusSet, Error> {
        let UpdateJobStatus {
            job: job_ref,
            status: to,
            reason,
        } = update;
        let row = self.existing(&job_ref).await?;
        let mut applied = false;
        for step in job::steps(row.status, to) {
            let reason = if step == to { reason.as_str() } else { "" };
            applied = self.set_status(&row, step, reason).await?;
        }
        if job::releases(to) {
            self.inner
                .store
                .release(job_ref.job_id.as_str(), job_ref.role.as_str())
                .await?;
        }
        Ok(StatusSet {
            applied,
            status: to,
        })
    }

    /// Compare-and-set to `to`, re-reading after a lost race; `Ok(false)` when already there.
    async fn set_status(&self, job: &PartyJob, to: JobStatus, reason: &str) -> Result<bool, Error> {
        let store = &self.inner.store;
        let mut current = store
            .job(&job.job_id, &job.role)
            .await?
            .map_or(job.status, |row| row.status);
        for _ in 0..5 {
            let change = match job::change(current, to, now_ms()) {
                Ok(Some(change)) => change,
                Ok(None) => return Ok(false),
                Err(e) => return Err(Error::FailedPrecondition(e.to_string())),
            };
            if store
                .cas_status(&job.job_id, &job.role, &change, reason, &[])
                .await?
            {
                tracing::debug!(job = %job.job_id, role = %job.role, from = %current, %to, "job status");
                return Ok(true);
            }
            current = store
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
}
