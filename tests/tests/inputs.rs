//! Hostile inputs, driven like a user (or an attacker on the party's network) against a real
//! in-process federation with real worker processes: forged and stale worker reports, ids that
//! try to name paths, symlinks planted in the work root, and shell metacharacters in
//! parameters. Each test checks what the services answer, what they stored, and what is on
//! disk.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_tests::*;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

const PARTIES: &[&str] = &["9999", "10000"];
const WITHIN: Duration = Duration::from_secs(15);

/// Ids that try to name a path or break out of one, each with a label for messages.
fn hostile_ids() -> Vec<(&'static str, String)> {
    vec![
        ("parent then name", "../x".to_owned()),
        ("slash", "a/b".to_owned()),
        ("parent", "..".to_owned()),
        ("NUL byte", "a\0b".to_owned()),
        ("300 characters", "x".repeat(300)),
    ]
}

/// A 2-party conf (guest 9999 initiates, host 10000).
fn conf2(job_parameters: Value, component_parameters: Value) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": job_parameters,
        "component_parameters": component_parameters,
    })
}

/// A 1-party conf (guest 9999).
fn conf1(component_parameters: Value) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": component_parameters,
    })
}

fn worker_api(fed: &TestFederation, party: &str) -> tc::worker_client::WorkerClient<Channel> {
    let addr = fed
        .federation
        .party(party)
        .expect("the party is in the federation")
        .task_controller;
    tc::worker_client::WorkerClient::new(channel(addr))
}

/// `<data dir>/<party>/jobs/<job>/<role>/<party>/<component>/<version>`, as the engine builds
/// it (not resolved).
fn task_dir(
    fed: &TestFederation,
    party: &str,
    role: &str,
    job_id: &str,
    component: &str,
    version: i32,
) -> PathBuf {
    fed.dir
        .path()
        .join(party)
        .join("jobs")
        .join(job_id)
        .join(role)
        .join(party)
        .join(component)
        .join(version.to_string())
}

/// The token the task-controller gave an attempt, read from its `task.json` (how the worker
/// itself gets it).
fn token_of(dir: &Path) -> String {
    let text = std::fs::read(dir.join("task.json")).expect("the attempt's task.json");
    let config: Value = serde_json::from_slice(&text).expect("task.json is JSON");
    let token = config["token"].as_str().expect("a token in task.json");
    assert!(!token.is_empty(), "empty token in {}", dir.display());
    token.to_owned()
}

/// Every path under `root`; symlinks are listed, never followed.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // DirEntry::file_type does not follow a symlink.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            found.insert(path);
        }
    }
    found
}

/// A service database in a party's directory, or one of SQLite's side files
/// (`-wal`, `-shm`, `-journal`), or the gateway's payload segments: files the services write at
/// any time.
fn is_database(fed: &TestFederation, path: &Path) -> bool {
    // The gateway's payload segments are part of its store (`<party>/segments/`).
    if fed
        .party_ids()
        .iter()
        .any(|p| path.starts_with(fed.dir.path().join(p).join("segments")))
    {
        return true;
    }
    let in_party_dir = fed
        .party_ids()
        .iter()
        .any(|p| path.parent() == Some(fed.dir.path().join(p).as_path()));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    in_party_dir
        && [
            "scheduler.db",
            "job-controller.db",
            "task-controller.db",
            "party-gateway-messages.db",
        ]
        .iter()
        .any(|db| name.starts_with(db))
}

/// Paths under the test's directory that were not there in `before`, databases aside.
fn created_since(fed: &TestFederation, before: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    tree(fed.dir.path())
        .difference(before)
        .filter(|p| !is_database(fed, p))
        .cloned()
        .collect()
}

/// A process's argv, from `/proc/<pid>/cmdline`.
fn argv(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if args.last().is_some_and(String::is_empty) {
        args.pop();
    }
    args
}

/// The parent pid, from `/proc/<pid>/stat`.
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The exact argv the task-controller gives a worker: `fedflow-worker --task-dir DIR`.
fn fixed_argv(task_dir: &Path) -> Vec<String> {
    vec![
        bin("fedflow-worker").to_string_lossy().into_owned(),
        "--task-dir".to_owned(),
        task_dir
            .canonicalize()
            .expect("the task directory exists")
            .to_string_lossy()
            .into_owned(),
    ]
}

