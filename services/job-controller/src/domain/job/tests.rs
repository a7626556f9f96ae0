use fedflow_core::JobStatus;

use super::*;

const NOW: i64 = 42;

#[test]
fn every_change_writes_what_its_target_calls_for() {
    for from in JobStatus::ALL {
        for to in JobStatus::ALL {
            let got = change(from, to, NOW);
            if from == to {
                assert_eq!(got, Ok(None), "{from} -> {to} is a repeat");
                continue;
            }
            if !from.can_move_to(to) {
                assert!(got.is_err(), "{from} -> {to} must be refused");
                continue;
            }
            let change = got.expect("legal").expect("a change");
            assert_eq!((change.from, change.to), (from, to));
            assert_eq!(change.update_ms, NOW);
            assert_eq!(
                change.start_ms,
                (to == JobStatus::Running).then_some(NOW),
                "{from} -> {to}: start time"
            );
            assert_eq!(
                change.end_ms,
                if to.is_end() { NOW } else { 0 },
                "{from} -> {to}: end time"
            );
            assert_eq!(change.release, to.is_end(), "{from} -> {to}: release");
        }
    }
}

#[test]
fn an_end_releases_the_allocation_and_nothing_else_does() {
    use JobStatus::*;
    #[rustfmt::skip]
    let table: &[(JobStatus, bool)] = &[
        (Ready, false), (Waiting, false), (Running, false),
        (Success, true), (Failed, true), (Canceled, true), (Timeout, true),
    ];
    for (to, release) in table {
        assert_eq!(releases(*to), *release, "{to}");
    }
}

#[test]
fn ready_passes_through_waiting_on_its_way_to_running_only() {
    use JobStatus::*;
    #[rustfmt::skip]
    let table: &[(JobStatus, JobStatus, &[JobStatus])] = &[
        (Ready, Running, &[Waiting, Running]),
        (Ready, Waiting, &[Waiting]),
        (Ready, Canceled, &[Canceled]),
        (Waiting, Running, &[Running]),
        (Running, Running, &[Running]),
        (Running, Success, &[Success]),
        (Success, Waiting, &[Waiting]),
    ];
    for (from, to, expected) in table {
        assert_eq!(steps(*from, *to), *expected, "{from} -> {to}");
    }
}
