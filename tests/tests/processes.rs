//! The diamond scenario with every service as its own OS process (the real binaries,
//! configured by TOML files and environment), talking over localhost.

use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_tests::process::ProcessFederation;
use fedflow_tests::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diamond_succeeds_with_every_service_as_its_own_process() {
    let fed = ProcessFederation::start(&["9999", "10000", "10001"]).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}}}),
    );
    let job_id = submit(&mut scheduler, &diamond_dsl(), &conf)
        .await
        .unwrap_or_else(|s| panic!("submit: {s:?}\n{}", fed.logs()));
    let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(60)).await;
    assert_eq!(
        job_status(job.status),
        JobStatus::Success,
        "job {job:?}\n{}",
        fed.logs()
    );
    for party in &fed.parties {
        let mut tasks =
            tc::task_controller_client::TaskControllerClient::new(channel(&party.task_controller));
        let rows = tasks_of(&mut tasks, &job_id).await.expect("list tasks");
        assert_eq!(rows.len(), 4, "party {}", party.party_id);
        assert!(
            rows.iter()
                .all(|t| task_status(t.party_status) == TaskStatus::Success),
            "party {}: {rows:?}",
            party.party_id
        );
        let mut jobs =
            jc::job_controller_client::JobControllerClient::new(channel(&party.job_controller));
        wait_job_rows(
            &jobs,
            &party.party_id,
            &job_id,
            JobStatus::Success,
            Duration::from_secs(30),
        )
        .await;
        let resources = jobs
            .get_resources(jc::GetResourcesRequest {})
            .await
            .expect("resources")
            .into_inner();
        assert!(resources.allocations.is_empty());
    }
    let output = task_output(&mut scheduler, &job_id, "d", ("host", "10000")).await;
    assert_eq!(output.output_json, r#"{"value":11}"#);
}
