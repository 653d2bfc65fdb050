//! `--page-server`: the dump's one connection to a page server, made
//! before any task is touched (an unreachable server fails the dump with
//! the tree untouched) and closed with `PS_IOV_FLUSH` once every image is
//! written, before the tree is let go or killed: a server that fails or
//! goes away at any point fails the dump, and the tree runs on.

use std::sync::{Arc, Mutex, MutexGuard};

use super::DumpError;
use crate::opts::CommonOpts;
use crate::page_server::{ClientError, Connection};

/// The connection, shared by the tracer threads (one task's pages at a
/// time: the protocol has one open pagemap).
pub type Shared = Arc<Mutex<Connection>>;

/// Connect as `--ps-socket`, or `--address`/`--port`, ask; `None` without
/// `--page-server`.
pub fn connect(common: &CommonOpts) -> Result<Option<Shared>, DumpError> {
    if !common.use_page_server {
        return Ok(None);
    }
    let conn = match (common.ps_socket, &common.address, common.port) {
        (Some(fd), _, _) => Connection::adopt(fd)?,
        (None, Some(addr), Some(port)) => Connection::connect(addr, port)?,
        _ => return Err(ClientError::NoAddress.into()),
    };
    Ok(Some(Arc::new(Mutex::new(conn))))
}

/// The connection for one task's pages (a thread that panicked holding it
/// left nothing half-sent that matters: the dump fails anyway).
pub fn lock(s: &Shared) -> MutexGuard<'_, Connection> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Flush: the server answers once everything is written.
pub fn finish(s: Option<Shared>) -> Result<(), DumpError> {
    let Some(s) = s else { return Ok(()) };
    let conn = match Arc::try_unwrap(s) {
        Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()),
        Err(_) => return Err(ClientError::Busy.into()),
    };
    conn.finish()?;
    Ok(())
}
