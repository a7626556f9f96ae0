//! The job-controller's tables: `jobctl_jobs` (one row per job and role on this party) and
//! `jobctl_allocations` (the resource ledger: one row per job and role holding resources).
//! Every status write is a compare-and-set on the status read before.

use fedflow_core::JobStatus;
use fedflow_store::{Db, Migration, Row, get};

const MIGRATIONS: &[Migration] = &[Migration {
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
}];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] fedflow_store::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
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
    /// False when the row was not in `from` (someone else moved it first).
    pub async fn cas_status(
        &self,
        job_id: &str,
        role: &str,
        from: JobStatus,
        to: JobStatus,
        reason: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let start = if to == JobStatus::Running { now } else { 0 };
        let end = if to.is_end() { now } else { 0 };
        let n = self
            .db
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
        rows.iter()
            .map(|row| {
                Ok(Allocation {
                    job_id: get(row, "job_id")?,
                    role: get(row, "role")?,
                    cores: to_u32(get::<i64>(row, "cores")?),
                    memory_mb: to_u32(get::<i64>(row, "memory_mb")?),
                    create_ms: get(row, "create_ms")?,
                })
            })
            .collect()
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
