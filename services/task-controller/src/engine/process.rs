//! The local-process engine: launches `fedflow-worker` for a task attempt and kills it.
//!
//! A worker is started with a fixed argv (`fedflow-worker --task-dir DIR`, never a shell,
//! never a path from a remote party), in its own process group, with its stdout and stderr in
//! `worker.log` in the task directory. The task directory is built only from validated ids
//! under the configured root, one level at a time, and never through a symlink (one planted
//! in the root could point anywhere: nothing is created or written through it). A pid is only ever
//! trusted together with its start time (from `/proc/<pid>/stat`), so a reused pid is never
//! taken for the worker.
//!
//! With a warm pool ([`super::pool`]), a FATE attempt's task file names one warm interpreter,
//! taken from the pool just before the worker starts; the worker hands it its pyfate process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fedflow_core::task_file::TaskFile;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::pool::WarmPool;
use super::{Engine, Error, Launch, WorkerProcess};
use crate::domain::TaskKey;

pub struct ProcessEngine {
    root: PathBuf,
    worker_bin: PathBuf,
    /// Warm interpreters for FATE attempts; none: pyfate always starts cold.
    pool: Option<WarmPool>,
}

impl ProcessEngine {
    pub fn new(root: PathBuf, worker_bin: PathBuf) -> Self {
        ProcessEngine {
            root,
            worker_bin,
            pool: None,
        }
    }

    /// FATE attempts get a warm interpreter from `pool` when it has one ready.
    pub fn with_pool(mut self, pool: WarmPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// `<root>/jobs/<job>/<role>/<party>/<component>/<version>`, created one level at a time
    /// under the (resolved) root; a level that exists as a symlink (or anything but a
    /// directory) is refused before anything is created through it.
    pub fn task_dir(&self, key: &TaskKey) -> Result<PathBuf, Error> {
        use fedflow_core::ids;
        ids::job_id(&key.job_id).map_err(|e| Error::Id(e.to_string()))?;
        ids::role(&key.role).map_err(|e| Error::Id(e.to_string()))?;
        ids::party_id(&key.party_id).map_err(|e| Error::Id(e.to_string()))?;
        ids::component(&key.component).map_err(|e| Error::Id(e.to_string()))?;
        if key.version < 0 {
            return Err(Error::Id(format!("negative version {}", key.version)));
        }
        // The configured root itself may be a symlink (the operator's choice); below it, no
        // level may be one. `create_dir` never follows a symlink in the last component, and
        // every level above was checked, so nothing is created outside the root. (`create_dir_all`
        // would follow a planted link and create the levels below it wherever it points.)
        let root = self.root.canonicalize().map_err(|source| Error::Dir {
            path: self.root.clone(),
            source,
        })?;
        let version = key.version.to_string();
        let mut dir = root.clone();
        for level in [
            "jobs",
            key.job_id.as_str(),
            key.role.as_str(),
            key.party_id.as_str(),
            key.component.as_str(),
            version.as_str(),
        ] {
            dir.push(level);
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::Dir { path: dir, source });
                }
            }
            let meta = std::fs::symlink_metadata(&dir).map_err(|source| Error::Dir {
                path: dir.clone(),
                source,
            })?;
            if !meta.file_type().is_dir() {
                return Err(Error::NotADirectory(dir));
            }
        }
        let real = dir.canonicalize().map_err(|source| Error::Dir {
            path: dir.clone(),
            source,
        })?;
        if !real.starts_with(&root) {
            return Err(Error::Escapes(real));
        }
        Ok(real)
    }

    /// Writes `task.json` (mode 0600: it holds the attempt's token) and starts the worker.
    /// Returns the child (to be reaped) and its identity.
    pub fn spawn(
        &self,
        dir: &Path,
        task_json: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(tokio::process::Child, WorkerProcess), Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let config = dir.join("task.json");
        let io = |source| Error::Dir {
            path: config.clone(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&config)
            .map_err(io)?;
        // No fsync: the file matters only to a worker of this boot.
        file.write_all(task_json).map_err(io)?;
        let log_path = dir.join("worker.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Dir {
                path: log_path.clone(),
                source,
            })?;
        let err_log = log.try_clone().map_err(|source| Error::Dir {
            path: log_path.clone(),
            source,
        })?;
        let mut command = tokio::process::Command::new(&self.worker_bin);
        if let Some(traceparent) = traceparent {
            command.env("TRACEPARENT", traceparent);
        }
        let child = command
            .arg("--task-dir")
            .arg(dir)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err_log))
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(|source| Error::Spawn {
                bin: self.worker_bin.clone(),
                source,
            })?;
        let pid = child.id().unwrap_or(0);
        let start_time = proc_stat(pid).map_or(0, |s| s.start_time);
        Ok((child, WorkerProcess { pid, start_time }))
    }
}

