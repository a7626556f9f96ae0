//! The request id of the call being served, as a task-local scope: every status transition a
//! call makes is recorded (by `fedflow_store`'s audit trail) with the id of the request that
//! caused it. [`with_request`] also runs the work in a task of its own, so a caller that goes
//! away does not stop it half-way. [`crate::server::RequestIdLayer`] opens the same scope for
//! every call that names its id in the `x-fedflow-request-id` header.

use std::future::Future;

tokio::task_local! {
    static REQUEST: String;
}

/// Runs `work` with `request_id` as the request behind every transition it records, in a
/// task of its own: a caller that goes away (its connection cut, say) does not stop the work
/// half-way, so a call's effects are either not started or all made.
pub async fn with_request<F>(request_id: &str, work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match tokio::spawn(REQUEST.scope(request_id.to_owned(), work)).await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("request task ended early: {e}"),
    }
}

/// The request id of the call being served, or empty.
pub fn current_request() -> String {
    REQUEST.try_with(Clone::clone).unwrap_or_default()
}
