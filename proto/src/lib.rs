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

/// FATE 2.x's OSX private transfer protocol (`proto/osx/osx.proto`, package `org.ppc.ptp`),
/// which pyfate's `osx` federation backend speaks to the party-gateway's data-plane port.
#[allow(non_camel_case_types)]
pub mod osx {
    include!(concat!(env!("OUT_DIR"), "/org.ppc.ptp.rs"));
}

/// The encoded `FileDescriptorSet` of every fedflow proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fedflow_descriptor");
