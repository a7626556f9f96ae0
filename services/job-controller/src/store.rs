//! The job-controller's storage: `jobctl_jobs` (one row per job and role on this party) and
//! `jobctl_allocations` (the resource ledger: one row per job and role holding resources),
//! with the audit trail and the outbox. Every status write is a compare-and-set on the status
//! read before; the store decides nothing itself: it writes the [`Change`] and the admission
//! the domain decided ([`crate::domain`]). Tables: `store/schema.rs`; rows: `store/rows.rs`.

mod rows;
mod schema;

use fedflow_core::JobStatus;
use fedflow_store::{Command, Db, Outbox, Transition, get};

use crate::domain::job::Change;
use crate::domain::ledger::{self, Admission, Books, Capacity, Used};
use crate::domain::{Allocation, Amount, Grant, PartyJob};

/// The store's error (a failed database, a corrupt row).
pub use fedflow_store::StoreError as Error;

/// The job-controller's database; cheap to clone (a pool).
#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Counts this store's statements in `registry` (`<prefix>_store_statements_total`).
    pub fn register_statements(
        &self,
        registry: &fedflow_telemetry::metrics::Metrics,
        prefix: &str,
    ) {
        self.db.register_statements(registry, prefix);
    }

    /// The store at `url`, migrated, with a pool of `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, Error> {
        let db = Db::connect(
            url,
            max_connections,
            "jobctl_migrations",
            schema::MIGRATIONS,
        )
        .await?;
        Ok(Store { db })
    }

    /// Inserts the row unless it exists; true when inserted.
    pub async fn insert_job(&self, job: &PartyJob) -> Result<bool, Error> {
        let n = self
            .db
            .exec(
                "INSERT INTO jobctl_jobs (job_id, role, party_id, status, reason, scheduler_party_id,
                    dsl, conf, participants, cores, memory_mb, create_ms, update_ms)
                 VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (job_id, role) DO NOTHING",
                vec![
                    job.job_id.clone().into(),
                    job.role.clone().into(),
                    job.party_id.clone().into(),
                    job.status.as_str().into(),
                    job.scheduler_party_id.clone().into(),
                    job.dsl.clone().into(),
                    job.conf.clone().into(),
                    rows::participants_column(job.participants.as_ref()).into(),
                    i64::from(job.cores).into(),
                    i64::from(job.memory_mb).into(),
                    job.create_ms.into(),
                    job.create_ms.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the traceparent the job was created with, unless one is recorded (m0005).
    pub async fn set_trace_parent(&self, job_id: &str, traceparent: &str) -> Result<(), Error> {
        self.db
            .exec(
                "UPDATE jobctl_jobs SET trace_parent = ? WHERE job_id = ? AND trace_parent IS NULL",
                vec![traceparent.into(), job_id.into()],
            )
            .await?;
        Ok(())
    }

    /// The recorded traceparents of the newest `limit` jobs that have one: (job id, traceparent).
    pub async fn trace_parents(&self, limit: u32) -> Result<Vec<(String, String)>, Error> {
        let sql = "SELECT DISTINCT job_id, trace_parent, create_ms FROM jobctl_jobs
                   WHERE trace_parent IS NOT NULL ORDER BY create_ms DESC LIMIT ?";
        self.db
            .fetch(sql, vec![i64::from(limit).into()], |row| {
                Ok::<_, Error>((get(row, "job_id")?, get(row, "trace_parent")?))
            })
            .await
    }

    pub async fn job(&self, job_id: &str, role: &str) -> Result<Option<PartyJob>, Error> {
        let sql = "SELECT * FROM jobctl_jobs WHERE job_id = ? AND role = ?";
        self.db
            .fetch_one(sql, vec![job_id.into(), role.into()], rows::job)
            .await
    }

    pub async fn jobs(&self, job_id: &str) -> Result<Vec<PartyJob>, Error> {
        let sql = "SELECT * FROM jobctl_jobs WHERE job_id = ? ORDER BY role";
        self.db.fetch(sql, vec![job_id.into()], rows::job).await
    }

    /// Writes `change` if the row is still in `change.from`, with its audit record and
    /// `commands` in the same transaction, and deletes the allocation when the change says so.
    /// False when the row was not in `from` (someone else moved it first): nothing written.
    pub async fn cas_status(
        &self,
        job_id: &str,
        role: &str,
        change: &Change,
        reason: &str,
        commands: &[Command],
    ) -> Result<bool, Error> {
        let tx = self.db.begin().await?;
        let n = tx
            .exec(
                "UPDATE jobctl_jobs SET status = ?, reason = ?, update_ms = ?,
                    start_ms = COALESCE(?, start_ms), end_ms = ?
                 WHERE job_id = ? AND role = ? AND status = ?",
                vec![
                    change.to.as_str().into(),
                    reason.into(),
                    change.update_ms.into(),
                    change.start_ms.into(),
                    change.end_ms.into(),
                    job_id.into(),
                    role.into(),
                    change.from.as_str().into(),
                ],
            )
            .await?;
        if n != 1 {
            return Ok(false);
        }
        let transition = Transition::new(
            "job",
            format!("{job_id}/{role}"),
            change.from.as_str(),
            change.to.as_str(),
            reason,
            change.update_ms,
        );
        tx.record(schema::AUDIT, &transition).await?;
        for command in commands {
            tx.enqueue(schema::OUTBOX, command, change.update_ms)
                .await?;
        }
        if change.release {
            tx.exec(
                "DELETE FROM jobctl_allocations WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Reserves `ask` for (job, role) when [`ledger::admit`] says so. One locking
    /// transaction reads the books, decides and writes, so two applies never both take the
    /// last cores, and a late apply for a job that ended meanwhile cannot reserve again.
    pub async fn apply(
        &self,
        job_id: &str,
        role: &str,
        ask: Amount,
        capacity: Capacity,
        now: i64,
    ) -> Result<Grant, Error> {
        let tx = self.db.begin().await?;
        tx.lock_for_update("jobctl_allocations").await?;
        let job = tx
            .query_one(
                "SELECT status FROM jobctl_jobs WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?
            .map(|row| rows::status(&get::<String>(&row, "status")?))
            .transpose()?;
        let held = tx
            .query_one(
                "SELECT cores FROM jobctl_allocations WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?
            .is_some();
        let used = tx
            .query_one(
                "SELECT CAST(COALESCE(SUM(cores), 0) AS BIGINT) AS cores,
                        CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT) AS memory_mb
                 FROM jobctl_allocations",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::Corrupt("SUM returned no row".into()))?;
        let used = Used {
            cores: get(&used, "cores")?,
            memory_mb: get(&used, "memory_mb")?,
        };
        let admission = ledger::admit(&Books { job, held, used }, capacity, ask);
        if admission == Admission::Reserve {
            tx.exec(
                "INSERT INTO jobctl_allocations (job_id, role, cores, memory_mb, create_ms)
                 VALUES (?, ?, ?, ?, ?)",
                vec![
                    job_id.into(),
                    role.into(),
                    i64::from(ask.cores).into(),
                    i64::from(ask.memory_mb).into(),
                    now.into(),
                ],
            )
            .await?;
            tx.commit().await?;
        }
        Ok(admission.into())
    }

    /// The sender of this store's outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone(), schema::OUTBOX)
    }

    /// Every allocation with its job's status here (`None`: no such job row), for the
    /// reconciler to judge with [`ledger::is_stray`]. Small: at most one per job holding cores.
    pub async fn held(&self) -> Result<Vec<(Allocation, Option<JobStatus>)>, Error> {
        let sql = "SELECT a.job_id, a.role, a.cores, a.memory_mb, a.create_ms, j.status
                 FROM jobctl_allocations a
                 LEFT JOIN jobctl_jobs j ON j.job_id = a.job_id AND j.role = a.role
                 ORDER BY a.create_ms";
        self.db.fetch(sql, vec![], rows::held).await
    }

    /// Deletes the allocation; true when there was one.
    pub async fn release(&self, job_id: &str, role: &str) -> Result<bool, Error> {
        let n = self
            .db
            .exec(
                "DELETE FROM jobctl_allocations WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        Ok(n > 0)
    }

    pub async fn allocations(&self) -> Result<Vec<Allocation>, Error> {
        let sql = "SELECT job_id, role, cores, memory_mb, create_ms FROM jobctl_allocations
                 ORDER BY create_ms";
        self.db.fetch(sql, vec![], rows::allocation).await
    }
}

#[cfg(test)]
mod contract;
