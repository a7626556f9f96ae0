//! Tests of FATE 2.x DAGs: the committed example (`examples/fate-lr/train.yaml`) and every
//! refusal, each naming its field.

use super::*;
use serde_json::json;

/// `examples/fate-lr/train.yaml`, as JSON (what the CLI sends).
fn example() -> Value {
    serde_norway::from_str(include_str!("../../../../examples/fate-lr/train.yaml"))
        .expect("the example is YAML")
}

fn parse_dag(dag: &Value) -> Result<JobSpec, SpecError> {
    parse(&dag.to_string(), "", &Limits::default())
}

fn who(role: &str, party_id: &str) -> Participant {
    Participant {
        role: role.into(),
        party_id: party_id.into(),
    }
}

/// The plan of `task` for `who`, with its FATE task description.
fn plan(spec: &JobSpec, who: &Participant, task: &str) -> (TaskPlan, crate::fate::FateTask) {
    let plan = spec
        .task_plans(who)
        .expect("plans")
        .into_iter()
        .find(|p| p.component == task)
        .expect("the task has a plan");
    let fate_task = crate::fate::FateTask::from_params(&plan.params).expect("a FATE task");
    (plan, fate_task)
}

/// `dag` is refused; the error names `field` and says `message`.
fn refused(dag: &Value, field: &str, message: &str) {
    let e = parse_dag(dag).expect_err("must be refused");
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(message), "{e} does not say {message:?}");
}

#[test]
fn the_example_parses_in_topological_order() {
    let spec = parse_dag(&example()).expect("valid");
    let names: Vec<&str> = spec.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["reader_0", "psi_0", "lr_0", "evaluation_0"]);
    let modules: Vec<&str> = spec.components.iter().map(|c| c.module.as_str()).collect();
    assert_eq!(
        modules,
        [
            "fate:reader",
            "fate:psi",
            "fate:coordinated_lr",
            "fate:evaluation"
        ]
    );
    assert!(
        spec.components
            .iter()
            .all(|c| c.provider.as_deref() == Some("fate"))
    );
    let lr = spec.component("lr_0").expect("lr_0");
    assert_eq!(lr.upstream, ["psi_0"]);
    assert_eq!(
        lr.inputs,
        [Input {
            kind: "data".into(),
            key: "train_data".into(),
            component: "psi_0".into(),
            output: "output_data".into(),
        }]
    );
    assert_eq!(spec.initiator, who("guest", "9999"));
    assert_eq!(spec.roles["guest"], ["9999"]);
    assert_eq!(spec.roles["host"], ["10000"]);
    assert_eq!(spec.roles["arbiter"], ["10000"]);
    assert_eq!(spec.participants().len(), 3);
    assert_eq!(spec.conf, json!({}));
    assert!(spec.dsl.get("dag").is_some());
    let params = spec.job_params(&who("host", "10000")).expect("params");
    assert_eq!(params.auto_retries, 1);
    assert_eq!(params.task_cores, 4);
    assert_eq!(
        spec.downstream_closure(&["psi_0".into()]).len(),
        3,
        "psi_0, lr_0, evaluation_0"
    );
}

#[test]
fn each_party_runs_its_own_tasks_at_their_stages() {
    let spec = parse_dag(&example()).expect("valid");
    let guest = who("guest", "9999");
    let host = who("host", "10000");
    let arbiter = who("arbiter", "10000");
    let runs = |w: &Participant| -> Vec<bool> {
        spec.task_plans(w)
            .expect("plans")
            .iter()
            .map(|p| p.need_run)
            .collect()
    };
    assert_eq!(runs(&guest), [true, true, true, true]);
    assert_eq!(runs(&host), [true, true, true, false]);
    assert_eq!(runs(&arbiter), [false, false, true, false]);
    for w in [&guest, &host] {
        let stages: Vec<String> = ["reader_0", "psi_0", "lr_0", "evaluation_0"]
            .iter()
            .map(|t| plan(&spec, w, t).1.stage)
            .collect();
        assert_eq!(stages, ["default", "default", "train", "default"], "{w}");
    }
    let (lr, task) = plan(&spec, &arbiter, "lr_0");
    assert_eq!(lr.module, "fate:coordinated_lr");
    assert_eq!(lr.upstream, ["psi_0"]);
    assert_eq!(task.stage, "train");
    assert!(task.inputs.is_empty(), "the arbiter has no train_data");
    assert_eq!(task.parameters["epochs"], json!(10));
    let parties: Vec<(String, String)> = task
        .parties
        .iter()
        .map(|p| (p.role.clone(), p.party_id.clone()))
        .collect();
    assert_eq!(
        parties,
        [
            ("arbiter".to_owned(), "10000".to_owned()),
            ("guest".to_owned(), "9999".to_owned()),
            ("host".to_owned(), "10000".to_owned()),
        ]
    );
    // A participant that does not run the task still gets its description.
    let (psi, task) = plan(&spec, &arbiter, "psi_0");
    assert!(!psi.need_run);
    assert_eq!(task.component, "psi");
    assert_eq!(task.parties.len(), 2);
}

