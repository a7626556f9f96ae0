//! The job list among many jobs: filters by status, participant, submit time and job id text;
//! keyset pages that return each job once, newest first, while more jobs are submitted; bad
//! filters refused naming the field. And `fedflow job dag`, drawn from a finished diamond.

use std::collections::{BTreeMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::*;
use serde_json::{Value, json};
use tonic::transport::Channel;

const PARTIES: &[&str] = &["9999", "10000", "10001"];
const WITHIN: Duration = Duration::from_secs(90);

type Client = sc::scheduler_client::SchedulerClient<Channel>;

/// One `Sleep` component (`seconds`), or one `Fail` that fails every attempt.
fn one(module: &str) -> Value {
    json!({"components": {"a": {"module": module, "output": {"data": ["out"]}}}})
}

/// A conf with guest 9999 (the initiator) and `roles`, no retries.
fn conf(roles: Value, a: Value) -> Value {
    let mut role = json!({"guest": [9999]});
    for (k, v) in roles.as_object().expect("roles").iter() {
        role[k] = v.clone();
    }
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": role,
        "job_parameters": {"common": {"task_cores": 1, "auto_retries": 0}},
        "component_parameters": {"common": {"a": a}},
    })
}

fn cli(fed: &TestFederation, args: &[&str]) -> std::process::Output {
    Command::new(bin("fedflow"))
        .arg("--scheduler")
        .arg(fed.scheduler_addr("9999"))
        .args(args)
        .output()
        .expect("run the fedflow CLI")
}

fn cli_json(fed: &TestFederation, args: &[&str]) -> Value {
    let out = cli(fed, args);
    let text = succeeded(&out);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("fedflow {args:?}: not JSON ({e}): {text}"))
}

async fn list(client: &mut Client, request: sc::ListJobsRequest) -> sc::ListJobsResponse {
    client
        .list_jobs(request)
        .await
        .unwrap_or_else(|s| panic!("ListJobs: {s:?}"))
        .into_inner()
}

/// Every page of `request`'s filter, `limit` at a time, running `between` after each page.
async fn all_pages<F, Fut>(
    client: &mut Client,
    request: sc::ListJobsRequest,
    mut between: F,
) -> Vec<sc::Job>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut jobs = Vec::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let page = list(
            client,
            sc::ListJobsRequest {
                page_token: token.clone(),
                ..request.clone()
            },
        )
        .await;
        assert!(
            page.jobs.len() <= request.limit as usize,
            "a page over its limit"
        );
        jobs.extend(page.jobs);
        if page.next_page_token.is_empty() {
            return jobs;
        }
        token = page.next_page_token;
        between().await;
    }
    panic!("paging did not end after 1000 pages");
}

fn ids(jobs: &[sc::Job]) -> Vec<String> {
    jobs.iter().map(|j| j.job_id.clone()).collect()
}

/// Newest first: create time, then job id, both descending, and no job twice.
fn assert_newest_first_once(jobs: &[sc::Job]) {
    let keys: Vec<(i64, &str)> = jobs
        .iter()
        .map(|j| (j.create_time_ms, j.job_id.as_str()))
        .collect();
    for pair in keys.windows(2) {
        assert!(pair[0] > pair[1], "not newest first: {pair:?}");
    }
}

async fn stop(client: &mut Client, job_id: &str) {
    client
        .stop_job(sc::StopJobRequest {
            job_id: job_id.to_owned(),
            request_id: String::new(),
        })
        .await
        .unwrap_or_else(|s| panic!("stop {job_id}: {s:?}"));
}

