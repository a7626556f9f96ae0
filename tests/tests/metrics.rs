//! Every party's Prometheus endpoint, end to end: a 3-party `Gather` job (one task per party,
//! each host sending one value to the guest over the data plane) moves each party's counters
//! and histograms by exactly what the job implies, the text parses with Prometheus's own
//! Python parser (`prometheus_client`, in a venv `scripts/setup-metrics-venv.sh` makes), no
//! label carries a job id, names follow Prometheus's conventions, and the Grafana dashboard
//! queries only metrics fedflow exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use fedflow_tests::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WITHIN: Duration = Duration::from_secs(90);
const GUEST: &str = "9999";
const HOSTS: [&str; 2] = ["10000", "10001"];

/// One sample: its name and labels.
type Key = (String, BTreeMap<String, String>);

/// One scrape of an endpoint: its text and its samples.
#[derive(Debug, Clone)]
struct Scrape {
    text: String,
    samples: BTreeMap<Key, f64>,
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    fn names(&self) -> BTreeSet<String> {
        self.samples.keys().map(|(n, _)| n.clone()).collect()
    }
}

/// Parses the samples of an OpenMetrics text (the subset fedflow writes: `name{k="v",..} value`).
fn parse(text: &str) -> Result<BTreeMap<Key, f64>, String> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value.parse().map_err(|e| format!("{line:?}: {e}"))?;
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("unclosed labels in {line:?}"))?;
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .ok_or_else(|| format!("bad label {pair:?} in {line:?}"))?;
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
        };
        samples.insert((name, labels), value);
    }
    Ok(samples)
}

/// `GET http://{addr}/metrics`, over a plain HTTP/1.1 connection.
async fn scrape(addr: std::net::SocketAddr) -> Result<Scrape, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: fedflow\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {reply:?}"))?;
    if !head.starts_with("HTTP/1.1 200") || !head.contains("application/openmetrics-text") {
        return Err(format!("unexpected answer: {head}"));
    }
    Ok(Scrape {
        text: body.to_owned(),
        samples: parse(body)?,
    })
}

/// What `name{labels}` moved by between two scrapes.
fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

/// One expectation on a party's endpoint.
struct Expect {
    party: &'static str,
    name: &'static str,
    labels: Vec<(&'static str, &'static str)>,
    /// Exactly this delta, or (None) at least `at_least`.
    exactly: Option<f64>,
    at_least: f64,
}

fn exactly(
    party: &'static str,
    name: &'static str,
    labels: &[(&'static str, &'static str)],
    n: f64,
) -> Expect {
    Expect {
        party,
        name,
        labels: labels.to_vec(),
        exactly: Some(n),
        at_least: n,
    }
}

fn at_least(
    party: &'static str,
    name: &'static str,
    labels: &[(&'static str, &'static str)],
    n: f64,
) -> Expect {
    Expect {
        party,
        name,
        labels: labels.to_vec(),
        exactly: None,
        at_least: n,
    }
}

