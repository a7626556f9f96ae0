//! `fedflow.taskcontroller.v1.Data` adapters: the party's data and artifacts registry, for
//! this party's own services only. A call another party's gateway passed on is refused
//! before anything is read (the gateway opens none of these methods either): data and
//! models never leave the party.

use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::party::{Caller, caller};
use tonic::{Request, Response, Status};

use crate::app::{self, App, ReadArtifact, ReadLog, UploadSpec, uri};
use crate::store::{Artifact, Table};

pub const DATA_SERVICE_NAME: &str = "fedflow.taskcontroller.v1.Data";

pub struct Data {
    pub(super) app: App,
}

impl Data {
    fn local_only<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match caller(request, self.app.party_id()) {
            Caller::Local => Ok(()),
            Caller::Party(party) => Err(app::Error::PermissionDenied(format!(
                "party {party} may not read or change party {}'s data: data stays on its party",
                self.app.party_id()
            ))
            .into()),
        }
    }
}

fn table_to_pb(t: Table) -> pb::Table {
    pb::Table {
        uri: uri(&t.path),
        namespace: t.namespace,
        name: t.name,
        columns: t.columns,
        row_count: t.row_count,
        size_bytes: t.size_bytes,
        meta_json: t.meta,
        partitions: t.partitions,
        extend_sid: t.extend_sid,
        create_time_ms: t.create_ms,
        match_id_name: t.id_name,
        label_name: t.label_name,
    }
}

fn artifact_to_pb(a: Artifact) -> pb::Artifact {
    pb::Artifact {
        key: format!("{}.{}", a.key.component, a.output_key),
        uri: uri(&a.path),
        kind: a.kind,
        type_name: a.type_name,
        size_bytes: a.size_bytes,
        metadata_json: a.metadata,
        overview_json: a.overview,
        create_time_ms: a.create_ms,
        source: Some(pb::ArtifactSource {
            job_id: a.key.job_id,
            component: a.key.component,
            version: a.key.version,
            role: a.key.role,
            party_id: a.key.party_id,
            output_key: a.output_key,
        }),
    }
}

fn spec_from_pb(spec: Option<pb::UploadSpec>) -> Result<UploadSpec, app::Error> {
    let spec = spec.ok_or_else(|| app::Error::InvalidArgument("spec: missing".into()))?;
    let meta = if spec.meta_json.is_empty() {
        serde_json::Map::new()
    } else {
        match serde_json::from_str(&spec.meta_json) {
            Ok(serde_json::Value::Object(meta)) => meta,
            Ok(_) => return Err(app::Error::InvalidArgument("meta: not an object".into())),
            Err(e) => return Err(app::Error::InvalidArgument(format!("meta: {e}"))),
        }
    };
    Ok(UploadSpec {
        namespace: spec.namespace,
        name: spec.name,
        head: spec.head,
        partitions: spec.partitions,
        extend_sid: spec.extend_sid,
        drop: spec.drop,
        meta,
        file: spec.file,
        file_size: (spec.file_size > 0).then_some(spec.file_size),
    })
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

#[tonic::async_trait]
impl pb::data_server::Data for Data {
    async fn upload_chunk(
        &self,
        request: Request<pb::UploadChunkRequest>,
    ) -> Result<Response<pb::UploadChunkResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let size = self
            .app
            .upload_chunk(&r.upload_id, r.offset, &r.data)
            .await?;
        Ok(Response::new(pb::UploadChunkResponse { size }))
    }

    async fn commit_upload(
        &self,
        request: Request<pb::CommitUploadRequest>,
    ) -> Result<Response<pb::CommitUploadResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let spec = match spec_from_pb(r.spec) {
            Ok(spec) => spec,
            Err(e) => {
                self.app.abort_upload(&r.upload_id).await?;
                return Err(e.into());
            }
        };
        let table = self.app.commit_upload(&r.upload_id, spec, r.size).await?;
        Ok(Response::new(pb::CommitUploadResponse {
            table: Some(table_to_pb(table)),
        }))
    }

    async fn abort_upload(
        &self,
        request: Request<pb::AbortUploadRequest>,
    ) -> Result<Response<pb::AbortUploadResponse>, Status> {
        self.local_only(&request)?;
        self.app
            .abort_upload(&request.into_inner().upload_id)
            .await?;
        Ok(Response::new(pb::AbortUploadResponse {}))
    }

    async fn list_tables(
        &self,
        request: Request<pb::ListTablesRequest>,
    ) -> Result<Response<pb::ListTablesResponse>, Status> {
        self.local_only(&request)?;
        let namespace = non_empty(request.into_inner().namespace);
        let tables = self.app.tables(namespace.as_deref()).await?;
        Ok(Response::new(pb::ListTablesResponse {
            tables: tables.into_iter().map(table_to_pb).collect(),
        }))
    }

    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::GetTableResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let table = self.app.table(&r.namespace, &r.name).await?;
        Ok(Response::new(pb::GetTableResponse {
            table: Some(table_to_pb(table)),
        }))
    }

    async fn delete_table(
        &self,
        request: Request<pb::DeleteTableRequest>,
    ) -> Result<Response<pb::DeleteTableResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        self.app.delete_table(&r.namespace, &r.name).await?;
        Ok(Response::new(pb::DeleteTableResponse {}))
    }

    async fn list_artifacts(
        &self,
        request: Request<pb::ListArtifactsRequest>,
    ) -> Result<Response<pb::ListArtifactsResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let component = non_empty(r.component);
        let artifacts = self.app.artifacts(&r.job_id, component.as_deref()).await?;
        Ok(Response::new(pb::ListArtifactsResponse {
            artifacts: artifacts.into_iter().map(artifact_to_pb).collect(),
        }))
    }

    async fn read_artifact(
        &self,
        request: Request<pb::ReadArtifactRequest>,
    ) -> Result<Response<pb::ReadArtifactResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let read = ReadArtifact {
            job_id: r.job_id,
            component: r.component,
            output_key: non_empty(r.output_key),
            kind: non_empty(r.kind),
            limit: r.limit,
        };
        let (artifact, content, truncated) = self.app.read_artifact(read).await?;
        Ok(Response::new(pb::ReadArtifactResponse {
            artifact: Some(artifact_to_pb(artifact)),
            content: content.into(),
            truncated,
        }))
    }

    async fn read_task_log(
        &self,
        request: Request<pb::ReadTaskLogRequest>,
    ) -> Result<Response<pb::ReadTaskLogResponse>, Status> {
        self.local_only(&request)?;
        let r = request.into_inner();
        let slice = self
            .app
            .read_log(ReadLog {
                job_id: r.job_id,
                component: r.component,
                role: r.role,
                party_id: r.party_id,
                tail: r.tail,
                offset: r.offset,
            })
            .await?;
        Ok(Response::new(pb::ReadTaskLogResponse {
            content: slice.content.into(),
            offset: slice.offset,
            version: slice.version,
            ended: slice.ended,
        }))
    }
}
