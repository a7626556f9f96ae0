//! The soak (S29, only with `--only soak`; BENCHMARKS.md, "Soak"): a 3-party federation of
//! real processes (durable SQLite, process workers) runs `--soak-jobs` jobs paced evenly over
//! `--soak-secs`, `--soak-fault-percent` of them each with a [`Fault`], while [`sample`] reads
//! every service's memory, descriptors and threads and every party's stores each
//! `--soak-sample-secs`. At the end [`report`] prints the table and a verdict per figure, and
//! every job is checked to have ended as its fault expects, the same on every party, with the
//! invariants of `fedflow_tests::invariants` holding. Restarts are kept to party 10001, so the
//! services of 9999 and 10000 live the whole run and carry the leak figures.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_store::{Db, get};
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use serde_json::{Value, json};
use tokio::sync::Mutex;

mod report;
mod sample;

use report::{report, row};
use sample::{Sample, sample};

use super::jobs::{chain3, conf3};
use super::{Client, PARTIES3};
use crate::Args;
use crate::measure::Results;

/// The services party 10001 restarts in turn.
const RESTARTED: [&str; 4] = [
    "fedflow-job-controller",
    "fedflow-task-controller",
    "fedflow-scheduler",
    "fedflow-party-gateway",
];

/// The gateways stopped in turn.
const DELAYED: [&str; 3] = ["10000", "10001", "9999"];

