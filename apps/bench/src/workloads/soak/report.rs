//! The soak's table and verdicts: each figure's growth from the end of warm-up (the first
//! 10 % of the time) to the last sample under load, the jobs against what their faults expect,
//! and each service's figures at both ends.

use std::collections::{BTreeMap, HashMap};

use fedflow_proto::common::v1::JobStatus;

use super::sample::{Proc, Sample};
use super::{Fault, Outcome};
use crate::measure::Results;

const MIB: f64 = 1024.0 * 1024.0;

/// One of a sample's sizes, in bytes.
type Size = fn(&Sample) -> u64;

/// Sums over the services `keep` admits (all when None).
fn sums(s: &Sample, keep: Option<&dyn Fn(&str) -> bool>) -> (f64, usize, usize) {
    s.procs
        .iter()
        .filter(|p| keep.is_none_or(|k| k(&p.name)))
        .fold((0.0, 0, 0), |(r, f, t), p| {
            (r + p.rss, f + p.fds, t + p.threads)
        })
}

fn header() -> String {
    format!(
        "| {:>6} | {:>6} | {:>6} | {:>6} | {:>5} | {:>9} | {:>9} | {:>5} | {:>7} | {:>7} | {:>7} | {:>6} | {:>8} | {:>6} | {:>9} | {:>6} | {:>6} |",
        "t (s)",
        "subm.",
        "ended",
        "ok",
        "fail",
        "RSS MiB",
        "RSS all",
        "fds",
        "threads",
        "DB MiB",
        "WAL MiB",
        "segs",
        "dirs MiB",
        "logs",
        "open jobs",
        "outbox",
        "resv."
    )
}

/// One row of the table; RSS, fds and threads summed over the services `keep` admits, and the
/// RSS of all of them beside.
pub(super) fn row(s: &Sample, keep: Option<&dyn Fn(&str) -> bool>) -> String {
    let (rss, fds, threads) = sums(s, keep);
    let (all, _, _) = sums(s, None);
    format!(
        "| {:>6.0} | {:>6} | {:>6} | {:>6} | {:>5} | {:>9.1} | {:>9.1} | {:>5} | {:>7} | {:>7.1} | {:>7.1} | {:>6.1} | {:>8.1} | {:>6.1} | {:>9} | {:>6} | {:>6} |{}",
        s.t,
        s.submitted,
        s.ended,
        s.succeeded,
        s.failed,
        rss,
        all,
        fds,
        threads,
        s.db as f64 / MIB,
        s.wal as f64 / MIB,
        s.segments as f64 / MIB,
        s.workdirs as f64 / MIB,
        s.logs as f64 / MIB,
        s.open_jobs,
        s.outbox,
        s.allocations,
        if s.loaded { "" } else { " drained" }
    )
}

/// Least-squares slope of (t, y), per hour.
fn slope_per_hour(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (mt, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (t, y)| (a + t / n, b + y / n));
    let (cov, var) = points.iter().fold((0.0, 0.0), |(c, v), (t, y)| {
        (c + (t - mt) * (y - my), v + (t - mt) * (t - mt))
    });
    cov / var * 3600.0
}

