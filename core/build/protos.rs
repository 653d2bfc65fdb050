//! Compiles CRIU's message definitions (`core/proto/*.proto`) at build time,
//! without `protoc`:
//!
//! - `protox` parses every `.proto` file into one `FileDescriptorSet`, which is
//!   written to `OUT_DIR/criu-images.fds` (used at run time with
//!   prost-reflect, e.g. by crit's JSON converter, which needs the `(criu)`
//!   field options kept in it);
//! - `prost-build` turns that set into Rust types: the image messages go to
//!   `OUT_DIR/pb-images/_.rs`, the RPC messages (`rpc.proto`) to
//!   `OUT_DIR/pb-rpc/_.rs`. They are split because both `opts.proto`
//!   (`CRIU_Opts`) and `rpc.proto` (`criu_opts`) would become `CriuOpts`.
//!
//! CRIU's files declare no `package`, so prost-build names its output `_.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// The file holding the RPC messages; generated into its own module.
const RPC_FILE: &str = "rpc.proto";

pub fn build() {
    let manifest = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let proto_dir = manifest.join("core/proto");
    let out_dir = PathBuf::from(env("OUT_DIR"));
    println!("cargo:rerun-if-changed=core/proto");

    let files = proto_files(&proto_dir);
    let mut compiler =
        protox::Compiler::new([&proto_dir]).unwrap_or_else(|e| panic!("protox: {e}"));
    compiler.include_imports(true).include_source_info(false);
    compiler
        .open_files(&files)
        .unwrap_or_else(|e| panic!("protox: {e:?}"));

    // Encoded by protox itself: going through prost-types would drop the
    // custom (criu) options, which prost-types cannot represent.
    let fds_path = out_dir.join("criu-images.fds");
    fs::write(&fds_path, compiler.encode_file_descriptor_set())
        .unwrap_or_else(|e| panic!("writing {}: {e}", fds_path.display()));
    let fds = compiler.file_descriptor_set();

    // Codegen only for our own files: descriptor.proto (imported by opts.proto
    // for the `extend`) maps to prost-types and needs no code.
    let ours = |f: &FileDescriptorProto| !f.name().starts_with("google/");
    generate(
        &out_dir.join("pb-images"),
        subset(&fds, |f| ours(f) && f.name() != RPC_FILE),
    );
    generate(
        &out_dir.join("pb-rpc"),
        subset(&fds, |f| f.name() == RPC_FILE),
    );
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// All `.proto` files directly in `dir`, sorted so the output is stable.
fn proto_files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| {
            e.unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    files.sort();
    files
}

fn subset(
    fds: &FileDescriptorSet,
    keep: impl Fn(&FileDescriptorProto) -> bool,
) -> FileDescriptorSet {
    FileDescriptorSet {
        file: fds.file.iter().filter(|f| keep(f)).cloned().collect(),
    }
}

fn generate(dir: &Path, fds: FileDescriptorSet) {
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    prost_build::Config::new()
        .out_dir(dir)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("prost-build into {}: {e}", dir.display()));
}
