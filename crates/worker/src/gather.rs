//! `Gather {value}`: every party of the task sends its `value` to the guest over the data plane
//! (its gateway, FATE's OSX protocol, the federation link to the guest's gateway); the guest
//! outputs `{"value": the sum of every party's value, "parties": how many}`, every other party
//! `{"value": its own value}`. The smallest component that shows values cross parties.

use std::time::Duration;

use fedflow_osx::{Federation, Party};
use serde_json::{Map, Value, json};

use crate::{Outcome, TaskFile};

/// The message name (the last part of the topic).
const NAME: &str = "gather";

/// Runs `Gather` for the attempt of `config`: on its data plane, as its party.
pub async fn run(config: &TaskFile) -> Outcome {
    let Some(plane) = &config.data_plane else {
        return Outcome::Failed(
            "Gather needs the data plane: this party's task-controller has no data_plane address"
                .into(),
        );
    };
    let me = Party::new(&config.role, &config.party_id);
    let fed = match Federation::new(&plane.address, &plane.session, me) {
        Ok(fed) => fed,
        Err(e) => return Outcome::Failed(format!("Gather: {e}")),
    };
    let parties: Vec<Party> = plane
        .parties
        .iter()
        .map(|p| Party::new(&p.role, &p.party_id))
        .collect();
    let timeout = config
        .parameters
        .get("timeout_s")
        .and_then(Value::as_f64)
        .map_or(Duration::from_secs(600), Duration::from_secs_f64);
    gather(&fed, &parties, &config.parameters, timeout).await
}

/// Runs `Gather` as `fed`'s party among `parties` (every party of the task, itself included).
/// A value that does not arrive within `timeout` fails the guest's task, naming the party.
pub async fn gather(
    fed: &Federation,
    parties: &[Party],
    params: &Map<String, Value>,
    timeout: Duration,
) -> Outcome {
    let Some(own) = params.get("value").map_or(Some(0), Value::as_i64) else {
        return Outcome::Failed("Gather: value must be an integer".into());
    };
    let Some(guest) = parties.iter().find(|p| p.role == "guest") else {
        return Outcome::Failed("Gather: the task has no guest".into());
    };
    let me = fed.me();
    if me != guest {
        let body = json!({ "value": own }).to_string();
        return match fed.push(guest, NAME, "value", body.as_bytes()).await {
            Ok(()) => Outcome::Success(Some(json!({ "value": own }))),
            Err(e) => Outcome::Failed(format!("Gather: sending to the guest: {e}")),
        };
    }
    let mut total = own;
    for from in parties.iter().filter(|p| *p != me) {
        let received = match fed.pop(from, NAME, timeout).await {
            Ok(received) => received,
            Err(e) => {
                return Outcome::Failed(format!(
                    "Gather: the value of {} {}: {e}",
                    from.role, from.party_id
                ));
            }
        };
        let Some(value) = serde_json::from_slice::<Value>(&received.body)
            .ok()
            .and_then(|v| v.get("value").and_then(Value::as_i64))
        else {
            return Outcome::Failed(format!(
                "Gather: {} {} sent no integer value",
                from.role, from.party_id
            ));
        };
        let Some(sum) = total.checked_add(value) else {
            return Outcome::Failed("Gather: the sum overflows a 64-bit integer".into());
        };
        total = sum;
    }
    Outcome::Success(Some(json!({ "value": total, "parties": parties.len() })))
}
