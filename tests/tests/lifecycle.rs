//! Stop, rerun, automatic retries, time limits, dead and hung workers, watch and priority, on
//! an in-process federation with real worker processes.

use std::process::Command;
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::*;
use serde_json::{Value, json};

const PARTIES: &[&str] = &["9999", "10000", "10001"];
const WITHIN: Duration = Duration::from_secs(60);

fn chain(modules: &[(&str, &str)]) -> Value {
    let mut components = serde_json::Map::new();
    for (i, (name, module)) in modules.iter().enumerate() {
        let mut c = json!({"module": module, "output": {"data": ["out"]}});
        if i > 0 {
            c["input"] = json!({"data": {"data": [format!("{}.out", modules[i - 1].0)]}});
        }
        components.insert((*name).to_owned(), c);
    }
    json!({ "components": components })
}

async fn running(
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    job_id: &str,
) {
    eventually(&format!("job {job_id} to run"), WITHIN, || {
        let mut s = scheduler.clone();
        async move {
            let job = get_job(&mut s, job_id).await?;
            (job_status(job.status) == JobStatus::Running)
                .then_some(())
                .ok_or(format!(
                    "{:?} {}",
                    job_status(job.status),
                    job.pending_reason
                ))
        }
    })
    .await;
}

async fn stop(
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    job_id: &str,
) -> sc::StopJobResponse {
    scheduler
        .stop_job(sc::StopJobRequest {
            job_id: job_id.to_owned(),
            request_id: String::new(),
        })
        .await
        .expect("stop")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_cancels_every_party_within_seconds_and_leaves_no_worker() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["out"]}},
        "b": {"module": "Sleep", "output": {"data": ["out"]}},
        "c": {"module": "Sleep", "input": {"data": {"data": ["a.out", "b.out"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({"common": {"a": {"seconds": 60}, "b": {"seconds": 60}, "c": {"seconds": 60}}}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    // Six workers (a and b on three parties) are up.
    eventually("six workers of the job", WITHIN, || async {
        let found = processes_mentioning(&job_id);
        (found.len() == 6).then_some(()).ok_or(format!("{found:?}"))
    })
    .await;
    let started = tokio::time::Instant::now();
    let reply = stop(&mut scheduler, &job_id).await;
    assert!(reply.message.contains("stopping"), "{reply:?}");
    wait_party_jobs(&fed, &job_id, JobStatus::Canceled, Duration::from_secs(5)).await;
    wait_party_tasks(
        &fed,
        &job_id,
        "every task canceled",
        Duration::from_secs(5),
        3,
        |tasks| {
            tasks
                .iter()
                .all(|t| task_status(t.party_status) == TaskStatus::Canceled)
        },
    )
    .await;
    let left = processes_mentioning(&job_id);
    assert!(left.is_empty(), "workers left after stop: {left:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let job = get_job(&mut scheduler, &job_id).await.expect("query");
    assert_eq!(job_status(job.status), JobStatus::Canceled);
    // The parties' reports of their canceled tasks reach the scheduler through the outbox.
    eventually(
        "every task canceled at the scheduler",
        Duration::from_secs(5),
        || {
            let mut scheduler = scheduler.clone();
            let job_id = job_id.clone();
            async move {
                let tasks = scheduler_tasks(&mut scheduler, &job_id).await;
                (tasks.len() == 3
                    && tasks
                        .iter()
                        .all(|t| task_status(t.status) == TaskStatus::Canceled))
                .then_some(())
                .ok_or(format!("{} tasks (want 3): {tasks:?}", tasks.len()))
            }
        },
    )
    .await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_from_another_party_works_and_repeated_stops_say_so() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 60}}}),
    );
    let job_id = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &conf)
        .await
        .expect("accepted");
    running(&mut scheduler, &job_id).await;
    let mut host = fed.scheduler("10000");
    let reply = stop(&mut host, &job_id).await;
    assert!(reply.message.contains("stopping"), "{reply:?}");
    wait_party_jobs(&fed, &job_id, JobStatus::Canceled, Duration::from_secs(10)).await;
    let again = stop(&mut host, &job_id).await;
    assert_eq!(again.message, "job already ended: canceled");
    assert_eq!(job_status(again.status), JobStatus::Canceled);
    eventually("no worker left", Duration::from_secs(5), || async {
        processes_mentioning(&job_id)
            .is_empty()
            .then_some(())
            .ok_or("workers".to_owned())
    })
    .await;
    // A job that succeeded: stop is a no-op that says so.
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 0}}}),
    );
    let done = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &conf)
        .await
        .expect("accepted");
    wait_ended(&mut scheduler, &done, WITHIN).await;
    let noop = stop(&mut scheduler, &done).await;
    assert_eq!(noop.message, "job already ended: success");
    assert_eq!(
        job_status(get_job(&mut scheduler, &done).await.expect("q").status),
        JobStatus::Success
    );
    fed.shutdown().await;
}

