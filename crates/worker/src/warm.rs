//! Running one pyfate process through fedflow's runner (`FATE_RUNNER`, the protocol in its
//! header): warm, in an interpreter of the task-controller's pool named by the task file, or
//! cold, as this worker's child. Either way the runner records when the component's code
//! began, after every import, and writes the exit code to a file named here.
//!
//! A warm interpreter is not this worker's child: it moves itself into this worker's process
//! group when it accepts the assignment (so a stop that kills the worker's group kills it
//! too), and its end is awaited on a pidfd opened before the handover and checked against
//! the start time the task-controller recorded (a reused pid is never awaited). Anything that
//! fails before the interpreter accepts leaves the work to a cold start; only the first
//! pyfate process of an attempt runs warm (its interpreter is used once).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fedflow_core::task_file::{FATE_RUNNER, WarmInterpreter};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How long an interpreter may take to answer an assignment.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(10);

/// The warm interpreter of this attempt has been used (or tried).
static WARM_USED: AtomicBool = AtomicBool::new(false);

/// One pyfate process's work, as the runner takes it.
#[derive(Debug, Clone)]
pub struct Assignment {
    /// `module` (`python -m <target> argv…`) or `script` (`python <target> argv…`).
    pub kind: &'static str,
    pub target: String,
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub unset: Vec<String>,
    /// Imported before the component's code runs (a no-op in a warm interpreter).
    pub preload: Vec<String>,
    /// Where the runner writes `{"code", "computing_ms"}`.
    pub exit_path: PathBuf,
}

/// How a pyfate process ended.
#[derive(Debug)]
pub struct Ran {
    pub status: Result<ExitStatus, String>,
    pub warm: bool,
    /// When the component's code began (unix ms), as the runner recorded it.
    pub computing_ms: Option<i64>,
}

impl Assignment {
    fn to_json(&self, stdout: &Path, stderr: &Path) -> Value {
        json!({
            "kind": self.kind,
            "target": self.target,
            "argv": self.argv,
            "cwd": self.cwd.display().to_string(),
            "env": self.env,
            "unset": self.unset,
            "preload": self.preload,
            "stdout": stdout.display().to_string(),
            "stderr": stderr.display().to_string(),
            "exit_path": self.exit_path.display().to_string(),
        })
    }
}

/// Runs `assignment`: in `warm` if given and this attempt has not used it yet, else (or if
/// the handover fails, said in the worker's log) cold with `python`. `dir` holds the
/// runner's files.
pub async fn run(
    python: &str,
    warm: Option<&WarmInterpreter>,
    dir: &Path,
    assignment: &Assignment,
) -> Ran {
    let _ = std::fs::remove_file(&assignment.exit_path);
    match warm {
        Some(w) if !WARM_USED.swap(true, Ordering::SeqCst) => match run_warm(w, assignment).await {
            Ok(ran) => return ran,
            Err(why) => crate::note!(
                "fedflow-worker: warm interpreter {} not used ({why}): starting pyfate cold",
                w.pid
            ),
        },
        Some(_) => {
            crate::note!("fedflow-worker: the warm interpreter is used: starting pyfate cold");
        }
        None => crate::note!("fedflow-worker: no warm interpreter given: starting pyfate cold"),
    }
    run_cold(python, dir, assignment).await
}

