//! FATE sessions (`{job_id}_{component}_{version}`) as the party-gateway's data plane sees
//! them: a session is open while an attempt of that component version runs on this party.
//! The gateway asks ([`App::session`]); when an attempt ends here (success, failure, kill,
//! timeout, fencing: every move of [`App::apply`] into an end status) the gateway is told to
//! drop the session's queues, best effort (its periodic sweep asks again for what it holds).

use fedflow_core::TaskStatus;
use fedflow_core::access::Caller;
use fedflow_core::session::Session;

use super::{App, Error};
use crate::store::TaskKey;

/// What this party knows of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// An attempt of the session's component version runs here.
    pub running: bool,
    pub job_id: String,
    /// The job's scheduler party; empty when no task of the job is here.
    pub scheduler_party_id: String,
    /// The roles this party plays in the running attempt(s).
    pub roles: Vec<String>,
    /// Not running, but a row of the component version waits to be started here.
    pub pending: bool,
}

impl App {
    /// Whether `session_id` is a running attempt on this party. Local callers only (the
    /// gateway of this party).
    pub async fn session(&self, caller: &Caller, session_id: &str) -> Result<SessionState, Error> {
        caller.local_only("Sessions.GetSession")?;
        let session = Session::parse(session_id).map_err(Error::InvalidArgument)?;
        let rows = self.inner.store.job_tasks(&session.job_id).await?;
        let scheduler_party_id = rows
            .first()
            .map(|t| t.scheduler_party_id.clone())
            .unwrap_or_default();
        let of_session = || {
            rows.iter().filter(|t| {
                t.key.component == session.component && t.key.version == session.version
            })
        };
        let roles: Vec<String> = of_session()
            .filter(|t| t.party_status == TaskStatus::Running)
            .map(|t| t.key.role.clone())
            .collect();
        let pending =
            roles.is_empty() && of_session().any(|t| t.party_status == TaskStatus::Waiting);
        Ok(SessionState {
            pending,
            running: !roles.is_empty(),
            job_id: session.job_id,
            scheduler_party_id,
            roles,
        })
    }

    /// An attempt of `key` moved to an end status: unless another role of the same session
    /// still runs here, the gateway drops the session's queues (in the background).
    pub(super) fn attempt_ended(&self, key: &TaskKey) {
        let session_id = fedflow_core::session::id(&key.job_id, &key.component, key.version);
        let app = self.clone();
        tokio::spawn(async move {
            match app.session(&Caller::Local, &session_id).await {
                Ok(state) if state.running => {}
                Ok(_) => app.inner.session_ends.ended(session_id).await,
                Err(e) => {
                    tracing::warn!(session = %session_id, error = %e, "cannot tell whether the session still runs")
                }
            }
        });
    }
}
