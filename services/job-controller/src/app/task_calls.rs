//! The job-controller's calls to its own party's task-controller: creating a job's version-0
//! task rows (from `CreateJob`) and stopping a job's tasks at an unsuccessful end. Both are
//! leaving this service: the scheduler is to create the task rows of every version and to
//! commit `StopTasks` at a job's end itself. Each lives in one function here, so that change
//! deletes the function and its one call site, and nothing else.

use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::JobId;

use super::{App, CreateJob, Error, JobRef};
use crate::domain::job::Stop;
use crate::tasks::TaskControllerClient;

impl App {
    /// Creates the party's version-0 task rows on the task-controller (idempotent there by
    /// request id, so a repeated `CreateJob` repeats it harmlessly).
    ///
    /// To be deleted when the scheduler creates the task rows of every version: `CreateJob`
    /// then stores only the job row.
    pub(super) async fn create_version_zero_tasks(
        &self,
        create: &CreateJob,
        plans: &[TaskPlan],
    ) -> Result<(), Error> {
        let job = &create.job;
        self.inner
            .tasks
            .create_tasks(
                job.job_id.as_str(),
                &job.who(),
                create.scheduler_party_id.as_str(),
                0,
                plans,
            )
            .await?;
        Ok(())
    }

    /// The `StopTasks` an unsuccessful end commits to the outbox with the end status.
    ///
    /// To be deleted, with [`App::deliver_stops`], when the scheduler's end commits
    /// `StopTasks` itself: the job-controller then only releases the ledger.
    pub(super) fn stop_tasks_command(job: &JobRef, stop: &Stop) -> fedflow_store::Command {
        TaskControllerClient::stop_command(
            job.job_id.as_str(),
            &job.who(),
            stop.status,
            &stop.reason,
        )
    }

    /// Delivers what the outbox still holds for the job before an end is acknowledged (a
    /// repeated call delivers what is still pending), so that when the scheduler has every
    /// party's acknowledgement nothing of the job runs anywhere and a rerun cannot be
    /// overtaken by a late stop.
    ///
    /// To be deleted with [`App::stop_tasks_command`].
    pub(super) async fn deliver_stops(&self, job_id: &JobId) -> Result<(), Error> {
        let tasks = self.inner.tasks.clone();
        self.inner
            .outbox
            .flush_job(job_id.as_str(), |c| {
                let tasks = tasks.clone();
                async move { tasks.deliver(c).await }
            })
            .await
            .map_err(|e| Error::Unavailable(format!("the job's tasks are not stopped yet: {e}")))
    }
}
