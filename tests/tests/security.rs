//! Parties trust each other only as far as they should. Every test drives a party's gateway on
//! its federation port as another party would (or an impostor), with real certificates made by
//! `fedflow_tls::pki`, and checks what changed in the services' own state.

use std::collections::BTreeSet;
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::party::services;
use fedflow_tests::party::{PartyCaller, write_pem};
use fedflow_tests::{
    TempDir, TestFederation, conf3, eventually, job_status, party_tasks, scheduler_tasks, submit,
    submit_many, task_status, wait_ended,
};
use fedflow_tls::pki::{self, Validity};
use serde_json::json;
use tonic::Code;

const WITHIN: Duration = Duration::from_secs(60);

/// One long component (Sleep) on guest 9999, host 10000 and arbiter 10001.
fn sleeping_job() -> (serde_json::Value, serde_json::Value) {
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"nap": {"seconds": 30}}}),
    );
    (dsl, conf)
}

async fn host_task_running(fed: &TestFederation, job_id: &str) {
    eventually("the host's task to run", WITHIN, || async {
        let tasks = party_tasks(fed, "10000", job_id).await;
        tasks
            .iter()
            .any(|t| task_status(t.party_status) == TaskStatus::Running)
            .then_some(())
            .ok_or(format!("{tasks:?}"))
    })
    .await;
}

