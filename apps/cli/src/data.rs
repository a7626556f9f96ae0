//! `fedflow data upload|list|info|delete`, `fedflow output list|metric|model|data` and
//! `fedflow task log`: the party's data and outputs, asked of the scheduler `--scheduler`
//! names, which answers from its own party's registry. An upload reads FATE-Flow's upload
//! conf and streams the file's bytes in bounded chunks; the file never has to be on the
//! server's disk.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use fedflow_proto::scheduler::v1 as pb;
use fedflow_proto::taskcontroller::v1 as tc;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::commands::{CliError, Ctx, Result, Token, read};

type Client = pb::data_client::DataClient<InterceptedService<Channel, Token>>;

/// Bytes per streamed message.
const CHUNK: usize = 256 << 10;

fn client(ctx: &Ctx) -> std::result::Result<Client, CliError> {
    let (channel, token) = ctx.connection()?;
    Ok(pb::data_client::DataClient::with_interceptor(
        channel, token,
    ))
}

fn bad(message: String) -> CliError {
    CliError(format!("INVALID_ARGUMENT: {message}"))
}

/// FATE-Flow upload conf keys fedflow reads, and those it accepts and ignores.
const READ_KEYS: &[&str] = &[
    "file",
    "head",
    "partitions",
    "extend_sid",
    "meta",
    "namespace",
    "name",
    "drop",
];
const IGNORED_KEYS: &[&str] = &[
    "storage_engine",
    "destroy",
    "id_delimiter",
    "work_mode",
    "backend",
    "table_name",
    "use_local_data",
    "with_meta",
    "auto_increasing_sid",
    "storage_address",
    "engine",
];

fn flag(
    conf: &Map<String, Value>,
    key: &str,
    default: bool,
) -> std::result::Result<bool, CliError> {
    match conf.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(other) => Err(bad(format!(
            "{key}: expected 0, 1, true or false, got {other}"
        ))),
    }
}

/// The upload spec and the file to stream, from a FATE-Flow upload conf.
fn upload_conf(conf_path: &Path) -> std::result::Result<(tc::UploadSpec, PathBuf), CliError> {
    let text = read(conf_path, "conf")?;
    let conf: Map<String, Value> = serde_json::from_str(&text)
        .map_err(|e| bad(format!("conf {}: {e}", conf_path.display())))?;
    for key in conf.keys() {
        if !READ_KEYS.contains(&key.as_str()) && !IGNORED_KEYS.contains(&key.as_str()) {
            return Err(bad(format!(
                "conf: unknown key {key:?} (expected {})",
                READ_KEYS.join(", ")
            )));
        }
    }
    let text_of = |key: &str| -> std::result::Result<String, CliError> {
        match conf.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(bad(format!("conf: {key} is required (a string)"))),
        }
    };
    let file = PathBuf::from(text_of("file")?);
    // As FATE-Flow's client: relative to the working directory; else beside the conf.
    let file = if file.is_relative() && !file.exists() {
        conf_path.parent().map(|d| d.join(&file)).unwrap_or(file)
    } else {
        file
    };
    let meta = match conf.get("meta") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(bad(format!("conf: meta: expected an object, got {other}"))),
    };
    let partitions = match conf.get("partitions") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| {
                bad(format!(
                    "conf: partitions: expected a whole number, got {v}"
                ))
            })?,
    };
    let spec = tc::UploadSpec {
        namespace: text_of("namespace")?,
        name: text_of("name")?,
        head: flag(&conf, "head", true)?,
        partitions,
        extend_sid: flag(&conf, "extend_sid", false)?,
        drop: flag(&conf, "drop", false)?,
        meta_json: Value::Object(meta).to_string(),
        file: file.display().to_string(),
        file_size: 0,
    };
    Ok((spec, file))
}

