//! Parse: how fast `fedflow_core::dsl::parse` refuses hostile submissions (and takes a
//! legitimate one), in-process, so the figures are the parser's alone. Each input is made once
//! and parsed `--parse-runs` times; every refusal is checked to name its field.

use std::time::Instant;

use fedflow_core::dsl::{self, Limits};

use crate::Args;
use crate::measure::Results;

const CONF: &str = r#"{"dsl_version": 2, "initiator": {"role": "guest", "party_id": 9999},
    "role": {"guest": [9999], "host": [10000], "arbiter": [10001]}}"#;

/// `n` components, each `{"module": "Sum"}` plus `extra`.
fn components(n: usize, extra: impl Fn(usize) -> String) -> String {
    let body: Vec<String> = (0..n)
        .map(|i| format!(r#""c{i}": {{"module": "Sum"{}}}"#, extra(i)))
        .collect();
    format!(r#"{{"components": {{{}}}}}"#, body.join(","))
}

/// (sample name, DSL, conf, what the error must contain; empty: must be accepted).
fn cases() -> Vec<(&'static str, String, String, &'static str)> {
    let conf = CONF.to_owned();
    let deep = "[".repeat(100_000);
    // 440 components, each taking every earlier one's output: about 100,000 references.
    let dense = components(440, |i| {
        let refs: Vec<String> = (0..i).map(|j| format!(r#""c{j}.o""#)).collect();
        format!(
            r#", "input": {{"data": {{"data": [{}]}}}}, "output": {{"data": ["o"]}}"#,
            refs.join(",")
        )
    });
    // 64 guests and 500 components, each guest with its own value for every component:
    // 32,000 parameter sections (about 700 KB) to resolve and check.
    let guests: Vec<String> = (0..64).map(|i| (1000 + i).to_string()).collect();
    let by_index: Vec<String> = (0..64)
        .map(|g| {
            let params: Vec<String> = (0..500)
                .map(|c| format!(r#""c{c}": {{"value": {g}}}"#))
                .collect();
            format!(r#""{g}": {{{}}}"#, params.join(","))
        })
        .collect();
    let params_conf = format!(
        r#"{{"initiator": {{"role": "guest", "party_id": 1000}}, "role": {{"guest": [{}]}},
            "component_parameters": {{"role": {{"guest": {{{}}}}}}}}}"#,
        guests.join(","),
        by_index.join(",")
    );
    // A 400 KB role selector ("0|0|...") that every party's plans would read.
    let selector = vec!["0"; 200_000].join("|");
    let selector_conf = format!(
        r#"{{"initiator": {{"role": "guest", "party_id": 1000}}, "role": {{"guest": [{}]}},
            "component_parameters": {{"role": {{"guest": {{"{selector}": {{}}}}}}}}}}"#,
        guests.join(",")
    );
    vec![
        (
            "parse.accept.example_diamond",
            include_str!("../../../examples/sum-diamond/dsl.json").to_owned(),
            include_str!("../../../examples/sum-diamond/conf.json").to_owned(),
            "",
        ),
        (
            "parse.reject.dsl_5mib",
            format!(
                r#"{{"components": {{"a": {{"module": "Sum", "pad": "{}"}}}}}}"#,
                "x".repeat(5 << 20)
            ),
            conf.clone(),
            "dsl: too large",
        ),
        (
            "parse.reject.components_10000",
            components(10_000, |_| String::new()),
            conf.clone(),
            "dsl.components: 10000 components",
        ),
        (
            "parse.reject.dsl_nested_100000",
            deep.clone(),
            conf.clone(),
            "dsl: nested too deeply",
        ),
        (
            "parse.reject.conf_nested_100000",
            components(1, |_| String::new()),
            deep,
            "runtime_conf: nested too deeply",
        ),
        (
            "parse.reject.parties_120000",
            components(1, |_| String::new()),
            format!(
                r#"{{"initiator": {{"role": "guest", "party_id": 100000}}, "role": {{"guest": [{}]}}}}"#,
                (0..120_000)
                    .map(|i| (100_000 + i).to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "runtime_conf.role: 120000 participants",
        ),
        ("parse.accept.dense_dag_440", dense, conf.clone(), ""),
        (
            "parse.reject.selector_400kb",
            components(500, |_| String::new()),
            selector_conf,
            "party index 0 is listed twice",
        ),
        (
            "parse.accept.params_64x500",
            components(500, |_| String::new()),
            params_conf,
            "",
        ),
    ]
}

pub fn run(args: &Args, r: &mut Results) {
    let runs = args.parse_runs.max(1);
    eprintln!("fedflow-bench: parse ({runs} runs per input)");
    let limits = Limits::default();
    for (name, dsl, conf, refusal) in cases() {
        for _ in 0..runs {
            let start = Instant::now();
            let outcome = dsl::parse(&dsl, &conf, &limits);
            let took = start.elapsed();
            match (outcome, refusal) {
                (Ok(_), "") => {}
                (Err(e), want) if !want.is_empty() && e.to_string().contains(want) => {}
                (Ok(_), want) => panic!("{name}: accepted, expected {want:?}"),
                (Err(e), want) => panic!("{name}: {e}, expected {want:?}"),
            }
            r.samples(name).push_ms(took);
        }
    }
}
