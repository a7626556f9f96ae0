//! The real binaries over a real network: every party in a network namespace of its own,
//! joined through a router namespace (see `fedflow_tests::netns`), which a test degrades
//! while jobs run. Guest 9999, host 10000, arbiter 10001, as in `partitions.rs`.
//!
//! - S9, asymmetric and partial partitions: the guest cannot reach the host while the host
//!   still reaches the guest; the arbiter and the host cannot reach each other while both
//!   reach the guest. Each for less and for more than `party_unreachable_timeout`: the jobs end
//!   as a clean partition's do (`partitions.rs`), and every party agrees once the network heals.
//! - S10, a slow and lossy party: what the host sends waits 2 s ± 1 s and 5 % of its packets
//!   are lost; the same jobs as over the clean network all succeed, only slower, with the
//!   services' default deadlines. `FEDFLOW_LONG_TESTS=1` runs 100 jobs instead of 5.
//!
//! These tests need root, `ip` (iproute2) and `nft` (nftables); without them each prints why
//! and returns, or fails when `FEDFLOW_REQUIRE_TOOLS` is set.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fedflow_core::JobStatus;
use fedflow_tests::netns::{Link, Network, Routing, network_or_skip};
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use serde_json::{Value, json};

const PARTIES: [&str; 3] = ["9999", "10000", "10001"];
const UNREACHABLE_S: u64 = 6;

fn env(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The federation in its namespaces, or None (printed) where namespaces cannot be made.
async fn federation(
    routing: Routing,
    extra: Vec<(String, String)>,
) -> Option<(ProcessFederation, Arc<Network>)> {
    let network = network_or_skip(&PARTIES, routing)?;
    let fed = ProcessFederation::start_with(
        &PARTIES,
        ProcessOptions {
            env: extra,
            network: Some(network.clone()),
            ..ProcessOptions::default()
        },
    )
    .await;
    Some((fed, network))
}

/// S9's federation: partitions are noticed in seconds, as in `partitions.rs` (repairs every
/// 300 ms with 1 s call deadlines, probes every 300 ms, a party given up after `UNREACHABLE_S`).
async fn partition_federation() -> Option<(ProcessFederation, Arc<Network>)> {
    let unreachable = UNREACHABLE_S.to_string();
    federation(
        Routing::Direct,
        env(&[
            (
                "FEDFLOW_SCHEDULER__SCHEDULING__REPAIR_INTERVAL_MS",
                "300".into(),
            ),
            (
                "FEDFLOW_SCHEDULER__SCHEDULING__CALL_TIMEOUT_MS",
                "1000".into(),
            ),
            (
                "FEDFLOW_SCHEDULER__SCHEDULING__PARTY_UNREACHABLE_TIMEOUT_S",
                unreachable.clone(),
            ),
            (
                "FEDFLOW_TASK_CONTROLLER__FENCING__PROBE_INTERVAL_MS",
                "300".into(),
            ),
            (
                "FEDFLOW_TASK_CONTROLLER__FENCING__PARTY_UNREACHABLE_TIMEOUT_S",
                unreachable,
            ),
        ]),
    )
    .await
}

/// Two sleeping tasks on guest, host and arbiter, scheduled by `initiator`'s scheduler (a
/// guest or the host); the first sleeps `seconds`.
async fn submit_sleepers(
    fed: &ProcessFederation,
    initiator: &str,
    n: usize,
    seconds: f64,
) -> Vec<String> {
    submit_two(fed, initiator, n, json!({"seconds": seconds})).await
}

/// [`submit_sleepers`] whose first task sleeps as `first` says.
async fn submit_two(
    fed: &ProcessFederation,
    initiator: &str,
    n: usize,
    first: Value,
) -> Vec<String> {
    let mut scheduler = fed.scheduler(initiator);
    let dsl = json!({"components": {
        "first": {"module": "Sleep", "output": {"data": ["o"]}},
        "second": {"module": "Sleep", "input": {"data": {"data": ["first.o"]}}}
    }});
    let mut conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"first": first, "second": {"seconds": 0.2}}}),
    );
    let role = if initiator == "9999" { "guest" } else { "host" };
    conf["initiator"] =
        json!({"role": role, "party_id": initiator.parse::<u64>().expect("a number")});
    submit_many(&mut scheduler, &dsl, &conf, n).await
}

