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

/// `job list`'s filters and page, as `ListJobsRequest` takes them (0 and empty: none).
pub async fn list(ctx: &Ctx, request: pb::ListJobsRequest) -> Result {
    let reply = ctx.client()?.list_jobs(request).await?.into_inner();
    print::jobs(&reply.jobs, &reply.next_page_token, ctx.json);
    Ok(ExitCode::SUCCESS)
}

/// A job status as `job list --status` names it (FATE's lowercase names).
pub fn parse_job_status(text: &str) -> std::result::Result<i32, String> {
    let status = match text.trim().to_ascii_lowercase().as_str() {
        "ready" => JobStatus::Ready,
        "waiting" => JobStatus::Waiting,
        "running" => JobStatus::Running,
        "success" => JobStatus::Success,
        "failed" => JobStatus::Failed,
        "canceled" => JobStatus::Canceled,
        "timeout" => JobStatus::Timeout,
        other => {
            return Err(format!(
                "{other:?} is not a job status (ready, waiting, running, success, failed, canceled, timeout)"
            ));
        }
    };
    Ok(status as i32)
}

/// A time as milliseconds since the epoch: the milliseconds themselves, or RFC 3339
/// (`2026-12-01T16:07:35Z`, `2026-12-01T17:07:35.250+01:00`).
pub fn parse_time_ms(text: &str) -> std::result::Result<i64, String> {
    let bad = || format!("{text:?} is neither milliseconds since the epoch nor an RFC 3339 time");
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| bad());
    }
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let num = |from: usize, to: usize| -> std::result::Result<i64, String> {
        let part = text.get(from..to).ok_or_else(bad)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let first3 = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = first3.parse::<i64>().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let minutes: i64 = rest[4..6].parse().map_err(|_| bad())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        _ => return Err(bad()),
    };
    // Days from 1970-01-01 in the proleptic Gregorian calendar (Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Ok(secs * 1000 + millis)
}

/// `job dag`: the job's DAG (from its DSL, parsed as the scheduler parsed it at submit) with
/// each component's latest federated status.
pub async fn dag(ctx: &Ctx, job_id: &str, format: crate::dag::Format) -> Result {
    let mut client = ctx.client()?;
    let job = client
        .get_job(pb::GetJobRequest {
            job_id: job_id.to_owned(),
            include_conf: true,
        })
        .await?
        .into_inner()
        .job
        .ok_or_else(|| {
            CliError(format!(
                "INTERNAL: the scheduler answered no job for {job_id}"
            ))
        })?;
    // The scheduler accepted this DSL under its own limits; only the shape is needed here.
    let limits = fedflow_core::dsl::Limits {
        max_dsl_bytes: usize::MAX,
        max_conf_bytes: usize::MAX,
        max_components: usize::MAX,
        max_parties: usize::MAX,
    };
    let spec = fedflow_core::dsl::parse(&job.dsl, &job.runtime_conf, &limits).map_err(|e| {
        CliError(format!(
            "INTERNAL: the DSL of job {job_id} does not parse: {e}"
        ))
    })?;
    let tasks = client
        .list_tasks(pb::ListTasksRequest {
            job_id: job_id.to_owned(),
            all_versions: false,
        })
        .await?
        .into_inner()
        .tasks;
    let nodes: Vec<crate::dag::Node> = spec
        .components
        .iter()
        .map(|c| crate::dag::Node {
            name: c.name.clone(),
            module: c.module.clone(),
            status: tasks
                .iter()
                .filter(|t| t.component == c.name)
                .max_by_key(|t| t.version)
                .map_or("waiting", |t| {
                    fedflow_rpc::convert::task_status_name(t.status)
                })
                .to_owned(),
            upstream: c.upstream.clone(),
        })
        .collect();
    print!("{}", crate::dag::render(&nodes, format));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_milliseconds_or_rfc3339() {
        assert_eq!(parse_time_ms("1764605255000"), Ok(1_764_605_255_000));
        assert_eq!(parse_time_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time_ms("2025-12-01T16:07:35Z"), Ok(1_764_605_255_000));
        assert_eq!(
            parse_time_ms("2025-12-01T17:07:35.25+01:00"),
            Ok(1_764_605_255_250)
        );
        assert_eq!(
            parse_time_ms("2000-02-29T00:00:00-00:30"),
            Ok(951_784_200_000)
        );
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00Z",
            "2025-12-01T00:00:00",
            "2025-12-01",
        ] {
            assert!(parse_time_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_are_named_as_fate_names_them() {
        assert_eq!(parse_job_status("Running"), Ok(JobStatus::Running as i32));
        assert!(parse_job_status("done").is_err());
    }
}
