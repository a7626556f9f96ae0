//! The warm pool: pre-started pythons that have already imported pyfate's modules (torch,
//! sklearn, fate: 3-10 s on a busy 2-core machine) and each wait for ONE FATE task
//! (`fate_runner.py serve`, the protocol in its header). The process engine gives one to an
//! attempt in its task file; the attempt's worker hands it its pyfate process, and the
//! interpreter moves itself into the worker's process group, so stop, kill, fencing and
//! `group_alive` cover it exactly as they cover a pyfate child. It is never reused.
//!
//! Pre-started, not forked from a warm parent: once torch has run anything, its OpenMP/MKL
//! (and its own intra-op) thread pools exist, and a forked child holds their locks and state
//! but not their threads, so its first parallel op can hang or misbehave; pyfate's standalone
//! computing forks a process pool of its own too. A fork would also inherit the parent's fds,
//! loggers and random state. A fresh interpreter per task has none of that, for the price of
//! its imports, paid in the background before the task arrives.
//!
//! Invariants: an interpreter not yet moved into a worker's group lives in its own group (its
//! pid); the pool kills those at shutdown, and each exits by itself when its stdin (a pipe
//! whose write end only this process holds) reaches EOF, so a task-controller that dies
//! leaves none behind. One given to an attempt whose worker ends without having taken it is
//! killed then. At most one interpreter starts at a time, so refilling never takes both
//! cores from running tasks. The pool reaps its children.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fedflow_core::task_file::{FATE_RUNNER, WarmInterpreter};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use parking_lot::Mutex;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use super::WorkerProcess;
use super::process::{is_alive, proc_stat};

/// What a warm interpreter imports: what `python -m fate.components component execute`
/// imports before it computes (the CLI, pyfate's core and arch, standalone computing, OSX
/// federation), and the components fedflow's FATE DAGs run, whose imports pull in torch,
/// sklearn and accelerate (measured with `python -X importtime`: psi's import alone is 4.3 s
/// of the 6.3 s, torch 2.3 s of it).
pub const PRELOAD: &[&str] = &[
    "fate.components.entrypoint.cli.component.__main__",
    "fate.components.entrypoint.cli.component.execute_cli",
    "fate.components.core",
    "fate.components.core.spec.task",
    "fate.arch",
    "fate.arch.computing.backends.standalone",
    "fate.arch.federation.backends.osx",
    "fate.components.components.reader",
    "fate.components.components.dataframe_transformer",
    "fate.components.components.psi",
    "fate.components.components.coordinated_lr",
    "fate.components.components.evaluation",
];

/// The longest unix socket path (`sun_path` holds 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A pool of warm interpreters; clones share it.
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<Inner>,
}

struct Inner {
    python: PathBuf,
    /// `<data_dir>/fate-pool`: the runner, the sockets, `pool.log` (the interpreters' stderr
    /// until assigned).
    dir: PathBuf,
    runner: PathBuf,
    preload: String,
    size: usize,
    state: Mutex<State>,
    /// Something to refill (a take, a death) or the pool stops.
    changed: tokio::sync::Notify,
    stop: CancellationToken,
}

#[derive(Default)]
struct State {
    /// Ready and not given, oldest first.
    ready: VecDeque<WarmInterpreter>,
    /// One starting (importing): at most one at a time.
    starting: bool,
    /// Given to an attempt: interpreter pid → the attempt's worker pid (0 until launched).
    given: HashMap<u32, u32>,
    /// Every live child: pid → start time.
    children: HashMap<u32, u64>,
    /// Names the next socket.
    next: u64,
}

/// What the pool holds now (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    /// Ready interpreters' pids.
    pub ready: Vec<u32>,
    /// Given interpreters' pids.
    pub given: Vec<u32>,
    /// Every live child's pid.
    pub children: Vec<u32>,
}

