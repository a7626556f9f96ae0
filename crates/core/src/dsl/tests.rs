//! Tests of the DSL/conf parser: accepted submissions, every refusal naming its field, and
//! the bounds on size, nesting and counts.

use super::*;
use serde_json::json;

fn diamond_dsl() -> Value {
    json!({"components": {
        "a": {"module": "Sum", "output": {"data": ["out"]}},
        "b": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "c": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "d": {"module": "Sum", "input": {"data": {"data": ["b.out", "c.out"]}}, "output": {"data": ["out"]}}
    }})
}

fn conf() -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
        "job_parameters": {"common": {"task_cores": 2}, "role": {"host": {"0": {"task_cores": 1}}}},
        "component_parameters": {
            "common": {"a": {"value": 1}},
            "role": {"host": {"0": {"b": {"value": 5, "need_run": false}}},
                     "guest": {"all": {"a": {"value": 7}}}}
        }
    })
}

fn parse_values(dsl: &Value, conf: &Value) -> Result<JobSpec, SpecError> {
    parse(&dsl.to_string(), &conf.to_string(), &Limits::default())
}

#[test]
fn a_fate_style_submission_parses_in_topological_order() {
    let spec = parse_values(&diamond_dsl(), &conf()).expect("valid");
    let names: Vec<&str> = spec.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(spec.initiator.party_id, "9999");
    assert_eq!(spec.participants().len(), 3);
    let host = Participant {
        role: "host".into(),
        party_id: "10000".into(),
    };
    assert_eq!(spec.job_params(&host).expect("params").task_cores, 1);
    let plans = spec.task_plans(&host).expect("plans");
    assert_eq!(plans[0].params["value"], json!(1));
    assert!(!plans[1].need_run);
    let guest = spec.initiator.clone();
    assert_eq!(
        spec.task_plans(&guest).expect("plans")[0].params["value"],
        json!(7)
    );
    assert_eq!(spec.job_params(&guest).expect("params").task_cores, 2);
}

#[test]
fn downstream_closure_is_transitive() {
    let spec = parse_values(&diamond_dsl(), &conf()).expect("valid");
    let closure = spec.downstream_closure(&["b".into()]);
    assert_eq!(closure.into_iter().collect::<Vec<_>>(), ["b", "d"]);
    assert_eq!(spec.downstream_closure(&["a".into()]).len(), 4);
}

fn rejected(dsl: Value, conf: Value) -> SpecError {
    parse_values(&dsl, &conf).expect_err("must be rejected")
}

#[test]
fn every_rejection_names_the_field() {
    let mut dsl = diamond_dsl();
    dsl["components"]["d"]["input"]["data"]["data"] = json!(["x.out"]);
    let e = rejected(dsl, conf());
    assert!(
        e.to_string().contains("dsl.components.d.input.data.data"),
        "{e}"
    );
    assert!(
        e.message.contains("unknown upstream component \"x\""),
        "{e}"
    );

    let mut dsl = diamond_dsl();
    dsl["components"]["d"]["input"]["data"]["data"] = json!(["b.nope"]);
    let e = rejected(dsl, conf());
    assert!(
        e.message.contains("declares no data output \"nope\""),
        "{e}"
    );

    let mut dsl = diamond_dsl();
    dsl["components"]["a"]["input"] = json!({"data": {"data": ["d.out"]}});
    let e = rejected(dsl, conf());
    assert_eq!(e.field, "dsl.components");
    assert!(e.message.starts_with("cycle "), "{e}");
    for name in ["a", "b", "d"] {
        assert!(e.message.contains(name), "{e}");
    }

    let mut dsl = diamond_dsl();
    dsl["components"]["a"]["module"] = json!("HeteroSecureBoost");
    let e = rejected(dsl, conf());
    assert_eq!(e.field, "dsl.components.a.module");

    let mut dsl = diamond_dsl();
    dsl["components"]["bad name"] = json!({"module": "Sum"});
    let e = rejected(dsl, conf());
    assert!(e.field.contains("bad name"), "{e}");

    let mut c = conf();
    c["role"]["host"] = json!([]);
    let e = rejected(diamond_dsl(), c);
    assert_eq!(e.field, "runtime_conf.role.host");
    assert_eq!(e.message, "no parties");

    let mut c = conf();
    c["initiator"]["party_id"] = json!(1);
    let e = rejected(diamond_dsl(), c);
    assert_eq!(e.field, "runtime_conf.initiator");

    let mut c = conf();
    c["component_parameters"]["common"]["a"] = json!({"value": "one"});
    let e = rejected(diamond_dsl(), c);
    assert!(e.message.contains("parameter value"), "{e}");
}

