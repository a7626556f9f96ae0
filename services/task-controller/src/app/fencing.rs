//! Self-fencing: probes, every `fence_probe_interval`, each scheduler party with tasks running
//! here; when one has not been reached for `fence_after`, this party's running tasks of its
//! jobs fail as `fenced` and their workers are stopped, so nothing runs on for a scheduler
//! that has given the job up. When the network heals, the scheduler's verdict reaches the
//! job-controller as usual.

use std::time::{Duration, Instant};

use fedflow_core::TaskStatus;

use super::{App, Error};
use crate::domain::fencing;

impl App {
    /// Runs fencing passes until `shutdown`; returns at once when fencing is off.
    pub async fn fence(&self, shutdown: tokio_util::sync::CancellationToken) {
        let Some(after) = self.inner.timing.fence_after else {
            return;
        };
        let period = self
            .inner
            .timing
            .fence_probe_interval
            .max(Duration::from_millis(100));
        loop {
            if let Err(e) = self.fence_pass(after).await {
                tracing::warn!(error = %e, "fencing pass failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn fence_pass(&self, after: Duration) -> Result<(), Error> {
        let by_scheduler = fencing::by_scheduler(self.inner.store.running().await?);
        let began = Instant::now();
        self.inner
            .contacts
            .lock()
            .keep_only(|party| by_scheduler.contains_key(party));
        for (scheduler, tasks) in by_scheduler {
            // A hung peer holds a call until its deadline; a probe waits one period at most.
            let reached = tokio::time::timeout(
                self.inner
                    .timing
                    .fence_probe_interval
                    .max(Duration::from_secs(1)),
                self.inner
                    .reporter
                    .probe(&scheduler, &tasks[0].key, TaskStatus::Running),
            )
            .await
            .unwrap_or(false);
            let silent =
                self.inner
                    .contacts
                    .lock()
                    .observe(&scheduler, reached, began, Instant::now());
            let Some(reason) = fencing::verdict(&scheduler, reached, silent, after) else {
                continue;
            };
            tracing::warn!(%scheduler, tasks = tasks.len(), %reason, "fencing");
            let fenced = fencing::fence(&reason);
            for task in &tasks {
                self.apply(task, &fenced).await?;
            }
        }
        Ok(())
    }
}
