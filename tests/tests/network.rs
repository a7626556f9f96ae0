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
//!   services' default deadlines. `FEDFLOW_LONG_TESTS=1` runs 100 jobs instead of 5. With
//!   them runs FATE's psi (pyfate 2.2, guest and host only) on the breast tables uploaded to
//!   both, which must intersect all 569 ids both times. It needs the python
//!   `FEDFLOW_FATE_PYTHON` names (`scripts/setup-fate.sh` makes one); without it the psi job
//!   is left out, saying why.
//!
//! These tests need root, `ip` (iproute2) and `nft` (nftables); without them each prints why
//! and returns, or fails when `FEDFLOW_REQUIRE_TOOLS` is set (as S10 then does without pyfate).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fedflow_core::JobStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
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
    federation_with(
        routing,
        ProcessOptions {
            env: extra,
            ..ProcessOptions::default()
        },
    )
    .await
}

/// [`federation`] started with `options` (its network set here).
async fn federation_with(
    routing: Routing,
    options: ProcessOptions,
) -> Option<(ProcessFederation, Arc<Network>)> {
    let network = network_or_skip(&PARTIES, routing)?;
    let fed = ProcessFederation::start_with(
        &PARTIES,
        ProcessOptions {
            network: Some(network.clone()),
            ..options
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

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// pyfate 2.2's python for S10's psi job (`FEDFLOW_FATE_PYTHON`), or None, printing why the
/// job is left out (a failure when `FEDFLOW_REQUIRE_TOOLS` is set).
fn fate_python() -> Option<PathBuf> {
    let why = match std::env::var_os("FEDFLOW_FATE_PYTHON").filter(|p| !p.is_empty()) {
        None => "FEDFLOW_FATE_PYTHON (the python of a venv with pyfate 2.2) is not set".to_owned(),
        Some(python) => {
            let python = PathBuf::from(python);
            if python.is_file() {
                return Some(python);
            }
            format!("FEDFLOW_FATE_PYTHON={} is not a file", python.display())
        }
    };
    assert!(
        std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
        "FEDFLOW_REQUIRE_TOOLS is set but S10's FATE psi job cannot run: {why}"
    );
    eprintln!("S10: FATE psi left out: {why}");
    None
}

/// The FATE provider on guest 9999 and host 10000 (the arbiter runs no FATE component). No
/// warm interpreters: each psi task starts pyfate cold (seconds of imports), and no idle
/// interpreter (about 430 MB each) waits through the other jobs.
fn fate_party_env(python: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    ["9999", "10000"]
        .into_iter()
        .map(|party| {
            (
                party.to_owned(),
                env(&[
                    (
                        "FEDFLOW_TASK_CONTROLLER__FATE__PYTHON",
                        python.display().to_string(),
                    ),
                    ("FEDFLOW_TASK_CONTROLLER__FATE__WARM_POOL", "0".into()),
                ]),
            )
        })
        .collect()
}

/// FATE-Flow upload confs for the breast data, by party (as `fate.rs` uploads them).
const UPLOADS: [(&str, &str); 2] = [
    ("9999", "examples/fate-lr/upload_guest.json"),
    ("10000", "examples/fate-lr/upload_host.json"),
];

/// Uploads the table a FATE-Flow upload conf describes through `party`'s scheduler
/// (`Data.UploadTable`, what `fedflow data upload -c` calls): the spec, then the file's bytes.
async fn upload(fed: &ProcessFederation, party: &str, conf: &str) -> tc::Table {
    let conf: Value = serde_json::from_slice(
        &std::fs::read(repo().join(conf)).unwrap_or_else(|e| panic!("read {conf}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{conf} is not JSON: {e}"));
    let text = |key: &str| {
        conf[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {conf}"))
            .to_owned()
    };
    let file = repo().join(text("file"));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let spec = tc::UploadSpec {
        namespace: text("namespace"),
        name: text("name"),
        head: conf["head"].as_bool().unwrap_or(true),
        partitions: conf["partitions"].as_i64().map_or(1, |p| p as i32),
        extend_sid: conf["extend_sid"].as_bool().unwrap_or(false),
        drop: false,
        meta_json: conf["meta"].to_string(),
        file: file.display().to_string(),
        file_size: bytes.len() as u64,
    };
    let parts: Vec<sc::UploadTableRequest> =
        std::iter::once(sc::upload_table_request::Part::Spec(spec))
            .chain(
                bytes
                    .chunks(256 << 10)
                    .map(|c| sc::upload_table_request::Part::Chunk(c.to_vec().into())),
            )
            .map(|part| sc::UploadTableRequest { part: Some(part) })
            .collect();
    sc::data_client::DataClient::new(fed.channel(party, &fed.party(party).scheduler))
        .upload_table(tokio_stream::iter(parts))
        .await
        .unwrap_or_else(|s| panic!("upload {} on {party}: {s:?}", file.display()))
        .into_inner()
        .table
        .unwrap_or_else(|| panic!("no table in the answer to the upload on {party}"))
}

/// FATE's psi on guest 9999 and host 10000, each reading its party's registered breast table
/// (as `fate.rs`'s `psi_reads_each_partys_table_through_data_warehouse`).
fn psi_dag() -> Value {
    let table = |name: &str, role: &str, party: &str| {
        json!({"name": name, "namespace": "experiment",
               "parties": [{"role": role, "party_id": [party]}]})
    };
    json!({
        "schema_version": "2.1.0",
        "dag": {
            "parties": [{"role": "guest", "party_id": ["9999"]},
                        {"role": "host", "party_id": ["10000"]}],
            "tasks": {"psi_0": {
                "component_ref": "psi",
                "inputs": {"data": {"input_data": {"data_warehouse": [
                    table("breast_hetero_guest", "guest", "9999"),
                    table("breast_hetero_host", "host", "10000"),
                ]}}},
            }},
        },
    })
}

/// psi_0's output on guest and host holds all 569 ids (`Data.ListOutputs`, what `fedflow
/// output list` calls, on each party's own scheduler).
async fn psi_intersected_every_id(fed: &ProcessFederation, job_id: &str) {
    for party in ["9999", "10000"] {
        let artifacts =
            sc::data_client::DataClient::new(fed.channel(party, &fed.party(party).scheduler))
                .list_outputs(sc::ListOutputsRequest {
                    request: Some(tc::ListArtifactsRequest {
                        job_id: job_id.to_owned(),
                        component: "psi_0".to_owned(),
                    }),
                    party_id: String::new(),
                })
                .await
                .unwrap_or_else(|s| panic!("psi_0's outputs on {party}: {s:?}"))
                .into_inner()
                .artifacts;
        let data = artifacts
            .iter()
            .find(|a| a.key == "psi_0.output_data")
            .unwrap_or_else(|| panic!("no psi_0.output_data on {party}: {artifacts:?}"));
        let overview: Value = serde_json::from_str(&data.overview_json).unwrap_or(Value::Null);
        assert_eq!(
            overview["count"], 569,
            "psi of {job_id} on {party}: {data:?}"
        );
    }
}

/// How long the psi job may take: its cold pyfate starts and every exchange of its rounds
/// over a link that holds what the host sends 2 s ± 1 s (and loses some of it).
const PSI_WITHIN: Duration = Duration::from_secs(1200);

/// What a batch ran: every job's id (psi's too) and how long from the first submission to the
/// last end; psi's id and how long it took from its submission to its end (the scheduler's).
struct Batch {
    ids: Vec<String>,
    took: Duration,
    psi: Option<(String, Duration)>,
}

/// Submits every job through the guest (the psi job first, with `psi`), waits until all
/// ended, and checks psi intersected every id.
async fn run_batch(fed: &ProcessFederation, jobs: &[(Value, Value)], psi: bool) -> Batch {
    let began = Instant::now();
    let mut scheduler = fed.scheduler("9999");
    let psi_id = if psi {
        let id = scheduler
            .submit_job(sc::SubmitJobRequest {
                dsl: psi_dag().to_string(),
                runtime_conf: String::new(),
                request_id: String::new(),
            })
            .await
            .unwrap_or_else(|s| panic!("the psi DAG refused: {s:?}"))
            .into_inner()
            .job_id;
        Some(id)
    } else {
        None
    };
    let mut ids: Vec<String> = psi_id.iter().cloned().collect();
    for (dsl, conf) in jobs {
        ids.push(submit(&mut scheduler, dsl, conf).await.expect("accepted"));
    }
    let mut psi_took = None;
    for id in &ids {
        let is_psi = psi_id.as_ref() == Some(id);
        let within = if is_psi {
            PSI_WITHIN
        } else {
            Duration::from_secs(900)
        };
        let job = wait_ended(&mut scheduler, id, within).await;
        assert_eq!(
            job_status(job.status),
            fedflow_proto::common::v1::JobStatus::Success,
            "{job:?}\n{}",
            fed.logs()
        );
        if is_psi {
            let ms = (job.end_time_ms - job.create_time_ms).max(0) as u64;
            psi_took = Some((id.clone(), Duration::from_millis(ms)));
        }
    }
    let took = began.elapsed();
    if let Some((id, _)) = &psi_took {
        psi_intersected_every_id(fed, id).await;
    }
    Batch {
        ids,
        took,
        psi: psi_took,
    }
}

/// The same batch over the clean network, then with the host's link at 2 s ± 1 s and 5 %
/// loss: every job succeeds both times, with the services' default deadlines and retries.
/// With pyfate, FATE's psi between guest and host is one of the jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s10_a_slow_lossy_host_link_slows_jobs_down_but_fails_none() {
    let python = fate_python();
    let options = ProcessOptions {
        party_env: python.as_deref().map(fate_party_env).unwrap_or_default(),
        ..ProcessOptions::default()
    };
    let Some((fed, network)) = federation_with(Routing::Shaped, options).await else {
        return;
    };
    if python.is_some() {
        for (party, conf) in UPLOADS {
            let table = upload(&fed, party, conf).await;
            assert_eq!(table.row_count, 569, "{conf} on {party}: {table:?}");
        }
    }
    let n = if std::env::var_os("FEDFLOW_LONG_TESTS").is_some() {
        100
    } else {
        5
    };
    let jobs = s10_jobs(n);
    let clean = run_batch(&fed, &jobs, python.is_some()).await;
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
    let slow = run_batch(&fed, &jobs, python.is_some()).await;
    let ratio = |clean: Duration, slow: Duration| slow.as_secs_f64() / clean.as_secs_f64();
    let (with, psi) = match (&clean.psi, &slow.psi) {
        (Some((_, clean)), Some((_, slow))) => (
            " and FATE's psi (guest and host)",
            format!(
                "; psi on its own {clean:.1?} clean, {slow:.1?} slow: {:.1}x",
                ratio(*clean, *slow)
            ),
        ),
        _ => ("", " (no FATE psi: pyfate is not available)".to_owned()),
    };
    eprintln!(
        "S10: {n} jobs ({} Gather){with} took {:.1?} over the clean network and {:.1?} with \
         the host's link at 2 s ± 1 s and 5 % loss: {:.1}x{psi}",
        n.div_ceil(5),
        clean.took,
        slow.took,
        ratio(clean.took, slow.took)
    );
    network.restore("10000").expect("restore");
    let psi_ids: Vec<String> = [&clean.psi, &slow.psi]
        .into_iter()
        .flatten()
        .map(|(id, _)| id.clone())
        .collect();
    let (psis, all): (Vec<String>, Vec<String>) = clean
        .ids
        .into_iter()
        .chain(slow.ids)
        .partition(|id| psi_ids.contains(id));
    agreed(&fed, "9999", &all, JobStatus::Success).await;
    if !psis.is_empty() {
        // Only guest and host have psi's rows: the invariants over those two.
        let statuses = fedflow_tests::invariants::check(&fedflow_tests::invariants::Scope {
            root: fed.dir.path(),
            parties: &["9999", "10000"],
            initiator: "9999",
            jobs: &psis,
            within: Duration::from_secs(90),
        })
        .await;
        for (job, status) in statuses {
            assert_eq!(status, JobStatus::Success, "{job}\n{}", fed.logs());
        }
    }
}
