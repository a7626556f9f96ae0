//! The scheduler's store, for the jobs whose scheduler this party is:
//! - `scheduler_jobs`: the job (DSL, conf, federated status, cancel intent, reasons).
//! - `scheduler_tasks`: one row per (job, component, version) with the federated status.
//! - `scheduler_task_parties`: one row per (job, component, version, role, party) with that
//!   party's own status, as reported.
//! - `scheduler_job_parties`: one row per (job, role, party), per (job, `*`, party) and per
//!   (job, role, `*`), written with the job, so the job list finds a participant's jobs in
//!   list order through one index rather than the conf's JSON.
//! - `scheduler_jobs.trace_parent`: the job's trace (the W3C traceparent of its root span),
//!   so its spans stay in one trace across restarts.
//!
//! Every status write is a compare-and-set on the status read before; what a change writes
//! besides the status is decided by [`crate::domain::model`], and the SQL writes the values it is given.

mod rows;
mod schema;

#[cfg(test)]
mod contract;

use std::collections::BTreeSet;

use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_store::{Command, Db, Outbox, SqlValue, Transition, Tx, get};

use crate::domain::model::{Cursor, JobFilter, JobTransition, TaskTransition};
pub use crate::domain::model::{Job, Task, TaskParty};
use rows::{Assignments, job_from_row, task_from_row, task_party_from_row};
pub use schema::{AUDIT, OUTBOX};
use schema::{MIGRATIONS, MIGRATIONS_TABLE};

