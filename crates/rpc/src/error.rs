//! One small error classification for every service, and the one function that turns it into
//! a `tonic::Status`. Services map each of their error variants to a [`Code`] exhaustively.

use tonic::Status;

/// What kind of failure an error is, as a client needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Aborted,
    Unavailable,
    DeadlineExceeded,
    PermissionDenied,
    Unauthenticated,
    ResourceExhausted,
    Internal,
}

/// An error a service can answer with.
pub trait ServiceError: std::error::Error {
    fn code(&self) -> Code;
}

/// The reply for `err`. Internal errors are logged here, with their chain, and masked.
pub fn to_status<E: ServiceError>(err: &E) -> Status {
    let message = err.to_string();
    match err.code() {
        Code::InvalidArgument => Status::invalid_argument(message),
        Code::NotFound => Status::not_found(message),
        Code::AlreadyExists => Status::already_exists(message),
        Code::FailedPrecondition => Status::failed_precondition(message),
        Code::Aborted => Status::aborted(message),
        Code::Unavailable => Status::unavailable(message),
        Code::DeadlineExceeded => Status::deadline_exceeded(message),
        Code::PermissionDenied => Status::permission_denied(message),
        Code::Unauthenticated => Status::unauthenticated(message),
        Code::ResourceExhausted => Status::resource_exhausted(message),
        Code::Internal => {
            let mut chain = message;
            let mut source = err.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "internal error");
            Status::internal("internal error (see the service's log)")
        }
    }
}

impl ServiceError for fedflow_core::access::Denied {
    fn code(&self) -> Code {
        match self {
            fedflow_core::access::Denied::Unauthenticated(_) => Code::Unauthenticated,
            fedflow_core::access::Denied::PermissionDenied(_) => Code::PermissionDenied,
        }
    }
}

/// A failed call to another service, kept with its gRPC code so callers can tell a refusal
/// (`INVALID_ARGUMENT`, `FAILED_PRECONDITION`) from a transport problem (`UNAVAILABLE`).
#[derive(Debug, Clone)]
pub struct RemoteError {
    pub code: tonic::Code,
    pub message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", code_name(self.code), self.message)
    }
}

impl std::error::Error for RemoteError {}

impl From<Status> for RemoteError {
    fn from(status: Status) -> Self {
        RemoteError {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl RemoteError {
    /// The peer answered that what was asked for does not exist there.
    pub fn is_not_found(&self) -> bool {
        self.code == tonic::Code::NotFound
    }

    /// Worth trying again: the peer could not be reached or answered in time.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code,
            tonic::Code::Unavailable
                | tonic::Code::DeadlineExceeded
                | tonic::Code::Unknown
                | tonic::Code::Cancelled
        )
    }
}

/// How an outbox sender takes the result of delivering one command: `Ok` once the receiver
/// answered (a refusal is final, and logged naming `what`), `Err` with the reason while it
/// could not be reached, so the command is tried again.
pub fn delivery<T, E: Into<RemoteError>>(result: Result<T, E>, what: &str) -> Result<(), String> {
    match result.map_err(Into::into) {
        Ok(_) => Ok(()),
        Err(e) if e.is_transient() => Err(e.to_string()),
        Err(e) => {
            tracing::warn!(command = %what, error = %e, "command refused");
            Ok(())
        }
    }
}

/// `INVALID_ARGUMENT` style names, as the CLI prints them.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code as C;
    match code {
        C::Ok => "OK",
        C::Cancelled => "CANCELLED",
        C::Unknown => "UNKNOWN",
        C::InvalidArgument => "INVALID_ARGUMENT",
        C::DeadlineExceeded => "DEADLINE_EXCEEDED",
        C::NotFound => "NOT_FOUND",
        C::AlreadyExists => "ALREADY_EXISTS",
        C::PermissionDenied => "PERMISSION_DENIED",
        C::ResourceExhausted => "RESOURCE_EXHAUSTED",
        C::FailedPrecondition => "FAILED_PRECONDITION",
        C::Aborted => "ABORTED",
        C::OutOfRange => "OUT_OF_RANGE",
        C::Unimplemented => "UNIMPLEMENTED",
        C::Internal => "INTERNAL",
        C::Unavailable => "UNAVAILABLE",
        C::DataLoss => "DATA_LOSS",
        C::Unauthenticated => "UNAUTHENTICATED",
    }
}
