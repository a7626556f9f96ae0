//! The board's HTML pages, rendered on the server as strings. Every text that comes from a
//! user or a component (job ids, component and module names, reasons, logs, outputs, metric
//! names) goes through [`esc`]; links are built from percent-encoded segments. Elements the
//! page's script updates carry `data-status-of` (a component, or `component|role party`) and
//! `data-job-status`.

use std::fmt::Write;

use fedflow_core::JobStatus;
use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::Participant;

use super::data::Own;
use super::svg::{self, url_segment};
use crate::app::TaskView;
use crate::domain::model::{Job, JobView};

/// `s` with the five HTML-special characters escaped (safe in text and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page frame: title, navigation, body.
fn page(party: &str, title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · fedflow party {party}</title><link rel="stylesheet" href="/static/board.css"></head>
<body><header><span class="brand">fedflow</span> <span class="party">party {party}</span>
<nav><a href="/jobs">jobs</a> <a href="/queue">queue</a></nav></header>
<main>{body}</main><script src="/static/board.js"></script></body></html>
"#,
        title = esc(title),
        party = esc(party),
    )
}

/// An error page (also what a refused request gets).
pub fn error(code: u16, message: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{code}</title><link rel="stylesheet" href="/static/board.css"></head><body><main><h1>{code}</h1><p class="error">{}</p><p><a href="/jobs">jobs</a></p></main></body></html>"#,
        esc(message)
    )
}

fn status(s: &str) -> String {
    format!(r#"<span class="status s-{s}">{s}</span>"#, s = esc(s))
}

/// Epoch ms as `YYYY-MM-DD HH:MM:SS` UTC; 0 as a dash.
pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "–".into();
    }
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn job_link(job_id: &str) -> String {
    format!(
        r#"<a href="/jobs/{}">{}</a>"#,
        url_segment(job_id),
        esc(job_id)
    )
}