async fn wait_status(client: &mut Client, job_id: &str, want: JobStatus) {
    eventually(&format!("job {job_id} {want:?}"), WITHIN, || {
        let mut client = client.clone();
        async move {
            let job = get_job(&mut client, job_id).await?;
            (job_status(job.status) == want)
                .then_some(())
                .ok_or_else(|| format!("{:?} {}", job_status(job.status), job.reason))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_filters_and_pages_return_each_matching_job_once_while_jobs_are_submitted() {
    // Host 10000 has one core: a long job there keeps every later one of its jobs waiting,
    // so most of the 60 jobs cost no worker.
    let fed = TestFederation::start_with_host_cores(PARTIES, 1).await;
    let mut client = fed.scheduler("9999");
    let on_10000 = json!({"host": [10000]});
    let on_10001 = json!({"host": [10001]});
    let mut expected: BTreeMap<String, JobStatus> = BTreeMap::new();

    let blocker = submit(
        &mut client,
        &one("Sleep"),
        &conf(on_10000.clone(), json!({"seconds": 600})),
    )
    .await
    .expect("accepted");
    wait_status(&mut client, &blocker, JobStatus::Running).await;
    expected.insert(blocker.clone(), JobStatus::Running);
    let other_running = submit(
        &mut client,
        &one("Sleep"),
        &conf(on_10001.clone(), json!({"seconds": 600})),
    )
    .await
    .expect("accepted");
    expected.insert(other_running.clone(), JobStatus::Running);
    for _ in 0..6 {
        let id = submit(
            &mut client,
            &one("Sleep"),
            &conf(on_10001.clone(), json!({"seconds": 0})),
        )
        .await
        .expect("accepted");
        expected.insert(id, JobStatus::Success);
    }
    for _ in 0..4 {
        let id = submit(
            &mut client,
            &one("Fail"),
            &conf(on_10001.clone(), json!({"attempts": 100})),
        )
        .await
        .expect("accepted");
        expected.insert(id, JobStatus::Failed);
    }
    let waiting = submit_many(
        &mut client,
        &one("Sleep"),
        &conf(on_10000.clone(), json!({"seconds": 0})),
        48,
    )
    .await;
    for (i, id) in waiting.iter().enumerate() {
        if i % 6 == 0 {
            stop(&mut client, id).await;
            expected.insert(id.clone(), JobStatus::Canceled);
        } else {
            expected.insert(id.clone(), JobStatus::Waiting);
        }
    }
    assert_eq!(expected.len(), 60);
    for (id, want) in &expected {
        wait_status(&mut client, id, *want).await;
    }

    // Each status alone, and two at once, return exactly their jobs.
    let by_status = |wanted: &[JobStatus]| -> HashSet<String> {
        expected
            .iter()
            .filter(|(_, s)| wanted.contains(s))
            .map(|(id, _)| id.clone())
            .collect()
    };
    for wanted in [
        vec![JobStatus::Running],
        vec![JobStatus::Success],
        vec![JobStatus::Failed],
        vec![JobStatus::Canceled],
        vec![JobStatus::Waiting],
        vec![JobStatus::Failed, JobStatus::Canceled],
    ] {
        let request = sc::ListJobsRequest {
            limit: 1000,
            status: wanted.iter().map(|s| *s as i32).collect(),
            ..Default::default()
        };
        let page = list(&mut client, request).await;
        assert!(page.next_page_token.is_empty(), "one page holds them all");
        assert_newest_first_once(&page.jobs);
        for job in &page.jobs {
            assert!(
                wanted.contains(&job_status(job.status)),
                "{wanted:?}: {job:?}"
            );
        }
        assert_eq!(
            ids(&page.jobs).into_iter().collect::<HashSet<_>>(),
            by_status(&wanted),
            "{wanted:?}"
        );
    }

    // Paging by 7 through everything, submitting a job after every page: the 60 once each,
    // newest first, and none of the newer ones.
    let newer = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let pages = {
        let submitter = fed.scheduler("9999");
        let newer = newer.clone();
        all_pages(
            &mut client,
            sc::ListJobsRequest {
                limit: 7,
                ..Default::default()
            },
            move || {
                let mut submitter = submitter.clone();
                let newer = newer.clone();
                async move {
                    let id = submit(
                        &mut submitter,
                        &one("Sleep"),
                        &conf(json!({"host": [10000]}), json!({"seconds": 0})),
                    )
                    .await
                    .expect("accepted");
                    newer.lock().expect("the list of newer jobs").push(id);
                }
            },
        )
        .await
    };
    assert_newest_first_once(&pages);
    assert_eq!(pages.len(), 60, "{:?}", ids(&pages));
    assert_eq!(
        ids(&pages).into_iter().collect::<HashSet<_>>(),
        expected.keys().cloned().collect::<HashSet<_>>()
    );
    let newer: Vec<String> = newer.lock().expect("the list of newer jobs").clone();
    assert_eq!(newer.len(), 8, "a submit after each of the 8 full pages");

    // Paging the waiting jobs by 7 while more waiting jobs arrive: the ones waiting before.
    let waiting_before = by_status(&[JobStatus::Waiting]);
    let submitter = fed.scheduler("9999");
    let pages = all_pages(
        &mut client,
        sc::ListJobsRequest {
            limit: 7,
            status: vec![JobStatus::Waiting as i32],
            ..Default::default()
        },
        move || {
            let mut submitter = submitter.clone();
            async move {
                submit(
                    &mut submitter,
                    &one("Sleep"),
                    &conf(json!({"host": [10000]}), json!({"seconds": 0})),
                )
                .await
                .expect("accepted");
            }
        },
    )
    .await;
    assert_newest_first_once(&pages);
    let paged: HashSet<String> = ids(&pages).into_iter().collect();
    assert_eq!(pages.len(), paged.len());
    // The jobs submitted during the first paging are waiting too, and older than the cursor.
    let mut want = waiting_before;
    want.extend(newer);
    assert_eq!(paged, want);

    // The CLI pages the same way: the token it prints brings the next page.
    let first = cli_json(
        &fed,
        &[
            "--json",
            "job",
            "list",
            "--status",
            "failed,canceled",
            "--limit",
            "5",
        ],
    );
    let token = first["next_page_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    assert!(!token.is_empty(), "12 match, 5 shown: {first}");
    let second = cli_json(
        &fed,
        &[
            "--json",
            "job",
            "list",
            "--status",
            "failed,canceled",
            "--limit",
            "5",
            "--page-token",
            &token,
        ],
    );
    let human = succeeded(&cli(
        &fed,
        &["job", "list", "--status", "failed,canceled", "--limit", "5"],
    ));
    assert!(human.contains(&format!("--page-token {token}")), "{human}");
    let shown: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|page| page["jobs"].as_array().expect("jobs").iter())
        .map(|j| j["job_id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(shown.len(), 10);
    assert_eq!(shown.iter().collect::<HashSet<_>>().len(), 10, "{shown:?}");
    for id in &shown {
        assert!(
            matches!(expected[id], JobStatus::Failed | JobStatus::Canceled),
            "{id}: {:?}",
            expected[id]
        );
    }

    // Every job still going: stopped, so no worker outlives the test.
    let all = list(
        &mut client,
        sc::ListJobsRequest {
            limit: 1000,
            status: vec![JobStatus::Running as i32, JobStatus::Waiting as i32],
            ..Default::default()
        },
    )
    .await;
    for job in all.jobs {
        stop(&mut client, &job.job_id).await;
    }
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_party_time_and_text_filters_match_the_jobs_they_name() {
    let fed = TestFederation::start(PARTIES).await;
    filters_scenario(&fed).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_party_time_and_text_filters_match_the_jobs_they_name_on_postgres() {
    let Some(fed) = TestFederation::start_on_postgres(PARTIES).await else {
        eprintln!("FEDFLOW_TEST_POSTGRES_URL unset: the job list's filters ran on SQLite only");
        return;
    };
    filters_scenario(&fed).await;
    fed.shutdown().await;
}

async fn filters_scenario(fed: &TestFederation) {
    let mut client = fed.scheduler("9999");
    let sleep = json!({"seconds": 0});
    let mut jobs = Vec::new();
    for roles in [
        json!({"host": [10000]}),
        json!({"host": [10001]}),
        json!({"host": [10000], "arbiter": [10001]}),
        json!({"host": [10000, 10001]}),
    ] {
        let id = submit(&mut client, &one("Sleep"), &conf(roles, sleep.clone()))
            .await
            .expect("accepted");
        let job = get_job(&mut client, &id).await.expect("the job");
        jobs.push(job);
    }
    let all_ids: Vec<String> = ids(&jobs);
    let find = |request: sc::ListJobsRequest| {
        let mut client = client.clone();
        async move {
            let page = list(
                &mut client,
                sc::ListJobsRequest {
                    limit: 100,
                    ..request
                },
            )
            .await;
            assert_newest_first_once(&page.jobs);
            let mut found = ids(&page.jobs);
            found.sort();
            found
        }
    };
    let pick = |wanted: &[usize]| {
        let mut picked: Vec<String> = wanted.iter().map(|i| all_ids[*i].clone()).collect();
        picked.sort();
        picked
    };
    let party = |role: &str, party_id: &str| sc::ListJobsRequest {
        role: role.into(),
        party_id: party_id.into(),
        ..Default::default()
    };
    assert_eq!(find(party("", "10000")).await, pick(&[0, 2, 3]));
    assert_eq!(find(party("", "10001")).await, pick(&[1, 2, 3]));
    assert_eq!(find(party("host", "10001")).await, pick(&[1, 3]));
    assert_eq!(find(party("arbiter", "")).await, pick(&[2]));
    assert_eq!(find(party("arbiter", "10000")).await, pick(&[]));
    assert_eq!(find(party("guest", "9999")).await, pick(&[0, 1, 2, 3]));
    assert_eq!(find(party("", "4242")).await, pick(&[]));

    // Submit times: at or after the second job's, before the fourth's (ties included as the
    // clock made them).
    let (t1, t3) = (jobs[1].create_time_ms, jobs[3].create_time_ms);
    let window: Vec<usize> = (0..4)
        .filter(|i| jobs[*i].create_time_ms >= t1 && jobs[*i].create_time_ms < t3)
        .collect();
    let request = sc::ListJobsRequest {
        submitted_after_ms: t1,
        submitted_before_ms: t3,
        ..Default::default()
    };
    assert_eq!(find(request).await, pick(&window));
    assert!(window.contains(&1) && !window.contains(&3));
    let reversed = sc::ListJobsRequest {
        submitted_after_ms: t3,
        submitted_before_ms: t1,
        ..Default::default()
    };
    assert_eq!(
        find(reversed).await,
        pick(&[]),
        "a reversed window matches nothing"
    );

    // Text: a substring of one job id (its last 8 digits, random and clock), in any case.
    let tail = &all_ids[2][all_ids[2].len() - 8..];
    let with_tail: Vec<usize> = (0..4).filter(|i| all_ids[*i].contains(tail)).collect();
    let request = sc::ListJobsRequest {
        text: tail.into(),
        ..Default::default()
    };
    assert_eq!(find(request).await, pick(&with_tail));
    assert!(with_tail.contains(&2));

    // Filters combine, and the CLI passes each one.
    let out = cli_json(
        fed,
        &[
            "--json",
            "job",
            "list",
            "--role",
            "host",
            "--party",
            "10001",
            "--after",
            &t1.to_string(),
            "--text",
            &all_ids[3][..4],
        ],
    );
    let mut shown: Vec<String> = out["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["job_id"].as_str().expect("id").to_owned())
        .collect();
    shown.sort();
    let expect: Vec<usize> = [1, 3]
        .into_iter()
        .filter(|i| jobs[*i].create_time_ms >= t1 && all_ids[*i].contains(&all_ids[3][..4]))
        .collect();
    assert_eq!(shown, pick(&expect));
    assert_eq!(out["next_page_token"], "");
    let before_all = cli_json(
        fed,
        &["--json", "job", "list", "--before", "1970-01-02T00:00:00Z"],
    );
    assert_eq!(before_all["jobs"], json!([]));

    for job in &all_ids {
        wait_ended(&mut client, job, WITHIN).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_filter_or_page_token_is_refused_naming_the_field() {
    let fed = TestFederation::start(&["9999"]).await;
    let mut client = fed.scheduler("9999");
    let cases = [
        (
            "page_token",
            sc::ListJobsRequest {
                page_token: "not-a-token".into(),
                ..Default::default()
            },
        ),
        (
            "page_token",
            sc::ListJobsRequest {
                page_token: "3132".into(),
                ..Default::default()
            },
        ),
        (
            "status",
            sc::ListJobsRequest {
                status: vec![JobStatus::Running as i32, 99],
                ..Default::default()
            },
        ),
        (
            "status",
            sc::ListJobsRequest {
                status: vec![0],
                ..Default::default()
            },
        ),
        (
            "role",
            sc::ListJobsRequest {
                role: "boss".into(),
                ..Default::default()
            },
        ),
        (
            "party_id",
            sc::ListJobsRequest {
                party_id: "a b".into(),
                ..Default::default()
            },
        ),
        (
            "text",
            sc::ListJobsRequest {
                text: "%".into(),
                ..Default::default()
            },
        ),
    ];
    for (field, request) in cases {
        let status = client
            .list_jobs(request.clone())
            .await
            .expect_err(&format!("{request:?} is refused"));
        assert_eq!(
            status.code(),
            tonic::Code::InvalidArgument,
            "{request:?}: {status:?}"
        );
        assert!(
            status.message().starts_with(field),
            "{request:?}: {:?} names {field}",
            status.message()
        );
    }
    let out = cli(&fed, &["job", "list", "--status", "done"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--status"),
        "{out:?}"
    );
    let out = cli(&fed, &["job", "list", "--page-token", "zz"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INVALID_ARGUMENT: page_token"),
        "{out:?}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_dag_draws_each_component_and_dependency_with_its_status() {
    let fed = TestFederation::start(PARTIES).await;
    let mut client = fed.scheduler("9999");
    let conf = conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}}}),
    );
    let (job_id, _) = run_to_success(&mut client, &diamond_dsl(), &conf, WITHIN).await;

    let mermaid = succeeded(&cli(
        &fed,
        &["job", "dag", "-j", &job_id, "--format", "mermaid"],
    ));
    let lines: Vec<&str> = mermaid.lines().map(str::trim).collect();
    assert_eq!(lines.first(), Some(&"flowchart TD"), "{mermaid}");
    let mut nodes: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("[\""))
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            "n0[\"a<br/>Sum<br/>success\"]:::success",
            "n1[\"b<br/>Sum<br/>success\"]:::success",
            "n2[\"c<br/>Sum<br/>success\"]:::success",
            "n3[\"d<br/>Sum<br/>success\"]:::success",
        ],
        "{mermaid}"
    );
    // Node ids follow the DSL's topological order, which puts a first and d last.
    let mut edges: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("-->"))
        .collect();
    edges.sort();
    let (b, c) = ("n1", "n2");
    let mut want = vec![
        format!("n0 --> {b}"),
        format!("n0 --> {c}"),
        format!("{b} --> n3"),
        format!("{c} --> n3"),
    ];
    want.sort();
    assert_eq!(edges, want, "{mermaid}");

    let dot = succeeded(&cli(
        &fed,
        &["job", "dag", "-j", &job_id, "--format", "dot"],
    ));
    assert!(dot.starts_with("digraph"), "{dot}");
    assert_eq!(dot.matches("[label=").count(), 4, "{dot}");
    assert_eq!(dot.matches(" -> ").count(), 4, "{dot}");
    assert_eq!(
        dot.matches("fillcolor=\"#a5d6a7\"").count(),
        4,
        "all success: {dot}"
    );
    match Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(dot.as_bytes())
                .expect("write to dot");
            let out = child.wait_with_output().expect("dot ends");
            assert!(
                out.status.success(),
                "dot -Tsvg refused it: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
        }
        Err(e) => {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "`dot` could not run ({e}) and FEDFLOW_REQUIRE_TOOLS is set; install graphviz"
            );
            eprintln!(
                "skipping the Graphviz check of `job dag --format dot`: `dot` could not run ({e}); install graphviz"
            )
        }
    }
    fed.shutdown().await;
}
