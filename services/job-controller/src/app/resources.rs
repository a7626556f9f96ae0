//! The resource ledger's use cases: apply (all or nothing, decided by
//! [`crate::domain::ledger::admit`] inside the store's transaction), return, the view for
//! `GetResources`, and the reconciler that releases what should not be held.

use std::time::Duration;

use fedflow_rpc::now_ms;
use tokio_util::sync::CancellationToken;

use super::{App, Error, JobRef};
use crate::domain::ledger::{self, Used};
use crate::domain::{Applied, ResourceView};

impl App {
    /// Reserves the job's resources; a refusal (naming what is short) is an answer, not an
    /// error.
    pub async fn apply_resource(&self, job: JobRef) -> Result<Applied, Error> {
        let row = self.existing(&job).await?;
        if row.status.is_end() {
            return Err(Error::FailedPrecondition(format!(
                "job {} has ended ({}) on this party",
                job.job_id, row.status
            )));
        }
        let ask = row.need();
        let grant = self
            .inner
            .store
            .apply(
                job.job_id.as_str(),
                job.role.as_str(),
                ask,
                self.inner.capacity,
                now_ms(),
            )
            .await?;
        Ok(Applied { grant, ask })
    }

    /// Releases the job's reservation; false when it held none.
    pub async fn return_resource(&self, job: JobRef) -> Result<bool, Error> {
        self.existing(&job).await?;
        Ok(self
            .inner
            .store
            .release(job.job_id.as_str(), job.role.as_str())
            .await?)
    }

    pub async fn resources(&self) -> Result<ResourceView, Error> {
        let allocations = self.inner.store.allocations().await?;
        let used = allocations.iter().fold(Used::default(), |used, a| Used {
            cores: used.cores + i64::from(a.cores),
            memory_mb: used.memory_mb + i64::from(a.memory_mb),
        });
        Ok(ResourceView {
            capacity: self.inner.capacity,
            free: ledger::free(self.inner.capacity, used),
            allocations,
        })
    }

    /// Releases, every `period` until `shutdown`, the reservations [`ledger::is_stray`] names:
    /// of jobs that ended or are unknown here, and of jobs still not running
    /// `reservation_timeout` after the grant (their scheduler stopped between asking and
    /// starting).
    pub async fn run_reconciler(
        &self,
        period: Duration,
        reservation_timeout: Duration,
        shutdown: CancellationToken,
    ) {
        loop {
            self.reconcile(reservation_timeout).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
        }
    }

    async fn reconcile(&self, reservation_timeout: Duration) {
        let timeout = i64::try_from(reservation_timeout.as_millis()).unwrap_or(i64::MAX / 2);
        let stale_before = now_ms() - timeout;
        let held = match self.inner.store.held().await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "reservation check failed");
                return;
            }
        };
        let stray = held
            .into_iter()
            .filter(|(a, job)| ledger::is_stray(*job, a.create_ms, stale_before));
        for (a, _) in stray {
            match self.inner.store.release(&a.job_id, &a.role).await {
                Ok(true) => {
                    tracing::info!(job = %a.job_id, role = %a.role, cores = a.cores, "released a stray reservation")
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(job = %a.job_id, error = %e, "could not release a stray reservation")
                }
            }
        }
    }
}
