//! FATE sessions as fedflow names them (pyfate's federation id, the OSX `x-ptp-session-id`;
//! read by the gateway and the task-controller): `{job_id}_{component}_{version}`, the job id
//! fedflow's 24 digits, the version the digits after the last `_` (a component name may hold
//! `_` itself). Pure parsing, no I/O.

/// fedflow's job ids: 24 digits (`crate::ids::new_job_id`).
const JOB_ID_LEN: usize = 24;

/// The session id of a task version: FATE-Flow's task id and the version, the same on every
/// party of the task; [`Session::parse`] reads it back.
pub fn id(job_id: &str, component: &str, version: i32) -> String {
    format!("{job_id}_{component}_{version}")
}

/// A parsed session id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Session {
    /// The id as sent, the key of the session's queues.
    pub id: String,
    pub job_id: String,
    pub component: String,
    pub version: i32,
}

impl Session {
    /// Parses `x-ptp-session-id`; the error names what is wrong.
    pub fn parse(id: &str) -> Result<Session, String> {
        let shape = "a session id is {job_id}_{component}_{version}, the job id 24 digits";
        let (job_id, rest) = match id.split_at_checked(JOB_ID_LEN) {
            Some((job_id, rest))
                if job_id.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with('_') =>
            {
                (job_id, &rest[1..])
            }
            _ => {
                return Err(format!(
                    "session id {id:?}: no job id of 24 digits then '_' ({shape})"
                ));
            }
        };
        crate::ids::job_id(job_id)
            .map_err(|e| format!("session id {id:?}: job id: {e} ({shape})"))?;
        let (component, version) = rest.rsplit_once('_').ok_or_else(|| {
            format!("session id {id:?}: no version after the component ({shape})")
        })?;
        crate::ids::component(component)
            .map_err(|e| format!("session id {id:?}: component: {e}"))?;
        let version = version
            .parse::<i32>()
            .ok()
            .filter(|v| *v >= 0 && version.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                format!("session id {id:?}: version {version:?} is not a non-negative integer")
            })?;
        Ok(Session {
            id: id.to_owned(),
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_id_is_job_component_and_version() {
        let s = Session::parse("202612010000000000000001_hetero_lr_0_3").expect("valid");
        assert_eq!(s.job_id, "202612010000000000000001");
        assert_eq!(s.component, "hetero_lr_0");
        assert_eq!(s.version, 3);
        for bad in [
            "",
            "202612010000000000000001",
            "202612010000000000000001_lr",
            "20261201_lr_0",
            "202612010000000000000001_lr_x",
            "202612010000000000000001_lr_-1",
            "202612010000000000000001__0",
            "202612010000000000000001_../x_0",
        ] {
            let err = Session::parse(bad).expect_err(bad);
            assert!(err.contains("session id"), "{bad}: {err}");
        }
    }
}
