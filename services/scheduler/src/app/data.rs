//! The client API for this party's data and outputs: every call is answered by this party's
//! own task-controller (its data and artifacts registry), reached through this party's
//! gateway. Nothing here asks another party: a request about another party's outputs is
//! refused, since data and models stay on the party that holds them.

use bytes::Bytes;
use fedflow_core::access::Denied;
use fedflow_rpc::error::RemoteError;

use super::{App, Error};

impl App {
    /// Passes an encoded `fedflow.taskcontroller.v1.Data` request to this party's registry.
    pub async fn own_data(
        &self,
        method: &str,
        job_id: &str,
        payload: Bytes,
    ) -> Result<Bytes, RemoteError> {
        self.inner.remote.own_data(method, job_id, payload).await
    }

    /// Refuses a request about `party`'s outputs unless `party` is this one (or unnamed).
    pub fn own_outputs_only(&self, party: &str) -> Result<(), Error> {
        if party.is_empty() || party == self.party_id() {
            return Ok(());
        }
        Err(Error::Denied(Denied::PermissionDenied(format!(
            "party {party}'s outputs stay on party {party}: party {} serves only its own \
             (others see an output's overview with `fedflow task output`)",
            self.party_id()
        ))))
    }
}
