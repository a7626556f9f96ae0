//! The workloads: latency, throughput (process workers and the benchmark engine), footprint,
//! and scale (a deep queue, an 8-party job).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::scheduler::v1 as pb;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::{channel, processes_mentioning, signal};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::Args;
use crate::measure::{Results, cpu_seconds, rss_mib};

type Client = pb::scheduler_client::SchedulerClient<Channel>;

/// When each status change of a job arrived here.
#[derive(Debug, Default, Clone)]
struct Timeline {
    /// (component, version, "role party", status) -> arrival.
    party: HashMap<(String, i32, String, i32), Instant>,
    /// job status -> arrival.
    job: HashMap<i32, Instant>,
}

/// Reads every status change of a scheduler and stamps it on arrival.
#[derive(Clone)]
struct Observer {
    timelines: Arc<Mutex<HashMap<String, Timeline>>>,
    changed: Arc<Notify>,
}

fn is_end(status: i32) -> bool {
    [
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Canceled,
        JobStatus::Timeout,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

impl Observer {
    async fn start(scheduler: &str) -> Observer {
        let mut client = Client::new(channel(scheduler));
        let mut stream = client
            .watch_job(pb::WatchJobRequest {
                job_id: String::new(),
            })
            .await
            .expect("watch every job")
            .into_inner();
        let observer = Observer {
            timelines: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let o = observer.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let event = match event {
                    Ok(event) => event,
                    Err(status) => {
                        eprintln!("fedflow-bench: event stream ended: {}", status.message());
                        return;
                    }
                };
                {
                    let mut timelines = o.timelines.lock().expect("timelines");
                    let timeline = timelines.entry(event.job_id.clone()).or_default();
                    match event.event {
                        Some(pb::job_event::Event::Job(job)) => {
                            timeline.job.entry(job.status).or_insert(now);
                        }
                        Some(pb::job_event::Event::Task(task)) if !task.party_id.is_empty() => {
                            timeline
                                .party
                                .entry((
                                    task.component,
                                    task.version,
                                    format!("{} {}", task.role, task.party_id),
                                    task.status,
                                ))
                                .or_insert(now);
                        }
                        _ => {}
                    }
                }
                o.changed.notify_waiters();
            }
        });
        observer
    }

    fn ended(&self, job_id: &str) -> Option<(i32, Instant)> {
        let timelines = self.timelines.lock().expect("timelines");
        timelines
            .get(job_id)?
            .job
            .iter()
            .find(|(s, _)| is_end(**s))
            .map(|(s, t)| (*s, *t))
    }

    /// Waits until every job in `jobs` has ended; returns how many succeeded. Checks at most
    /// every 5 ms, and only the jobs still pending, so waiting costs little CPU.
    async fn wait_all(&self, jobs: &[String], within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut pending: Vec<&String> = jobs.iter().collect();
        let mut succeeded = 0;
        loop {
            let notified = self.changed.notified();
            pending.retain(|job| match self.ended(job) {
                Some((status, _)) => {
                    succeeded += usize::from(status == JobStatus::Success as i32);
                    false
                }
                None => true,
            });
            if pending.is_empty() {
                return succeeded;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "only {} of {} jobs ended within {within:?}",
                    jobs.len() - pending.len(),
                    jobs.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn timeline(&self, job_id: &str) -> Timeline {
        self.timelines
            .lock()
            .expect("timelines")
            .get(job_id)
            .cloned()
            .unwrap_or_default()
    }

    fn forget(&self, job_id: &str) {
        self.timelines.lock().expect("timelines").remove(job_id);
    }
}

/// The chain c1 -> c2 -> c3 of `Sleep {seconds: 0}`.
fn chain3() -> Value {
    json!({"components": {
        "c1": {"module": "Sleep", "output": {"data": ["o"]}},
        "c2": {"module": "Sleep", "input": {"data": {"data": ["c1.o"]}}, "output": {"data": ["o"]}},
        "c3": {"module": "Sleep", "input": {"data": {"data": ["c2.o"]}}, "output": {"data": ["o"]}}
    }})
}

/// Guest 9999 and these hosts (no arbiter).
fn conf_hosts(hosts: &[&str]) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": "9999"},
        "role": {"guest": ["9999"], "host": hosts},
        "job_parameters": {"common": {"task_cores": 1, "task_parallelism": 1}},
        "component_parameters": {"common": {"c1": {"seconds": 0}, "c2": {"seconds": 0}, "c3": {"seconds": 0}}}
    })
}

