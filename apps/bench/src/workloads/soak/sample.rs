//! The soak's samples: per service process its RSS, open descriptors and threads (from
//! `/proc`); per party the bytes of its databases, WAL files, payload segments, task directories
//! and logs; and from the databases the backlog (jobs not ended, outbox rows, reservations,
//! running task rows).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use fedflow_store::{Db, get};

use super::super::PARTIES3;
use super::Ctx;
use crate::measure::rss_mib;

/// One service at one sample.
#[derive(Clone)]
pub(super) struct Proc {
    pub(super) name: String,
    pub(super) rss: f64,
    pub(super) fds: usize,
    pub(super) threads: usize,
}

#[derive(Clone, Default)]
pub(super) struct Sample {
    pub(super) t: f64,
    pub(super) loaded: bool,
    pub(super) submitted: usize,
    pub(super) ended: usize,
    pub(super) succeeded: usize,
    pub(super) failed: usize,
    pub(super) procs: Vec<Proc>,
    pub(super) db: u64,
    pub(super) wal: u64,
    pub(super) segments: u64,
    pub(super) workdirs: u64,
    pub(super) logs: u64,
    pub(super) open_jobs: i64,
    pub(super) outbox: i64,
    pub(super) allocations: i64,
    pub(super) running_tasks: i64,
}

/// Open descriptors and threads of a process.
fn fds_threads(pid: u32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Threads:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0);
    (fds, threads)
}

/// Total bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// `SELECT COUNT(*)` of `from` in a party's database; 0 if it cannot be read.
pub(super) async fn count(root: &Path, party: &str, service: &str, from: &str) -> i64 {
    let path = root.join(party).join(format!("{service}.db"));
    let Ok(db) = Db::open_existing(&fedflow_store::sqlite_url(&path)).await else {
        return 0;
    };
    let n = db
        .query(&format!("SELECT COUNT(*) AS n FROM {from}"), Vec::new())
        .await
        .ok()
        .and_then(|rows| rows.first().and_then(|r| get::<i64>(r, "n").ok()))
        .unwrap_or(0);
    let _ = db.close().await;
    n
}

pub(super) async fn sample(ctx: &Ctx, root: &Path, start: Instant, loaded: bool) -> Sample {
    let procs: Vec<Proc> = {
        let fed = ctx.fed.lock().await;
        fed.services()
            .iter()
            .map(|s| {
                let (fds, threads) = fds_threads(s.pid);
                Proc {
                    name: s.name.to_owned(),
                    rss: rss_mib(s.pid),
                    fds,
                    threads,
                }
            })
            .collect()
    };
    let mut s = Sample {
        t: start.elapsed().as_secs_f64(),
        loaded,
        submitted: ctx.submitted.load(Ordering::Relaxed),
        ended: ctx.ended.load(Ordering::Relaxed),
        succeeded: ctx.succeeded.load(Ordering::Relaxed),
        failed: ctx.failed.load(Ordering::Relaxed),
        procs,
        ..Sample::default()
    };
    for party in PARTIES3 {
        let pdir = root.join(party);
        for entry in std::fs::read_dir(&pdir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let len = entry.metadata().map_or(0, |m| m.len());
            if name.ends_with(".db") {
                s.db += len;
            } else if name.ends_with(".db-wal") || name.ends_with(".db-shm") {
                s.wal += len;
            } else if name.ends_with(".log") {
                s.logs += len;
            }
        }
        s.segments += du(&pdir.join("segments"));
        s.workdirs += du(&pdir.join("jobs"));
        for (service, table) in [
            ("scheduler", "scheduler_outbox"),
            ("job-controller", "jobctl_outbox"),
            ("task-controller", "taskctl_outbox"),
        ] {
            s.outbox += count(root, party, service, table).await;
        }
        s.allocations += count(root, party, "job-controller", "jobctl_allocations").await;
        s.running_tasks += count(
            root,
            party,
            "task-controller",
            "taskctl_tasks WHERE party_status = 'running'",
        )
        .await;
    }
    s.open_jobs = count(
        root,
        "9999",
        "scheduler",
        "scheduler_jobs WHERE status NOT IN ('success', 'failed', 'canceled', 'timeout')",
    )
    .await;
    s
}