/// The problems of the after-scrapes against the before-scrapes, if any.
fn check(
    before: &BTreeMap<&str, Scrape>,
    after: &BTreeMap<&str, Scrape>,
    expects: &[Expect],
) -> Result<(), String> {
    let mut wrong = Vec::new();
    for e in expects {
        let d = delta(&before[e.party], &after[e.party], e.name, &e.labels);
        let ok = match e.exactly {
            Some(n) => (d - n).abs() < 1e-9,
            None => d >= e.at_least,
        };
        if !ok {
            wrong.push(format!(
                "party {} {}{:?} moved by {d}, expected {}{}",
                e.party,
                e.name,
                e.labels,
                if e.exactly.is_some() { "" } else { "at least " },
                e.at_least
            ));
        }
    }
    // Every latency histogram counts the calls of its (service, method, party), whatever
    // their code.
    for (party, s) in after {
        for ((name, labels), count) in &s.samples {
            if name != "fedflow_gateway_party_call_duration_seconds_count" {
                continue;
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let calls = s.sum("fedflow_gateway_party_calls_total", &pairs);
            if (calls - count).abs() > 1e-9 {
                wrong.push(format!(
                    "party {party}: {labels:?} has {count} latencies but {calls} calls"
                ));
            }
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// The python of the venv with `prometheus_client`, or why there is none.
fn parser_python() -> Result<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(root.join("scripts/setup-metrics-venv.sh"))
        .output()
        .map_err(|e| format!("cannot run scripts/setup-metrics-venv.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/setup-metrics-venv.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Parses `text` with `prometheus_client.openmetrics.parser` and returns its samples.
fn python_samples(python: &str, text: &str) -> BTreeMap<Key, f64> {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the parser");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the text");
    let out = child.wait_with_output().expect("the parser ends");
    assert!(
        out.status.success(),
        "prometheus_client refuses the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).expect("the parser's JSON");
    parsed
        .into_iter()
        .map(|(name, labels, value)| ((name, labels), value))
        .collect()
}

/// Whether every service of the party has registered its metrics (they start concurrently).
fn registered(s: &Scrape) -> Result<(), String> {
    let names = s.names();
    for name in [
        "fedflow_scheduler_queue_length",
        "fedflow_scheduler_jobs",
        "fedflow_scheduler_outbox_depth",
        "fedflow_job_controller_outbox_depth",
        "fedflow_task_controller_outbox_depth",
    ] {
        if !names.contains(name) {
            return Err(format!("no {name} yet"));
        }
    }
    if !names.contains("fedflow_gateway_data_plane_messages_total") {
        return Err("no gateway metrics yet".into());
    }
    Ok(())
}

/// Scrapes every party once all its services registered their metrics.
async fn scrape_registered(fed: &TestFederation) -> BTreeMap<&'static str, Scrape> {
    eventually(
        "every service to register its metrics",
        Duration::from_secs(20),
        || async {
            let scrapes = scrape_all(fed).await;
            for (party, s) in &scrapes {
                registered(s).map_err(|e| format!("party {party}: {e}"))?;
            }
            Ok(scrapes)
        },
    )
    .await
}

async fn scrape_all(fed: &TestFederation) -> BTreeMap<&'static str, Scrape> {
    let mut scrapes = BTreeMap::new();
    for party in [GUEST, HOSTS[0], HOSTS[1]] {
        let addr = fed
            .federation
            .party(party)
            .and_then(|p| p.metrics)
            .expect("the party serves metrics");
        let s = scrape(addr)
            .await
            .unwrap_or_else(|e| panic!("scrape party {party}: {e}"));
        scrapes.insert(party, s);
    }
    scrapes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_party_job_moves_every_partys_metrics_by_what_it_implies() {
    let fed = TestFederation::start_with(&[GUEST, HOSTS[0], HOSTS[1]], |o| o.metrics = true).await;
    let before = scrape_registered(&fed).await;
    for (party, s) in &before {
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
            "fedflow_scheduler_outbox_depth",
            "fedflow_job_controller_outbox_depth",
            "fedflow_task_controller_outbox_oldest_age_seconds",
            "fedflow_scheduler_queue_length",
        ] {
            assert!(s.names().contains(name), "party {party} has no {name}");
        }
    }

    let mut scheduler = fed.scheduler(GUEST);
    let (dsl, conf) = gather_job();
    let (job_id, _) = run_to_success(&mut scheduler, &dsl, &conf, WITHIN).await;

    let gather = [("module", "Gather")];
    let mut expects = Vec::new();
    for party in [GUEST, HOSTS[0], HOSTS[1]] {
        // One task per party, started once and ended in success.
        expects.push(exactly(
            party,
            "fedflow_task_controller_tasks_started_total",
            &gather,
            1.0,
        ));
        expects.push(exactly(
            party,
            "fedflow_task_controller_tasks_ended_total",
            &[("module", "Gather"), ("status", "success")],
            1.0,
        ));
        expects.push(exactly(
            party,
            "fedflow_task_controller_task_run_seconds_count",
            &gather,
            1.0,
        ));
    }
    // The guest schedules the job: one more job in success, none left elsewhere, one wait.
    expects.push(exactly(
        GUEST,
        "fedflow_scheduler_jobs",
        &[("status", "success")],
        1.0,
    ));
    expects.push(exactly(
        GUEST,
        "fedflow_scheduler_jobs",
        &[("status", "running")],
        0.0,
    ));
    expects.push(exactly(
        GUEST,
        "fedflow_scheduler_jobs",
        &[("status", "waiting")],
        0.0,
    ));
    expects.push(exactly(
        GUEST,
        "fedflow_scheduler_queue_wait_seconds_count",
        &[],
        1.0,
    ));
    for host in HOSTS {
        expects.push(exactly(
            host,
            "fedflow_scheduler_jobs",
            &[("status", "success")],
            0.0,
        ));
        // Each host pushes its one value to the guest, which crosses the federation link.
        expects.push(exactly(
            host,
            "fedflow_gateway_data_plane_messages_total",
            &[("direction", "push")],
            1.0,
        ));
        expects.push(exactly(
            host,
            "fedflow_gateway_data_plane_messages_total",
            &[("direction", "sent")],
            1.0,
        ));
        expects.push(exactly(
            host,
            "fedflow_gateway_data_plane_messages_total",
            &[("direction", "pop")],
            0.0,
        ));
        expects.push(exactly(
            host,
            "fedflow_gateway_data_plane_messages_total",
            &[("direction", "received")],
            0.0,
        ));
        // The guest's scheduler created the job and started the task there ...
        expects.push(at_least(
            GUEST,
            "fedflow_gateway_party_calls_total",
            &[("method", "CreateJob"), ("party", host), ("code", "Ok")],
            1.0,
        ));
        expects.push(at_least(
            GUEST,
            "fedflow_gateway_party_calls_total",
            &[("method", "StartTask"), ("party", host), ("code", "Ok")],
            1.0,
        ));
        expects.push(at_least(
            host,
            "fedflow_gateway_party_calls_received_total",
            &[("method", "StartTask"), ("party", GUEST), ("code", "Ok")],
            1.0,
        ));
        // ... and the host's task-controller reported the task's end to it.
        expects.push(at_least(
            host,
            "fedflow_gateway_party_calls_total",
            &[
                ("method", "ReportTaskStatus"),
                ("party", GUEST),
                ("code", "Ok"),
            ],
            1.0,
        ));
        expects.push(at_least(
            host,
            "fedflow_gateway_party_call_duration_seconds_count",
            &[("method", "ReportTaskStatus"), ("party", GUEST)],
            1.0,
        ));
    }
    // The guest receives both values and pops them; it pushes nothing.
    expects.push(exactly(
        GUEST,
        "fedflow_gateway_data_plane_messages_total",
        &[("direction", "received")],
        2.0,
    ));
    expects.push(exactly(
        GUEST,
        "fedflow_gateway_data_plane_messages_total",
        &[("direction", "pop")],
        2.0,
    ));
    expects.push(exactly(
        GUEST,
        "fedflow_gateway_data_plane_messages_total",
        &[("direction", "push")],
        0.0,
    ));

    let after = eventually(
        "every party's metrics to show the job",
        Duration::from_secs(20),
        || {
            let (fed, before, expects) = (&fed, &before, &expects);
            async move {
                let after = scrape_all(fed).await;
                check(before, &after, expects).map(|()| after)
            }
        },
    )
    .await;

    // Bytes: what the hosts pushed is what they sent, the guest received and popped.
    let bytes = |party: &str, direction: &str| {
        delta(
            &before[party],
            &after[party],
            "fedflow_gateway_data_plane_bytes_total",
            &[("direction", direction)],
        )
    };
    let sent: f64 = HOSTS.iter().map(|h| bytes(h, "sent")).sum();
    assert!(sent > 0.0, "the hosts sent bytes");
    for host in HOSTS {
        assert_eq!(bytes(host, "push"), bytes(host, "sent"), "party {host}");
    }
    assert_eq!(
        bytes(GUEST, "received"),
        sent,
        "the guest received what the hosts sent"
    );
    assert_eq!(
        bytes(GUEST, "pop"),
        sent,
        "the guest popped what it received"
    );

    // Low cardinality: no label value names the job (nor its session).
    for (party, s) in &after {
        for (name, labels) in s.samples.keys() {
            for value in labels.values() {
                assert!(
                    !value.contains(&job_id),
                    "party {party}: {name} {labels:?} names the job"
                );
            }
        }
    }

    // Prometheus's own parser reads every endpoint, sample for sample as above.
    match parser_python() {
        Ok(python) => {
            for (party, s) in &after {
                let theirs = python_samples(&python, &s.text);
                assert_eq!(
                    theirs.len(),
                    s.samples.len(),
                    "party {party}: sample counts"
                );
                for (key, value) in &s.samples {
                    let other = theirs.get(key).unwrap_or_else(|| {
                        panic!("party {party}: prometheus_client lacks {key:?}")
                    });
                    assert!(
                        (other - value).abs() < 1e-9,
                        "party {party}: {key:?} {other} != {value}"
                    );
                }
            }
        }
        Err(why) => {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "no prometheus_client venv and FEDFLOW_REQUIRE_TOOLS is set: {why}"
            );
            eprintln!("SKIPPED the prometheus_client parse (no venv): {why}")
        }
    }
    fed.shutdown().await;
}

/// The metric names a PromQL expression uses (identifiers followed by `{`, `[`, `)` or the
/// end, that look like fedflow's or the process's).
fn queried_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            if word.starts_with("fedflow_") || word.starts_with("process_") {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    names
}

/// Prometheus's naming conventions: `fedflow_` or the standard `process_` prefix, snake case,
/// base units (`_seconds`, `_bytes`, never `_ms` or `_kb`), counters' samples in `_total`,
/// histograms in seconds or bytes, and labels that are not ids.
fn names_follow_the_conventions(s: &Scrape) -> Result<(), String> {
    for line in s.text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest
            .split_once(' ')
            .ok_or_else(|| format!("bad {line:?}"))?;
        if !(name.starts_with("fedflow_") || name.starts_with("process_")) {
            return Err(format!("{name}: neither fedflow_ nor process_"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!("{name}: not snake case"));
        }
        for bad in ["_ms", "_millis", "_kb", "_mb", "_total"] {
            if name.contains(bad) {
                return Err(format!(
                    "{name}: {bad} (base units; _total is the counter's sample suffix)"
                ));
            }
        }
        if kind == "histogram" && !(name.ends_with("_seconds") || name.ends_with("_bytes")) {
            return Err(format!("{name}: a histogram not in seconds or bytes"));
        }
    }
    for (name, labels) in s.samples.keys() {
        let kind = s
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .find(|(family, _)| {
                name.strip_prefix(family)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
            })
            .map(|(_, kind)| kind);
        if kind == Some("counter") && !name.ends_with("_total") {
            return Err(format!("counter sample {name} does not end in _total"));
        }
        for key in labels.keys() {
            if key.ends_with("_id") || key == "job" || key == "task" || key == "session" {
                return Err(format!("{name}: label {key} is an id"));
            }
        }
    }
    Ok(())
}

fn exprs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => into.push(e.clone()),
                    _ => exprs(v, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, into)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_metrics_fedflow_exports_which_follow_the_conventions() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/fedflow.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard exists");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut found = Vec::new();
    exprs(&dashboard, &mut found);
    assert!(found.len() >= 8, "the dashboard has panels: {found:?}");

    // What the parties export after a job (families show once they have a sample).
    let fed = TestFederation::start_with(&[GUEST, HOSTS[0], HOSTS[1]], |o| o.metrics = true).await;
    let mut scheduler = fed.scheduler(GUEST);
    let (dsl, conf) = gather_job();
    run_to_success(&mut scheduler, &dsl, &conf, WITHIN).await;
    let scrapes = scrape_registered(&fed).await;
    let mut exported = BTreeSet::new();
    for s in scrapes.values() {
        exported.extend(s.names());
        // A family is also exported when it has no sample yet: its # TYPE line names it.
        for line in s.text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                    continue;
                };
                match kind {
                    "counter" => exported.insert(format!("{name}_total")),
                    "histogram" => {
                        for suffix in ["_bucket", "_sum", "_count"] {
                            exported.insert(format!("{name}{suffix}"));
                        }
                        true
                    }
                    _ => exported.insert(name.to_owned()),
                };
            }
        }
    }
    for (party, s) in &scrapes {
        names_follow_the_conventions(s).unwrap_or_else(|e| panic!("party {party}: {e}"));
    }
    for expr in &found {
        let names = queried_names(expr);
        assert!(!names.is_empty(), "{expr:?} queries no fedflow metric");
        for name in names {
            assert!(
                exported.contains(&name),
                "the dashboard queries {name}, which fedflow does not export ({expr})"
            );
        }
    }
    fed.shutdown().await;
}

