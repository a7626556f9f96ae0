//! The gateway's errors: [`Error`], why it could not start or stopped serving, and
//! [`Refusal`], why it refused an envelope or could not deliver it, classified with
//! `fedflow_rpc::error` and turned into a `tonic::Status` once, in the gRPC adapter. A callee's
//! own answer is not a refusal: it goes back to the caller as it came.

use fedflow_core::access::Denied;
use fedflow_rpc::error::{Code, ServiceError};

/// Why the gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Why an envelope was refused, or could not be delivered; the message says which and names
/// the parties and ids involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A malformed envelope or call (a bad id, an undecodable payload, missing times).
    #[error("{0}")]
    InvalidArgument(String),
    /// The envelope or call claims a party it does not come from.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not make this call (a closed method, a job it takes no part in).
    #[error("{0}")]
    PermissionDenied(String),
    /// The call cannot be routed as it is (no route, a routing loop, clock skew).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The envelope expired, or its deadline passed before delivery.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The request id was used before for a different call.
    #[error("{0}")]
    AlreadyExists(String),
    /// The next hop could not be reached (or the same call is still executing): try again.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's part in the job does not allow the call.
    #[error(transparent)]
    Denied(#[from] Denied),
}

impl ServiceError for Refusal {
    fn code(&self) -> Code {
        match self {
            Refusal::InvalidArgument(_) => Code::InvalidArgument,
            Refusal::Unauthenticated(_) => Code::Unauthenticated,
            Refusal::PermissionDenied(_) => Code::PermissionDenied,
            Refusal::FailedPrecondition(_) => Code::FailedPrecondition,
            Refusal::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Refusal::AlreadyExists(_) => Code::AlreadyExists,
            Refusal::Unavailable(_) => Code::Unavailable,
            Refusal::Denied(denied) => denied.code(),
        }
    }
}