#[test]
fn party_tasks_override_the_parameters_of_their_parties() {
    let spec = parse_dag(&example()).expect("valid");
    let name = |w: &Participant| plan(&spec, w, "reader_0").1.parameters["name"].clone();
    assert_eq!(name(&who("guest", "9999")), json!("breast_hetero_guest"));
    assert_eq!(name(&who("host", "10000")), json!("breast_hetero_host"));
    let (_, reader) = plan(&spec, &who("arbiter", "10000"), "reader_0");
    assert!(reader.parameters.is_empty(), "{:?}", reader.parameters);
    // Deep-merged over the task's own parameters.
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["parameters"]["optimizer"]["alpha"] = json!(0.5);
    dag["dag"]["party_tasks"]["host_10000"]["tasks"]["lr_0"] =
        json!({"parameters": {"optimizer": {"penalty": "l1"}}});
    let spec = parse_dag(&dag).expect("valid");
    let host = plan(&spec, &who("host", "10000"), "lr_0").1.parameters;
    assert_eq!(host["optimizer"]["penalty"], json!("l1"));
    assert_eq!(host["optimizer"]["alpha"], json!(0.5));
    assert_eq!(host["optimizer"]["method"], json!("SGD"));
    let guest = plan(&spec, &who("guest", "9999"), "lr_0").1.parameters;
    assert_eq!(guest["optimizer"]["penalty"], json!("l2"));
}

#[test]
fn inputs_carry_their_slot_kind_and_sources() {
    let spec = parse_dag(&example()).expect("valid");
    let guest = who("guest", "9999");
    let (_, lr) = plan(&spec, &guest, "lr_0");
    let train = &lr.inputs["train_data"];
    assert_eq!(train.kind, "data");
    assert!(!train.multi);
    assert_eq!(train.sources.len(), 1);
    assert_eq!(train.sources[0].producer_task, "psi_0");
    assert_eq!(train.sources[0].output_artifact_key, "output_data");
    let (_, eval) = plan(&spec, &guest, "evaluation_0");
    let datas = &eval.inputs["input_datas"];
    assert!(datas.multi);
    assert_eq!(datas.sources[0].producer_task, "lr_0");
    assert_eq!(datas.sources[0].output_artifact_key, "train_output_data");
    assert_eq!(eval.parameters["default_eval_setting"], json!("binary"));
    let (_, reader) = plan(&spec, &guest, "reader_0");
    assert!(reader.inputs.is_empty());
}

#[test]
fn roles_a_component_does_not_serve_are_left_out_of_defaulted_parties() {
    let mut dag = example();
    let psi = dag["dag"]["tasks"]["psi_0"].as_object_mut().expect("psi_0");
    psi.remove("parties");
    let spec = parse_dag(&dag).expect("psi is left out on the arbiter");
    let (plan, task) = plan(&spec, &who("arbiter", "10000"), "psi_0");
    assert!(!plan.need_run);
    assert!(task.parties.iter().all(|p| p.role != "arbiter"));
    assert_eq!(task.parties.len(), 2);
}

#[test]
fn the_initiator_can_be_chosen_in_dag_conf() {
    let mut dag = example();
    dag["dag"]["conf"]["initiator_party_id"] = json!("10000");
    assert_eq!(
        parse_dag(&dag).expect("valid").initiator,
        who("host", "10000")
    );
    dag["dag"]["conf"]["initiator_party_id"] = json!(1234);
    refused(&dag, "dag.conf.initiator_party_id", "not among dag.parties");
}

#[test]
fn unknown_conf_keys_are_kept_and_job_parameters_are_read_from_dag_conf() {
    let mut dag = example();
    dag["dag"]["conf"] = json!({
        "task_cores": 2, "priority": 3, "model_id": "m", "model_version": "0",
        "task": {"engine_run": {"cores": 1}}, "computing_partitions": 8, "sync_type": "poll"
    });
    let spec = parse_dag(&dag).expect("valid");
    assert_eq!(spec.priority(), 3);
    assert_eq!(
        spec.job_params(&who("guest", "9999"))
            .expect("params")
            .task_cores,
        2
    );
    dag["dag"]["conf"]["task_cores"] = json!("many");
    refused(
        &dag,
        "dag.conf.task_cores (for arbiter 10000)",
        "whole number",
    );
}

