//! The task-controller's table `taskctl_tasks`: one row per (job, component, version, role)
//! on this party, with the party's own status, the federated status last synced by the
//! scheduler, and the worker running it (pid + start time + per-attempt token). Every status
//! write is a compare-and-set on the status read before.

use fedflow_core::TaskStatus;
use fedflow_store::{Command, Db, Migration, Outbox, Row, Transition, get};

/// The audit table: every status transition, with its cause and request id.
pub const AUDIT: &str = "taskctl_audit";

/// The outbox: commands committed with the change that calls for them, until delivered.
pub const OUTBOX: &str = "taskctl_outbox";

const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "m0001_tasks",
        statements: &[
            "CREATE TABLE taskctl_tasks (
            job_id TEXT NOT NULL,
            component TEXT NOT NULL,
            version BIGINT NOT NULL,
            role TEXT NOT NULL,
            party_id TEXT NOT NULL,
            module TEXT NOT NULL,
            parameters TEXT NOT NULL,
            need_run BIGINT NOT NULL,
            upstream TEXT NOT NULL,
            scheduler_party_id TEXT NOT NULL,
            party_status TEXT NOT NULL,
            status TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            pid BIGINT NOT NULL DEFAULT 0,
            pid_start BIGINT NOT NULL DEFAULT 0,
            token TEXT NOT NULL DEFAULT '',
            output TEXT NOT NULL DEFAULT '',
            create_ms BIGINT NOT NULL,
            start_ms BIGINT NOT NULL DEFAULT 0,
            end_ms BIGINT NOT NULL DEFAULT 0,
            update_ms BIGINT NOT NULL,
            PRIMARY KEY (job_id, component, version, role)
        )",
            "CREATE INDEX taskctl_tasks_party_status ON taskctl_tasks (party_status)",
        ],
    },
    fedflow_store::audit_migration!("m0002_audit", "taskctl"),
    fedflow_store::outbox_migration!("m0003_outbox", "taskctl"),
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

/// Which task row.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub role: String,
    pub party_id: String,
}

impl TaskKey {
    /// How the audit trail names it: `job/component/version/role/party`.
    pub fn audit_key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} v{} ({} {})",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

