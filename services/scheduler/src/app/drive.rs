//! Driving a job: a party's report of its own status is recorded, then [`App::drive`] reads
//! the job's rows, asks [`plan`] what happens next, and applies each decision: its
//! compare-and-set first, then its effects (events, the announce, party calls, timers). A
//! round that changed something is followed by another, up to 64; the repair pass continues a
//! job that did not settle. The timer loop drives jobs whose wake-up fell due.

use std::collections::BTreeMap;
use std::time::Duration;

use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::{self, Participant};
use fedflow_core::{TaskStatus, Transition};
use fedflow_rpc::now_ms;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{App, Error, JobGuard, corrupt};
use crate::domain::plan::{self, Attempt, Decision};
use crate::domain::versions;
use crate::events::Event;
use crate::store::{Task, TaskParty};

impl App {
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
        let guard = self.lock(job_id).await;
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
            self.drive(&guard).await?;
        }
        Ok(applied)
    }

    /// Applies a status a party itself reported (or answered, or was pulled from it).
    pub(super) async fn apply_reported(
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

    /// Moves one party's row with a compare-and-set (a stale or repeated status is ignored)
    /// and publishes the change.
    pub(super) async fn apply_party_status(
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
    /// starts every ready task; repeats while a round changes something.
    pub(super) async fn drive(&self, guard: &JobGuard) -> Result<(), Error> {
        if !fedflow_telemetry::context::exporting() {
            return self.drive_rounds(guard).await;
        }
        let span = tracing::info_span!(
            "drive job",
            job_id = %guard.job_id(),
            party_id = %self.inner.party_id,
        );
        fedflow_telemetry::context::join_job(&span, guard.job_id());
        self.drive_rounds(guard).instrument(span).await
    }

    async fn drive_rounds(&self, guard: &JobGuard) -> Result<(), Error> {
        let job_id = guard.job_id();
        for _ in 0..64 {
            let job = self.job(job_id).await?;
            let spec = self.spec(&job)?;
            let parties = self.store().task_parties(job_id).await?;
            let latest = plan::latest(self.store().tasks(job_id).await?);
            let limits = self.limits(&spec);
            let decisions = plan::plan(&job, &spec, &latest, &parties, &limits, now_ms());
            let mut again = plan::unsettled(&decisions);
            let mut starts = Vec::new();
            // Whether the job has ended: a task's end is then announced at once (the job's end
            // announced those before it).
            let mut job_ended = job.status.is_end();
            for decision in decisions {
                match decision {
                    Decision::SetTask {
                        task,
                        from,
                        to,
                        reason,
                    } => {
                        let Some(row) = latest.get(&task.component) else {
                            continue;
                        };
                        debug_assert_eq!(row.status, from);
                        if !self
                            .set_task_status(&spec, row, to, &reason, job_ended)
                            .await?
                        {
                            // Moved meanwhile: what follows was planned on a stale read.
                            again = true;
                            break;
                        }
                    }
                    Decision::SetParty {
                        task,
                        who,
                        to,
                        reason,
                        ..
                    } => {
                        if let Some(row) = parties.iter().find(|p| {
                            p.component == task.component
                                && p.version == task.version
                                && p.who == who
                        }) {
                            self.apply_party_status(row, to, &reason).await?;
                        }
                    }
                    Decision::StopTask {
                        task,
                        status,
                        reason,
                    } => {
                        if status == TaskStatus::Timeout {
                            tracing::info!(job = %job_id, component = %task.component, %reason);
                        }
                        self.stop_everywhere(
                            &spec,
                            job_id,
                            0,
                            Some((&task.component, task.version)),
                            status,
                            &reason,
                        )
                        .await;
                    }
                    Decision::Retry(attempt) => self.retry(&spec, job_id, &attempt).await?,
                    Decision::RaiseProgress(progress) => {
                        self.store().raise_progress(job_id, progress).await?;
                    }
                    Decision::Start(task) => {
                        if let Some(row) = latest.get(&task.component) {
                            starts.push(row.clone());
                        }
                    }
                    Decision::EndJob { status, reason } => {
                        self.end_job(&job, status, &reason).await?;
                        job_ended = true;
                    }
                    Decision::WakeAt(at) => self.inner.timers.wake_at(job_id, at),
                }
            }
            if !starts.is_empty() {
                self.start_tasks(&spec, &starts).await?;
            }
            if !again {
                return Ok(());
            }
        }
        tracing::warn!(job = %job_id, "drive did not settle; the repair pass will continue");
        Ok(())
    }

    /// Moves a task version's federated status with a compare-and-set and publishes the
    /// change; an end is announced to every party now if the job has ended (`job_ended`), else
    /// with the job's end. False when the row had moved.
    async fn set_task_status(
        &self,
        spec: &JobSpec,
        task: &Task,
        to: TaskStatus,
        reason: &str,
        job_ended: bool,
    ) -> Result<bool, Error> {
        if !self
            .store()
            .cas_task_status(task, to, reason, &[], now_ms())
            .await?
        {
            return Ok(false);
        }
        if to.is_end() && job_ended {
            self.announce_task_status(spec, task, to);
        }
        tracing::debug!(job = %task.job_id, component = %task.component, version = task.version, from = %task.status, %to, "task status");
        self.publish(Event::task(task, to, reason));
        Ok(true)
    }

    /// Creates `versions` (component -> new version) of the job's tasks on every party, all
    /// at once; the first refusal is the error (the caller then changes nothing here).
    pub(super) async fn create_versions(
        &self,
        job_id: &str,
        spec: &JobSpec,
        versions: &BTreeMap<String, i32>,
    ) -> Result<(), Error> {
        let creations = versions::creations(spec, versions).map_err(corrupt)?;
        let parties = spec.participants();
        let created = join_all(creations.iter().map(|(who, version, plans)| {
            self.inner.remote.create_tasks(
                job_id,
                who,
                &self.inner.party_id,
                *version,
                plans,
                &parties,
            )
        }))
        .await;
        if let Some(err) = created.into_iter().find_map(Result::err) {
            return Err(Error::Remote(err));
        }
        Ok(())
    }

    /// Creates the retry's version on every party, then stores its rows.
    async fn retry(&self, spec: &JobSpec, job_id: &str, attempt: &Attempt) -> Result<(), Error> {
        let Attempt {
            failed,
            status,
            reason,
            version,
            retries_left,
            not_before_ms,
        } = attempt;
        let (version, retries_left, not_before_ms) = (*version, *retries_left, *not_before_ms);
        let next: BTreeMap<String, i32> = [(failed.component.clone(), version)].into();
        self.create_versions(job_id, spec, &next).await?;
        let now = now_ms();
        let (tasks, rows) =
            versions::new_version_rows(job_id, spec, &next, retries_left, not_before_ms, now);
        for task in &tasks {
            self.store().insert_retry(task, &rows, now).await?;
        }
        tracing::info!(
            job = %job_id,
            component = %failed.component,
            version,
            retries_left,
            %reason,
            from = %status,
            "task retry"
        );
        self.publish(Event::Task {
            job_id: job_id.to_owned(),
            time_ms: now,
            component: failed.component.clone(),
            version,
            who: None,
            status: TaskStatus::Waiting,
            reason: format!("retry of version {} after: {reason}", failed.version),
        });
        Ok(())
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
                self.publish(Event::task(task, TaskStatus::Running, ""));
                started.push(task);
            }
        }
        let calls = started.iter().flat_map(|task| {
            participants.iter().map(move |who| async move {
                let result = self
                    .inner
                    .remote
                    .start_task(&task.job_id, who, &task.component, task.version)
                    .await;
                (*task, who, result)
            })
        });
        let answers = join_all(calls).await;
        let Some(first) = started.first() else {
            return Ok(());
        };
        // Every party's row as it is now, in one read: the answers are recorded against it.
        let rows = self.store().task_parties(&first.job_id).await?;
        // The plain answers (a party's next status, one step on from its row: `running`, as a
        // rule) are recorded together, in one transaction; the rest one by one.
        let mut plain = Vec::new();
        for (task, who, result) in answers {
            let Some(row) = rows.iter().find(|p| {
                p.component == task.component && p.version == task.version && p.who == *who
            }) else {
                continue;
            };
            match result {
                Ok(status)
                    if status != TaskStatus::Waiting
                        && row.status.apply(status) == Ok(Transition::Changed)
                        && !(row.status == TaskStatus::Waiting && status.is_end()) =>
                {
                    plain.push((row, status));
                }
                result => self.record_start(row, result).await?,
            }
        }
        let changed = self.store().cas_party_statuses(&plain, now_ms()).await?;
        for ((row, to), changed) in plain.into_iter().zip(changed) {
            if changed {
                self.publish(Event::Task {
                    job_id: row.job_id.clone(),
                    time_ms: now_ms(),
                    component: row.component.clone(),
                    version: row.version,
                    who: Some(row.who.clone()),
                    status: to,
                    reason: String::new(),
                });
            }
        }
        Ok(())
    }

    /// Records a party's answer to a start as its status.
    pub(super) async fn record_start(
        &self,
        row: &TaskParty,
        result: Result<TaskStatus, fedflow_rpc::error::RemoteError>,
    ) -> Result<(), Error> {
        match result {
            Ok(status) if status != TaskStatus::Waiting => {
                self.apply_reported(row, status, "").await?;
            }
            Ok(_) => {}
            // Not reached (or no answer in time): the start stays due, and the repair pass
            // sends it again (a start is idempotent) until the party answers or is declared
            // unreachable.
            Err(e) if e.is_transient() => {
                tracing::warn!(job = %row.job_id, component = %row.component, party = %row.who.party_id, error = %e, "start not confirmed; will be sent again");
            }
            Err(e) => {
                let reason = format!("could not start on party {}: {e}", row.who.party_id);
                tracing::warn!(job = %row.job_id, component = %row.component, %reason);
                self.apply_party_status(row, TaskStatus::Failed, &reason)
                    .await?;
            }
        }
        Ok(())
    }

    /// Serves the timers set by the drive until `shutdown`: drives each job whose wake-up
    /// fell due.
    pub async fn run_timers(&self, shutdown: CancellationToken) {
        loop {
            let (due, next) = self.inner.timers.take_due(now_ms());
            for job_id in due {
                let guard = self.lock(&job_id).await;
                if let Err(e) = self.drive(&guard).await {
                    tracing::warn!(job = %job_id, error = %e, "timed drive failed");
                }
            }
            let pause = next.map_or(Duration::from_secs(3600), |at| {
                Duration::from_millis(u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0))
            });
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.inner.timers.changed() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
