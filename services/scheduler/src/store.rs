//! The scheduler's tables, for the jobs whose scheduler this party is:
//! - `scheduler_jobs`: the job (DSL, conf, federated status, cancel intent, reasons).
//! - `scheduler_tasks`: one row per (job, component, version) with the federated status.
//! - `scheduler_task_parties`: one row per (job, component, version, role, party) with that
//!   party's own status, as reported.
//!
//! Every status write is a compare-and-set on the status read before.

use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_store::{Command, Db, Migration, Outbox, Row, Transition, Tx, get};

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "scheduler_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "scheduler_outbox";

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_jobs_tasks",
        statements: &[
            "CREATE TABLE scheduler_jobs (
            job_id TEXT NOT NULL PRIMARY KEY,
            status TEXT NOT NULL,
            dsl TEXT NOT NULL,
            conf TEXT NOT NULL,
            initiator_role TEXT NOT NULL,
            initiator_party TEXT NOT NULL,
            priority BIGINT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            pending_reason TEXT NOT NULL DEFAULT '',
            cancel_requested BIGINT NOT NULL DEFAULT 0,
            progress BIGINT NOT NULL DEFAULT 0,
            request_id TEXT UNIQUE,
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            queued_ms BIGINT NOT NULL DEFAULT 0,
            end_synced BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL
        )",
            "CREATE INDEX scheduler_jobs_queue ON scheduler_jobs (status, priority, create_ms)",
            "CREATE TABLE scheduler_tasks (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            module TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            retries_left BIGINT NOT NULL DEFAULT 0,
            not_before_ms BIGINT NOT NULL DEFAULT 0,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version)
        )",
            "CREATE TABLE scheduler_task_parties (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version, role, party_id)
        )",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "scheduler"),
    fedflow_store::outbox_migration!("m0003_outbox", "scheduler"),
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

    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Error::Db(e) if fedflow_store::is_unique_violation(e))
    }
}

/// A job this party schedules.
#[derive(Debug, Clone)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub dsl: String,
    pub conf: String,
    pub initiator: Participant,
    pub priority: i32,
    /// Why the job ended as it did.
    pub reason: String,
    /// Why a waiting job has not started.
    pub pending_reason: String,
    /// A stop was asked for: no new task starts, the job ends canceled.
    pub cancel_requested: bool,
    pub progress: i32,
    pub request_id: Option<String>,
    pub create_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// When the job last entered the queue (submit or rerun).
    pub queued_ms: i64,
}

/// One component of a job in one version, with its federated status.
#[derive(Debug, Clone)]
pub struct Task {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub module: String,
    pub status: TaskStatus,
    pub reason: String,
    /// Automatic retries left after this version.
    pub retries_left: u32,
    /// A retry does not start before this time (its delay), epoch ms; 0 = at once.
    pub not_before_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One party's own status of a task version.
#[derive(Debug, Clone)]
pub struct TaskParty {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub who: Participant,
    pub status: TaskStatus,
    pub reason: String,
    pub update_ms: i64,
}

pub struct Store {
    db: Db,
}

impl Store {
    /// The sender of this store's outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone(), OUTBOX)
    }

    pub async fn open(config: &fedflow_config::DatabaseConfig) -> Result<Store, Error> {
        let db = Db::connect(
            &config.url,
            config.max_connections,
            "scheduler_migrations",
            MIGRATIONS,
        )
        .await?;
        Ok(Store { db })
    }

