use fedflow_core::JobStatus;

use super::*;

const CAPACITY: Capacity = Capacity {
    cores: 16,
    memory_mb: 1000,
};

fn books(job: Option<JobStatus>, held: bool, cores: i64, memory_mb: i64) -> Books {
    Books {
        job,
        held,
        used: Used { cores, memory_mb },
    }
}

fn ask(cores: u32, memory_mb: u32) -> Amount {
    Amount { cores, memory_mb }
}

#[test]
fn admission_follows_the_table() {
    use JobStatus::*;
    let cores = |requested, free| {
        Admission::Refuse(Refusal::Cores {
            requested,
            free,
            capacity: 16,
        })
    };
    let memory = |requested, free| {
        Admission::Refuse(Refusal::Memory {
            requested,
            free,
            capacity: 1000,
        })
    };
    #[rustfmt::skip]
    let table: &[(&str, Books, Amount, Admission)] = &[
        ("fits in an empty ledger", books(Some(Ready), false, 0, 0), ask(16, 1000), Admission::Reserve),
        ("fits exactly what is left", books(Some(Waiting), false, 12, 900), ask(4, 100), Admission::Reserve),
        ("one core too many", books(Some(Waiting), false, 12, 0), ask(5, 0), cores(5, 4)),
        ("memory short", books(Some(Waiting), false, 0, 901), ask(1, 100), memory(100, 99)),
        ("cores are checked before memory", books(Some(Ready), false, 16, 1000), ask(1, 1), cores(1, 0)),
        ("over-held after a shrink", books(Some(Ready), false, 20, 0), ask(1, 0), cores(1, -4)),
        ("a zero ask fits a full ledger", books(Some(Ready), false, 16, 1000), ask(0, 0), Admission::Reserve),
        ("a holder is granted again", books(Some(Running), true, 16, 1000), ask(8, 500), Admission::AlreadyHeld),
        ("no such job", books(None, false, 0, 0), ask(1, 0), Admission::Refuse(Refusal::NoSuchJob)),
        ("ended, even when it would fit", books(Some(Success), false, 0, 0), ask(1, 0), Admission::Refuse(Refusal::Ended(Success))),
        ("ended beats held", books(Some(Canceled), true, 1, 0), ask(1, 0), Admission::Refuse(Refusal::Ended(Canceled))),
    ];
    for (what, books, ask, expected) in table {
        assert_eq!(&admit(books, CAPACITY, *ask), expected, "{what}");
    }
}

#[test]
fn every_end_status_is_refused_and_every_live_one_may_reserve() {
    for status in JobStatus::ALL {
        let got = admit(&books(Some(status), false, 0, 0), CAPACITY, ask(1, 1));
        if status.is_end() {
            assert_eq!(got, Admission::Refuse(Refusal::Ended(status)), "{status}");
        } else {
            assert_eq!(got, Admission::Reserve, "{status}");
        }
    }
}

#[test]
fn unmanaged_memory_admits_any_memory_ask() {
    let capacity = Capacity {
        cores: 2,
        memory_mb: 0,
    };
    let got = admit(
        &books(Some(JobStatus::Ready), false, 0, 5000),
        capacity,
        ask(1, u32::MAX),
    );
    assert_eq!(got, Admission::Reserve);
}

#[test]
fn refusals_name_what_is_short() {
    #[rustfmt::skip]
    let table: &[(Refusal, &str)] = &[
        (Refusal::NoSuchJob, "no such job on this party"),
        (Refusal::Ended(JobStatus::Success), "the job has ended (success)"),
        (Refusal::Cores { requested: 8, free: 4, capacity: 16 }, "cores: requested 8, free 4 of 16"),
        (Refusal::Cores { requested: 1, free: -3, capacity: 2 }, "cores: requested 1, free 0 of 2"),
        (Refusal::Memory { requested: 512, free: 100, capacity: 1000 }, "memory: requested 512 MB, free 100 of 1000 MB"),
    ];
    for (refusal, text) in table {
        assert_eq!(refusal.to_string(), *text);
    }
}

#[test]
fn grants_come_from_admissions() {
    assert_eq!(Grant::from(Admission::Reserve), Grant::Granted);
    assert_eq!(Grant::from(Admission::AlreadyHeld), Grant::Granted);
    assert_eq!(
        Grant::from(Admission::Refuse(Refusal::NoSuchJob)),
        Grant::Refused(Refusal::NoSuchJob)
    );
}

#[test]
fn free_never_goes_below_zero() {
    #[rustfmt::skip]
    let table: &[(i64, i64, Amount)] = &[
        (0, 0, ask(16, 1000)),
        (10, 400, ask(6, 600)),
        (16, 1000, ask(0, 0)),
        (40, 2000, ask(0, 0)),
    ];
    for (cores, memory_mb, expected) in table {
        let used = Used {
            cores: *cores,
            memory_mb: *memory_mb,
        };
        assert_eq!(free(CAPACITY, used), *expected, "{used:?}");
    }
}

#[test]
fn a_job_that_needs_more_than_everything_never_fits() {
    #[rustfmt::skip]
    let table: &[(Capacity, Amount, Option<NeverFits>)] = &[
        (CAPACITY, ask(16, 1000), None),
        (CAPACITY, ask(17, 0), Some(NeverFits::Cores)),
        (CAPACITY, ask(17, 2000), Some(NeverFits::Cores)),
        (CAPACITY, ask(1, 1001), Some(NeverFits::Memory)),
        (Capacity { cores: 4, memory_mb: 0 }, ask(4, u32::MAX), None),
    ];
    for (capacity, need, expected) in table {
        assert_eq!(
            never_fits(*capacity, *need),
            *expected,
            "{capacity:?} {need:?}"
        );
    }
}

#[test]
fn stray_allocations_are_those_of_absent_ended_or_never_started_jobs() {
    use JobStatus::*;
    let stale_before = 1_000;
    #[rustfmt::skip]
    let table: &[(Option<JobStatus>, i64, bool)] = &[
        (None, 5_000, true),
        (Some(Success), 5_000, true),
        (Some(Failed), 5_000, true),
        (Some(Canceled), 5_000, true),
        (Some(Timeout), 5_000, true),
        (Some(Ready), 999, true),
        (Some(Waiting), 999, true),
        (Some(Ready), 1_000, false),
        (Some(Waiting), 5_000, false),
        (Some(Running), 0, false),
    ];
    for (job, granted_ms, stray) in table {
        assert_eq!(
            is_stray(*job, *granted_ms, stale_before),
            *stray,
            "{job:?} granted at {granted_ms}"
        );
    }
}
