//! What a task page shows of this party's own side of a task: its log tail per role this
//! party plays, its outputs and its metric. Each is asked of this party's task-controller
//! through `App::own_data` (what `fedflow task log`, `fedflow output list` and `fedflow output
//! metric` use); nothing is asked of another party, since logs and outputs stay where they
//! are made. A failure of one part is shown in its place, never fails the page.

use bytes::Bytes;
use fedflow_core::ids::{JobId, Participant};
use fedflow_proto::taskcontroller::v1 as tc;
use prost::Message;
use serde_json::Value;

use crate::app::App;

/// Log lines shown per role.
const LOG_TAIL: u32 = 200;

/// One output of this party's task, as its registry lists it.
pub struct Output {
    pub key: String,
    pub kind: String,
    pub type_name: String,
    pub size_bytes: u64,
    pub role: String,
    pub version: i32,
    pub overview: String,
}

/// This party's side of one task.
pub struct Own {
    /// (the role this party plays, its log tail or why there is none).
    pub logs: Vec<(Participant, Result<String, String>)>,
    pub outputs: Result<Vec<Output>, String>,
    /// The component's metric (a registered one, or a running FATE task's live metrics);
    /// Ok(None): it has none.
    pub metric: Result<Option<Value>, String>,
}

async fn ask<Req: Message, Resp: Message + Default>(
    app: &App,
    method: &str,
    job_id: &str,
    request: &Req,
) -> Result<Resp, tonic::Code> {
    let reply = app
        .own_data(method, job_id, Bytes::from(request.encode_to_vec()))
        .await
        .map_err(|e| {
            tracing::debug!(method, error = %e.message, "board: own data call failed");
            e.code
        })?;
    Resp::decode(reply).map_err(|_| tonic::Code::Internal)
}

/// The same, with the task-controller's message kept for the page.
async fn ask_text<Req: Message, Resp: Message + Default>(
    app: &App,
    method: &str,
    job_id: &str,
    request: &Req,
) -> Result<Resp, (tonic::Code, String)> {
    let reply = app
        .own_data(method, job_id, Bytes::from(request.encode_to_vec()))
        .await
        .map_err(|e| (e.code, e.message))?;
    Resp::decode(reply).map_err(|e| {
        (
            tonic::Code::Internal,
            format!("undecodable {method} reply: {e}"),
        )
    })
}

/// Reads this party's side of `component` of `job_id`.
pub async fn own(app: &App, job_id: &JobId, component: &str, participants: &[Participant]) -> Own {
    let job = job_id.as_str();
    let mut logs = Vec::new();
    for who in participants.iter().filter(|p| p.party_id == app.party_id()) {
        let request = tc::ReadTaskLogRequest {
            job_id: job.to_owned(),
            component: component.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            tail: LOG_TAIL,
            offset: 0,
        };
        let log = ask_text::<_, tc::ReadTaskLogResponse>(app, "ReadTaskLog", job, &request)
            .await
            .map(|r| String::from_utf8_lossy(&r.content).into_owned())
            .map_err(|(_, m)| m);
        logs.push((who.clone(), log));
    }
    let request = tc::ListArtifactsRequest {
        job_id: job.to_owned(),
        component: component.to_owned(),
    };
    let outputs = ask_text::<_, tc::ListArtifactsResponse>(app, "ListArtifacts", job, &request)
        .await
        .map(|r| r.artifacts.into_iter().map(output).collect())
        .map_err(|(_, m)| m);
    let request = tc::ReadArtifactRequest {
        job_id: job.to_owned(),
        component: component.to_owned(),
        output_key: String::new(),
        kind: "metric".into(),
        limit: 0,
    };
    let metric = match ask::<_, tc::ReadArtifactResponse>(app, "ReadArtifact", job, &request).await
    {
        Ok(reply) => serde_json::from_slice(&reply.content)
            .map(Some)
            .map_err(|e| format!("the metric is not JSON: {e}")),
        Err(tonic::Code::NotFound) => Ok(None),
        Err(code) => Err(format!("the metric could not be read ({code:?})")),
    };
    Own {
        logs,
        outputs,
        metric,
    }
}

fn output(a: tc::Artifact) -> Output {
    let source = a.source.unwrap_or_default();
    Output {
        key: if source.output_key.is_empty() {
            a.key
        } else {
            source.output_key
        },
        kind: a.kind,
        type_name: a.type_name,
        size_bytes: a.size_bytes,
        role: source.role,
        version: source.version,
        overview: a.overview_json,
    }
}
