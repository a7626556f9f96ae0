//! A `fedflow.gateway.v1.Envelope` as a gateway receives it from another party: decoding it
//! and the inner requests it may carry, and checking their ids, must never panic.

#![no_main]

use fedflow_core::{dsl, ids};
use fedflow_proto::gateway::v1::Envelope;
use fedflow_proto::jobcontroller::v1::CreateJobRequest;
use fedflow_proto::scheduler::v1::ReportTaskStatusRequest;
use fedflow_proto::taskcontroller::v1::{CreateTasksRequest, StartTaskRequest, StopTasksRequest};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The id checks a service runs on what a request names.
fn check_ids(job_id: &str, party_ids: &[&str], request_id: &str) {
    let _ = ids::job_id(job_id);
    for party in party_ids {
        let _ = ids::party_id(party);
    }
    let _ = ids::request_id(request_id);
}

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::decode(data) else {
        return;
    };
    check_ids(
        &envelope.job_id,
        &[&envelope.src_party_id, &envelope.dest_party_id],
        &envelope.request_id,
    );
    let payload = &envelope.payload[..];
    if let Ok(r) = CreateJobRequest::decode(payload) {
        check_ids(
            &r.job_id,
            &[&r.party_id, &r.scheduler_party_id],
            &r.request_id,
        );
        let _ = ids::role(&r.role);
        // The job-controller parses the job it is asked to create.
        let _ = dsl::parse(&r.dsl, &r.runtime_conf, &dsl::Limits::default());
    }
    if let Ok(r) = CreateTasksRequest::decode(payload) {
        check_ids(
            &r.job_id,
            &[&r.party_id, &r.scheduler_party_id],
            &r.request_id,
        );
        let _ = ids::role(&r.role);
        for task in &r.tasks {
            let _ = ids::component(&task.component);
            let _ = dsl::parse_json_strict("parameters_json", &task.parameters_json);
        }
    }
    if let Ok(r) = StartTaskRequest::decode(payload) {
        check_ids(&r.job_id, &[&r.party_id], &r.request_id);
        let _ = ids::component(&r.component);
    }
    if let Ok(r) = StopTasksRequest::decode(payload) {
        check_ids(&r.job_id, &[&r.party_id], &r.request_id);
        let _ = ids::component(&r.component);
    }
    if let Ok(r) = ReportTaskStatusRequest::decode(payload) {
        check_ids(&r.job_id, &[&r.party_id], &r.request_id);
        let _ = ids::component(&r.component);
        let _ = ids::role(&r.role);
    }
});
