//! What the queue does with a waiting job ([`step`]): end it (a stop was asked for, or its
//! queue timeout passed), leave it behind an earlier job that waits for one of its parties
//! (no overtaking there, no head-of-line blocking elsewhere), or apply for its resources; and
//! what the parties' answers to that application mean ([`admission`]): all or nothing.

use std::collections::BTreeSet;

use fedflow_core::JobStatus;
use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::Participant;

use super::Job;
use super::plan::JobLimits;

/// The queue's decision about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The job is no longer waiting (it moved meanwhile).
    Skip,
    /// A stop was asked for: it ends canceled (the reason recorded with the stop stays).
    Cancel,
    /// It waited longer than its queue timeout: it ends `timeout` with this reason.
    TimeOut(String),
    /// An earlier job waits for `party`, which this one needs too; `pending_reason` is set
    /// when the job has none yet.
    Behind {
        party: String,
        pending_reason: Option<String>,
    },
    /// Apply for its resources on every party.
    Apply,
}

/// The decision for `job` at `now`; `contended` holds the parties that refused an earlier job
/// of this pass.
pub fn step(
    job: &Job,
    spec: &JobSpec,
    limits: &JobLimits,
    contended: &BTreeSet<String>,
    now: i64,
) -> Step {
    if job.status != JobStatus::Waiting {
        return Step::Skip;
    }
    if job.cancel_requested {
        return Step::Cancel;
    }
    if now >= job.queued_ms.saturating_add(limits.queue_timeout_ms) {
        return Step::TimeOut(format!(
            "queue timeout: waited more than {}s for resources (queue_timeout); {}",
            limits.queue_timeout_ms / 1000,
            job.pending_reason
        ));
    }
    if let Some(party) = spec.party_ids().into_iter().find(|p| contended.contains(p)) {
        let pending_reason = job
            .pending_reason
            .is_empty()
            .then(|| format!("queued behind earlier jobs waiting for party {party}"));
        return Step::Behind {
            party,
            pending_reason,
        };
    }
    Step::Apply
}

/// One participant's answer to the application for resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Granted,
    /// What it lacks.
    Refused(String),
    /// Why it could not be asked.
    Silent(String),
}

/// What the answers mean: who granted (to be given back unless every party did), who refused
/// (their parties are contended for later jobs), and what is missing (empty: start the job).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admission {
    pub granted: Vec<Participant>,
    pub refused: Vec<String>,
    pub missing: Vec<String>,
}

pub fn admission(answers: Vec<(Participant, Answer)>) -> Admission {
    let mut out = Admission::default();
    for (who, answer) in answers {
        match answer {
            Answer::Granted => out.granted.push(who),
            Answer::Refused(what) => {
                out.missing.push(format!(
                    "party {} ({}) lacks {what}",
                    who.party_id, who.role
                ));
                out.refused.push(who.party_id);
            }
            Answer::Silent(e) => out.missing.push(format!(
                "party {} ({}) did not answer: {e}",
                who.party_id, who.role
            )),
        }
    }
    out
}

/// The pending reason of a job whose application failed.
pub fn waiting_reason(missing: &[String]) -> String {
    format!("waiting for resources: {}", missing.join("; "))
}
