//! One trace per job: every service process of a three-party federation exports its spans
//! over OTLP to a collector in this test, and the spans of one job must form one trace whose
//! parent links hold across processes, the gateway-to-gateway hop and the worker launch.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use serde_json::json;

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: Vec<u8>,
    span_id: Vec<u8>,
    parent_span_id: Vec<u8>,
    attributes: HashMap<String, String>,
}

impl Received {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// An OTLP/gRPC trace collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Collector {
    fn spans(&self) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn attributes(kvs: &[KeyValue]) -> HashMap<String, String> {
    kvs.iter()
        .filter_map(|kv| {
            let value = match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                _ => return None,
            };
            Some((kv.key.clone(), value))
        })
        .collect()
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans
                .resource
                .map(|r| attributes(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    received.push(Received {
                        service: service.clone(),
                        name: span.name,
                        trace_id: span.trace_id,
                        span_id: span.span_id,
                        parent_span_id: span.parent_span_id,
                        attributes: attributes(&span.attributes),
                    });
                }
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(received);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the collector on an ephemeral port; its `http://` endpoint.
async fn start_collector(collector: Collector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the collector");
    let addr = listener.local_addr().expect("collector address");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

/// What the spans of `job_id` say, or why they do not (yet) make the trace the test expects.
fn check_trace(spans: &[Received], job_id: &str) -> Result<String, String> {
    let of_job: Vec<&Received> = spans
        .iter()
        .filter(|s| s.attr("job_id") == Some(job_id))
        .collect();
    let traces: BTreeSet<&[u8]> = of_job.iter().map(|s| s.trace_id.as_slice()).collect();
    if traces.len() != 1 {
        return Err(format!(
            "{} spans of the job in {} traces",
            of_job.len(),
            traces.len()
        ));
    }
    let trace = *traces.first().expect("one trace");
    let services: BTreeSet<&str> = of_job.iter().map(|s| s.service.as_str()).collect();
    let parties: BTreeSet<&str> = of_job.iter().filter_map(|s| s.attr("party_id")).collect();
    if services.len() < 3 || parties.len() < 2 {
        return Err(format!(
            "the job's spans come from services {services:?} on parties {parties:?}"
        ));
    }
    // Every span of the trace (the job's and those between them) has its parent among the
    // received spans, or is the root.
    let in_trace: Vec<&Received> = spans
        .iter()
        .filter(|s| s.trace_id.as_slice() == trace)
        .collect();
    let ids: BTreeSet<&[u8]> = in_trace.iter().map(|s| s.span_id.as_slice()).collect();
    let roots = in_trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .count();
    if roots != 1 {
        return Err(format!("{roots} roots in the job's trace"));
    }
    if let Some(dangling) = in_trace
        .iter()
        .find(|s| !s.parent_span_id.is_empty() && !ids.contains(s.parent_span_id.as_slice()))
    {
        let count = in_trace
            .iter()
            .filter(|s| !s.parent_span_id.is_empty() && !ids.contains(s.parent_span_id.as_slice()))
            .count();
        return Err(format!(
            "{count} spans name a parent that was not received, such as {} {:?} {:?}",
            dangling.service, dangling.name, dangling.attributes
        ));
    }
    // The hop: scheduler (guest) → gateway forward (guest) → gateway deliver (host) → the
    // host's job-controller.
    let by_id: HashMap<&[u8], &Received> = in_trace
        .iter()
        .map(|s| (s.span_id.as_slice(), *s))
        .collect();
    let parent = |s: &Received| by_id.get(s.parent_span_id.as_slice()).copied();
    let chain = in_trace.iter().find_map(|served| {
        if served.service != "fedflow-job-controller" {
            return None;
        }
        let deliver = parent(served)?;
        let forward = parent(deliver)?;
        let call = parent(forward)?;
        (deliver.name == "gateway deliver"
            && deliver.service == "fedflow-party-gateway"
            && deliver.attr("party_id") == Some("10000")
            && forward.name == "gateway forward"
            && forward.service == "fedflow-party-gateway"
            && forward.attr("party_id") == Some("9999")
            && forward.attr("dest_party_id") == Some("10000")
            && call.service == "fedflow-scheduler"
            && call.attr("party_id") == Some("9999"))
        .then_some(())
    });
    if chain.is_none() {
        return Err(
            "no job-controller span under host's gateway deliver under guest's gateway forward under guest's scheduler"
                .into(),
        );
    }
    // A worker's report reaches its task-controller in the trace, under the span that
    // launched the worker (handed over as TRACEPARENT), which names the task.
    let reported = in_trace.iter().any(|served| {
        served.service == "fedflow-task-controller"
            && served
                .attr("rpc.method")
                .is_some_and(|m| m.ends_with("/ReportStatus"))
            && parent(served).is_some_and(|launch| {
                launch.name == "launch worker"
                    && launch.service == "fedflow-task-controller"
                    && ["component", "version", "role", "party_id"]
                        .iter()
                        .all(|field| launch.attr(field).is_some())
            })
    });
    if !reported {
        return Err("no worker report under the span that launched its worker".into());
    }
    Ok(format!(
        "{} spans in the job's trace from {services:?} on parties {parties:?}",
        in_trace.len()
    ))
}

/// The data plane's hop in `job_id`'s trace: the guest gateway's `data deliver` span is the
/// child of a host gateway's `data push` span.
fn check_data_hop(spans: &[Received], job_id: &str) -> Result<(), String> {
    let pushes: HashMap<&[u8], &Received> = spans
        .iter()
        .filter(|s| s.name == "data push" && s.attr("job_id") == Some(job_id))
        .map(|s| (s.span_id.as_slice(), s))
        .collect();
    let hop = spans.iter().any(|s| {
        s.name == "data deliver"
            && s.attr("job_id") == Some(job_id)
            && s.attr("party_id") == Some("9999")
            && pushes
                .get(s.parent_span_id.as_slice())
                .is_some_and(|push| push.attr("party_id") != Some("9999"))
    });
    if hop {
        Ok(())
    } else {
        Err(format!(
            "no guest data deliver under a host's data push ({} pushes)",
            pushes.len()
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_job_is_one_trace_across_services_and_parties() {
    let collector = Collector::default();
    let endpoint = start_collector(collector.clone()).await;
    let mut env: Vec<(String, String)> = [
        "SCHEDULER",
        "JOB_CONTROLLER",
        "TASK_CONTROLLER",
        "PARTY_GATEWAY",
    ]
    .iter()
    .map(|s| {
        (
            format!("FEDFLOW_{s}__TELEMETRY__OTLP_ENDPOINT"),
            endpoint.clone(),
        )
    })
    .collect();
    // Spans leave each process every 100 ms, not only at exit.
    env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
    let mut fed = ProcessFederation::start_with(
        &["9999", "10000", "10001"],
        ProcessOptions {
            env,
            insecure: true,
            ..ProcessOptions::default()
        },
    )
    .await;
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
    // Fedflow's Gather: every host's worker pushes its value to the guest on the data plane.
    let (gather_dsl, gather_conf) = fedflow_tests::gather_job();
    let gather_id = submit(&mut scheduler, &gather_dsl, &gather_conf)
        .await
        .unwrap_or_else(|s| panic!("submit: {s:?}\n{}", fed.logs()));
    let gather = wait_ended(&mut scheduler, &gather_id, Duration::from_secs(60)).await;
    assert_eq!(
        job_status(gather.status),
        JobStatus::Success,
        "job {gather:?}\n{}",
        fed.logs()
    );
    // A graceful stop flushes what is left.
    for party in ["9999", "10000", "10001"] {
        for service in [
            "fedflow-scheduler",
            "fedflow-job-controller",
            "fedflow-task-controller",
            "fedflow-party-gateway",
        ] {
            fed.signal(party, service, "TERM");
        }
    }
    let seen = eventually(
        "the collector to hold the job's whole trace",
        Duration::from_secs(30),
        || {
            let spans = collector.spans();
            let job_id = job_id.clone();
            async move { check_trace(&spans, &job_id) }
        },
    )
    .await;
    let gathered = eventually(
        "the collector to hold the Gather job's whole trace, data plane included",
        Duration::from_secs(30),
        || {
            let spans = collector.spans();
            let job_id = gather_id.clone();
            async move {
                let seen = check_trace(&spans, &job_id)?;
                check_data_hop(&spans, &job_id)?;
                Ok(seen)
            }
        },
    )
    .await;
    for party in ["9999", "10000", "10001"] {
        eventually(
            &format!("party {party}'s scheduler to exit"),
            Duration::from_secs(30),
            || {
                let exited = fed.exited(party, "fedflow-scheduler");
                async move {
                    if exited {
                        Ok(())
                    } else {
                        Err("running".to_owned())
                    }
                }
            },
        )
        .await;
    }
    println!("{seen}; gather: {gathered}");
}
