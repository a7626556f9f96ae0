//! `fedflow job dag`: a job's DAG with each task's federated status, as Mermaid
//! (`flowchart TD`) or Graphviz dot (`digraph`). Pure rendering of [`Node`]s; the command in
//! [`crate::commands`] builds them from the job's DSL (parsed as the scheduler parses it) and
//! its tasks' latest statuses. Names are quoted or escaped, never pasted raw, because a
//! component name may hold `-`, which neither format takes bare as an identifier.

use std::fmt::Write;

/// One component: its name, module, federated status ("waiting" when it has no task yet) and
/// the components it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub module: String,
    pub status: String,
    pub upstream: Vec<String>,
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Mermaid,
    Dot,
}

/// The statuses in the order their styles are declared, and each one's fill colour.
const COLOURS: &[(&str, &str)] = &[
    ("waiting", "#e0e0e0"),
    ("running", "#90caf9"),
    ("success", "#a5d6a7"),
    ("pass", "#c5e1a5"),
    ("failed", "#ef9a9a"),
    ("canceled", "#ffe082"),
    ("timeout", "#ffcc80"),
];

fn colour(status: &str) -> &'static str {
    COLOURS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or("#ffffff", |(_, c)| c)
}

pub fn render(nodes: &[Node], format: Format) -> String {
    match format {
        Format::Mermaid => mermaid(nodes),
        Format::Dot => dot(nodes),
    }
}

/// Mermaid node ids: `n<index>`, so no component name needs to be a valid Mermaid id.
fn mermaid(nodes: &[Node]) -> String {
    let id = |name: &str| {
        nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| format!("n{i}"))
    };
    let text = |s: &str| s.replace('"', "#quot;");
    let mut out = String::from("flowchart TD\n");
    for (status, fill) in COLOURS.iter().chain([&("unknown", "#ffffff")]) {
        let _ = writeln!(out, "    classDef {status} fill:{fill},stroke:#555");
    }
    for (i, node) in nodes.iter().enumerate() {
        let _ = writeln!(
            out,
            "    n{i}[\"{}<br/>{}<br/>{}\"]:::{}",
            text(&node.name),
            text(&node.module),
            text(&node.status),
            class_name(&node.status)
        );
    }
    for node in nodes {
        for up in &node.upstream {
            if let (Some(from), Some(to)) = (id(up), id(&node.name)) {
                let _ = writeln!(out, "    {from} --> {to}");
            }
        }
    }
    out
}

/// A status as a class name: one of [`COLOURS`], else `unknown`.
fn class_name(status: &str) -> &str {
    if COLOURS.iter().any(|(s, _)| *s == status) {
        status
    } else {
        "unknown"
    }
}

fn dot(nodes: &[Node]) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let quote = |s: &str| format!("\"{}\"", escape(s));
    let mut out =
        String::from("digraph job {\n    rankdir=TB;\n    node [shape=box, style=filled];\n");
    for node in nodes {
        // `\n` inside a dot string is a line break of the label.
        let label = [&node.name, &node.module, &node.status]
            .map(|s| escape(s))
            .join("\\n");
        let _ = writeln!(
            out,
            "    {} [label=\"{label}\", fillcolor=\"{}\"];",
            quote(&node.name),
            colour(&node.status)
        );
    }
    for node in nodes {
        for up in &node.upstream {
            let _ = writeln!(out, "    {} -> {};", quote(up), quote(&node.name));
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diamond() -> Vec<Node> {
        let node = |name: &str, status: &str, upstream: &[&str]| Node {
            name: name.into(),
            module: "Sum".into(),
            status: status.into(),
            upstream: upstream.iter().map(|s| (*s).to_owned()).collect(),
        };
        vec![
            node("a", "success", &[]),
            node("b-1", "running", &["a"]),
            node("c", "failed", &["a"]),
            node("d", "waiting", &["b-1", "c"]),
        ]
    }

    #[test]
    fn mermaid_has_one_node_per_component_and_one_edge_per_dependency() {
        let out = render(&diamond(), Format::Mermaid);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "flowchart TD");
        let nodes: Vec<&&str> = lines.iter().filter(|l| l.contains("[\"")).collect();
        assert_eq!(
            nodes,
            [
                &"    n0[\"a<br/>Sum<br/>success\"]:::success",
                &"    n1[\"b-1<br/>Sum<br/>running\"]:::running",
                &"    n2[\"c<br/>Sum<br/>failed\"]:::failed",
                &"    n3[\"d<br/>Sum<br/>waiting\"]:::waiting",
            ]
        );
        let edges: Vec<&&str> = lines.iter().filter(|l| l.contains("-->")).collect();
        assert_eq!(
            edges,
            [
                &"    n0 --> n1",
                &"    n0 --> n2",
                &"    n1 --> n3",
                &"    n2 --> n3"
            ]
        );
        for status in ["success", "running", "failed", "waiting"] {
            assert!(out.contains(&format!("classDef {status} fill:")), "{out}");
        }
    }

    #[test]
    fn dot_quotes_names_and_fills_each_node_by_status() {
        let out = render(&diamond(), Format::Dot);
        assert!(out.starts_with("digraph job {\n"), "{out}");
        assert!(out.ends_with("}\n"), "{out}");
        assert!(
            out.contains("    \"b-1\" [label=\"b-1\\nSum\\nrunning\", fillcolor=\"#90caf9\"];"),
            "{out}"
        );
        assert_eq!(out.matches(" -> ").count(), 4, "{out}");
        assert!(out.contains("    \"b-1\" -> \"d\";"), "{out}");
    }

    #[test]
    fn quotes_in_names_cannot_break_out_of_a_label() {
        let nodes = vec![Node {
            name: "x\"y".into(),
            module: "M".into(),
            status: "odd".into(),
            upstream: vec![],
        }];
        let dot = render(&nodes, Format::Dot);
        assert!(
            dot.contains("\"x\\\"y\" [label=\"x\\\"y\\nM\\nodd\", fillcolor=\"#ffffff\"];"),
            "{dot}"
        );
        let mermaid = render(&nodes, Format::Mermaid);
        assert!(
            mermaid.contains("n0[\"x#quot;y<br/>M<br/>odd\"]:::unknown"),
            "{mermaid}"
        );
    }
}