#[test]
fn duplicate_component_names_are_refused() {
    let text = r#"{"components": {"a": {"module": "Sum"}, "a": {"module": "Sleep"}}}"#;
    let e = parse(text, &conf().to_string(), &Limits::default()).expect_err("duplicate");
    assert_eq!(e.field, "dsl");
    assert!(e.message.contains("duplicate key \"components.a\""), "{e}");
}

#[test]
fn oversized_input_is_refused() {
    let limits = Limits {
        max_dsl_bytes: 64,
        ..Limits::default()
    };
    let e = parse(&diamond_dsl().to_string(), &conf().to_string(), &limits).expect_err("too large");
    assert_eq!(e.field, "dsl");
    assert!(e.message.starts_with("too large"), "{e}");
}

/// `{"components": {"c0": {"module": "Sum"}, ...}}` with `n` components.
fn dsl_with_components(n: usize) -> String {
    let components: Vec<String> = (0..n)
        .map(|i| format!(r#""c{i}": {{"module": "Sum"}}"#))
        .collect();
    format!(r#"{{"components": {{{}}}}}"#, components.join(", "))
}

#[test]
fn a_5_mib_dsl_is_refused_as_too_large_before_it_is_read() {
    let dsl = format!(
        r#"{{"components": {{"a": {{"module": "Sum", "pad": "{}"}}}}}}"#,
        "x".repeat(5 << 20)
    );
    let e = parse(&dsl, &conf().to_string(), &Limits::default()).expect_err("5 MiB");
    assert_eq!(e.field, "dsl");
    assert!(e.message.starts_with("too large"), "{e}");
    assert!(e.message.contains("at most 1048576"), "{e}");
    // The same for the conf.
    let e = parse(&diamond_dsl().to_string(), &dsl, &Limits::default()).expect_err("5 MiB");
    assert_eq!(e.field, "runtime_conf");
    assert!(e.message.starts_with("too large"), "{e}");
}

#[test]
fn ten_thousand_components_are_refused_naming_components() {
    let dsl = dsl_with_components(10_000);
    assert!(
        dsl.len() < Limits::default().max_dsl_bytes,
        "under the size limit"
    );
    let e = parse(&dsl, &conf().to_string(), &Limits::default()).expect_err("10,000");
    assert_eq!(e.field, "dsl.components");
    assert_eq!(e.message, "10000 components, at most 500");
    // The limit itself is accepted.
    let conf = r#"{"initiator": {"role": "guest", "party_id": 9999}, "role": {"guest": [9999]}}"#;
    let spec = parse(&dsl_with_components(500), conf, &Limits::default()).expect("500");
    assert_eq!(spec.components.len(), 500);
}

#[test]
fn deep_nesting_is_refused_naming_the_document_without_overflowing_the_stack() {
    let deep_arrays = "[".repeat(100_000);
    let deep_objects = r#"{"a":"#.repeat(100_000);
    let ok_conf = conf().to_string();
    let ok_dsl = diamond_dsl().to_string();
    let in_component = format!(
        r#"{{"components": {{"a": {{"module": "Sum", "output": {}}}}}}}"#,
        deep_arrays
    );
    let in_parameters = format!(
        r#"{{"initiator": {{"role": "guest", "party_id": 9999}}, "role": {{"guest": [9999]}},
            "component_parameters": {{"common": {{"a": {{"value": {deep_objects}"#
    );
    let cases = [
        ("dsl", deep_arrays.as_str(), ok_conf.as_str()),
        ("dsl", deep_objects.as_str(), ok_conf.as_str()),
        ("dsl", in_component.as_str(), ok_conf.as_str()),
        ("runtime_conf", ok_dsl.as_str(), deep_arrays.as_str()),
        ("runtime_conf", ok_dsl.as_str(), deep_objects.as_str()),
        ("runtime_conf", ok_dsl.as_str(), in_parameters.as_str()),
    ];
    for (field, dsl, conf) in cases {
        let e = parse(dsl, conf, &Limits::default()).expect_err("too deep");
        assert_eq!(e.field, field, "{e}");
        assert!(
            e.message
                .starts_with("nested too deeply: more than 32 levels"),
            "{e}"
        );
    }
}

#[test]
fn nesting_up_to_the_depth_limit_is_read() {
    let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(parse_json_strict("x", &nested(MAX_DEPTH)).is_ok());
    let e = parse_json_strict("x", &nested(MAX_DEPTH + 1)).expect_err("one too deep");
    assert_eq!(e.field, "x");
    assert!(e.message.starts_with("nested too deeply"), "{e}");
}

#[test]
fn a_duplicate_key_is_named_by_its_full_path() {
    let e = parse_json_strict("dsl", r#"{"a": [{"b": 1}, {"c": {"b": 1, "b": 2}}]}"#)
        .expect_err("duplicate");
    assert!(e.message.contains(r#"duplicate key "a[1].c.b""#), "{e}");
    let e = parse_json_strict("dsl", r#"[{"k": 1, "k": 2}]"#).expect_err("duplicate");
    assert!(e.message.contains(r#"duplicate key "[0].k""#), "{e}");
}

#[test]
fn errors_quote_at_most_a_bounded_part_of_the_input() {
    let long = "é".repeat(300_000);
    let mut dsl = diamond_dsl();
    dsl["components"][&long] = json!({"module": "Sum"});
    let e = rejected(dsl, conf());
    assert!(e.field.starts_with("dsl.components.éé"), "{e}");
    assert!(e.field.ends_with("..."), "{e}");
    assert!(e.field.len() <= MAX_ERROR_TEXT);
    let mut c = conf();
    c["component_parameters"]["role"]["host"] = json!({ "0|".repeat(100_000): {} });
    let e = rejected(diamond_dsl(), c);
    assert!(e.field.len() <= MAX_ERROR_TEXT, "{}", e.field.len());
    assert_eq!(e.message, "party index 0 is listed twice");
}

#[test]
fn a_long_party_list_is_refused_by_its_count() {
    let parties: Vec<String> = (0..120_000).map(|i| (100_000 + i).to_string()).collect();
    let conf = format!(
        r#"{{"initiator": {{"role": "guest", "party_id": 100000}}, "role": {{"guest": [{}]}}}}"#,
        parties.join(",")
    );
    let e = parse(&diamond_dsl().to_string(), &conf, &Limits::default()).expect_err("count");
    assert_eq!(e.field, "runtime_conf.role");
    assert_eq!(e.message, "120000 participants, at most 64");
}

#[test]
fn role_sections_merge_all_first_then_by_selector() {
    let conf = json!({
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999, 9998]},
        "component_parameters": {
            "common": {"a": {"value": 0}, "b": {"value": 10}},
            "role": {"guest": {
                "1": {"a": {"value": 3}},
                "all": {"a": {"value": 1}, "b": {"need_run": false}},
                "0|1": {"a": {"value": 2}}
            }}
        }
    });
    let spec = parse_values(&diamond_dsl(), &conf).expect("valid");
    let plans = |party: &str| {
        let who = Participant {
            role: "guest".into(),
            party_id: party.into(),
        };
        spec.task_plans(&who).expect("plans")
    };
    let (first, second) = (plans("9999"), plans("9998"));
    assert_eq!(first[0].params["value"], json!(2));
    assert_eq!(second[0].params["value"], json!(3));
    assert_eq!(
        second[1].params,
        *json!({"value": 10, "need_run": false})
            .as_object()
            .expect("object")
    );
    assert!(!second[1].need_run);
    assert!(first[2].params.is_empty());
    let mut bad = conf.clone();
    bad["component_parameters"]["role"]["guest"]["0|2"] = json!({});
    let e = rejected(diamond_dsl(), bad);
    assert_eq!(e.field, "component_parameters.role.guest.0|2");
    assert!(e.message.contains("party index 2 is out of range"), "{e}");
    let mut bad = conf.clone();
    bad["component_parameters"]["role"]["guest"]["1| 1"] = json!({});
    let e = rejected(diamond_dsl(), bad);
    assert_eq!(e.field, "component_parameters.role.guest.1| 1");
    assert_eq!(e.message, "party index 1 is listed twice");
}

#[test]
fn a_component_with_a_provider_names_a_registered_module_whose_parameters_it_checks() {
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999]},
        "component_parameters": {"common": {"lr": {"max_iter": 10, "anything": [1]}}}
    });
    let dsl = |module: &str, provider: Value| json!({"components": {"lr": {"module": module, "provider": provider}}});
    let spec = parse_values(&dsl("HeteroLR", json!("fate@2.2.0")), &conf).expect("valid");
    assert_eq!(spec.components[0].provider.as_deref(), Some("fate@2.2.0"));
    // Without a provider (or with fedflow's own), the module must be built in.
    for provider in [Value::Null, json!("fedflow")] {
        let err = parse_values(&dsl("HeteroLR", provider), &conf).expect_err("unknown");
        assert_eq!(err.field, "dsl.components.lr.module", "{err}");
    }
    let err = parse_values(&dsl("../run", json!("local@1")), &conf).expect_err("a path");
    assert_eq!(err.field, "dsl.components.lr.module", "{err}");
    let err = parse_values(&dsl("HeteroLR", json!(3)), &conf).expect_err("not a name");
    assert_eq!(err.field, "dsl.components.lr.provider", "{err}");
}