#[test]
fn an_unknown_producer_task_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["task_output_artifact"]["producer_task"] =
        json!("reader_9");
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.producer_task",
        "unknown task \"reader_9\"",
    );
}

#[test]
fn an_output_the_producer_lacks_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["task_output_artifact"]["output_artifact_key"] =
        json!("output_model");
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.output_artifact_key",
        "task \"reader_0\" (reader) has no data output \"output_model\" (it has: output_data)",
    );
}

#[test]
fn a_cycle_is_refused_naming_the_loop() {
    let mut dag = example();
    dag["dag"]["tasks"]["reader_0"]["dependent_tasks"] = json!(["evaluation_0"]);
    refused(
        &dag,
        "dag.tasks",
        "cycle evaluation_0 -> reader_0 -> psi_0 -> lr_0 -> evaluation_0",
    );
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["dependent_tasks"] = json!(["psi_0"]);
    refused(&dag, "dag.tasks", "cycle psi_0 -> psi_0");
}

#[test]
fn an_unknown_dependent_task_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["dependent_tasks"] = json!(["psi_0", "nope"]);
    refused(
        &dag,
        "dag.tasks.lr_0.dependent_tasks[1]",
        "unknown task \"nope\"",
    );
}

#[test]
fn parties_outside_dag_parties_are_refused() {
    let stranger =
        json!([{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["4242"]}]);
    let mut dag = example();
    dag["dag"]["tasks"]["reader_0"]["parties"] = stranger.clone();
    refused(
        &dag,
        "dag.tasks.reader_0.parties[1].party_id[0]",
        "host 4242 is not among dag.parties",
    );
    let mut dag = example();
    dag["dag"]["party_tasks"]["host_10000"]["parties"] = stranger.clone();
    refused(
        &dag,
        "dag.party_tasks.host_10000.parties[1].party_id[0]",
        "host 4242 is not among dag.parties",
    );
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["parties"] =
        stranger;
    refused(
        &dag,
        "dag.tasks.lr_0.inputs.data.train_data.task_output_artifact.parties[1].party_id[0]",
        "host 4242 is not among dag.parties",
    );
    // A party id in the wrong role is a stranger too.
    let mut dag = example();
    dag["dag"]["tasks"]["reader_0"]["parties"] = json!([{"role": "guest", "party_id": ["10000"]}]);
    refused(
        &dag,
        "dag.tasks.reader_0.parties[0].party_id[0]",
        "guest 10000 is not among dag.parties",
    );
}

#[test]
fn an_unknown_component_ref_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["component_ref"] = json!("hetero_lr");
    refused(
        &dag,
        "dag.tasks.lr_0.component_ref",
        "unknown FATE component \"hetero_lr\"",
    );
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]
        .as_object_mut()
        .expect("lr_0")
        .remove("component_ref");
    refused(&dag, "dag.tasks.lr_0.component_ref", "missing");
}

#[test]
fn a_stage_the_component_lacks_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["stage"] = json!("default");
    refused(
        &dag,
        "dag.tasks.lr_0.stage",
        "component \"coordinated_lr\" has no stage \"default\" for role",
    );
    // lr_0 takes the DAG's stage.
    let mut dag = example();
    dag["dag"]["stage"] = json!("default");
    refused(&dag, "dag.stage", "has no stage \"default\"");
}

#[test]
fn a_role_the_component_does_not_serve_is_refused_when_listed() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["parties"] = json!([
        {"role": "guest", "party_id": ["9999"]},
        {"role": "arbiter", "party_id": ["10000"]}
    ]);
    refused(
        &dag,
        "dag.tasks.psi_0.parties",
        "component \"psi\" does not run on role arbiter (it serves guest, host)",
    );
}

#[test]
fn a_missing_required_input_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]
        .as_object_mut()
        .expect("psi_0")
        .remove("inputs");
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.input_data",
        "missing: component \"psi\" needs it on guest 9999",
    );
    // A source limited to the guest leaves the host without one.
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]["parties"] =
        json!([{"role": "guest", "party_id": ["9999"]}]);
    refused(
        &dag,
        "dag.tasks.lr_0.inputs.data.train_data",
        "needs it on host 10000",
    );
}

#[test]
fn an_input_slot_the_component_lacks_is_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["train_data"] = json!({
        "task_output_artifact": {"producer_task": "reader_0", "output_artifact_key": "output_data"}
    });
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.train_data",
        "component \"psi\" has no data input \"train_data\" (it has: input_data)",
    );
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["cache"] = json!({});
    refused(&dag, "dag.tasks.psi_0.inputs.cache", "unknown input kind");
}