/// The party's row of one task version, once it runs with its worker recorded.
async fn running_row(
    fed: &TestFederation,
    party: &str,
    job_id: &str,
    component: &str,
    version: i32,
) -> tc::PartyTask {
    eventually(
        &format!("{component} v{version} running with its worker on {party}"),
        WITHIN,
        || async {
            let rows = party_tasks(fed, party, job_id).await;
            rows.iter()
                .find(|t| {
                    t.component == component
                        && t.version == version
                        && t.pid != 0
                        && task_status(t.party_status) == TaskStatus::Running
                })
                .cloned()
                .ok_or(format!("{rows:?}"))
        },
    )
    .await
}

/// Component, version, role, party status, reason, pid, end time, output.
type PartyState = (String, i32, String, TaskStatus, String, u32, i64, String);

/// Component, version, federated status, and each party's (role, party, status, reason).
type SchedulerState = (
    String,
    i32,
    TaskStatus,
    Vec<(String, String, TaskStatus, String)>,
);

/// What a worker report could change on a party row.
fn party_state(rows: &[tc::PartyTask]) -> Vec<PartyState> {
    rows.iter()
        .map(|t| {
            (
                t.component.clone(),
                t.version,
                t.role.clone(),
                task_status(t.party_status),
                t.reason.clone(),
                t.pid,
                t.end_time_ms,
                t.output_json.clone(),
            )
        })
        .collect()
}

