//! Samples (durations, rates, sizes), their summaries, and the results table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// A set of measurements of one figure, in milliseconds (or another unit).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<f64>,
}

impl Samples {
    pub fn push_ms(&mut self, d: Duration) {
        self.values.push(d.as_secs_f64() * 1000.0);
    }

    /// A measurement in another unit than milliseconds (a rate, a ratio).
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
    }

    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn quantile(&self, q: f64) -> f64 {
        let v = self.sorted();
        if v.is_empty() {
            return f64::NAN;
        }
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1]
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().copied().unwrap_or(f64::NAN)
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "n": self.len(),
            "min": self.min(),
            "p50": self.quantile(0.5),
            "p99": self.quantile(0.99),
            "max": self.max(),
        })
    }
}

/// Everything one run measured.
#[derive(Debug, Default)]
pub struct Results {
    /// Distributions, by figure name.
    pub samples: BTreeMap<&'static str, Samples>,
    /// Single values (rates, sizes), by figure name.
    pub values: BTreeMap<String, f64>,
    /// The rows of the table: figure, target, fedflow's value (text), FATE-Flow's, met?
    pub rows: Vec<(String, String, String, String, Option<bool>)>,
    /// The control-plane targets, printed after the table: figure, target, value, met?
    pub control: Vec<(String, String, String, Option<bool>)>,
}

impl Results {
    pub fn samples(&mut self, name: &'static str) -> &mut Samples {
        self.samples.entry(name).or_default()
    }

    pub fn row(
        &mut self,
        figure: &str,
        target: &str,
        value: String,
        fate: &str,
        met: Option<bool>,
    ) {
        self.rows
            .push((figure.into(), target.into(), value, fate.into(), met));
    }

    pub fn to_json(&self) -> Value {
        json!({
            "samples": self.samples.iter().map(|(k, s)| (k.to_string(), s.to_json())).collect::<serde_json::Map<_, _>>(),
            "values": self.values,
            "table": self.rows.iter().map(|(f, t, v, fate, met)| json!({
                "figure": f, "target": t, "fedflow": v, "fate_flow": fate, "met": met,
            })).collect::<Vec<_>>(),
            "control": self.control.iter().map(|(f, t, v, met)| json!({
                "figure": f, "target": t, "fedflow": v, "met": met,
            })).collect::<Vec<_>>(),
        })
    }
}

pub fn print_table(results: &Results) {
    println!("\n== distributions (ms): n / min / p50 / p99 / max");
    for (name, s) in &results.samples {
        println!(
            "{name:<44} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.len(),
            s.min(),
            s.quantile(0.5),
            s.quantile(0.99),
            s.max()
        );
    }
    println!("\n== values");
    for (name, v) in &results.values {
        println!("{name:<44} {v:>12.2}");
    }
    println!("\n== targets");
    println!(
        "| {:<52} | {:<24} | {:<30} | {:<28} | met |",
        "figure", "target", "fedflow", "FATE-Flow 2.2 here"
    );
    for (figure, target, value, fate, met) in &results.rows {
        let met = match met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!("| {figure:<52} | {target:<24} | {value:<30} | {fate:<28} | {met:<3} |");
    }
    if results.control.is_empty() {
        return;
    }
    println!("\n== control-plane targets");
    println!(
        "| {:<56} | {:<16} | {:<44} | met |",
        "figure", "target", "fedflow"
    );
    for (figure, target, value, met) in &results.control {
        let met = match met {
            Some(true) => "met",
            Some(false) => "not met",
            None => "-",
        };
        println!("| {figure:<56} | {target:<16} | {value:<44} | {met} |");
    }
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 2..].to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // utime and stime are fields 14 and 15 (index 11 and 12 after the state).
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}
