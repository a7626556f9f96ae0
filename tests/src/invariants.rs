//! The invariants every crash, restart and partition scenario must leave standing, checked
//! from the services' own databases (each party's `<service>.db` under a data directory) and
//! from `/proc`:
//!
//! 1. every job acknowledged at submit reaches an end status on its scheduler;
//! 2. that status is the same on every party (every job-controller row of the job);
//! 3. every transition in every audit trail is legal by the shared status tables;
//! 4. no (job, task, version, party) ever had two attempts claimed or two workers started;
//! 5. no worker process, running task row or resource reservation outlives its job;
//! 6. every command a service committed to its outbox for the jobs was delivered.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use fedflow_core::{JobStatus, TaskStatus};
use fedflow_store::{Db, SqlValue, Transition, get};

use crate::{eventually, processes_mentioning};

const AUDITS: [(&str, &str); 3] = [
    ("scheduler", "scheduler_audit"),
    ("job-controller", "jobctl_audit"),
    ("task-controller", "taskctl_audit"),
];

const OUTBOXES: [(&str, &str); 3] = [
    ("scheduler", "scheduler_outbox"),
    ("job-controller", "jobctl_outbox"),
    ("task-controller", "taskctl_outbox"),
];

/// Invariant 6: waits (up to `within`) until no outbox holds a command for any of `jobs`.
pub async fn outboxes_drained(root: &Path, parties: &[&str], jobs: &[String], within: Duration) {
    eventually("every outbox command delivered", within, || async move {
        let mut left = Vec::new();
        for party in parties {
            for (service, table) in OUTBOXES {
                let db = open(root, party, service).await;
                for pending in db.pending(table).await.map_err(|e| e.to_string())? {
                    if jobs.contains(&pending.command.job_id) {
                        left.push(format!(
                            "{party} {service}: {} to {} ({} attempts, last error {:?})",
                            pending.command.method,
                            pending.command.dest,
                            pending.attempts,
                            pending.last_error
                        ));
                    }
                }
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(left.join("; "))
        }
    })
    .await;
}

/// The file of a federation's directory that holds the URL template of its services'
/// databases when they are not SQLite files in each party's directory (see
/// [`crate::process::ProcessOptions::database_url_template`]).
pub const DATABASES: &str = "databases.url";

/// The URL of `service`'s (`scheduler`, `job-controller`, `task-controller`) database of
/// `party` by `template` (`{party}`, `{service}` with `_` for `-`).
pub fn database_url(template: &str, party: &str, service: &str) -> String {
    template
        .replace("{party}", party)
        .replace("{service}", &service.replace('-', "_"))
}

async fn open(root: &Path, party: &str, service: &str) -> Db {
    let url = match std::fs::read_to_string(root.join(DATABASES)) {
        Ok(template) => database_url(template.trim(), party, service),
        _ => fedflow_store::sqlite_url(&root.join(party).join(format!("{service}.db"))),
    };
    Db::open_existing(&url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

/// `SELECT column FROM from` with `job` bound to its one `?` (`from` names the table and
/// filters on `job_id = ?`).
async fn strings(db: &Db, column: &str, from: &str, job: &str) -> Vec<String> {
    let sql = format!("SELECT {column} FROM {from}");
    let values: Vec<SqlValue> = vec![job.to_owned().into()];
    db.query(&sql, values)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| get::<String>(row, column).expect("a text column"))
        .collect()
}

/// The end status of every job in `jobs`, once every party agrees on it (waits up to
/// `within`). Panics naming the job and what each party says if they do not converge.
pub async fn agreed_statuses(
    root: &Path,
    parties: &[&str],
    initiator: &str,
    jobs: &[String],
    within: Duration,
) -> BTreeMap<String, JobStatus> {
    let mut agreed = BTreeMap::new();
    for job in jobs {
        let status = eventually(
            &format!("job {job} ended with the same status on every party"),
            within,
            || async move {
                let scheduler = open(root, initiator, "scheduler").await;
                let at_scheduler =
                    strings(&scheduler, "status", "scheduler_jobs WHERE job_id = ?", job).await;
                let mut seen = vec![format!("scheduler: {at_scheduler:?}")];
                let Some(status) = at_scheduler.first() else {
                    return Err(format!("job unknown to its scheduler: {seen:?}"));
                };
                let status = JobStatus::from_str(status).map_err(|e| e.to_string())?;
                let mut agree = status.is_end();
                for party in parties {
                    let jc = open(root, party, "job-controller").await;
                    let rows = strings(&jc, "status", "jobctl_jobs WHERE job_id = ?", job).await;
                    agree &= !rows.is_empty() && rows.iter().all(|s| s == status.as_str());
                    seen.push(format!("party {party}: {rows:?}"));
                }
                if agree {
                    Ok(status)
                } else {
                    Err(seen.join(", "))
                }
            },
        )
        .await;
        agreed.insert(job.clone(), status);
    }
    agreed
}

/// Every transition recorded by every service of every party.
pub async fn audit_trails(root: &Path, parties: &[&str]) -> Vec<(String, Transition)> {
    let mut all = Vec::new();
    for party in parties {
        for (service, table) in AUDITS {
            let db = open(root, party, service).await;
            let trail = db
                .transitions(table, None)
                .await
                .unwrap_or_else(|e| panic!("{party} {service} audit: {e}"));
            all.extend(trail.into_iter().map(|t| (format!("{party} {service}"), t)));
        }
    }
    all
}

/// Invariants 3 and 4 over the audit trails; returns every violation.
pub fn audit_violations(trails: &[(String, Transition)]) -> Vec<String> {
    let mut violations = Vec::new();
    let mut attempts: BTreeMap<(String, String), u32> = BTreeMap::new();
    let mut workers: BTreeMap<(String, String), u32> = BTreeMap::new();
    for (service, t) in trails {
        let legal = match t.entity.as_str() {
            "job" => match (JobStatus::from_str(&t.from), JobStatus::from_str(&t.to)) {
                (Ok(from), Ok(to)) => from.can_move_to(to),
                _ => false,
            },
            "task" | "party-task" => {
                match (TaskStatus::from_str(&t.from), TaskStatus::from_str(&t.to)) {
                    (Ok(from), Ok(to)) => from.can_move_to(to),
                    _ => false,
                }
            }
            "worker" => t.from == "none" && t.to == "started",
            _ => false,
        };
        if !legal {
            violations.push(format!("{service}: illegal transition {t:?}"));
        }
        if t.cause == "attempt claimed" {
            *attempts
                .entry((service.clone(), t.key.clone()))
                .or_default() += 1;
        }
        if t.entity == "worker" {
            *workers.entry((service.clone(), t.key.clone())).or_default() += 1;
        }
    }
    for ((service, key), n) in attempts {
        if n > 1 {
            violations.push(format!("{service}: {key} claimed {n} times"));
        }
    }
    for ((service, key), n) in workers {
        if n > 1 {
            violations.push(format!("{service}: {key} had {n} workers"));
        }
    }
    violations
}

/// Invariant 5: waits (up to `within`) until no process mentions an ended job, no task row of
/// it is still running and no party holds resources for it.
pub async fn nothing_outlives(root: &Path, parties: &[&str], jobs: &[String], within: Duration) {
    for job in jobs {
        eventually(
            &format!("nothing of job {job} left running or reserved"),
            within,
            || async move {
                let pids = processes_mentioning(job);
                if !pids.is_empty() {
                    return Err(format!("processes {pids:?} still run"));
                }
                for party in parties {
                    let tc = open(root, party, "task-controller").await;
                    let running = strings(
                        &tc,
                        "component",
                        "taskctl_tasks WHERE job_id = ? AND party_status = 'running'",
                        job,
                    )
                    .await;
                    if !running.is_empty() {
                        return Err(format!("party {party}: tasks {running:?} still running"));
                    }
                    let jc = open(root, party, "job-controller").await;
                    let held =
                        strings(&jc, "role", "jobctl_allocations WHERE job_id = ?", job).await;
                    if !held.is_empty() {
                        return Err(format!("party {party}: resources held for {held:?}"));
                    }
                }
                Ok(())
            },
        )
        .await;
    }
}

/// What [`check`] looks at: the data directory of `parties`, and `jobs` submitted at
/// `initiator`, each given up to `within` to settle.
pub struct Scope<'a> {
    pub root: &'a Path,
    pub parties: &'a [&'a str],
    pub initiator: &'a str,
    pub jobs: &'a [String],
    pub within: Duration,
}