/// Kills the child when dropped (a failed assertion must not leave it running).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_binary_serves_its_metrics_on_metrics_listen() {
    let dir = TempDir::new("fedflow-metrics-binary");
    let port = || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let (grpc, metrics) = (port(), port());
    let db = fedflow_store::sqlite_url(&dir.path().join("job-controller.db"));
    let log = std::fs::File::create(dir.path().join("job-controller.log")).expect("log");
    let child = Command::new(bin("fedflow-job-controller"))
        .env("FEDFLOW_JOB_CONTROLLER__GRPC__LISTEN", grpc.to_string())
        .env(
            "FEDFLOW_JOB_CONTROLLER__METRICS__LISTEN",
            metrics.to_string(),
        )
        .env("FEDFLOW_JOB_CONTROLLER__DATABASE__URL", db)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("start fedflow-job-controller");
    let _child = Killed(child);
    let s = eventually(
        "the job-controller's metrics",
        Duration::from_secs(30),
        || async {
            let s = scrape(metrics).await?;
            if s.names().contains("fedflow_job_controller_outbox_depth") {
                Ok(s)
            } else {
                Err(s.text)
            }
        },
    )
    .await;
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "fedflow_job_controller_outbox_oldest_age_seconds",
    ] {
        assert!(s.names().contains(name), "no {name} in:\n{}", s.text);
    }
    names_follow_the_conventions(&s).expect("conventions");
}
