//! S23 over the real binaries: a party's disk fills up during jobs, and the PostgreSQL server
//! behind every service restarts under load.
//!
//! - The initiator's directory (its SQLite stores, the gateway's segments, task directories,
//!   logs) is a small tmpfs, filled by a file written until `ENOSPC` while jobs run. The calls
//!   that need the disk are refused `UNAVAILABLE` saying the disk is full, nothing crashes or
//!   ends wrongly; a data-plane push from the host's component to the full guest's is refused
//!   the same way and nothing of it is queued. Once the file is deleted the party carries on by
//!   itself (same processes): the push tried again goes through and is popped once, the held
//!   jobs and new ones succeed, the stores pass `PRAGMA integrity_check`.
//! - Every service of three parties on databases of a private PostgreSQL server (`initdb` +
//!   `pg_ctl` as `postgres`), restarted twice (`-m fast`) while jobs are submitted steadily:
//!   the services reconnect by themselves and every job whose submit was answered OK ends
//!   with one status everywhere.
//!
//! Both end with the crash tests' invariants. They need root (mount, runuser) and
//! PostgreSQL's binaries; without them they are skipped, saying why, unless
//! `FEDFLOW_REQUIRE_TOOLS=1`, which fails them instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use serde_json::{Value, json};
use tonic::transport::Channel;

const PARTIES: [&str; 3] = ["9999", "10000", "10001"];
const SERVICES: [&str; 4] = [
    "fedflow-party-gateway",
    "fedflow-job-controller",
    "fedflow-task-controller",
    "fedflow-scheduler",
];

/// Skips the test (printing why) unless `FEDFLOW_REQUIRE_TOOLS` is set, which fails it.
fn skip(why: &str) {
    assert!(
        std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
        "FEDFLOW_REQUIRE_TOOLS is set: {why}"
    );
    eprintln!("SKIPPED: {why}");
}

