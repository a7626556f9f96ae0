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
        let code = if is_transport_failure(&status) {
            tonic::Code::Unavailable
        } else {
            status.code()
        };
        RemoteError {
            code,
            message: status.message().to_owned(),
        }
    }
}

/// Whether `status` was made by the HTTP/2 connection it was sent on rather than answered by
/// the service called: tonic turns a connection's protocol errors into a status whose message
/// starts `h2 protocol error` (a peer closing the connection with `ENHANCE_YOUR_CALM`, after
/// many streams reset by calls that timed out during a partition, becomes
/// `RESOURCE_EXHAUSTED`). Nothing about the call was refused, so it is as transient as a
/// connection that could not be opened: [`RemoteError`] takes it as `UNAVAILABLE`. A gateway
/// that relays such a status keeps its message, so the caller behind it sees the same.
pub fn is_transport_failure(status: &Status) -> bool {
    status.code() != tonic::Code::Ok && status.message().starts_with("h2 protocol error")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_made_by_the_connection_is_transient_and_a_refusal_is_not() {
        // As tonic reports a GOAWAY with ENHANCE_YOUR_CALM.
        let reset = Status::resource_exhausted(
            "h2 protocol error: error received from peer: ENHANCE_YOUR_CALM",
        );
        assert!(is_transport_failure(&reset));
        let e = RemoteError::from(reset);
        assert_eq!(e.code, tonic::Code::Unavailable);
        assert!(e.is_transient(), "{e}");
        assert!(e.message.contains("ENHANCE_YOUR_CALM"), "{e}");

        let full = Status::resource_exhausted("the queue is full; submit again after 1000 ms");
        assert!(!is_transport_failure(&full));
        let e = RemoteError::from(full);
        assert_eq!(e.code, tonic::Code::ResourceExhausted);
        assert!(!e.is_transient(), "{e}");
        assert!(!is_transport_failure(&Status::ok("h2 protocol error")));
    }
}
