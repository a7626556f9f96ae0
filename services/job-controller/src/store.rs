//! The job-controller's tables: `jobctl_jobs` (one row per job and role on this party) and
//! `jobctl_allocations` (the resource ledger: one row per job and role holding resources).
//! Every status write is a compare-and-set on the status read before.

use fedflow_core::JobStatus;
use fedflow_store::{Command, Db, Migration, Outbox, Row, Transition, get};

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "jobctl_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "jobctl_outbox";

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_jobs_and_allocations",
        statements: &[
            "CREATE TABLE jobctl_jobs (
            job_id TEXT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            scheduler_party_id TEXT NOT NULL,
            dsl TEXT NOT NULL,
            conf TEXT NOT NULL,
            cores BIGINT NOT NULL,
            memory_mb BIGINT NOT NULL,
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, role)
        )",
            "CREATE INDEX jobctl_jobs_status ON jobctl_jobs (status)",
            "CREATE TABLE jobctl_allocations (
            job_id TEXT NOT NULL,
            role TEXT NOT NULL,
            cores BIGINT NOT NULL,
            memory_mb BIGINT NOT NULL,
            create_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, role)
        )",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "jobctl"),
    fedflow_store::outbox_migration!("m0003_outbox", "jobctl"),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] fedflow_store::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl Error {
    /// The database cannot be used right now (see [`fedflow_store::is_unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Db(e) if fedflow_store::is_unavailable(e))
    }
}

