//! Self-fencing verdicts: each scheduler party with tasks running here is probed; one not
//! reached for longer than the limit has given the job up (its own unreachable-party timeout
//! is the same figure), so this party fails its running tasks of that scheduler's jobs as
//! `fenced` and stops their workers rather than run on. [`Contacts`] keeps, in memory, when
//! each scheduler last answered; the caller passes the time in.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use fedflow_core::TaskStatus;

use super::Task;
use super::attempt::Move;

/// Running rows grouped by the scheduler party that drives their jobs.
pub fn by_scheduler(running: Vec<Task>) -> BTreeMap<String, Vec<Task>> {
    let mut groups: BTreeMap<String, Vec<Task>> = BTreeMap::new();
    for task in running {
        groups
            .entry(task.scheduler_party_id.clone())
            .or_default()
            .push(task);
    }
    groups
}

/// When each probed scheduler party was last reached (or first probed).
#[derive(Debug, Default)]
pub struct Contacts {
    last: HashMap<String, Instant>,
}

impl Contacts {
    /// Forgets the parties with no running task here any more.
    pub fn keep_only(&mut self, probed: impl Fn(&str) -> bool) {
        self.last.retain(|party, _| probed(party));
    }

    /// Records a probe of `party` begun at `began` and answered (`reached`) or not by `now`;
    /// returns how long the party has been out of reach.
    pub fn observe(
        &mut self,
        party: &str,
        reached: bool,
        began: Instant,
        now: Instant,
    ) -> Duration {
        let last = self.last.entry(party.to_owned()).or_insert(began);
        if reached {
            *last = now;
        }
        now.saturating_duration_since(*last)
    }
}

/// The reason the rows of `scheduler` are fenced, or `None` while it is reachable or has been
/// silent for less than `after`.
pub fn verdict(
    scheduler: &str,
    reached: bool,
    silent: Duration,
    after: Duration,
) -> Option<String> {
    (!reached && silent >= after).then(|| {
        format!(
            "fenced: the job's scheduler, party {scheduler}, unreachable for {}s",
            silent.as_secs()
        )
    })
}

/// What fencing does to one running row: it fails and its worker is stopped.
pub fn fence(reason: &str) -> Move {
    Move {
        from: TaskStatus::Running,
        to: TaskStatus::Failed,
        reason: reason.to_owned(),
        output: None,
        kill: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::host_task;

    #[test]
    fn only_a_scheduler_silent_for_the_whole_limit_is_fenced() {
        let after = Duration::from_secs(300);
        // (reached, silent for, fenced)
        let cases = [
            (true, Duration::ZERO, false),
            (true, Duration::from_secs(900), false),
            (false, Duration::from_secs(299), false),
            (false, Duration::from_secs(300), true),
            (false, Duration::from_secs(301), true),
        ];
        for (reached, silent, fenced) in cases {
            let got = verdict("9999", reached, silent, after);
            assert_eq!(got.is_some(), fenced, "reached {reached} silent {silent:?}");
            if let Some(reason) = got {
                assert_eq!(
                    reason,
                    format!(
                        "fenced: the job's scheduler, party 9999, unreachable for {}s",
                        silent.as_secs()
                    )
                );
            }
        }
        assert_eq!(
            fence("fenced: x"),
            Move {
                from: TaskStatus::Running,
                to: TaskStatus::Failed,
                reason: "fenced: x".into(),
                output: None,
                kill: true,
            }
        );
    }

    #[test]
    fn silence_counts_from_the_last_answer_or_the_first_probe() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut contacts = Contacts::default();
        assert_eq!(
            contacts.observe("9999", false, at(0), at(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            contacts.observe("9999", false, at(5), at(6)),
            Duration::from_secs(6)
        );
        assert_eq!(contacts.observe("9999", true, at(7), at(8)), Duration::ZERO);
        assert_eq!(
            contacts.observe("9999", false, at(9), at(10)),
            Duration::from_secs(2)
        );
        contacts.keep_only(|party| party != "9999");
        assert_eq!(
            contacts.observe("9999", false, at(20), at(21)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn running_rows_are_grouped_by_their_scheduler() {
        let row = |component: &str, scheduler: &str| host_task("j", component, scheduler);
        let groups = by_scheduler(vec![row("a", "9999"), row("b", "9998"), row("c", "9999")]);
        let names: Vec<(&str, Vec<&str>)> = groups
            .iter()
            .map(|(s, rows)| {
                (
                    s.as_str(),
                    rows.iter().map(|t| t.key.component.as_str()).collect(),
                )
            })
            .collect();
        assert_eq!(names, [("9998", vec!["b"]), ("9999", vec!["a", "c"])]);
    }
}