impl WarmPool {
    /// A pool of `size` interpreters of `python` under `dir` (made fresh: stale sockets of an
    /// earlier run are removed), importing `preload`. Nothing starts until [`WarmPool::run`].
    pub fn new(
        python: PathBuf,
        dir: PathBuf,
        size: usize,
        preload: &[&str],
    ) -> std::io::Result<WarmPool> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        let dir = dir.canonicalize()?;
        let longest = dir.join(format!("{}.sock", u64::MAX));
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is too long a directory for unix sockets (at most {MAX_SOCKET_PATH} bytes with the socket's name)",
                    dir.display()
                ),
            ));
        }
        let runner = dir.join("fate_runner.py");
        std::fs::write(&runner, FATE_RUNNER)?;
        Ok(WarmPool {
            inner: Arc::new(Inner {
                python,
                dir,
                runner,
                preload: preload.join(","),
                size,
                state: Mutex::new(State::default()),
                changed: tokio::sync::Notify::new(),
                stop: CancellationToken::new(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Keeps the pool full until [`WarmPool::shutdown`]: one interpreter starting at a time.
    pub async fn run(self) {
        let inner = &self.inner;
        loop {
            let short = {
                let state = inner.state.lock();
                state.ready.len() + usize::from(state.starting) < inner.size
            };
            if !short {
                tokio::select! {
                    () = inner.changed.notified() => continue,
                    () = inner.stop.cancelled() => return,
                }
            }
            inner.state.lock().starting = true;
            let ready = self.start_one().await;
            inner.state.lock().starting = false;
            if inner.stop.is_cancelled() {
                return;
            }
            if !ready {
                tracing::warn!(
                    log = %inner.dir.join("pool.log").display(),
                    "a warm interpreter died before it was ready; retrying in 10 s"
                );
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(10)) => {}
                    () = inner.stop.cancelled() => return,
                }
            }
        }
    }

    /// Starts one interpreter and waits until it is ready (true) or dead (false).
    async fn start_one(&self) -> bool {
        let inner = self.inner.clone();
        let socket = {
            let mut state = inner.state.lock();
            state.next += 1;
            inner.dir.join(format!("{}.sock", state.next))
        };
        let log_path = inner.dir.join("pool.log");
        let log = match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
        {
            Ok(log) => log,
            Err(e) => {
                tracing::warn!(error = %e, path = %log_path.display(), "warm pool log");
                return false;
            }
        };
        let spawned = tokio::process::Command::new(&inner.python)
            .arg(&inner.runner)
            .arg("serve")
            .arg(&socket)
            .arg(&inner.preload)
            .current_dir(&inner.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .kill_on_drop(false)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(error = %e, python = %inner.python.display(), "cannot start a warm interpreter");
                return false;
            }
        };
        let pid = child.id().unwrap_or(0);
        let start_time = proc_stat(pid).map_or(0, |s| s.start_time);
        inner.state.lock().children.insert(pid, start_time);
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let interpreter = WarmInterpreter {
            pid,
            start_time,
            socket: socket.display().to_string(),
        };
        tokio::spawn({
            let inner = inner.clone();
            async move {
                // Held until the interpreter ends: its EOF tells an unassigned one that this
                // task-controller is gone.
                let _stdin = stdin;
                let ready = match stdout {
                    Some(out) => matches!(
                        tokio::io::BufReader::new(out).lines().next_line().await,
                        Ok(Some(line)) if line == "ready"
                    ),
                    None => false,
                };
                if ready && !inner.stop.is_cancelled() {
                    inner.state.lock().ready.push_back(interpreter);
                }
                let _ = ready_tx.send(ready);
                let status = child.wait().await;
                tracing::debug!(pid, ?status, "warm interpreter ended");
                let mut state = inner.state.lock();
                state.children.remove(&pid);
                state.ready.retain(|w| w.pid != pid);
                state.given.remove(&pid);
                drop(state);
                inner.changed.notify_one();
            }
        });
        tokio::select! {
            ready = ready_rx => ready.unwrap_or(false),
            () = inner.stop.cancelled() => false,
        }
    }

    /// A ready interpreter for one attempt, if any (the refill starts at once).
    pub fn take(&self) -> Option<WarmInterpreter> {
        let taken = {
            let mut state = self.inner.state.lock();
            let mut taken = None;
            while let Some(w) = state.ready.pop_front() {
                if unassigned(&w) {
                    state.given.insert(w.pid, 0);
                    taken = Some(w);
                    break;
                }
            }
            taken
        };
        self.inner.changed.notify_one();
        taken
    }

    /// The attempt given `interpreter` runs as `worker` (its pid).
    pub fn given_to(&self, interpreter: &WarmInterpreter, worker: u32) {
        if let Some(w) = self.inner.state.lock().given.get_mut(&interpreter.pid) {
            *w = worker;
        }
    }

    /// `worker` has ended (or been killed): an interpreter given to it that it never took is
    /// killed (one it took is in its process group and went with it).
    pub fn worker_ended(&self, worker: u32) {
        let orphans: Vec<u32> = {
            let state = self.inner.state.lock();
            state
                .given
                .iter()
                .filter(|(_, w)| **w == worker)
                .map(|(pid, _)| *pid)
                .collect()
        };
        for pid in orphans {
            self.kill_unassigned(pid);
        }
    }

    /// Lets an interpreter given to an attempt that never launched go.
    pub fn release(&self, interpreter: &WarmInterpreter) {
        self.kill_unassigned(interpreter.pid);
    }

    fn kill_unassigned(&self, pid: u32) {
        let start_time = self.inner.state.lock().children.get(&pid).copied();
        let Some(start_time) = start_time else {
            return;
        };
        let w = WarmInterpreter {
            pid,
            start_time,
            socket: String::new(),
        };
        if unassigned(&w) {
            tracing::debug!(pid, "killing a warm interpreter its attempt never took");
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }

    /// What the pool holds.
    pub fn census(&self) -> Census {
        let state = self.inner.state.lock();
        let mut census = Census {
            ready: state.ready.iter().map(|w| w.pid).collect(),
            given: state.given.keys().copied().collect(),
            children: state.children.keys().copied().collect(),
        };
        census.given.sort_unstable();
        census.children.sort_unstable();
        census
    }

    /// Stops refilling and kills every interpreter not moved into a worker's group, waiting
    /// (at most 5 s) until they are gone. Ones running a task are left to their workers.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let unassigned_children = || -> Vec<u32> {
            let state = self.inner.state.lock();
            state
                .children
                .iter()
                .filter(|(pid, start_time)| {
                    unassigned(&WarmInterpreter {
                        pid: **pid,
                        start_time: **start_time,
                        socket: String::new(),
                    })
                })
                .map(|(pid, _)| *pid)
                .collect()
        };
        for pid in unassigned_children() {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !unassigned_children().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Alive (same pid, same start time) and still in its own process group: not taken by a
/// worker.
fn unassigned(w: &WarmInterpreter) -> bool {
    is_alive(WorkerProcess {
        pid: w.pid,
        start_time: w.start_time,
    }) && proc_stat(w.pid).is_some_and(|s| i64::from(s.pgrp) == i64::from(w.pid))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Polls `what` until it holds (at most 30 s).
    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_taken_interpreter_is_replaced_killed_if_never_used_and_shutdown_leaves_none() {
        let python = PathBuf::from("/usr/bin/python3");
        if !python.is_file() {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "FEDFLOW_REQUIRE_TOOLS is set and there is no python3"
            );
            eprintln!("SKIPPED: no /usr/bin/python3");
            return;
        }
        let dir = std::env::temp_dir().join(format!("fedflow-pool-{}", std::process::id()));
        let pool = WarmPool::new(python, dir.clone(), 1, &["json"]).expect("pool");
        let refill = tokio::spawn(pool.clone().run());
        until("one ready", || pool.census().ready.len() == 1).await;
        let first = pool.take().expect("a ready interpreter");
        assert!(pool.take().is_none(), "one interpreter is given once");
        // Its attempt's worker (a pid that is no interpreter) ends without taking it: killed.
        pool.given_to(&first, 1);
        until("a replacement ready", || {
            pool.census().ready.iter().any(|p| *p != first.pid)
        })
        .await;
        pool.worker_ended(1);
        until("the untaken interpreter gone", || {
            !pool.census().children.contains(&first.pid)
        })
        .await;
        let census = pool.census();
        assert_eq!(census.ready.len(), 1, "{census:?}");
        assert!(census.given.is_empty(), "{census:?}");
        let fresh = census.ready[0];
        pool.shutdown().await;
        until("shutdown reaps every interpreter", || {
            pool.census().children.is_empty()
        })
        .await;
        assert!(
            !std::path::Path::new(&format!("/proc/{fresh}")).exists()
                || proc_stat(fresh).is_some_and(|s| s.state == 'Z'),
            "the unassigned interpreter {fresh} was killed"
        );
        refill.await.expect("the refill loop ends");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