/// The span of one worker launch, in the job's trace; disabled when spans are not exported.
fn launch_span(key: &TaskKey, file: &TaskFile) -> tracing::Span {
    if !fedflow_telemetry::context::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "launch worker",
        job_id = %key.job_id,
        component = %key.component,
        version = key.version,
        role = %key.role,
        party_id = %file.party_id,
    );
    fedflow_telemetry::context::join_job(&span, &key.job_id);
    span
}

#[async_trait::async_trait]
impl Engine for ProcessEngine {
    fn launch(&self, key: &TaskKey, file: &TaskFile) -> Result<Launch, Error> {
        let dir = self.task_dir(key)?;
        // The launch is a span in the job's trace; the worker's calls carry its context.
        let span = launch_span(key, file);
        let traceparent = fedflow_telemetry::context::traceparent(&span);
        let warm = match (&self.pool, &file.fate) {
            (Some(pool), Some(_)) => pool.take(),
            _ => None,
        };
        let Some(warm) = warm else {
            let (child, worker) = self.spawn(&dir, &file.to_json(), traceparent.as_deref())?;
            return Ok(Launch::Process { child, worker });
        };
        let mut file = file.clone();
        if let Some(fate) = file.fate.as_mut() {
            fate.warm = Some(warm.clone());
        }
        let pool = self
            .pool
            .as_ref()
            .expect("a warm interpreter comes from the pool");
        match self.spawn(&dir, &file.to_json(), traceparent.as_deref()) {
            Ok((child, worker)) => {
                tracing::debug!(task = %key, interpreter = warm.pid, worker = worker.pid, "warm interpreter given");
                pool.given_to(&warm, worker.pid);
                Ok(Launch::Process { child, worker })
            }
            Err(e) => {
                pool.release(&warm);
                Err(e)
            }
        }
    }

    fn find_worker(&self, key: &TaskKey) -> Option<WorkerProcess> {
        self.task_dir(key).ok().and_then(|dir| find_worker(&dir))
    }

    fn is_alive(&self, worker: WorkerProcess) -> bool {
        is_alive(worker)
    }

    async fn kill(&self, worker: WorkerProcess, grace: Duration) -> bool {
        let gone = kill(worker, grace).await;
        self.ended(worker);
        gone
    }

    fn ended(&self, worker: WorkerProcess) {
        if let Some(pool) = &self.pool {
            pool.worker_ended(worker.pid);
        }
    }
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub state: char,
    pub pgrp: i32,
    pub start_time: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); pgrp is field 5, starttime field 22.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// A live worker process started for the task directory `dir` (its argv is
/// `fedflow-worker --task-dir <dir>`), if any: one launched by a task-controller that died
/// before recording it.
pub fn find_worker(dir: &Path) -> Option<WorkerProcess> {
    let want = dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let mut args = cmdline.split(|b| *b == 0);
            let found = args.any(|a| a == b"--task-dir") && args.next() == Some(want);
            let stat = proc_stat(pid)?;
            (found && stat.state != 'Z' && stat.state != 'X').then_some(WorkerProcess {
                pid,
                start_time: stat.start_time,
            })
        })
}

