//! The job and task commands: one gRPC call each (two for `wait`), printed by [`crate::print`].

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::error::code_name;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use crate::print;

/// A failed command: printed as is, exit 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        CliError(format!(
            "{}: {}",
            code_name(status.code()),
            status.message()
        ))
    }
}

pub type Result = std::result::Result<ExitCode, CliError>;

pub struct Ctx {
    pub scheduler: String,
    pub json: bool,
    /// Sent as `authorization: Bearer <token>` (a scheduler's client port may ask for one).
    pub token: Option<String>,
    /// TLS to the scheduler, trusting the CA certificate(s) in this PEM file.
    pub ca_cert: Option<std::path::PathBuf>,
}

/// Adds the bearer token, if any, to every call.
#[derive(Clone)]
pub struct Token(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

type Client = pb::scheduler_client::SchedulerClient<
    tonic::service::interceptor::InterceptedService<Channel, Token>,
>;

impl Ctx {
    pub fn new(scheduler: &str, json: bool) -> Self {
        Ctx {
            scheduler: scheduler.to_owned(),
            json,
            token: None,
            ca_cert: None,
        }
    }

    fn client(&self) -> std::result::Result<Client, CliError> {
        let (channel, token) = self.connection()?;
        Ok(pb::scheduler_client::SchedulerClient::with_interceptor(
            channel, token,
        ))
    }

    /// The channel to the scheduler and the token every call carries.
    pub fn connection(&self) -> std::result::Result<(Channel, Token), CliError> {
        let channel = match &self.ca_cert {
            Some(ca) => fedflow_tls::client::server_auth_channel(&self.scheduler, ca)
                .map_err(|e| CliError(format!("INVALID_ARGUMENT: --ca-cert: {e}")))?,
            None => fedflow_rpc::channel(&self.scheduler).map_err(|e| {
                CliError(format!(
                    "INVALID_ARGUMENT: scheduler address {:?}: {e}",
                    self.scheduler
                ))
            })?,
        };
        let token = match &self.token {
            Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| {
                CliError("INVALID_ARGUMENT: --token: not a valid header value".into())
            })?),
            None => None,
        };
        Ok((channel, Token(token)))
    }
}

pub fn read(path: &Path, what: &str) -> std::result::Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("INVALID_ARGUMENT: {what} {}: {e}", path.display())))
}

/// Submits a FATE 1.x DSL and conf, or (`dsl` absent) the FATE 2.x DAG `conf`, in YAML or
/// JSON, sent as the DSL with an empty conf.
pub async fn submit(
    ctx: &Ctx,
    dsl: Option<&Path>,
    conf: &Path,
    request_id: Option<String>,
) -> Result {
    let (dsl, runtime_conf) = match dsl {
        Some(dsl) => (read(dsl, "dsl")?, read(conf, "conf")?),
        None => (dag_json(conf, &read(conf, "dag")?)?, String::new()),
    };
    let request = pb::SubmitJobRequest {
        dsl,
        runtime_conf,
        request_id: request_id.unwrap_or_default(),
    };
    let reply = ctx.client()?.submit_job(request).await?.into_inner();
    if ctx.json {
        println!("{}", serde_json::json!({ "job_id": reply.job_id }));
    } else {
        println!("job submitted: {}", reply.job_id);
    }
    Ok(ExitCode::SUCCESS)
}

/// A FATE 2.x DAG as JSON: JSON is sent as written (the scheduler reads it strictly, duplicate
/// keys included), YAML is converted; a YAML error names the file and the line.
pub fn dag_json(path: &Path, text: &str) -> std::result::Result<String, CliError> {
    if text.trim_start().starts_with('{') {
        return Ok(text.to_owned());
    }
    let bad = |e: serde_norway::Error| {
        let line = e
            .location()
            .map(|l| format!(" line {}", l.line()))
            .unwrap_or_default();
        CliError(format!(
            "INVALID_ARGUMENT: dag {}:{line}: not YAML: {e}",
            path.display()
        ))
    };
    let value: serde_json::Value = serde_norway::from_str(text).map_err(bad)?;
    Ok(value.to_string())
}

/// Submits the DSL and conf given as text; returns the job id.
pub async fn submit_text(
    ctx: &Ctx,
    dsl: String,
    conf: String,
) -> std::result::Result<String, CliError> {
    let request = pb::SubmitJobRequest {
        dsl,
        runtime_conf: conf,
        request_id: String::new(),
    };
    Ok(ctx.client()?.submit_job(request).await?.into_inner().job_id)
}

