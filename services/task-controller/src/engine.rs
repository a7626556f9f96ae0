//! How attempts run: the [`Engine`] trait the app launches, finds and kills workers through,
//! with two implementations. [`ProcessEngine`] (`engine = "process"`, the only one for real
//! work) runs one `fedflow-worker` process per attempt; [`InstantEngine`] (`engine =
//! "instant"`, BENCHMARK ONLY) runs nothing and answers every attempt's outcome at once, to
//! measure the control plane alone. An engine decides nothing about statuses: it reports what
//! happened and the app asks the domain what follows.

pub mod pool;
mod process;

use std::path::PathBuf;
use std::time::Duration;

use fedflow_core::TaskStatus;
use fedflow_core::task_file::TaskFile;

pub use pool::WarmPool;
pub use process::{ProcStat, ProcessEngine, find_worker, group_alive, is_alive, kill, proc_stat};

use crate::domain::TaskKey;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("task directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("task directory {0} escapes the data directory")]
    Escapes(PathBuf),
    #[error("task directory path {0} is a symlink or not a directory: not followed")]
    NotADirectory(PathBuf),
    #[error("invalid id in task key: {0}")]
    Id(String),
    #[error("cannot start worker {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
}

/// A launched worker: its pid and start time identify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerProcess {
    pub pid: u32,
    pub start_time: u64,
}

/// What launching an attempt gave.
#[derive(Debug)]
pub enum Launch {
    /// A worker process: record it as the attempt's, then reap the child.
    Process {
        child: tokio::process::Child,
        worker: WorkerProcess,
    },
    /// No process: the attempt's outcome, as if its worker had reported it.
    Done { status: TaskStatus, output: String },
}

/// Runs attempts' workers.
#[async_trait::async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Starts the worker of a claimed attempt, telling it `file`.
    fn launch(&self, key: &TaskKey, file: &TaskFile) -> Result<Launch, Error>;

    /// A live worker of `key`'s attempt that no row records: one launched by a
    /// task-controller that stopped before recording it.
    fn find_worker(&self, key: &TaskKey) -> Option<WorkerProcess>;

    /// The worker is alive: same pid, same start time, not a zombie.
    fn is_alive(&self, worker: WorkerProcess) -> bool;

    /// Stops a worker and everything it started: SIGTERM, SIGKILL after `grace`, then waits
    /// until nothing of it is left. True when confirmed gone.
    async fn kill(&self, worker: WorkerProcess, grace: Duration) -> bool;

    /// The worker has exited (reaped): whatever the engine gave its attempt and it did not
    /// take (a warm interpreter) is let go.
    fn ended(&self, _worker: WorkerProcess) {}
}

/// BENCHMARK ONLY: every attempt succeeds the moment it is launched, with an empty JSON
/// output, and no process exists (so none is found, alive or left to kill).
#[derive(Debug, Default)]
pub struct InstantEngine;

#[async_trait::async_trait]
impl Engine for InstantEngine {
    fn launch(&self, _key: &TaskKey, _file: &TaskFile) -> Result<Launch, Error> {
        Ok(Launch::Done {
            status: TaskStatus::Success,
            output: "{}".to_owned(),
        })
    }

    fn find_worker(&self, _key: &TaskKey) -> Option<WorkerProcess> {
        None
    }

    fn is_alive(&self, _worker: WorkerProcess) -> bool {
        false
    }

    async fn kill(&self, _worker: WorkerProcess, _grace: Duration) -> bool {
        true
    }
}
