//! `fedflow test toy --guest G --host H[,H…]`: FATE's `flow test toy`, a connectivity job.
//! Two `Gather` components in a row: in each, every party sends a value to the guest over
//! the data plane (its gateway, the federation link, the guest's gateway) and the guest adds
//! them up. The guest's sums must be what the parties sent, so a success shows that data
//! crossed every party's gateway both times.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::commands::{self, CliError, Ctx};

/// The toy job: `toy_0` and then `toy_1`, each a `Gather`; the guest sends 1, the hosts 2, 3,
/// … in `toy_0` and ten times that in `toy_1`.
pub fn job(guest: &str, hosts: &[String]) -> (Value, Value) {
    let dsl = json!({"components": {
        "toy_0": {"module": "Gather", "output": {"data": ["sum"]}},
        "toy_1": {"module": "Gather", "input": {"data": {"data": ["toy_0.sum"]}}},
    }});
    let mut host_params = serde_json::Map::new();
    for (i, _) in hosts.iter().enumerate() {
        let value = i as i64 + 2;
        host_params.insert(
            i.to_string(),
            json!({"toy_0": {"value": value}, "toy_1": {"value": value * 10}}),
        );
    }
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": guest},
        "role": {"guest": [guest], "host": hosts},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {
            "common": {"toy_0": {"timeout_s": 60}, "toy_1": {"timeout_s": 60}},
            "role": {
                "guest": {"0": {"toy_0": {"value": 1}, "toy_1": {"value": 10}}},
                "host": host_params,
            }
        }
    });
    (dsl, conf)
}

/// What the guest must have received in `toy_0` (and ten times that in `toy_1`).
pub fn expected(hosts: usize) -> i64 {
    (1..=hosts as i64 + 1).sum()
}

pub async fn run(ctx: &Ctx, guest: &str, hosts: &[String], timeout: f64) -> commands::Result {
    if hosts.is_empty() {
        return Err(CliError(
            "INVALID_ARGUMENT: --host: name at least one host party".into(),
        ));
    }
    let (dsl, conf) = job(guest, hosts);
    let job_id = commands::submit_text(ctx, dsl.to_string(), conf.to_string()).await?;
    if !ctx.json {
        println!("toy job {job_id}: guest {guest}, hosts {}", hosts.join(","));
    }
    let within = Duration::from_secs_f64(timeout.max(1.0));
    let Some(job) = commands::ended(ctx, &job_id, within).await? else {
        eprintln!("DEADLINE_EXCEEDED: toy job {job_id} still running after {timeout}s");
        return Ok(ExitCode::from(2));
    };
    let status = fedflow_rpc::convert::job_status_name(job.status);
    if status != "success" {
        eprintln!("toy job {job_id} {status}: {}", job.reason);
        return Ok(ExitCode::FAILURE);
    }
    let want = expected(hosts.len());
    let mut got = Vec::new();
    for (component, factor) in [("toy_0", 1), ("toy_1", 10)] {
        let output = commands::output_json(ctx, &job_id, component, "guest", guest).await?;
        let sum = serde_json::from_str::<Value>(&output)
            .ok()
            .and_then(|v| v.get("value").and_then(Value::as_i64));
        if sum != Some(want * factor) {
            eprintln!(
                "toy job {job_id}: the guest's {component} is {output:?}, expected the sum {}",
                want * factor
            );
            return Ok(ExitCode::FAILURE);
        }
        got.push(want * factor);
    }
    if ctx.json {
        println!(
            "{}",
            json!({"job_id": job_id, "status": "success", "guest": guest, "hosts": hosts,
                "sums": got})
        );
    } else {
        println!(
            "toy test success: guest {guest} received the sums {} and {} from {} parties through their gateways",
            got[0],
            got[1],
            hosts.len() + 1
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toy_job_is_a_valid_job_whose_sums_are_known() {
        let hosts = vec!["10000".to_owned(), "10001".to_owned()];
        let (dsl, conf) = job("9999", &hosts);
        let spec = fedflow_core::dsl::parse(
            &dsl.to_string(),
            &conf.to_string(),
            &fedflow_core::dsl::Limits::default(),
        )
        .expect("the toy job parses");
        assert_eq!(spec.participants().len(), 3);
        assert_eq!(expected(2), 1 + 2 + 3);
    }
}
