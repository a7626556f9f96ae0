//! The timer list: when each job is to be driven again (a retry delay or a time limit falls
//! due then). One ordered set for all jobs, served by one loop (`App::run_timers`). It lives
//! in memory only: timers are lost on restart, and the repair pass catches what falls due
//! meanwhile.

use std::collections::BTreeSet;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Pending wake-ups: (due time in epoch ms, job), earliest first.
#[derive(Default)]
pub(crate) struct Timers {
    due: Mutex<BTreeSet<(i64, String)>>,
    changed: Notify,
}

impl Timers {
    /// Drives `job_id` again at `at_ms`; wakes the loop when this is the new earliest.
    pub(crate) fn wake_at(&self, job_id: &str, at_ms: i64) {
        let mut due = self.due.lock();
        let earliest = due.first().map(|(at, _)| *at);
        due.insert((at_ms, job_id.to_owned()));
        if earliest.is_none_or(|e| at_ms < e) {
            self.changed.notify_one();
        }
    }

    /// Forgets a job's timers (it ended).
    pub(crate) fn forget(&self, job_id: &str) {
        self.due.lock().retain(|(_, job)| job != job_id);
    }

    /// Takes the jobs due at `now`; returns them and the next due time.
    pub(crate) fn take_due(&self, now: i64) -> (Vec<String>, Option<i64>) {
        let mut timers = self.due.lock();
        let mut jobs = Vec::new();
        while let Some((at, _)) = timers.first() {
            if *at > now {
                break;
            }
            if let Some((_, job)) = timers.pop_first() {
                jobs.push(job);
            }
        }
        (jobs, timers.first().map(|(at, _)| *at))
    }

    /// Resolves when an earlier wake-up was set.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_jobs_come_out_in_time_order_and_forgotten_ones_never() {
        let timers = Timers::default();
        timers.wake_at("b", 20);
        timers.wake_at("a", 10);
        timers.wake_at("c", 30);
        timers.forget("c");
        assert_eq!(timers.take_due(5), (vec![], Some(10)));
        assert_eq!(timers.take_due(20), (vec!["a".into(), "b".into()], None));
    }
}