/// Waits (up to `within`) until a worker of every job runs at `role`/`party` (`running`), or
/// until none does any more.
async fn workers(jobs: &[String], at: &str, running: bool, within: Duration) {
    for job in jobs {
        let what = if running {
            format!("a worker of {job} running at {at}")
        } else {
            format!("{at} to stop its worker of {job} on its own")
        };
        eventually(&what, within, || async move {
            let pids = processes_mentioning(&format!("{job}/{at}"));
            match (running, pids.is_empty()) {
                (true, true) => Err("none yet".to_owned()),
                (false, false) => Err(format!("{pids:?} still run")),
                _ => Ok(()),
            }
        })
        .await;
    }
}

/// Asserts that every party agrees each of `jobs` (scheduled by `initiator`) ended `want`.
async fn agreed(fed: &ProcessFederation, initiator: &str, jobs: &[String], want: JobStatus) {
    let statuses = fed
        .check_invariants(initiator, jobs, Duration::from_secs(90))
        .await;
    for (job, status) in statuses {
        assert_eq!(status, want, "{job}\n{}", fed.logs());
    }
}

/// Waits until each job ended Failed at its scheduler with a reason naming `party` unreachable.
async fn failed_unreachable(
    fed: &ProcessFederation,
    initiator: &str,
    jobs: &[String],
    party: &str,
) {
    let mut scheduler = fed.scheduler(initiator);
    for job in jobs {
        let ended = wait_ended(&mut scheduler, job, Duration::from_secs(UNREACHABLE_S + 30)).await;
        assert_eq!(
            job_status(ended.status),
            fedflow_proto::common::v1::JobStatus::Failed,
            "{ended:?}"
        );
        assert!(
            ended.reason.contains(&format!("party {party} unreachable")),
            "the reason names the party: {ended:?}"
        );
    }
}

/// The guest cannot reach the host for half the timeout, across the end of the host's first
/// task; the host reaches the guest all along (its reports get through, the guest's next
/// start does not): the jobs still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s9_a_short_one_way_cut_from_guest_to_host_is_ridden_out() {
    let Some((fed, network)) = partition_federation().await else {
        return;
    };
    let jobs = submit_sleepers(&fed, "9999", 4, 1.0).await;
    workers(&jobs, "host/10000", true, Duration::from_secs(30)).await;
    network.cut_one_way("9999", "10000").expect("cut");
    tokio::time::sleep(Duration::from_millis(UNREACHABLE_S * 1000 / 2)).await;
    network.heal().expect("heal");
    agreed(&fed, "9999", &jobs, JobStatus::Success).await;
}

/// The guest cannot reach the host for longer than the timeout, the host still reaches the
/// guest: the host's first tasks end and their reports get through, but the guest cannot start
/// the second ones there, so its scheduler fails the jobs naming the host, as for a clean
/// partition, and once the network heals every party agrees. (While the host only sends, the
/// scheduler has no call to miss: a job whose host tasks run on, reporting, is not failed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s9_a_long_one_way_cut_from_guest_to_host_fails_the_jobs_and_every_party_agrees() {
    let Some((fed, network)) = partition_federation().await else {
        return;
    };
    // The first tasks end once every one runs and the guest is cut from the host.
    let release = fed.dir.path().join("release");
    let first = json!({"until_file": release.display().to_string()});
    let jobs = submit_two(&fed, "9999", 3, first).await;
    workers(&jobs, "host/10000", true, Duration::from_secs(30)).await;
    network.cut_one_way("9999", "10000").expect("cut");
    std::fs::write(&release, b"").expect("release the first tasks");
    failed_unreachable(&fed, "9999", &jobs, "10000").await;
    // One way only: the host's report that its first task ended came through.
    let mut scheduler = fed.scheduler("9999");
    for job in &jobs {
        let tasks = scheduler_tasks(&mut scheduler, job).await;
        let first = tasks
            .iter()
            .find(|t| t.component == "first")
            .expect("a first task");
        let host = first
            .parties
            .iter()
            .find(|p| p.party_id == "10000")
            .expect("the host's row");
        assert_eq!(
            task_status(host.status),
            fedflow_proto::common::v1::TaskStatus::Success,
            "{first:?}"
        );
    }
    network.heal().expect("heal");
    agreed(&fed, "9999", &jobs, JobStatus::Failed).await;
}

/// Jobs of the guest's scheduler (guest, host, arbiter) and of the host's (the same parties),
/// with host and arbiter cut from each other for half the timeout: all succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s9_a_short_cut_between_host_and_arbiter_is_ridden_out() {
    let Some((fed, network)) = partition_federation().await else {
        return;
    };
    let guests = submit_sleepers(&fed, "9999", 2, 1.0).await;
    let hosts = submit_sleepers(&fed, "10000", 2, 1.0).await;
    workers(&hosts, "arbiter/10001", true, Duration::from_secs(30)).await;
    network.cut("10000", "10001").expect("cut");
    tokio::time::sleep(Duration::from_millis(UNREACHABLE_S * 1000 / 2)).await;
    network.heal().expect("heal");
    agreed(&fed, "9999", &guests, JobStatus::Success).await;
    agreed(&fed, "10000", &hosts, JobStatus::Success).await;
}

