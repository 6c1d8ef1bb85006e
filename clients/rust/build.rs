//! Generates the electd.v1 client code at build time from the crate's own copy
//! of the API, `proto/electd/v1/*.proto`.
//!
//! The source of truth is the repository's `proto/` (two levels up). The crate
//! carries an identical copy so that the packaged crate (`cargo package`)
//! builds on its own. Inside the repository this script checks that the copy
//! is current and fails the build if it is not; `build.sh` refreshes it.
//!
//! protoc is not installed on the project's machines and cannot be downloaded,
//! so the protoc binary (and the well-known types such as
//! google/protobuf/timestamp.proto) come from the protoc-bin-vendored crate.

use std::fs;
use std::path::{Path, PathBuf};

type BoxError = Box<dyn std::error::Error>;

fn main() {
    // Display, not Debug: the messages span lines.
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), BoxError> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("proto");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    if let Some(repo_proto) = repository_proto(&manifest_dir) {
        println!("cargo:rerun-if-changed={}", repo_proto.display());
        check_copy(&repo_proto, &proto_root)?;
    }

    let protos = proto_files(&proto_root.join("electd/v1"))?;
    if protos.is_empty() {
        return Err(format!(
            "no .proto files in {}",
            proto_root.join("electd/v1").display()
        )
        .into());
    }

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        // The server stubs exist for the crate's own tests (in-process
        // servers); the library itself is a client only.
        .build_server(true)
        .server_mod_attribute("electd.v1", "#[cfg(test)]")
        // Test servers implement only the RPCs they play; the others answer
        // UNIMPLEMENTED.
        .generate_default_stubs(true)
        .compile_with_config(
            config,
            &protos,
            &[proto_root, protoc_bin_vendored::include_path()?],
        )?;
    Ok(())
}

/// The repository's `proto/` when this crate is `clients/rust` of an electd
/// checkout (not when it is built from a packaged `.crate`).
fn repository_proto(manifest_dir: &Path) -> Option<PathBuf> {
    let repo = manifest_dir.join("../..");
    let ours = repo.join("clients/rust").canonicalize().ok()?;
    if ours != manifest_dir.canonicalize().ok()? {
        return None;
    }
    let proto = repo.join("proto").canonicalize().ok()?;
    proto.join("electd/v1").is_dir().then_some(proto)
}

/// Fails unless `copy/electd/v1` holds exactly the `.proto` files of
/// `source/electd/v1`, byte for byte.
fn check_copy(source: &Path, copy: &Path) -> Result<(), BoxError> {
    let (src_dir, copy_dir) = (source.join("electd/v1"), copy.join("electd/v1"));
    let names = |dir: &Path| -> Result<Vec<String>, BoxError> {
        Ok(proto_files(dir)?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect())
    };
    let stale = |why: String| -> BoxError {
        format!(
            "clients/rust/proto is not a copy of the repository's proto/ ({why}).\n\
             Refresh it with clients/rust/build.sh, or:\n  \
             rm -r {copy_dir} && mkdir -p {copy_dir} && cp {src_dir}/*.proto {copy_dir}/",
            copy_dir = copy_dir.display(),
            src_dir = src_dir.display(),
        )
        .into()
    };
    let (src_names, copy_names) = (names(&src_dir)?, names(&copy_dir).unwrap_or_default());
    if src_names != copy_names {
        return Err(stale(format!("files {src_names:?} vs {copy_names:?}")));
    }
    for name in &src_names {
        if fs::read(src_dir.join(name))? != fs::read(copy_dir.join(name))? {
            return Err(stale(format!("{name} differs")));
        }
    }
    Ok(())
}

/// The `.proto` files directly in `dir`, sorted.
fn proto_files(dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
