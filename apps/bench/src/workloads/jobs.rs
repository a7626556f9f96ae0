//! The jobs the workloads submit (a 3-task chain on 3 or N parties), and the two ways they
//! are timed: one job at a time ([`timed_chain`]) and a burst of many ([`burst`]).

use std::time::{Duration, Instant};

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use futures::StreamExt;
use serde_json::{Value, json};

use super::Client;
use super::observer::{Observer, all_parties};
use crate::Args;
use crate::measure::Results;

/// The chain c1 -> c2 -> c3 of `Sleep {seconds: 0}`.
pub(super) fn chain3() -> Value {
    json!({"components": {
        "c1": {"module": "Sleep", "output": {"data": ["o"]}},
        "c2": {"module": "Sleep", "input": {"data": {"data": ["c1.o"]}}, "output": {"data": ["o"]}},
        "c3": {"module": "Sleep", "input": {"data": {"data": ["c2.o"]}}, "output": {"data": ["o"]}}
    }})
}

/// Guest 9999 and these hosts (no arbiter).
pub(super) fn conf_hosts(hosts: &[&str]) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": "9999"},
        "role": {"guest": ["9999"], "host": hosts},
        "job_parameters": {"common": {"task_cores": 1, "task_parallelism": 1}},
        "component_parameters": {"common": {"c1": {"seconds": 0}, "c2": {"seconds": 0}, "c3": {"seconds": 0}}}
    })
}

pub(super) fn conf3() -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
        "job_parameters": {"common": {"task_cores": 1, "task_parallelism": 1}},
        "component_parameters": {"common": {"c1": {"seconds": 0}, "c2": {"seconds": 0}, "c3": {"seconds": 0}}}
    })
}

pub(super) async fn submit(client: &mut Client, dsl: &Value, conf: &Value) -> String {
    fedflow_tests::submit(client, dsl, conf)
        .await
        .unwrap_or_else(|s| panic!("submit: {}", s.message()))
}

/// One sequential 3-task job: submit -> first running everywhere, the two edges, last success
/// -> job success, and the scheduling overhead (wall time minus the tasks' run times).
pub(super) struct JobLatency {
    pub(super) first_running: Duration,
    pub(super) edges: Vec<Duration>,
    pub(super) finish: Duration,
    pub(super) overhead: Duration,
}

pub(super) async fn timed_chain(
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

/// The throughput burst: `args.throughput_jobs` chains on the 3 parties, recorded as
/// `{key}.jobs_per_s` and `{key}.succeeded`.
pub(super) async fn throughput(
    client: &Client,
    observer: &Observer,
    args: &Args,
    r: &mut Results,
    key: &str,
) {
    let (rate, ok) = burst(client, observer, args.throughput_jobs, &chain3(), &conf3()).await;
    r.values.insert(format!("{key}.jobs_per_s"), rate);
    r.values.insert(format!("{key}.succeeded"), ok as f64);
}

/// Submits `n` jobs, at most 64 in flight, and waits for them all. Returns (jobs/s, successes).
pub(super) async fn burst(
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
