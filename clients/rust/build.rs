//! Generates the electd.v1 client code from proto/ at build time.
//!
//! protoc is not installed on the project's machines and cannot be downloaded,
//! so the protoc binary (and the well-known types such as
//! google/protobuf/timestamp.proto) come from the protoc-bin-vendored crate.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    // The API lives at the repository root, outside this crate: without these
    // lines cargo would not rebuild when the .proto files change.
    let proto_root = manifest_dir.join("../../proto");
    let proto = proto_root.join("electd/v1/election_service.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-changed=build.rs");
    if !proto.exists() {
        return Err(format!(
            "{} not found: build inside the electd repository",
            proto.display()
        )
        .into());
    }

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_server(false) // a client crate: no server stubs
        .compile_with_config(
            config,
            &[proto],
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}