pub(super) fn report(
    r: &mut Results,
    samples: &[Sample],
    restarts: &BTreeMap<String, usize>,
    outcomes: &[Outcome],
    secs: f64,
    jobs: usize,
    drop_per_mille: u32,
) {
    let stable = |name: &str| !restarts.contains_key(name);
    let keep: &dyn Fn(&str) -> bool = &stable;
    let steady: Vec<&str> = samples
        .first()
        .map(|s| {
            s.procs
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| stable(n))
                .collect()
        })
        .unwrap_or_default();
    println!(
        "\n== soak (S29): {jobs} jobs over {secs:.0} s, faults in {} of them{}",
        outcomes.iter().filter(|o| o.fault.is_some()).count(),
        if drop_per_mille > 0 {
            format!(", gateways dropping {drop_per_mille} replies per thousand")
        } else {
            String::new()
        }
    );
    println!(
        "RSS, fds and threads: the {} services never restarted ({}); \"RSS all\": all {} services",
        steady.len(),
        steady.join(", "),
        samples.first().map_or(0, |s| s.procs.len())
    );
    println!("{}", header());
    println!("|{}", "---|".repeat(17));
    for s in samples {
        println!("{}", row(s, Some(keep)));
    }
    // Warm-up ends at the first sample at or after 10 % of the time; the end is the last
    // sample taken while jobs were still submitted.
    let under_load: Vec<&Sample> = samples.iter().filter(|s| s.loaded).collect();
    let Some(warm) = under_load.iter().find(|s| s.t >= secs * 0.1).copied() else {
        println!("too few samples for the verdicts");
        return;
    };
    let end = *under_load.last().expect("one sample at least");
    let after: Vec<&Sample> = under_load
        .iter()
        .filter(|s| s.t >= warm.t)
        .copied()
        .collect();
    let growth = |a: f64, b: f64| (b - a) / a * 100.0;
    let window = format!("{:.0} s -> {:.0} s", warm.t, end.t);
    let mut verdicts = Vec::new();
    let (r0, f0, t0) = sums(warm, Some(keep));
    let (r1, f1, t1) = sums(end, Some(keep));
    let rss_fit = slope_per_hour(
        &after
            .iter()
            .map(|s| (s.t, sums(s, Some(keep)).0))
            .collect::<Vec<_>>(),
    );
    let rss_flat = growth(r0, r1).abs() <= 10.0;
    verdicts.push((
        "RSS (services never restarted)",
        format!(
            "{}: {:+.1} % ({r0:.1} -> {r1:.1} MiB, {window}; fit {rss_fit:+.1} MiB/h)",
            if rss_flat { "flat" } else { "GROWS" },
            growth(r0, r1)
        ),
        rss_flat,
    ));
    for (figure, a, b, idx) in [
        ("open fds (services never restarted)", f0, f1, 1),
        ("threads (services never restarted)", t0, t1, 2),
    ] {
        let fit = slope_per_hour(
            &after
                .iter()
                .map(|s| {
                    let (_, f, t) = sums(s, Some(keep));
                    (s.t, if idx == 1 { f as f64 } else { t as f64 })
                })
                .collect::<Vec<_>>(),
        );
        let flat = b <= a + (a / 10).max(8);
        verdicts.push((
            figure,
            format!(
                "{}: {:+.1} % ({a} -> {b}, {window}; fit {fit:+.1}/h)",
                if flat { "flat" } else { "GROWS" },
                growth(a as f64, b as f64)
            ),
            flat,
        ));
    }
    // The stores keep every job's rows (there is no retention yet): they grow with the
    // history; what must hold is that they grow by the same bytes per job throughout.
    let per_job = |a: u64, b: u64, ja: usize, jb: usize| {
        (b as f64 - a as f64) / (jb as f64 - ja as f64).max(1.0) / 1024.0
    };
    let first = &samples[0];
    let sizes: [(&str, Size); 3] = [
        ("databases (*.db, all parties)", |s| s.db),
        ("task directories (all parties)", |s| s.workdirs),
        ("logs (warn, all services)", |s| s.logs),
    ];
    for (figure, size) in sizes {
        let before = per_job(size(first), size(warm), first.ended, warm.ended);
        let since = per_job(size(warm), size(end), warm.ended, end.ended);
        let linear = since <= before.max(0.1) * 1.5;
        verdicts.push((
            figure,
            format!(
                "{}: {:.1} -> {:.1} MiB ({window}), {since:.2} KiB per job since warm-up, {before:.2} KiB per job before",
                if linear {
                    "grows with the job history, linear"
                } else {
                    "GROWS faster per job"
                },
                size(warm) as f64 / MIB,
                size(end) as f64 / MIB,
            ),
            linear,
        ));
    }
    let wal_max_warm = under_load
        .iter()
        .filter(|s| s.t <= warm.t)
        .map(|s| s.wal)
        .max()
        .unwrap_or(0);
    let wal_max = after.iter().map(|s| s.wal).max().unwrap_or(0);
    let wal_bounded = wal_max as f64 <= (wal_max_warm as f64 * 1.5).max(8.0 * MIB);
    verdicts.push((
        "WAL files (all parties)",
        format!(
            "{}: at most {:.1} MiB after warm-up, {:.1} MiB during it; {:.1} MiB at the end",
            if wal_bounded { "bounded" } else { "GROWS" },
            wal_max as f64 / MIB,
            wal_max_warm as f64 / MIB,
            end.wal as f64 / MIB
        ),
        wal_bounded,
    ));
    let segments_flat = end.segments <= warm.segments + (1 << 20);
    verdicts.push((
        "gateway payload segments",
        format!(
            "{}: {:.1} -> {:.1} MiB",
            if segments_flat { "flat" } else { "GROWS" },
            warm.segments as f64 / MIB,
            end.segments as f64 / MIB
        ),
        segments_flat,
    ));
    let peak_open = after.iter().map(|s| s.open_jobs).max().unwrap_or(0);
    let peak_outbox = after.iter().map(|s| s.outbox).max().unwrap_or(0);
    let peak_resv = after.iter().map(|s| s.allocations).max().unwrap_or(0);
    let last = samples.last().expect("a sample");
    let settled =
        last.open_jobs == 0 && last.outbox == 0 && last.allocations == 0 && last.running_tasks == 0;
    verdicts.push((
        "jobs not ended / outbox rows / reservations",
        format!(
            "{}: at most {peak_open} / {peak_outbox} / {peak_resv} under load after warm-up; {} / {} / {} (and {} running task rows) after the drain",
            if settled { "no backlog" } else { "LEFT OVER" },
            last.open_jobs,
            last.outbox,
            last.allocations,
            last.running_tasks
        ),
        settled,
    ));
    // The jobs.
    let ended = outcomes.iter().filter(|o| o.ended.is_some()).count();
    let unexpected: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.problem.is_some() || o.ended.as_ref().is_none_or(|(s, _)| *s != o.expected))
        .collect();
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o.ended, Some((JobStatus::Success, _))))
        .count();
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in outcomes {
        if let Some(f) = o.fault {
            let e = by_kind.entry(f.kind()).or_default();
            e.0 += 1;
            e.1 += usize::from(o.ended.as_ref().is_some_and(|(s, _)| *s == o.expected));
        }
    }
    let all_ended = ended == jobs && unexpected.is_empty();
    verdicts.push((
        "jobs",
        format!(
            "{}: {ended} of {jobs} ended; {ok} succeeded, {} failed; {} not as expected",
            if all_ended {
                "every job ended as expected"
            } else {
                "NOT AS EXPECTED"
            },
            ended - ok,
            unexpected.len()
        ),
        all_ended,
    ));
    println!("\n== soak verdicts");
    for (figure, text, met) in &verdicts {
        println!("{figure:<44} {text}");
        r.row(figure, "flat after warm-up", text.clone(), "-", Some(*met));
    }
    println!("\n== soak faults (as expected / injected)");
    for (kind, (n, fine)) in &by_kind {
        println!("{kind:<36} {fine} / {n}");
        r.values.insert(format!("soak.faults.{kind}"), *n as f64);
    }
    for o in unexpected.iter().take(20) {
        println!(
            "unexpected: job {} (#{}, {}): expected {:?}, ended {:?}{}",
            o.job_id,
            o.index,
            o.fault.map_or("no fault".into(), Fault::label),
            o.expected,
            o.ended,
            o.problem
                .as_ref()
                .map_or(String::new(), |p| format!("; {p}"))
        );
    }
    // Per service: warm-up against end.
    println!("\n== soak per service (end of warm-up -> end under load)");
    let by_name = |s: &Sample| -> HashMap<String, Proc> {
        s.procs
            .iter()
            .map(|p| (p.name.clone(), p.clone()))
            .collect()
    };
    let (w, e) = (by_name(warm), by_name(end));
    for p in &warm.procs {
        let q = &e[&p.name];
        println!(
            "{:<32} RSS {:>6.1} -> {:>6.1} MiB ({:+5.1} %)  fds {:>3} -> {:>3}  threads {:>2} -> {:>2}{}",
            p.name,
            p.rss,
            q.rss,
            growth(p.rss, q.rss),
            p.fds,
            q.fds,
            p.threads,
            q.threads,
            restarts
                .get(&p.name)
                .map_or(String::new(), |n| format!("  (restarted {n} times)"))
        );
        r.values
            .insert(format!("soak.rss_mib.warm.{}", p.name), w[&p.name].rss);
        r.values
            .insert(format!("soak.rss_mib.end.{}", p.name), q.rss);
    }
    for (k, v) in [
        ("soak.jobs", jobs as f64),
        ("soak.ended", ended as f64),
        ("soak.succeeded", ok as f64),
        ("soak.unexpected", unexpected.len() as f64),
        ("soak.rss_mib.steady.warm", r0),
        ("soak.rss_mib.steady.end", r1),
        ("soak.fds.steady.warm", f0 as f64),
        ("soak.fds.steady.end", f1 as f64),
        ("soak.db_mib.end", end.db as f64 / MIB),
    ] {
        r.values.insert(k.into(), v);
    }
}