/// The store's error (a failed database, a corrupt row).
pub use fedflow_store::StoreError as Error;

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
        let db = Db::connect(url, max_connections, MIGRATIONS_TABLE, MIGRATIONS).await?;
        Ok(Store { db })
    }

    /// Stores a new job with its participants and first task versions, in one transaction.
    pub async fn insert_job(
        &self,
        job: &Job,
        participants: &[Participant],
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
        for (role, party_id) in participant_keys(participants) {
            tx.exec(
                "INSERT INTO scheduler_job_parties (job_id, role, party_id, create_ms)
                 VALUES (?, ?, ?, ?)",
                vec![
                    job.job_id.clone().into(),
                    role.into(),
                    party_id.into(),
                    job.create_ms.into(),
                ],
            )
            .await?;
        }
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
        let sql = "SELECT * FROM scheduler_jobs WHERE job_id = ?";
        self.db
            .fetch_one(sql, vec![job_id.into()], job_from_row)
            .await
    }

    pub async fn job_by_request(&self, request_id: &str) -> Result<Option<Job>, Error> {
        let sql = "SELECT * FROM scheduler_jobs WHERE request_id = ?";
        self.db
            .fetch_one(sql, vec![request_id.into()], job_from_row)
            .await
    }

    /// Up to `limit` jobs matching `filter`, after `after` in the order newest first (create
    /// time, then job id, both descending): a keyset page, never an OFFSET. Without a
    /// participant filter it walks `scheduler_jobs_created` or `scheduler_jobs_status_created`;
    /// with one, `scheduler_job_parties_list` (one exact key, see the migration m0004).
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<Job>, Error> {
        let mut values: Vec<SqlValue> = Vec::new();
        // The table whose (create_ms, job_id) orders the page.
        let (mut sql, order) = if filter.role.is_some() || filter.party_id.is_some() {
            values.push(filter.role.map_or("*", |r| r.as_str()).into());
            values.push(filter.party_id.as_ref().map_or("*", |p| p.as_str()).into());
            (
                String::from(
                    "SELECT j.* FROM scheduler_job_parties p
                     JOIN scheduler_jobs j ON j.job_id = p.job_id
                     WHERE p.role = ? AND p.party_id = ?",
                ),
                "p",
            )
        } else {
            (
                String::from("SELECT j.* FROM scheduler_jobs j WHERE 1 = 1"),
                "j",
            )
        };
        if !filter.statuses.is_empty() {
            let marks = vec!["?"; filter.statuses.len()].join(", ");
            sql.push_str(&format!(" AND j.status IN ({marks})"));
            values.extend(filter.statuses.iter().map(|s| s.as_str().into()));
        }
        if filter.submitted_after_ms != 0 {
            sql.push_str(&format!(" AND {order}.create_ms >= ?"));
            values.push(filter.submitted_after_ms.into());
        }
        if filter.submitted_before_ms != 0 {
            sql.push_str(&format!(" AND {order}.create_ms < ?"));
            values.push(filter.submitted_before_ms.into());
        }
        if !filter.text.is_empty() {
            // `_` is a LIKE wildcard (and the only one the text may hold): escaped. LOWER on
            // both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
            sql.push_str(" AND LOWER(j.job_id) LIKE ? ESCAPE '!'");
            let pattern = filter.text.to_lowercase().replace('_', "!_");
            values.push(format!("%{pattern}%").into());
        }
        if let Some(cursor) = after {
            // A row value, which both databases compare lexicographically and serve from
            // the (.., create_ms, job_id) indexes as a range.
            sql.push_str(&format!(
                " AND ({order}.create_ms, {order}.job_id) < (?, ?)"
            ));
            values.extend([cursor.create_ms.into(), cursor.job_id.as_str().into()]);
        }
        sql.push_str(&format!(
            " ORDER BY {order}.create_ms DESC, {order}.job_id DESC LIMIT ?"
        ));
        values.push(i64::from(limit).into());
        self.db.fetch(&sql, values, job_from_row).await
    }

    /// How many jobs are in each status (statuses without jobs are left out).
    pub async fn count_jobs_by_status(&self) -> Result<Vec<(JobStatus, i64)>, Error> {
        let rows = self
            .db
            .query(
                "SELECT status, COUNT(*) AS n FROM scheduler_jobs GROUP BY status",
                vec![],
            )
            .await?;
        let mut counts = Vec::new();
        for row in &rows {
            let status: String = get(row, "status")?;
            let n: i64 = get(row, "n")?;
            if let Ok(status) = status.parse::<JobStatus>() {
                counts.push((status, n));
            }
        }
        Ok(counts)
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

    /// Compare-and-set of the job status, with what the change writes besides it
    /// ([`JobTransition::effects`]: times, progress, reasons), its audit row and `commands`.
    pub async fn cas_job_status(
        &self,
        job_id: &str,
        from: JobStatus,
        to: JobStatus,
        reason: &str,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let update = JobTransition::new(from, to).effects(reason, now);
        let set = Assignments::default()
            .set("status", to.as_str())
            .set("update_ms", now)
            .set("end_ms", update.end_ms)
            .set_some("reason", update.reason)
            .set_some("pending_reason", update.pending_reason)
            .set_some("start_ms", update.start_ms)
            .set_some("progress", update.progress.map(i64::from))
            .set_some("queued_ms", update.queued_ms);
        let (sql, mut values) = set.update("scheduler_jobs", "job_id = ? AND status = ?");
        values.extend([job_id.into(), from.as_str().into()]);
        let n = self
            .db
            .exec_audited_sending(
                AUDIT,
                &sql,
                values,
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

    /// Records the traceparent of the job's root span (see the migration m0005).
    pub async fn set_trace_parent(&self, job_id: &str, traceparent: &str) -> Result<(), Error> {
        self.db
            .exec(
                "UPDATE scheduler_jobs SET trace_parent = ? WHERE job_id = ?",
                vec![traceparent.into(), job_id.into()],
            )
            .await?;
        Ok(())
    }

    /// The traceparent of the job's root span, when one was recorded.
    pub async fn trace_parent(&self, job_id: &str) -> Result<Option<String>, Error> {
        let sql = "SELECT trace_parent FROM scheduler_jobs WHERE job_id = ?";
        let found = self
            .db
            .fetch_one(sql, vec![job_id.into()], |row| {
                get::<Option<String>>(row, "trace_parent")
            })
            .await?;
        Ok(found.flatten())
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
        let sql = "SELECT * FROM scheduler_tasks WHERE job_id = ? ORDER BY version, component";
        self.db.fetch(sql, vec![job_id.into()], task_from_row).await
    }

    /// Every party row of every task version of the job.
    pub async fn task_parties(&self, job_id: &str) -> Result<Vec<TaskParty>, Error> {
        let sql = "SELECT * FROM scheduler_task_parties WHERE job_id = ?
                 ORDER BY version, component, role, party_id";
        self.db
            .fetch(sql, vec![job_id.into()], task_party_from_row)
            .await
    }

    pub async fn task_party(
        &self,
        job_id: &str,
        component: &str,
        version: i32,
        who: &Participant,
    ) -> Result<Option<TaskParty>, Error> {
        let sql = "SELECT * FROM scheduler_task_parties
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ? AND party_id = ?";
        self.db
            .fetch_one(
                sql,
                vec![
                    job_id.into(),
                    component.into(),
                    i64::from(version).into(),
                    who.role.clone().into(),
                    who.party_id.clone().into(),
                ],
                task_party_from_row,
            )
            .await
    }

    /// Compare-and-set of a task version's federated status, with its times
    /// ([`TaskTransition::effects`]), its audit row and `commands`.
    pub async fn cas_task_status(
        &self,
        task: &Task,
        to: TaskStatus,
        reason: &str,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let update = TaskTransition::new(task.status, to).effects(now);
        let set = Assignments::default()
            .set("status", to.as_str())
            .set("reason", reason)
            .set("update_ms", now)
            .set("end_ms", update.end_ms)
            .set_some("start_ms", update.start_ms);
        let (sql, mut values) = set.update(
            "scheduler_tasks",
            "job_id = ? AND component = ? AND version = ? AND status = ?",
        );
        values.extend([
            task.job_id.clone().into(),
            task.component.clone().into(),
            i64::from(task.version).into(),
            task.status.as_str().into(),
        ]);
        let n = self
            .db
            .exec_audited_sending(
                AUDIT,
                &sql,
                values,
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
        let (sql, values, transition) = party_status_update(row, to, reason, now);
        let n = self.db.exec_audited(AUDIT, sql, values, transition).await?;
        Ok(n == 1)
    }

    /// [`Store::cas_party_status`] of several rows (each to its status, no reason) in one
    /// transaction: each compare-and-set stands on its own (one that finds its row moved
    /// changes nothing and does not stop the others). Returns whether each changed its row.
    pub async fn cas_party_statuses(
        &self,
        changes: &[(&TaskParty, TaskStatus)],
        now: i64,
    ) -> Result<Vec<bool>, Error> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.db.begin().await?;
        let mut changed = Vec::with_capacity(changes.len());
        for (row, to) in changes {
            let (sql, values, transition) = party_status_update(row, *to, "", now);
            let n = tx.exec(sql, values).await?;
            if n > 0 {
                tx.record(AUDIT, &transition).await?;
            }
            changed.push(n == 1);
        }
        tx.commit().await?;
        Ok(changed)
    }
}

/// The compare-and-set of one party's status of a task version: its statement, values and
/// audit entry.
fn party_status_update(
    row: &TaskParty,
    to: TaskStatus,
    reason: &str,
    now: i64,
) -> (&'static str, Vec<SqlValue>, Transition) {
    (
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

/// A job's `scheduler_job_parties` keys: each (role, party), each (`*`, party) and each
/// (role, `*`), once.
fn participant_keys(participants: &[Participant]) -> BTreeSet<(String, String)> {
    participants
        .iter()
        .flat_map(|who| {
            [
                (who.role.clone(), who.party_id.clone()),
                ("*".to_owned(), who.party_id.clone()),
                (who.role.clone(), "*".to_owned()),
            ]
        })
        .collect()
}