/// All six invariants over `scope`; returns each job's agreed status. Panics with every
/// violation found.
pub async fn check(scope: &Scope<'_>) -> BTreeMap<String, JobStatus> {
    let Scope {
        root,
        parties,
        initiator,
        jobs,
        within,
    } = *scope;
    let statuses = agreed_statuses(root, parties, initiator, jobs, within).await;
    nothing_outlives(root, parties, jobs, within).await;
    outboxes_drained(root, parties, jobs, within).await;
    let trails = audit_trails(root, parties).await;
    assert!(
        trails.iter().any(|(_, t)| t.entity == "job"),
        "the audit trails recorded no job transition at all"
    );
    let violations = audit_violations(&trails);
    assert!(
        violations.is_empty(),
        "invariants violated:\n{}",
        violations.join("\n")
    );
    statuses
}

/// Why each of `jobs` ended as it did, as its scheduler recorded (for failure messages).
pub async fn reasons(root: &Path, initiator: &str, jobs: &[&String]) -> Vec<String> {
    let db = open(root, initiator, "scheduler").await;
    let mut out = Vec::new();
    for job in jobs {
        let reason = strings(&db, "reason", "scheduler_jobs WHERE job_id = ?", job).await;
        out.push(format!("{job}: {reason:?}"));
    }
    out
}
