//! `fedflow.scheduler.v1.Data` adapters: the client API of this party's data and outputs.
//! Each call is for this party's own clients only and is answered by this party's
//! task-controller (`app::App::own_data`); its answer, refusals included, comes back with the
//! task-controller's code and message. An upload arrives as a stream (the spec, then the
//! file's bytes) and leaves as bounded chunks, each acknowledged before the next, then one
//! commit; a stream that breaks off aborts the upload, so nothing half-sent is kept.

use bytes::Bytes;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::error::RemoteError;
use prost::Message;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::local_only;
use crate::app::App;

pub const DATA_SERVICE_NAME: &str = "fedflow.scheduler.v1.Data";

/// The largest chunk passed on to the task-controller in one call.
const CHUNK: usize = 1 << 20;

pub struct Data {
    pub(super) app: App,
}

fn status(e: RemoteError) -> Status {
    Status::new(e.code, e.message)
}

impl Data {
    /// One `Data` call to this party's registry.
    async fn ask<Req: Message, Resp: Message + Default>(
        &self,
        method: &str,
        job_id: &str,
        request: &Req,
    ) -> Result<Resp, Status> {
        let reply = self
            .app
            .own_data(method, job_id, Bytes::from(request.encode_to_vec()))
            .await
            .map_err(status)?;
        Resp::decode(reply)
            .map_err(|e| Status::internal(format!("undecodable {method} reply: {e}")))
    }

    async fn relay_upload(
        &self,
        upload_id: &str,
        spec: tc::UploadSpec,
        mut stream: Streaming<pb::UploadTableRequest>,
    ) -> Result<tc::CommitUploadResponse, Status> {
        let mut offset = 0u64;
        while let Some(message) = stream.next().await {
            let part = message?.part;
            let chunk = match part {
                Some(pb::upload_table_request::Part::Chunk(chunk)) => chunk,
                Some(pb::upload_table_request::Part::Spec(_)) => {
                    return Err(Status::invalid_argument(
                        "spec: sent twice (only the first message carries it)",
                    ));
                }
                None => continue,
            };
            for piece in chunk.chunks(CHUNK) {
                let request = tc::UploadChunkRequest {
                    upload_id: upload_id.to_owned(),
                    offset,
                    data: Bytes::copy_from_slice(piece),
                };
                let _: tc::UploadChunkResponse = self.ask("UploadChunk", "", &request).await?;
                offset += piece.len() as u64;
            }
        }
        let commit = tc::CommitUploadRequest {
            upload_id: upload_id.to_owned(),
            spec: Some(spec),
            size: offset,
        };
        self.ask("CommitUpload", "", &commit).await
    }
}

#[tonic::async_trait]
impl pb::data_server::Data for Data {
    async fn upload_table(
        &self,
        request: Request<Streaming<pb::UploadTableRequest>>,
    ) -> Result<Response<tc::CommitUploadResponse>, Status> {
        local_only(&self.app, &request, "UploadTable")?;
        let mut stream = request.into_inner();
        let spec = match stream.next().await {
            Some(Ok(pb::UploadTableRequest {
                part: Some(pb::upload_table_request::Part::Spec(spec)),
            })) => spec,
            Some(Err(status)) => return Err(status),
            _ => {
                return Err(Status::invalid_argument(
                    "spec: the first message of an upload must carry it",
                ));
            }
        };
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let result = self.relay_upload(&upload_id, spec, stream).await;
        if result.is_err() {
            // The commit removes its file on a refusal; a broken stream leaves it to this.
            let abort = tc::AbortUploadRequest {
                upload_id: upload_id.clone(),
            };
            let _: Result<tc::AbortUploadResponse, _> = self.ask("AbortUpload", "", &abort).await;
        }
        Ok(Response::new(result?))
    }

    async fn list_tables(
        &self,
        request: Request<tc::ListTablesRequest>,
    ) -> Result<Response<tc::ListTablesResponse>, Status> {
        local_only(&self.app, &request, "ListTables")?;
        Ok(Response::new(
            self.ask("ListTables", "", request.get_ref()).await?,
        ))
    }

    async fn get_table(
        &self,
        request: Request<tc::GetTableRequest>,
    ) -> Result<Response<tc::GetTableResponse>, Status> {
        local_only(&self.app, &request, "GetTable")?;
        Ok(Response::new(
            self.ask("GetTable", "", request.get_ref()).await?,
        ))
    }

    async fn delete_table(
        &self,
        request: Request<tc::DeleteTableRequest>,
    ) -> Result<Response<tc::DeleteTableResponse>, Status> {
        local_only(&self.app, &request, "DeleteTable")?;
        Ok(Response::new(
            self.ask("DeleteTable", "", request.get_ref()).await?,
        ))
    }

    async fn list_outputs(
        &self,
        request: Request<pb::ListOutputsRequest>,
    ) -> Result<Response<tc::ListArtifactsResponse>, Status> {
        local_only(&self.app, &request, "ListOutputs")?;
        let r = request.into_inner();
        self.app.own_outputs_only(&r.party_id)?;
        let inner = r.request.unwrap_or_default();
        Ok(Response::new(
            self.ask("ListArtifacts", &inner.job_id, &inner).await?,
        ))
    }

    async fn read_output(
        &self,
        request: Request<pb::ReadOutputRequest>,
    ) -> Result<Response<tc::ReadArtifactResponse>, Status> {
        local_only(&self.app, &request, "ReadOutput")?;
        let r = request.into_inner();
        self.app.own_outputs_only(&r.party_id)?;
        let inner = r.request.unwrap_or_default();
        Ok(Response::new(
            self.ask("ReadArtifact", &inner.job_id, &inner).await?,
        ))
    }

    async fn read_task_log(
        &self,
        request: Request<tc::ReadTaskLogRequest>,
    ) -> Result<Response<tc::ReadTaskLogResponse>, Status> {
        local_only(&self.app, &request, "ReadTaskLog")?;
        let r = request.into_inner();
        self.app.own_outputs_only(&r.party_id)?;
        Ok(Response::new(self.ask("ReadTaskLog", &r.job_id, &r).await?))
    }
}
