//! What a job costs in messages and store round trips: the party calls every gateway carried
//! (`fedflow_gateway_party_calls_total`, the calls this party's services sent through it) and
//! the statements every service sent to its store (`…_store_statements_total`), summed over a
//! federation started with `observe` (every service serving its metrics), read before and after
//! a workload.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fedflow_tests::process::ProcessFederation;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Totals over every service of a federation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Counts {
    pub(super) party_calls: f64,
    /// The party calls by method.
    pub(super) by_method: BTreeMap<String, f64>,
    pub(super) statements: f64,
    /// The statements by store (`scheduler`, `job_controller`, `task_controller`).
    pub(super) by_store: BTreeMap<String, f64>,
}

impl Counts {
    /// `self - before`, per job of `jobs`, less what the federation does idle (`idle`
    /// statements a second, over the `elapsed` between the two reads: the outboxes' and the
    /// other loops' periodic reads).
    pub(super) fn per_job(
        &self,
        before: &Counts,
        jobs: usize,
        idle: f64,
        elapsed: Duration,
    ) -> Counts {
        let n = jobs.max(1) as f64;
        Counts {
            party_calls: (self.party_calls - before.party_calls) / n,
            by_method: self
                .by_method
                .iter()
                .map(|(m, v)| {
                    (
                        m.clone(),
                        (v - before.by_method.get(m).copied().unwrap_or(0.0)) / n,
                    )
                })
                .filter(|(_, v)| *v > 0.0)
                .collect(),
            statements: (self.statements - before.statements - idle * elapsed.as_secs_f64()) / n,
            // Idle statements not taken off: these say where a job's statements go.
            by_store: self
                .by_store
                .iter()
                .map(|(m, v)| {
                    (
                        m.clone(),
                        (v - before.by_store.get(m).copied().unwrap_or(0.0)) / n,
                    )
                })
                .collect(),
        }
    }

    /// Records these per-job counts as `{key}.party_calls_per_job` (and `.{method}`) and
    /// `{key}.statements_per_job`.
    pub(super) fn record(&self, r: &mut crate::measure::Results, key: &str) {
        r.values
            .insert(format!("{key}.party_calls_per_job"), self.party_calls);
        for (method, n) in &self.by_method {
            r.values
                .insert(format!("{key}.party_calls_per_job.{method}"), *n);
        }
        r.values
            .insert(format!("{key}.statements_per_job"), self.statements);
        for (store, n) in &self.by_store {
            r.values
                .insert(format!("{key}.statements_per_job_with_idle.{store}"), *n);
        }
    }
}

/// What a federation does with nothing to do, a second: statements and service CPU seconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Idle {
    pub(super) statements_per_s: f64,
    pub(super) cpu_per_s: f64,
}

/// Measures [`Idle`] over a 3-second window.
pub(super) async fn idle(fed: &ProcessFederation) -> Idle {
    let before = settled(fed).await;
    let (start, cpu) = (Instant::now(), super::footprint::total_cpu(fed));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = read(fed).await;
    let cpu = super::footprint::total_cpu(fed) - cpu;
    let elapsed = start.elapsed().as_secs_f64();
    Idle {
        statements_per_s: (after.statements - before.statements) / elapsed,
        cpu_per_s: cpu / elapsed,
    }
}

/// Reads every metrics endpoint of `fed` once.
pub(super) async fn read(fed: &ProcessFederation) -> Counts {
    let mut counts = Counts::default();
    for party in &fed.parties {
        assert!(
            !party.metrics.is_empty(),
            "the federation was started without metrics endpoints (observe)"
        );
        for addr in party.metrics.values() {
            let text = get_metrics(addr)
                .await
                .unwrap_or_else(|e| panic!("GET http://{addr}/metrics: {e}"));
            let parsed = parse(&text);
            counts.party_calls += parsed.party_calls;
            counts.statements += parsed.statements;
            for (method, n) in parsed.by_method {
                *counts.by_method.entry(method).or_default() += n;
            }
            for (store, n) in parsed.by_store {
                *counts.by_store.entry(store).or_default() += n;
            }
        }
    }
    counts
}

/// Reads the counters until two reads 300 ms apart agree (what a job sends after it ended, its
/// end syncs and display updates, counts too), for at most 30 s.
pub(super) async fn settled(fed: &ProcessFederation) -> Counts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = read(fed).await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = read(fed).await;
        if now.party_calls == last.party_calls || tokio::time::Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// Sums the two counters in one OpenMetrics text.
fn parse(text: &str) -> Counts {
    let mut counts = Counts::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        if name == "fedflow_gateway_party_calls_total" {
            counts.party_calls += value;
            let method = line
                .split("method=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("other");
            *counts.by_method.entry(method.to_owned()).or_default() += value;
        } else if let Some(store) = name
            .strip_suffix("_store_statements_total")
            .map(|n| n.trim_start_matches("fedflow_"))
        {
            counts.statements += value;
            *counts.by_store.entry(store.to_owned()).or_default() += value;
        }
    }
    counts
}

/// One HTTP/1.1 GET of `/metrics`: the body.
async fn get_metrics(addr: &str) -> Result<String, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {} bytes", reply.len()))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {:?}", head.lines().next()));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counters_are_summed_over_their_labels_and_the_rest_is_ignored() {
        let text = "# TYPE fedflow_gateway_party_calls counter\n\
            fedflow_gateway_party_calls_total{service=\"s\",method=\"StartTask\",party=\"10000\",code=\"OK\"} 3\n\
            fedflow_gateway_party_calls_total{service=\"s\",method=\"CreateJob\",party=\"10001\",code=\"OK\"} 4\n\
            fedflow_gateway_party_calls_received_total{service=\"s\",method=\"X\",party=\"1\",code=\"OK\"} 100\n\
            fedflow_scheduler_store_statements_total 10\n\
            fedflow_task_controller_store_statements_total 5\n\
            # EOF\n";
        let counts = parse(text);
        assert_eq!(counts.party_calls, 7.0);
        assert_eq!(counts.statements, 15.0);
        assert_eq!(
            counts.by_method,
            [("CreateJob".to_owned(), 4.0), ("StartTask".to_owned(), 3.0)].into()
        );
    }
}