#[derive(Debug, Clone)]
pub struct Task {
    pub key: TaskKey,
    pub module: String,
    /// This party's resolved parameters, a JSON object.
    pub parameters: String,
    pub need_run: bool,
    pub upstream: Vec<String>,
    pub scheduler_party_id: String,
    /// This party's own status.
    pub party_status: TaskStatus,
    /// The federated status as last synced by the scheduler.
    pub status: TaskStatus,
    pub reason: String,
    /// The worker's pid and its start time (clock ticks since boot); 0 when none was started.
    pub pid: u32,
    pub pid_start: u64,
    /// The worker attempt's secret; reports without it change nothing.
    pub token: String,
    /// The data output, JSON; empty when none.
    pub output: String,
    pub start_ms: i64,
    pub end_ms: i64,
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
            "taskctl_migrations",
            MIGRATIONS,
        )
        .await?;
        Ok(Store { db })
    }

    /// Inserts rows that do not exist yet (one transaction); returns how many were new.
    pub async fn insert_tasks(&self, tasks: &[Task], now: i64) -> Result<u32, Error> {
        let tx = self.db.begin().await?;
        let mut created = 0;
        for task in tasks {
            let upstream =
                serde_json::to_string(&task.upstream).map_err(|e| Error::Corrupt(e.to_string()))?;
            created += tx
                .exec(
                    "INSERT INTO taskctl_tasks (job_id, component, version, role, party_id, module,
                        parameters, need_run, upstream, scheduler_party_id, party_status, status,
                        create_ms, update_ms)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(u32::try_from(created).unwrap_or(u32::MAX))
    }

    pub async fn task(&self, key: &TaskKey) -> Result<Option<Task>, Error> {
        let row = self
            .db
            .query_one(
                "SELECT * FROM taskctl_tasks
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?",
                vec![
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                ],
            )
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Every row of a job on this party, oldest version first.
    pub async fn job_tasks(&self, job_id: &str) -> Result<Vec<Task>, Error> {
        let rows = self
            .db
            .query(
                "SELECT * FROM taskctl_tasks WHERE job_id = ?
                 ORDER BY version, create_ms, component, role",
                vec![job_id.into()],
            )
            .await?;
        rows.iter().map(task_from_row).collect()
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
        let rows = self
            .db
            .query(
                "SELECT * FROM taskctl_tasks WHERE party_status = 'running'",
                vec![],
            )
            .await?;
        rows.iter().map(task_from_row).collect()
    }

    /// Compare-and-set of the party status; also records reason, output and times.
    pub async fn cas_party_status(
        &self,
        key: &TaskKey,
        (from, to): (TaskStatus, TaskStatus),
        reason: &str,
        output: Option<&str>,
        commands: &[Command],
        now: i64,
    ) -> Result<bool, Error> {
        let start = if to == TaskStatus::Running { now } else { 0 };
        let end = if to.is_end() { now } else { 0 };
        let n = self
            .db
            .exec_audited_sending(
                AUDIT,
                "UPDATE taskctl_tasks SET party_status = ?, reason = ?, update_ms = ?,
                    output = COALESCE(?, output),
                    start_ms = CASE WHEN ? > 0 THEN ? ELSE start_ms END,
                    end_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?
                   AND party_status = ?",
                vec![
                    to.as_str().into(),
                    reason.into(),
                    now.into(),
                    output.map(str::to_owned).into(),
                    start.into(),
                    start.into(),
                    end.into(),
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
                    reason,
                    now,
                ),
                Some((OUTBOX, commands)),
            )
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

    /// Claims a waiting task for a new attempt: `waiting -> running` and the attempt's token in
    /// one compare-and-set, so of two concurrent starts exactly one wins and its token is the
    /// one stored. False when the task was not waiting.
    pub async fn claim_start(&self, key: &TaskKey, token: &str, now: i64) -> Result<bool, Error> {
        let n = self
            .db
            .exec_audited(
                AUDIT,
                "UPDATE taskctl_tasks SET party_status = 'running', token = ?, pid = 0, pid_start = 0,
                    start_ms = ?, update_ms = ?
                 WHERE job_id = ? AND component = ? AND version = ? AND role = ?
                   AND party_status = 'waiting'",
                vec![
                    token.into(),
                    now.into(),
                    now.into(),
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                ],
                Transition::new("party-task", key.audit_key(), "waiting", "running", "attempt claimed", now),
            )
            .await?;
        Ok(n == 1)
    }

    /// Records the worker of the attempt holding `token`, once: false when the attempt is no
    /// longer the current one or already has a worker (the caller must then stop its process).
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
                   AND token = ? AND pid = 0 AND party_status = 'running'",
                vec![
                    i64::from(pid).into(),
                    i64::try_from(pid_start).unwrap_or(i64::MAX).into(),
                    key.job_id.clone().into(),
                    key.component.clone().into(),
                    i64::from(key.version).into(),
                    key.role.clone().into(),
                    token.into(),
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

fn task_from_row(row: &Row) -> Result<Task, Error> {
    let status = |column: &str| -> Result<TaskStatus, Error> {
        get::<String>(row, column)?
            .parse()
            .map_err(|e: fedflow_core::status::UnknownStatus| Error::Corrupt(e.to_string()))
    };
    let upstream: String = get(row, "upstream")?;
    Ok(Task {
        key: TaskKey {
            job_id: get(row, "job_id")?,
            component: get(row, "component")?,
            version: i32::try_from(get::<i64>(row, "version")?)
                .map_err(|e| Error::Corrupt(e.to_string()))?,
            role: get(row, "role")?,
            party_id: get(row, "party_id")?,
        },
        module: get(row, "module")?,
        parameters: get(row, "parameters")?,
        need_run: get::<i64>(row, "need_run")? != 0,
        upstream: serde_json::from_str(&upstream).map_err(|e| Error::Corrupt(e.to_string()))?,
        scheduler_party_id: get(row, "scheduler_party_id")?,
        party_status: status("party_status")?,
        status: status("status")?,
        reason: get(row, "reason")?,
        pid: u32::try_from(get::<i64>(row, "pid")?).unwrap_or(0),
        pid_start: u64::try_from(get::<i64>(row, "pid_start")?).unwrap_or(0),
        token: get(row, "token")?,
        output: get(row, "output")?,
        start_ms: get(row, "start_ms")?,
        end_ms: get(row, "end_ms")?,
    })
}

/// The store's contract, on SQLite and (when `FEDFLOW_TEST_POSTGRES_URL` is set) PostgreSQL.
#[cfg(test)]
mod contract {
    use std::sync::Arc;

    use super::*;

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

    fn key(component: &str, version: i32) -> TaskKey {
        TaskKey {
            job_id: "j1".into(),
            component: component.into(),
            version,
            role: "guest".into(),
            party_id: "9999".into(),
        }
    }

    fn task(component: &str, version: i32) -> Task {
        Task {
            key: key(component, version),
            module: "Sleep".into(),
            parameters: "{}".into(),
            need_run: true,
            upstream: vec!["a".into()],
            scheduler_party_id: "9999".into(),
            party_status: TaskStatus::Waiting,
            status: TaskStatus::Waiting,
            reason: String::new(),
            pid: 0,
            pid_start: 0,
            token: String::new(),
            output: String::new(),
            start_ms: 0,
            end_ms: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn task_rows_are_created_once_per_version() {
        for store in stores("taskctl_rows").await {
            let rows = [task("b", 0), task("c", 0)];
            assert_eq!(store.insert_tasks(&rows, 1).await.expect("insert"), 2);
            assert_eq!(store.insert_tasks(&rows, 2).await.expect("repeat"), 0);
            assert_eq!(store.insert_tasks(&[task("b", 1)], 3).await.expect("v1"), 1);
            let all = store.job_tasks("j1").await.expect("list");
            assert_eq!(all.len(), 3);
            assert_eq!(all[0].upstream, ["a"]);
            assert!(store.task(&key("b", 7)).await.expect("read").is_none());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_of_many_concurrent_starts_claims_a_task() {
        for store in stores("taskctl_claim").await {
            store
                .insert_tasks(&[task("b", 0)], 1)
                .await
                .expect("insert");
            let claims = (0..10).map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .claim_start(&key("b", 0), &format!("token{i}"), 5)
                        .await
                        .expect("claim")
                        .then_some(format!("token{i}"))
                })
            });
            let mut winners = Vec::new();
            for claim in claims {
                winners.extend(claim.await.expect("task"));
            }
            assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
            let row = store.task(&key("b", 0)).await.expect("read").expect("row");
            assert_eq!(row.party_status, TaskStatus::Running);
            assert_eq!(
                row.token, winners[0],
                "the winner's token is the one stored"
            );
            let k = key("b", 0);
            assert!(
                !store
                    .cas_party_status(
                        &k,
                        (TaskStatus::Waiting, TaskStatus::Failed),
                        "x",
                        None,
                        &[],
                        6
                    )
                    .await
                    .expect("cas"),
                "stale from"
            );
            assert!(
                store
                    .cas_party_status(
                        &k,
                        (TaskStatus::Running, TaskStatus::Success),
                        "",
                        Some("{\"value\":1}"),
                        &[],
                        7
                    )
                    .await
                    .expect("cas")
            );
            let row = store.task(&k).await.expect("read").expect("row");
            assert_eq!(row.output, "{\"value\":1}");
            assert_eq!(row.end_ms, 7);
            assert!(
                store
                    .cas_status(&k, TaskStatus::Waiting, TaskStatus::Success, 8)
                    .await
                    .expect("cas")
            );
            assert!(
                !store
                    .cas_status(&k, TaskStatus::Waiting, TaskStatus::Success, 8)
                    .await
                    .expect("cas")
            );
        }
    }
}
