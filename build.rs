//! Build script of the `criu` package.
//!
//! Two independent jobs, each in its own file under `core/build/`:
//! - `blobs`: builds the parasite and restorer blobs for the *target*
//!   architecture with a nested cargo and emits their bytes, relocations and
//!   exported symbols into `OUT_DIR`;
//! - `protos`: compiles the image `.proto` files (no `protoc` needed).

#[path = "core/build/blobs.rs"]
mod blobs;
#[path = "core/build/protos.rs"]
mod protos;

fn main() {
    blobs::build();
    protos::build();
}