/// The job once it has ended, or `None` when `within` passed first.
pub async fn ended(
    ctx: &Ctx,
    job_id: &str,
    within: Duration,
) -> std::result::Result<Option<pb::Job>, CliError> {
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(20);
    loop {
        let job = get_job(ctx, job_id).await?;
        if is_end(job.status) {
            return Ok(Some(job));
        }
        if tokio::time::Instant::now() + pause > deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// The output (JSON text) of the latest version of `component` at (`role`, `party_id`).
pub async fn output_json(
    ctx: &Ctx,
    job_id: &str,
    component: &str,
    role: &str,
    party_id: &str,
) -> std::result::Result<String, CliError> {
    Ok(ctx
        .client()?
        .get_task_output(pb::GetTaskOutputRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            role: role.to_owned(),
            party_id: party_id.to_owned(),
        })
        .await?
        .into_inner()
        .output_json)
}

async fn get_job(ctx: &Ctx, job_id: &str) -> std::result::Result<pb::Job, CliError> {
    let reply = ctx
        .client()?
        .get_job(pb::GetJobRequest {
            job_id: job_id.to_owned(),
            include_conf: false,
        })
        .await?
        .into_inner();
    reply.job.ok_or_else(|| {
        CliError(format!(
            "INTERNAL: the scheduler answered no job for {job_id}"
        ))
    })
}

pub async fn query(ctx: &Ctx, job_id: &str) -> Result {
    let job = get_job(ctx, job_id).await?;
    print::job(&job, ctx.json);
    Ok(ExitCode::SUCCESS)
}

pub async fn list(ctx: &Ctx, limit: u32) -> Result {
    let reply = ctx
        .client()?
        .list_jobs(pb::ListJobsRequest { limit })
        .await?
        .into_inner();
    print::jobs(&reply.jobs, ctx.json);
    Ok(ExitCode::SUCCESS)
}

pub async fn stop(ctx: &Ctx, job_id: &str) -> Result {
    let reply = ctx
        .client()?
        .stop_job(pb::StopJobRequest {
            job_id: job_id.to_owned(),
            request_id: fedflow_rpc::new_request_id(),
        })
        .await?
        .into_inner();
    let status = fedflow_rpc::convert::job_status_name(reply.status);
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"job_id": reply.job_id, "status": status, "message": reply.message})
        );
    } else {
        println!("{}: {} ({status})", reply.job_id, reply.message);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rerun(ctx: &Ctx, job_id: &str, component: Option<String>, force: bool) -> Result {
    let reply = ctx
        .client()?
        .rerun_job(pb::RerunJobRequest {
            job_id: job_id.to_owned(),
            component: component.unwrap_or_default(),
            force,
            request_id: fedflow_rpc::new_request_id(),
        })
        .await?
        .into_inner();
    if ctx.json {
        println!(
            "{}",
            serde_json::json!({"job_id": reply.job_id, "components": reply.components})
        );
    } else {
        println!(
            "{}: rerunning {}",
            reply.job_id,
            reply.components.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn is_end(status: i32) -> bool {
    matches!(
        JobStatus::try_from(status),
        Ok(JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Timeout)
    )
}

fn exit_for(status: i32) -> ExitCode {
    if status == JobStatus::Success as i32 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn wait(ctx: &Ctx, job_id: &str, timeout: Option<f64>) -> Result {
    let deadline =
        timeout.map(|s| tokio::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut pause = Duration::from_millis(20);
    loop {
        let job = get_job(ctx, job_id).await?;
        if is_end(job.status) {
            print::job(&job, ctx.json);
            return Ok(exit_for(job.status));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() + pause > d) {
            print::job(&job, ctx.json);
            eprintln!(
                "DEADLINE_EXCEEDED: job {job_id} still {} after {}s",
                fedflow_rpc::convert::job_status_name(job.status),
                timeout.unwrap_or_default()
            );
            return Ok(ExitCode::from(2));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

pub async fn watch(ctx: &Ctx, job_id: &str) -> Result {
    let mut stream = ctx
        .client()?
        .watch_job(pb::WatchJobRequest {
            job_id: job_id.to_owned(),
        })
        .await?
        .into_inner();
    let mut last = None;
    while let Some(event) = stream.next().await {
        let event = event?;
        print::event(&event, ctx.json);
        if let Some(pb::job_event::Event::Job(job)) = &event.event {
            last = Some(job.status);
        }
    }
    Ok(last.map_or(ExitCode::FAILURE, exit_for))
}

pub async fn tasks(ctx: &Ctx, job_id: &str, all_versions: bool) -> Result {
    let reply = ctx
        .client()?
        .list_tasks(pb::ListTasksRequest {
            job_id: job_id.to_owned(),
            all_versions,
        })
        .await?
        .into_inner();
    print::tasks(&reply.tasks, ctx.json);
    Ok(ExitCode::SUCCESS)
}

pub async fn output(
    ctx: &Ctx,
    job_id: &str,
    component: &str,
    role: &str,
    party_id: &str,
) -> Result {
    let reply = ctx
        .client()?
        .get_task_output(pb::GetTaskOutputRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            role: role.to_owned(),
            party_id: party_id.to_owned(),
        })
        .await?
        .into_inner();
    if ctx.json {
        let output: serde_json::Value =
            serde_json::from_str(&reply.output_json).unwrap_or(serde_json::Value::Null);
        println!(
            "{}",
            serde_json::json!({"job_id": job_id, "component": component, "role": role,
                "party_id": party_id, "version": reply.version, "output": output})
        );
    } else if reply.output_json.is_empty() {
        println!("(no output)");
    } else {
        println!("{}", reply.output_json);
    }
    Ok(ExitCode::SUCCESS)
}

/// Submits and returns the job id without printing.
pub async fn submit_quiet(
    ctx: &Ctx,
    dsl: &Path,
    conf: &Path,
) -> std::result::Result<String, CliError> {
    let request = pb::SubmitJobRequest {
        dsl: read(dsl, "dsl")?,
        runtime_conf: read(conf, "conf")?,
        request_id: String::new(),
    };
    Ok(ctx.client()?.submit_job(request).await?.into_inner().job_id)
}
