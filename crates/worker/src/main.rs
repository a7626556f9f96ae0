//! `fedflow-worker --task-dir DIR`: runs one task attempt (see the library's docs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use fedflow_core::TaskStatus;
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::task_status_to_pb;
use fedflow_rpc::error::RemoteError;
use fedflow_rpc::retry::{self, Retry};
use fedflow_worker::{Outcome, TaskFile};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    version,
    about = "fedflow task worker (started by the task-controller)"
)]
struct Args {
    /// The task directory holding task.json.
    #[arg(long)]
    task_dir: PathBuf,
}

/// The worker service's client, with the task's trace context on every call.
type Client = pb::worker_client::WorkerClient<InterceptedService<Channel, Traced>>;

/// Puts the trace context the task-controller handed over (`TRACEPARENT`, the span that
/// launched this attempt) and the job's id on every call to it, so the task-controller's
/// spans serving them stay in the job's trace. The worker exports no spans of its own.
#[derive(Clone)]
struct Traced {
    traceparent: Option<MetadataValue<Ascii>>,
    job_id: Option<MetadataValue<Ascii>>,
}

impl Traced {
    fn from_env(job_id: &str) -> Traced {
        let traceparent = std::env::var("TRACEPARENT")
            .ok()
            .and_then(|v| v.parse().ok());
        Traced {
            job_id: traceparent.as_ref().and_then(|_| job_id.parse().ok()),
            traceparent,
        }
    }
}

impl Interceptor for Traced {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.traceparent {
            request.metadata_mut().insert("traceparent", value.clone());
        }
        if let Some(value) = &self.job_id {
            request
                .metadata_mut()
                .insert(fedflow_rpc::party::JOB_ID_HEADER, value.clone());
        }
        Ok(request)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = match std::fs::read(args.task_dir.join("task.json"))
        .map_err(|e| e.to_string())
        .and_then(|bytes| TaskFile::from_json(&bytes).map_err(|e| e.to_string()))
    {
        Ok(config) => config,
        Err(e) => {
            fedflow_worker::note!("fedflow-worker: cannot read task.json: {e}");
            return ExitCode::from(64);
        }
    };
    let channel = match fedflow_rpc::channel(&config.task_controller) {
        Ok(channel) => channel,
        Err(e) => {
            fedflow_worker::note!("fedflow-worker: task_controller address: {e}");
            return ExitCode::from(64);
        }
    };
    fedflow_worker::note!(
        "fedflow-worker: job {} component {} v{} as {} {} running {}",
        config.job_id,
        config.component,
        config.version,
        config.role,
        config.party_id,
        config.module
    );
    let worker = pb::worker_client::WorkerClient::with_interceptor(
        channel.clone(),
        Traced::from_env(&config.job_id),
    );
    let heartbeat = tokio::spawn(heartbeat(worker.clone(), config.clone()));
    report(&worker, &config, TaskStatus::Running, "", "", Vec::new()).await;
    let outcome = run(&config, &args.task_dir, channel).await;
    // Heartbeats go on until the outcome is acknowledged: a task-controller slow to take the
    // report (its database busy, say) must not take this worker for a silent one.
    let code = match outcome {
        Outcome::Success(output) => {
            let output = output.map(|o| o.to_string()).unwrap_or_default();
            if !output.is_empty()
                && let Err(e) = std::fs::write(args.task_dir.join("output.json"), &output)
            {
                fedflow_worker::note!("fedflow-worker: cannot write output.json: {e}");
            }
            report(
                &worker,
                &config,
                TaskStatus::Success,
                "",
                &output,
                Vec::new(),
            )
            .await;
            fedflow_worker::note!("fedflow-worker: success");
            ExitCode::SUCCESS
        }
        Outcome::Produced(outputs) => {
            // What other parties may see of them: kinds and counts, no content, no paths.
            let overview: serde_json::Map<String, serde_json::Value> = outputs
                .iter()
                .map(|o| {
                    let view = serde_json::json!({
                        "kind": o.kind, "type_name": o.type_name, "overview": o.overview
                    });
                    (o.output_key.clone(), view)
                })
                .collect();
            let output = serde_json::json!({ "outputs": overview }).to_string();
            let listed = serde_json::to_vec(&outputs).unwrap_or_default();
            if let Err(e) = std::fs::write(args.task_dir.join("outputs.json"), listed) {
                fedflow_worker::note!("fedflow-worker: cannot write outputs.json: {e}");
            }
            for o in &outputs {
                fedflow_worker::note!(
                    "fedflow-worker: output {} ({}, {})",
                    o.output_key,
                    o.kind,
                    o.file
                );
            }
            let outputs = outputs.into_iter().map(output_to_pb).collect();
            report(&worker, &config, TaskStatus::Success, "", &output, outputs).await;
            fedflow_worker::note!("fedflow-worker: success");
            ExitCode::SUCCESS
        }
        Outcome::Failed(message) => {
            report(
                &worker,
                &config,
                TaskStatus::Failed,
                &message,
                "",
                Vec::new(),
            )
            .await;
            fedflow_worker::note!("fedflow-worker: failed: {message}");
            ExitCode::from(1)
        }
    };
    heartbeat.abort();
    code
}

