//! Rolling restarts: every service of every party is stopped (SIGTERM, as an orchestrator does)
//! and started again, one at a time, while jobs are submitted at a steady rate. No job may fail
//! because of it: each ends `success` on every party, and the crash tests' invariants hold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fedflow_core::JobStatus;
use fedflow_proto::common::v1::JobStatus as WireStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::process::ProcessFederation;
use fedflow_tests::*;
use serde_json::json;
use tokio::sync::Mutex;

/// The order a deployment restarts a party's services in.
const SERVICES: [&str; 4] = [
    "fedflow-party-gateway",
    "fedflow-job-controller",
    "fedflow-task-controller",
    "fedflow-scheduler",
];

/// Submits a two-task job (a sleep, then a shorter one) every `every`, until `stop`; a submit
/// that fails (the scheduler is restarting) is tried again with the same request id, so a
/// submit whose reply was lost is not a second job.
fn steady_load(
    scheduler: sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    jobs: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let dsl = json!({"components": {
        "first": {"module": "Sleep", "output": {"data": ["o"]}},
        "second": {"module": "Sleep", "input": {"data": {"data": ["first.o"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"first": {"seconds": 0.4}, "second": {"seconds": 0.1}}}),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            n += 1;
            let request = sc::SubmitJobRequest {
                dsl: dsl.to_string(),
                runtime_conf: conf.to_string(),
                request_id: format!("rolling-{n}"),
            };
            let job_id = eventually(
                &format!("submit {n} to be accepted"),
                Duration::from_secs(60),
                || {
                    let mut scheduler = scheduler.clone();
                    let request = request.clone();
                    async move {
                        scheduler
                            .submit_job(request)
                            .await
                            .map(|r| r.into_inner().job_id)
                            .map_err(|s| format!("{s:?}"))
                    }
                },
            )
            .await;
            jobs.lock().await.push(job_id);
        }
    })
}

/// Waits until a job submitted after `since` jobs were has succeeded: the federation makes
/// progress with the service just restarted.
async fn progress(
    scheduler: &sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    jobs: &Arc<Mutex<Vec<String>>>,
    since: usize,
    what: &str,
) {
    eventually(what, Duration::from_secs(90), || {
        let scheduler = scheduler.clone();
        let jobs = jobs.clone();
        async move {
            let later: Vec<String> = jobs.lock().await.iter().skip(since).cloned().collect();
            for job_id in later {
                let mut scheduler = scheduler.clone();
                if let Ok(job) = get_job(&mut scheduler, &job_id).await {
                    match job_status(job.status) {
                        WireStatus::Success => return Ok(()),
                        WireStatus::Failed | WireStatus::Canceled | WireStatus::Timeout => {
                            return Err(format!("FAILED: {job_id} ended {job:?}"));
                        }
                        _ => {}
                    }
                }
            }
            Err("no later job has succeeded yet".to_owned())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_restarted_one_at_a_time_under_load_fails_no_job() {
    let parties = ["9999", "10000", "10001"];
    let mut fed = ProcessFederation::start(&parties).await;
    let scheduler = fed.scheduler("9999");
    let jobs = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let load = steady_load(
        scheduler.clone(),
        jobs.clone(),
        stop.clone(),
        Duration::from_millis(500),
    );
    progress(&scheduler, &jobs, 0, "a first job to succeed").await;

    for party in parties {
        for service in SERVICES {
            fed.signal(party, service, "TERM");
            eventually(
                &format!("{party} {service} to exit on SIGTERM"),
                Duration::from_secs(30),
                || {
                    let exited = fed.exited(party, service);
                    async move {
                        if exited {
                            Ok(())
                        } else {
                            Err("running".to_owned())
                        }
                    }
                },
            )
            .await;
            fed.restart(party, service).await;
            let since = jobs.lock().await.len();
            progress(
                &scheduler,
                &jobs,
                since,
                &format!("a job submitted after {party} {service} restarted to succeed"),
            )
            .await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    load.await.expect("the load ran to its end");

    let jobs = jobs.lock().await.clone();
    assert!(jobs.len() >= 12, "a steady load ran: {} jobs", jobs.len());
    let statuses = fed
        .check_invariants("9999", &jobs, Duration::from_secs(120))
        .await;
    for (job, status) in &statuses {
        assert_eq!(*status, JobStatus::Success, "{job}\n{}", fed.logs());
    }
    eprintln!(
        "{} jobs ran through {} restarts",
        jobs.len(),
        parties.len() * SERVICES.len()
    );
}

/// A submit that finds a participant's gateway down (restarting) keeps asking it to create the
/// job until it is back, instead of failing the job at once: the job then runs to success.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_submitted_while_a_hosts_gateway_restarts_waits_for_it() {
    let mut fed = ProcessFederation::start(&["9999", "10000", "10001"]).await;
    let gateway = "fedflow-party-gateway";
    fed.signal("10000", gateway, "TERM");
    eventually(
        "the host's gateway to exit on SIGTERM",
        Duration::from_secs(30),
        || {
            let exited = fed.exited("10000", gateway);
            async move {
                if exited {
                    Ok(())
                } else {
                    Err("running".to_owned())
                }
            }
        },
    )
    .await;
    let mut scheduler = fed.scheduler("9999");
    let submitting = {
        let mut scheduler = scheduler.clone();
        tokio::spawn(async move {
            submit(&mut scheduler, &diamond_dsl(), &conf3(
                json!({"common": {"task_cores": 1}}),
                json!({"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}}}),
            ))
            .await
        })
    };
    // The job is stored at the initiator, its creation on the host not answered yet.
    eventually(
        "the job to be stored, not yet created everywhere",
        Duration::from_secs(30),
        || {
            let mut scheduler = scheduler.clone();
            async move {
                let jobs = scheduler
                    .list_jobs(sc::ListJobsRequest {
                        limit: 10,
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| format!("{s:?}"))?
                    .into_inner()
                    .jobs;
                match jobs.as_slice() {
                    [job] if !is_end(job.status) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    // Down for longer than one call's own retries (about 0.75 s) take.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!submitting.is_finished(), "the submit waits for the host");
    fed.restart("10000", gateway).await;
    let job_id = submitting
        .await
        .expect("the submit ran")
        .unwrap_or_else(|s| panic!("submit failed instead of waiting: {s:?}\n{}", fed.logs()));
    let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(90)).await;
    assert_eq!(
        job_status(job.status),
        WireStatus::Success,
        "{job:?}\n{}",
        fed.logs()
    );
    fed.check_invariants("9999", &[job_id], Duration::from_secs(60))
        .await;
}