fn run(command: &mut Command) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|e| format!("{command:?} cannot run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk

/// A tmpfs of a fixed size, unmounted when dropped.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = TempDir::new("fedflow-disk");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path()))?;
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if std::env::var_os("FEDFLOW_KEEP_TEST_DIRS").is_some() {
            let kept = self.dir.path().with_extension("kept");
            let _ = Command::new("cp")
                .arg("-a")
                .arg(self.dir.path())
                .arg(&kept)
                .status();
            eprintln!("kept the tmpfs's files in {}", kept.display());
        }
        // Lazy: a process of the federation may still hold a file open in it.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A file that takes every free byte of its filesystem, and keeps taking what is freed until
/// it is deleted.
struct Filler {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    full: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Filler {
    fn start(path: PathBuf) -> Filler {
        let stop = Arc::new(AtomicBool::new(false));
        let full = Arc::new(AtomicBool::new(false));
        let thread = {
            let (path, stop, full) = (path.clone(), stop.clone(), full.clone());
            std::thread::spawn(move || {
                let mut file = std::fs::File::create(&path).expect("create the filler");
                let big = vec![0xa5u8; 1 << 20];
                let small = vec![0x5au8; 4096];
                let mut written = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let chunk = if full.load(Ordering::Relaxed) {
                        &small
                    } else {
                        &big
                    };
                    match file.write(chunk) {
                        Ok(n) if n > 0 => written += n as u64,
                        Ok(_) => full.store(true, Ordering::Relaxed),
                        Err(e) if e.raw_os_error() == Some(28) => {
                            if full.swap(true, Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                        Err(e) => panic!("the filler: {e}"),
                    }
                }
                written
            })
        };
        Filler {
            path,
            stop,
            full,
            thread: Some(thread),
        }
    }

    fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Stops and deletes the file: the space returns. Returns the bytes it held.
    fn remove(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let written = self
            .thread
            .take()
            .map(|t| t.join().expect("the filler thread"))
            .unwrap_or(0);
        std::fs::remove_file(&self.path).expect("delete the filler");
        written
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn sleeper(release: &Path) -> (Value, Value) {
    (
        json!({"components": {"nap": {"module": "Sleep"}}}),
        conf3(
            json!({"common": {"task_cores": 1}}),
            json!({"common": {"nap": {"until_file": release.display().to_string()}}}),
        ),
    )
}

/// The federation session of `job`'s `nap` task (the version its guest runs).
async fn probe_session(fed: &ProcessFederation, job: &str) -> String {
    let client =
        fedflow_proto::taskcontroller::v1::task_controller_client::TaskControllerClient::new(
            channel(&fed.party("9999").task_controller),
        );
    let version = eventually(
        &format!("job {job}'s task on the guest"),
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                tasks_of(&mut client, job)
                    .await?
                    .iter()
                    .find(|t| t.component == "nap")
                    .map(|t| t.version)
                    .ok_or_else(|| "no nap task yet".to_owned())
            }
        },
    )
    .await;
    fedflow_core::session::id(job, "nap", version)
}

/// Whether a data-plane push was refused as the gateways refuse one into a full disk:
/// `UNAVAILABLE` (as a status or FATE's code `E0000000607`), saying the disk is full.
fn push_refused_disk_full(e: &fedflow_osx::Error) -> bool {
    match e {
        fedflow_osx::Error::Transport { status, .. } => disk_full_refusal(status),
        fedflow_osx::Error::Refused { code, message, .. } => {
            code == "E0000000607" && says_disk_full(message)
        }
        _ => false,
    }
}

/// Whether a status says the disk is full, with a reason.
fn disk_full_refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::ResourceExhausted
    ) && says_disk_full(status.message())
}

fn says_disk_full(text: &str) -> bool {
    ["disk is full", "No space left on device"]
        .iter()
        .any(|needle| text.contains(needle))
}

fn alive(fed: &mut ProcessFederation, pids: &BTreeMap<String, u32>) {
    for party in PARTIES {
        for service in SERVICES {
            assert!(
                !fed.exited(party, service),
                "{party} {service} died\n{}",
                fed.logs()
            );
            assert_eq!(
                pids[&format!("{party} {service}")],
                fed.pid(party, service),
                "{party} {service} was restarted"
            );
        }
    }
}

/// Waits for `jobs` to end and returns each one's end state.
async fn ended(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    jobs: &[String],
    within: Duration,
) -> Vec<sc::Job> {
    let mut out = Vec::new();
    for job in jobs {
        out.push(wait_ended(scheduler, job, within).await);
    }
    out
}

fn assert_succeeded(jobs: &[sc::Job], what: &str) {
    for job in jobs {
        assert_eq!(
            job_status(job.status),
            JobStatus::Success,
            "{what}: job {} ended {:?}: {:?}",
            job.job_id,
            job_status(job.status),
            job.reason
        );
    }
}

/// The initiator's disk fills up while three jobs hold workers on it: submits are refused
/// `UNAVAILABLE` naming the full disk (those accepted before the stores hit it end with one
/// status, a failure saying why), reads go on, no service dies; the held jobs' workers finish
/// then, on the full party too. The filler is deleted: with the same processes, the held jobs,
/// new DAG jobs and a data-plane `Gather` (the gateway's segments on that disk) succeed, and
/// every SQLite store of the party is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_refused_with_its_reason_and_recovered_from_by_itself() {
    let disk = match Tmpfs::mount("32m") {
        Ok(disk) => disk,
        Err(why) => return skip(&format!("cannot mount a tmpfs (root is needed): {why}")),
    };
    let mut options = ProcessOptions::default();
    options
        .party_dirs
        .insert("9999".into(), disk.path().to_path_buf());
    let mut fed = ProcessFederation::start_with(&PARTIES, options).await;
    let pids: BTreeMap<String, u32> = fed
        .services()
        .iter()
        .map(|s| (s.name.to_owned(), s.pid))
        .collect();
    let mut scheduler = fed.scheduler("9999");
    let release = fed.dir.path().join("release");
    let (nap, nap_conf) = sleeper(&release);
    let mut held = submit_many(&mut scheduler, &nap, &nap_conf, 3).await;
    // One more, released on its own once the disk recovered: its session takes the data plane's
    // pushes across the full disk.
    let probe_release = fed.dir.path().join("release-probe");
    let (probe_nap, probe_conf) = sleeper(&probe_release);
    let probe = submit(&mut scheduler, &probe_nap, &probe_conf)
        .await
        .expect("the data-plane probe job accepted");
    held.push(probe.clone());
    for job in &held {
        eventually(
            &format!("job {job} running"),
            Duration::from_secs(30),
            || {
                let mut scheduler = scheduler.clone();
                async move {
                    let job = get_job(&mut scheduler, job).await?;
                    match job_status(job.status) {
                        JobStatus::Running => Ok(()),
                        other => Err(format!("{other:?} {:?}", job.pending_reason)),
                    }
                }
            },
        )
        .await;
    }

    let filler = Filler::start(disk.path().join("filler"));
    eventually("the disk full", Duration::from_secs(30), || {
        let full = filler.is_full();
        async move { full.then_some(()).ok_or_else(|| "not yet".to_owned()) }
    })
    .await;
    // Submits go on until the stores need space they cannot have (SQLite reuses its WAL's
    // pages for a while); each one accepted is a job to account for.
    let mut accepted_while_full = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let refusal = loop {
        match submit(&mut scheduler, &nap, &nap_conf).await {
            Ok(job) => accepted_while_full.push(job),
            Err(status) if disk_full_refusal(&status) => break status,
            Err(status) => panic!(
                "a submit on a full disk was refused without its reason: {:?} {:?}",
                status.code(),
                status.message()
            ),
        }
        assert!(
            Instant::now() < deadline,
            "60 s of submits on a full disk, all accepted ({})",
            accepted_while_full.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!(
        "full disk: submit refused {:?}: {:?} after {} accepted",
        refusal.code(),
        refusal.message(),
        accepted_while_full.len()
    );
    // Refused again (the condition holds), reads are served, nothing died.
    let again = submit(&mut scheduler, &nap, &nap_conf)
        .await
        .expect_err("still full");
    assert!(disk_full_refusal(&again), "{again:?}");
    for job in &held {
        let job = get_job(&mut scheduler, job)
            .await
            .expect("a read on a full disk");
        assert!(
            !is_end(job.status),
            "a held job ended on a full disk: {job:?}"
        );
    }
    for party in PARTIES {
        let p = fed.party(party);
        for addr in [
            &p.gateway,
            &p.job_controller,
            &p.task_controller,
            &p.scheduler,
        ] {
            serving(addr)
                .await
                .unwrap_or_else(|e| panic!("{party} {addr} not serving on a full disk: {e}"));
        }
    }
    // The data plane on the full disk: a push from the host's component to the guest's is
    // refused saying the disk is full (`UNAVAILABLE`, which pyfate retries) and nothing is
    // queued; every gateway keeps serving.
    let probe_session = probe_session(&fed, &probe).await;
    let host = fedflow_osx::Federation::new(
        &fed.party("10000").osx,
        &probe_session,
        fedflow_osx::Party::new("host", "10000"),
    )
    .expect("the host's data plane");
    let guest_party = fedflow_osx::Party::new("guest", "9999");
    let guest =
        fedflow_osx::Federation::new(&fed.party("9999").osx, &probe_session, guest_party.clone())
            .expect("the guest's data plane");
    let refused_body = vec![1u8; 256 * 1024];
    let refused = host
        .push(&guest_party, "probe", "0", &refused_body)
        .await
        .expect_err("a push into the full disk");
    assert!(
        push_refused_disk_full(&refused),
        "a push to a party whose disk is full was refused without saying so: {refused}"
    );
    eprintln!("full disk: a data-plane push refused: {refused}");
    // The held jobs' workers finish while the disk is full: the other parties take their
    // reports; whatever the full party cannot store waits (the workers' reports and the
    // outboxes retry an `UNAVAILABLE`), nothing ends wrongly.
    std::fs::write(&release, b"").expect("write the release file");
    for party in ["10000", "10001"] {
        let client =
            fedflow_proto::taskcontroller::v1::task_controller_client::TaskControllerClient::new(
                channel(&fed.party(party).task_controller),
            );
        for job in held.iter().filter(|job| **job != probe) {
            eventually(
                &format!("job {job}'s task done on party {party}"),
                Duration::from_secs(30),
                || {
                    let mut client = client.clone();
                    async move {
                        let rows = tasks_of(&mut client, job).await?;
                        if !rows.is_empty()
                            && rows.iter().all(|t| {
                                task_status(t.party_status)
                                    == fedflow_proto::common::v1::TaskStatus::Success
                            })
                        {
                            Ok(())
                        } else {
                            Err(format!("{rows:?}"))
                        }
                    }
                },
            )
            .await;
        }
    }
    for job in &held {
        let job = get_job(&mut scheduler, job)
            .await
            .expect("a read on a full disk");
        assert!(
            !is_end(job.status) || job_status(job.status) == JobStatus::Success,
            "a held job ended on a full disk: {job:?}"
        );
    }
    alive(&mut fed, &pids);

    // Space returns; nothing is restarted.
    let freed = filler.remove();
    eprintln!("full disk: {} MiB freed", freed >> 20);
    let started = Instant::now();
    // The push pyfate would retry goes through now, and the guest pops it once: the refused
    // one was never queued.
    let body = vec![2u8; 256 * 1024];
    eventually(
        "a data-plane push accepted again",
        Duration::from_secs(30),
        || {
            let (host, guest_party, body) = (host.clone(), guest_party.clone(), body.clone());
            async move {
                host.push(&guest_party, "probe", "1", &body)
                    .await
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    let popped = guest
        .pop(
            &fedflow_osx::Party::new("host", "10000"),
            "probe",
            Duration::from_secs(10),
        )
        .await
        .expect("the guest pops the push made after the disk recovered");
    assert_eq!(
        (popped.head.correlation_id.as_str(), popped.body.as_ref()),
        ("1", body.as_slice()),
        "the guest popped another message than the one accepted"
    );
    match guest
        .pop(
            &fedflow_osx::Party::new("host", "10000"),
            "probe",
            Duration::from_millis(300),
        )
        .await
    {
        Err(fedflow_osx::Error::Timeout { .. }) => {}
        other => panic!(
            "a second message on the probe's topic (the refused push was queued?): {other:?}"
        ),
    }
    std::fs::write(&probe_release, b"").expect("write the probe's release file");
    let held_end = ended(&mut scheduler, &held, Duration::from_secs(60)).await;
    assert_succeeded(&held_end, "a job held across the full disk");
    let after = eventually("a submit accepted again", Duration::from_secs(30), || {
        let mut scheduler = scheduler.clone();
        async move {
            submit(&mut scheduler, &diamond_dsl(), &conf3(json!({}), json!({})))
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
        }
    })
    .await;
    let mut fresh = vec![after];
    fresh.extend(
        submit_many(
            &mut scheduler,
            &diamond_dsl(),
            &conf3(json!({}), json!({})),
            2,
        )
        .await,
    );
    let (gather, gather_conf) = gather_job();
    fresh.push(
        submit(&mut scheduler, &gather, &gather_conf)
            .await
            .expect("a Gather accepted"),
    );
    let fresh_end = ended(&mut scheduler, &fresh, Duration::from_secs(60)).await;
    assert_succeeded(&fresh_end, "a job submitted after the disk recovered");
    eprintln!(
        "full disk: recovered, {} held + {} new jobs succeeded in {:?}",
        held.len(),
        fresh.len(),
        started.elapsed()
    );
    // What was accepted while the disk filled ended too: succeeded, or failed saying why.
    for job in ended(
        &mut scheduler,
        &accepted_while_full,
        Duration::from_secs(60),
    )
    .await
    {
        assert!(
            job_status(job.status) == JobStatus::Success || says_disk_full(&job.reason),
            "a job accepted on a filling disk ended {:?} without saying the disk was full: {:?}",
            job_status(job.status),
            job.reason
        );
    }
    alive(&mut fed, &pids);

    let mut all = held.clone();
    all.extend(accepted_while_full);
    all.extend(fresh);
    fed.check_invariants("9999", &all, Duration::from_secs(60))
        .await;
    for entry in std::fs::read_dir(disk.path()).expect("the party's directory") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "db") {
            let db = fedflow_store::Db::open_existing(&fedflow_store::sqlite_url(&path))
                .await
                .expect("open a store");
            let rows = db
                .query("PRAGMA integrity_check", vec![])
                .await
                .expect("integrity_check");
            let verdict: Vec<String> = rows
                .iter()
                .map(|r| fedflow_store::get::<String>(r, "integrity_check").expect("a verdict"))
                .collect();
            assert_eq!(verdict, ["ok"], "{}", path.display());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A PostgreSQL server that restarts

/// A PostgreSQL server of one test: a cluster made by `initdb` in a temporary directory,
/// run by `pg_ctl` as `postgres` on a free port of 127.0.0.1, stopped when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    dir: TempDir,
}

impl Postgres {
    fn start() -> Result<Postgres, String> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .map_err(|e| format!("no PostgreSQL in /usr/lib/postgresql: {e}"))?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
            .max_by_key(|b| {
                b.parent()
                    .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .ok_or("no initdb and pg_ctl under /usr/lib/postgresql/*/bin")?;
        let dir = TempDir::new("fedflow-pg");
        run(Command::new("chown").arg("postgres:").arg(dir.path()))?;
        let data = dir.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("a free port: {e}"))?
            .port();
        let server = Postgres {
            bin,
            data,
            port,
            dir,
        };
        server.as_postgres(
            "initdb",
            &["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"],
        )?;
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(server.data.join("postgresql.conf"))
            .map_err(|e| format!("postgresql.conf: {e}"))?;
        writeln!(
            conf,
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_connections = 300\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off",
            server.dir.path().display()
        )
        .map_err(|e| format!("postgresql.conf: {e}"))?;
        let log = server.dir.path().join("server.log");
        server.as_postgres(
            "pg_ctl",
            &["-w", "-t", "60", "-l", &log.display().to_string(), "start"],
        )?;
        Ok(server)
    }

    /// Runs one of the server's programs as `postgres` on its data directory.
    fn as_postgres(&self, program: &str, args: &[&str]) -> Result<String, String> {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(program))
            .arg("-D")
            .arg(&self.data)
            .args(args))
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl restart -m fast`: every connection is cut, the server is down for a moment.
    fn restart(&self) -> Duration {
        let started = Instant::now();
        // With its log file, or the new server would hold this call's output pipes open.
        let log = self.dir.path().join("server.log");
        self.as_postgres(
            "pg_ctl",
            &[
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-l",
                &log.display().to_string(),
                "restart",
            ],
        )
        .expect("restart the PostgreSQL server");
        started.elapsed()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl", &["-w", "-t", "30", "-m", "fast", "stop"]);
    }
}

/// What the steady submitter saw.
#[derive(Default)]
struct Submitted {
    acknowledged: Vec<String>,
    /// Refusals by code, with one message of each.
    refused: BTreeMap<String, (usize, String)>,
    /// Submits that got no answer within 30 s.
    unanswered: usize,
}

/// Submits a small DAG every 50 ms until `stop`.
async fn submit_steadily(
    mut scheduler: sc::scheduler_client::SchedulerClient<Channel>,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Submitted>>,
) {
    let dsl = json!({"components": {
        "a": {"module": "Sum", "output": {"data": ["out"]}},
        "b": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}}
    }});
    let conf = conf3(json!({"common": {"task_cores": 1}}), json!({}));
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_secs(30), submit(&mut scheduler, &dsl, &conf))
            .await
        {
            Ok(Ok(job)) => lock(&seen).acknowledged.push(job),
            Ok(Err(status)) => {
                let mut seen = lock(&seen);
                let entry = seen
                    .refused
                    .entry(fedflow_rpc::error::code_name(status.code()).to_owned())
                    .or_insert((0, status.message().to_owned()));
                entry.0 += 1;
            }
            Err(_) => lock(&seen).unanswered += 1,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The submitter's record (a poisoned lock is taken as it is: a failed test panics anyway).
fn lock(seen: &Mutex<Submitted>) -> std::sync::MutexGuard<'_, Submitted> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `n` more jobs than `from` were acknowledged.
async fn acknowledged_beyond(seen: &Mutex<Submitted>, from: usize, n: usize) {
    eventually(
        &format!("{n} more submits acknowledged"),
        Duration::from_secs(60),
        || {
            let (count, refused) = {
                let seen = lock(seen);
                (seen.acknowledged.len(), format!("{:?}", seen.refused))
            };
            async move {
                if count >= from + n {
                    Ok(())
                } else {
                    Err(format!("{count} acknowledged, refusals {refused}"))
                }
            }
        },
    )
    .await;
}

/// Three parties whose twelve services keep their stores on one PostgreSQL server, restarted
/// twice with `-m fast` while a job is submitted every 50 ms: the services reconnect by
/// themselves (same processes), submits during the outage are refused `UNAVAILABLE` (or
/// answered late), never `INTERNAL`; every acknowledged job succeeds, the same everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn services_reconnect_after_a_postgres_restart_and_lose_no_acknowledged_job() {
    let pg = match Postgres::start() {
        Ok(pg) => pg,
        Err(why) => return skip(&format!("no private PostgreSQL server: {why}")),
    };
    let admin = pg.admin_url();
    for party in PARTIES {
        for service in ["scheduler", "job_controller", "task_controller"] {
            fedflow_store::create_postgres_database(&admin, &format!("p{party}_{service}"))
                .await
                .expect("create a database");
        }
    }
    let options = ProcessOptions {
        database_url_template: Some(fedflow_store::postgres_url_with_database(
            &admin,
            "p{party}_{service}",
        )),
        ..ProcessOptions::default()
    };
    let mut fed = ProcessFederation::start_with(&PARTIES, options).await;
    let pids: BTreeMap<String, u32> = fed
        .services()
        .iter()
        .map(|s| (s.name.to_owned(), s.pid))
        .collect();
    let mut scheduler = fed.scheduler("9999");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Submitted::default()));
    let submitter = tokio::spawn(submit_steadily(
        scheduler.clone(),
        stop.clone(),
        seen.clone(),
    ));
    acknowledged_beyond(&seen, 0, 5).await;
    let mut outages = Vec::new();
    for _ in 0..2 {
        let before = lock(&seen).acknowledged.len();
        outages.push(pg.restart());
        acknowledged_beyond(&seen, before, 5).await;
    }
    stop.store(true, Ordering::Relaxed);
    submitter.await.expect("the submitter");
    let (jobs, refused, unanswered) = {
        let seen = lock(&seen);
        (
            seen.acknowledged.clone(),
            format!("{:?}", seen.refused),
            seen.unanswered,
        )
    };
    eprintln!(
        "postgres restarts took {outages:?}; {} submits acknowledged, refused {refused}, \
         {unanswered} unanswered in 30 s",
        jobs.len()
    );
    {
        let seen = lock(&seen);
        for (code, (_, message)) in &seen.refused {
            assert!(
                code == "UNAVAILABLE" && !message.is_empty(),
                "a submit during a database restart was refused {code}: {message:?}"
            );
        }
    }
    assert_eq!(unanswered, 0, "submits hung across a database restart");
    let ends = ended(&mut scheduler, &jobs, Duration::from_secs(90)).await;
    assert_succeeded(&ends, "a job acknowledged across database restarts");
    alive(&mut fed, &pids);
    fed.check_invariants("9999", &jobs, Duration::from_secs(60))
        .await;
}
