//! The repair pass: what events missed. A submit interrupted before every party created the
//! job fails; a running job with a party unreachable for too long fails; starts no party
//! confirmed are sent again; quiet parties' statuses are pulled; every running job is driven
//! again. Runs at start-up, then every `repair_interval_ms`.

use std::collections::BTreeSet;
use std::time::Duration;

use fedflow_core::{JobStatus, TaskStatus};
use fedflow_rpc::now_ms;
use tokio_util::sync::CancellationToken;

use super::{App, Error};

impl App {
    /// Repairs what events missed: pulls the statuses of running tasks whose parties have been
    /// quiet, and re-drives every running job. Runs at start-up, then every
    /// `repair_interval_ms`.
    pub async fn run_repair(&self, shutdown: CancellationToken) {
        let period = Duration::from_millis(self.inner.scheduling.repair_interval_ms.max(100));
        loop {
            if let Err(e) = self.repair_pass(period).await {
                tracing::warn!(error = %e, "repair pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn repair_pass(&self, quiet: Duration) -> Result<(), Error> {
        // A job still `ready` long after its submit was interrupted (a crash between storing it
        // and creating it on every party): it fails, and every party is told.
        let stale_before = now_ms()
            - 2 * i64::try_from(self.inner.scheduling.call_timeout_ms).unwrap_or(10_000)
            - 1_000;
        for job_id in self.store().job_ids_in(JobStatus::Ready, 1_000).await? {
            let _guard = self.lock(&job_id).await;
            let job = self.job(&job_id).await?;
            if job.status == JobStatus::Ready && job.create_ms < stale_before {
                self.end_job(
                    &job,
                    JobStatus::Failed,
                    "submission interrupted before every party created the job",
                )
                .await?;
            }
        }
        let running = self.store().job_ids_in(JobStatus::Running, 100_000).await?;
        let quiet_ms = i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX);
        let unreachable_ms = i64::try_from(
            self.inner
                .scheduling
                .party_unreachable_timeout_s
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        // A party that did not answer once in this pass is not called again in it, so one
        // hung party costs one call deadline per pass, not one per job.
        let mut down: BTreeSet<String> = BTreeSet::new();
        for job_id in running {
            let Some((guard, job, spec)) = self.locked_in(&job_id, JobStatus::Running).await?
            else {
                continue;
            };
            let now = now_ms();
            if let Some((party, for_ms)) = spec
                .party_ids()
                .into_iter()
                .filter_map(|p| Some((p.clone(), self.inner.remote.unreachable_for(&p, now)?)))
                .find(|(_, for_ms)| *for_ms > unreachable_ms)
            {
                let reason = format!(
                    "party {party} unreachable for {}s (party_unreachable_timeout is {}s)",
                    for_ms / 1000,
                    unreachable_ms / 1000
                );
                tracing::warn!(job = %job_id, %reason, "job fails");
                self.end_job(&job, JobStatus::Failed, &reason).await?;
                continue;
            }
            let parties = self.store().task_parties(&job_id).await?;
            // Starts that no party confirmed are sent again (idempotent on the receiver).
            let running_tasks: BTreeSet<(String, i32)> = self
                .store()
                .tasks(&job_id)
                .await?
                .into_iter()
                .filter(|t| t.status == TaskStatus::Running)
                .map(|t| (t.component, t.version))
                .collect();
            for row in parties.iter().filter(|p| {
                p.status == TaskStatus::Waiting
                    && now - p.update_ms > quiet_ms
                    && running_tasks.contains(&(p.component.clone(), p.version))
            }) {
                if down.contains(&row.who.party_id) {
                    continue;
                }
                match self
                    .inner
                    .remote
                    .start_task(&job_id, &row.who, &row.component, row.version)
                    .await
                {
                    Ok(status) if status != TaskStatus::Waiting => {
                        self.apply_reported(row, status, "").await?;
                    }
                    Ok(_) => {}
                    Err(e) if e.is_transient() => {
                        down.insert(row.who.party_id.clone());
                    }
                    Err(e) => {
                        let reason = format!("could not start on party {}: {e}", row.who.party_id);
                        self.apply_party_status(row, TaskStatus::Failed, &reason)
                            .await?;
                    }
                }
            }
            let quiet_parties: BTreeSet<String> = parties
                .iter()
                .filter(|p| p.status == TaskStatus::Running && now - p.update_ms > quiet_ms)
                .map(|p| p.who.party_id.clone())
                .filter(|p| !down.contains(p))
                .collect();
            for party in quiet_parties {
                match self.inner.remote.party_tasks(&party, &job_id).await {
                    Ok(rows) => {
                        for pulled in rows {
                            if let Some(row) = parties.iter().find(|p| {
                                p.component == pulled.component
                                    && p.version == pulled.version
                                    && p.who == pulled.who
                            }) {
                                self.apply_reported(row, pulled.party_status, &pulled.reason)
                                    .await?;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(job = %job_id, %party, error = %e, "status pull failed");
                        if e.is_transient() {
                            down.insert(party);
                        }
                    }
                }
            }
            self.drive(&guard).await?;
        }
        Ok(())
    }
}
