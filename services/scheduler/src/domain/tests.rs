//! Table tests of the scheduler's decisions: each row is the job's rows and the time, and the
//! decisions expected, in order.

use std::collections::{BTreeMap, BTreeSet};

use fedflow_core::dsl::{self, JobSpec};
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use serde_json::{Value, json};

use super::plan::{self, Attempt, Decision, JobLimits, TaskRef};
use super::queue::{self, Answer, Step};
use super::versions;
use super::{Job, Task, TaskParty};
use crate::config::Scheduling;

use JobStatus as J;
use TaskStatus::*;

const JOB: &str = "202601010000000000000001";
const NOW: i64 = 1_000_000;

/// guest 9999 (initiator), host 10000.
fn conf(job_parameters: Value) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": job_parameters},
    })
}

/// a → (b, c) → d.
fn diamond() -> JobSpec {
    spec_with(json!({}))
}

fn spec_with(job_parameters: Value) -> JobSpec {
    let dsl = json!({"components": {
        "a": {"module": "Sum", "output": {"data": ["out"]}},
        "b": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "c": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "d": {"module": "Sum", "input": {"data": {"data": ["b.out", "c.out"]}}, "output": {"data": ["out"]}}
    }});
    dsl::parse(
        &dsl.to_string(),
        &conf(job_parameters).to_string(),
        &dsl::Limits::default(),
    )
    .expect("the test job parses")
}

fn guest() -> Participant {
    Participant {
        role: "guest".into(),
        party_id: "9999".into(),
    }
}

fn host() -> Participant {
    Participant {
        role: "host".into(),
        party_id: "10000".into(),
    }
}

fn limits() -> JobLimits {
    JobLimits {
        job_timeout_ms: 100_000,
        task_timeout_ms: 10_000,
        queue_timeout_ms: 50_000,
        auto_retries: 0,
        retry_delay_ms: 2_000,
        parallelism: 2,
    }
}

fn job(status: JobStatus) -> Job {
    Job {
        job_id: JOB.into(),
        status,
        dsl: String::new(),
        conf: String::new(),
        initiator: guest(),
        priority: 0,
        reason: String::new(),
        pending_reason: String::new(),
        cancel_requested: false,
        progress: 0,
        request_id: None,
        create_ms: NOW - 60_000,
        start_ms: NOW - 50_000,
        end_ms: 0,
        queued_ms: NOW - 55_000,
    }
}

fn canceling() -> Job {
    Job {
        cancel_requested: true,
        ..job(J::Running)
    }
}

