//! Identifiers and their validation. Every id that reaches a file path, a database key or
//! another party is checked here first, at the edge: strict patterns and lengths, so nothing
//! a remote party sends can name a path.

use std::fmt;

mod typed;

pub use typed::{ComponentName, FieldError, JobId, PartyId, Role, TaskKey, TaskVersion, field};

/// The roles FATE-Flow knows. A job's runtime conf may use only these.
pub const ROLES: &[&str] = &["guest", "host", "arbiter", "local"];

pub const MAX_PARTY_ID_LEN: usize = 32;
pub const MAX_JOB_ID_LEN: usize = 32;
pub const MAX_COMPONENT_LEN: usize = 64;

/// A malformed identifier; the message names which one and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: {why}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn check(
    what: &'static str,
    value: &str,
    max: usize,
    extra: &[char],
    why: &'static str,
) -> Result<(), InvalidId> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        Err(InvalidId {
            what,
            value: value.chars().take(80).collect(),
            why,
        })
    }
}

/// `[A-Za-z0-9_-]{1,32}`.
pub fn party_id(value: &str) -> Result<(), InvalidId> {
    check(
        "party id",
        value,
        MAX_PARTY_ID_LEN,
        &['_', '-'],
        "expected 1 to 32 of A-Z a-z 0-9 _ -",
    )
}

/// `[A-Za-z0-9_-]{1,32}`; fedflow makes 24 digits.
pub fn job_id(value: &str) -> Result<(), InvalidId> {
    check(
        "job id",
        value,
        MAX_JOB_ID_LEN,
        &['_', '-'],
        "expected 1 to 32 of A-Z a-z 0-9 _ -",
    )
}

/// Component names: `[A-Za-z0-9_-]{1,64}` (FATE: letters, digits, `_` and `-`).
pub fn component(value: &str) -> Result<(), InvalidId> {
    check(
        "component name",
        value,
        MAX_COMPONENT_LEN,
        &['_', '-'],
        "expected 1 to 64 of A-Z a-z 0-9 _ -",
    )
}

/// One of [`ROLES`] (see [`Role`]).
pub fn role(value: &str) -> Result<(), InvalidId> {
    value.parse::<Role>().map(|_| ())
}

/// Request ids: `[A-Za-z0-9_.:-]{1,128}`; empty means "none given".
pub fn request_id(value: &str) -> Result<(), InvalidId> {
    if value.is_empty() {
        return Ok(());
    }
    check(
        "request id",
        value,
        128,
        &['_', '-', '.', ':'],
        "expected up to 128 of A-Z a-z 0-9 _ - . :",
    )
}

/// A new job id in FATE's style: local time `YYYYmmddHHMMSS`, microseconds, then 4 random
/// digits so two schedulers do not collide (24 digits; FATE allows 25).
pub fn new_job_id(unix_micros: i64) -> String {
    use rand::Rng;
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000);
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    let salt: u16 = rand::rng().random_range(0..10_000);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}{micros:06}{salt:04}")
}

/// Unix seconds to UTC calendar fields (Howard Hinnant's days-to-civil).
fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    )
}

/// A participant of a job: a party in a role.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Participant {
    pub role: String,
    pub party_id: String,
}

impl fmt::Display for Participant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.role, self.party_id)
    }
}

#[cfg(test)]
mod tests;
