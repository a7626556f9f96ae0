//! The benchmark cannot rot: a smoke run with tiny sizes produces every figure.

use std::process::Command;

use fedflow_tests::{TempDir, bin, succeeded};

#[test]
fn the_benchmark_runs_and_reports_every_figure() {
    let dir = TempDir::new("fedflow-bench-smoke");
    let json = dir.path().join("results.json");
    let out = Command::new(bin("fedflow-bench"))
        .arg("--smoke")
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run fedflow-bench");
    let stdout = succeeded(&out);
    for figure in [
        "submit -> first task running on all 3 parties",
        "DAG edge, p50",
        "scheduling overhead per 3-task job",
        "throughput, control-plane engine",
        "throughput, process workers",
        "idle RSS per service",
        "RSS after 2nd throughput run",
        "submit p99 with 20 queued jobs",
        "8-party vs 3-party",
        "data plane, 1 KiB messages",
        "data plane, 100 KiB messages",
        "data plane, 1 MiB messages",
    ] {
        assert!(stdout.contains(figure), "{figure} missing from:\n{stdout}");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let table = results["table"].as_array().expect("a table");
    assert_eq!(table.len(), 13);
    for key in [
        "throughput.instant.succeeded",
        "throughput.process.round1.succeeded",
        "throughput.process.round2.succeeded",
    ] {
        assert_eq!(
            results["values"][key], 12.0,
            "{key}: every smoke job succeeded"
        );
    }
    assert_eq!(results["samples"]["latency.dag_edge"]["n"], 6);
    for size in ["1kib", "100kib", "1mib"] {
        for path in ["floor", "fedflow"] {
            let key = format!("dataplane.{path}.{size}.mb_per_s");
            let rate = results["values"][&key].as_f64().unwrap_or(f64::NAN);
            assert!(rate > 0.0, "{key}: {rate}");
        }
        let key = format!("dataplane.ratio.{size}");
        let ratio = results["values"][&key].as_f64().unwrap_or(f64::NAN);
        assert!(ratio > 0.0 && ratio.is_finite(), "{key}: {ratio}");
    }
}

/// The soak (`--only soak`) cannot rot either: 40 jobs over 12 s, a quarter of them with a
/// fault (every kind at least twice), sampled every 2 s: every job ends as its fault
/// expects, the same on every party, the invariants hold, and every figure has its verdict.
#[test]
fn a_short_soak_injects_every_fault_and_every_job_ends_as_expected() {
    let dir = TempDir::new("fedflow-bench-soak");
    let json = dir.path().join("results.json");
    let out = Command::new(bin("fedflow-bench"))
        .args(["--only", "soak", "--soak-secs", "12", "--soak-jobs", "40"])
        .args(["--soak-sample-secs", "2", "--soak-fault-percent", "25"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run fedflow-bench");
    let stdout = succeeded(&out);
    for figure in [
        "== soak verdicts",
        "RSS (services never restarted)",
        "open fds (services never restarted)",
        "databases (*.db, all parties)",
        "jobs not ended / outbox rows / reservations",
        "worker killed (retried)",
        "worker killed (no retry)",
        "duplicate submission",
        "party delayed (SIGSTOP)",
        "service killed and restarted",
    ] {
        assert!(stdout.contains(figure), "{figure} missing from:\n{stdout}");
    }
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written"))
            .expect("valid json");
    let values = &results["values"];
    assert_eq!(values["soak.ended"], 40.0, "{stdout}");
    assert_eq!(values["soak.unexpected"], 0.0, "{stdout}");
    let table = results["table"].as_array().expect("a table");
    for figure in [
        "jobs",
        "soak: end status the same on every party",
        "soak: invariants",
        "jobs not ended / outbox rows / reservations",
    ] {
        let row = table
            .iter()
            .find(|r| r["figure"] == figure)
            .unwrap_or_else(|| panic!("no row {figure}:\n{stdout}"));
        assert_eq!(row["met"], true, "{figure}: {row}\n{stdout}");
    }
}