fn conf3() -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
        "job_parameters": {"common": {"task_cores": 1, "task_parallelism": 1}},
        "component_parameters": {"common": {"c1": {"seconds": 0}, "c2": {"seconds": 0}, "c3": {"seconds": 0}}}
    })
}

async fn submit(client: &mut Client, dsl: &Value, conf: &Value) -> String {
    client
        .submit_job(pb::SubmitJobRequest {
            dsl: dsl.to_string(),
            runtime_conf: conf.to_string(),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("submit: {}", s.message()))
        .into_inner()
        .job_id
}

/// When every party had `component` in `status` (the last of their arrivals).
fn all_parties(
    t: &Timeline,
    component: &str,
    status: TaskStatus,
    parties: usize,
) -> Option<Instant> {
    let times: Vec<Instant> = t
        .party
        .iter()
        .filter(|((c, v, _, s), _)| c == component && *v == 0 && *s == status as i32)
        .map(|(_, at)| *at)
        .collect();
    (times.len() == parties)
        .then(|| times.into_iter().max())
        .flatten()
}

/// One sequential 3-task job: submit -> first running everywhere, the two edges, last success
/// -> job success, and the scheduling overhead (wall time minus the tasks' run times).
struct JobLatency {
    first_running: Duration,
    edges: Vec<Duration>,
    finish: Duration,
    overhead: Duration,
}

async fn timed_chain(
    client: &mut Client,
    observer: &Observer,
    conf: &Value,
    parties: usize,
) -> JobLatency {
    let start = Instant::now();
    let job_id = submit(client, &chain3(), conf).await;
    observer
        .wait_all(std::slice::from_ref(&job_id), Duration::from_secs(60))
        .await;
    let t = observer.timeline(&job_id);
    observer.forget(&job_id);
    let end = *t
        .job
        .get(&(JobStatus::Success as i32))
        .unwrap_or_else(|| panic!("job {job_id} did not succeed: {:?}", t.job.keys()));
    let names = ["c1", "c2", "c3"];
    let running: Vec<Instant> = names
        .iter()
        .map(|c| {
            all_parties(&t, c, TaskStatus::Running, parties)
                .unwrap_or_else(|| panic!("{c} not running on every party: {:?}", t.party.keys()))
        })
        .collect();
    let success: Vec<Instant> = names
        .iter()
        .map(|c| all_parties(&t, c, TaskStatus::Success, parties).expect("success on every party"))
        .collect();
    let run_time: Duration = running
        .iter()
        .zip(&success)
        .map(|(r, s)| s.saturating_duration_since(*r))
        .sum();
    JobLatency {
        first_running: running[0] - start,
        edges: vec![
            running[1].saturating_duration_since(success[0]),
            running[2].saturating_duration_since(success[1]),
        ],
        finish: end.saturating_duration_since(success[2]),
        overhead: (end - start).saturating_sub(run_time),
    }
}

/// Submits `n` jobs, at most 64 in flight, and waits for them all. Returns (jobs/s, successes).
async fn burst(
    client: &Client,
    observer: &Observer,
    n: usize,
    dsl: &Value,
    conf: &Value,
) -> (f64, usize) {
    let start = Instant::now();
    let jobs: Vec<String> = futures::stream::iter(0..n)
        .map(|_| {
            let mut client = client.clone();
            async move { submit(&mut client, dsl, conf).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let ok = observer.wait_all(&jobs, Duration::from_secs(900)).await;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for job in &jobs {
        observer.forget(job);
    }
    (rate, ok)
}

fn service_kind(name: &str) -> &str {
    name.split_whitespace().nth(1).unwrap_or(name)
}

fn total_cpu(fed: &ProcessFederation) -> f64 {
    fed.services().iter().map(|s| cpu_seconds(s.pid)).sum()
}

fn rss_by_kind(fed: &ProcessFederation) -> HashMap<String, f64> {
    let mut by: HashMap<String, f64> = HashMap::new();
    for s in fed.services() {
        let e = by.entry(service_kind(s.name).to_owned()).or_default();
        *e = e.max(rss_mib(s.pid));
    }
    by
}

fn total_rss(fed: &ProcessFederation) -> f64 {
    fed.services().iter().map(|s| rss_mib(s.pid)).sum()
}

/// Samples every service's RSS until told to stop; returns the peak per kind of service.
fn sample_peaks(
    fed: &ProcessFederation,
    stop: Arc<Notify>,
) -> tokio::task::JoinHandle<HashMap<String, f64>> {
    let services: Vec<(String, u32)> = fed
        .services()
        .iter()
        .map(|s| (service_kind(s.name).to_owned(), s.pid))
        .collect();
    tokio::spawn(async move {
        let mut peaks: HashMap<String, f64> = HashMap::new();
        loop {
            for (kind, pid) in &services {
                let e = peaks.entry(kind.clone()).or_default();
                *e = e.max(rss_mib(*pid));
            }
            tokio::select! {
                _ = stop.notified() => return peaks,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
}

fn options(engine: &'static str, cores: u32) -> ProcessOptions {
    ProcessOptions {
        cores,
        engine,
        log: "info",
        env: Vec::new(),
        insecure: false,
    }
}

pub async fn run(args: &Args) -> Results {
    let mut r = Results::default();

    // 1 + 2 + 3: latency, throughput with process workers, footprint.
    if args.runs("latency") || args.runs("throughput") {
        latency_and_throughput(args, &mut r).await;
    }
    if args.runs("instant") {
        instant(args, &mut r).await;
    }
    if args.runs("queue") {
        queue(args, &mut r).await;
    }
    if args.runs("parties") {
        parties(args, &mut r).await;
    }
    table(&mut r, args);
    r
}

async fn latency_and_throughput(args: &Args, r: &mut Results) {
    let parties3 = ["9999", "10000", "10001"];
    eprintln!(
        "fedflow-bench: latency ({} sequential jobs)",
        args.latency_jobs
    );
    let fed = ProcessFederation::start_with(&parties3, options("process", 1_000_000)).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let mut client = Client::new(channel(&addr));
    let idle = rss_by_kind(&fed);
    for _ in 0..if args.runs("latency") {
        args.latency_jobs
    } else {
        0
    } {
        let l = timed_chain(&mut client, &observer, &conf3(), 3).await;
        r.samples("latency.submit_to_first_running_all")
            .push_ms(l.first_running);
        for e in l.edges {
            r.samples("latency.dag_edge").push_ms(e);
        }
        r.samples("latency.last_success_to_job_success")
            .push_ms(l.finish);
        r.samples("latency.scheduling_overhead_per_job")
            .push_ms(l.overhead);
    }
    let mut after_runs = Vec::new();
    let mut peaks: HashMap<String, f64> = HashMap::new();
    for round in 1..=if args.runs("throughput") { 2 } else { 0 } {
        eprintln!(
            "fedflow-bench: throughput, process workers, round {round} ({} jobs)",
            args.throughput_jobs
        );
        let cpu_before = total_cpu(&fed);
        let stop = Arc::new(Notify::new());
        let sampler = sample_peaks(&fed, stop.clone());
        let (rate, ok) = burst(
            &client,
            &observer,
            args.throughput_jobs,
            &chain3(),
            &conf3(),
        )
        .await;
        stop.notify_one();
        for (k, v) in sampler.await.expect("sampler") {
            let e = peaks.entry(k).or_default();
            *e = e.max(v);
        }
        let cpu = total_cpu(&fed) - cpu_before;
        r.values
            .insert(format!("throughput.process.round{round}.jobs_per_s"), rate);
        r.values.insert(
            format!("throughput.process.round{round}.succeeded"),
            ok as f64,
        );
        r.values.insert(
            format!("footprint.cpu_seconds_per_job.round{round}"),
            cpu / args.throughput_jobs as f64,
        );
        after_runs.push(total_rss(&fed));
    }
    for (kind, mib) in &idle {
        r.values
            .insert(format!("footprint.idle_rss_mib.{kind}"), *mib);
    }
    for (kind, mib) in &peaks {
        r.values
            .insert(format!("footprint.peak_rss_mib.{kind}"), *mib);
    }
    if let [first, second] = after_runs[..] {
        r.values
            .insert("footprint.total_rss_mib_after_round1".into(), first);
        r.values
            .insert("footprint.total_rss_mib_after_round2".into(), second);
    }
}

async fn instant(args: &Args, r: &mut Results) {
    let parties3 = ["9999", "10000", "10001"];
    // 2: throughput of the control plane alone (benchmark engine).
    eprintln!(
        "fedflow-bench: throughput, benchmark engine ({} jobs)",
        args.throughput_jobs
    );
    let fed = ProcessFederation::start_with(&parties3, options("instant", 1_000_000)).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let client = Client::new(channel(&addr));
    let (rate, ok) = burst(
        &client,
        &observer,
        args.throughput_jobs,
        &chain3(),
        &conf3(),
    )
    .await;
    r.values
        .insert("throughput.instant.jobs_per_s".into(), rate);
    r.values
        .insert("throughput.instant.succeeded".into(), ok as f64);
}

async fn queue(args: &Args, r: &mut Results) {
    let parties3 = ["9999", "10000", "10001"];
    // 4a: submit latency, empty queue vs a deep one.
    eprintln!(
        "fedflow-bench: submit latency with {} jobs queued",
        args.queued_jobs
    );
    let fed = ProcessFederation::start_with(&parties3, options("process", 1)).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let mut client = Client::new(channel(&addr));
    let probes = args.latency_jobs.clamp(3, 200);
    for _ in 0..probes {
        let start = Instant::now();
        let job = submit(&mut client, &chain3(), &conf3()).await;
        r.samples("scale.submit_empty_queue")
            .push_ms(start.elapsed());
        observer
            .wait_all(std::slice::from_ref(&job), Duration::from_secs(60))
            .await;
        observer.forget(&job);
    }
    let holder_conf = {
        let mut c = conf3();
        c["component_parameters"]["common"]["c1"]["seconds"] = json!(3600);
        c
    };
    let holder = submit(&mut client, &chain3(), &holder_conf).await;
    futures::stream::iter(0..args.queued_jobs)
        .map(|_| {
            let mut client = client.clone();
            async move { submit(&mut client, &chain3(), &conf3()).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    for _ in 0..probes {
        let start = Instant::now();
        submit(&mut client, &chain3(), &conf3()).await;
        r.samples("scale.submit_with_deep_queue")
            .push_ms(start.elapsed());
    }
    let services: Vec<u32> = fed.services().iter().map(|s| s.pid).collect();
    for pid in services {
        signal(pid, "KILL");
    }
    for pid in processes_mentioning(&holder) {
        signal(pid, "KILL");
    }
}

async fn parties(args: &Args, r: &mut Results) {
    // 4b: an 8-party job against a 3-party job.
    eprintln!("fedflow-bench: 8 parties");
    let parties8 = [
        "9999", "10000", "10001", "10002", "10003", "10004", "10005", "10006",
    ];
    let fed = ProcessFederation::start_with(&parties8, options("process", 1_000_000)).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let mut client = Client::new(channel(&addr));
    let rounds = args.latency_jobs.clamp(3, 20);
    for _ in 0..rounds {
        let l = timed_chain(&mut client, &observer, &conf3(), 3).await;
        r.samples("scale.3_party.submit_to_first_running_all")
            .push_ms(l.first_running);
        r.samples("scale.3_party.scheduling_overhead")
            .push_ms(l.overhead);
        let hosts = &parties8[1..];
        let l = timed_chain(&mut client, &observer, &conf_hosts(hosts), 8).await;
        r.samples("scale.8_party.submit_to_first_running_all")
            .push_ms(l.first_running);
        r.samples("scale.8_party.scheduling_overhead")
            .push_ms(l.overhead);
    }
}

fn table(r: &mut Results, args: &Args) {
    let s = |r: &mut Results, name: &'static str| r.samples(name).clone();
    let first = s(r, "latency.submit_to_first_running_all");
    r.row(
        "submit -> first task running on all 3 parties, p50 / p99",
        "<= 25 ms / <= 100 ms",
        format!(
            "{:.1} ms / {:.1} ms",
            first.quantile(0.5),
            first.quantile(0.99)
        ),
        "1.47 s (2 parties)",
        Some(first.quantile(0.5) <= 25.0 && first.quantile(0.99) <= 100.0),
    );
    let edge = s(r, "latency.dag_edge");
    r.row(
        "DAG edge, p50",
        "<= 15 ms",
        format!("{:.1} ms", edge.quantile(0.5)),
        "1.77 s",
        Some(edge.quantile(0.5) <= 15.0),
    );
    let overhead = s(r, "latency.scheduling_overhead_per_job");
    r.row(
        "scheduling overhead per 3-task job, p50",
        "<= 75 ms",
        format!("{:.1} ms", overhead.quantile(0.5)),
        "4.0 s per 2-task job",
        Some(overhead.quantile(0.5) <= 75.0),
    );
    let value = |r: &Results, k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
    let instant = value(r, "throughput.instant.jobs_per_s");
    r.row(
        "throughput, control-plane engine",
        ">= 200 jobs/s",
        format!("{instant:.0} jobs/s ({} jobs)", args.throughput_jobs),
        "~0.5 job starts/s by design",
        Some(instant >= 200.0),
    );
    let process = value(r, "throughput.process.round1.jobs_per_s");
    r.row(
        "throughput, process workers",
        ">= 20 jobs/s",
        format!("{process:.1} jobs/s ({} jobs)", args.throughput_jobs),
        "-",
        Some(process >= 20.0),
    );
    let idle_max = r
        .values
        .iter()
        .filter(|(k, _)| k.starts_with("footprint.idle_rss_mib."))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    r.row(
        "idle RSS per service (largest)",
        "<= 20 MiB",
        format!("{idle_max:.1} MiB"),
        "106 MiB (one server)",
        Some(idle_max <= 20.0),
    );
    let a1 = value(r, "footprint.total_rss_mib_after_round1");
    let a2 = value(r, "footprint.total_rss_mib_after_round2");
    r.row(
        "RSS after 2nd throughput run vs after 1st",
        "within 10%",
        format!("{a2:.1} vs {a1:.1} MiB ({:+.1}%)", (a2 - a1) / a1 * 100.0),
        "-",
        Some((a2 - a1).abs() <= a1 * 0.10),
    );
    let cpu = value(r, "footprint.cpu_seconds_per_job.round1");
    r.row(
        "service CPU per job (all 12 services)",
        "-",
        format!("{:.1} ms", cpu * 1000.0),
        "-",
        None,
    );
    let empty = s(r, "scale.submit_empty_queue");
    let deep = s(r, "scale.submit_with_deep_queue");
    r.row(
        &format!("submit p99 with {} queued jobs vs empty", args.queued_jobs),
        "<= 2 x empty-queue p99",
        format!(
            "{:.1} ms vs {:.1} ms",
            deep.quantile(0.99),
            empty.quantile(0.99)
        ),
        "-",
        Some(deep.quantile(0.99) <= 2.0 * empty.quantile(0.99)),
    );
    let p3 = s(r, "scale.3_party.submit_to_first_running_all");
    let p8 = s(r, "scale.8_party.submit_to_first_running_all");
    r.row(
        "8-party vs 3-party job: submit -> first running, p50",
        "-",
        format!("{:.1} ms vs {:.1} ms", p8.quantile(0.5), p3.quantile(0.5)),
        "-",
        None,
    );
}
