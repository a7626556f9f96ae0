//! Job status writes and what they send: the compare-and-set of a job status, its sync to every
//! participant, a job's end (its status and the stop of its tasks on every party committed to
//! the outbox in the same transaction), the display-only announce of a task's federated end,
//! and the outbox loop that delivers what was committed.

use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus, Transition};
use fedflow_rpc::now_ms;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::{App, Error};
use crate::domain::end;
use crate::events::Event;
use crate::remote::Remote;
use crate::store::{Job, Task};

impl App {
    /// Moves the job `job.status -> to` with a compare-and-set and publishes the change.
    /// `commands` are committed with the change (to the outbox) and sent once it is.
    pub(super) async fn set_job_status(
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
        self.inner.metrics.moved(job.status, to);
        if job.status == JobStatus::Waiting && to == JobStatus::Running {
            let waited = (now_ms() - job.queued_ms).max(0) as f64 / 1000.0;
            self.inner.metrics.waited(waited);
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
    pub(super) async fn sync_job_status(
        &self,
        job_id: &str,
        epoch: i64,
        participants: &[Participant],
        status: JobStatus,
        reason: &str,
    ) -> bool {
        let failures = join_all(participants.iter().map(|who| {
            self.inner.remote.update_job_status(job_id, epoch, who, status, reason)
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
    /// outbox in the same transaction, and (unless it succeeded) the stop of whatever of the
    /// job still runs there. Each party returns its resources when told; the queue looks again
    /// once parties acknowledge.
    pub(super) async fn end_job(
        &self,
        job: &Job,
        to: JobStatus,
        reason: &str,
    ) -> Result<(), Error> {
        let spec = self.spec(job)?;
        // The stored reason stays when the new one is empty.
        let told = if reason.is_empty() {
            &job.reason
        } else {
            reason
        };
        let participants = spec.participants();
        let mut commands: Vec<_> = participants
            .iter()
            .map(|who| Remote::job_status_command(&job.job_id, job.queued_ms, who, to, told))
            .collect();
        if let Some(stop) = end::stop(to, told) {
            commands.extend(
                participants
                    .iter()
                    .map(|who| Remote::end_stop_command(&job.job_id, job.queued_ms, who, &stop)),
            );
        }
        if !self.set_job_status(job, to, reason, &commands).await? {
            return Ok(());
        }
        self.inner.outbox.wake();
        self.announce_task_statuses(&spec, job).await?;
        // An ended job needs no timers and no cached spec (a rerun parses it again).
        self.inner.timers.forget(&job.job_id);
        self.forget_spec(&job.job_id);
        Ok(())
    }

    /// Tells every party a task version's federated end status, once, in the background. It
    /// is for display on the parties (their own statuses drive everything), so it is not
    /// worth an outbox write per party on the hot path. Used for a task that ends after its
    /// job did; while the job runs, the ends wait for [`App::announce_task_statuses`].
    pub(super) fn announce_task_status(&self, spec: &JobSpec, task: &Task, status: TaskStatus) {
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
        self.deliver_in_background(commands);
    }

    /// Tells every party the federated end status of every task version of the job that has
    /// ended, in one call per party, once the job ended: the tasks' ends during the run were
    /// not sent one by one (a 3-task job on 3 parties: 3 calls instead of 9). Like
    /// [`App::announce_task_status`], once, in the background.
    async fn announce_task_statuses(&self, spec: &JobSpec, job: &Job) -> Result<(), Error> {
        let tasks = self.store().tasks(&job.job_id).await?;
        let ended: Vec<(&str, i32, TaskStatus)> = tasks
            .iter()
            .filter(|t| t.status.is_end())
            .map(|t| (t.component.as_str(), t.version, t.status))
            .collect();
        let commands: Vec<_> = spec
            .party_ids()
            .into_iter()
            .filter_map(|party| {
                Remote::task_statuses_command(&job.job_id, job.queued_ms, &party, &ended)
            })
            .collect();
        self.deliver_in_background(commands);
        Ok(())
    }

    fn deliver_in_background(&self, commands: Vec<fedflow_store::Command>) {
        if commands.is_empty() {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            join_all(commands.into_iter().map(|c| app.deliver(c))).await;
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
                    let result = app.deliver(command).await;
                    if result.is_ok() && frees {
                        // A party that learnt of an end released its resources.
                        app.inner.queue.notify_one();
                    }
                    result
                }
            })
            .await;
    }
}
