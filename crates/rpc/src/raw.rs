//! A codec that passes encoded protobuf bytes through untouched. The gateway uses it to
//! deliver an envelope's payload to `/<service>/<method>` without knowing the message types.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

/// Calls `/<service>/<method>` on `channel` with an already encoded request, on behalf of
/// party `caller` (sent as [`crate::party::CALLER_HEADER`]; `None`: a call of this party's
/// own), naming `request_id` (sent as [`crate::party::REQUEST_ID_HEADER`]) and the call's job
/// (`job_id`, sent as [`crate::party::JOB_ID_HEADER`]). The current span's trace context, when
/// it has one, goes as W3C `traceparent`/`tracestate` metadata.
pub async fn unary(
    channel: tonic::transport::Channel,
    (service, method): (&str, &str),
    payload: Bytes,
    timeout: std::time::Duration,
    caller: Option<&str>,
    request_id: Option<&str>,
    job_id: Option<&str>,
) -> Result<Bytes, Status> {
    let path = http::uri::PathAndQuery::try_from(format!("/{service}/{method}"))
        .map_err(|e| Status::invalid_argument(format!("bad method path: {e}")))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("service not ready: {e}")))?;
    let mut request = tonic::Request::new(payload);
    request.set_timeout(timeout);
    if let Some(caller) = caller {
        request.metadata_mut().insert(
            crate::party::CALLER_HEADER,
            caller
                .parse()
                .map_err(|_| Status::invalid_argument(format!("bad caller party {caller:?}")))?,
        );
    }
    // An id that is no header value (it never is: ids are ASCII) only loses its scope.
    if let Some(value) = request_id.and_then(|id| id.parse().ok()) {
        request
            .metadata_mut()
            .insert(crate::party::REQUEST_ID_HEADER, value);
    }
    if let Some(value) = job_id
        .filter(|id| !id.is_empty())
        .and_then(|id| id.parse().ok())
    {
        request
            .metadata_mut()
            .insert(crate::party::JOB_ID_HEADER, value);
    }
    crate::server::inject_trace(request.metadata_mut());
    let response = grpc.unary(request, path, RawCodec).await?;
    Ok(response.into_inner())
}
