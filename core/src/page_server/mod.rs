//! CRIU's page server: pages of a dump sent over TCP instead of written
//! into the images directory (`criu dump --page-server`), and received and
//! written as images on the other side (`criu page-server`), with CRIU's
//! wire protocol so that either side may be CRIU.
//!
//! - [`wire`]: the messages (`page_server_iov`, the `PS_IOV_*` commands);
//! - [`client`]: the dump's connection;
//! - [`server`]: one session, writing the pagemaps and pages images;
//! - [`listen`]: the `criu page-server` command (address, port, `-d`,
//!   `--pidfile`, `--status-fd`, `--ps-socket`).

pub mod client;
pub mod listen;
pub mod server;
pub mod wire;

pub use client::{ClientError, Connection};
pub use wire::Target;