/// Host and arbiter cut from each other past the timeout, both still reaching the guest: the
/// guest's jobs, which need no host–arbiter link, succeed during the cut; the host's jobs
/// fail naming the arbiter, the arbiter (which cannot reach the host's scheduler) fences its
/// own workers, and once the network heals every party agrees on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s9_a_long_cut_between_host_and_arbiter_fails_only_the_jobs_that_need_it() {
    let Some((fed, network)) = partition_federation().await else {
        return;
    };
    let hosts = submit_sleepers(&fed, "10000", 2, 60.0).await;
    workers(&hosts, "arbiter/10001", true, Duration::from_secs(30)).await;
    network.cut("10000", "10001").expect("cut");
    // Submitted during the cut and running across the timeout.
    let guests = submit_sleepers(&fed, "9999", 2, (UNREACHABLE_S + 2) as f64).await;
    workers(
        &hosts,
        "arbiter/10001",
        false,
        Duration::from_secs(UNREACHABLE_S + 20),
    )
    .await;
    failed_unreachable(&fed, "10000", &hosts, "10001").await;
    let mut scheduler = fed.scheduler("9999");
    for job in &guests {
        let ended = wait_ended(&mut scheduler, job, Duration::from_secs(60)).await;
        assert_eq!(
            job_status(ended.status),
            fedflow_proto::common::v1::JobStatus::Success,
            "during the cut: {ended:?}"
        );
    }
    network.heal().expect("heal");
    agreed(&fed, "10000", &hosts, JobStatus::Failed).await;
    agreed(&fed, "9999", &guests, JobStatus::Success).await;
}

/// S10's jobs: `Gather` (every party's value crosses the data plane to the guest) and diamonds
/// of `Sum` on guest, host and arbiter, one Gather in five.
fn s10_jobs(n: usize) -> Vec<(Value, Value)> {
    let diamond = (
        diamond_dsl(),
        conf3(json!({"common": {"task_cores": 1}}), json!({})),
    );
    (0..n)
        .map(|i| {
            if i % 5 == 0 {
                gather_job()
            } else {
                diamond.clone()
            }
        })
        .collect()
}

/// Submits every job through the guest and waits until all ended; returns the ids and how long
/// it took from the first submission to the last end.
async fn run_batch(fed: &ProcessFederation, jobs: &[(Value, Value)]) -> (Vec<String>, Duration) {
    let began = Instant::now();
    let mut scheduler = fed.scheduler("9999");
    let mut ids = Vec::new();
    for (dsl, conf) in jobs {
        ids.push(submit(&mut scheduler, dsl, conf).await.expect("accepted"));
    }
    for id in &ids {
        let job = wait_ended(&mut scheduler, id, Duration::from_secs(900)).await;
        assert_eq!(
            job_status(job.status),
            fedflow_proto::common::v1::JobStatus::Success,
            "{job:?}\n{}",
            fed.logs()
        );
    }
    (ids, began.elapsed())
}

/// The same batch over the clean network, then with the host's link at 2 s ± 1 s and 5 %
/// loss: every job succeeds both times, with the services' default deadlines and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s10_a_slow_lossy_host_link_slows_jobs_down_but_fails_none() {
    let Some((fed, network)) = federation(Routing::Shaped, Vec::new()).await else {
        return;
    };
    let n = if std::env::var_os("FEDFLOW_LONG_TESTS").is_some() {
        100
    } else {
        5
    };
    let jobs = s10_jobs(n);
    let (clean_ids, clean) = run_batch(&fed, &jobs).await;
    network
        .degrade(
            "10000",
            Link {
                delay: Duration::from_secs(2),
                jitter: Duration::from_secs(1),
                loss_percent: 5,
            },
        )
        .expect("degrade the host's link");
    let (slow_ids, slow) = run_batch(&fed, &jobs).await;
    eprintln!(
        "S10: {n} jobs ({} Gather) took {clean:.1?} over the clean network and {slow:.1?} with \
         the host's link at 2 s ± 1 s and 5 % loss: {:.1}x",
        n.div_ceil(5),
        slow.as_secs_f64() / clean.as_secs_f64()
    );
    network.restore("10000").expect("restore");
    let all: Vec<String> = clean_ids.into_iter().chain(slow_ids).collect();
    agreed(&fed, "9999", &all, JobStatus::Success).await;
}