#[test]
fn a_single_source_slot_given_several_is_refused() {
    let mut dag = example();
    let source = json!({"producer_task": "reader_0", "output_artifact_key": "output_data"});
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["task_output_artifact"] =
        json!([source.clone(), source.clone()]);
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact",
        "takes one source, got 2",
    );
    // A list of one is fine.
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"]["task_output_artifact"] =
        json!([source]);
    parse_dag(&dag).expect("one source in a list");
}

#[test]
fn a_model_warehouse_input_names_an_earlier_jobs_output() {
    let mut dag = example();
    dag["dag"]["stage"] = json!("predict");
    dag["dag"]["tasks"]["lr_0"]["inputs"]["data"] = json!({"test_data": {"task_output_artifact":
        {"producer_task": "psi_0", "output_artifact_key": "output_data",
         "parties": [{"role": "guest", "party_id": ["9999"]}, {"role": "host", "party_id": ["10000"]}]}}});
    dag["dag"]["tasks"]["lr_0"]["inputs"]["model"] = json!({"input_model": {"model_warehouse":
        {"model_id": "202612010000000000000001", "model_version": "0",
         "producer_task": "lr_0", "output_artifact_key": "output_model"}}});
    dag["dag"]["tasks"]["evaluation_0"]["inputs"]["data"]["input_datas"]["task_output_artifact"]
        [0]["output_artifact_key"] = json!("test_output_data");
    let spec = parse_dag(&dag).expect("a predict DAG parses");
    let (plan, task) = plan(&spec, &who("guest", "9999"), "lr_0");
    assert_eq!(task.stage, "predict");
    assert_eq!(
        plan.upstream,
        ["psi_0"],
        "an earlier job's output is no edge of this DAG"
    );
    let source = &task.inputs["input_model"].sources[0];
    assert_eq!(source.job_id.as_deref(), Some("202612010000000000000001"));
    assert_eq!(
        source.input_key(),
        "202612010000000000000001/lr_0.output_model"
    );
    assert!(
        spec.component("lr_0")
            .expect("lr_0")
            .inputs
            .iter()
            .all(|i| i.component != "lr_0"),
        "the DAG's edges hold this job's tasks only"
    );
}

#[test]
fn the_predict_example_takes_its_model_from_dag_conf() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/fate-lr/predict.yaml"
    ))
    .expect("examples/fate-lr/predict.yaml");
    let text = text.replace("TRAINING_JOB_ID", "202612010000000000000001");
    let dag: Value = serde_norway::from_str(&text).expect("YAML");
    let spec = parse_dag(&dag).expect("the predict example parses");
    for who in [who("guest", "9999"), who("host", "10000")] {
        let (plan, task) = plan(&spec, &who, "lr_0");
        assert!(plan.need_run);
        assert_eq!(task.stage, "predict");
        assert_eq!(
            task.inputs["input_model"].sources[0].input_key(),
            "202612010000000000000001/lr_0.output_model"
        );
    }
    // A model id that is not an id is refused naming the field.
    let mut dag = dag;
    dag["dag"]["conf"]["model_warehouse"]["model_id"] = json!("../x");
    refused(&dag, "dag.conf.model_warehouse.model_id", "");
}

#[test]
fn a_data_warehouse_table_is_the_partys_registered_table() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"] =
        json!({"data_warehouse": {"name": "breast_hetero", "namespace": "experiment"}});
    dag["dag"]["tasks"]["psi_0"]["dependent_tasks"] = json!([]);
    let spec = parse_dag(&dag).expect("a table input parses");
    let (plan, task) = plan(&spec, &who("host", "10000"), "psi_0");
    assert!(
        plan.upstream.is_empty(),
        "a table is no edge: {:?}",
        plan.upstream
    );
    let source = &task.inputs["input_data"].sources[0];
    assert_eq!(source.input_key(), "table:experiment/breast_hetero");
    assert_eq!(source.job_id, None);
}

