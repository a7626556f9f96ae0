//! fedflow's domain, shared by every service and the CLI: identifiers and their validation,
//! the job and task status sets with their one transition table, the rules that derive a
//! federated status from the parties' statuses, and the FATE-Flow DSL v2 / runtime conf v2
//! parser that turns a submission into a validated [`dsl::JobSpec`] and per-party task plans.
//! [`wire`] holds the HTTP/2 settings every fedflow endpoint shares (constants only).
//!
//! Everything here is pure, no I/O and no gRPC types, except for two reads: the wall clock in
//! [`clock`] and the random salt of [`ids::new_job_id`].

#[macro_use]
mod named;

pub mod access;
pub mod aggregate;
pub mod clock;
pub mod dsl;
pub mod fate;
pub mod ids;
pub mod modules;
pub mod session;
pub mod status;
pub mod task_file;
pub mod wire;

pub use status::{JobStatus, TaskStatus, Transition};