/// One task version: (component, version, federated status), with each party's status (guest,
/// host) and reason.
struct Row {
    component: &'static str,
    version: i32,
    status: TaskStatus,
    parties: [(TaskStatus, &'static str); 2],
    start_ms: i64,
    retries_left: u32,
    not_before_ms: i64,
    reason: &'static str,
}

fn row(component: &'static str, status: TaskStatus, guest: TaskStatus, host: TaskStatus) -> Row {
    Row {
        component,
        version: 0,
        status,
        parties: [(guest, ""), (host, "")],
        start_ms: if status == Waiting { 0 } else { NOW - 1_000 },
        retries_left: 0,
        not_before_ms: 0,
        reason: "",
    }
}

/// A task whose every party agrees with its federated status.
fn at(component: &'static str, status: TaskStatus) -> Row {
    row(component, status, status, status)
}

fn rows(rows: Vec<Row>) -> (BTreeMap<String, Task>, Vec<TaskParty>) {
    let mut tasks = Vec::new();
    let mut parties = Vec::new();
    for r in rows {
        tasks.push(Task {
            job_id: JOB.into(),
            component: r.component.into(),
            version: r.version,
            module: "Sum".into(),
            status: r.status,
            reason: r.reason.into(),
            retries_left: r.retries_left,
            not_before_ms: r.not_before_ms,
            start_ms: r.start_ms,
            end_ms: 0,
        });
        for (who, (status, reason)) in [guest(), host()].into_iter().zip(r.parties) {
            parties.push(TaskParty {
                job_id: JOB.into(),
                component: r.component.into(),
                version: r.version,
                who,
                status,
                reason: reason.into(),
                update_ms: NOW - 1_000,
            });
        }
    }
    (plan::latest(tasks), parties)
}

fn task(component: &str, version: i32) -> TaskRef {
    TaskRef {
        component: component.into(),
        version,
    }
}

fn start(component: &str) -> Decision {
    Decision::Start(task(component, 0))
}

fn set(component: &str, from: TaskStatus, to: TaskStatus, reason: &str) -> Decision {
    Decision::SetTask {
        task: task(component, 0),
        from,
        to,
        reason: reason.into(),
    }
}

fn end(status: JobStatus, reason: &str) -> Decision {
    Decision::EndJob {
        status,
        reason: reason.into(),
    }
}

fn wake_after_start() -> Decision {
    Decision::WakeAt(NOW + limits().task_timeout_ms)
}

struct Case {
    name: &'static str,
    job: Job,
    spec: JobSpec,
    limits: JobLimits,
    tasks: Vec<Row>,
    now: i64,
    want: Vec<Decision>,
}

fn case(name: &'static str, job: Job, tasks: Vec<Row>, want: Vec<Decision>) -> Case {
    Case {
        name,
        job,
        spec: diamond(),
        limits: limits(),
        tasks,
        now: NOW,
        want,
    }
}

fn run(cases: Vec<Case>) {
    for c in cases {
        let (latest, parties) = rows(c.tasks);
        let got = plan::plan(&c.job, &c.spec, &latest, &parties, &c.limits, c.now);
        assert_eq!(got, c.want, "{}", c.name);
    }
}

fn waiting_diamond_after_a(a: Row) -> Vec<Row> {
    vec![a, at("b", Waiting), at("c", Waiting), at("d", Waiting)]
}

#[test]
fn a_fresh_running_job_starts_its_roots_and_wakes_at_their_timeout() {
    run(vec![
        case(
            "the root starts",
            job(J::Running),
            vec![
                at("a", Waiting),
                at("b", Waiting),
                at("c", Waiting),
                at("d", Waiting),
            ],
            vec![start("a"), wake_after_start()],
        ),
        case(
            "a waiting job only follows its parties",
            job(J::Waiting),
            waiting_diamond_after_a(row("a", Waiting, Running, Waiting)),
            vec![set("a", Waiting, Running, "")],
        ),
        case(
            "an ended job starts nothing",
            job(J::Failed),
            waiting_diamond_after_a(at("a", Success)),
            vec![],
        ),
    ]);
}

#[test]
fn the_federated_status_follows_the_mixed_party_statuses() {
    let failed_on_host = |guest: TaskStatus| Row {
        parties: [(guest, ""), (Failed, "exit 3")],
        ..at("a", Running)
    };
    run(vec![
        case(
            "one party running moves a waiting task to running",
            job(J::Running),
            waiting_diamond_after_a(row("a", Waiting, Running, Waiting)),
            vec![set("a", Waiting, Running, "")],
        ),
        case(
            "success and pass make success; its successors start",
            job(J::Running),
            waiting_diamond_after_a(row("a", Running, Success, Pass)),
            vec![
                set("a", Running, Success, ""),
                Decision::RaiseProgress(25),
                start("b"),
                start("c"),
                wake_after_start(),
            ],
        ),
        case(
            "one failed party fails the task with its reason, and the job",
            job(J::Running),
            waiting_diamond_after_a(failed_on_host(Running)),
            vec![
                set(
                    "a",
                    Running,
                    Failed,
                    "component a failed on host 10000: exit 3",
                ),
                Decision::RaiseProgress(25),
                end(J::Failed, "component a failed on host 10000: exit 3"),
            ],
        ),
        case(
            "failed outranks canceled",
            job(J::Running),
            waiting_diamond_after_a(Row {
                parties: [(Canceled, "stopped"), (Failed, "exit 3")],
                ..at("a", Running)
            }),
            vec![
                set(
                    "a",
                    Running,
                    Failed,
                    "component a failed on host 10000: exit 3",
                ),
                Decision::RaiseProgress(25),
                end(J::Failed, "component a failed on host 10000: exit 3"),
            ],
        ),
        case(
            "a status the table forbids is not written",
            job(J::Waiting),
            waiting_diamond_after_a(row("a", Success, Running, Running)),
            vec![],
        ),
    ]);
}

#[test]
fn a_component_that_is_not_run_passes_and_its_successors_start() {
    run(vec![
        case(
            "every party passes: pass",
            job(J::Running),
            waiting_diamond_after_a(row("a", Running, Pass, Pass)),
            vec![
                set("a", Running, Pass, ""),
                Decision::RaiseProgress(25),
                start("b"),
                start("c"),
                wake_after_start(),
            ],
        ),
        case(
            "a job of passed and succeeded tasks succeeds",
            job(J::Running),
            vec![
                at("a", Pass),
                at("b", Success),
                at("c", Pass),
                row("d", Running, Success, Success),
            ],
            vec![
                set("d", Running, Success, ""),
                Decision::RaiseProgress(100),
                end(J::Success, ""),
            ],
        ),
    ]);
}

#[test]
fn the_job_timeout_ends_the_job_from_its_start() {
    let started = |start_ms| Job {
        start_ms,
        ..job(J::Running)
    };
    let reason = "job timeout: still running after 100s (timeout, counted from the job's start)";
    run(vec![
        case(
            "at the limit",
            started(NOW - 100_000),
            waiting_diamond_after_a(at("a", Running)),
            vec![end(J::Timeout, reason)],
        ),
        case(
            "a millisecond before",
            started(NOW - 99_999),
            waiting_diamond_after_a(at("a", Running)),
            vec![],
        ),
        case(
            "after the federated statuses",
            started(NOW - 200_000),
            waiting_diamond_after_a(row("a", Running, Success, Success)),
            vec![set("a", Running, Success, ""), end(J::Timeout, reason)],
        ),
    ]);
}

#[test]
fn the_task_timeout_stops_the_task_everywhere_and_times_out_each_party_that_has_not_ended() {
    let reason = "task timeout: component a still running after 10s (task_timeout)";
    let running_since = |start_ms| Row {
        start_ms,
        ..row("a", Running, Running, Success)
    };
    run(vec![
        case(
            "at the limit",
            job(J::Running),
            waiting_diamond_after_a(running_since(NOW - 10_000)),
            vec![
                Decision::StopTask {
                    task: task("a", 0),
                    status: Timeout,
                    reason: reason.into(),
                },
                Decision::SetParty {
                    task: task("a", 0),
                    who: guest(),
                    from: Running,
                    to: Timeout,
                    reason: reason.into(),
                },
            ],
        ),
        case(
            "before it",
            job(J::Running),
            waiting_diamond_after_a(running_since(NOW - 9_999)),
            vec![],
        ),
    ]);
}

#[test]
fn a_failure_with_retries_left_makes_a_new_version_after_the_delay() {
    let failed = |retries_left, version| Row {
        version,
        retries_left,
        reason: "component a failed on host 10000: exit 3",
        ..row("a", Failed, Running, Failed)
    };
    let retry_at = NOW + limits().retry_delay_ms;
    let waiting_retry = |not_before_ms| Row {
        version: 1,
        not_before_ms,
        ..at("a", Waiting)
    };
    run(vec![
        case(
            "retries left: the other copies stop, a new version waits out the delay",
            job(J::Running),
            waiting_diamond_after_a(failed(2, 0)),
            vec![
                Decision::StopTask {
                    task: task("a", 0),
                    status: Canceled,
                    reason: "another party's copy ended failed; retrying".into(),
                },
                Decision::Retry(Attempt {
                    failed: task("a", 0),
                    status: Failed,
                    reason: "component a failed on host 10000: exit 3".into(),
                    version: 1,
                    retries_left: 1,
                    not_before_ms: retry_at,
                }),
                Decision::WakeAt(retry_at),
            ],
        ),
        case(
            "the retry does not start before its delay",
            job(J::Running),
            waiting_diamond_after_a(waiting_retry(retry_at)),
            vec![Decision::WakeAt(retry_at)],
        ),
        case(
            "it starts once the delay passed",
            job(J::Running),
            waiting_diamond_after_a(waiting_retry(NOW)),
            vec![Decision::Start(task("a", 1)), wake_after_start()],
        ),
        case(
            "no retries left: the failure ends the job, naming the attempt",
            job(J::Running),
            waiting_diamond_after_a(failed(0, 1)),
            vec![
                Decision::RaiseProgress(25),
                end(
                    J::Failed,
                    "component a failed on host 10000: exit 3 (attempt 2)",
                ),
            ],
        ),
        case(
            "the first attempt is not numbered",
            job(J::Running),
            waiting_diamond_after_a(failed(0, 0)),
            vec![
                Decision::RaiseProgress(25),
                end(J::Failed, "component a failed on host 10000: exit 3"),
            ],
        ),
        case(
            "a stop asked for retries nothing",
            canceling(),
            waiting_diamond_after_a(failed(2, 0)),
            vec![
                Decision::RaiseProgress(25),
                end(J::Failed, "component a failed on host 10000: exit 3"),
            ],
        ),
    ]);
}

#[test]
fn a_stop_ends_the_job_canceled_and_starts_nothing() {
    run(vec![
        case(
            "between tasks",
            canceling(),
            waiting_diamond_after_a(at("a", Success)),
            vec![Decision::RaiseProgress(25), end(J::Canceled, "")],
        ),
        case(
            "with the parties' copies canceled",
            canceling(),
            waiting_diamond_after_a(Row {
                parties: [(Canceled, "job canceled"), (Canceled, "job canceled")],
                ..at("a", Running)
            }),
            vec![
                set(
                    "a",
                    Running,
                    Canceled,
                    "component a canceled on guest 9999: job canceled",
                ),
                Decision::RaiseProgress(25),
                end(J::Canceled, ""),
            ],
        ),
        case(
            "a job that succeeded meanwhile stays a success",
            canceling(),
            vec![
                at("a", Success),
                at("b", Success),
                at("c", Success),
                at("d", Success),
            ],
            vec![Decision::RaiseProgress(100), end(J::Success, "")],
        ),
    ]);
}

#[test]
fn the_parallelism_caps_the_tasks_started() {
    let with = |parallelism| Case {
        limits: JobLimits {
            parallelism,
            ..limits()
        },
        ..case(
            "",
            job(J::Running),
            waiting_diamond_after_a(at("a", Success)),
            vec![],
        )
    };
    let mut one = with(1);
    one.name = "one at a time";
    one.want = vec![Decision::RaiseProgress(25), start("b"), wake_after_start()];
    let mut two = with(2);
    two.name = "two at a time";
    two.want = vec![
        Decision::RaiseProgress(25),
        start("b"),
        start("c"),
        wake_after_start(),
    ];
    let mut full = with(1);
    full.name = "one running already";
    full.tasks = vec![
        at("a", Success),
        at("b", Running),
        at("c", Waiting),
        at("d", Waiting),
    ];
    full.want = vec![Decision::RaiseProgress(25)];
    run(vec![one, two, full]);
}

#[test]
fn limits_come_from_the_initiator_job_parameters_else_the_defaults() {
    let defaults = Scheduling::default();
    let got = JobLimits::from_spec(&diamond(), &defaults);
    assert_eq!(
        got,
        JobLimits {
            job_timeout_ms: 12 * 3600 * 1000,
            task_timeout_ms: 4 * 3600 * 1000,
            queue_timeout_ms: 3600 * 1000,
            auto_retries: 0,
            retry_delay_ms: 1000,
            parallelism: 1,
        }
    );
    let spec = spec_with(json!({
        "timeout": 60, "task_timeout": 30, "queue_timeout": 20,
        "auto_retries": 2, "auto_retry_delay": 0.5, "task_parallelism": 3
    }));
    assert_eq!(
        JobLimits::from_spec(&spec, &defaults),
        JobLimits {
            job_timeout_ms: 60_000,
            task_timeout_ms: 30_000,
            queue_timeout_ms: 20_000,
            auto_retries: 2,
            retry_delay_ms: 500,
            parallelism: 3,
        }
    );
}

#[test]
fn the_queue_ends_cancels_times_out_waits_behind_or_applies() {
    let waiting = job(J::Waiting);
    let soon = waiting.queued_ms + 1;
    let none = BTreeSet::new();
    let host_busy: BTreeSet<String> = ["10000".to_owned()].into();
    let cases: Vec<(&str, Job, &BTreeSet<String>, i64, Step)> = vec![
        ("moved meanwhile", job(J::Running), &none, soon, Step::Skip),
        (
            "a stop was asked for",
            Job {
                cancel_requested: true,
                ..job(J::Waiting)
            },
            &none,
            soon,
            Step::Cancel,
        ),
        (
            "its queue timeout passed",
            Job {
                pending_reason: "waiting for resources: party 10000 (host) lacks 4 cores".into(),
                ..job(J::Waiting)
            },
            &none,
            waiting.queued_ms + 50_000,
            Step::TimeOut(
                "queue timeout: waited more than 50s for resources (queue_timeout); waiting for resources: party 10000 (host) lacks 4 cores".into(),
            ),
        ),
        (
            "an earlier job waits for one of its parties",
            job(J::Waiting),
            &host_busy,
            soon,
            Step::Behind {
                party: "10000".into(),
                pending_reason: Some("queued behind earlier jobs waiting for party 10000".into()),
            },
        ),
        (
            "behind, with a reason already",
            Job {
                pending_reason: "waiting for resources: x".into(),
                ..job(J::Waiting)
            },
            &host_busy,
            soon,
            Step::Behind {
                party: "10000".into(),
                pending_reason: None,
            },
        ),
        ("its turn", job(J::Waiting), &none, waiting.queued_ms + 49_999, Step::Apply),
    ];
    for (name, job, contended, now, want) in cases {
        assert_eq!(
            queue::step(&job, &diamond(), &limits(), contended, now),
            want,
            "{name}"
        );
    }
}

#[test]
fn resources_are_all_or_nothing() {
    let all = queue::admission(vec![(guest(), Answer::Granted), (host(), Answer::Granted)]);
    assert_eq!(all.granted, vec![guest(), host()]);
    assert!(all.missing.is_empty() && all.refused.is_empty());
    let some = queue::admission(vec![
        (guest(), Answer::Granted),
        (host(), Answer::Refused("4 cores (2 free)".into())),
    ]);
    assert_eq!(
        some.granted,
        vec![guest()],
        "what was granted is given back"
    );
    assert_eq!(some.refused, vec!["10000".to_owned()]);
    assert_eq!(
        queue::waiting_reason(&some.missing),
        "waiting for resources: party 10000 (host) lacks 4 cores (2 free)"
    );
    let silent = queue::admission(vec![(host(), Answer::Silent("unreachable".into()))]);
    assert!(silent.refused.is_empty(), "silence contends for nothing");
    assert_eq!(
        silent.missing,
        vec!["party 10000 (host) did not answer: unreachable".to_owned()]
    );
}

#[test]
fn a_rerun_makes_new_versions_of_its_components_and_everything_downstream() {
    let spec = diamond();
    let latest = |statuses: [(&'static str, i32, TaskStatus); 4]| {
        rows(
            statuses
                .into_iter()
                .map(|(c, version, s)| Row {
                    version,
                    ..at(c, s)
                })
                .collect(),
        )
        .0
    };
    let ended = latest([
        ("a", 0, Success),
        ("b", 2, Failed),
        ("c", 0, Canceled),
        ("d", 0, Waiting),
    ]);
    let versions = |pairs: &[(&str, i32)]| -> BTreeMap<String, i32> {
        pairs.iter().map(|(c, v)| ((*c).to_owned(), *v)).collect()
    };
    type Want = Result<BTreeMap<String, i32>, versions::RerunRefused>;
    let cases: Vec<(&str, &str, bool, Want)> = vec![
        (
            "what did not succeed, and downstream",
            "",
            false,
            Ok(versions(&[("b", 3), ("c", 1), ("d", 1)])),
        ),
        (
            "a named component and downstream",
            "a",
            false,
            Ok(versions(&[("a", 1), ("b", 3), ("c", 1), ("d", 1)])),
        ),
        ("a leaf", "d", false, Ok(versions(&[("d", 1)]))),
        (
            "an unknown component",
            "e",
            false,
            Err(versions::RerunRefused::NoSuchComponent {
                job_id: JOB.into(),
                component: "e".into(),
            }),
        ),
    ];
    for (name, component, force, want) in cases {
        let got = versions::rerun(JOB, &spec, &ended, component, force).map(|r| r.versions);
        assert_eq!(got, want, "{name}");
    }
    let done = latest([
        ("a", 0, Success),
        ("b", 0, Pass),
        ("c", 1, Success),
        ("d", 0, Success),
    ]);
    let refused = versions::rerun(JOB, &spec, &done, "", false).expect_err("nothing failed");
    assert_eq!(
        refused.to_string(),
        format!("job {JOB}: every component succeeded; nothing to rerun (use --force)")
    );
    assert_eq!(
        versions::RerunRefused::NoSuchComponent {
            job_id: JOB.into(),
            component: "e".into()
        }
        .to_string(),
        format!("component: job {JOB} has no component \"e\"")
    );
    let forced = versions::rerun(JOB, &spec, &done, "", true).expect("force reruns all");
    assert_eq!(
        forced.versions,
        versions(&[("a", 1), ("b", 1), ("c", 2), ("d", 1)])
    );
}

#[test]
fn new_versions_have_a_waiting_row_per_participant_and_one_creation_each() {
    let spec = diamond();
    let first = versions::first_versions(&spec);
    let (tasks, parties) = versions::new_version_rows(JOB, &spec, &first, 2, 0, NOW);
    assert_eq!(tasks.len(), 4);
    assert_eq!(parties.len(), 8);
    assert!(
        tasks
            .iter()
            .all(|t| t.version == 0 && t.status == Waiting && t.retries_left == 2)
    );
    assert!(
        parties
            .iter()
            .all(|p| p.status == Waiting && p.update_ms == NOW)
    );
    let retry: BTreeMap<String, i32> = [("b".to_owned(), 3)].into();
    let (tasks, parties) = versions::new_version_rows(JOB, &spec, &retry, 1, NOW + 5, NOW);
    assert_eq!(tasks.len(), 1);
    assert_eq!(
        (tasks[0].module.as_str(), tasks[0].not_before_ms),
        ("Sum", NOW + 5)
    );
    assert_eq!(
        parties.iter().map(|p| p.who.clone()).collect::<Vec<_>>(),
        vec![guest(), host()]
    );
    let sent = versions::creations(&spec, &first).expect("plans");
    assert_eq!(
        sent.iter()
            .map(|(who, v, plans)| (who.party_id.as_str(), *v, plans.len()))
            .collect::<Vec<_>>(),
        vec![("9999", 0, 4), ("10000", 0, 4)]
    );
    let sent = versions::creations(&spec, &retry).expect("plans");
    assert_eq!(
        sent.iter()
            .map(|(who, v, plans)| (who.party_id.as_str(), *v, plans.len()))
            .collect::<Vec<_>>(),
        vec![("9999", 3, 1), ("10000", 3, 1)]
    );
}

#[test]
fn the_federated_status_of_one_version_is_derived_from_every_party_row() {
    type Parties = [(TaskStatus, &'static str); 2];
    type Want = Option<(TaskStatus, &'static str)>;
    let cases: Vec<(TaskStatus, Parties, Want)> = vec![
        (Waiting, [(Waiting, ""), (Waiting, "")], None),
        (Waiting, [(Waiting, ""), (Running, "")], Some((Running, ""))),
        (Waiting, [(Success, ""), (Waiting, "")], Some((Running, ""))),
        (Running, [(Success, ""), (Running, "")], None),
        (Running, [(Success, ""), (Success, "")], Some((Success, ""))),
        (Running, [(Pass, ""), (Pass, "")], Some((Pass, ""))),
        (Running, [(Pass, ""), (Success, "")], Some((Success, ""))),
        (
            Running,
            [(Timeout, "slow"), (Canceled, "stopped")],
            Some((Timeout, "component a timeout on guest 9999: slow")),
        ),
        (
            Waiting,
            [(Waiting, ""), (Failed, "could not start")],
            Some((Failed, "component a failed on host 10000: could not start")),
        ),
        // Timeout may still settle as failed; an end status never goes back.
        (
            Timeout,
            [(Timeout, "slow"), (Failed, "exit 1")],
            Some((Failed, "component a failed on host 10000: exit 1")),
        ),
        (Success, [(Running, ""), (Running, "")], None),
        (Failed, [(Success, ""), (Success, "")], None),
    ];
    for (status, parties, want) in cases {
        let (latest, rows) = rows(vec![Row {
            parties,
            ..at("a", status)
        }]);
        let got = plan::federated_status(&latest["a"], &rows);
        let want = want.map(|(s, r)| (s, r.to_owned()));
        assert_eq!(got, want, "{status} with parties {parties:?}");
    }
}

#[test]
fn a_round_that_only_records_or_ends_settles() {
    let settled = [
        set("a", Waiting, Running, ""),
        Decision::RaiseProgress(50),
        end(J::Failed, "x"),
        Decision::WakeAt(NOW),
    ];
    assert!(!plan::unsettled(&settled));
    for changing in [
        start("a"),
        Decision::StopTask {
            task: task("a", 0),
            status: Canceled,
            reason: String::new(),
        },
    ] {
        assert!(
            plan::unsettled(std::slice::from_ref(&changing)),
            "{changing:?}"
        );
    }
}