/// Waits until the job's one task has ended with one status everywhere, and returns it: the
/// scheduler's federated status is an end status, every party holds exactly one row of the
/// task, that row carries the same federated status, and its own status is the one the
/// scheduler recorded for that party. (A party's own status may differ from the federated
/// one: a party whose task succeeded before the stop reached it keeps its success, terminal
/// statuses being absorbing, while the federated status is canceled.)
async fn one_status_everywhere(
    fed: &TestFederation,
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    job_id: &str,
    round: u64,
) -> TaskStatus {
    eventually(
        &format!("round {round}: one status for task a everywhere"),
        Duration::from_secs(10),
        || {
            let mut scheduler = scheduler.clone();
            async move {
                let tasks = scheduler_tasks(&mut scheduler, job_id).await;
                let [task] = tasks.as_slice() else {
                    return Err(format!(
                        "{} scheduler tasks (want 1): {tasks:?}",
                        tasks.len()
                    ));
                };
                let federated = task_status(task.status);
                let mut seen = vec![format!("federated {federated:?}")];
                let mut agree = matches!(
                    federated,
                    TaskStatus::Success | TaskStatus::Canceled | TaskStatus::Failed
                ) && task.parties.len() == PARTIES.len();
                for party in PARTIES {
                    let recorded = task
                        .parties
                        .iter()
                        .find(|p| p.party_id == *party)
                        .map(|p| task_status(p.status));
                    let rows = party_tasks(fed, party, job_id).await;
                    seen.push(format!(
                        "{party}: scheduler records {recorded:?}, rows (own, federated) {:?}",
                        rows.iter()
                            .map(|t| (task_status(t.party_status), task_status(t.status)))
                            .collect::<Vec<_>>()
                    ));
                    agree &= rows.len() == 1
                        && task_status(rows[0].status) == federated
                        && Some(task_status(rows[0].party_status)) == recorded;
                }
                agree.then_some(federated).ok_or(seen.join("; "))
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stop_racing_the_last_success_ends_in_one_status_everywhere() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    for round in 0..20u64 {
        let conf = conf3(
            json!({"common": {"task_cores": 1}}),
            json!({"common": {"a": {"seconds": 0.05}}}),
        );
        let job_id = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &conf)
            .await
            .expect("accepted");
        tokio::time::sleep(Duration::from_millis(20 + (round * 7) % 80)).await;
        stop(&mut scheduler, &job_id).await;
        let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
        let end = job_status(job.status);
        assert!(
            matches!(end, JobStatus::Success | JobStatus::Canceled),
            "round {round}: {job:?}"
        );
        wait_party_jobs(&fed, &job_id, end, Duration::from_secs(10)).await;
        let federated = one_status_everywhere(&fed, &mut scheduler, &job_id, round).await;
        if end == JobStatus::Success {
            assert_eq!(federated, TaskStatus::Success, "round {round}");
        }
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerun_after_a_failure_reruns_the_failed_component_and_its_descendants_only() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = chain(&[
        ("c1", "Sum"),
        ("c2", "Sum"),
        ("c3", "Fail"),
        ("c4", "Sum"),
        ("c5", "Sum"),
    ]);
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"c1": {"value": 1}, "c3": {"attempts": 1, "message": "first try fails"}}}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    let failed = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(failed.status), JobStatus::Failed, "{failed:?}");
    assert!(
        failed.reason.contains("c3") && failed.reason.contains("first try fails"),
        "{failed:?}"
    );
    let (ok, out, err) = {
        let out = Command::new(bin("fedflow"))
            .args([
                "--scheduler",
                &fed.scheduler_addr("9999"),
                "job",
                "rerun",
                "-j",
                &job_id,
            ])
            .output()
            .expect("cli");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(ok, "{err}");
    assert!(out.contains("c3, c4, c5"), "{out}");
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Success, "{job:?}");
    let tasks = scheduler_tasks(&mut scheduler, &job_id).await;
    let versions = |c: &str| -> Vec<i32> {
        tasks
            .iter()
            .filter(|t| t.component == c)
            .map(|t| t.version)
            .collect()
    };
    assert_eq!(versions("c1"), [0]);
    assert_eq!(versions("c2"), [0]);
    for c in ["c3", "c4", "c5"] {
        assert_eq!(versions(c), [0, 1], "{c}");
    }
    for party in PARTIES {
        let rows = party_tasks(&fed, party, &job_id).await;
        let v1: Vec<&str> = rows
            .iter()
            .filter(|t| t.version == 1)
            .map(|t| t.component.as_str())
            .collect();
        assert_eq!(v1, ["c3", "c4", "c5"], "party {party}");
        assert!(
            rows.iter()
                .filter(|t| t.version == 1)
                .all(|t| task_status(t.party_status) == TaskStatus::Success)
        );
    }
    // Upstream results were kept: c5 = c4 = c3's successors of c2 = c1 = 1.
    let output = task_output(&mut scheduler, &job_id, "c5", ("guest", "9999")).await;
    assert_eq!(output.version, 1);
    wait_party_jobs(&fed, &job_id, JobStatus::Success, WITHIN).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn automatic_retries_honour_the_delay_and_keep_every_reason() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let params = json!({"common": {"task_cores": 1, "auto_retries": 2, "auto_retry_delay": 1}});
    let conf = conf3(
        params.clone(),
        json!({"common": {"f": {"attempts": 2, "message": "flaky", "roles": ["host"]}}}),
    );
    let (job_id, _) = run_to_success(&mut scheduler, &chain(&[("f", "Fail")]), &conf, WITHIN).await;
    let tasks = scheduler_tasks(&mut scheduler, &job_id).await;
    assert_eq!(
        tasks.iter().map(|t| t.version).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for pair in tasks.windows(2) {
        let gap = pair[1].start_time_ms - pair[0].end_time_ms;
        assert!(
            gap >= 1000,
            "version {} started {gap} ms after {} ended",
            pair[1].version,
            pair[0].version
        );
    }
    for old in &tasks[..2] {
        assert_eq!(task_status(old.status), TaskStatus::Failed);
        let host = old
            .parties
            .iter()
            .find(|p| p.role == "host")
            .expect("host row");
        assert_eq!(host.reason, "flaky");
    }
    // With more failing attempts than retries, the job fails after three versions.
    let conf = conf3(
        params,
        json!({"common": {"f": {"attempts": 5, "message": "broken", "roles": ["host"]}}}),
    );
    let job_id = submit(&mut scheduler, &chain(&[("f", "Fail")]), &conf)
        .await
        .expect("accepted");
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Failed, "{job:?}");
    assert!(
        job.reason.contains("broken") && job.reason.contains("attempt 3"),
        "{job:?}"
    );
    let tasks = scheduler_tasks(&mut scheduler, &job_id).await;
    assert_eq!(tasks.len(), 3);
    for t in &tasks {
        let host = t
            .parties
            .iter()
            .find(|p| p.role == "host")
            .expect("host row");
        assert_eq!(host.reason, "broken", "version {}", t.version);
    }
    wait_party_jobs(&fed, &job_id, JobStatus::Failed, WITHIN).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn task_job_and_queue_time_limits_end_the_job_as_timeout() {
    let fed = TestFederation::start_with_host_cores(PARTIES, 1).await;
    let mut scheduler = fed.scheduler("9999");
    let sleepy = json!({"common": {"a": {"seconds": 60}}});
    let cases = [
        (
            json!({"common": {"task_cores": 1, "task_timeout": 1}}),
            "task_timeout",
        ),
        (
            json!({"common": {"task_cores": 1, "timeout": 1}}),
            "timeout, counted from the job's start",
        ),
    ];
    for (params, limit) in cases {
        let job_id = submit(
            &mut scheduler,
            &chain(&[("a", "Sleep")]),
            &conf3(params, sleepy.clone()),
        )
        .await
        .expect("accepted");
        let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(20)).await;
        assert_eq!(job_status(job.status), JobStatus::Timeout, "{job:?}");
        assert!(
            job.reason.contains(limit),
            "reason {:?} names {limit}",
            job.reason
        );
        wait_party_jobs(&fed, &job_id, JobStatus::Timeout, Duration::from_secs(10)).await;
        eventually("no worker left", Duration::from_secs(5), || async {
            let left = processes_mentioning(&job_id);
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        })
        .await;
    }
    // Queue timeout: the host's only core is held; a job that may wait 1 s times out.
    let holder = submit(
        &mut scheduler,
        &chain(&[("a", "Sleep")]),
        &conf3(json!({"common": {"task_cores": 1}}), sleepy.clone()),
    )
    .await
    .expect("accepted");
    running(&mut scheduler, &holder).await;
    let queued = submit(
        &mut scheduler,
        &chain(&[("a", "Sleep")]),
        &conf3(
            json!({"common": {"task_cores": 1, "queue_timeout": 1}}),
            sleepy,
        ),
    )
    .await
    .expect("accepted");
    let job = wait_ended(&mut scheduler, &queued, Duration::from_secs(20)).await;
    assert_eq!(job_status(job.status), JobStatus::Timeout, "{job:?}");
    assert!(
        job.reason.contains("queue_timeout")
            && job.reason.contains("party 10000 (host) lacks cores"),
        "{job:?}"
    );
    wait_party_jobs(&fed, &queued, JobStatus::Timeout, Duration::from_secs(10)).await;
    stop(&mut scheduler, &holder).await;
    wait_ended(&mut scheduler, &holder, WITHIN).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_and_hung_workers_are_detected_within_the_heartbeat_timeout() {
    let fed = TestFederation::start_with(PARTIES, |o| {
        o.heartbeat_interval_ms = 200;
        o.heartbeat_timeout_ms = 1500;
    })
    .await;
    let mut scheduler = fed.scheduler("9999");
    for (sig, expected) in [("KILL", "worker lost"), ("STOP", "worker unresponsive")] {
        let conf = conf3(
            json!({"common": {"task_cores": 1}}),
            json!({"common": {"a": {"seconds": 60}}}),
        );
        let job_id = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &conf)
            .await
            .expect("accepted");
        let pid = eventually("the host's worker", WITHIN, || {
            let fed = &fed;
            let job_id = job_id.clone();
            async move {
                let rows = party_tasks(fed, "10000", &job_id).await;
                rows.first()
                    .filter(|t| t.pid != 0 && task_status(t.party_status) == TaskStatus::Running)
                    .map(|t| t.pid)
                    .ok_or(format!("{rows:?}"))
            }
        })
        .await;
        signal(pid, sig);
        let signalled = tokio::time::Instant::now();
        let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(10)).await;
        let took = signalled.elapsed();
        assert_eq!(job_status(job.status), JobStatus::Failed, "{job:?}");
        assert!(
            job.reason.contains(expected) && job.reason.contains("10000"),
            "{sig}: {job:?}"
        );
        assert!(
            took <= Duration::from_millis(1500 + 1000),
            "{sig} detected after {took:?}"
        );
        let rows = party_tasks(&fed, "10000", &job_id).await;
        assert_eq!(rows.len(), 1, "one version only: {rows:?}");
        assert_eq!(rows[0].pid, pid, "no second worker for the version");
        eventually("no worker left", Duration::from_secs(5), || async {
            let left = processes_mentioning(&job_id);
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        })
        .await;
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_watch_prints_every_party_status_and_ends_with_the_final_status() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 1}}}),
    );
    let job_id = submit(
        &mut scheduler,
        &chain(&[("a", "Sleep"), ("b", "Sum")]),
        &conf,
    )
    .await
    .expect("accepted");
    let out = tokio::task::spawn_blocking({
        let addr = fed.scheduler_addr("9999");
        let job_id = job_id.clone();
        move || {
            Command::new(bin("fedflow"))
                .args(["--scheduler", &addr, "job", "watch", "-j", &job_id])
                .output()
                .expect("cli")
        }
    })
    .await
    .expect("watch");
    let text = succeeded(&out);
    for party in ["guest 9999", "host 10000", "arbiter 10001"] {
        for component in ["a", "b"] {
            assert!(
                text.contains(&format!("{component} v0 [{party}] running")),
                "{component} {party}:\n{text}"
            );
            assert!(
                text.contains(&format!("{component} v0 [{party}] success")),
                "{component} {party}:\n{text}"
            );
        }
    }
    assert!(
        text.trim_end().ends_with(&format!("job {job_id} success")),
        "{text}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn higher_priority_jobs_leave_the_queue_first() {
    let fed = TestFederation::start_with_host_cores(PARTIES, 1).await;
    let mut scheduler = fed.scheduler("9999");
    let sleep = |secs: f64, priority: i64| {
        conf3(
            json!({"common": {"task_cores": 1, "priority": priority}}),
            json!({"common": {"a": {"seconds": secs}}}),
        )
    };
    let holder = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &sleep(60.0, 0))
        .await
        .expect("holder");
    running(&mut scheduler, &holder).await;
    let low = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &sleep(0.2, 0))
        .await
        .expect("low");
    let high = submit(&mut scheduler, &chain(&[("a", "Sleep")]), &sleep(0.2, 10))
        .await
        .expect("high");
    stop(&mut scheduler, &holder).await;
    let low_job = wait_ended(&mut scheduler, &low, WITHIN).await;
    let high_job = wait_ended(&mut scheduler, &high, WITHIN).await;
    assert_eq!(job_status(low_job.status), JobStatus::Success);
    assert_eq!(job_status(high_job.status), JobStatus::Success);
    assert!(
        high_job.start_time_ms < low_job.start_time_ms,
        "high started {} , low {}",
        high_job.start_time_ms,
        low_job.start_time_ms
    );
    assert!(
        high_job.end_time_ms <= low_job.start_time_ms,
        "one at a time on the host"
    );
    fed.shutdown().await;
}