/// The worker is alive: same pid, same start time, not a zombie.
pub fn is_alive(worker: WorkerProcess) -> bool {
    worker.pid != 0
        && proc_stat(worker.pid)
            .is_some_and(|s| s.start_time == worker.start_time && s.state != 'Z' && s.state != 'X')
}

/// Any live (non-zombie) process left in process group `pgid`.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
            .and_then(proc_stat)
            .is_some_and(|s| {
                i64::from(s.pgrp) == i64::from(pgid) && s.state != 'Z' && s.state != 'X'
            })
    })
}

/// Stops a worker and its whole process group: SIGTERM, then SIGKILL after `grace`, then
/// waits until no process of the group is left. True when confirmed gone.
pub async fn kill(worker: WorkerProcess, grace: Duration) -> bool {
    if worker.pid == 0 {
        return true;
    }
    // The group id is the worker's pid (it leads its group). If the leader is gone, or the pid
    // now belongs to another process, only signal the group if it is still the worker's.
    let leader_is_worker = is_alive(worker);
    if !leader_is_worker && !group_alive(worker.pid) {
        return true;
    }
    let pgid = Pid::from_raw(i32::try_from(worker.pid).unwrap_or(i32::MAX));
    let _ = killpg(pgid, Signal::SIGTERM);
    let _ = killpg(pgid, Signal::SIGCONT);
    if wait_gone(worker.pid, grace).await {
        return true;
    }
    let _ = killpg(pgid, Signal::SIGKILL);
    wait_gone(worker.pid, Duration::from_secs(5)).await
}

async fn wait_gone(pgid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_only_the_worker_with_the_same_start_time() {
        let pid = std::process::id();
        let stat = proc_stat(pid).expect("this process has a /proc entry");
        assert!(is_alive(WorkerProcess {
            pid,
            start_time: stat.start_time
        }));
        // The same pid with another start time is another process (a reused pid).
        assert!(!is_alive(WorkerProcess {
            pid,
            start_time: stat.start_time + 1
        }));
        assert!(!is_alive(WorkerProcess {
            pid: 0,
            start_time: 0
        }));
    }

    #[test]
    fn task_directories_stay_under_the_root_and_refuse_bad_ids() {
        let root = std::env::temp_dir().join(format!("fedflow-engine-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("root");
        let engine = ProcessEngine::new(root.clone(), PathBuf::from("/bin/true"));
        let key = |job: &str, component: &str| TaskKey {
            job_id: job.into(),
            component: component.into(),
            version: 0,
            role: "host".into(),
            party_id: "10000".into(),
        };
        let dir = engine
            .task_dir(&key("202611261617", "train"))
            .expect("a valid key");
        assert!(dir.starts_with(root.canonicalize().expect("root")));
        for (job, component) in [("../x", "a"), ("j", "a/b"), ("..", "a"), ("j", "a\0b")] {
            assert!(
                engine.task_dir(&key(job, component)).is_err(),
                "{job} {component}"
            );
        }
        // A symlink planted where a job directory would go is not followed out of the root.
        let outside = std::env::temp_dir().join(format!("fedflow-outside-{}", std::process::id()));
        std::fs::create_dir_all(&outside).expect("outside");
        std::fs::create_dir_all(root.join("jobs")).expect("jobs");
        std::os::unix::fs::symlink(&outside, root.join("jobs").join("planted")).expect("symlink");
        assert!(matches!(
            engine.task_dir(&key("planted", "a")),
            Err(Error::NotADirectory(_))
        ));
        // Nor one planted deeper, where a component's directory would go; and nothing was
        // created through either link.
        std::fs::create_dir_all(root.join("jobs/deeper/host/10000")).expect("levels");
        std::os::unix::fs::symlink(&outside, root.join("jobs/deeper/host/10000/a"))
            .expect("symlink");
        assert!(matches!(
            engine.task_dir(&key("deeper", "a")),
            Err(Error::NotADirectory(_))
        ));
        assert_eq!(
            std::fs::read_dir(&outside).expect("outside").count(),
            0,
            "nothing created outside the root"
        );
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
    }
}