/// What a faulted job goes through, in turn (see [`Fault::nth`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// The host's worker of a one-task job is killed (SIGKILL) while it runs; every other such
    /// job allows one automatic retry (it must then succeed), the others none (it must fail).
    WorkerKilled { retry: bool },
    /// Submitted twice at once with the same request id, and again after it ended: every
    /// answer must name the same job, and it must succeed.
    Duplicate,
    /// A gateway (each party's in turn) is stopped (SIGSTOP) for 1 or 2 s just after the job
    /// is accepted, then continued.
    Delay { party: &'static str, ms: u64 },
    /// One of party 10001's services (each in turn) is killed (SIGKILL) just after the job is
    /// accepted, and started again half a second later.
    Restart { service: &'static str },
}

impl Fault {
    /// The `n`th fault of the run.
    fn nth(n: usize) -> Fault {
        let round = n / 4;
        match n % 4 {
            0 => Fault::WorkerKilled {
                retry: round.is_multiple_of(2),
            },
            1 => Fault::Duplicate,
            2 => Fault::Delay {
                party: DELAYED[round % DELAYED.len()],
                ms: if round.is_multiple_of(2) { 1000 } else { 2000 },
            },
            _ => Fault::Restart {
                service: RESTARTED[round % RESTARTED.len()],
            },
        }
    }

    fn label(self) -> String {
        match self {
            Fault::WorkerKilled { retry: true } => "worker killed, retried".into(),
            Fault::WorkerKilled { retry: false } => "worker killed, no retry".into(),
            Fault::Duplicate => "duplicate submission".into(),
            Fault::Delay { party, ms } => format!("gateway {party} stopped {ms} ms"),
            Fault::Restart { service } => format!("10001 {service} restarted"),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Fault::WorkerKilled { retry: true } => "worker killed (retried)",
            Fault::WorkerKilled { retry: false } => "worker killed (no retry)",
            Fault::Duplicate => "duplicate submission",
            Fault::Delay { .. } => "party delayed (SIGSTOP)",
            Fault::Restart { .. } => "service killed and restarted",
        }
    }
}

/// What the jobs share.
struct Ctx {
    fed: Mutex<ProcessFederation>,
    client: Client,
    host_tc: String,
    release: PathBuf,
    tag: String,
    submitted: AtomicUsize,
    ended: AtomicUsize,
    succeeded: AtomicUsize,
    failed: AtomicUsize,
}

/// How one job ended.
struct Outcome {
    index: usize,
    job_id: String,
    fault: Option<Fault>,
    expected: JobStatus,
    ended: Option<(JobStatus, String)>,
    /// What went wrong besides the status (a duplicate answered with another id, say).
    problem: Option<String>,
}

pub(super) async fn run(args: &Args, r: &mut Results) {
    let secs = args.soak_secs.max(1);
    let jobs = args.soak_jobs.max(1);
    let every = args
        .soak_sample_secs
        .unwrap_or(if secs >= 1800 { 60 } else { 10 })
        .max(1);
    let percent = args.soak_fault_percent.min(100) as usize;
    eprintln!(
        "fedflow-bench: soak: {jobs} jobs over {secs} s ({:.2} jobs/s), {percent} % with a fault, sampled every {every} s, gateways dropping {} replies per thousand",
        jobs as f64 / secs as f64,
        args.soak_drop_reply_per_mille
    );
    let mut env = Vec::new();
    if args.soak_drop_reply_per_mille > 0 {
        env.push((
            "FEDFLOW_PARTY_GATEWAY__FAULTS__DROP_REPLY_PER_MILLE".to_owned(),
            args.soak_drop_reply_per_mille.to_string(),
        ));
    }
    let options = ProcessOptions {
        cores: 64,
        engine: "process",
        log: "warn",
        env,
        ..ProcessOptions::default()
    };
    let fed = ProcessFederation::start_with(&PARTIES3, options).await;
    let root = fed.dir.path().to_path_buf();
    let release = root.join("soak-release");
    std::fs::create_dir_all(&release).expect("the release directory");
    let ctx = Arc::new(Ctx {
        client: Client::new(fedflow_tests::channel(&fed.party("9999").scheduler)),
        host_tc: fed.party("10000").task_controller.clone(),
        fed: Mutex::new(fed),
        release,
        tag: format!(
            "soak-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
        ),
        submitted: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        succeeded: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let start = Instant::now();
    let restarts: Arc<std::sync::Mutex<BTreeMap<String, usize>>> = Arc::default();
    let samples: Arc<std::sync::Mutex<Vec<Sample>>> = Arc::default();
    let loaded = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let stop = tokio_util::sync::CancellationToken::new();
    let sampler = {
        let (ctx, root, samples, loaded, stop) = (
            ctx.clone(),
            root.clone(),
            samples.clone(),
            loaded.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(every));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let s = sample(&ctx, &root, start, loaded.load(Ordering::Relaxed)).await;
                eprintln!("{}", row(&s, None));
                samples.lock().expect("samples").push(s);
            }
        })
    };

    // Submit job i at start + i × interval, each waited for by its own task.
    let interval = Duration::from_secs_f64(secs as f64 / jobs as f64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut faults = 0;
    for i in 0..jobs {
        tokio::time::sleep_until((start + interval * i as u32).into()).await;
        let fault = (((i + 1) * percent / 100) > (i * percent / 100)).then(|| {
            faults += 1;
            Fault::nth(faults - 1)
        });
        if let Some(Fault::Restart { service }) = fault {
            *restarts
                .lock()
                .expect("restarts")
                .entry(format!("10001 {service}"))
                .or_default() += 1;
        }
        tasks.spawn(one_job(ctx.clone(), i, fault));
    }
    let mut outcomes = Vec::with_capacity(jobs);
    while let Some(outcome) = tasks.join_next().await {
        outcomes.push(outcome.expect("a job's task ends"));
    }
    loaded.store(false, Ordering::Relaxed);
    let paced = start.elapsed().as_secs_f64();
    eprintln!("fedflow-bench: soak: every job ended after {paced:.0} s; draining");
    // The outboxes and reservations settle once the last jobs ended.
    let drain = Instant::now();
    let last = loop {
        let s = sample(&ctx, &root, start, false).await;
        if (s.open_jobs == 0 && s.outbox == 0 && s.allocations == 0 && s.running_tasks == 0)
            || drain.elapsed() > Duration::from_secs(120)
        {
            break s;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    stop.cancel();
    sampler.await.expect("the sampler ends");
    let mut samples = samples.lock().expect("samples").clone();
    samples.push(last);
    outcomes.sort_by_key(|o| o.index);
    let restarts = restarts.lock().expect("restarts").clone();
    report(
        r,
        &samples,
        &restarts,
        &outcomes,
        secs as f64,
        jobs,
        args.soak_drop_reply_per_mille,
    );
    agreement(r, &root, &outcomes).await;
    invariants(r, &ctx, &root, &outcomes).await;
    let drops = count_in_logs(&root, "reply dropped (faults.drop_reply_per_mille)");
    r.values.insert("soak.replies_dropped".into(), drops as f64);
    if args.soak_drop_reply_per_mille > 0 {
        println!("replies dropped by the gateways (each delivered again): {drops}");
    }
}

/// Submits job `i` (with its request id, so a retried submission is the same job), applies its
/// fault, and waits until it ends.
async fn one_job(ctx: Arc<Ctx>, index: usize, fault: Option<Fault>) -> Outcome {
    let request_id = format!("{}-{index}", ctx.tag);
    let (dsl, conf, expected) = match fault {
        Some(Fault::WorkerKilled { retry }) => {
            let file = ctx.release.join(index.to_string());
            (
                json!({"components": {"nap": {"module": "Sleep"}}}),
                json!({
                    "dsl_version": 2,
                    "initiator": {"role": "guest", "party_id": 9999},
                    "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
                    "job_parameters": {"common": {
                        "task_cores": 1,
                        "auto_retries": u32::from(retry),
                        "auto_retry_delay": 0
                    }},
                    "component_parameters": {"common": {"nap": {"until_file": file.display().to_string()}}}
                }),
                if retry {
                    JobStatus::Success
                } else {
                    JobStatus::Failed
                },
            )
        }
        _ => (chain3(), conf3(), JobStatus::Success),
    };
    let mut outcome = Outcome {
        index,
        job_id: String::new(),
        fault,
        expected,
        ended: None,
        problem: None,
    };
    let submitted = if fault == Some(Fault::Duplicate) {
        let (a, b) = tokio::join!(
            submit(&ctx.client, &dsl, &conf, &request_id),
            submit(&ctx.client, &dsl, &conf, &request_id)
        );
        match (a, b) {
            (Ok(a), Ok(b)) if a == b => Ok(a),
            (Ok(a), Ok(b)) => {
                outcome.problem = Some(format!("one request id, two jobs: {a} and {b}"));
                Ok(a)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        }
    } else {
        submit(&ctx.client, &dsl, &conf, &request_id).await
    };
    let job_id = match submitted {
        Ok(id) => id,
        Err(e) => {
            outcome.problem = Some(format!("not accepted: {e}"));
            return outcome;
        }
    };
    ctx.submitted.fetch_add(1, Ordering::Relaxed);
    outcome.job_id = job_id.clone();
    match fault {
        Some(Fault::WorkerKilled { .. }) => {
            if let Err(e) = kill_host_worker(&ctx, &job_id).await {
                outcome.problem = Some(e);
            }
            std::fs::write(ctx.release.join(index.to_string()), b"").expect("a release file");
        }
        Some(Fault::Delay { party, ms }) => {
            let fed = ctx.fed.lock().await;
            let pid = fed.pid(party, "fedflow-party-gateway");
            signal(pid, "STOP");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            signal(pid, "CONT");
            drop(fed);
        }
        Some(Fault::Restart { service }) => {
            let mut fed = ctx.fed.lock().await;
            fed.kill("10001", service);
            tokio::time::sleep(Duration::from_millis(500)).await;
            fed.restart("10001", service).await;
        }
        _ => {}
    }
    outcome.ended = wait_end(&ctx.client, &job_id, Duration::from_secs(900)).await;
    if let Some((status, _)) = &outcome.ended {
        ctx.ended.fetch_add(1, Ordering::Relaxed);
        match status {
            JobStatus::Success => ctx.succeeded.fetch_add(1, Ordering::Relaxed),
            _ => ctx.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
    if fault == Some(Fault::Duplicate) && outcome.problem.is_none() {
        match submit(&ctx.client, &dsl, &conf, &request_id).await {
            Ok(again) if again == job_id => {}
            Ok(again) => {
                outcome.problem = Some(format!("submitted again after its end: {again}"));
            }
            Err(e) => outcome.problem = Some(format!("submitted again after its end: {e}")),
        }
    }
    outcome
}

/// Submits with `request_id`, retrying what a busy or restarting party answers for up to a
/// minute (the request id makes every try the same job).
async fn submit(
    client: &Client,
    dsl: &Value,
    conf: &Value,
    request_id: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = client
            .clone()
            .submit_job(fedflow_proto::scheduler::v1::SubmitJobRequest {
                dsl: dsl.to_string(),
                runtime_conf: conf.to_string(),
                request_id: request_id.to_owned(),
            })
            .await;
        match reply {
            Ok(r) => return Ok(r.into_inner().job_id),
            Err(s)
                if Instant::now() < deadline
                    && matches!(
                        s.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::ResourceExhausted
                            | tonic::Code::DeadlineExceeded
                            | tonic::Code::Aborted
                    ) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(s) => return Err(format!("{:?}: {}", s.code(), s.message())),
        }
    }
}

/// Polls the job until it ends (every 200 ms at first, then every second).
async fn wait_end(client: &Client, job_id: &str, within: Duration) -> Option<(JobStatus, String)> {
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(200);
    loop {
        if let Ok(job) = fedflow_tests::get_job(&mut client.clone(), job_id).await
            && fedflow_tests::is_end(job.status)
        {
            return Some((fedflow_tests::job_status(job.status), job.reason));
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Waits until the host's worker of the job runs, and kills it.
async fn kill_host_worker(ctx: &Ctx, job_id: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut client =
        tc::task_controller_client::TaskControllerClient::new(fedflow_tests::channel(&ctx.host_tc));
    loop {
        if let Ok(rows) = fedflow_tests::tasks_of(&mut client, job_id).await
            && let Some(row) = rows.iter().find(|t| {
                t.pid != 0
                    && fedflow_tests::task_status(t.party_status)
                        == fedflow_proto::common::v1::TaskStatus::Running
            })
        {
            return if signal(row.pid, "KILL") {
                Ok(())
            } else {
                Err(format!("the worker {} was gone before the kill", row.pid))
            };
        }
        if Instant::now() >= deadline {
            return Err("the host's worker was never seen running".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `kill -<name> <pid>`; whether it was delivered.
fn signal(pid: u32, name: &str) -> bool {
    std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every job's status at its scheduler is what every party's job-controller holds (read from
/// the databases, all jobs at once).
async fn agreement(r: &mut Results, root: &Path, outcomes: &[Outcome]) {
    let statuses = |party: &'static str, service: &'static str, sql: &'static str| {
        let path = root.join(party).join(format!("{service}.db"));
        async move {
            let db = Db::open_existing(&fedflow_store::sqlite_url(&path))
                .await
                .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            let rows = db.query(sql, Vec::new()).await.expect("read the statuses");
            let _ = db.close().await;
            let mut by: HashMap<String, Vec<String>> = HashMap::new();
            for row in rows {
                let job: String = get(&row, "job_id").expect("job_id");
                let status: String = get(&row, "status").expect("status");
                by.entry(job).or_default().push(status);
            }
            by
        }
    };
    let scheduler = statuses(
        "9999",
        "scheduler",
        "SELECT job_id, status FROM scheduler_jobs",
    )
    .await;
    let mut parties = Vec::new();
    for party in PARTIES3 {
        parties.push((
            party,
            statuses(
                party,
                "job-controller",
                "SELECT job_id, status FROM jobctl_jobs",
            )
            .await,
        ));
    }
    let mut disagree = Vec::new();
    for o in outcomes.iter().filter(|o| !o.job_id.is_empty()) {
        let at = scheduler.get(&o.job_id).and_then(|v| v.first());
        for (party, rows) in &parties {
            let theirs = rows.get(&o.job_id);
            if at.is_none() || theirs.is_none_or(|v| v.iter().any(|s| Some(s) != at)) {
                disagree.push(format!(
                    "{}: scheduler {at:?}, party {party} {theirs:?}",
                    o.job_id
                ));
            }
        }
    }
    let text = if disagree.is_empty() {
        format!(
            "every party holds each job's end status ({} jobs)",
            outcomes.len()
        )
    } else {
        format!(
            "{} disagreements, e.g. {}",
            disagree.len(),
            disagree[..disagree.len().min(5)].join("; ")
        )
    };
    println!("{:<44} {text}", "end status the same on every party");
    r.row(
        "soak: end status the same on every party",
        "all",
        text,
        "-",
        Some(disagree.is_empty()),
    );
}

/// `fedflow_tests::invariants::check` over the faulted jobs (the audit trails of all), in a
/// task of its own so a violation is reported, not a crash of the benchmark.
async fn invariants(r: &mut Results, ctx: &Arc<Ctx>, root: &Path, outcomes: &[Outcome]) {
    let jobs: Vec<String> = outcomes
        .iter()
        .filter(|o| o.fault.is_some() && !o.job_id.is_empty())
        .map(|o| o.job_id.clone())
        .collect();
    let root = root.to_path_buf();
    let started = Instant::now();
    let n = jobs.len();
    let checked = tokio::spawn(async move {
        fedflow_tests::invariants::check(&fedflow_tests::invariants::Scope {
            root: &root,
            parties: &PARTIES3,
            initiator: "9999",
            jobs: &jobs,
            within: Duration::from_secs(60),
        })
        .await;
    })
    .await;
    let held = checked.is_ok();
    let text = match checked {
        Ok(()) => format!(
            "hold ({n} faulted jobs; audit trails of all; {:.0} s to check)",
            started.elapsed().as_secs_f64()
        ),
        Err(e) => {
            let fed = ctx.fed.lock().await;
            eprintln!("{}", fed.logs());
            let message = match e.try_into_panic() {
                Ok(p) => p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            format!("VIOLATED: {message}")
        }
    };
    println!("{:<44} {text}", "invariants (fedflow_tests::invariants)");
    r.row("soak: invariants", "hold", text, "-", Some(held));
}

/// Lines containing `needle` in every service's log.
fn count_in_logs(root: &Path, needle: &str) -> usize {
    PARTIES3
        .iter()
        .flat_map(|p| {
            std::fs::read_dir(root.join(p))
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains(needle))
                .count()
        })
        .sum()
}
