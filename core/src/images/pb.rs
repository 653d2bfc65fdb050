//! Rust types for CRIU's image and RPC messages.
//!
//! Generated at build time by `core/build/protos.rs` from `core/proto/*.proto`
//! (prost). The message names follow CRIU's (`core_entry` → [`CoreEntry`],
//! `file_entry` → [`FileEntry`], ...). CRIU's files have no protobuf package,
//! so full names in the descriptor set are bare (`core_entry`).
//!
//! Note that [`CriuOpts`] here is CRIU's *field option* message (`CRIU_Opts`
//! from `opts.proto`); the RPC options are [`rpc::CriuOpts`].

// The generated code is not ours to document or lint.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/pb-images/_.rs"));

/// Messages of the service/swrk protocol (`rpc.proto`).
pub mod rpc {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    include!(concat!(env!("OUT_DIR"), "/pb-rpc/_.rs"));
}

/// Encoded `google.protobuf.FileDescriptorSet` of every `.proto` file
/// (including `rpc.proto` and `google/protobuf/descriptor.proto`), with the
/// `(criu)` field options, for use with prost-reflect.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/criu-images.fds"));
