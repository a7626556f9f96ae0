//! The client port's gate (`api.listen`): the bearer token when one is set, compared in
//! constant time; a party's identity can never be claimed there (the caller header is
//! dropped, so every call on that port is a client's).

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

#[derive(Clone)]
pub struct ClientGate {
    token: Option<Arc<String>>,
}

impl ClientGate {
    pub fn new(token: Option<String>) -> ClientGate {
        ClientGate {
            token: token.map(Arc::new),
        }
    }
}

impl tonic::service::Interceptor for ClientGate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .remove(fedflow_rpc::party::CALLER_HEADER);
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let sent = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match sent {
            // A length mismatch answers at once (`ct_eq` of unequal lengths is false); only
            // the token's length can leak, never its content.
            Some(sent) if bool::from(sent.as_bytes().ct_eq(token.as_bytes())) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the bearer token is not valid")),
            None => Err(Status::unauthenticated(
                "this port needs a bearer token: send `authorization: Bearer <token>` (fedflow --token)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    fn call(gate: &mut ClientGate, authorization: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().expect("a header value"));
        }
        request.metadata_mut().insert(
            fedflow_rpc::party::CALLER_HEADER,
            "10000".parse().expect("a header value"),
        );
        gate.call(request)
            .map(|passed| {
                assert!(
                    passed
                        .metadata()
                        .get(fedflow_rpc::party::CALLER_HEADER)
                        .is_none(),
                    "the caller header is dropped"
                );
            })
            .map_err(|s| s.code())
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mut gate = ClientGate::new(Some("s3cret".into()));
        let unauthenticated = Err(tonic::Code::Unauthenticated);
        for (sent, want) in [
            (Some("Bearer s3cret"), Ok(())),
            (Some("Bearer s3cre"), unauthenticated),
            (Some("Bearer s3cret!"), unauthenticated),
            (Some("Bearer S3CRET"), unauthenticated),
            (Some("s3cret"), unauthenticated),
            (None, unauthenticated),
        ] {
            assert_eq!(call(&mut gate, sent), want, "{sent:?}");
        }
    }

    #[test]
    fn without_a_token_every_call_passes_as_a_client() {
        let mut gate = ClientGate::new(None);
        assert_eq!(call(&mut gate, None), Ok(()));
    }
}
