//! The board's drawings, as inline SVG strings: a job's DAG (layered by topological depth:
//! a component sits one layer below its deepest upstream; one node per component, coloured by
//! its status through CSS classes the page's script changes in place) and metric plots (line
//! charts of the series found in a metric's JSON: loss per iteration, ROC, KS). Pure: no I/O;
//! every text is escaped.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

use super::pages::esc;

/// One DAG node: a component, its module, its status and its upstream components.
pub struct Node<'a> {
    pub name: &'a str,
    pub module: &'a str,
    pub status: &'a str,
    pub upstream: &'a [String],
}

const NODE_W: f64 = 170.0;
const NODE_H: f64 = 44.0;
const GAP_X: f64 = 30.0;
const GAP_Y: f64 = 50.0;

/// Each node's layer: 0 for a component without upstream, else one more than its deepest
/// upstream (an upstream that is not a node, or a cycle, counts as layer 0).
pub fn layers(nodes: &[Node<'_>]) -> Vec<usize> {
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
    let mut depth: Vec<Option<usize>> = vec![None; nodes.len()];
    fn visit(
        i: usize,
        nodes: &[Node<'_>],
        index: &HashMap<&str, usize>,
        depth: &mut Vec<Option<usize>>,
        on_path: &mut Vec<bool>,
    ) -> usize {
        if let Some(d) = depth[i] {
            return d;
        }
        if on_path[i] {
            return 0;
        }
        on_path[i] = true;
        let d = nodes[i]
            .upstream
            .iter()
            .filter_map(|u| index.get(u.as_str()).copied())
            .map(|u| visit(u, nodes, index, depth, on_path) + 1)
            .max()
            .unwrap_or(0);
        on_path[i] = false;
        depth[i] = Some(d);
        d
    }
    let mut on_path = vec![false; nodes.len()];
    (0..nodes.len())
        .map(|i| visit(i, nodes, &index, &mut depth, &mut on_path))
        .collect()
}

/// The DAG as an `<svg>`: layers top to bottom, edges as cubic paths from an upstream's
/// bottom to its downstream's top. Each node is `<g class="node s-<status>"
/// data-component="..">` linking to its task page under `task_base`.
pub fn dag(nodes: &[Node<'_>], task_base: &str) -> String {
    let layer = layers(nodes);
    let layer_count = layer.iter().max().map_or(0, |m| m + 1);
    let mut rows: Vec<Vec<usize>> = vec![Vec::new(); layer_count];
    for (i, l) in layer.iter().enumerate() {
        rows[*l].push(i);
    }
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let width = (widest * (NODE_W + GAP_X) + GAP_X).max(NODE_W + 2.0 * GAP_X);
    let height = layer_count as f64 * (NODE_H + GAP_Y) + GAP_Y;
    let mut at: Vec<(f64, f64)> = vec![(0.0, 0.0); nodes.len()];
    for (l, row) in rows.iter().enumerate() {
        let row_w = row.len() as f64 * (NODE_W + GAP_X) - GAP_X;
        let x0 = (width - row_w) / 2.0;
        for (k, i) in row.iter().enumerate() {
            at[*i] = (
                x0 + k as f64 * (NODE_W + GAP_X),
                GAP_Y / 2.0 + l as f64 * (NODE_H + GAP_Y),
            );
        }
    }
    let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="job DAG">"#
    );
    svg.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>"##);
    for (i, node) in nodes.iter().enumerate() {
        for up in node.upstream {
            let Some(&u) = index.get(up.as_str()) else {
                continue;
            };
            let (x1, y1) = (at[u].0 + NODE_W / 2.0, at[u].1 + NODE_H);
            let (x2, y2) = (at[i].0 + NODE_W / 2.0, at[i].1);
            let mid = (y1 + y2) / 2.0;
            let _ = write!(
                svg,
                r#"<path class="edge" d="M{x1:.1},{y1:.1} C{x1:.1},{mid:.1} {x2:.1},{mid:.1} {x2:.1},{y2:.1}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = at[i];
        let name = esc(node.name);
        let _ = write!(
            svg,
            r#"<a href="{base}/{href}"><g class="node s-{status}" data-component="{name}"><title>{name}: {module}</title><rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" rx="8"/><text x="{tx:.1}" y="{ty1:.1}" class="name">{short}</text><text x="{tx:.1}" y="{ty2:.1}" class="status" data-status-text="{name}">{status}</text></g></a>"#,
            base = esc(task_base),
            href = esc(&url_segment(node.name)),
            status = esc(node.status),
            module = esc(node.module),
            tx = x + NODE_W / 2.0,
            ty1 = y + 18.0,
            ty2 = y + 36.0,
            short = esc(&shorten(node.name, 22)),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A name cut to `max` characters with an ellipsis (the full name is the node's title).
fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut cut: String = s.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// `s` percent-encoded for one path segment (component names are `[A-Za-z0-9_-]`, but a
/// link never trusts that).
pub fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One plotted line: its name and its points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One plot: a title, its axes' names and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    pub title: String,
    pub x: String,
    pub y: String,
    pub series: Vec<Series>,
}

/// The x fields a metric record's points may have, in order of preference.
/// (A KS curve has `threshold`, `tpr` and `fpr`: it is drawn over the threshold.)
const X_FIELDS: &[&str] = &["step", "iteration", "epoch", "threshold", "fpr", "x"];

/// The plots a metric's JSON holds: every record (an object with a `data` array, found at
/// any depth, e.g. pyfate's list of records) whose points are objects with a numeric x field
/// (`step`, `fpr`, `threshold`, ...) gives a plot with one line per other numeric field
/// (`metric`, `tpr`, ...). Records of one name and type with a single point each (a loss
/// reported once per iteration) are gathered into one line.
pub fn plots(metric: &Value) -> Vec<Plot> {
    let mut records = Vec::new();
    collect_records(metric, &mut records, 0);
    let mut plots: Vec<Plot> = Vec::new();
    for record in records {
        let name = record
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("metric");
        let kind = record.get("type").and_then(Value::as_str).unwrap_or("");
        let title = if kind.is_empty() || kind == name {
            name.to_owned()
        } else {
            format!("{name} ({kind})")
        };
        let Some(points) = record.get("data").and_then(Value::as_array) else {
            continue;
        };
        let Some(x) = X_FIELDS.iter().find(|f| {
            points
                .iter()
                .any(|p| p.get(**f).and_then(Value::as_f64).is_some())
        }) else {
            continue;
        };
        let axis = record
            .get("step_axis")
            .and_then(Value::as_str)
            .unwrap_or(x)
            .to_owned();
        let mut ys: Vec<String> = Vec::new();
        for p in points {
            if let Some(o) = p.as_object() {
                for (k, v) in o {
                    if k != x && k != "timestamp" && v.as_f64().is_some() && !ys.contains(k) {
                        ys.push(k.clone());
                    }
                }
            }
        }
        let series: Vec<Series> = ys
            .iter()
            .map(|y| Series {
                name: y.clone(),
                points: points
                    .iter()
                    .filter_map(|p| Some((p.get(*x)?.as_f64()?, p.get(y)?.as_f64()?)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        match plots.iter_mut().find(|p| p.title == title && p.x == axis) {
            Some(plot) => {
                for s in series {
                    match plot.series.iter_mut().find(|t| t.name == s.name) {
                        Some(t) => t.points.extend(s.points),
                        None => plot.series.push(s),
                    }
                }
            }
            None => plots.push(Plot {
                title,
                y: ys.join(", "),
                x: axis,
                series,
            }),
        }
    }
    for plot in &mut plots {
        for s in &mut plot.series {
            // A ROC curve keeps its order (points of one fpr rise in tpr).
            if plot.x != "fpr" {
                s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }
    plots
}

fn collect_records<'a>(
    v: &'a Value,
    out: &mut Vec<&'a serde_json::Map<String, Value>>,
    depth: usize,
) {
    if depth > 6 {
        return;
    }
    match v {
        Value::Array(items) => items
            .iter()
            .for_each(|i| collect_records(i, out, depth + 1)),
        Value::Object(o) => {
            if o.get("data").is_some_and(Value::is_array) {
                out.push(o);
            } else {
                o.values().for_each(|i| collect_records(i, out, depth + 1));
            }
        }
        _ => {}
    }
}

const PLOT_W: f64 = 460.0;
const PLOT_H: f64 = 280.0;
const MARGIN_L: f64 = 56.0;
const MARGIN_R: f64 = 16.0;
const MARGIN_T: f64 = 30.0;
const MARGIN_B: f64 = 40.0;
const COLOURS: &[&str] = &["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00"];

/// A plot as an `<svg class="plot">`: axes with their ranges, one `<path class="line">` per
/// series (its point count in `data-points`), a legend.
pub fn plot(plot: &Plot) -> String {
    let all = plot.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let inner_w = PLOT_W - MARGIN_L - MARGIN_R;
    let inner_h = PLOT_H - MARGIN_T - MARGIN_B;
    let sx = |x: f64| MARGIN_L + (x - x0) / (x1 - x0) * inner_w;
    let sy = |y: f64| MARGIN_T + inner_h - (y - y0) / (y1 - y0) * inner_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{PLOT_W}" height="{PLOT_H}" viewBox="0 0 {PLOT_W} {PLOT_H}" data-title="{t}"><text x="{cx}" y="18" class="title">{t}</text>"#,
        t = esc(&plot.title),
        cx = PLOT_W / 2.0,
    );
    let (bx, by) = (MARGIN_L, MARGIN_T + inner_h);
    let _ = write!(
        svg,
        r#"<path class="axis" d="M{bx},{MARGIN_T} L{bx},{by} L{r},{by}"/><text x="{bx}" y="{ly}" class="tick">{x0}</text><text x="{r}" y="{ly}" class="tick end">{x1}</text><text x="{tl}" y="{by}" class="tick end">{y0}</text><text x="{tl}" y="{ty}" class="tick end">{y1}</text><text x="{cx}" y="{ax}" class="label">{xn}</text>"#,
        r = MARGIN_L + inner_w,
        ly = by + 14.0,
        tl = bx - 4.0,
        ty = MARGIN_T + 4.0,
        cx = MARGIN_L + inner_w / 2.0,
        ax = PLOT_H - 8.0,
        x0 = num(x0),
        x1 = num(x1),
        y0 = num(y0),
        y1 = num(y1),
        xn = esc(&plot.x),
    );
    for (k, s) in plot.series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut d = String::new();
        for (j, (x, y)) in s.points.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if j == 0 { 'M' } else { 'L' },
                sx(*x),
                sy(*y)
            );
        }
        let _ = write!(
            svg,
            r#"<path class="line" d="{d}" stroke="{colour}" data-points="{n}" data-series="{name}"/><text x="{lx}" y="{lyy}" class="legend" fill="{colour}">{name}</text>"#,
            d = d.trim_end(),
            n = s.points.len(),
            name = esc(&s.name),
            lx = MARGIN_L + 8.0,
            lyy = MARGIN_T + 14.0 + 14.0 * k as f64,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A tick label: short, with no needless digits.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_component_sits_one_layer_below_its_deepest_upstream() {
        let none: Vec<String> = vec![];
        let a = vec!["a".to_owned()];
        let ab = vec!["a".to_owned(), "b".to_owned()];
        let nodes = [
            Node {
                name: "a",
                module: "M",
                status: "success",
                upstream: &none,
            },
            Node {
                name: "b",
                module: "M",
                status: "running",
                upstream: &a,
            },
            Node {
                name: "c",
                module: "M",
                status: "waiting",
                upstream: &ab,
            },
        ];
        assert_eq!(layers(&nodes), vec![0, 1, 2]);
        let svg = dag(&nodes, "/jobs/j/tasks");
        assert_eq!(svg.matches("<g class=\"node").count(), 3);
        assert_eq!(svg.matches("class=\"edge\"").count(), 3);
        assert!(svg.contains("s-running"));
    }

    #[test]
    fn names_are_escaped_in_the_drawing() {
        let none: Vec<String> = vec![];
        let nodes = [Node {
            name: "<x>",
            module: "\"M\"",
            status: "waiting",
            upstream: &none,
        }];
        let svg = dag(&nodes, "/t");
        assert!(!svg.contains("<x>"));
        assert!(svg.contains("&lt;x&gt;"));
        assert!(svg.contains("%3Cx%3E"));
    }

    #[test]
    fn loss_records_become_one_line_and_roc_its_own_plot() {
        let metric = json!([
            {"name": "loss", "type": "loss", "step_axis": "iterations",
             "data": [{"step": 1, "metric": 0.5}, {"step": 0, "metric": 0.7}]},
            {"name": "loss", "type": "loss", "step_axis": "iterations",
             "data": [{"step": 2, "metric": 0.4}]},
            {"name": "roc", "type": "roc_curve", "data": [{"fpr": 0.0, "tpr": 0.0}, {"fpr": 1.0, "tpr": 1.0}]},
        ]);
        let plots = plots(&metric);
        assert_eq!(plots.len(), 2);
        assert_eq!(plots[0].x, "iterations");
        assert_eq!(
            plots[0].series[0].points,
            vec![(0.0, 0.7), (1.0, 0.5), (2.0, 0.4)]
        );
        assert_eq!(plots[1].series[0].name, "tpr");
        let svg = plot(&plots[0]);
        assert!(svg.contains("data-points=\"3\""));
        assert_eq!(svg.matches(" L").count(), 2 + 2);
    }

    #[test]
    fn a_metric_without_series_has_no_plot() {
        assert!(plots(&json!({"name": "statistics", "data": {"row_count": 3}})).is_empty());
    }
}
