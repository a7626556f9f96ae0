//! The runtime conf's `role` and `initiator`: which parties take part in which role, checked
//! for valid roles and party ids, duplicates and the participant limit.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ids::{self, Participant};

use super::{Limits, SpecError, err, member_object, object};

pub(super) fn parse_roles(
    conf: &Value,
    limits: &Limits,
) -> Result<(BTreeMap<String, Vec<String>>, Participant), SpecError> {
    let root = object(conf, "runtime_conf", "expected a JSON object")?;
    if let Some(version) = root.get("dsl_version") {
        let two = version.as_u64() == Some(2) || version.as_str() == Some("2");
        if !two {
            return Err(err(
                "runtime_conf.dsl_version",
                format!("must be 2, got {version} (DSL v1 is not supported)"),
            ));
        }
    }
    let role = member_object(
        root,
        "runtime_conf",
        "role",
        "expected an object of role -> party ids",
    )?;
    if role.is_empty() {
        return Err(err("runtime_conf.role", "no roles"));
    }
    // Counted before the lists are walked (each list is checked for repeats).
    let total: usize = role
        .values()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum();
    if total > limits.max_parties {
        return Err(err(
            "runtime_conf.role",
            format!("{total} participants, at most {}", limits.max_parties),
        ));
    }
    let mut roles = BTreeMap::new();
    for (name, parties) in role {
        let field = format!("runtime_conf.role.{name}");
        ids::role(name).map_err(|e| err(&field, e.to_string()))?;
        let parties = parties
            .as_array()
            .ok_or_else(|| err(&field, "expected a list of party ids"))?;
        if parties.is_empty() {
            return Err(err(&field, "no parties"));
        }
        let mut ids_seen = Vec::with_capacity(parties.len());
        for (i, p) in parties.iter().enumerate() {
            let id = party_id_value(p).map_err(|m| err(format!("{field}[{i}]"), m))?;
            if ids_seen.contains(&id) {
                return Err(err(
                    format!("{field}[{i}]"),
                    format!("party {id} is listed twice"),
                ));
            }
            ids_seen.push(id);
        }
        roles.insert(name.clone(), ids_seen);
    }
    let initiator = root
        .get("initiator")
        .ok_or_else(|| err("runtime_conf.initiator", "missing"))?;
    let irole = initiator
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| err("runtime_conf.initiator.role", "missing or not a string"))?;
    let iparty = initiator
        .get("party_id")
        .ok_or_else(|| err("runtime_conf.initiator.party_id", "missing"))
        .and_then(|p| party_id_value(p).map_err(|m| err("runtime_conf.initiator.party_id", m)))?;
    let among = roles.get(irole).is_some_and(|ps| ps.contains(&iparty));
    if !among {
        return Err(err(
            "runtime_conf.initiator",
            format!("{irole} {iparty} is not among the job's parties (runtime_conf.role)"),
        ));
    }
    Ok((
        roles,
        Participant {
            role: irole.to_owned(),
            party_id: iparty,
        },
    ))
}

/// FATE writes party ids as numbers; fedflow also takes strings of `[A-Za-z0-9_-]{1,32}`.
pub(super) fn party_id_value(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("expected a party id, got {other}")),
    };
    ids::party_id(&text).map_err(|e| e.to_string())?;
    Ok(text)
}
