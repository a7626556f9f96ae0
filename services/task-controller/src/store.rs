//! The task-controller's table `taskctl_tasks`: one row per (job, component, version, role)
//! on this party, with the party's own status, the federated status last synced by the
//! scheduler, and the worker running it (pid + start time + per-attempt token). Every status
//! write is a compare-and-set on the status read before, and writes the values the domain
//! decided (no rule lives in the SQL). Schema in [`schema`], row mapping in [`rows`].

mod data;
mod rows;
mod schema;

use fedflow_core::TaskStatus;
use fedflow_store::{Command, Db, Outbox, Transition, get};

use crate::domain::attempt::{self, Move};
pub use crate::domain::{Task, TaskKey};
pub use data::{Artifact, Registered, Table};
use rows::task_from_row;

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "taskctl_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "taskctl_outbox";

/// The store's error (a failed database, a corrupt row).
pub use fedflow_store::StoreError as Error;

/// The task rows, their audit trail and the outbox of status reports, in one database.
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

    /// The sender of this store's outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.db.clone(), OUTBOX)
    }

    /// The store at `url`, migrated, with a pool of `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, Error> {
        let db = Db::connect(
            url,
            max_connections,
            "taskctl_migrations",
            schema::MIGRATIONS,
        )
        .await?;
        Ok(Store { db })
    }

    /// Inserts rows that do not exist yet (one transaction); returns how many were new.
    /// Records the traceparent the job came with on its task rows that have none (m0006).
    pub async fn set_trace_parent(&self, job_id: &str, traceparent: &str) -> Result<(), Error> {
        self.db
            .exec(
                "UPDATE taskctl_tasks SET trace_parent = ? WHERE job_id = ? AND trace_parent IS NULL",
                vec![traceparent.into(), job_id.into()],
            )
            .await?;
        Ok(())
    }

    /// The recorded traceparents of the newest `limit` jobs that have one: (job id, traceparent).
    pub async fn trace_parents(&self, limit: u32) -> Result<Vec<(String, String)>, Error> {
        let sql = "SELECT job_id, MAX(trace_parent) AS trace_parent, MAX(create_ms) AS created
                   FROM taskctl_tasks WHERE trace_parent IS NOT NULL
                   GROUP BY job_id ORDER BY created DESC LIMIT ?";
        self.db
            .fetch(sql, vec![i64::from(limit).into()], |row| {
                Ok::<_, Error>((get(row, "job_id")?, get(row, "trace_parent")?))
            })
            .await
    }

    pub async fn insert_tasks(&self, tasks: &[Task], now: i64) -> Result<u32, Error> {
        let tx = self.db.begin().await?;
        let mut created = 0;
        for task in tasks {
            let upstream =
                serde_json::to_string(&task.upstream).map_err(|e| Error::Corrupt(e.to_string()))?;
            let parties: Vec<(&str, &str)> = task
                .parties
                .iter()
                .map(|p| (p.role.as_str(), p.party_id.as_str()))
                .collect();
            let parties =
                serde_json::to_string(&parties).map_err(|e| Error::Corrupt(e.to_string()))?;
            created += tx
                .exec(
                    "INSERT INTO taskctl_tasks (job_id, component, version, role, party_id, module,
                        parameters, need_run, upstream, scheduler_party_id, party_status, status,
                        create_ms, update_ms, parties)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (job_id, component, version, role) DO NOTHING",
                    vec![
                        task.key.job_id.clone().into(),
                        task.key.component.clone().into(),
                        i64::from(task.key.version).into(),
                        task.key.role.clone().into(),
                        task.key.party_id.clone().into(),
                        task.module.clone().into(),
                        task.parameters.clone().into(),
                        i64::from(task.need_run).into(),
                        upstream.into(),
                        task.scheduler_party_id.clone().into(),
                        task.party_status.as_str().into(),
                        task.status.as_str().into(),
                        now.into(),
                        now.into(),
                        parties.into(),
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(u32::try_from(created).unwrap_or(u32::MAX))
    }

    pub async fn task(&self, key: &TaskKey) -> Result<Option<Task>, Error> {
        let sql = "SELECT * FROM taskctl_tasks
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?";
        self.db
            .fetch_one(
                sql,
                vec![
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                ],
                task_from_row,
            )
            .await
    }

    /// Every row of a job on this party, oldest version first.
    pub async fn job_tasks(&self, job_id: &str) -> Result<Vec<Task>, Error> {
        let sql = "SELECT * FROM taskctl_tasks WHERE job_id = ?
                 ORDER BY version, create_ms, component, role";
        self.db.fetch(sql, vec![job_id.into()], task_from_row).await
    }

    /// The party whose scheduler drives the job here; `None` when no task of it is here.
    pub async fn job_scheduler(&self, job_id: &str) -> Result<Option<String>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT scheduler_party_id FROM taskctl_tasks WHERE job_id = ? LIMIT 1",
                vec![job_id.into()],
            )
            .await?;
        Ok(row
            .as_ref()
            .map(|row| get::<String>(row, "scheduler_party_id"))
            .transpose()?)
    }

    /// Rows whose party status is running (the workers this party should have).
    pub async fn running(&self) -> Result<Vec<Task>, Error> {
        let sql = "SELECT * FROM taskctl_tasks WHERE party_status = ?";
        self.db
            .fetch(
                sql,
                vec![TaskStatus::Running.as_str().into()],
                task_from_row,
            )
            .await
    }

    /// Compare-and-set of the party status on `change.from`, writing its status, reason,
    /// output and times ([`Move::stamps`]), with `commands` committed to the outbox in the same
    /// transaction. False when the row was no longer at `from`.
    pub async fn cas_party_status(
        &self,
        key: &TaskKey,
        change: &Move,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let (sql, values, transition) = party_status_update(key, change, now);
        let n = self
            .db
            .exec_audited_sending(AUDIT, sql, values, transition, Some((OUTBOX, commands)))
            .await?;
        Ok(n == 1)
    }

    /// Compare-and-set of the federated status.
    pub async fn cas_status(
        &self,
        key: &TaskKey,
        from: TaskStatus,
        to: TaskStatus,
        now: i64,
    ) -> Result<bool, Error> {
        let n = self
            .db
            .exec_audited(
                AUDIT,
                "UPDATE taskctl_tasks SET status = ?, update_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ? AND status = ?",
                vec![
                    to.as_str().into(),
                    now.into(),
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                    from.as_str().into(),
                ],
                Transition::new("task", key.audit_key(), from.as_str(), to.as_str(), "", now),
            )
            .await?;
        Ok(n == 1)
    }

    /// Claims a waiting task for a new attempt ([`attempt::CLAIM`]) with the attempt's token
    /// in one compare-and-set, so of two concurrent starts exactly one wins and its token is
    /// the one stored. False when the task was not waiting.
    pub async fn claim_start(&self, key: &TaskKey, token: &str, now: i64) -> Result<bool, Error> {
        let (from, to) = attempt::CLAIM;
        let stamps = attempt::stamps(to, now);
        let n = self
            .db
            .exec_audited(
                AUDIT,
                "UPDATE taskctl_tasks SET party_status = ?, token = ?, pid = 0, pid_start = 0,
                    start_ms = COALESCE(?, start_ms), update_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?
                   AND party_status = ?",
                vec![
                    to.as_str().into(),
                    token.into(),
                    stamps.start_ms.into(),
                    now.into(),
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                    from.as_str().into(),
                ],
                Transition::new(
                    "party-task",
                    key.audit_key(),
                    from.as_str(),
                    to.as_str(),
                    attempt::CLAIM_REASON,
                    now,
                ),
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the worker of the attempt holding `token`, once: false when the attempt is no
    /// longer the current running one or already has a worker (the caller must then stop its
    /// process).
    pub async fn set_worker(
        &self,
        key: &TaskKey,
        pid: u32,
        pid_start: u64,
        token: &str,
    ) -> Result<bool, Error> {
        let n = self
            .db
            .exec_audited(
                AUDIT,
                "UPDATE taskctl_tasks SET pid = ?, pid_start = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?
                   AND token = ? AND pid = 0 AND party_status = ?",
                vec![
                    i64::from(pid).into(),
                    i64::try_from(pid_start).unwrap_or(i64::MAX).into(),
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                    token.into(),
                    TaskStatus::Running.as_str().into(),
                ],
                Transition::new(
                    "worker",
                    key.audit_key(),
                    "none",
                    "started",
                    &format!("pid {pid}"),
                    fedflow_rpc::now_ms(),
                ),
            )
            .await?;
        Ok(n == 1)
    }
}

/// The compare-and-set of [`Store::cas_party_status`]: its statement, values and audit entry.
fn party_status_update(
    key: &TaskKey,
    change: &Move,
    now: i64,
) -> (&'static str, Vec<fedflow_store::SqlValue>, Transition) {
    let stamps = change.stamps(now);
    (
        "UPDATE taskctl_tasks SET party_status = ?, reason = ?, update_ms = ?,
            output = COALESCE(?, output),
            start_ms = COALESCE(?, start_ms),
            end_ms = ?
         WHERE job_id = ? AND component = ? AND version = ? AND role = ?
           AND party_status = ?",
        vec![
            change.to.as_str().into(),
            change.reason.clone().into(),
            now.into(),
            change.output.clone().into(),
            stamps.start_ms.into(),
            stamps.end_ms.into(),
            key.job_id.clone().into(),
            key.component.clone().into(),
            i64::from(key.version).into(),
            key.role.clone().into(),
            change.from.as_str().into(),
        ],
        Transition::new(
            "party-task",
            key.audit_key(),
            change.from.as_str(),
            change.to.as_str(),
            &change.reason,
            now,
        ),
    )
}

#[cfg(test)]
mod contract;