/// One job row of this party.
#[derive(Debug, Clone)]
pub struct PartyJob {
    pub job_id: String,
    pub role: String,
    pub party_id: String,
    pub status: JobStatus,
    pub reason: String,
    pub scheduler_party_id: String,
    pub dsl: String,
    pub conf: String,
    pub cores: u32,
    pub memory_mb: u32,
    pub create_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Allocation {
    pub job_id: String,
    pub role: String,
    pub cores: u32,
    pub memory_mb: u32,
    pub create_ms: i64,
}

/// The result of asking for resources.
#[derive(Debug, Clone)]
pub enum Grant {
    Granted,
    /// What is missing, e.g. "cores: requested 8, free 4 of 16".
    Refused(String),
}

#[derive(Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub async fn open(config: &fedflow_config::DatabaseConfig) -> Result<Store, Error> {
        let db = Db::connect(
            &config.url,
            config.max_connections,
            "jobctl_migrations",
            MIGRATIONS,
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
                    dsl, conf, cores, memory_mb, create_ms, update_ms)
                 VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (job_id, role) DO NOTHING",
                vec![
                    job.job_id.clone().into(),
                    job.role.clone().into(),
                    job.party_id.clone().into(),
                    job.status.as_str().into(),
                    job.scheduler_party_id.clone().into(),
                    job.dsl.clone().into(),
                    job.conf.clone().into(),
                    i64::from(job.cores).into(),
                    i64::from(job.memory_mb).into(),
                    job.create_ms.into(),
                    job.create_ms.into(),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn job(&self, job_id: &str, role: &str) -> Result<Option<PartyJob>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT * FROM jobctl_jobs WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn jobs(&self, job_id: &str) -> Result<Vec<PartyJob>, Error> {
        let rows = self
            .db
            .query(
                "SELECT * FROM jobctl_jobs WHERE job_id = ? ORDER BY role",
                vec![job_id.into()],
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Compare-and-set `from -> to`; sets start time on running and end time on an end status.
    /// Moving to an end status releases the job's allocation in the same transaction, so a
    /// row that says it ended never still holds resources. False when the row was not in
    /// `from` (someone else moved it first).
    pub async fn cas_status(
        &self,
        job_id: &str,
        role: &str,
        (from, to): (JobStatus, JobStatus),
        reason: &str,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let start = if to == JobStatus::Running { now } else { 0 };
        let end = if to.is_end() { now } else { 0 };
        let tx = self.db.begin().await?;
        let n = tx
            .exec(
                "UPDATE jobctl_jobs SET status = ?, reason = ?, update_ms = ?,
                    start_ms = CASE WHEN ? > 0 THEN ? ELSE start_ms END,
                    end_ms = ?
                 WHERE job_id = ? AND role = ? AND status = ?",
                vec![
                    to.as_str().into(),
                    reason.into(),
                    now.into(),
                    start.into(),
                    start.into(),
                    end.into(),
                    job_id.into(),
                    role.into(),
                    from.as_str().into(),
                ],
            )
            .await?;
        if n == 1 {
            tx.record(
                AUDIT,
                &Transition::new(
                    "job",
                    format!("{job_id}/{role}"),
                    from.as_str(),
                    to.as_str(),
                    reason,
                    now,
                ),
            )
            .await?;
        }
        if n == 1 {
            for command in commands {
                tx.enqueue(OUTBOX, command, now).await?;
            }
        }
        if n == 1 && to.is_end() {
            tx.exec(
                "DELETE FROM jobctl_allocations WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Reserves `cores`/`memory_mb` for (job, role) if the ledger has room; an existing
    /// allocation is granted again (idempotent). One IMMEDIATE transaction, so two applies
    /// never both take the last cores.
    pub async fn apply(
        &self,
        job_id: &str,
        role: &str,
        cores: u32,
        memory_mb: u32,
        capacity: &crate::config::Resources,
        now: i64,
    ) -> Result<Grant, Error> {
        let tx = self.db.begin().await?;
        tx.lock_for_update("jobctl_allocations").await?;
        // Checked in the transaction that reserves: a late (duplicated or delayed) apply for a
        // job that has ended meanwhile must not reserve for it again.
        let status = tx
            .query_one(
                "SELECT status FROM jobctl_jobs WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        match status
            .map(|row| get::<String>(&row, "status"))
            .transpose()?
        {
            Some(status) if status.parse::<JobStatus>().is_ok_and(|s| !s.is_end()) => {}
            Some(status) => return Ok(Grant::Refused(format!("the job has ended ({status})"))),
            None => return Ok(Grant::Refused("no such job on this party".into())),
        }
        let existing = tx
            .query_one(
                "SELECT cores FROM jobctl_allocations WHERE job_id = ? AND role = ?",
                vec![job_id.into(), role.into()],
            )
            .await?;
        if existing.is_some() {
            return Ok(Grant::Granted);
        }
        let used = tx
            .query_one(
                "SELECT CAST(COALESCE(SUM(cores), 0) AS BIGINT) AS cores,
                        CAST(COALESCE(SUM(memory_mb), 0) AS BIGINT) AS memory_mb
                 FROM jobctl_allocations",
                vec![],
            )
            .await?
            .ok_or_else(|| Error::Corrupt("SUM returned no row".into()))?;
        let used_cores: i64 = get(&used, "cores")?;
        let used_memory: i64 = get(&used, "memory_mb")?;
        let free_cores = i64::from(capacity.cores) - used_cores;
        if i64::from(cores) > free_cores {
            return Ok(Grant::Refused(format!(
                "cores: requested {cores}, free {} of {}",
                free_cores.max(0),
                capacity.cores
            )));
        }
        if capacity.memory_mb > 0 {
            let free_memory = i64::from(capacity.memory_mb) - used_memory;
            if i64::from(memory_mb) > free_memory {
                return Ok(Grant::Refused(format!(
                    "memory: requested {memory_mb} MB, free {} of {} MB",
                    free_memory.max(0),
                    capacity.memory_mb
                )));
            }
        }
        tx.exec(
            "INSERT INTO jobctl_allocations (job_id, role, cores, memory_mb, create_ms)
             VALUES (?, ?, ?, ?, ?)",
            vec![
                job_id.into(),
                role.into(),
                i64::from(cores).into(),
                i64::from(memory_mb).into(),
                now.into(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Grant::Granted)
    }

    /// The sender of this store's outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone(), OUTBOX)
    }

    /// Allocations that should not exist: of a job unknown or ended here, or taken more than
    /// `stale_before` (epoch ms) by a job that has not started running since.
    pub async fn stray_allocations(&self, stale_before: i64) -> Result<Vec<Allocation>, Error> {
        let rows = self
            .db
            .query(
                "SELECT a.job_id, a.role, a.cores, a.memory_mb, a.create_ms
                 FROM jobctl_allocations a
                 LEFT JOIN jobctl_jobs j ON j.job_id = a.job_id AND j.role = a.role
                 WHERE j.status IS NULL
                    OR j.status IN ('success', 'failed', 'canceled', 'timeout')
                    OR (j.status IN ('ready', 'waiting') AND a.create_ms < ?)",
                vec![stale_before.into()],
            )
            .await?;
        rows.iter().map(allocation_from_row).collect()
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
        let rows = self
            .db
            .query(
                "SELECT job_id, role, cores, memory_mb, create_ms FROM jobctl_allocations
                 ORDER BY create_ms",
                vec![],
            )
            .await?;
        rows.iter().map(allocation_from_row).collect()
    }
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn job_from_row(row: &Row) -> Result<PartyJob, Error> {
    let status: String = get(row, "status")?;
    Ok(PartyJob {
        job_id: get(row, "job_id")?,
        role: get(row, "role")?,
        party_id: get(row, "party_id")?,
        status: status
            .parse()
            .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))?,
        reason: get(row, "reason")?,
        scheduler_party_id: get(row, "scheduler_party_id")?,
        dsl: get(row, "dsl")?,
        conf: get(row, "conf")?,
        cores: to_u32(get::<i64>(row, "cores")?),
        memory_mb: to_u32(get::<i64>(row, "memory_mb")?),
        create_ms: get(row, "create_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}

/// The store's contract, on SQLite and (when `FEDFLOW_TEST_POSTGRES_URL` is set) PostgreSQL.
fn allocation_from_row(row: &Row) -> Result<Allocation, Error> {
    Ok(Allocation {
        job_id: get(row, "job_id")?,
        role: get(row, "role")?,
        cores: to_u32(get::<i64>(row, "cores")?),
        memory_mb: to_u32(get::<i64>(row, "memory_mb")?),
        create_ms: get(row, "create_ms")?,
    })
}

#[cfg(test)]
mod contract {
    use std::sync::Arc;

    use super::*;
    use crate::config::Resources;

    async fn stores(name: &str) -> Vec<Arc<Store>> {
        let mut stores = Vec::new();
        for url in fedflow_store::contract_backends(name).await {
            let config = fedflow_config::DatabaseConfig {
                url,
                max_connections: 8,
            };
            stores.push(Arc::new(
                Store::open(&config).await.expect("the store opens"),
            ));
        }
        stores
    }

    fn job(job_id: &str) -> PartyJob {
        PartyJob {
            job_id: job_id.into(),
            role: "host".into(),
            party_id: "10000".into(),
            status: JobStatus::Ready,
            reason: String::new(),
            scheduler_party_id: "9999".into(),
            dsl: "{}".into(),
            conf: "{}".into(),
            cores: 1,
            memory_mb: 0,
            create_ms: 1,
            start_ms: 0,
            end_ms: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn job_rows_are_created_once_and_move_only_by_compare_and_set() {
        for store in stores("jobctl_rows").await {
            assert!(store.insert_job(&job("j1")).await.expect("insert"));
            assert!(
                !store.insert_job(&job("j1")).await.expect("repeat"),
                "idempotent"
            );
            let cas = |from, to| {
                let store = store.clone();
                async move {
                    store
                        .cas_status("j1", "host", (from, to), "", &[], 10)
                        .await
                        .expect("cas")
                }
            };
            assert!(
                !cas(JobStatus::Waiting, JobStatus::Running).await,
                "stale from"
            );
            assert!(cas(JobStatus::Ready, JobStatus::Waiting).await);
            assert!(cas(JobStatus::Waiting, JobStatus::Running).await);
            assert!(
                !cas(JobStatus::Waiting, JobStatus::Running).await,
                "lost race"
            );
            let capacity = Resources {
                cores: 4,
                memory_mb: 0,
                reservation_timeout_s: 120,
            };
            store
                .apply("j1", "host", 1, 0, &capacity, 10)
                .await
                .expect("apply");
            assert!(cas(JobStatus::Running, JobStatus::Success).await);
            assert!(
                store.allocations().await.expect("ledger").is_empty(),
                "ending the row released its allocation"
            );
            let row = store.job("j1", "host").await.expect("read").expect("row");
            assert_eq!(row.status, JobStatus::Success);
            assert_eq!((row.start_ms, row.end_ms), (10, 10));
            assert_eq!(store.jobs("j1").await.expect("rows").len(), 1);
            assert!(store.job("nope", "host").await.expect("read").is_none());
            match store
                .apply("j1", "host", 1, 0, &capacity, 11)
                .await
                .expect("apply")
            {
                Grant::Refused(why) => assert_eq!(why, "the job has ended (success)"),
                Grant::Granted => panic!("a late apply reserved for an ended job"),
            }
            assert!(store.allocations().await.expect("ledger").is_empty());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_ledger_never_grants_more_than_capacity_even_concurrently() {
        for store in stores("jobctl_ledger").await {
            let capacity = Resources {
                cores: 5,
                memory_mb: 0,
                reservation_timeout_s: 120,
            };
            for i in 0..20 {
                store
                    .insert_job(&job(&format!("job{i}")))
                    .await
                    .expect("insert");
            }
            store.insert_job(&job("late")).await.expect("insert");
            let applies = (0..20).map(|i| {
                let store = store.clone();
                let capacity = capacity.clone();
                tokio::spawn(async move {
                    store
                        .apply(&format!("job{i}"), "host", 1, 0, &capacity, 1)
                        .await
                        .expect("apply")
                })
            });
            let mut granted = 0;
            for apply in applies {
                if matches!(apply.await.expect("task"), Grant::Granted) {
                    granted += 1;
                }
            }
            assert_eq!(granted, 5, "exactly the capacity is granted");
            let allocations = store.allocations().await.expect("ledger");
            assert_eq!(allocations.iter().map(|a| a.cores).sum::<u32>(), 5);
            let held = allocations[0].job_id.clone();
            // A repeated apply by a holder is granted again without taking more.
            assert!(matches!(
                store
                    .apply(&held, "host", 1, 0, &capacity, 2)
                    .await
                    .expect("apply"),
                Grant::Granted
            ));
            match store
                .apply("late", "host", 1, 0, &capacity, 2)
                .await
                .expect("apply")
            {
                Grant::Refused(why) => assert_eq!(why, "cores: requested 1, free 0 of 5"),
                Grant::Granted => panic!("over capacity"),
            }
            assert!(store.release(&held, "host").await.expect("release"));
            assert!(
                !store.release(&held, "host").await.expect("release"),
                "idempotent"
            );
            assert!(matches!(
                store
                    .apply("late", "host", 1, 0, &capacity, 3)
                    .await
                    .expect("apply"),
                Grant::Granted
            ));
        }
    }
}
