//! fedflow's gRPC protocol, generated from `proto/fedflow/**/*.proto`.
//!
//! Each package is a module named after it (`fedflow_proto::scheduler::v1`); services import it
//! as `pb`. [`FILE_DESCRIPTOR_SET`] is what every server serves through reflection.

#![allow(clippy::all, missing_docs)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("fedflow.common.v1");
    }
}

pub mod scheduler {
    pub mod v1 {
        tonic::include_proto!("fedflow.scheduler.v1");
    }
}

pub mod jobcontroller {
    pub mod v1 {
        tonic::include_proto!("fedflow.jobcontroller.v1");
    }
}

pub mod taskcontroller {
    pub mod v1 {
        tonic::include_proto!("fedflow.taskcontroller.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("fedflow.gateway.v1");
    }
}

/// The encoded `FileDescriptorSet` of every fedflow proto, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("fedflow_descriptor");
