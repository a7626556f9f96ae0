//! The DSL's `components`: each component's name, module, inputs and declared outputs, the
//! references between them, and the topological order (a cycle is refused naming the loop).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::ids;
use crate::modules;

use super::{Component, Input, Limits, SpecError, err, member, member_object, object};

pub(super) fn parse_components(dsl: &Value, limits: &Limits) -> Result<Vec<Component>, SpecError> {
    let root = object(dsl, "dsl", "expected a JSON object")?;
    let components = member_object(
        root,
        "dsl",
        "components",
        "expected an object keyed by component name",
    )?;
    if components.is_empty() {
        return Err(err("dsl.components", "no components"));
    }
    if components.len() > limits.max_components {
        return Err(err(
            "dsl.components",
            format!(
                "{} components, at most {}",
                components.len(),
                limits.max_components
            ),
        ));
    }
    for name in components.keys() {
        ids::component(name).map_err(|e| err(format!("dsl.components.{name}"), e.to_string()))?;
    }
    // Every declared output as (component, kind, name), so each reference is one look-up.
    let mut declared: HashSet<(&str, &str, &str)> = HashSet::new();
    for (name, body) in components {
        let Some(output) = body.get("output").and_then(Value::as_object) else {
            continue;
        };
        for (kind, names) in output {
            for n in names.as_array().into_iter().flatten() {
                if let Some(n) = n.as_str() {
                    declared.insert((name.as_str(), kind.as_str(), n));
                }
            }
        }
    }
    let mut parsed = Vec::with_capacity(components.len());
    for (name, body) in components {
        let field = format!("dsl.components.{name}");
        let body = object(body, &field, "expected an object")?;
        let module = member(body, "module", format!("{field}.module"))?
            .as_str()
            .ok_or_else(|| err(format!("{field}.module"), "expected a string"))?;
        let provider = match body.get("provider") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p == "fedflow" || p.starts_with("fedflow@") => None,
            Some(Value::String(p)) if !p.is_empty() && p.len() <= 64 => Some(p.clone()),
            Some(other) => {
                return Err(err(
                    format!("{field}.provider"),
                    format!("expected a provider name such as \"fate@2.2.0\", got {other}"),
                ));
            }
        };
        if provider.is_some() && !modules::is_external_name(module) {
            return Err(err(
                format!("{field}.module"),
                format!("{module:?} is not a module name (a letter, then letters, digits or _)"),
            ));
        }
        if provider.is_none() && !modules::is_known(module) {
            return Err(err(
                format!("{field}.module"),
                format!(
                    "unknown module {module:?} (this party has: {})",
                    modules::BUILTIN.join(", ")
                ),
            ));
        }
        let mut inputs = Vec::new();
        if let Some(input) = body.get("input") {
            let input = object(input, format!("{field}.input"), "expected an object")?;
            for (kind, value) in input {
                let kfield = format!("{field}.input.{kind}");
                match kind.as_str() {
                    "data" => {
                        let by_key = object(value, &kfield, "expected an object of lists")?;
                        for (key, refs) in by_key {
                            read_refs(&format!("{kfield}.{key}"), kind, key, refs, &mut inputs)?;
                        }
                    }
                    "model" | "isometric_model" | "cache" => {
                        read_refs(&kfield, kind, "", value, &mut inputs)?;
                    }
                    other => {
                        return Err(err(
                            &kfield,
                            format!(
                                "unknown input kind {other:?} (expected data, model, isometric_model or cache)"
                            ),
                        ));
                    }
                }
            }
        }
        let mut upstream: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, input) in inputs.iter().enumerate() {
            // Only named on error: a DSL may have many inputs.
            let ifield = || {
                if input.key.is_empty() {
                    format!("{field}.input.{}[{i}]", input.kind)
                } else {
                    format!("{field}.input.{}.{}", input.kind, input.key)
                }
            };
            if !components.contains_key(&input.component) {
                return Err(err(
                    ifield(),
                    format!("unknown upstream component {:?}", input.component),
                ));
            }
            let out_kind = match input.kind.as_str() {
                "data" => "data",
                "cache" => "cache",
                _ => "model",
            };
            let key = (input.component.as_str(), out_kind, input.output.as_str());
            if !declared.contains(&key) {
                return Err(err(
                    ifield(),
                    format!(
                        "component {:?} declares no {out_kind} output {:?}",
                        input.component, input.output
                    ),
                ));
            }
            if input.component == *name {
                return Err(err(ifield(), format!("cycle {name} -> {name}")));
            }
            if seen.insert(input.component.as_str()) {
                upstream.push(input.component.clone());
            }
        }
        if let Some(output) = body.get("output") {
            let output = object(output, format!("{field}.output"), "expected an object")?;
            for (kind, names) in output {
                let names = names.as_array().ok_or_else(|| {
                    err(format!("{field}.output.{kind}"), "expected a list of names")
                })?;
                for n in names {
                    let ok = n.as_str().is_some_and(|n| ids::component(n).is_ok());
                    if !ok {
                        return Err(err(
                            format!("{field}.output.{kind}"),
                            format!("malformed output name {n}"),
                        ));
                    }
                }
            }
        }
        parsed.push(Component {
            name: name.clone(),
            module: module.to_owned(),
            provider,
            inputs,
            upstream,
        });
    }
    Ok(parsed)
}

