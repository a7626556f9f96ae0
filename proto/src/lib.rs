//! fedflow's gRPC protocol, generated from `proto/fedflow/**/*.proto`.
//!
//! Each package is a module named after it (`fedflow_proto::scheduler::v1`); services import it
//! as `pb`. [`FILE_DESCRIPTOR_SET`] is what every server serves through reflection.

#![allow(clippy::all, missing_docs)]

/// `pub mod <name> { pub mod v1 { .. } }` for each package `fedflow.<name>.v1`, holding the
/// code generated for it (what `tonic::include_proto!("fedflow.<name>.v1")` includes).
macro_rules! v1_packages {
    ($($name:ident),+ $(,)?) => {
        $(
            pub mod $name {
                pub mod v1 {
                    include!(concat!(env!("OUT_DIR"), "/fedflow.", stringify!($name), ".v1.rs"));
                }
            }
        )+
    };
}

v1_packages!(common, scheduler, jobcontroller, taskcontroller, gateway);

/// The encoded `FileDescriptorSet` of every fedflow proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fedflow_descriptor");