    /// Stores a new job with its first task versions, in one transaction.
    pub async fn insert_job(
        &self,
        job: &Job,
        tasks: &[Task],
        parties: &[TaskParty],
    ) -> Result<(), Error> {
        let tx = self.db.begin().await?;
        tx.exec(
            "INSERT INTO scheduler_jobs (job_id, status, dsl, conf, initiator_role, initiator_party,
                priority, request_id, create_ms, update_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                job.job_id.clone().into(),
                job.status.as_str().into(),
                job.dsl.clone().into(),
                job.conf.clone().into(),
                job.initiator.role.clone().into(),
                job.initiator.party_id.clone().into(),
                i64::from(job.priority).into(),
                job.request_id.clone().into(),
                job.create_ms.into(),
                job.create_ms.into(),
            ],
        )
        .await?;
        insert_tasks(&tx, tasks, parties, job.create_ms).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores new task versions (a rerun) and moves the job `from -> waiting`, clearing its
    /// end time, reason and cancel intent, in one transaction. False when the job had moved.
    pub async fn insert_rerun(
        &self,
        job_id: &str,
        from: JobStatus,
        tasks: &[Task],
        parties: &[TaskParty],
        now: i64,
    ) -> Result<bool, Error> {
        let tx = self.db.begin().await?;
        let moved = tx
            .exec(
                "UPDATE scheduler_jobs SET status = 'waiting', reason = '', pending_reason = '',
                    cancel_requested = 0, end_ms = 0, queued_ms = ?, update_ms = ?
                 WHERE job_id = ? AND status = ?",
                vec![now.into(), now.into(), job_id.into(), from.as_str().into()],
            )
            .await?;
        if moved != 1 {
            return Ok(false);
        }
        tx.record(
            AUDIT,
            &Transition::new(
                "job",
                job_id.to_owned(),
                from.as_str(),
                JobStatus::Waiting.as_str(),
                "rerun",
                now,
            ),
        )
        .await?;
        insert_tasks(&tx, tasks, parties, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether the request `request_id` already changed the job (a rerun, say): its audit
    /// trail names it.
    pub async fn job_changed_by(&self, job_id: &str, request_id: &str) -> Result<bool, Error> {
        let row = self
            .db
            .query_one(
                "SELECT 1 AS seen FROM scheduler_audit
                 WHERE entity = 'job' AND entity_key = ? AND request_id = ? LIMIT 1",
                vec![job_id.into(), request_id.into()],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Stores a new version of one task (an automatic retry), in one transaction.
    pub async fn insert_retry(
        &self,
        task: &Task,
        parties: &[TaskParty],
        now: i64,
    ) -> Result<(), Error> {
        let tx = self.db.begin().await?;
        insert_tasks(&tx, std::slice::from_ref(task), parties, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<Job>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT * FROM scheduler_jobs WHERE job_id = ?",
                vec![job_id.into()],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn job_by_request(&self, request_id: &str) -> Result<Option<Job>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT * FROM scheduler_jobs WHERE request_id = ?",
                vec![request_id.into()],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Newest first.
    pub async fn list_jobs(&self, limit: u32) -> Result<Vec<Job>, Error> {
        let rows = self
            .db
            .query(
                "SELECT * FROM scheduler_jobs ORDER BY create_ms DESC, job_id DESC LIMIT ?",
                vec![i64::from(limit).into()],
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Job ids in a status; waiting jobs in queue order (priority, then age).
    pub async fn job_ids_in(&self, status: JobStatus, limit: u32) -> Result<Vec<String>, Error> {
        let rows = self
            .db
            .query(
                "SELECT job_id FROM scheduler_jobs WHERE status = ?
                 ORDER BY priority DESC, create_ms ASC, job_id ASC LIMIT ?",
                vec![status.as_str().into(), i64::from(limit).into()],
            )
            .await?;
        rows.iter()
            .map(|row| get::<String>(row, "job_id").map_err(Error::from))
            .collect()
    }

    /// Compare-and-set of the job status, with its side fields: start time on running, end
    /// time and reason on an end status.
    pub async fn cas_job_status(
        &self,
        job_id: &str,
        from: JobStatus,
        to: JobStatus,
        reason: &str,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let start = if to == JobStatus::Running { now } else { 0 };
        let end = if to.is_end() { now } else { 0 };
        let progress_done = if to == JobStatus::Success { 100 } else { -1 };
        let queued = if to == JobStatus::Waiting { now } else { 0 };
        let n = self
            .db
            .exec_audited_sending(
                AUDIT,
                "UPDATE scheduler_jobs SET status = ?, update_ms = ?,
                    reason = CASE WHEN ? = '' THEN reason ELSE ? END,
                    pending_reason = CASE WHEN ? = 'waiting' THEN pending_reason ELSE '' END,
                    start_ms = CASE WHEN ? > 0 THEN ? ELSE start_ms END,
                    end_ms = ?,
                    progress = CASE WHEN ? >= 0 THEN ? ELSE progress END,
                    queued_ms = CASE WHEN ? > 0 THEN ? ELSE queued_ms END
                 WHERE job_id = ? AND status = ?",
                vec![
                    to.as_str().into(),
                    now.into(),
                    reason.into(),
                    reason.into(),
                    to.as_str().into(),
                    start.into(),
                    start.into(),
                    end.into(),
                    i64::from(progress_done).into(),
                    i64::from(progress_done).into(),
                    queued.into(),
                    queued.into(),
                    job_id.into(),
                    from.as_str().into(),
                ],
                Transition::new(
                    "job",
                    job_id.to_owned(),
                    from.as_str(),
                    to.as_str(),
                    reason,
                    now,
                ),
                Some((OUTBOX, commands)),
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the cancel intent; false when it was already recorded.
    pub async fn request_cancel(
        &self,
        job_id: &str,
        reason: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let n = self
            .db
            .exec(
                "UPDATE scheduler_jobs SET cancel_requested = 1, reason = ?, update_ms = ?
                 WHERE job_id = ? AND cancel_requested = 0",
                vec![reason.into(), now.into(), job_id.into()],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn set_pending_reason(&self, job_id: &str, reason: &str) -> Result<(), Error> {
        self.db
            .exec(
                "UPDATE scheduler_jobs SET pending_reason = ? WHERE job_id = ? AND pending_reason <> ?",
                vec![reason.into(), job_id.into(), reason.into()],
            )
            .await?;
        Ok(())
    }

    /// Progress only moves up.
    pub async fn raise_progress(&self, job_id: &str, progress: i32) -> Result<(), Error> {
        self.db
            .exec(
                "UPDATE scheduler_jobs SET progress = ? WHERE job_id = ? AND progress < ?",
                vec![
                    i64::from(progress).into(),
                    job_id.into(),
                    i64::from(progress).into(),
                ],
            )
            .await?;
        Ok(())
    }

    /// Every version of every task of the job.
    pub async fn tasks(&self, job_id: &str) -> Result<Vec<Task>, Error> {
        let rows = self
            .db
            .query(
                "SELECT * FROM scheduler_tasks WHERE job_id = ? ORDER BY version, component",
                vec![job_id.into()],
            )
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Every party row of every task version of the job.
    pub async fn task_parties(&self, job_id: &str) -> Result<Vec<TaskParty>, Error> {
        let rows = self
            .db
            .query(
                "SELECT * FROM scheduler_task_parties WHERE job_id = ?
                 ORDER BY version, component, role, party_id",
                vec![job_id.into()],
            )
            .await?;
        rows.iter().map(task_party_from_row).collect()
    }

    pub async fn task_party(
        &self,
        job_id: &str,
        component: &str,
        version: i32,
        who: &Participant,
    ) -> Result<Option<TaskParty>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT * FROM scheduler_task_parties
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ? AND party_id = ?",
                vec![
                    job_id.into(),
                    component.into(),
                    i64::from(version).into(),
                    who.role.clone().into(),
                    who.party_id.clone().into(),
                ],
            )
            .await?;
        row.as_ref().map(task_party_from_row).transpose()
    }

    /// Compare-and-set of a task version's federated status.
    pub async fn cas_task_status(
        &self,
        task: &Task,
        to: TaskStatus,
        reason: &str,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let start = if to == TaskStatus::Running { now } else { 0 };
        let end = if to.is_end() { now } else { 0 };
        let n = self
            .db
            .exec_audited_sending(
                AUDIT,
                "UPDATE scheduler_tasks SET status = ?, reason = ?, update_ms = ?,
                    start_ms = CASE WHEN ? > 0 THEN ? ELSE start_ms END,
                    end_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND status = ?",
                vec![
                    to.as_str().into(),
                    reason.into(),
                    now.into(),
                    start.into(),
                    start.into(),
                    end.into(),
                    task.job_id.clone().into(),
                    task.component.clone().into(),
                    i64::from(task.version).into(),
                    task.status.as_str().into(),
                ],
                Transition::new(
                    "task",
                    format!("{}/{}/{}", task.job_id, task.component, task.version),
                    task.status.as_str(),
                    to.as_str(),
                    reason,
                    now,
                ),
                Some((OUTBOX, commands)),
            )
            .await?;
        Ok(n == 1)
    }

    /// Compare-and-set of one party's status of a task version.
    pub async fn cas_party_status(
        &self,
        row: &TaskParty,
        to: TaskStatus,
        reason: &str,
        now: i64,
    ) -> Result<bool, Error> {
        let n = self
            .db
            .exec_audited(
                AUDIT,
                "UPDATE scheduler_task_parties SET status = ?, reason = ?, update_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ? AND party_id = ?
                   AND status = ?",
                vec![
                    to.as_str().into(),
                    reason.into(),
                    now.into(),
                    row.job_id.clone().into(),
                    row.component.clone().into(),
                    i64::from(row.version).into(),
                    row.who.role.clone().into(),
                    row.who.party_id.clone().into(),
                    row.status.as_str().into(),
                ],
                Transition::new(
                    "party-task",
                    format!(
                        "{}/{}/{}/{}/{}",
                        row.job_id, row.component, row.version, row.who.role, row.who.party_id
                    ),
                    row.status.as_str(),
                    to.as_str(),
                    reason,
                    now,
                ),
            )
            .await?;
        Ok(n == 1)
    }
}

async fn insert_tasks(
    tx: &Tx,
    tasks: &[Task],
    parties: &[TaskParty],
    now: i64,
) -> Result<(), Error> {
    for task in tasks {
        tx.exec(
            "INSERT INTO scheduler_tasks (job_id, component, version, module, status,
                retries_left, not_before_ms, update_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                task.job_id.clone().into(),
                task.component.clone().into(),
                i64::from(task.version).into(),
                task.module.clone().into(),
                task.status.as_str().into(),
                i64::from(task.retries_left).into(),
                task.not_before_ms.into(),
                now.into(),
            ],
        )
        .await?;
    }
    for party in parties {
        tx.exec(
            "INSERT INTO scheduler_task_parties (job_id, component, version, role, party_id,
                status, update_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                party.job_id.clone().into(),
                party.component.clone().into(),
                i64::from(party.version).into(),
                party.who.role.clone().into(),
                party.who.party_id.clone().into(),
                party.status.as_str().into(),
                now.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

fn parse_status<T: std::str::FromStr<Err = fedflow_core::status::UnknownStatus>>(
    row: &Row,
    column: &str,
) -> Result<T, Error> {
    get::<String>(row, column)?
        .parse()
        .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))
}

fn version_of(row: &Row) -> Result<i32, Error> {
    i32::try_from(get::<i64>(row, "version")?).map_err(|e| Error::Corrupt(e.to_string()))
}

fn job_from_row(row: &Row) -> Result<Job, Error> {
    Ok(Job {
        job_id: get(row, "job_id")?,
        status: parse_status(row, "status")?,
        dsl: get(row, "dsl")?,
        conf: get(row, "conf")?,
        initiator: Participant {
            role: get(row, "initiator_role")?,
            party_id: get(row, "initiator_party")?,
        },
        priority: i32::try_from(get::<i64>(row, "priority")?).unwrap_or(0),
        reason: get(row, "reason")?,
        pending_reason: get(row, "pending_reason")?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        progress: i32::try_from(get::<i64>(row, "progress")?).unwrap_or(0),
        request_id: get(row, "request_id")?,
        create_ms: get(row, "create_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
        queued_ms: get(row, "queued_ms")?,
    })
}

fn task_from_row(row: &Row) -> Result<Task, Error> {
    Ok(Task {
        job_id: get(row, "job_id")?,
        component: get(row, "component")?,
        version: version_of(row)?,
        module: get(row, "module")?,
        status: parse_status(row, "status")?,
        reason: get(row, "reason")?,
        retries_left: u32::try_from(get::<i64>(row, "retries_left")?).unwrap_or(0),
        not_before_ms: get(row, "not_before_ms")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}

fn task_party_from_row(row: &Row) -> Result<TaskParty, Error> {
    Ok(TaskParty {
        job_id: get(row, "job_id")?,
        component: get(row, "component")?,
        version: version_of(row)?,
        who: Participant {
            role: get(row, "role")?,
            party_id: get(row, "party_id")?,
        },
        status: parse_status(row, "status")?,
        reason: get(row, "reason")?,
        update_ms: get(row, "update_ms")?,
    })
}

/// The store's contract, on SQLite and (when `FEDFLOW_TEST_POSTGRES_URL` is set) PostgreSQL.
#[cfg(test)]
mod contract {
    use super::*;

    async fn stores(name: &str) -> Vec<Store> {
        let mut stores = Vec::new();
        for url in fedflow_store::contract_backends(name).await {
            let config = fedflow_config::DatabaseConfig {
                url,
                max_connections: 8,
            };
            stores.push(Store::open(&config).await.expect("the store opens"));
        }
        stores
    }

    fn job(job_id: &str, request_id: Option<&str>) -> Job {
        Job {
            job_id: job_id.into(),
            status: JobStatus::Ready,
            dsl: "{}".into(),
            conf: "{}".into(),
            initiator: Participant {
                role: "guest".into(),
                party_id: "9999".into(),
            },
            priority: 3,
            reason: String::new(),
            pending_reason: String::new(),
            cancel_requested: false,
            progress: 0,
            request_id: request_id.map(str::to_owned),
            create_ms: 1,
            start_ms: 0,
            end_ms: 0,
            queued_ms: 1,
        }
    }

    fn task(job_id: &str, version: i32) -> Task {
        Task {
            job_id: job_id.into(),
            component: "a".into(),
            version,
            module: "Sum".into(),
            status: TaskStatus::Waiting,
            reason: String::new(),
            retries_left: 2,
            not_before_ms: 0,
            start_ms: 0,
            end_ms: 0,
        }
    }

    fn party(job_id: &str, version: i32) -> TaskParty {
        TaskParty {
            job_id: job_id.into(),
            component: "a".into(),
            version,
            who: Participant {
                role: "host".into(),
                party_id: "10000".into(),
            },
            status: TaskStatus::Waiting,
            reason: String::new(),
            update_ms: 1,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_are_stored_once_per_request_id_and_move_by_compare_and_set() {
        for store in stores("scheduler_jobs").await {
            store
                .insert_job(&job("j1", Some("r1")), &[task("j1", 0)], &[party("j1", 0)])
                .await
                .expect("insert");
            let duplicate = store
                .insert_job(&job("j2", Some("r1")), &[task("j2", 0)], &[party("j2", 0)])
                .await
                .expect_err("the request id is taken");
            assert!(duplicate.is_unique_violation(), "{duplicate}");
            assert!(
                store.job("j2").await.expect("read").is_none(),
                "nothing of j2 stored"
            );
            assert_eq!(
                store
                    .job_by_request("r1")
                    .await
                    .expect("read")
                    .map(|j| j.job_id),
                Some("j1".to_owned())
            );
            store
                .insert_job(&job("j3", None), &[task("j3", 0)], &[])
                .await
                .expect("no request id twice is fine");
            assert!(
                store
                    .cas_job_status("j1", JobStatus::Ready, JobStatus::Waiting, "", &[], 5)
                    .await
                    .expect("cas")
            );
            assert_eq!(
                store.job("j1").await.expect("read").expect("row").queued_ms,
                5
            );
            assert!(
                !store
                    .cas_job_status("j1", JobStatus::Ready, JobStatus::Waiting, "", &[], 6)
                    .await
                    .expect("cas")
            );
            assert_eq!(
                store
                    .job_ids_in(JobStatus::Waiting, 10)
                    .await
                    .expect("queue"),
                ["j1"]
            );
            assert!(store.request_cancel("j1", "stop", 7).await.expect("cancel"));
            assert!(
                !store.request_cancel("j1", "stop", 8).await.expect("cancel"),
                "once"
            );
            assert!(
                store
                    .cas_job_status("j1", JobStatus::Waiting, JobStatus::Canceled, "", &[], 9)
                    .await
                    .expect("cas")
            );
            let ended = store.job("j1").await.expect("read").expect("row");
            assert_eq!(
                (ended.status, ended.end_ms, ended.reason.as_str()),
                (JobStatus::Canceled, 9, "stop")
            );
            // A rerun moves the ended job back to waiting with new versions, all at once.
            assert!(
                store
                    .insert_rerun(
                        "j1",
                        JobStatus::Canceled,
                        &[task("j1", 1)],
                        &[party("j1", 1)],
                        10
                    )
                    .await
                    .expect("rerun")
            );
            assert!(
                !store
                    .insert_rerun("j1", JobStatus::Canceled, &[task("j1", 2)], &[], 11)
                    .await
                    .expect("stale")
            );
            assert_eq!(store.tasks("j1").await.expect("tasks").len(), 2);
            let rerun = store.job("j1").await.expect("read").expect("row");
            assert_eq!(
                (rerun.status, rerun.end_ms, rerun.cancel_requested),
                (JobStatus::Waiting, 0, false)
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_and_party_statuses_move_only_by_compare_and_set() {
        for store in stores("scheduler_tasks").await {
            store
                .insert_job(&job("j1", None), &[task("j1", 0)], &[party("j1", 0)])
                .await
                .expect("insert");
            let t = task("j1", 0);
            assert!(
                store
                    .cas_task_status(&t, TaskStatus::Running, "", &[], 3)
                    .await
                    .expect("cas")
            );
            assert!(
                !store
                    .cas_task_status(&t, TaskStatus::Running, "", &[], 3)
                    .await
                    .expect("stale")
            );
            let p = party("j1", 0);
            assert!(
                store
                    .cas_party_status(&p, TaskStatus::Failed, "boom", 4)
                    .await
                    .expect("cas")
            );
            assert!(
                !store
                    .cas_party_status(&p, TaskStatus::Success, "", 5)
                    .await
                    .expect("stale")
            );
            let row = store
                .task_party("j1", "a", 0, &p.who)
                .await
                .expect("read")
                .expect("row");
            assert_eq!(
                (row.status, row.reason.as_str()),
                (TaskStatus::Failed, "boom")
            );
            store
                .insert_retry(&task("j1", 1), &[party("j1", 1)], 6)
                .await
                .expect("retry");
            let tasks = store.tasks("j1").await.expect("tasks");
            assert_eq!(tasks.iter().map(|t| t.version).collect::<Vec<_>>(), [0, 1]);
            assert_eq!(tasks[1].retries_left, 2);
        }
    }
}
