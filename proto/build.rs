//! Compiles `proto/fedflow/**/*.proto` and FATE's OSX protocol (`proto/osx/osx.proto`) with the protoc shipped in `protoc-bin-vendored`, so a
//! fresh machine needs no protoc installed. Also writes the descriptor set served by reflection.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "fedflow/common/v1/common.proto",
    "fedflow/scheduler/v1/scheduler.proto",
    "fedflow/jobcontroller/v1/jobcontroller.proto",
    "fedflow/taskcontroller/v1/taskcontroller.proto",
    "fedflow/taskcontroller/v1/sessions.proto",
    "fedflow/gateway/v1/gateway.proto",
    "fedflow/gateway/v1/transfer.proto",
    "osx/osx.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // The gateway moves payloads around without copying them.
    config.bytes(["."]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("fedflow_descriptor.bin"))
        .compile_with_config(config, PROTOS, &["."])?;
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    Ok(())
}
