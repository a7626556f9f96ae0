//! The wire surface never shrinks: `proto/compat/landed.txt` lists, one line each, every
//! field (number, name, type, label), enum value and rpc of the landed protocol, and this test
//! fails when a line of it is missing from the protocol compiled now — a field removed,
//! renumbered, retyped or renamed, an enum value or an rpc gone — so parties running the
//! previous version keep understanding this one. Additions pass; they are recorded by running
//! the test with `FEDFLOW_PROTO_BLESS=1`, which rewrites the file when nothing was removed.

use std::collections::BTreeSet;
use std::path::PathBuf;

use prost::Message;
use prost_types::FileDescriptorSet;
use prost_types::field_descriptor_proto::{Label, Type};

fn landed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat/landed.txt")
}

/// The surface of the compiled protocol, one line per field, enum value and rpc.
fn surface() -> BTreeSet<String> {
    let set = FileDescriptorSet::decode(fedflow_proto::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set decodes");
    let mut lines = BTreeSet::new();
    for file in &set.file {
        let package = file.package();
        for message in &file.message_type {
            messages(&mut lines, package, message);
        }
        for e in &file.enum_type {
            enums(&mut lines, package, e);
        }
        for service in &file.service {
            for method in &service.method {
                lines.insert(format!(
                    "rpc {package}.{}/{} ({}{}) returns ({}{})",
                    service.name(),
                    method.name(),
                    if method.client_streaming() {
                        "stream "
                    } else {
                        ""
                    },
                    method.input_type(),
                    if method.server_streaming() {
                        "stream "
                    } else {
                        ""
                    },
                    method.output_type(),
                ));
            }
        }
    }
    lines
}

fn messages(lines: &mut BTreeSet<String>, scope: &str, message: &prost_types::DescriptorProto) {
    let name = format!("{scope}.{}", message.name());
    for field in &message.field {
        let kind = match field.r#type() {
            Type::Message | Type::Enum => field.type_name().to_owned(),
            other => other
                .as_str_name()
                .trim_start_matches("TYPE_")
                .to_lowercase(),
        };
        let label = match field.label() {
            Label::Repeated => "repeated ",
            _ if field.proto3_optional() => "optional ",
            _ => "",
        };
        let oneof = field
            .oneof_index
            .filter(|_| !field.proto3_optional())
            .and_then(|i| message.oneof_decl.get(i as usize))
            .map(|o| format!(" oneof {}", o.name()))
            .unwrap_or_default();
        lines.insert(format!(
            "field {name} {} = {label}{kind} {}{oneof}",
            field.number(),
            field.name()
        ));
    }
    for nested in &message.nested_type {
        messages(lines, &name, nested);
    }
    for e in &message.enum_type {
        enums(lines, &name, e);
    }
}

fn enums(lines: &mut BTreeSet<String>, scope: &str, e: &prost_types::EnumDescriptorProto) {
    for value in &e.value {
        lines.insert(format!(
            "enum {scope}.{} {} = {}",
            e.name(),
            value.number(),
            value.name()
        ));
    }
}

/// The lines of `landed` that `now` lacks: what a change removed or altered.
fn incompatible<'a>(landed: &'a BTreeSet<String>, now: &BTreeSet<String>) -> Vec<&'a str> {
    landed
        .iter()
        .filter(|line| !now.contains(*line))
        .map(String::as_str)
        .collect()
}

#[test]
fn the_landed_wire_surface_is_kept() {
    let now = surface();
    let path = landed_path();
    let bless = std::env::var_os("FEDFLOW_PROTO_BLESS").is_some();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if bless && e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => panic!(
            "{}: {e} (make it with FEDFLOW_PROTO_BLESS=1)",
            path.display()
        ),
    };
    let landed: BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let removed = incompatible(&landed, &now);
    assert!(
        removed.is_empty(),
        "the protocol changed incompatibly with the landed one ({}): these are gone or \
         changed:\n  {}\nproto changes must be additive: new fields with new numbers, new \
         enum values, new rpcs",
        path.display(),
        removed.join("\n  ")
    );
    let added = now.difference(&landed).count();
    if bless {
        let mut out = String::from(
            "# The landed wire surface of fedflow's protocol; proto/tests/compat.rs checks that \
             it is kept.\n# Record additions: FEDFLOW_PROTO_BLESS=1 cargo test -p fedflow-proto \
             --test compat\n",
        );
        for line in &now {
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(&path, out).expect("write landed.txt");
    } else if added > 0 {
        eprintln!(
            "{added} addition(s) not yet in {} (additive, fine; record them with \
             FEDFLOW_PROTO_BLESS=1)",
            path.display()
        );
    }
}

#[test]
fn removals_renumberings_and_retypings_are_caught_and_additions_pass() {
    let landed = surface();
    let field = landed
        .iter()
        .find(|l| l.starts_with("field fedflow.gateway.v1.Envelope ") && l.contains(" job_id"))
        .expect("the envelope's job_id is in the surface")
        .clone();
    let mut removed = landed.clone();
    removed.remove(&field);
    assert_eq!(incompatible(&landed, &removed), vec![field.as_str()]);

    let mut renumbered = removed.clone();
    renumbered.insert(field.replace(" 3 = ", " 30 = "));
    assert_eq!(incompatible(&landed, &renumbered), vec![field.as_str()]);

    let mut retyped = removed.clone();
    retyped.insert(field.replace("string", "bytes"));
    assert_eq!(incompatible(&landed, &retyped), vec![field.as_str()]);

    let mut grown = landed.clone();
    grown.insert("field fedflow.gateway.v1.Envelope 99 = string added".into());
    assert!(incompatible(&landed, &grown).is_empty());
}
