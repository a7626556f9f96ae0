//! Who may act on a job: the rules every service applies to a call from another party (the
//! gateway applies them first). Pure: the deciding service supplies what it knows of the job.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// Who makes a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// This party: its own services, or its clients.
    Local,
    /// Another party, as the gateway authenticated it.
    Party(String),
}

/// The part a caller must play in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any participant of the job.
    Participant,
    /// The job's scheduler party: the only one that may create, start, stop or sync another
    /// party's jobs and tasks.
    Scheduler,
}

/// A refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The call claims to come from, or act as, a party it is not.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
}

/// A job's parties, as the deciding service knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobParties {
    /// The party whose scheduler schedules the job.
    pub scheduler: String,
    /// Every participant's party id; `None` where the service does not know them (the
    /// task-controller knows only the scheduler party).
    pub participants: Option<BTreeSet<String>>,
}

impl Caller {
    /// `Unauthenticated` unless the caller is local or the party id a message claims in
    /// `field`: a party id claimed anywhere in a call must be the caller's.
    pub fn claims(&self, party: &str, field: &str) -> Result<(), Denied> {
        match self {
            Caller::Party(p) if p != party => Err(Denied::Unauthenticated(format!(
                "{field} names party {party:?}, but the call comes from party {p}"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether the caller may do what `need`s on `job_id`; `job` is `None` when the job is not
    /// known here (another party then learns nothing about whether it exists elsewhere).
    pub fn may(&self, job_id: &str, job: Option<&JobParties>, need: Need) -> Result<(), Denied> {
        let Caller::Party(caller) = self else {
            return Ok(());
        };
        let not_participant = || {
            Denied::PermissionDenied(format!(
                "party {caller} is not a participant of job {job_id}"
            ))
        };
        let Some(job) = job else {
            return Err(not_participant());
        };
        if &job.scheduler == caller {
            return Ok(());
        }
        match (&job.participants, need) {
            (Some(participants), Need::Participant) if participants.contains(caller) => Ok(()),
            (Some(participants), _) if !participants.contains(caller) => Err(not_participant()),
            _ => Err(Denied::PermissionDenied(format!(
                "party {caller} may not do this for job {job_id}: only its scheduler, party {}, may",
                job.scheduler
            ))),
        }
    }

    /// `PermissionDenied` for another party: `what` is for this party's own clients.
    pub fn local_only(&self, what: &str) -> Result<(), Denied> {
        match self {
            Caller::Local => Ok(()),
            Caller::Party(caller) => Err(Denied::PermissionDenied(format!(
                "party {caller} may not call {what}: it is for this party's own clients"
            ))),
        }
    }
}

/// Jobs' parties once read, per job (they never change). Bounded: when full it starts over.
#[derive(Debug, Default)]
pub struct KnownJobs {
    jobs: Mutex<HashMap<String, Arc<JobParties>>>,
}

/// How many jobs' parties a [`KnownJobs`] keeps before it starts over: far more than the jobs
/// in play at once, few enough (half a KiB or so each) that a service running for months
/// holds a few MiB of them, not one entry for every job it ever saw (every service has one).
const MAX_KNOWN_JOBS: usize = 4_096;

impl KnownJobs {
    pub fn get(&self, job_id: &str) -> Option<Arc<JobParties>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(job_id)
            .cloned()
    }

    pub fn insert(&self, job_id: &str, parties: JobParties) -> Arc<JobParties> {
        let parties = Arc::new(parties);
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if jobs.len() >= MAX_KNOWN_JOBS {
            jobs.clear();
        }
        jobs.insert(job_id.to_owned(), parties.clone());
        parties
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_by_role() {
        let job = JobParties {
            scheduler: "9999".into(),
            participants: Some(["9999", "10000"].map(String::from).into()),
        };
        let party = |p: &str| Caller::Party(p.into());
        for need in [Need::Participant, Need::Scheduler] {
            assert!(Caller::Local.may("j", None, need).is_ok());
            assert!(party("9999").may("j", Some(&job), need).is_ok());
            assert!(matches!(
                party("10001").may("j", Some(&job), need),
                Err(Denied::PermissionDenied(_))
            ));
            assert!(party("9999").may("j", None, need).is_err());
        }
        assert!(
            party("10000")
                .may("j", Some(&job), Need::Participant)
                .is_ok()
        );
        assert!(
            party("10000")
                .may("j", Some(&job), Need::Scheduler)
                .is_err()
        );
        let scheduler_only = JobParties {
            participants: None,
            ..job
        };
        assert!(
            party("10000")
                .may("j", Some(&scheduler_only), Need::Participant)
                .is_err()
        );
        assert!(matches!(
            party("10000").claims("9999", "party_id"),
            Err(Denied::Unauthenticated(_))
        ));
        assert!(party("10000").claims("10000", "party_id").is_ok());
        assert!(party("10000").local_only("SubmitJob").is_err());
    }
}