fn read_refs(
    field: &str,
    kind: &str,
    key: &str,
    refs: &Value,
    into: &mut Vec<Input>,
) -> Result<(), SpecError> {
    let refs = refs
        .as_array()
        .ok_or_else(|| err(field, "expected a list of \"component.output\""))?;
    for r in refs {
        let text = r
            .as_str()
            .ok_or_else(|| err(field, format!("expected \"component.output\", got {r}")))?;
        if text.starts_with("args.") {
            return Err(err(
                field,
                format!("{text:?} is DSL v1; fedflow accepts DSL v2 (dsl_version 2)"),
            ));
        }
        let Some((component, output)) = text.split_once('.') else {
            return Err(err(
                field,
                format!("{text:?} is not of the form \"component.output\""),
            ));
        };
        into.push(Input {
            kind: kind.to_owned(),
            key: key.to_owned(),
            component: component.to_owned(),
            output: output.to_owned(),
        });
    }
    Ok(())
}

/// Kahn's sort; on a cycle, names one loop.
/// `field` names the document's components in the error (`dsl.components`, `dag.tasks`).
pub(super) fn topological_order(
    components: Vec<Component>,
    field: &str,
) -> Result<Vec<Component>, SpecError> {
    let order = topological_indices(&components, field)?;
    let mut slots: Vec<Option<Component>> = components.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// The positions of `components` in topological order.
fn topological_indices(components: &[Component], field: &str) -> Result<Vec<usize>, SpecError> {
    let by_name: HashMap<&str, (usize, &Component)> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), (i, c)))
        .collect();
    // name -> the components that take it as upstream, in `components` order.
    let mut downstream: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in components {
        for u in &c.upstream {
            downstream
                .entry(u.as_str())
                .or_default()
                .push(c.name.as_str());
        }
    }
    let mut indegree: BTreeMap<&str, usize> = components
        .iter()
        .map(|c| (c.name.as_str(), c.upstream.len()))
        .collect();
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    ready.sort_unstable();
    ready.reverse();
    let mut ordered = Vec::with_capacity(components.len());
    while let Some(name) = ready.pop() {
        ordered.push(by_name[name].0);
        let mut next: Vec<&str> = Vec::new();
        for &down in downstream.get(name).map_or(&[][..], Vec::as_slice) {
            let d = indegree
                .get_mut(down)
                .expect("every component has a degree");
            *d -= 1;
            if *d == 0 {
                next.push(down);
            }
        }
        next.sort_unstable();
        for n in next.into_iter().rev() {
            ready.push(n);
        }
    }
    if ordered.len() == components.len() {
        return Ok(ordered);
    }
    // Walk upstream edges among the unsorted components until a name repeats.
    let left: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(n, _)| *n)
        .collect();
    let start = *left
        .iter()
        .next()
        .expect("a cycle leaves components unsorted");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = by_name[current]
            .1
            .upstream
            .iter()
            .map(String::as_str)
            .find(|u| left.contains(u))
            .expect("an unsorted component has an unsorted upstream");
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            cycle.reverse();
            // Start at the smallest name so the same loop is always named the same way.
            let first = (0..cycle.len())
                .min_by_key(|i| cycle[*i])
                .expect("a cycle has members");
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return Err(err(field, format!("cycle {}", cycle.join(" -> "))));
        }
        path.push(next);
        current = next;
    }
}
