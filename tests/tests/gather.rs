//! fedflow's own components on the data plane, end to end: `Gather` on a 3-party job, in
//! which every party's worker sends its value to the guest through its own gateway, the
//! federation link (mutual TLS) and the guest's gateway, and `fedflow test toy` through the
//! CLI like a user. The guest's sum can only be right if every value crossed the gateways.

use std::process::Command;
use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_tests::*;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gather_on_three_parties_sums_every_partys_value_at_the_guest() {
    let fed = TestFederation::start(&["9999", "10000", "10001"]).await;
    let mut scheduler = fed.scheduler("9999");
    let (dsl, conf) = gather_job();
    let (job_id, _) = run_to_success(&mut scheduler, &dsl, &conf, WITHIN).await;
    let output = |party: &'static str, role: &'static str| {
        let mut scheduler = fed.scheduler("9999");
        let job_id = job_id.clone();
        async move {
            let reply = task_output(&mut scheduler, &job_id, "gather", (role, party)).await;
            serde_json::from_str::<Value>(&reply.output_json).expect("a JSON output")
        }
    };
    assert_eq!(
        output("9999", "guest").await,
        json!({"value": 975, "parties": 3}),
        "the guest adds every party's value"
    );
    assert_eq!(output("10000", "host").await, json!({"value": 70}));
    assert_eq!(output("10001", "host").await, json!({"value": 900}));
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gather_whose_peer_never_sends_fails_naming_the_party_and_a_bad_value_is_refused() {
    let fed = TestFederation::start(&["9999", "10000"]).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"gather": {"module": "Gather"}}});
    // The host passes (need_run false) and never sends; the guest waits 1 s for its value.
    let conf = |host: Value| {
        json!({
            "dsl_version": 2,
            "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999], "host": [10000]},
            "job_parameters": {"common": {"task_cores": 1, "auto_retries": 0}},
            "component_parameters": {
                "common": {"gather": {"timeout_s": 1}},
                "role": {"host": {"0": {"gather": host}}}
            }
        })
    };
    let job_id = submit(&mut scheduler, &dsl, &conf(json!({"need_run": false})))
        .await
        .expect("accepted");
    let job = wait_ended(&mut scheduler, &job_id, WITHIN).await;
    assert_eq!(job_status(job.status), JobStatus::Failed, "{job:?}");
    assert!(
        job.reason.contains("host 10000") && job.reason.contains("no message"),
        "the reason names the silent party and the wait: {}",
        job.reason
    );

    let refused = submit(
        &mut scheduler,
        &dsl,
        &conf(json!({"value": "not a number"})),
    )
    .await
    .expect_err("a value that is not an integer is refused at submit");
    assert!(
        refused.message().contains("parameter value"),
        "the refusal names the parameter: {refused:?}"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedflow_test_toy_succeeds_through_the_cli() {
    let fed = TestFederation::start(&["9999", "10000", "10001"]).await;
    let out = Command::new(bin("fedflow"))
        .arg("--scheduler")
        .arg(fed.scheduler_addr("9999"))
        .args(["test", "toy", "--guest", "9999", "--host", "10000,10001"])
        .args(["--timeout", "90"])
        .output()
        .expect("run fedflow test toy");
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("toy test success") && stdout.contains("6 and 60 from 3 parties"),
        "{stdout}"
    );
    let out = Command::new(bin("fedflow"))
        .arg("--scheduler")
        .arg(fed.scheduler_addr("9999"))
        .args([
            "--json", "test", "toy", "--guest", "9999", "--host", "10000",
        ])
        .output()
        .expect("run fedflow test toy --json");
    let answer: Value = serde_json::from_str(&succeeded(&out)).expect("JSON");
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["sums"], json!([3, 30]));
    let out = Command::new(bin("fedflow"))
        .arg("--scheduler")
        .arg(fed.scheduler_addr("9999"))
        .args(["test", "toy", "--guest", "9999"])
        .output()
        .expect("run fedflow test toy without hosts");
    assert!(!out.status.success(), "a toy test without hosts is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--host"),
        "{out:?}"
    );
    fed.shutdown().await;
}