/// The host's view of the job: its job row status and its task rows' party statuses.
async fn host_state(fed: &TestFederation, job_id: &str) -> (i32, Vec<i32>) {
    let job = fed
        .job_controller("10000")
        .get_job(jc::GetJobRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .expect("the host's job")
        .into_inner();
    let tasks = party_tasks(fed, "10000", job_id).await;
    (
        job.jobs.first().map(|j| j.status).unwrap_or_default(),
        tasks.iter().map(|t| t.party_status).collect(),
    )
}

fn stop_everything(job_id: &str) -> tc::StopTasksRequest {
    tc::StopTasksRequest {
        job_id: job_id.to_owned(),
        component: String::new(),
        role: "host".into(),
        party_id: "10000".into(),
        status: TaskStatus::Failed as i32,
        reason: "forged".into(),
        request_id: fedflow_rpc::new_request_id(),
        version: None,
    }
}

/// Acceptance 1: no certificate, a self-signed one, one from another CA naming the scheduler
/// party, one from another party's CA naming the receiving party, an expired one — every call
/// fails in the TLS handshake, before any handler, and the host's job and tasks are as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_callers_are_refused_before_any_handler_and_change_nothing() {
    let fed = TestFederation::start(&["9999", "10000", "10001"]).await;
    let mut scheduler = fed.scheduler("9999");
    let (dsl, conf) = sleeping_job();
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    host_task_running(&fed, &job_id).await;
    let before = host_state(&fed, &job_id).await;

    let forged = TempDir::new("fedflow-forged");
    let mut impostors: Vec<(&str, PartyCaller)> = vec![("no certificate", fed.anonymous("10000"))];
    let (cert, key) = write_pem(
        forged.path(),
        "self-signed",
        &pki::self_signed_gateway("9999", Validity::days(1)).expect("self-signed"),
    );
    impostors.push((
        "a self-signed certificate naming the scheduler party",
        fed.with_certificate("9999", &cert, &key, "10000"),
    ));
    let rogue_ca = pki::new_ca("9999", Validity::days(1)).expect("a rogue CA");
    let (cert, key) = write_pem(
        forged.path(),
        "rogue",
        &pki::issue_gateway(&rogue_ca, "9999", &[], Validity::days(1)).expect("issue"),
    );
    impostors.push((
        "a certificate from a CA that is not the scheduler party's",
        fed.with_certificate("9999", &cert, &key, "10000"),
    ));
    let arbiter_ca = pki::Pem {
        cert: std::fs::read_to_string(fed.pki("10001").ca_cert()).expect("ca.crt"),
        key: std::fs::read_to_string(fed.pki("10001").ca_key()).expect("ca.key"),
    };
    let (cert, key) = write_pem(
        forged.path(),
        "claims-host",
        &pki::issue_gateway(&arbiter_ca, "10000", &[], Validity::days(1)).expect("issue"),
    );
    impostors.push((
        "a certificate from party 10001's CA naming the receiving party 10000",
        fed.with_certificate("10000", &cert, &key, "10000"),
    ));
    let (cert, key) = write_pem(
        forged.path(),
        "claims-scheduler",
        &pki::issue_gateway(&arbiter_ca, "9999", &[], Validity::days(1)).expect("issue"),
    );
    impostors.push((
        "a certificate from party 10001's CA naming the scheduler party 9999",
        fed.with_certificate("9999", &cert, &key, "10000"),
    ));
    let scheduler_ca = pki::Pem {
        cert: std::fs::read_to_string(fed.pki("9999").ca_cert()).expect("ca.crt"),
        key: std::fs::read_to_string(fed.pki("9999").ca_key()).expect("ca.key"),
    };
    let now = time::OffsetDateTime::now_utc();
    let expired = Validity {
        not_before: now - time::Duration::days(30),
        not_after: now - time::Duration::days(1),
    };
    let (cert, key) = write_pem(
        forged.path(),
        "expired",
        &pki::issue_gateway(&scheduler_ca, "9999", &[], expired).expect("issue"),
    );
    impostors.push((
        "the scheduler party's own CA, but expired",
        fed.with_certificate("9999", &cert, &key, "10000"),
    ));

    for (what, caller) in &impostors {
        let mut envelope = caller.envelope(
            &job_id,
            services::TASK_CONTROLLER,
            "StopTasks",
            &stop_everything(&job_id),
            10_000,
        );
        envelope.src_party_id = "9999".into();
        let refused = caller.send(envelope).await.expect_err(what);
        assert!(
            matches!(
                refused.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{what}: refused at the transport, not by a handler: {refused:?}"
        );
        let update = caller
            .call::<_, jc::UpdateJobStatusResponse>(
                &job_id,
                services::JOB_CONTROLLER,
                "UpdateJobStatus",
                &jc::UpdateJobStatusRequest {
                    job_id: job_id.clone(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    status: JobStatus::Failed as i32,
                    reason: "forged".into(),
                    request_id: fedflow_rpc::new_request_id(),
                },
            )
            .await;
        assert!(update.is_err(), "{what}: {update:?}");
    }
    assert_eq!(
        host_state(&fed, &job_id).await,
        before,
        "nothing changed on the host"
    );

    // The real scheduler party's certificate, but an envelope claiming another party.
    let real = fed.as_party("9999", "10000");
    let mut envelope = real.envelope(
        &job_id,
        services::TASK_CONTROLLER,
        "StopTasks",
        &stop_everything(&job_id),
        10_000,
    );
    envelope.src_party_id = "10001".into();
    let refused = real.send(envelope).await.expect_err("claims another party");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert_eq!(host_state(&fed, &job_id).await, before);

    // The same path with the real certificate works: the refusals above were the identities.
    let reply: jc::GetJobResponse = real
        .call(
            &job_id,
            services::JOB_CONTROLLER,
            "GetJob",
            &jc::GetJobRequest {
                job_id: job_id.clone(),
            },
        )
        .await
        .expect("the scheduler party reads the host's job");
    assert_eq!(reply.jobs.len(), 1);
    assert_eq!(
        reply.participants.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["9999".to_owned(), "10000".to_owned(), "10001".to_owned()])
    );
    // Done: stop the sleeping job, so no worker outlives the test.
    scheduler
        .stop_job(sc::StopJobRequest {
            job_id: job_id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("stop");
    let stopped = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(stopped.status), JobStatus::Canceled);
    fed.shutdown().await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The job's scheduler party (9999).
    Scheduler,
    /// Another participant (10001 calling the host; 10000 calling the scheduler party).
    Participant,
    /// A party of the federation that takes no part in the job (10002).
    Outsider,
}

/// One row of the matrix: a method on a target party, and which roles may call it.
struct Case {
    target: &'static str,
    service: &'static str,
    method: &'static str,
    allowed: &'static [Role],
    payload: fn(&str, &str) -> Vec<u8>,
}

fn enc<M: prost::Message>(m: M) -> Vec<u8> {
    m.encode_to_vec()
}

fn cases() -> Vec<Case> {
    use Role::*;
    vec![
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "CreateJob",
            allowed: &[Scheduler],
            payload: |job, _| {
                let (dsl, conf) = sleeping_job();
                enc(jc::CreateJobRequest {
                    job_id: job.into(),
                    dsl: dsl.to_string(),
                    runtime_conf: conf.to_string(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    scheduler_party_id: "9999".into(),
                    request_id: fedflow_rpc::new_request_id(),
                    tasks: Vec::new(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "ApplyResource",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(jc::ApplyResourceRequest {
                    job_id: job.into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "ReturnResource",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(jc::ReturnResourceRequest {
                    job_id: job.into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "StartJob",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(jc::StartJobRequest {
                    job_id: job.into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "UpdateJobStatus",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(jc::UpdateJobStatusRequest {
                    job_id: job.into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    status: JobStatus::Success as i32,
                    reason: String::new(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "GetJob",
            allowed: &[Scheduler, Participant],
            payload: |job, _| enc(jc::GetJobRequest { job_id: job.into() }),
        },
        Case {
            target: "10000",
            service: services::JOB_CONTROLLER,
            method: "GetResources",
            allowed: &[],
            payload: |_, _| enc(jc::GetResourcesRequest {}),
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "CreateTasks",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(tc::CreateTasksRequest {
                    job_id: job.into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                    scheduler_party_id: "9999".into(),
                    version: 0,
                    tasks: Vec::new(),
                    request_id: fedflow_rpc::new_request_id(),
                    parties: Vec::new(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "StartTask",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(tc::StartTaskRequest {
                    job_id: job.into(),
                    component: "nap".into(),
                    version: 0,
                    role: "host".into(),
                    party_id: "10000".into(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "StopTasks",
            allowed: &[Scheduler],
            payload: |job, _| enc(stop_everything(job)),
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "UpdateTaskStatus",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(tc::UpdateTaskStatusRequest {
                    job_id: job.into(),
                    component: "nap".into(),
                    version: 0,
                    status: TaskStatus::Success as i32,
                    request_id: fedflow_rpc::new_request_id(),
                    more: Vec::new(),
                })
            },
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "ListTasks",
            allowed: &[Scheduler],
            payload: |job, _| enc(tc::ListTasksRequest { job_id: job.into() }),
        },
        Case {
            target: "10000",
            service: services::TASK_CONTROLLER,
            method: "GetTaskOutput",
            allowed: &[Scheduler],
            payload: |job, _| {
                enc(tc::GetTaskOutputRequest {
                    job_id: job.into(),
                    component: "nap".into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::STATUS_REPORT,
            method: "ReportTaskStatus",
            allowed: &[Participant],
            payload: |job, caller| {
                enc(sc::ReportTaskStatusRequest {
                    job_id: job.into(),
                    component: "nap".into(),
                    version: 0,
                    role: if caller == "10000" { "host" } else { "arbiter" }.into(),
                    party_id: caller.into(),
                    status: TaskStatus::Success as i32,
                    reason: String::new(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "GetJob",
            allowed: &[Participant],
            payload: |job, _| {
                enc(sc::GetJobRequest {
                    job_id: job.into(),
                    include_conf: false,
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "StopJob",
            allowed: &[Participant],
            payload: |job, _| {
                enc(sc::StopJobRequest {
                    job_id: job.into(),
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "RerunJob",
            allowed: &[Participant],
            payload: |job, _| {
                enc(sc::RerunJobRequest {
                    job_id: job.into(),
                    component: "no-such-component".into(),
                    force: false,
                    request_id: fedflow_rpc::new_request_id(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "ListTasks",
            allowed: &[Participant],
            payload: |job, _| {
                enc(sc::ListTasksRequest {
                    job_id: job.into(),
                    all_versions: false,
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "GetTaskOutput",
            allowed: &[Participant],
            payload: |job, _| {
                enc(sc::GetTaskOutputRequest {
                    job_id: job.into(),
                    component: "nap".into(),
                    role: "host".into(),
                    party_id: "10000".into(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "SubmitJob",
            allowed: &[],
            payload: |_, _| {
                let (dsl, conf) = sleeping_job();
                enc(sc::SubmitJobRequest {
                    dsl: dsl.to_string(),
                    runtime_conf: conf.to_string(),
                    request_id: String::new(),
                })
            },
        },
        Case {
            target: "9999",
            service: services::SCHEDULER,
            method: "ListJobs",
            allowed: &[],
            payload: |_, _| {
                enc(sc::ListJobsRequest {
                    limit: 10,
                    ..Default::default()
                })
            },
        },
    ]
}

/// The party playing `role` toward `target` in the matrix's job (9999 schedules it, 10000 and
/// 10001 take part, 10002 does not).
fn caller_for(role: Role, target: &str) -> Option<&'static str> {
    match (role, target) {
        (Role::Scheduler, "9999") => None,
        (Role::Scheduler, _) => Some("9999"),
        (Role::Participant, "9999") => Some("10000"),
        (Role::Participant, _) => Some("10001"),
        (Role::Outsider, _) => Some("10002"),
    }
}

/// Acceptance 2: every (caller's role in the job × method) pair. Denied pairs get
/// PERMISSION_DENIED (or UNAUTHENTICATED where the payload claims the scheduler's party id,
/// as every driving call here does); allowed pairs get past authorisation (whatever the
/// service then says about an ended job).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorisation_matrix_holds_for_every_role_and_method() {
    let fed = TestFederation::start(&["9999", "10000", "10001", "10002"]).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"nap": {"seconds": 0}}}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    let ended = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(ended.status), JobStatus::Success);

    let mut rows = 0;
    let mut failures = Vec::new();
    for case in cases() {
        for role in [Role::Scheduler, Role::Participant, Role::Outsider] {
            let Some(caller) = caller_for(role, case.target) else {
                continue;
            };
            let client = fed.as_party(caller, case.target);
            let payload = (case.payload)(&job_id, caller);
            let mut envelope = client.envelope(
                &job_id,
                case.service,
                case.method,
                &jc::GetJobRequest::default(),
                10_000,
            );
            envelope.payload = payload.into();
            let result = client.send(envelope).await;
            let allowed = case.allowed.contains(&role);
            let denied = matches!(&result, Err(s) if s.code() == Code::PermissionDenied);
            let unauthenticated = matches!(&result, Err(s) if s.code() == Code::Unauthenticated);
            rows += 1;
            if allowed == (denied || unauthenticated) {
                failures.push(format!(
                    "{}/{} on {} by {role:?} ({caller}): expected {}, got {:?}",
                    case.service,
                    case.method,
                    case.target,
                    if allowed {
                        "allowed"
                    } else {
                        "refused (PERMISSION_DENIED, or UNAUTHENTICATED for a claimed party id)"
                    },
                    result.map(|_| "OK")
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rows >= 50, "{rows} pairs checked");

    // A participant may report only its own statuses: a party id claimed in a call must be
    // the caller's.
    let host = fed.as_party("10000", "9999");
    let refused = host
        .call::<_, sc::ReportTaskStatusResponse>(
            &job_id,
            services::STATUS_REPORT,
            "ReportTaskStatus",
            &sc::ReportTaskStatusRequest {
                job_id: job_id.clone(),
                component: "nap".into(),
                version: 0,
                role: "arbiter".into(),
                party_id: "10001".into(),
                status: TaskStatus::Failed as i32,
                reason: "forged".into(),
                request_id: fedflow_rpc::new_request_id(),
            },
        )
        .await
        .expect_err("another party's status");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // The envelope must be about the job its call is about.
    let mut envelope = host.envelope(
        "000000000000000000000001",
        services::SCHEDULER,
        "GetJob",
        &sc::GetJobRequest {
            job_id: job_id.clone(),
            include_conf: false,
        },
        10_000,
    );
    envelope.job_id = "000000000000000000000001".into();
    let refused = host.send(envelope).await.expect_err("mismatched job");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    // The services check again on their own, behind the gateway: the caller's party as the
    // gateway vouches for it (x-fedflow-caller-party), against their own rows.
    fn as_caller<T>(message: T, party: &str) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            fedflow_rpc::party::CALLER_HEADER,
            party.parse().expect("a header value"),
        );
        request
    }
    let refused = fed
        .task_controller("10000")
        .stop_tasks(as_caller(stop_everything(&job_id), "10001"))
        .await
        .expect_err("a participant driving the host's tasks");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = fed
        .job_controller("10000")
        .get_job(as_caller(
            jc::GetJobRequest {
                job_id: job_id.clone(),
            },
            "10002",
        ))
        .await
        .expect_err("an outsider reading the host's job");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let refused = fed
        .scheduler("9999")
        .get_job(as_caller(
            sc::GetJobRequest {
                job_id: job_id.clone(),
                include_conf: false,
            },
            "10002",
        ))
        .await
        .expect_err("an outsider reading the job");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    fed.job_controller("10000")
        .get_job(as_caller(
            jc::GetJobRequest {
                job_id: job_id.clone(),
            },
            "10001",
        ))
        .await
        .expect("a participant reads the host's job");
    // Nothing the matrix sent changed the ended job.
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Success);
    fed.shutdown().await;
}

/// How many task versions the job has (one more per rerun of its one component).
async fn versions(fed: &TestFederation, job_id: &str) -> usize {
    scheduler_tasks(&mut fed.scheduler("9999"), job_id)
        .await
        .len()
}

/// Acceptance 3: a captured RerunJob from participant 10000, replayed on the same connection,
/// on another connection, altered, and after it expired: the job is rerun once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_party_call_never_takes_effect_twice_or_altered() {
    let fed = TestFederation::start(&["9999", "10000", "10001"]).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"boom": {"module": "Fail"}}});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"boom": {"attempts": 1000, "message": "always fails"}}}),
    );
    let job_id = submit(&mut scheduler, &dsl, &conf).await.expect("accepted");
    let ended = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(ended.status), JobStatus::Failed);
    assert_eq!(versions(&fed, &job_id).await, 1);

    let host = fed.as_party("10000", "9999");
    let rerun = sc::RerunJobRequest {
        job_id: job_id.clone(),
        component: String::new(),
        force: false,
        request_id: fedflow_rpc::new_request_id(),
    };
    let captured = host.envelope(&job_id, services::SCHEDULER, "RerunJob", &rerun, 6_000);
    let first = host
        .send(captured.clone())
        .await
        .expect("the rerun is taken");
    let ended = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(ended.status), JobStatus::Failed);
    assert_eq!(versions(&fed, &job_id).await, 2, "rerun once");

    // The same bytes again, on the same connection and on a new one: the first answer, no
    // second rerun.
    let again = host.send(captured.clone()).await.expect("answered");
    assert_eq!(again, first);
    let other_connection = fed.as_party("10000", "9999");
    let again = other_connection
        .send(captured.clone())
        .await
        .expect("answered");
    assert_eq!(again, first);
    // Altered: same request id, another body.
    let mut altered = captured.clone();
    altered.payload = prost::Message::encode_to_vec(&sc::RerunJobRequest {
        force: true,
        ..rerun.clone()
    })
    .into();
    let refused = host.send(altered).await.expect_err("altered");
    assert_eq!(refused.code(), Code::AlreadyExists, "{refused:?}");
    // After it expired.
    eventually("the captured envelope to expire", WITHIN, || {
        let deadline = captured.deadline_unix_ms;
        async move {
            (fedflow_rpc::now_ms() > deadline)
                .then_some(())
                .ok_or("not yet".to_owned())
        }
    })
    .await;
    let expired = host.send(captured.clone()).await.expect_err("expired");
    assert_eq!(expired.code(), Code::DeadlineExceeded, "{expired:?}");
    // From the future beyond the clock-skew tolerance: a distinct error.
    let mut future = host.envelope(&job_id, services::SCHEDULER, "RerunJob", &rerun, 6_000);
    future.issued_at_unix_ms += 600_000;
    future.deadline_unix_ms += 600_000;
    let skewed = host.send(future).await.expect_err("skewed");
    assert_eq!(skewed.code(), Code::FailedPrecondition, "{skewed:?}");
    assert!(skewed.message().contains("clock skew"), "{skewed:?}");

    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Failed);
    assert_eq!(versions(&fed, &job_id).await, 2, "never rerun twice");
    // A new call (new request id) is taken: the refusals above were the replays.
    let fresh = host.envelope(
        &job_id,
        services::SCHEDULER,
        "RerunJob",
        &sc::RerunJobRequest {
            request_id: fedflow_rpc::new_request_id(),
            ..rerun
        },
        6_000,
    );
    host.send(fresh).await.expect("a new rerun");
    wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(versions(&fed, &job_id).await, 3);
    // Behind the gateway's memory (after a gateway restart, say), the scheduler itself reruns
    // a job once per request id.
    let once = sc::RerunJobRequest {
        job_id: job_id.clone(),
        component: String::new(),
        force: false,
        request_id: fedflow_rpc::new_request_id(),
    };
    let first = scheduler
        .rerun_job(once.clone())
        .await
        .expect("rerun")
        .into_inner();
    assert_eq!(first.components, vec!["boom".to_owned()]);
    wait_ended(&mut scheduler, &job_id, WITHIN).await;
    let again = scheduler
        .rerun_job(once)
        .await
        .expect("answered")
        .into_inner();
    assert!(again.components.is_empty(), "{again:?}");
    assert_eq!(versions(&fed, &job_id).await, 4, "one rerun per request id");
    fed.shutdown().await;
}

/// The fingerprint of the certificate party `target`'s gateway serves now, seen by a fresh
/// connection from `party`.
async fn served_fingerprint(
    fed: &TestFederation,
    party: &str,
    target: &str,
) -> Result<String, String> {
    let pki = fed.pki(party);
    let material = fedflow_tls::Reloadable::load(
        fedflow_tls::TlsFiles {
            cert: pki.cert(),
            key: pki.key(),
            trust: std::collections::BTreeMap::from([(
                target.to_owned(),
                fed.pki(target).ca_cert(),
            )]),
        },
        party,
    )
    .map_err(|e| e.to_string())?;
    fedflow_tls::client::peer_fingerprint(&fed.federation_addr(target), material, target)
        .await
        .map_err(|e| e.to_string())
}

/// Acceptance 8: party 10000 rotates its gateway certificate, then its CA (the other parties
/// trust old and new CA during the overlap, then only the new one), while jobs run; no job
/// fails, and fresh connections see each new certificate without any restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_on_one_party_while_jobs_run_and_no_job_fails() {
    let fed = TestFederation::start_with(&["9999", "10000", "10001"], |o| {
        o.tls_reload_interval_ms = 100;
    })
    .await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["out"]}},
        "b": {"module": "Sleep", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "c": {"module": "Sleep", "input": {"data": {"data": ["b.out"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 0.4}, "b": {"seconds": 0.4}, "c": {"seconds": 0.4}}}),
    );
    let mut jobs = submit_many(&mut scheduler, &dsl, &conf, 4).await;
    let host = fed.pki("10000");
    let old = served_fingerprint(&fed, "9999", "10000")
        .await
        .expect("served");
    let staged = TempDir::new("fedflow-rotation");
    let original = (staged.path().join("old.crt"), staged.path().join("old.key"));
    std::fs::copy(host.cert(), &original.0).expect("keep the old certificate");
    std::fs::copy(host.key(), &original.1).expect("keep the old key");

    // 1. A new gateway key and certificate from the same CA.
    host.issue("10000", &["localhost".to_owned()], Validity::days(30))
        .expect("issue");
    let issued = fedflow_tls::material::file_fingerprint(&host.cert()).expect("fingerprint");
    assert_ne!(issued, old);
    eventually(
        "the host's gateway to serve its new certificate",
        WITHIN,
        || async {
            let seen = served_fingerprint(&fed, "9999", "10000").await?;
            (seen == issued).then_some(()).ok_or(seen)
        },
    )
    .await;
    jobs.extend(submit_many(&mut scheduler, &dsl, &conf, 4).await);

    // 2. A new CA: first trusted beside the old one (the bundle the others' routes name),
    //    then the gateway's certificate from it, then the old CA dropped.
    let old_ca = std::fs::read_to_string(host.ca_cert()).expect("ca.crt");
    let new_ca = pki::new_ca("10000", Validity::days(365)).expect("a new CA");
    pki::write_atomic(
        &host.ca_cert(),
        format!("{old_ca}{}", new_ca.cert).as_bytes(),
        false,
    )
    .expect("the overlap bundle");
    let next = pki::issue_gateway(
        &new_ca,
        "10000",
        &["localhost".to_owned()],
        Validity::days(30),
    )
    .expect("issue");
    let (cert, key) = write_pem(staged.path(), "next", &next);
    // The other parties accept the new CA's certificate once they re-read the bundle.
    eventually("party 9999 to trust the host's new CA", WITHIN, || async {
        let caller = fed.with_certificate("10000", &cert, &key, "9999");
        caller
            .call::<_, sc::GetJobResponse>(
                &jobs[0],
                services::SCHEDULER,
                "GetJob",
                &sc::GetJobRequest {
                    job_id: jobs[0].clone(),
                    include_conf: false,
                },
            )
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    pki::write_atomic(&host.key(), next.key.as_bytes(), true).expect("key");
    pki::write_atomic(&host.cert(), next.cert.as_bytes(), false).expect("cert");
    let issued = fedflow_tls::material::file_fingerprint(&host.cert()).expect("fingerprint");
    eventually(
        "the host's gateway to serve the new CA's certificate",
        WITHIN,
        || async {
            let seen = served_fingerprint(&fed, "9999", "10000").await?;
            (seen == issued).then_some(()).ok_or(seen)
        },
    )
    .await;
    jobs.extend(submit_many(&mut scheduler, &dsl, &conf, 4).await);
    pki::write_atomic(&host.ca_cert(), new_ca.cert.as_bytes(), false).expect("new CA only");
    pki::write_atomic(&host.ca_key(), new_ca.key.as_bytes(), true).expect("new CA key");
    jobs.extend(submit_many(&mut scheduler, &dsl, &conf, 2).await);
    // Once the others re-read the bundle, the old CA's certificates are refused.
    eventually(
        "party 9999 to refuse the host's old certificate",
        WITHIN,
        || async {
            let caller = fed.with_certificate("10000", &original.0, &original.1, "9999");
            match caller
                .call::<_, sc::GetJobResponse>(
                    &jobs[0],
                    services::SCHEDULER,
                    "GetJob",
                    &sc::GetJobRequest {
                        job_id: jobs[0].clone(),
                        include_conf: false,
                    },
                )
                .await
            {
                Ok(_) => Err("still accepted".to_owned()),
                Err(e) if e.code() == Code::PermissionDenied => Err(e.to_string()),
                Err(_) => Ok(()),
            }
        },
    )
    .await;

    for job_id in &jobs {
        let job = wait_ended(&mut scheduler, job_id, WITHIN).await;
        assert_eq!(
            job_status(job.status),
            JobStatus::Success,
            "job {job_id}: {}",
            job.reason
        );
    }
    // Fresh connections both ways work with the new material.
    served_fingerprint(&fed, "9999", "10000")
        .await
        .expect("9999 dials the host");
    fed.as_party("10000", "9999")
        .call::<_, sc::GetJobResponse>(
            &jobs[0],
            services::SCHEDULER,
            "GetJob",
            &sc::GetJobRequest {
                job_id: jobs[0].clone(),
                include_conf: false,
            },
        )
        .await
        .expect("the host dials 9999 with its new certificate");
    fed.shutdown().await;
}

/// The optional client port of a scheduler (`api.*`): TLS and a bearer token; a party's
/// identity cannot be claimed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_client_port_asks_for_tls_and_a_token() {
    let dir = TempDir::new("fedflow-api");
    let pki = pki::Layout::new(dir.path().join("pki"));
    pki.init(
        "9999",
        &["localhost".to_owned(), "127.0.0.1".to_owned()],
        Validity::days(2),
        Validity::days(1),
    )
    .expect("a certificate for the client port");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("write the token");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let api = format!("127.0.0.1:{port}");
    let mut config = fedflow_scheduler::Config {
        database: fedflow_config::DatabaseConfig {
            url: fedflow_store::sqlite_url(&dir.path().join("scheduler.db")),
            max_connections: 4,
        },
        gateway: "127.0.0.1:1".into(),
        ..Default::default()
    };
    config.api = fedflow_scheduler::config::Api {
        listen: api.clone(),
        token_file: token_file.clone(),
        tls_cert: pki.cert(),
        tls_key: pki.key(),
    };
    let listener = fedflow_rpc::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let api_listener = fedflow_rpc::server::bind(&api)
        .await
        .expect("bind the client port");
    let listeners = fedflow_scheduler::Listeners {
        grpc: listener,
        api: Some(api_listener),
        board: None,
    };
    let server = tokio::spawn(fedflow_scheduler::run(config, listeners, shutdown.clone()));

    let channel = fedflow_tls::client::server_auth_channel(&api, &pki.ca_cert()).expect("channel");
    let client = sc::scheduler_client::SchedulerClient::new(channel);
    let list = |token: Option<&str>, claim: Option<&str>| {
        let mut client = client.clone();
        let mut request = tonic::Request::new(sc::ListJobsRequest {
            limit: 5,
            ..Default::default()
        });
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        if let Some(party) = claim {
            request.metadata_mut().insert(
                fedflow_rpc::party::CALLER_HEADER,
                party.parse().expect("header"),
            );
        }
        async move { client.list_jobs(request).await.map(|_| ()) }
    };
    eventually("the client port to answer", WITHIN, || async {
        match list(Some("s3cret-token"), None).await {
            Ok(()) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let refused = list(None, None).await.expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = list(Some("guess"), None).await.expect_err("a wrong token");
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // A client cannot pass itself off as another party here: the header is dropped, and the
    // call is a client's (ListJobs is refused to parties).
    list(Some("s3cret-token"), Some("10000"))
        .await
        .expect("a client's call");
    // Plaintext to the TLS port fails.
    let mut plain = sc::scheduler_client::SchedulerClient::new(fedflow_tests::channel(&api));
    assert!(
        plain
            .list_jobs(sc::ListJobsRequest {
                limit: 5,
                ..Default::default()
            })
            .await
            .is_err()
    );
    // The CLI: --ca-cert and --token (or FEDFLOW_TOKEN).
    let cli = |token: Option<&str>| {
        let mut command = std::process::Command::new(fedflow_tests::bin("fedflow"));
        command.args([
            "--scheduler",
            &api,
            "--ca-cert",
            &pki.ca_cert().display().to_string(),
            "job",
            "list",
        ]);
        command.env_remove("FEDFLOW_TOKEN");
        if let Some(token) = token {
            command.env("FEDFLOW_TOKEN", token);
        }
        command.output().expect("run fedflow")
    };
    let out = cli(Some("s3cret-token"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    shutdown.cancel();
    server
        .await
        .expect("the scheduler task")
        .expect("the scheduler ends cleanly");
}
