//! How the CLI shows things: aligned text for people, one JSON document for scripts.

use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::convert::{job_status_name, task_status_name};
use serde_json::{Value, json};

fn job_json(job: &pb::Job) -> Value {
    json!({
        "job_id": job.job_id,
        "status": job_status_name(job.status),
        "initiator": job.initiator.as_ref().map(|i| json!({"role": i.role, "party_id": i.party_id})),
        "parties": job.parties.iter().map(|p| json!({"role": p.role, "party_id": p.party_id})).collect::<Vec<_>>(),
        "priority": job.priority,
        "progress": job.progress,
        "reason": job.reason,
        "pending_reason": job.pending_reason,
        "cancel_requested": job.cancel_requested,
        "create_time_ms": job.create_time_ms,
        "start_time_ms": job.start_time_ms,
        "end_time_ms": job.end_time_ms,
        "elapsed_ms": job.elapsed_ms,
    })
}

pub fn job(job: &pb::Job, as_json: bool) {
    if as_json {
        println!("{}", job_json(job));
        return;
    }
    println!("job_id:     {}", job.job_id);
    println!("status:     {}", job_status_name(job.status));
    if let Some(i) = &job.initiator {
        println!("initiator:  {} {}", i.role, i.party_id);
    }
    let parties: Vec<String> = job
        .parties
        .iter()
        .map(|p| format!("{} {}", p.role, p.party_id))
        .collect();
    println!("parties:    {}", parties.join(", "));
    println!("progress:   {}%", job.progress);
    if !job.pending_reason.is_empty() {
        println!("waiting:    {}", job.pending_reason);
    }
    if !job.reason.is_empty() {
        println!("reason:     {}", job.reason);
    }
    if job.elapsed_ms > 0 {
        println!("elapsed:    {} ms", job.elapsed_ms);
    }
}

/// A page of jobs; with `next_page_token` (empty on the last page) for the next.
pub fn jobs(jobs: &[pb::Job], next_page_token: &str, as_json: bool) {
    if as_json {
        let list: Vec<Value> = jobs.iter().map(job_json).collect();
        println!(
            "{}",
            json!({"jobs": list, "next_page_token": next_page_token})
        );
        return;
    }
    println!("{:<26} {:<9} {:>5}  REASON", "JOB_ID", "STATUS", "PROG");
    for job in jobs {
        let reason = if job.reason.is_empty() {
            &job.pending_reason
        } else {
            &job.reason
        };
        println!(
            "{:<26} {:<9} {:>4}%  {}",
            job.job_id,
            job_status_name(job.status),
            job.progress,
            reason
        );
    }
    if !next_page_token.is_empty() {
        println!("next page: --page-token {next_page_token}");
    }
}

pub fn tasks(tasks: &[pb::Task], as_json: bool) {
    if as_json {
        let list: Vec<Value> = tasks
            .iter()
            .map(|t| {
                json!({
                    "component": t.component,
                    "module": t.module,
                    "version": t.version,
                    "status": task_status_name(t.status),
                    "reason": t.reason,
                    "parties": t.parties.iter().map(|p| json!({
                        "role": p.role, "party_id": p.party_id,
                        "status": task_status_name(p.status), "reason": p.reason,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", Value::Array(list));
        return;
    }
    println!(
        "{:<16} {:>3} {:<9} {:<8} {:<10} {:<9} REASON",
        "COMPONENT", "VER", "STATUS", "ROLE", "PARTY", "PARTY_ST"
    );
    for task in tasks {
        for (i, party) in task.parties.iter().enumerate() {
            let (component, version, status) = if i == 0 {
                (
                    task.component.as_str(),
                    task.version.to_string(),
                    task_status_name(task.status),
                )
            } else {
                ("", String::new(), "")
            };
            println!(
                "{:<16} {:>3} {:<9} {:<8} {:<10} {:<9} {}",
                component,
                version,
                status,
                party.role,
                party.party_id,
                task_status_name(party.status),
                party.reason
            );
        }
    }
}

pub fn event(event: &pb::JobEvent, as_json: bool) {
    match &event.event {
        Some(pb::job_event::Event::Job(job)) => {
            if as_json {
                println!(
                    "{}",
                    json!({"time_ms": event.time_ms, "job_id": event.job_id,
                        "status": job_status_name(job.status), "reason": job.reason})
                );
            } else if job.reason.is_empty() {
                println!("job {} {}", event.job_id, job_status_name(job.status));
            } else {
                println!(
                    "job {} {}: {}",
                    event.job_id,
                    job_status_name(job.status),
                    job.reason
                );
            }
        }
        Some(pb::job_event::Event::Task(task)) => {
            let scope = if task.party_id.is_empty() {
                "all parties".to_owned()
            } else {
                format!("{} {}", task.role, task.party_id)
            };
            if as_json {
                println!(
                    "{}",
                    json!({"time_ms": event.time_ms, "job_id": event.job_id,
                        "component": task.component, "version": task.version,
                        "role": task.role, "party_id": task.party_id,
                        "status": task_status_name(task.status), "reason": task.reason})
                );
            } else if task.reason.is_empty() {
                println!(
                    "  {} v{} [{scope}] {}",
                    task.component,
                    task.version,
                    task_status_name(task.status)
                );
            } else {
                println!(
                    "  {} v{} [{scope}] {}: {}",
                    task.component,
                    task.version,
                    task_status_name(task.status),
                    task.reason
                );
            }
        }
        None => {}
    }
}