fn output_to_pb(o: fedflow_core::task_file::OutputArtifact) -> pb::OutputArtifact {
    pb::OutputArtifact {
        output_key: o.output_key,
        kind: o.kind,
        type_name: o.type_name,
        file: o.file,
        metadata_json: o.metadata.to_string(),
        overview_json: o.overview.to_string(),
    }
}

async fn run(config: &TaskFile, task_dir: &std::path::Path, channel: Channel) -> Outcome {
    match config.module.as_str() {
        "Reader" => fedflow_worker::data::reader(task_dir, config),
        "Statistics" => fedflow_worker::data::statistics(task_dir, config),
        "Sleep" => fedflow_worker::sleep(&config.parameters).await,
        "Train" => fedflow_worker::train::run(task_dir, &config.parameters),
        "Gather" => fedflow_worker::gather::run(config).await,
        "Fail" => fedflow_worker::fail(&config.parameters, &config.role, config.version),
        "Sum" => {
            let mut client = pb::task_controller_client::TaskControllerClient::new(channel);
            let mut values = Vec::new();
            for up in &config.upstream {
                let request = pb::GetTaskOutputRequest {
                    job_id: config.job_id.clone(),
                    component: up.clone(),
                    role: config.role.clone(),
                    party_id: config.party_id.clone(),
                };
                match client.get_task_output(request).await {
                    Ok(reply) => {
                        if let Some(v) = fedflow_worker::value_of(&reply.into_inner().output_json) {
                            values.push(v);
                        }
                    }
                    // An upstream that passed (need_run false) has no output to add.
                    Err(status) if status.code() == tonic::Code::NotFound => {}
                    Err(status) => {
                        return Outcome::Failed(format!(
                            "cannot read the output of upstream {up}: {}",
                            status.message()
                        ));
                    }
                }
            }
            fedflow_worker::sum(&config.parameters, &values)
        }
        m if fedflow_core::fate::component_of(m).is_some() => {
            fedflow_worker::fate::run(task_dir, config).await
        }
        other => match &config.program {
            Some(program) => fedflow_worker::external::run(task_dir, config, program).await,
            None => Outcome::Failed(format!("unknown module {other:?}")),
        },
    }
}

/// A request naming this attempt (job, component, version, role, party and its token), the
/// `$field`s added: every call of the worker's service carries the same six.
macro_rules! attempt_request {
    ($($request:ident)::+, $config:expr $(, $field:ident: $value:expr)* $(,)?) => {{
        let config: &TaskFile = $config;
        $($request)::+ {
            job_id: config.job_id.clone(),
            component: config.component.clone(),
            version: config.version,
            role: config.role.clone(),
            party_id: config.party_id.clone(),
            token: config.token.clone(),
            $($field: $value,)*
        }
    }};
}

/// Reports a status, retrying while the task-controller is unreachable or the call is cut off
/// (it may be restarting: the report is idempotent, the token and a compare-and-set); gives up
/// on a refusal (a stale attempt).
async fn report(
    worker: &Client,
    config: &TaskFile,
    status: TaskStatus,
    reason: &str,
    output: &str,
    outputs: Vec<pb::OutputArtifact>,
) {
    let request = attempt_request!(
        pb::ReportStatusRequest,
        config,
        status: task_status_to_pb(status) as i32,
        reason: reason.to_owned(),
        output_json: output.to_owned(),
        outputs: outputs,
    );
    let sent = retry::run(
        retry::worker_report(),
        Retry::Transient,
        "ReportStatus",
        || {
            let mut worker = worker.clone();
            let request = request.clone();
            async move {
                worker
                    .report_status(request)
                    .await
                    .map_err(RemoteError::from)
            }
        },
    )
    .await;
    match sent {
        Ok(_) => {}
        Err(e) if Retry::Transient.allows(&e) => {
            fedflow_worker::note!("fedflow-worker: report {status} not delivered");
        }
        Err(e) => fedflow_worker::note!("fedflow-worker: report {status} refused: {}", e.message),
    }
}

/// Heartbeats until aborted; exits the process when told its task was stopped.
async fn heartbeat(worker: Client, config: TaskFile) {
    let period = Duration::from_millis(config.heartbeat_interval_ms.max(50));
    let request = attempt_request!(pb::HeartbeatRequest, &config);
    loop {
        tokio::time::sleep(period).await;
        if let Ok(reply) = worker.clone().heartbeat(request.clone()).await
            && reply.into_inner().stop
        {
            fedflow_worker::note!("fedflow-worker: the task-controller stopped this attempt");
            std::process::exit(3);
        }
    }
}
