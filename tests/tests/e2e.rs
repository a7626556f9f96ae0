//! End-to-end scenarios on an in-process federation (3 parties × 4 services, SQLite in a
//! temporary directory, real worker processes), driven like a user: submit, wait, query.

use std::process::Command;
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::*;
use serde_json::json;

const PARTIES: &[&str] = &["9999", "10000", "10001"];
const WITHIN: Duration = Duration::from_secs(60);

fn cli(fed: &TestFederation, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("fedflow"))
        .arg("--scheduler")
        .arg(fed.scheduler_addr("9999"))
        .args(args)
        .output()
        .expect("run the fedflow CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diamond_of_sums_succeeds_on_every_party() {
    let fed = TestFederation::start(PARTIES).await;
    diamond_scenario(&fed).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diamond_of_sums_succeeds_with_every_service_on_postgres() {
    let Some(fed) = TestFederation::start_on_postgres(PARTIES).await else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set FEDFLOW_TEST_POSTGRES_URL"
        );
        eprintln!("FEDFLOW_TEST_POSTGRES_URL unset: PostgreSQL scenario not run");
        return;
    };
    diamond_scenario(&fed).await;
    fed.shutdown().await;
}

async fn diamond_scenario(fed: &TestFederation) {
    let conf = conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({
            "common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}},
            "role": {"host": {"0": {"a": {"value": 10}}}}
        }),
    );
    let mut scheduler = fed.scheduler("9999");
    let (job_id, job) = run_to_success(&mut scheduler, &diamond_dsl(), &conf, WITHIN).await;
    assert_eq!(job.progress, 100);
    assert!(
        job.reason.is_empty(),
        "no failure reason on success: {job:?}"
    );

    // Every task is success on every party that runs it (the parties' own rows).
    for party in PARTIES {
        let tasks = party_tasks(fed, party, &job_id).await;
        assert_eq!(
            tasks.len(),
            4,
            "party {party} runs the 4 components: {tasks:?}"
        );
        for task in &tasks {
            assert_eq!(
                task_status(task.party_status),
                TaskStatus::Success,
                "party {party} task {}: {task:?}",
                task.component
            );
        }
    }
    // And the scheduler's view agrees, federated and per party.
    let tasks = scheduler_tasks(&mut scheduler, &job_id).await;
    assert_eq!(tasks.len(), 4);
    for task in &tasks {
        assert_eq!(task_status(task.status), TaskStatus::Success, "{task:?}");
        assert_eq!(task.parties.len(), 3);
        assert!(
            task.parties
                .iter()
                .all(|p| task_status(p.status) == TaskStatus::Success)
        );
    }
    // The job row on every party says success (synced after the scheduler decided).
    wait_party_jobs(fed, &job_id, JobStatus::Success, WITHIN).await;

    // `task output` of the sink shows the expected value: d = 4 + (2 + a) + (3 + a).
    let (ok, out, err) = cli(
        fed,
        &[
            "task", "output", "-j", &job_id, "-c", "d", "-r", "guest", "-p", "9999",
        ],
    );
    assert!(ok, "task output failed: {err}");
    assert_eq!(out.trim(), r#"{"value":11}"#);
    let (ok, out, err) = cli(
        fed,
        &[
            "task", "output", "-j", &job_id, "-c", "d", "-r", "host", "-p", "10000",
        ],
    );
    assert!(ok, "task output failed: {err}");
    assert_eq!(out.trim(), r#"{"value":29}"#);
    // Asked of a non-initiator party's scheduler, the query is forwarded to the job's.
    let mut host_scheduler = fed.scheduler("10000");
    let forwarded = get_job(&mut host_scheduler, &job_id)
        .await
        .expect("forwarded query");
    assert_eq!(job_status(forwarded.status), JobStatus::Success);
    // Resources are back everywhere.
    for party in PARTIES {
        let resources = fed
            .job_controller(party)
            .get_resources(jc::GetResourcesRequest {})
            .await
            .expect("resources")
            .into_inner();
        assert!(
            resources.allocations.is_empty(),
            "party {party}: {resources:?}"
        );
    }
    let (ok, out, _) = cli(fed, &["--json", "job", "query", "-j", &job_id]);
    assert!(ok);
    let shown: serde_json::Value = serde_json::from_str(out.trim()).expect("json output");
    assert_eq!(shown["status"], "success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_on_the_host_fails_the_job_everywhere_with_its_reason() {
    let fed = TestFederation::start(PARTIES).await;
    let dsl = json!({"components": {
        "prepare": {"module": "Sleep", "output": {"data": ["ready"]}},
        "train": {"module": "Fail", "input": {"data": {"train_data": ["prepare.ready"]}},
                  "output": {"model": ["model"]}},
        "evaluate": {"module": "Sum", "input": {"model": ["train.model"]}, "output": {"data": ["total"]}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"train": {"message": "host data has no label column", "roles": ["host"]}}}),
    );
    let mut scheduler = fed.scheduler("9999");
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Failed, "job: {job:?}");
    for needle in ["host", "10000", "train", "host data has no label column"] {
        assert!(
            job.reason.contains(needle),
            "reason {:?} lacks {needle:?}",
            job.reason
        );
    }
    wait_party_jobs(&fed, &job_id, JobStatus::Failed, WITHIN).await;
    for party in PARTIES {
        let tasks = party_tasks(&fed, party, &job_id).await;
        let evaluate = tasks
            .iter()
            .find(|t| t.component == "evaluate")
            .expect("evaluate has a row on every party");
        assert_eq!(
            evaluate.start_time_ms, 0,
            "evaluate never started on {party}: {evaluate:?}"
        );
        assert_eq!(evaluate.pid, 0, "no worker for evaluate on {party}");
        assert_ne!(task_status(evaluate.party_status), TaskStatus::Success);
        assert_ne!(task_status(evaluate.party_status), TaskStatus::Running);
    }
    let train = party_task(&fed, "10000", &job_id, "train").await;
    assert_eq!(task_status(train.party_status), TaskStatus::Failed);
    assert_eq!(train.reason, "host data has no label column");
    let (ok, out, _) = cli(&fed, &["job", "query", "-j", &job_id]);
    assert!(ok);
    assert!(
        out.contains("failed") && out.contains("host data has no label column"),
        "{out}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn need_run_false_passes_on_that_party_and_the_job_succeeds() {
    let fed = TestFederation::start(PARTIES).await;
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({
            "common": {"a": {"value": 1}},
            "role": {"arbiter": {"0": {"b": {"need_run": false}}}}
        }),
    );
    let mut scheduler = fed.scheduler("9999");
    let (job_id, _) = run_to_success(&mut scheduler, &diamond_dsl(), &conf, WITHIN).await;
    let arbiter = party_tasks(&fed, "10001", &job_id).await;
    let b = arbiter
        .iter()
        .find(|t| t.component == "b")
        .expect("b on the arbiter");
    assert_eq!(task_status(b.party_status), TaskStatus::Pass, "{b:?}");
    assert_eq!(b.pid, 0, "a passed task starts no worker");
    for party in ["9999", "10000"] {
        let tasks = party_tasks(&fed, party, &job_id).await;
        let b = tasks.iter().find(|t| t.component == "b").expect("b");
        assert_eq!(
            task_status(b.party_status),
            TaskStatus::Success,
            "party {party}"
        );
    }
    // The arbiter's d adds only c's output (b passed): 0 + (0 + 1) = 1.
    let (ok, out, err) = cli(
        &fed,
        &[
            "task", "output", "-j", &job_id, "-c", "d", "-r", "arbiter", "-p", "10001",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), r#"{"value":1}"#);
    wait_party_jobs(&fed, &job_id, JobStatus::Success, WITHIN).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_blocked_on_one_party_does_not_hold_up_jobs_behind_it() {
    let fed = TestFederation::start_with_host_cores(PARTIES, 2).await;
    let mut scheduler = fed.scheduler("9999");
    let sleep = json!({"components": {"nap": {"module": "Sleep"}}});
    let nap = |cores: u32, seconds: u32| {
        conf3(
            json!({"common": {"task_cores": cores}}),
            json!({"common": {"nap": {"seconds": seconds}}}),
        )
    };
    // A long job takes both of the host's cores.
    let holder = submit(&mut scheduler, &sleep, &nap(2, 600))
        .await
        .expect("holder accepted");
    eventually("the holder to run", WITHIN, || {
        let mut s = scheduler.clone();
        let id = holder.clone();
        async move {
            let job = get_job(&mut s, &id).await?;
            (job_status(job.status) == JobStatus::Running)
                .then_some(())
                .ok_or(format!("{job:?}"))
        }
    })
    .await;
    // The next job needs host cores too: it must wait, saying why.
    let blocked = submit(&mut scheduler, &sleep, &nap(1, 0))
        .await
        .expect("blocked job accepted");
    // A job without the host can run at once, although it was queued after.
    let free_conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "arbiter": [10001]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {"common": {"nap": {"seconds": 0}}}
    });
    let free = submit(&mut scheduler, &sleep, &free_conf)
        .await
        .expect("free job accepted");
    let done = wait_ended(&mut scheduler, &free, WITHIN).await;
    assert_eq!(job_status(done.status), JobStatus::Success, "{done:?}");
    let waiting = get_job(&mut scheduler, &blocked).await.expect("query");
    assert_eq!(
        job_status(waiting.status),
        JobStatus::Waiting,
        "{waiting:?}"
    );
    assert!(
        waiting
            .pending_reason
            .contains("party 10000 (host) lacks cores: requested 1, free 0 of 2"),
        "pending reason: {:?}",
        waiting.pending_reason
    );
    let (ok, out, _) = cli(&fed, &["job", "query", "-j", &blocked]);
    assert!(ok);
    assert!(
        out.contains("waiting:") && out.contains("party 10000 (host) lacks cores"),
        "{out}"
    );
    // Stopping the holder frees the host: the blocked job runs and succeeds.
    let (ok, out, err) = cli(&fed, &["job", "stop", "-j", &holder]);
    assert!(ok, "{err}");
    assert!(out.contains("stopping"), "{out}");
    let stopped = wait_ended(&mut scheduler, &holder, WITHIN).await;
    assert_eq!(job_status(stopped.status), JobStatus::Canceled);
    let unblocked = wait_ended(&mut scheduler, &blocked, WITHIN).await;
    assert_eq!(
        job_status(unblocked.status),
        JobStatus::Success,
        "{unblocked:?}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_submissions_are_refused_naming_the_field_and_store_nothing() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let ok_conf = conf3(json!({"common": {}}), json!({"common": {}}));
    let mut cases: Vec<(&str, String, String, &str)> = Vec::new();
    let mut add = |name: &'static str,
                   dsl: serde_json::Value,
                   conf: serde_json::Value,
                   field: &'static str| {
        cases.push((name, dsl.to_string(), conf.to_string(), field));
    };
    // One value set in the diamond (or else in a valid conf), and what the refusal names.
    let edits: [(&str, bool, &[&str], serde_json::Value, &str); 8] = [
        (
            "unknown upstream",
            true,
            &["components", "d", "input", "data", "data"],
            json!(["x.out"]),
            "dsl.components.d.input.data.data",
        ),
        (
            "unknown output",
            true,
            &["components", "d", "input", "data", "data"],
            json!(["b.nope"]),
            "declares no data output \"nope\"",
        ),
        (
            "cycle",
            true,
            &["components", "a", "input"],
            json!({"data": {"data": ["d.out"]}}),
            "cycle a -> b -> d -> a",
        ),
        (
            "malformed name",
            true,
            &["components", "b c"],
            json!({"module": "Sum"}),
            "dsl.components.b c",
        ),
        (
            "unknown module",
            true,
            &["components", "a", "module"],
            json!("HeteroLR"),
            "dsl.components.a.module",
        ),
        (
            "role without parties",
            false,
            &["role", "host"],
            json!([]),
            "runtime_conf.role.host: no parties",
        ),
        (
            "initiator not a party",
            false,
            &["initiator", "party_id"],
            json!(12345),
            "runtime_conf.initiator",
        ),
        (
            "bad parameter",
            false,
            &["component_parameters", "common", "a"],
            json!({"value": "one"}),
            "parameter value",
        ),
    ];
    for (name, in_dsl, path, value, field) in edits {
        let (mut dsl, mut conf) = (diamond_dsl(), ok_conf.clone());
        let edited = if in_dsl { &mut dsl } else { &mut conf };
        *path.iter().fold(edited, |v, key| &mut v[*key]) = value;
        add(name, dsl, conf, field);
    }
    let big =
        json!({"components": {"a": {"module": "Sum", "output": {"data": ["x".repeat(2 << 20)]}}}});
    add("oversized", big, ok_conf.clone(), "dsl: too large");
    let mut dsl_5mib = diamond_dsl();
    dsl_5mib["components"]["a"]["pad"] = json!("x".repeat(5 << 20));
    add("5 MiB DSL", dsl_5mib, ok_conf.clone(), "dsl: too large");
    let many: serde_json::Map<String, serde_json::Value> = (0..10_000)
        .map(|i| (format!("c{i}"), json!({"module": "Sum"})))
        .collect();
    add(
        "10,000 components",
        json!({ "components": many }),
        ok_conf.clone(),
        "dsl.components: 10000 components, at most 500",
    );
    // Nesting 100,000 deep, as text: such a value could not be built (nor dropped) here.
    let deep = "[".repeat(100_000);
    cases.push((
        "DSL nested 100,000 deep",
        deep.clone(),
        ok_conf.to_string(),
        "dsl: nested too deeply",
    ));
    cases.push((
        "conf nested 100,000 deep",
        diamond_dsl().to_string(),
        deep.clone(),
        "runtime_conf: nested too deeply",
    ));
    let mut params_conf = ok_conf.clone();
    params_conf["component_parameters"]["common"]["a"] = json!({"value": "DEEP"});
    cases.push((
        "parameters nested 100,000 deep",
        diamond_dsl().to_string(),
        params_conf.to_string().replace("\"DEEP\"", &deep),
        "runtime_conf: nested too deeply",
    ));
    // A DSL with duplicate component names is refused too (JSON keys are checked).
    cases.push((
        "duplicate names",
        r#"{"components": {"a": {"module": "Sum"}, "a": {"module": "Sleep"}}}"#.into(),
        ok_conf.to_string(),
        "duplicate key \"components.a\"",
    ));
    for (name, dsl, conf, field) in &cases {
        let status = scheduler
            .submit_job(sc::SubmitJobRequest {
                dsl: dsl.clone(),
                runtime_conf: conf.clone(),
                request_id: String::new(),
            })
            .await
            .expect_err(name);
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{name}: {status:?}"
        );
        assert!(
            status.message().contains(field),
            "{name}: {:?} lacks {field:?}",
            status.message()
        );
    }
    // Nothing was stored: no job at the scheduler, no allocation or task directory anywhere.
    assert_nothing_stored(&fed, "9999").await;
    fed.shutdown().await;
}