#[test]
fn malformed_warehouse_inputs_are_refused() {
    let mut dag = example();
    dag["dag"]["tasks"]["psi_0"]["inputs"]["data"]["input_data"] =
        json!({"data_warehouse": {"name": "breast", "namespace": "../x"}});
    refused(
        &dag,
        "dag.tasks.psi_0.inputs.data.input_data.data_warehouse.namespace",
        "letters, digits",
    );
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["inputs"]["model"] = json!({"warm_start_model":
        {"model_warehouse": {"model_version": "0", "producer_task": "lr_0",
                             "output_artifact_key": "output_model"}}});
    refused(
        &dag,
        "dag.tasks.lr_0.inputs.model.warm_start_model.model_warehouse.model_id",
        "missing",
    );
    dag["dag"]["tasks"]["lr_0"]["inputs"]["model"]["warm_start_model"]["model_warehouse"]["model_id"] =
        json!("../etc");
    refused(
        &dag,
        "dag.tasks.lr_0.inputs.model.warm_start_model.model_warehouse.model_id",
        "",
    );
    dag["dag"]["tasks"]["lr_0"]["inputs"]["model"]["warm_start_model"]["model_warehouse"] = json!({"model_id": "202612010000000000000001", "producer_task": "lr_0",
               "output_artifact_key": "output_model", "colour": "red"});
    refused(
        &dag,
        "dag.tasks.lr_0.inputs.model.warm_start_model.model_warehouse.colour",
        "unknown key",
    );
}

#[test]
fn a_malformed_task_name_is_refused() {
    let mut dag = example();
    let tasks = dag["dag"]["tasks"].as_object_mut().expect("tasks");
    let reader = tasks.remove("reader_0").expect("reader_0");
    tasks.insert("../reader".into(), reader);
    refused(
        &dag,
        "dag.tasks.../reader",
        "component name \"../reader\" is invalid",
    );
}

#[test]
fn the_document_itself_is_checked() {
    let mut dag = example();
    dag["schema_version"] = json!("1.0");
    refused(&dag, "schema_version", "FATE 2.x schema version");
    let mut dag = example();
    dag.as_object_mut().expect("root").remove("schema_version");
    refused(&dag, "schema_version", "missing");
    let mut dag = example();
    dag["kind"] = json!("bfia");
    refused(&dag, "kind", "expected \"fate\"");
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["dependent_task"] = json!(["psi_0"]);
    refused(&dag, "dag.tasks.lr_0.dependent_task", "unknown key");
    let mut dag = example();
    dag["dag"]["party_tasks"]["guest_9999"]["tasks"]["reader_7"] = json!({});
    refused(
        &dag,
        "dag.party_tasks.guest_9999.tasks.reader_7",
        "unknown task \"reader_7\"",
    );
    let mut dag = example();
    dag["dag"]["parties"][1]["role"] = json!("boss");
    refused(&dag, "dag.parties[1].role", "invalid");
    let mut dag = example();
    dag["dag"]["parties"][1]["party_id"] = json!(["9999", "9999"]);
    refused(&dag, "dag.parties", "host 9999 is listed twice");
}

#[test]
fn a_dag_carries_its_own_conf() {
    let text = example().to_string();
    for empty in ["", "  ", "{}", " { } "] {
        parse(&text, empty, &Limits::default()).expect("an empty conf");
    }
    let e = parse(&text, r#"{"role": {}}"#, &Limits::default()).expect_err("a conf");
    assert_eq!(e.field, "runtime_conf");
    assert!(e.message.contains("carries its own conf"), "{e}");
}

#[test]
fn limits_and_strict_json_hold_for_dags() {
    let text = example().to_string();
    let small = Limits {
        max_dsl_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(
        parse(&text, "", &small).expect_err("too large").field,
        "dsl"
    );
    let few = Limits {
        max_components: 3,
        ..Limits::default()
    };
    let e = parse(&text, "", &few).expect_err("too many tasks");
    assert_eq!(e.field, "dag.tasks");
    assert!(e.message.contains("4 tasks, at most 3"), "{e}");
    let few = Limits {
        max_parties: 2,
        ..Limits::default()
    };
    let e = parse(&text, "", &few).expect_err("too many parties");
    assert_eq!(e.field, "dag.parties");
    // A duplicate task name is refused, not silently merged.
    let dup = r#"{"schema_version": "2.0.0", "dag": {"parties": [{"role": "guest", "party_id": ["9999"]}],
        "tasks": {"r": {"component_ref": "reader"}, "r": {"component_ref": "reader"}}}}"#;
    let e = parse(dup, "", &Limits::default()).expect_err("duplicate");
    assert_eq!(e.field, "dsl");
    assert!(e.message.contains("duplicate key \"dag.tasks.r\""), "{e}");
    // Errors are clipped.
    let mut dag = example();
    dag["dag"]["tasks"]["lr_0"]["component_ref"] = json!("x".repeat(5000));
    let e = parse_dag(&dag).expect_err("unknown");
    assert!(e.message.len() <= MAX_ERROR_TEXT, "{}", e.message.len());
}