pub async fn upload(ctx: &Ctx, conf: &Path) -> Result {
    let (mut spec, path) = upload_conf(conf)?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| bad(format!("file {}: {e}", path.display())))?;
    // The server refuses an upload that delivers any other number of bytes.
    spec.file_size = file
        .metadata()
        .await
        .map_err(|e| bad(format!("file {}: {e}", path.display())))?
        .len();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let first = pb::UploadTableRequest {
        part: Some(pb::upload_table_request::Part::Spec(spec)),
    };
    tx.send(first)
        .await
        .map_err(|_| bad("upload stream closed".into()))?;
    let reader = tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            buf.truncate(n);
            let chunk = pb::UploadTableRequest {
                part: Some(pb::upload_table_request::Part::Chunk(buf.into())),
            };
            if tx.send(chunk).await.is_err() {
                return Ok(());
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let reply = client(ctx)?.upload_table(stream).await;
    if let Ok(Err(e)) = reader.await {
        return Err(bad(format!("file {}: {e}", path.display())));
    }
    let table = reply?.into_inner().table.unwrap_or_default();
    if ctx.json {
        println!("{}", table_json(&table));
    } else {
        println!(
            "uploaded {}/{}: {} rows, {} columns",
            table.namespace,
            table.name,
            table.row_count,
            table.columns.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn table_json(t: &tc::Table) -> Value {
    let meta: Value = serde_json::from_str(&t.meta_json).unwrap_or(Value::Null);
    json!({
        "namespace": t.namespace, "name": t.name, "columns": t.columns,
        "row_count": t.row_count, "size_bytes": t.size_bytes, "uri": t.uri, "meta": meta,
        "partitions": t.partitions, "extend_sid": t.extend_sid,
        "match_id_name": t.match_id_name, "label_name": t.label_name,
        "create_time_ms": t.create_time_ms,
    })
}

pub async fn list(ctx: &Ctx, namespace: Option<String>) -> Result {
    let request = tc::ListTablesRequest {
        namespace: namespace.unwrap_or_default(),
    };
    let tables = client(ctx)?.list_tables(request).await?.into_inner().tables;
    if ctx.json {
        let all: Vec<Value> = tables.iter().map(table_json).collect();
        println!("{}", Value::Array(all));
    } else if tables.is_empty() {
        println!("no tables");
    } else {
        println!(
            "{:<24} {:<32} {:>10} {:>8}",
            "NAMESPACE", "NAME", "ROWS", "COLUMNS"
        );
        for t in &tables {
            println!(
                "{:<24} {:<32} {:>10} {:>8}",
                t.namespace,
                t.name,
                t.row_count,
                t.columns.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn info(ctx: &Ctx, namespace: &str, name: &str) -> Result {
    let request = tc::GetTableRequest {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let table = client(ctx)?
        .get_table(request)
        .await?
        .into_inner()
        .table
        .unwrap_or_default();
    if ctx.json {
        println!("{}", table_json(&table));
    } else {
        println!("table:    {}/{}", table.namespace, table.name);
        println!("rows:     {}", table.row_count);
        println!("columns:  {}", table.columns.join(", "));
        println!("id:       {}", table.match_id_name);
        if !table.label_name.is_empty() {
            println!("label:    {}", table.label_name);
        }
        println!("meta:     {}", table.meta_json);
        println!("size:     {} bytes", table.size_bytes);
        println!("uri:      {}", table.uri);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(ctx: &Ctx, namespace: &str, name: &str) -> Result {
    let request = tc::DeleteTableRequest {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    client(ctx)?.delete_table(request).await?;
    if ctx.json {
        println!(
            "{}",
            json!({"deleted": {"namespace": namespace, "name": name}})
        );
    } else {
        println!("deleted {namespace}/{name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which outputs an `output` command is about.
pub struct Which {
    pub job_id: String,
    pub component: Option<String>,
    /// Empty: the scheduler's own party.
    pub party_id: String,
}

fn artifact_json(a: &tc::Artifact) -> Value {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let source = a.source.clone().unwrap_or_default();
    json!({
        "key": a.key, "kind": a.kind, "type_name": a.type_name, "uri": a.uri,
        "size_bytes": a.size_bytes, "metadata": parse(&a.metadata_json),
        "overview": parse(&a.overview_json),
        "source": {"job_id": source.job_id, "component": source.component,
                   "version": source.version, "role": source.role,
                   "party_id": source.party_id, "output_key": source.output_key},
    })
}

pub async fn output_list(ctx: &Ctx, which: Which) -> Result {
    let request = pb::ListOutputsRequest {
        request: Some(tc::ListArtifactsRequest {
            job_id: which.job_id,
            component: which.component.unwrap_or_default(),
        }),
        party_id: which.party_id,
    };
    let artifacts = client(ctx)?
        .list_outputs(request)
        .await?
        .into_inner()
        .artifacts;
    if ctx.json {
        println!(
            "{}",
            Value::Array(artifacts.iter().map(artifact_json).collect())
        );
    } else if artifacts.is_empty() {
        println!("no outputs");
    } else {
        println!(
            "{:<32} {:<7} {:<12} {:>3} {:<8} {:>10}  OVERVIEW",
            "KEY", "KIND", "TYPE", "VER", "ROLE", "BYTES"
        );
        for a in &artifacts {
            let s = a.source.clone().unwrap_or_default();
            println!(
                "{:<32} {:<7} {:<12} {:>3} {:<8} {:>10}  {}",
                a.key, a.kind, a.type_name, s.version, s.role, a.size_bytes, a.overview_json
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn read_output(
    ctx: &Ctx,
    which: Which,
    kind: &str,
    limit: u32,
) -> std::result::Result<tc::ReadArtifactResponse, CliError> {
    let component = which
        .component
        .ok_or_else(|| bad("-c/--component-name is required".into()))?;
    let request = pb::ReadOutputRequest {
        request: Some(tc::ReadArtifactRequest {
            job_id: which.job_id,
            component,
            output_key: String::new(),
            kind: kind.to_owned(),
            limit,
        }),
        party_id: which.party_id,
    };
    Ok(client(ctx)?.read_output(request).await?.into_inner())
}

pub async fn output_metric(ctx: &Ctx, which: Which) -> Result {
    let reply = read_output(ctx, which, "metric", 0).await?;
    let metric: Value = serde_json::from_slice(&reply.content)
        .map_err(|e| CliError(format!("INTERNAL: the metric is not JSON: {e}")))?;
    if ctx.json {
        println!("{metric}");
    } else {
        let pretty = serde_json::to_string_pretty(&metric).unwrap_or_default();
        println!("{pretty}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn output_model(ctx: &Ctx, which: Which, download: &Path) -> Result {
    let reply = read_output(ctx, which, "model", 0).await?;
    let artifact = reply.artifact.unwrap_or_default();
    if reply.truncated {
        return Err(CliError(format!(
            "FAILED_PRECONDITION: model {} is larger than one read allows",
            artifact.key
        )));
    }
    let name = artifact
        .uri
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("model");
    let dir = download.join(&artifact.key);
    std::fs::create_dir_all(&dir).map_err(|e| bad(format!("--download {}: {e}", dir.display())))?;
    let path = dir.join(name);
    std::fs::write(&path, &reply.content)
        .map_err(|e| bad(format!("--download {}: {e}", path.display())))?;
    if ctx.json {
        println!(
            "{}",
            json!({"key": artifact.key, "path": path.display().to_string()})
        );
    } else {
        println!("model {} saved to {}", artifact.key, path.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn output_data(ctx: &Ctx, which: Which, limit: u32) -> Result {
    let reply = read_output(ctx, which, "data", limit).await?;
    let text = String::from_utf8_lossy(&reply.content);
    if ctx.json {
        let artifact = reply.artifact.as_ref().map(artifact_json);
        println!(
            "{}",
            json!({"artifact": artifact, "content": text, "truncated": reply.truncated})
        );
    } else {
        print!("{text}");
        if reply.truncated {
            eprintln!("(first {limit} rows shown)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which task's log.
pub struct LogOf {
    pub job_id: String,
    pub component: String,
    pub role: String,
    pub party_id: String,
    pub tail: u32,
    pub follow: bool,
}

pub async fn task_log(ctx: &Ctx, of: LogOf) -> Result {
    use std::io::Write;
    let mut client = client(ctx)?;
    let mut offset = 0;
    let mut tail = of.tail;
    loop {
        let request = tc::ReadTaskLogRequest {
            job_id: of.job_id.clone(),
            component: of.component.clone(),
            role: of.role.clone(),
            party_id: of.party_id.clone(),
            tail,
            offset,
        };
        let reply = client.read_task_log(request).await?.into_inner();
        let mut out = std::io::stdout();
        let _ = out.write_all(&reply.content);
        let _ = out.flush();
        let moved = reply.offset != offset;
        offset = reply.offset;
        tail = 0;
        if !of.follow || (reply.ended && !moved) {
            return Ok(ExitCode::SUCCESS);
        }
        if !moved {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}