fn parties(parties: &[Participant]) -> String {
    parties
        .iter()
        .map(|p| esc(&p.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The job list: a status filter, an id search, a page of jobs, the next page's link.
pub fn jobs(
    party: &str,
    status_filter: &str,
    text: &str,
    views: &[JobView],
    next: Option<&str>,
) -> String {
    let mut body = String::from("<h1>Jobs</h1>");
    let _ = write!(
        body,
        r#"<form class="filters" method="get" action="/jobs"><label>status <select name="status"><option value="">any</option>"#
    );
    for s in JobStatus::ALL {
        let _ = write!(
            body,
            r#"<option value="{s}"{sel}>{s}</option>"#,
            s = s.as_str(),
            sel = if s.as_str() == status_filter {
                " selected"
            } else {
                ""
            }
        );
    }
    let _ = write!(
        body,
        r#"</select></label> <label>job id <input name="q" value="{}" placeholder="part of a job id"></label> <button type="submit">filter</button></form>"#,
        esc(text)
    );
    if views.is_empty() {
        body.push_str(r#"<p class="empty">No job matches.</p>"#);
    } else {
        body.push_str(
            r#"<table class="jobs"><thead><tr><th>job</th><th>status</th><th>parties</th><th>submitted</th><th>started</th><th>ended</th><th>progress</th></tr></thead><tbody>"#,
        );
        for v in views {
            let j = &v.job;
            let _ = write!(
                body,
                r#"<tr data-job-row="{id}"><td>{link}</td><td>{st}</td><td>{p}</td><td>{c}</td><td>{s}</td><td>{e}</td><td>{pr}%</td></tr>"#,
                id = esc(&j.job_id),
                link = job_link(&j.job_id),
                st = status(j.status.as_str()),
                p = parties(&v.parties),
                c = time(j.create_ms),
                s = time(j.start_ms),
                e = time(j.end_ms),
                pr = j.progress,
            );
        }
        body.push_str("</tbody></table>");
    }
    if let Some(token) = next {
        let _ = write!(
            body,
            r#"<p class="more"><a href="/jobs?status={}&amp;q={}&amp;page={}">next page →</a></p>"#,
            esc(status_filter),
            esc(text),
            esc(token)
        );
    }
    page(party, "jobs", &body)
}

/// A job: its facts, why it failed or what it waits for, its DAG, and a table of every task's
/// federated and per-party status. The script keeps the statuses live.
pub fn job(
    party: &str,
    view: &JobView,
    spec: &JobSpec,
    tasks: &[TaskView],
    queue_position: Option<usize>,
) -> String {
    let j = &view.job;
    let id = esc(&j.job_id);
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<section data-job="{id}" data-events="/jobs/{seg}/events"><h1>Job {id}</h1><dl class="facts"><dt>status</dt><dd><span class="status s-{st}" data-job-status>{st}</span></dd><dt>initiator</dt><dd>{init}</dd><dt>parties</dt><dd>{p}</dd><dt>submitted</dt><dd>{c}</dd><dt>started</dt><dd>{s}</dd><dt>ended</dt><dd>{e}</dd><dt>progress</dt><dd data-job-progress>{pr}%</dd></dl>"#,
        seg = url_segment(&j.job_id),
        st = j.status.as_str(),
        init = esc(&j.initiator.to_string()),
        p = parties(&view.parties),
        c = time(j.create_ms),
        s = time(j.start_ms),
        e = time(j.end_ms),
        pr = j.progress,
    );
    let reason_shown = if j.status == JobStatus::Waiting {
        let mut text = match queue_position {
            Some(n) => format!("waiting in the queue, position {n}"),
            None => "waiting in the queue".to_owned(),
        };
        if !j.pending_reason.is_empty() {
            let _ = write!(text, ": {}", j.pending_reason);
        }
        text
    } else {
        j.reason.clone()
    };
    let _ = write!(
        body,
        r#"<p class="reason" data-job-reason{hidden}>{}</p>"#,
        esc(&reason_shown),
        hidden = if reason_shown.is_empty() {
            " hidden"
        } else {
            ""
        }
    );
    let statuses: Vec<String> = spec
        .components
        .iter()
        .map(|c| {
            tasks
                .iter()
                .find(|t| t.task.component == c.name)
                .map_or("waiting", |t| t.task.status.as_str())
                .to_owned()
        })
        .collect();
    let nodes: Vec<svg::Node<'_>> = spec
        .components
        .iter()
        .zip(&statuses)
        .map(|(c, s)| svg::Node {
            name: &c.name,
            module: &c.module,
            status: s,
            upstream: &c.upstream,
        })
        .collect();
    let base = format!("/jobs/{}/tasks", url_segment(&j.job_id));
    let _ = write!(
        body,
        r#"<h2>DAG</h2><div class="dag-box">{}</div>"#,
        svg::dag(&nodes, &base)
    );
    body.push_str(r#"<h2>Tasks</h2><table class="tasks"><thead><tr><th>component</th><th>module</th><th>version</th><th>status</th>"#);
    for p in &view.parties {
        let _ = write!(body, "<th>{}</th>", esc(&p.to_string()));
    }
    body.push_str("<th>reason</th></tr></thead><tbody>");
    for (c, st) in spec.components.iter().zip(&statuses) {
        let task = tasks.iter().find(|t| t.task.component == c.name);
        let name = esc(&c.name);
        let _ = write!(
            body,
            r#"<tr><td><a href="{base}/{seg}">{name}</a></td><td>{m}</td><td data-version-of="{name}">{v}</td><td><span class="status s-{st}" data-status-of="{name}">{st}</span></td>"#,
            base = esc(&base),
            seg = url_segment(&c.name),
            m = esc(&c.module),
            v = task.map_or(String::from("–"), |t| t.task.version.to_string()),
            st = esc(st),
        );
        for p in &view.parties {
            let who = p.to_string();
            let own = task
                .and_then(|t| t.parties.iter().find(|tp| tp.who == *p))
                .map_or("waiting", |tp| tp.status.as_str());
            let _ = write!(
                body,
                r#"<td><span class="status s-{own}" data-status-of="{name}|{who}">{own}</span></td>"#,
                who = esc(&who),
            );
        }
        let _ = write!(
            body,
            r#"<td class="reason" data-reason-of="{name}">{}</td></tr>"#,
            esc(task.map_or("", |t| t.task.reason.as_str()))
        );
    }
    body.push_str(
        r#"</tbody></table><p class="live" data-live>live updates: connecting…</p></section>"#,
    );
    page(party, &format!("job {}", j.job_id), &body)
}

/// A task: every attempt (version) with each party's status, then this party's side: its log
/// tail per role, its outputs and its metric plots.
pub fn task(
    party: &str,
    job: &Job,
    component: &str,
    module: &str,
    participants: &[Participant],
    attempts: &[TaskView],
    own: &Own,
) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        r#"<h1>Task {c}</h1><p>of job {link} · module <code>{m}</code> · job status {st}</p>"#,
        c = esc(component),
        link = job_link(&job.job_id),
        m = esc(module),
        st = status(job.status.as_str()),
    );
    body.push_str(r#"<h2>Attempts</h2>"#);
    if attempts.is_empty() {
        body.push_str(r#"<p class="empty">Not started yet.</p>"#);
    } else {
        body.push_str(r#"<table class="attempts"><thead><tr><th>version</th><th>status</th><th>started</th><th>ended</th>"#);
        for p in participants {
            let _ = write!(body, "<th>{}</th>", esc(&p.to_string()));
        }
        body.push_str("<th>reason</th></tr></thead><tbody>");
        for a in attempts.iter().rev() {
            let t = &a.task;
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                t.version,
                status(t.status.as_str()),
                time(t.start_ms),
                time(t.end_ms)
            );
            for p in participants {
                match a.parties.iter().find(|tp| tp.who == *p) {
                    Some(tp) => {
                        let _ = write!(body, "<td>{}", status(tp.status.as_str()));
                        if !tp.reason.is_empty() {
                            let _ =
                                write!(body, r#"<div class="reason">{}</div>"#, esc(&tp.reason));
                        }
                        body.push_str("</td>");
                    }
                    None => body.push_str("<td>–</td>"),
                }
            }
            let _ = write!(body, r#"<td class="reason">{}</td></tr>"#, esc(&t.reason));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(r#"<h2>Metrics</h2>"#);
    match &own.metric {
        Ok(Some(metric)) => {
            let plots = svg::plots(metric);
            if plots.is_empty() {
                body.push_str(r#"<p class="empty">The metric has no series to plot.</p>"#);
            } else {
                body.push_str(r#"<div class="plots">"#);
                for p in &plots {
                    body.push_str(&svg::plot(p));
                }
                body.push_str("</div>");
            }
            let pretty = serde_json::to_string_pretty(metric).unwrap_or_default();
            let _ = write!(
                body,
                r#"<details><summary>metric JSON</summary><pre>{}</pre></details>"#,
                esc(&pretty)
            );
        }
        Ok(None) => body.push_str(r#"<p class="empty">No metric on this party.</p>"#),
        Err(e) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(e));
        }
    }
    let _ = write!(body, r#"<h2>Outputs on party {}</h2>"#, esc(party));
    match &own.outputs {
        Ok(outputs) if outputs.is_empty() => body.push_str(r#"<p class="empty">None yet.</p>"#),
        Ok(outputs) => {
            body.push_str(r#"<table class="outputs"><thead><tr><th>output</th><th>kind</th><th>type</th><th>role</th><th>version</th><th>bytes</th><th>overview</th></tr></thead><tbody>"#);
            for o in outputs {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    esc(&o.key),
                    esc(&o.kind),
                    esc(&o.type_name),
                    esc(&o.role),
                    o.version,
                    o.size_bytes,
                    esc(&o.overview)
                );
            }
            body.push_str("</tbody></table>");
        }
        Err(e) => {
            let _ = write!(body, r#"<p class="error">{}</p>"#, esc(e));
        }
    }
    let _ = write!(body, r#"<h2>Log on party {}</h2>"#, esc(party));
    if own.logs.is_empty() {
        body.push_str(r#"<p class="empty">This party takes no part in the task.</p>"#);
    }
    for (who, log) in &own.logs {
        let _ = write!(body, "<h3>{}</h3>", esc(&who.to_string()));
        match log {
            Ok(text) if text.is_empty() => body.push_str(r#"<p class="empty">Empty.</p>"#),
            Ok(text) => {
                let _ = write!(body, r#"<pre class="log">{}</pre>"#, esc(text));
            }
            Err(e) => {
                let _ = write!(body, r#"<p class="empty">{}</p>"#, esc(e));
            }
        }
    }
    page(party, &format!("task {component}"), &body)
}

/// The queue: waiting jobs in the order they are tried, with what each lacks.
pub fn queue(party: &str, waiting: &[Job]) -> String {
    let mut body = String::from("<h1>Queue</h1>");
    if waiting.is_empty() {
        body.push_str(r#"<p class="empty">No job is waiting.</p>"#);
    } else {
        body.push_str(r#"<table class="queue"><thead><tr><th>position</th><th>job</th><th>priority</th><th>queued since</th><th>waiting for</th></tr></thead><tbody>"#);
        for (i, j) in waiting.iter().enumerate() {
            let _ = write!(
                body,
                r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class="reason">{}</td></tr>"#,
                i + 1,
                job_link(&j.job_id),
                j.priority,
                time(j.queued_ms),
                esc(&j.pending_reason)
            );
        }
        body.push_str("</tbody></table>");
    }
    page(party, "queue", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_specials_are_escaped() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time(0), "–");
        assert_eq!(time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
