//! Workload 9 (only with `--only joblist`): the job list among 100,000 jobs. A one-party
//! scheduler process is started, then its SQLite store is filled directly (bulk `INSERT`s in
//! large transactions, not `SubmitJob`): jobs one millisecond apart, every tenth running, each
//! with its two participants. Timed over gRPC: `ListJobs` with status running, limit 50, for
//! a page in the middle of the running jobs (reached once through the page tokens), 200 calls;
//! and the same with party 10000 (in every job) instead of the status.
//!
//! The repair pass, which re-drives every running job, is slowed to once an hour: the filled
//! jobs have no tasks, and re-driving 10,000 of them would measure the repair, not the list.

use std::time::Instant;

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use serde_json::json;

use crate::Args;
use crate::measure::Results;

/// Jobs in the store.
const JOBS: usize = 100_000;
/// Rows per `INSERT` and per transaction.
const BATCH: usize = 500;
const CALLS: usize = 200;
const LIMIT: u32 = 50;

pub(super) async fn run(_args: &Args, r: &mut Results) {
    eprintln!("fedflow-bench: ListJobs among {JOBS} jobs (status running, limit {LIMIT})");
    let fed = ProcessFederation::start_with(
        &["9999"],
        ProcessOptions {
            log: "warn",
            env: vec![(
                "FEDFLOW_SCHEDULER__SCHEDULING__REPAIR_INTERVAL_MS".into(),
                "3600000".into(),
            )],
            ..ProcessOptions::default()
        },
    )
    .await;
    let path = fed.dir.path().join("9999").join("scheduler.db");
    let db = fedflow_store::Db::open_existing(&fedflow_store::sqlite_url(&path))
        .await
        .expect("open the scheduler's store");
    let dsl =
        json!({"components": {"a": {"module": "Sleep", "output": {"data": ["out"]}}}}).to_string();
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {"common": {"a": {"seconds": 0}}},
    })
    .to_string();
    let filled = Instant::now();
    let base_ms: i64 = 1_700_000_000_000;
    for start in (0..JOBS).step_by(BATCH) {
        let end = (start + BATCH).min(JOBS);
        let mut jobs = String::from(
            "INSERT INTO scheduler_jobs (job_id, status, dsl, conf, initiator_role, \
             initiator_party, priority, create_ms, update_ms) VALUES ",
        );
        let mut parties = String::from(
            "INSERT INTO scheduler_job_parties (job_id, role, party_id, create_ms) VALUES ",
        );
        let mut values: Vec<fedflow_store::SqlValue> = Vec::new();
        for i in start..end {
            let job_id = format!("bench{i:019}");
            let status = if i % 10 == 0 { "running" } else { "success" };
            let ms = base_ms + i as i64;
            let sep = if i == start { "" } else { ", " };
            jobs.push_str(&format!(
                "{sep}('{job_id}', '{status}', ?, ?, 'guest', '9999', 0, {ms}, {ms})"
            ));
            values.push(dsl.clone().into());
            values.push(conf.clone().into());
            // As `Store::insert_job` writes them: each (role, party), (*, party), (role, *).
            for (role, party) in [
                ("guest", "9999"),
                ("host", "10000"),
                ("*", "9999"),
                ("*", "10000"),
                ("guest", "*"),
                ("host", "*"),
            ] {
                let sep = if i == start && role == "guest" && party == "9999" {
                    ""
                } else {
                    ", "
                };
                parties.push_str(&format!("{sep}('{job_id}', '{role}', '{party}', {ms})"));
            }
        }
        let tx = db.begin().await.expect("begin");
        tx.exec(&jobs, values).await.expect("insert jobs");
        tx.exec(&parties, vec![])
            .await
            .expect("insert participants");
        tx.commit().await.expect("commit");
    }
    db.close().await.expect("close the store");
    eprintln!(
        "fedflow-bench: {JOBS} jobs stored in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let mut client = fed.scheduler("9999");
    let running = pb::ListJobsRequest {
        limit: LIMIT,
        status: vec![JobStatus::Running as i32],
        ..Default::default()
    };
    let by_party = pb::ListJobsRequest {
        limit: LIMIT,
        party_id: "10000".into(),
        ..Default::default()
    };
    for (name, request, matches, figure) in [
        (
            "joblist.middle_page_running_50",
            running,
            JOBS / 10,
            "status running",
        ),
        (
            "joblist.middle_page_party_50",
            by_party,
            JOBS,
            "party 10000",
        ),
    ] {
        middle_page(&mut client, request, matches, r.samples(name)).await;
        let s = r.samples(name).clone();
        r.row(
            &format!(
                "ListJobs among {JOBS} jobs: {figure}, limit {LIMIT}, a middle page, p50 / p99"
            ),
            "< 20 ms",
            format!("{:.1} ms / {:.1} ms", s.quantile(0.5), s.quantile(0.99)),
            "-",
            Some(s.quantile(0.99) < 20.0),
        );
    }
}

/// Times [`CALLS`] calls of the middle page of `request`'s `matches` jobs, reached once
/// through the page tokens.
async fn middle_page(
    client: &mut super::Client,
    request: pb::ListJobsRequest,
    matches: usize,
    samples: &mut crate::measure::Samples,
) {
    let mut token = String::new();
    for _ in 0..matches / LIMIT as usize / 2 {
        token = client
            .list_jobs(pb::ListJobsRequest {
                page_token: token,
                ..request.clone()
            })
            .await
            .expect("ListJobs")
            .into_inner()
            .next_page_token;
        assert!(!token.is_empty(), "the matching jobs end before the middle");
    }
    for _ in 0..CALLS {
        let started = Instant::now();
        let page = client
            .list_jobs(pb::ListJobsRequest {
                page_token: token.clone(),
                ..request.clone()
            })
            .await
            .expect("ListJobs")
            .into_inner();
        samples.push_ms(started.elapsed());
        assert_eq!(page.jobs.len(), LIMIT as usize, "a full page");
    }
}