/// The scheduler's view of every version: federated status and each party's status.
async fn scheduler_state(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    job_id: &str,
) -> Vec<SchedulerState> {
    scheduler_tasks(scheduler, job_id)
        .await
        .into_iter()
        .map(|t| {
            (
                t.component,
                t.version,
                task_status(t.status),
                t.parties
                    .into_iter()
                    .map(|p| (p.role, p.party_id, task_status(p.status), p.reason))
                    .collect(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A. Forged or stale worker reports are refused with no state change.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_worker_reports_are_refused_and_change_nothing() {
    let fed = TestFederation::start(PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let conf = conf2(
        json!({"common": {"task_cores": 1, "auto_retries": 1, "auto_retry_delay": 0}}),
        json!({"common": {"nap": {"seconds": 4}}}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");

    // Version 0 runs; its token is the one its worker read from task.json. Its host worker is
    // killed, so version 0 fails and is retried automatically: version 1 runs with a new
    // token, and version 0's is now stale.
    let host_v0 = running_row(&fed, "10000", &job_id, "nap", 0).await;
    let stale = token_of(&task_dir(&fed, "10000", "host", &job_id, "nap", 0));
    signal(host_v0.pid, "KILL");
    let host_v1 = running_row(&fed, "10000", &job_id, "nap", 1).await;
    running_row(&fed, "9999", &job_id, "nap", 1).await;
    wait_party_tasks(&fed, &job_id, "version 0 ended", WITHIN, 2, |rows| {
        let v0: Vec<_> = rows.iter().filter(|t| t.version == 0).collect();
        v0.len() == 1 && task_status(v0[0].party_status) != TaskStatus::Running
    })
    .await;
    let killed = party_tasks(&fed, "10000", &job_id).await;
    let killed = killed
        .iter()
        .find(|t| t.version == 0)
        .expect("the host's version 0");
    assert_eq!(task_status(killed.party_status), TaskStatus::Failed);
    assert!(killed.reason.starts_with("worker lost"), "{killed:?}");
    let current = token_of(&task_dir(&fed, "10000", "host", &job_id, "nap", 1));
    let guest_current = token_of(&task_dir(&fed, "9999", "guest", &job_id, "nap", 1));
    assert_ne!(stale, current, "each attempt has its own token");
    // The scheduler has both parties' version 0 ended and version 1 running before anything
    // is forged.
    eventually(
        "version 0 ended, version 1 running at the scheduler",
        WITHIN,
        || {
            let mut s = scheduler.clone();
            let job_id = job_id.clone();
            async move {
                let tasks = scheduler_state(&mut s, &job_id).await;
                let mut versions: Vec<i32> = tasks.iter().map(|t| t.1).collect();
                versions.sort_unstable();
                let settled = versions == [0, 1]
                    && tasks.iter().all(|(_, version, status, parties)| {
                        let want_running = *version == 1;
                        parties.len() == 2
                            && (*status == TaskStatus::Running) == want_running
                            && parties
                                .iter()
                                .all(|p| (p.2 == TaskStatus::Running) == want_running)
                    });
                settled.then_some(()).ok_or(format!("{tasks:?}"))
            }
        },
    )
    .await;

    let host_before = party_state(&party_tasks(&fed, "10000", &job_id).await);
    let guest_before = party_state(&party_tasks(&fed, "9999", &job_id).await);
    let scheduler_before = scheduler_state(&mut scheduler, &job_id).await;

    let report = |party: &str, role: &str, version: i32, token: &str, status: TaskStatus| {
        tc::ReportStatusRequest {
            job_id: job_id.clone(),
            component: "nap".into(),
            version,
            role: role.into(),
            party_id: party.into(),
            token: token.into(),
            status: status as i32,
            reason: "forged: this must never be recorded".into(),
            output_json: r#"{"value": 666}"#.into(),
            outputs: Vec::new(),
        }
    };
    let random = uuid::Uuid::new_v4().simple().to_string();
    // (label, party whose task-controller is called, request, expected refusal; None: the
    // call is answered `applied: false`, the idempotent answer to a repeat of what the row
    // already says)
    let mut attacks: Vec<(String, &str, tc::ReportStatusRequest, Option<Code>)> = Vec::new();
    for claim in [TaskStatus::Success, TaskStatus::Failed, TaskStatus::Running] {
        attacks.push((
            format!("no token, {claim:?}"),
            "10000",
            report("10000", "host", 1, "", claim),
            Some(Code::PermissionDenied),
        ));
        attacks.push((
            format!("random token, {claim:?}"),
            "10000",
            report("10000", "host", 1, &random, claim),
            Some(Code::PermissionDenied),
        ));
        attacks.push((
            format!("version 0's token on version 1, {claim:?}"),
            "10000",
            report("10000", "host", 1, &stale, claim),
            Some(Code::PermissionDenied),
        ));
        attacks.push((
            format!("the host's token on the guest's task, {claim:?}"),
            "9999",
            report("9999", "guest", 1, &current, claim),
            Some(Code::PermissionDenied),
        ));
        attacks.push((
            format!("the host's task sent to the guest's task-controller, {claim:?}"),
            "9999",
            report("10000", "host", 1, &current, claim),
            Some(Code::InvalidArgument),
        ));
    }
    // The stale token is right for version 0, but version 0 has failed: a success is refused,
    // a repeat of its failure changes nothing.
    attacks.push((
        "version 0's token on failed version 0, Success".into(),
        "10000",
        report("10000", "host", 0, &stale, TaskStatus::Success),
        Some(Code::FailedPrecondition),
    ));
    attacks.push((
        "version 0's token on failed version 0, Failed".into(),
        "10000",
        report("10000", "host", 0, &stale, TaskStatus::Failed),
        None,
    ));
    for (what, party, request, code) in attacks {
        let answer = worker_api(&fed, party).report_status(request).await;
        match (code, answer) {
            (Some(code), Err(refused)) => {
                assert_eq!(refused.code(), code, "{what}: {refused:?}");
            }
            (None, Ok(reply)) => assert!(!reply.get_ref().applied, "{what}: applied"),
            (want, got) => panic!("{what}: expected {want:?}, got {got:?}"),
        }
        assert_eq!(
            party_state(&party_tasks(&fed, "10000", &job_id).await),
            host_before,
            "{what}: the host's rows changed"
        );
        assert_eq!(
            party_state(&party_tasks(&fed, "9999", &job_id).await),
            guest_before,
            "{what}: the guest's rows changed"
        );
    }
    // Forged heartbeats are told to stop (they are no attempt) and change nothing either.
    for (what, token) in [
        ("no token", ""),
        ("random", random.as_str()),
        ("stale", stale.as_str()),
    ] {
        let reply = worker_api(&fed, "10000")
            .heartbeat(tc::HeartbeatRequest {
                job_id: job_id.clone(),
                component: "nap".into(),
                version: 1,
                role: "host".into(),
                party_id: "10000".into(),
                token: token.into(),
            })
            .await
            .expect("a heartbeat is answered")
            .into_inner();
        assert!(reply.stop, "{what} heartbeat not told to stop");
    }
    assert_eq!(
        party_state(&party_tasks(&fed, "10000", &job_id).await),
        host_before
    );
    assert_eq!(
        scheduler_state(&mut scheduler, &job_id).await,
        scheduler_before
    );
    assert!(
        processes_mentioning(&job_id).contains(&host_v1.pid),
        "the real worker still runs"
    );
    assert_ne!(guest_current, current);

    // The job then ends with the real outcome: the workers' own success.
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Success, "{job:?}");
    wait_party_jobs(&fed, &job_id, JobStatus::Success, WITHIN).await;
    for party in PARTIES {
        let rows = party_tasks(&fed, party, &job_id).await;
        assert_eq!(rows.len(), 2, "{party}: two versions: {rows:?}");
        for row in &rows {
            let status = task_status(row.party_status);
            if row.version == 0 {
                assert_ne!(status, TaskStatus::Success, "{party}: {row:?}");
            } else {
                assert_eq!(status, TaskStatus::Success, "{party}: {row:?}");
            }
            assert!(!row.reason.contains("forged"), "{party}: {row:?}");
            assert!(!row.output_json.contains("666"), "{party}: {row:?}");
        }
    }
    // A replay of the real token after the end changes nothing either.
    let host_after = party_state(&party_tasks(&fed, "10000", &job_id).await);
    let refused = worker_api(&fed, "10000")
        .report_status(report("10000", "host", 1, &current, TaskStatus::Failed))
        .await
        .expect_err("a report after the end is refused");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(
        party_state(&party_tasks(&fed, "10000", &job_id).await),
        host_after
    );
    let job = get_job(&mut scheduler, &job_id).await.expect("query");
    assert_eq!(job_status(job.status), JobStatus::Success);
    fed.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// B. Ids that name paths are refused; symlinks in the work root are not followed.
// ---------------------------------------------------------------------------------------------

/// A CreateJob the job-controller of 9999 accepts; each case below changes one field.
fn create_job(job_id: &str) -> jc::CreateJobRequest {
    jc::CreateJobRequest {
        job_id: job_id.to_owned(),
        dsl: json!({"components": {"a": {"module": "Sleep"}}}).to_string(),
        runtime_conf: conf1(json!({"common": {"a": {"seconds": 0}}})).to_string(),
        role: "guest".into(),
        party_id: "9999".into(),
        scheduler_party_id: "9999".into(),
        request_id: String::new(),
        tasks: Vec::new(),
    }
}

/// A CreateTasks the task-controller of 9999 accepts; each case below changes one field.
fn create_tasks(job_id: &str) -> tc::CreateTasksRequest {
    tc::CreateTasksRequest {
        job_id: job_id.to_owned(),
        role: "guest".into(),
        party_id: "9999".into(),
        scheduler_party_id: "9999".into(),
        version: 0,
        tasks: vec![tc::TaskSpec {
            component: "a".into(),
            module: "Sleep".into(),
            parameters_json: json!({"seconds": 0}).to_string(),
            need_run: true,
            upstream: vec![],
        }],
        request_id: String::new(),
        parties: vec![fedflow_proto::common::v1::PartyRef {
            role: "guest".into(),
            party_id: "9999".into(),
        }],
    }
}

fn start_task(job_id: &str, component: &str) -> tc::StartTaskRequest {
    tc::StartTaskRequest {
        job_id: job_id.to_owned(),
        component: component.to_owned(),
        version: 0,
        role: "guest".into(),
        party_id: "9999".into(),
        request_id: String::new(),
    }
}

fn assert_invalid(what: &str, result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err(&format!("{what}: accepted"));
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert!(
        status.message().contains(field),
        "{what}: {:?} does not name {field:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_name_paths_are_refused_by_the_job_and_task_controllers_and_store_nothing() {
    let fed = TestFederation::start(&["9999"]).await;
    let before = tree(fed.dir.path());
    let mut jobs = fed.job_controller("9999");
    let mut tasks = fed.task_controller("9999");
    const PROBE: &str = "probe-job";

    for (label, bad) in hostile_ids() {
        // JobController.CreateJob, one field at a time.
        let mut r = create_job(&bad);
        assert_invalid(
            &format!("CreateJob job_id {label}"),
            jobs.create_job(r).await,
            "job id",
        );
        r = create_job(PROBE);
        r.role = bad.clone();
        assert_invalid(
            &format!("CreateJob role {label}"),
            jobs.create_job(r).await,
            "role",
        );
        r = create_job(PROBE);
        r.party_id = bad.clone();
        assert_invalid(
            &format!("CreateJob party_id {label}"),
            jobs.create_job(r).await,
            "party_id",
        );
        r = create_job(PROBE);
        r.scheduler_party_id = bad.clone();
        assert_invalid(
            &format!("CreateJob scheduler_party_id {label}"),
            jobs.create_job(r).await,
            "scheduler_party_id",
        );
        r = create_job(PROBE);
        r.tasks = vec![tc::TaskSpec {
            component: bad.clone(),
            module: "Sleep".into(),
            parameters_json: "{}".into(),
            need_run: true,
            upstream: Vec::new(),
        }];
        assert_invalid(
            &format!("CreateJob tasks[0].component {label}"),
            jobs.create_job(r).await,
            "tasks[0].component",
        );
        r = create_job(PROBE);
        let mut components = serde_json::Map::new();
        components.insert(bad.clone(), json!({"module": "Sleep"}));
        r.dsl = json!({ "components": components }).to_string();
        r.runtime_conf = conf1(json!({})).to_string();
        assert_invalid(
            &format!("CreateJob component name {label}"),
            jobs.create_job(r).await,
            "dsl.components.",
        );
        r = create_job(PROBE);
        let mut conf = conf1(json!({"common": {"a": {"seconds": 0}}}));
        conf["role"]["host"] = json!([bad]);
        r.runtime_conf = conf.to_string();
        assert_invalid(
            &format!("CreateJob conf party id {label}"),
            jobs.create_job(r).await,
            "runtime_conf.role.host[0]",
        );
        r = create_job(PROBE);
        let mut conf = conf1(json!({"common": {"a": {"seconds": 0}}}));
        conf["role"][bad.as_str()] = json!([10000]);
        r.runtime_conf = conf.to_string();
        assert_invalid(
            &format!("CreateJob conf role {label}"),
            jobs.create_job(r).await,
            "runtime_conf.role.",
        );

        // TaskController.CreateTasks, one field at a time.
        let mut r = create_tasks(&bad);
        assert_invalid(
            &format!("CreateTasks job_id {label}"),
            tasks.create_tasks(r).await,
            "job id",
        );
        r = create_tasks(PROBE);
        r.role = bad.clone();
        assert_invalid(
            &format!("CreateTasks role {label}"),
            tasks.create_tasks(r).await,
            "role",
        );
        r = create_tasks(PROBE);
        r.party_id = bad.clone();
        assert_invalid(
            &format!("CreateTasks party_id {label}"),
            tasks.create_tasks(r).await,
            "party_id",
        );
        r = create_tasks(PROBE);
        r.scheduler_party_id = bad.clone();
        assert_invalid(
            &format!("CreateTasks scheduler_party_id {label}"),
            tasks.create_tasks(r).await,
            "scheduler_party_id",
        );
        r = create_tasks(PROBE);
        r.tasks[0].component = bad.clone();
        assert_invalid(
            &format!("CreateTasks component {label}"),
            tasks.create_tasks(r).await,
            "component name",
        );
        r = create_tasks(PROBE);
        r.tasks[0].upstream = vec![bad.clone()];
        assert_invalid(
            &format!("CreateTasks upstream {label}"),
            tasks.create_tasks(r).await,
            "component name",
        );
        r = create_tasks(PROBE);
        r.parties[0].party_id = bad.clone();
        assert_invalid(
            &format!("CreateTasks parties[0].party_id {label}"),
            tasks.create_tasks(r).await,
            "parties[0].party_id",
        );
        r = create_tasks(PROBE);
        r.parties[0].role = bad.clone();
        assert_invalid(
            &format!("CreateTasks parties[0].role {label}"),
            tasks.create_tasks(r).await,
            "parties[0].role",
        );
    }
    let mut r = create_tasks(PROBE);
    r.version = -1;
    assert_invalid(
        "CreateTasks version -1",
        tasks.create_tasks(r).await,
        "version",
    );

    // Nothing was stored for the probe job.
    let missing = jobs
        .get_job(jc::GetJobRequest {
            job_id: PROBE.into(),
        })
        .await
        .expect_err("no probe job");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    assert!(party_tasks(&fed, "9999", PROBE).await.is_empty());

    // TaskController.StartTask of a real waiting row, with one field changed at a time.
    const WAITING: &str = "waiting-job";
    let created = tasks
        .create_tasks(create_tasks(WAITING))
        .await
        .expect("a valid CreateTasks is accepted")
        .into_inner();
    assert_eq!(created.created, 1);
    for (label, bad) in hostile_ids() {
        assert_invalid(
            &format!("StartTask job_id {label}"),
            tasks.start_task(start_task(&bad, "a")).await,
            "job id",
        );
        assert_invalid(
            &format!("StartTask component {label}"),
            tasks.start_task(start_task(WAITING, &bad)).await,
            "component name",
        );
        let mut r = start_task(WAITING, "a");
        r.role = bad.clone();
        assert_invalid(
            &format!("StartTask role {label}"),
            tasks.start_task(r).await,
            "role",
        );
        let mut r = start_task(WAITING, "a");
        r.party_id = bad.clone();
        assert_invalid(
            &format!("StartTask party_id {label}"),
            tasks.start_task(r).await,
            "party_id",
        );
    }
    let rows = party_tasks(&fed, "9999", WAITING).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(task_status(rows[0].party_status), TaskStatus::Waiting);
    assert_eq!(rows[0].pid, 0);

    // On disk: nothing but the databases changed; not even a jobs directory exists.
    let created = created_since(&fed, &before);
    assert!(created.is_empty(), "created on disk: {created:?}");
    assert!(!fed.dir.path().join("9999").join("jobs").exists());

    // Control: the base CreateJob each case altered is accepted as it is.
    let plans = jobs
        .create_job(create_job("control-job"))
        .await
        .expect("the unaltered CreateJob is accepted")
        .into_inner()
        .components;
    assert_eq!(plans.len(), 1, "{plans:?}");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_name_paths_in_a_submission_are_refused_and_store_nothing() {
    let fed = TestFederation::start(PARTIES).await;
    let before = tree(fed.dir.path());
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"a": {"module": "Sleep"}}});
    let params = json!({"common": {"task_cores": 1}});
    let ok_conf = conf2(params.clone(), json!({"common": {"a": {"seconds": 0}}}));
    for (label, bad) in hostile_ids() {
        let mut cases: Vec<(String, Value, Value, &str)> = Vec::new();
        let mut components = serde_json::Map::new();
        components.insert(bad.clone(), json!({"module": "Sleep"}));
        cases.push((
            format!("component name {label}"),
            json!({ "components": components }),
            conf2(params.clone(), json!({})),
            "dsl.components.",
        ));
        let mut conf = ok_conf.clone();
        conf["role"]["host"] = json!([bad]);
        cases.push((
            format!("host party id {label}"),
            dsl.clone(),
            conf,
            "runtime_conf.role.host[0]",
        ));
        let mut conf = ok_conf.clone();
        conf["role"]["guest"] = json!([bad]);
        conf["initiator"]["party_id"] = json!(bad);
        cases.push((
            format!("initiator party id {label}"),
            dsl.clone(),
            conf,
            "runtime_conf.role.guest[0]",
        ));
        let mut conf = ok_conf.clone();
        conf["role"][bad.as_str()] = json!([10000]);
        cases.push((
            format!("role {label}"),
            dsl.clone(),
            conf,
            "runtime_conf.role.",
        ));
        let mut conf = ok_conf.clone();
        let mut by_role = serde_json::Map::new();
        by_role.insert(bad.clone(), json!({"0": {"a": {"seconds": 0}}}));
        conf["component_parameters"]["role"] = Value::Object(by_role);
        cases.push((
            format!("component_parameters role {label}"),
            dsl.clone(),
            conf,
            "component_parameters.role.",
        ));
        let mut conf = ok_conf.clone();
        conf["component_parameters"]["common"][bad.as_str()] = json!({"seconds": 0});
        cases.push((
            format!("component_parameters component {label}"),
            dsl.clone(),
            conf,
            "component_parameters.common.",
        ));
        for (what, dsl, conf, field) in cases {
            assert_invalid(&what, submit(&mut scheduler, &dsl, &conf).await, field);
        }
    }
    // Nothing stored anywhere: no job at the scheduler, no reservation, no file.
    assert_nothing_stored(&fed, "9999").await;
    let created = created_since(&fed, &before);
    assert!(created.is_empty(), "created on disk: {created:?}");
    // Control: the conf each case altered is accepted and runs.
    run_to_success(&mut scheduler, &dsl, &ok_conf, WITHIN).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_planted_in_the_work_root_is_not_followed() {
    let fed = TestFederation::start(&["9999"]).await;
    let before = tree(fed.dir.path());
    let root = fed.dir.path().join("9999");
    let jobs_dir = root.join("jobs");
    let outside = fed.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("a directory outside the work root");
    std::fs::create_dir_all(&jobs_dir).expect("the jobs directory");
    let mut planted: BTreeSet<PathBuf> = BTreeSet::from([outside.clone(), jobs_dir.clone()]);
    let mut plant = |link: PathBuf, target: &Path| {
        let parent = link.parent().expect("a parent").to_path_buf();
        std::fs::create_dir_all(&parent).expect("the link's parent");
        let mut dir = parent.as_path();
        while dir != root {
            planted.insert(dir.to_path_buf());
            dir = dir.parent().expect("under the root");
        }
        std::os::unix::fs::symlink(target, &link).expect("plant a symlink");
        planted.insert(link);
    };
    // Where a job's, a component's and an attempt's directory would be.
    plant(jobs_dir.join("planted-job"), &outside);
    plant(
        task_dir(&fed, "9999", "guest", "planted-component", "a", 0)
            .parent()
            .expect("component dir")
            .to_path_buf(),
        &outside,
    );
    plant(
        task_dir(&fed, "9999", "guest", "planted-attempt", "a", 0),
        &outside,
    );

    let mut tasks = fed.task_controller("9999");
    for job in ["planted-job", "planted-component", "planted-attempt"] {
        tasks
            .create_tasks(create_tasks(job))
            .await
            .expect("the task rows are valid");
        let status = tasks
            .start_task(start_task(job, "a"))
            .await
            .expect("the start is answered")
            .into_inner()
            .status;
        assert_eq!(task_status(status), TaskStatus::Failed, "{job}");
        let rows = party_tasks(&fed, "9999", job).await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            task_status(rows[0].party_status),
            TaskStatus::Failed,
            "{rows:?}"
        );
        assert_eq!(rows[0].pid, 0, "no worker: {rows:?}");
        let reason = &rows[0].reason;
        assert!(
            reason.starts_with("could not start worker: task directory")
                && (reason.contains("escapes the data directory") || reason.contains("symlink")),
            "{job}: {reason:?}"
        );
        assert!(processes_mentioning(job).is_empty(), "{job}: a worker runs");
    }
    // Control: the same request for a job with no symlink runs its worker to success.
    tasks
        .create_tasks(create_tasks("plain-job"))
        .await
        .expect("the task rows are valid");
    tasks
        .start_task(start_task("plain-job", "a"))
        .await
        .expect("the start is answered");
    wait_party_tasks(
        &fed,
        "plain-job",
        "the control task to succeed",
        WITHIN,
        1,
        |rows| task_status(rows[0].party_status) == TaskStatus::Success,
    )
    .await;

    // Nothing was written through the links: the outside directory is empty, and the only new
    // paths are the planted ones and the control task's directory with its two files.
    let left_outside: Vec<_> = std::fs::read_dir(&outside)
        .expect("read the outside directory")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left_outside.is_empty(),
        "written outside the work root: {left_outside:?}"
    );
    let control = task_dir(&fed, "9999", "guest", "plain-job", "a", 0);
    let mut expected = planted;
    let mut dir = control.as_path();
    while dir != jobs_dir {
        expected.insert(dir.to_path_buf());
        dir = dir.parent().expect("under jobs");
    }
    expected.insert(control.join("task.json"));
    expected.insert(control.join("worker.log"));
    assert_eq!(created_since(&fed, &before), expected);
    fed.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// C. Shell metacharacters in parameters are data; the worker's argv is fixed.
// ---------------------------------------------------------------------------------------------

/// The (pid, argv) of every process seen for a job.
type Sampled = BTreeSet<(u32, Vec<String>)>;

/// Every file or directory named like `marker` (containing it) under `root`.
fn named_like(root: &Path, marker: &str) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(marker))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_metacharacters_in_parameters_run_nothing_and_the_worker_argv_is_fixed() {
    const MARKER: &str = "PWNED";
    let cwd = std::env::current_dir().expect("the current directory");
    let fed = TestFederation::start(PARTIES).await;
    let places = [cwd.join(MARKER), std::env::temp_dir().join(MARKER)];
    for place in &places {
        assert!(
            !place.exists(),
            "{} exists before the test",
            place.display()
        );
    }
    let mut scheduler = fed.scheduler("9999");
    let params = json!({"common": {"task_cores": 1}});
    let dsl = json!({"components": {
        "nap": {"module": "Sleep", "output": {"data": ["out"]}},
        "say": {"module": "Fail", "input": {"data": {"data": ["nap.out"]}}}
    }});

    // Parameter keys are not free-form, and typed values refuse strings.
    let refused = [
        (
            json!({"common": {"nap": {"; touch PWNED": 1}}}),
            "unknown parameter \"; touch PWNED\"",
        ),
        (
            json!({"common": {"nap": {"seconds": "$(touch PWNED)"}}}),
            "parameter seconds",
        ),
        (
            json!({"common": {"$(touch PWNED)": {"seconds": 1}}}),
            "component_parameters.common.$(touch PWNED)",
        ),
        (
            json!({"common": {"say": {"roles": ["host; touch PWNED"]}}}),
            "parameter roles",
        ),
    ];
    for (component_parameters, field) in refused {
        let conf = conf2(params.clone(), component_parameters.clone());
        assert_invalid(
            &format!("{component_parameters}"),
            submit(&mut scheduler, &dsl, &conf).await,
            field,
        );
    }

    // The one free-form string (Fail's message) carries every metacharacter; it fails the host.
    let message = "; touch PWNED\n$(touch PWNED)\n`touch PWNED`\n| touch PWNED && touch PWNED \
                   || touch PWNED & touch PWNED\n'; touch PWNED; '\"; touch PWNED; \"\r\n\
                   --task-dir /tmp ${IFS}touch${IFS}PWNED";
    let conf = conf2(
        params,
        json!({"common": {
            "nap": {"seconds": 3},
            "say": {"message": message, "roles": ["host"]}
        }}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");

    // Samples the argv of every process that mentions the job, for the whole run.
    let seen: Arc<Mutex<Sampled>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let seen = seen.clone();
        let done = done.clone();
        let job_id = job_id.clone();
        move || {
            while !done.load(Ordering::Relaxed) {
                for pid in processes_mentioning(&job_id) {
                    let args = argv(pid);
                    if !args.is_empty() {
                        seen.lock().expect("sampler lock").insert((pid, args));
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });

    // While the long-running component runs, its workers' argv is exactly the fixed one.
    let mut nap_pids = Vec::new();
    for (party, role) in [("9999", "guest"), ("10000", "host")] {
        let row = running_row(&fed, party, &job_id, "nap", 0).await;
        let dir = task_dir(&fed, party, role, &job_id, "nap", 0);
        assert_eq!(argv(row.pid), fixed_argv(&dir), "{party}");
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/cwd", row.pid)).expect("the worker's cwd"),
            dir.canonicalize().expect("task dir")
        );
        assert_eq!(
            parent_pid(row.pid),
            Some(std::process::id()),
            "{party}: the worker is the task-controller's own child, not a shell's"
        );
        nap_pids.push(row.pid);
    }
    let mut running = processes_mentioning(&job_id);
    running.sort_unstable();
    nap_pids.sort_unstable();
    assert_eq!(running, nap_pids, "only the two workers run for the job");

    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Failed, "{job:?}");
    assert!(job.reason.contains(message), "{:?}", job.reason);
    wait_party_jobs(&fed, &job_id, JobStatus::Failed, WITHIN).await;
    eventually("no worker left", WITHIN, || async {
        let left = processes_mentioning(&job_id);
        left.is_empty().then_some(()).ok_or(format!("{left:?}"))
    })
    .await;
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("the sampler ends");

    // The message travelled as data: verbatim in task.json and as the host's reason.
    let say = party_task(&fed, "10000", &job_id, "say").await;
    assert_eq!(task_status(say.party_status), TaskStatus::Failed);
    assert_eq!(say.reason, message);
    let say_dir = task_dir(&fed, "10000", "host", &job_id, "say", 0);
    let config: Value = serde_json::from_slice(
        &std::fs::read(say_dir.join("task.json")).expect("the host's say task.json"),
    )
    .expect("JSON");
    assert_eq!(config["parameters"]["message"], message);
    // The guest's say does not fail (the message is for the host); it may be canceled when
    // the host's failure ends the job first.
    let guest = party_tasks(&fed, "9999", &job_id).await;
    for t in &guest {
        let ok = if t.component == "nap" {
            task_status(t.party_status) == TaskStatus::Success
        } else {
            matches!(
                task_status(t.party_status),
                TaskStatus::Success | TaskStatus::Canceled
            )
        };
        assert!(ok, "{t:?}");
    }

    // Every worker process ever seen for the job had the fixed argv of one of its tasks.
    let expected: Vec<Vec<String>> = [("9999", "guest"), ("10000", "host")]
        .iter()
        .flat_map(|(party, role)| {
            ["nap", "say"].map(|c| fixed_argv(&task_dir(&fed, party, role, &job_id, c, 0)))
        })
        .collect();
    let seen = seen.lock().expect("sampler lock").clone();
    eprintln!("worker processes sampled: {seen:?}");
    for (pid, args) in &seen {
        assert!(expected.contains(args), "process {pid} ran {args:?}");
    }
    for (party, role) in [("9999", "guest"), ("10000", "host")] {
        let nap = fixed_argv(&task_dir(&fed, party, role, &job_id, "nap", 0));
        assert!(
            seen.iter().any(|(_, a)| *a == nap),
            "{party}'s nap worker not sampled"
        );
    }

    // No file named PWNED anywhere: the test directory (every worker's cwd is in it), the
    // current directory, the temporary directory.
    let found = named_like(fed.dir.path(), MARKER);
    assert!(found.is_empty(), "created: {found:?}");
    for place in &places {
        assert!(!place.exists(), "{} was created", place.display());
    }
    let in_cwd: Vec<_> = std::fs::read_dir(&cwd)
        .expect("read the current directory")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(MARKER))
        .map(|e| e.path())
        .collect();
    assert!(in_cwd.is_empty(), "created: {in_cwd:?}");
    fed.shutdown().await;
}