/// Hands `assignment` to `w` and waits for it to end. `Err`: the interpreter did not take it
/// (nothing of it ran).
pub async fn run_warm(w: &WarmInterpreter, assignment: &Assignment) -> Result<Ran, String> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(w.pid).map_err(|_| "a bad pid")?)
        .ok_or("pid 0")?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| format!("pidfd_open: {e}"))?;
    // The pidfd is of the process that has this pid now: it must be the one recorded.
    if start_time(w.pid) != Some(w.start_time) {
        return Err("the interpreter is gone".into());
    }
    let stdout = own_output(1, &assignment.cwd);
    let stderr = own_output(2, &assignment.cwd);
    let mut line = assignment.to_json(&stdout, &stderr).to_string();
    line.push('\n');
    let answer = tokio::time::timeout(HANDOVER_TIMEOUT, async {
        let mut stream = tokio::net::UnixStream::connect(&w.socket)
            .await
            .map_err(|e| format!("connect {}: {e}", w.socket))?;
        stream
            .write_all(line.as_bytes())
            .await
            .map_err(|e| format!("send the assignment: {e}"))?;
        let mut answer = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut answer)
            .await
            .map_err(|e| format!("read the answer: {e}"))?;
        Ok::<_, String>(answer)
    })
    .await
    .map_err(|_| format!("no answer within {HANDOVER_TIMEOUT:?}"))??;
    let answer: Value =
        serde_json::from_str(&answer).map_err(|_| format!("answered {:?}", answer.trim()))?;
    if answer["ok"] != json!(true) {
        return Err(format!("refused: {}", answer["error"]));
    }
    crate::note!("fedflow-worker: pyfate runs in warm interpreter {}", w.pid);
    // From here the work is the interpreter's: its end is the process's end.
    // A pidfd turns readable when its process ends; one blocking thread waits in poll(2).
    let waited = tokio::task::spawn_blocking(move || {
        let mut fds = [rustix::event::PollFd::new(
            &pidfd,
            rustix::event::PollFlags::IN,
        )];
        loop {
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => return Ok(()),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let status = match waited {
        Ok(Ok(())) => exit_status(&assignment.exit_path),
        Ok(Err(e)) => Err(format!("waiting for warm interpreter {}: {e}", w.pid)),
        Err(e) => Err(format!("waiting for warm interpreter {}: {e}", w.pid)),
    };
    Ok(Ran {
        status,
        warm: true,
        computing_ms: computing_ms(&assignment.exit_path),
    })
}

/// Runs `assignment` as this worker's child (in its process group), through the runner.
pub async fn run_cold(python: &str, dir: &Path, assignment: &Assignment) -> Ran {
    let runner = dir.join("fate_runner.py");
    let spec = assignment.exit_path.with_extension("assignment.json");
    let written = std::fs::write(&runner, FATE_RUNNER)
        .map_err(|e| format!("write {}: {e}", runner.display()))
        .and_then(|()| {
            // Output to this worker's own stdout and stderr (inherited): the paths are unused.
            let doc = assignment.to_json(Path::new("/dev/stdout"), Path::new("/dev/stderr"));
            std::fs::write(&spec, doc.to_string())
                .map_err(|e| format!("write {}: {e}", spec.display()))
        });
    if let Err(e) = written {
        return Ran {
            status: Err(e),
            warm: false,
            computing_ms: None,
        };
    }
    let mut command = tokio::process::Command::new(python);
    command.arg(&runner).arg("run").arg(&spec);
    for name in &assignment.unset {
        command.env_remove(name);
    }
    let status = command
        .envs(&assignment.env)
        .current_dir(&assignment.cwd)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {python}: {e}"));
    Ran {
        status,
        warm: false,
        computing_ms: computing_ms(&assignment.exit_path),
    }
}

/// The file this process's fd `fd` writes to, for the interpreter to append to; else
/// `worker.log` in `dir`.
fn own_output(fd: u32, dir: &Path) -> PathBuf {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .ok()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| dir.join("worker.log"))
}

fn exit_file(path: &Path) -> Option<Value> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The exit status the runner wrote; none: the interpreter was killed before it could.
fn exit_status(path: &Path) -> Result<ExitStatus, String> {
    let code = exit_file(path)
        .and_then(|v| v["code"].as_i64())
        .ok_or_else(|| "the warm interpreter ended without an exit code (killed?)".to_owned())?;
    Ok(ExitStatus::from_raw(((code & 0xff) as i32) << 8))
}

fn computing_ms(path: &Path) -> Option<i64> {
    exit_file(path).and_then(|v| v["computing_ms"].as_i64())
}

/// A process's start time (`/proc/<pid>/stat` field 22).
fn start_time(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    /// A plain python3, or None (printed) where there is none.
    fn python3() -> Option<String> {
        let ok = std::process::Command::new("python3")
            .arg("-c")
            .arg("pass")
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some("python3".into());
        }
        assert!(
            std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
            "FEDFLOW_REQUIRE_TOOLS is set and there is no python3"
        );
        eprintln!("SKIPPED: no python3 here");
        None
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fedflow-warm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    /// A dummy component: records its process group, env and argv, then exits with argv[1].
    const DUMMY: &str = "import os, sys, json, time\n\
        json.dump({'pgrp': os.getpgrp(), 'job': os.environ.get('FATE_JOB_ID'), 'argv': sys.argv,\n\
                   'gone': os.environ.get('GONE'), 'cwd': os.getcwd()}, open('seen.json', 'w'))\n\
        if sys.argv[1] == 'sleep':\n    time.sleep(60)\n\
        sys.exit(int(sys.argv[1]))\n";

    /// Starts `fate_runner.py serve` as the pool does: own group, stdin a pipe; waits for
    /// "ready".
    async fn serve(python: &str, dir: &Path) -> (tokio::process::Child, WarmInterpreter) {
        let runner = dir.join("fate_runner.py");
        std::fs::write(&runner, FATE_RUNNER).expect("runner");
        let socket = dir.join("1.sock");
        let mut child = tokio::process::Command::new(python)
            .arg(&runner)
            .arg("serve")
            .arg(&socket)
            .arg("json")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the runner");
        let out = child.stdout.take().expect("stdout");
        let line = tokio::io::BufReader::new(out)
            .lines()
            .next_line()
            .await
            .expect("read");
        assert_eq!(line.as_deref(), Some("ready"));
        let pid = child.id().expect("pid");
        let w = WarmInterpreter {
            pid,
            start_time: start_time(pid).expect("start time"),
            socket: socket.display().to_string(),
        };
        (child, w)
    }

    fn assignment(dir: &Path, arg: &str) -> Assignment {
        std::fs::write(dir.join("dummy.py"), DUMMY).expect("dummy");
        Assignment {
            kind: "script",
            target: dir.join("dummy.py").display().to_string(),
            argv: vec![arg.into()],
            cwd: dir.to_path_buf(),
            env: BTreeMap::from([("FATE_JOB_ID".into(), "j1".into())]),
            unset: vec!["GONE".into()],
            preload: vec!["json".into(), "no_such_module_is_only_warned".into()],
            exit_path: dir.join("exit.json"),
        }
    }

    #[tokio::test]
    async fn a_warm_interpreter_joins_the_callers_group_runs_once_and_gives_its_exit_code() {
        let Some(python) = python3() else { return };
        let dir = scratch("code");
        let (mut child, w) = serve(&python, &dir).await;
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let ran = run_warm(&w, &assignment(&dir, "3"))
            .await
            .expect("the interpreter takes the assignment");
        assert!(ran.warm);
        assert!(ran.computing_ms.is_some_and(|t| t >= before), "{ran:?}");
        assert_eq!(ran.status.expect("an exit code").code(), Some(3));
        let seen: Value =
            serde_json::from_slice(&std::fs::read(dir.join("seen.json")).expect("seen"))
                .expect("json");
        assert_eq!(
            seen["pgrp"].as_i64(),
            Some(i64::from(nix_free_pgrp())),
            "the interpreter moved into the caller's process group: {seen}"
        );
        assert_eq!(seen["job"], "j1");
        assert_eq!(seen["gone"], Value::Null);
        assert_eq!(seen["argv"][1], "3");
        assert!(!Path::new(&w.socket).exists(), "it stopped listening");
        // It exits by itself once done, and is reaped here (its parent).
        let status = child.wait().await.expect("wait");
        assert_eq!(status.code(), Some(3));
        // Never reused: a second assignment finds nothing to connect to.
        assert!(run_warm(&w, &assignment(&dir, "0")).await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_killed_warm_interpreter_ends_its_run_without_an_exit_code() {
        let Some(python) = python3() else { return };
        let dir = scratch("kill");
        let (mut child, w) = serve(&python, &dir).await;
        let waiting = tokio::spawn({
            let (w, a) = (w.clone(), assignment(&dir, "sleep"));
            async move { run_warm(&w, &a).await }
        });
        // Running once it recorded what it saw.
        let seen = dir.join("seen.json");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !seen.exists() {
            assert!(std::time::Instant::now() < deadline, "the dummy never ran");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child.start_kill().expect("kill the interpreter");
        let ran = waiting.await.expect("join").expect("taken");
        assert!(ran.status.is_err(), "{ran:?}");
        child.wait().await.expect("reaped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_unassigned_interpreter_exits_when_its_pipe_closes() {
        let Some(python) = python3() else { return };
        let dir = scratch("eof");
        let (mut child, w) = serve(&python, &dir).await;
        drop(child.stdin.take());
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("it exits by itself")
            .expect("wait");
        assert!(status.success(), "{status}");
        assert!(!Path::new(&w.socket).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_cold_run_goes_through_the_same_runner() {
        let Some(python) = python3() else { return };
        let dir = scratch("cold");
        let ran = run_cold(&python, &dir, &assignment(&dir, "0")).await;
        assert!(!ran.warm);
        assert!(ran.status.expect("ran").success());
        assert!(ran.computing_ms.is_some());
        let seen: Value =
            serde_json::from_slice(&std::fs::read(dir.join("seen.json")).expect("seen"))
                .expect("json");
        assert_eq!(seen["job"], "j1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// This process's group, read from /proc (field 5).
    fn nix_free_pgrp() -> i32 {
        let text = std::fs::read_to_string("/proc/self/stat").expect("stat");
        let rest = &text[text.rfind(')').expect(")") + 2..];
        rest.split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .expect("pgrp")
    }
}
