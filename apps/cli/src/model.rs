//! `fedflow model list|export`: a job's models on this party (the outputs of kind `model`),
//! as FATE-Flow's `flow model` lists and exports them. A model id is the training job's id (a
//! FATE 2.x predict DAG names it in `dag.conf.model_warehouse.model_id`). Export takes
//! FATE-Flow's export conf, `{model_id, model_version, role?, party_id?, path}`, and writes each
//! model file under `path/<role>/<party_id>/<component>/<output_key>/` with a `manifest.json`
//! beside them (every model's source, type and pyfate metadata).

use std::path::Path;
use std::process::ExitCode;

use fedflow_proto::scheduler::v1 as pb;
use fedflow_proto::taskcontroller::v1 as tc;
use serde_json::{Value, json};

use crate::commands::{CliError, Ctx, Result, read};

fn bad(message: String) -> CliError {
    CliError(format!("INVALID_ARGUMENT: {message}"))
}

/// The model outputs of `job_id` on this party.
async fn models(ctx: &Ctx, job_id: &str) -> std::result::Result<Vec<tc::Artifact>, CliError> {
    let (channel, token) = ctx.connection()?;
    let mut client = pb::data_client::DataClient::with_interceptor(channel, token);
    let artifacts = client
        .list_outputs(pb::ListOutputsRequest {
            request: Some(tc::ListArtifactsRequest {
                job_id: job_id.to_owned(),
                component: String::new(),
            }),
            party_id: String::new(),
        })
        .await?
        .into_inner()
        .artifacts;
    Ok(artifacts
        .into_iter()
        .filter(|a| a.kind == "model")
        .collect())
}

pub async fn list(ctx: &Ctx, job_id: &str) -> Result {
    let models = models(ctx, job_id).await?;
    if ctx.json {
        let rows: Vec<Value> = models
            .iter()
            .map(|a| {
                let s = a.source.clone().unwrap_or_default();
                json!({"model_id": s.job_id, "component": s.component, "output_key": s.output_key,
                       "role": s.role, "party_id": s.party_id, "version": s.version,
                       "type_name": a.type_name, "size_bytes": a.size_bytes})
            })
            .collect();
        println!("{}", Value::Array(rows));
    } else if models.is_empty() {
        println!("no models of job {job_id} on this party");
    } else {
        println!(
            "{:<24} {:<20} {:<16} {:<8} {:<8} {:<14} {:>10}",
            "MODEL_ID", "COMPONENT", "OUTPUT", "ROLE", "PARTY", "TYPE", "BYTES"
        );
        for a in &models {
            let s = a.source.clone().unwrap_or_default();
            println!(
                "{:<24} {:<20} {:<16} {:<8} {:<8} {:<14} {:>10}",
                s.job_id, s.component, s.output_key, s.role, s.party_id, a.type_name, a.size_bytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn export(ctx: &Ctx, conf_path: &Path) -> Result {
    let conf: Value = serde_json::from_str(&read(conf_path, "conf")?)
        .map_err(|e| bad(format!("conf {}: not JSON: {e}", conf_path.display())))?;
    let conf = conf
        .as_object()
        .ok_or_else(|| bad(format!("conf {}: expected an object", conf_path.display())))?;
    for key in conf.keys() {
        if !["model_id", "model_version", "role", "party_id", "path"].contains(&key.as_str()) {
            return Err(bad(format!(
                "conf: unknown key {key:?} (expected model_id, model_version, role, party_id, path)"
            )));
        }
    }
    let text = |key: &str| -> std::result::Result<Option<String>, CliError> {
        match conf.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if key != "model_id" => Ok(Some(n.to_string())),
            Some(other) => Err(bad(format!("conf: {key}: expected a string, got {other}"))),
        }
    };
    let model_id = text("model_id")?.ok_or_else(|| bad("conf: model_id: missing".into()))?;
    let path = text("path")?.ok_or_else(|| bad("conf: path: missing".into()))?;
    let role = text("role")?;
    let party = text("party_id")?;
    let models: Vec<tc::Artifact> = models(ctx, &model_id)
        .await?
        .into_iter()
        .filter(|a| {
            let s = a.source.clone().unwrap_or_default();
            role.as_ref().is_none_or(|r| *r == s.role)
                && party.as_ref().is_none_or(|p| *p == s.party_id)
        })
        .collect();
    if models.is_empty() {
        return Err(CliError(format!(
            "NOT_FOUND: job {model_id} has no models on this party{}",
            role.map(|r| format!(" as {r}")).unwrap_or_default()
        )));
    }
    let (channel, token) = ctx.connection()?;
    let mut client = pb::data_client::DataClient::with_interceptor(channel, token);
    let root = Path::new(&path);
    let mut manifest = Vec::new();
    for a in &models {
        let s = a.source.clone().unwrap_or_default();
        let reply = client
            .read_output(pb::ReadOutputRequest {
                request: Some(tc::ReadArtifactRequest {
                    job_id: model_id.clone(),
                    component: s.component.clone(),
                    output_key: s.output_key.clone(),
                    kind: "model".into(),
                    limit: 0,
                }),
                party_id: String::new(),
            })
            .await?
            .into_inner();
        if reply.truncated {
            return Err(CliError(format!(
                "FAILED_PRECONDITION: model {} is larger than one read allows",
                a.key
            )));
        }
        let dir = root
            .join(&s.role)
            .join(&s.party_id)
            .join(&s.component)
            .join(&s.output_key);
        std::fs::create_dir_all(&dir).map_err(|e| bad(format!("path {}: {e}", dir.display())))?;
        let file = dir.join(if a.type_name.is_empty() {
            "model"
        } else {
            &a.type_name
        });
        std::fs::write(&file, &reply.content)
            .map_err(|e| bad(format!("path {}: {e}", file.display())))?;
        manifest.push(json!({
            "component": s.component, "output_key": s.output_key, "role": s.role,
            "party_id": s.party_id, "version": s.version, "type_name": a.type_name,
            "file": file.strip_prefix(root).unwrap_or(&file).display().to_string(),
            "metadata": serde_json::from_str::<Value>(&a.metadata_json).unwrap_or(Value::Null),
        }));
    }
    let manifest = json!({
        "model_id": model_id,
        "model_version": text("model_version")?.unwrap_or_else(|| "0".into()),
        "models": manifest,
    });
    let manifest_path = root.join("manifest.json");
    std::fs::write(&manifest_path, manifest.to_string())
        .map_err(|e| bad(format!("path {}: {e}", manifest_path.display())))?;
    if ctx.json {
        println!("{manifest}");
    } else {
        println!(
            "exported {} model(s) of {model_id} to {}",
            models.len(),
            root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
