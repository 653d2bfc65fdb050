//! Network locking: while a tree with established TCP connections is
//! frozen, dumped and (after it is killed) until it is restored, the
//! kernel must not answer its peers' packets with resets, nor may the
//! tree's own packets leave. The lock drops every packet of the locked
//! connections, both ways; TCP retransmits what was dropped once the
//! lock is gone, so a peer sees a pause.
//!
//! Methods (`--network-lock`, [`Method`]):
//! - **nftables** (our default): one table `inet CRIU-<id>` made over
//!   `NETLINK_NETFILTER` directly, the same table CRIU makes through
//!   libnftables (see [`nft`] for its rules). No `nft` binary, no C
//!   library. The messages are rust-netlink's `netlink-packet-netfilter`
//!   types: a maintained crate with nf_tables tables, chains, sets,
//!   elements and the expressions the rules need, in pure Rust. (The
//!   other crates were weighed: `rustables` needs bindgen and libclang to
//!   build, `nftnl` links libnftnl at run time.) The socket and the batch
//!   protocol (begin, messages with an acknowledgement each, end) are
//!   ours, in [`nfnl`], on rustix.
//! - **iptables**: CRIU's per-connection rules, made by the `iptables` and
//!   `ip6tables` commands ([`iptables`]); a clear error where they are
//!   missing.
//! - **skip**: nothing.
//!
//! The API is values, no globals: [`Lock::take`] locks a set of
//! connections, [`Lock::add`] one more; [`Lock::release`] (or dropping
//! the lock) unlocks; [`Lock::keep`] leaves the lock in place, as a dump
//! does after killing the tree, for the restore to remove with
//! [`release_named`]. Every failure path leaves nothing behind: a table
//! whose elements could not be added is deleted before the error returns.
//! Each netlink batch and each iptables command is one fallible call for
//! fault injection (`CRIU_FAULT_SYSCALL`); unlocking is an undo step and
//! is not counted.

mod iptables;
mod nfnl;
pub mod nft;
#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use rustix::io::Errno;

pub use crate::opts::NetworkLock as Method;
use nft::{Family, Tuple};

/// Errors of the lock. `Display` says what failed and, where the errno
/// has a usual cause, what to do.
#[derive(Debug, thiserror::Error)]
pub enum NetLockError {
    #[error("Locking network failed using nftables: cannot open a netfilter netlink socket: {}", os(*.0))]
    Socket(#[source] Errno),
    #[error("Locking network failed using nftables: {what}: {}{}", os(*errno), hint(*errno))]
    Kernel { what: String, errno: Errno },
    #[error(
        "Locking network failed using nftables: {what}: the kernel did not answer within {waited:?}"
    )]
    Timeout { what: String, waited: Duration },
    #[error("Locking network failed using nftables: malformed netlink answer: {0}")]
    Protocol(String),
    #[error("connection {src} - {dst}: the two ends are of different address families")]
    MixedFamilies { src: SocketAddr, dst: SocketAddr },
    #[error(
        "--network-lock iptables needs the {binary} command: {source} \
         (--network-lock nftables needs no command)"
    )]
    NoCommand {
        binary: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("Iptables configuration failed: `{cmd}` {status}: {stderr}")]
    Command {
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

impl NetLockError {
    /// Whether the table of the lock exists already: on a restore on the
    /// machine of the dump, the dump's lock is still in place.
    pub fn already_locked(&self) -> bool {
        matches!(
            self,
            NetLockError::Kernel {
                errno: Errno::EXIST,
                ..
            }
        )
    }
}

fn os(e: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(e.raw_os_error())
}

/// What usually causes `e` here.
fn hint(e: Errno) -> &'static str {
    match e {
        Errno::PERM => " (locking the network needs CAP_NET_ADMIN)",
        Errno::EXIST => {
            " (the table is there already: a lock of an earlier dump of the same tree, \
             which that dump's restore removes)"
        }
        Errno::OPNOTSUPP | Errno::PROTONOSUPPORT => {
            " (this kernel has no nf_tables: CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET)"
        }
        Errno::NOENT => " (a missing nf_tables part: inet family, filter chains or hash sets)",
        _ => "",
    }
}

/// One TCP connection: its local end and its peer, as the tree's socket
/// sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conn {
    pub src: SocketAddr,
    pub dst: SocketAddr,
}

impl Conn {
    pub fn new(src: SocketAddr, dst: SocketAddr) -> Conn {
        Conn { src, dst }
    }

    /// The connection as its packets carry it: an IPv6 socket talking to
    /// IPv4-mapped addresses sends IPv4 packets (CRIU does the same).
    fn tuple(&self) -> Result<Tuple, NetLockError> {
        let mixed = NetLockError::MixedFamilies {
            src: self.src,
            dst: self.dst,
        };
        let (s, d) = (unmap(self.src), unmap(self.dst));
        match (s, d) {
            (SocketAddr::V4(src), SocketAddr::V4(dst)) => Ok(Tuple::V4 { src, dst }),
            (SocketAddr::V6(src), SocketAddr::V6(dst)) => Ok(Tuple::V6 { src, dst }),
            _ => Err(mixed),
        }
    }
}

fn unmap(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => a,
        },
        SocketAddr::V4(_) => a,
    }
}

impl Tuple {
    fn reversed(&self) -> Tuple {
        match *self {
            Tuple::V4 { src, dst } => Tuple::V4 { src: dst, dst: src },
            Tuple::V6 { src, dst } => Tuple::V6 { src: dst, dst: src },
        }
    }
}

/// The nftables table of lock `id`: `CRIU-<id>` in family inet. CRIU 4
/// names it after the dump's run id (a UUID the inventory keeps as
/// `dump_criu_run_id`), older CRIU after the root task's pid. CRIU
/// formats `inet CRIU-<id>` into 32 bytes with the terminating NUL: the
/// name keeps its first 26 characters (`CRIU-` and 21 of a UUID), the
/// table a CRIU restore deletes.
pub fn table_name(id: impl Display) -> String {
    let mut name = format!("CRIU-{id}");
    name.truncate(TABLE_NAME_MAX);
    name
}

/// `char table[32]` less `inet ` and the NUL (see [`table_name`]).
const TABLE_NAME_MAX: usize = 32 - "inet ".len() - 1;

/// Locks the whole net namespace the calling thread is in, as CRIU does
/// for a tree in a net namespace of its own (`network_lock_internal`):
/// every packet in or out is dropped but libsoccr's marked ones, so no
/// connection of the tree sees its peer or answers it while it is frozen,
/// dumped and (killed) until it is restored. nftables: table
/// [`table_name`] of `id` (see [`nft::Batch::namespace_lock`]); iptables:
/// CRIU's chain `CRIU`. The caller enters the namespace.
pub fn lock_namespace(method: Method, id: impl Display) -> Result<(), NetLockError> {
    match method {
        Method::Skip => Ok(()),
        Method::Iptables => iptables::lock_namespace(),
        Method::Nftables => {
            let table = table_name(id);
            let mut sk = nfnl::Socket::open()?;
            let mut b = sk.batch();
            b.namespace_lock(&table);
            sk.run(b)?;
            crate::pr_info!("Locked the net namespace with table inet {table}");
            Ok(())
        }
    }
}

/// Takes away [`lock_namespace`]'s lock of the calling thread's net
/// namespace (a lock that is not there is no error).
pub fn unlock_namespace(method: Method, id: impl Display) -> Result<(), NetLockError> {
    let _undo = crate::fault::Undo::enter();
    match method {
        Method::Skip => Ok(()),
        Method::Iptables => iptables::unlock_namespace(),
        Method::Nftables => delete_table(&table_name(id)),
    }
}

/// NEWSETELEM messages per batch: four of 512 keys stay well inside a
/// netlink socket's default send buffer.
const MESSAGES_PER_BATCH: usize = 4;

/// A network lock in place. Dropping it releases it (errors are logged);
/// [`Lock::keep`] leaves it for a later [`release_named`].
#[derive(Debug)]
pub struct Lock {
    method: Method,
    table: String,
    /// nftables: whether the table exists (it is made with the first
    /// connection).
    table_made: bool,
    /// The connections locked (iptables: whose rules exist).
    locked: Vec<Tuple>,
    /// Released or kept: Drop has nothing to do.
    done: bool,
}

impl Lock {
    /// Locks `conns` with `method`, in a lock named after `id` (see
    /// [`table_name`]). With no connection nothing is made yet. On error
    /// nothing is left in place.
    pub fn take(method: Method, id: impl Display, conns: &[Conn]) -> Result<Lock, NetLockError> {
        let mut lock = Lock {
            method,
            table: table_name(id),
            table_made: false,
            locked: Vec::new(),
            done: false,
        };
        if let Err(e) = lock.add_all(conns) {
            lock.undo();
            return Err(e);
        }
        Ok(lock)
    }

    /// Locks one more connection. On error the lock is as it was.
    pub fn add(&mut self, conn: &Conn) -> Result<(), NetLockError> {
        self.add_all(std::slice::from_ref(conn))
    }

    /// The method of this lock.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The nftables table, once it exists.
    pub fn table(&self) -> Option<&str> {
        self.table_made.then_some(self.table.as_str())
    }

    /// How many connections are locked.
    pub fn len(&self) -> usize {
        self.locked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locked.is_empty()
    }

    /// Unlocks: deletes the table (nftables) or the rules (iptables).
    /// Unlocking undoes what a dump did, so fault injection leaves it
    /// alone (see [`crate::fault`]): a tree must not stay cut off because a
    /// test failed a call.
    pub fn release(mut self) -> Result<(), NetLockError> {
        self.done = true;
        let _undo = crate::fault::Undo::enter();
        self.unlock()
    }

    /// Leaves the lock in place (a dump that killed the tree): the restore
    /// removes it with [`release_named`].
    pub fn keep(mut self) {
        self.done = true;
        if self.table_made {
            crate::pr_info!("Leaving table inet {} in place for the restore", self.table);
        } else if !self.locked.is_empty() {
            crate::pr_info!(
                "Leaving the iptables rules of {} connection(s) in place for the restore",
                self.locked.len()
            );
        }
    }

    fn add_all(&mut self, conns: &[Conn]) -> Result<(), NetLockError> {
        let tuples = conns
            .iter()
            .map(Conn::tuple)
            .collect::<Result<Vec<_>, _>>()?;
        match self.method {
            Method::Skip => Ok(()),
            Method::Iptables => {
                for t in tuples {
                    iptables::switch(&t, true)?;
                    self.locked.push(t);
                }
                Ok(())
            }
            Method::Nftables => {
                if tuples.is_empty() {
                    return Ok(());
                }
                let mut sk = nfnl::Socket::open()?;
                if !self.table_made {
                    let mut b = sk.batch();
                    b.skeleton(&self.table);
                    sk.run(b)?;
                    self.table_made = true;
                    crate::pr_info!("Made table inet {} to lock the network", self.table);
                }
                add_elements(&mut sk, &self.table, &tuples)?;
                crate::pr_info!(
                    "Locked {} connection(s) in table inet {}",
                    tuples.len(),
                    self.table
                );
                self.locked.extend(tuples);
                Ok(())
            }
        }
    }

    fn unlock(&mut self) -> Result<(), NetLockError> {
        match self.method {
            Method::Skip => Ok(()),
            Method::Iptables => {
                let mut first = None;
                for t in std::mem::take(&mut self.locked) {
                    if let Err(e) = iptables::switch(&t, false) {
                        crate::pr_err!("{e}");
                        first.get_or_insert(e);
                    }
                }
                first.map_or(Ok(()), Err)
            }
            Method::Nftables => {
                if !std::mem::take(&mut self.table_made) {
                    return Ok(());
                }
                delete_table(&self.table)
            }
        }
    }

    /// Takes back a failed [`Lock::take`]: its steps are undo steps.
    fn undo(&mut self) {
        self.done = true;
        let _undo = crate::fault::Undo::enter();
        if let Err(e) = self.unlock() {
            crate::pr_err!("cannot take back the network lock: {e}");
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if !self.done {
            self.undo();
        }
    }
}

/// The set elements of `tuples`, both directions of each, in batches.
fn add_elements(sk: &mut nfnl::Socket, table: &str, tuples: &[Tuple]) -> Result<(), NetLockError> {
    for family in Family::ALL {
        let keys: Vec<Vec<u8>> = tuples
            .iter()
            .filter(|t| t.family() == family)
            .flat_map(|t| [t.key(), t.reversed().key()])
            .collect();
        for chunk in keys.chunks(nft::ELEMENTS_PER_MESSAGE * MESSAGES_PER_BATCH) {
            let mut b = sk.batch();
            for msg in chunk.chunks(nft::ELEMENTS_PER_MESSAGE) {
                b.new_elements(table, family, msg);
            }
            sk.run(b)?;
        }
    }
    Ok(())
}

/// Deletes table `table`; one that is not there is no error.
fn delete_table(table: &str) -> Result<(), NetLockError> {
    let mut sk = nfnl::Socket::open()?;
    let mut b = sk.batch();
    b.del_table(table);
    match sk.run(b) {
        Ok(()) => {
            crate::pr_info!("Deleted table inet {table}: network unlocked");
            Ok(())
        }
        Err(NetLockError::Kernel {
            errno: Errno::NOENT,
            ..
        }) => {
            crate::pr_info!("No table inet {table} to delete");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Removes a lock an earlier process left in place ([`Lock::keep`]): the
/// nftables table of `id` (none is fine), or the iptables rules of
/// `conns` (the method keeps no name; rules that are not there are
/// logged and skipped, as CRIU ignores them).
pub fn release_named(method: Method, id: impl Display, conns: &[Conn]) -> Result<(), NetLockError> {
    let _undo = crate::fault::Undo::enter();
    match method {
        Method::Skip => Ok(()),
        Method::Nftables => delete_table(&table_name(id)),
        Method::Iptables => {
            for c in conns {
                match iptables::switch(&c.tuple()?, false) {
                    Ok(()) => {}
                    Err(e @ NetLockError::NoCommand { .. }) => return Err(e),
                    Err(e) => crate::pr_warn!("{e}"),
                }
            }
            Ok(())
        }
    }
}

/// Whether nftables locking works here, by doing it: a probe table with
/// the lock's sets, chains, rules and one element is made, then deleted
/// (CRIU's `network_lock_nftables` check makes and deletes a table with a
/// concatenated set).
pub fn probe_nftables() -> Result<(), NetLockError> {
    let id = format!("probe-{}", rustix::process::getpid().as_raw_nonzero());
    let lo4 = |port| SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port);
    let lo6 = |port| SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
    let conns = [Conn::new(lo4(1), lo4(2)), Conn::new(lo6(1), lo6(2))];
    Lock::take(Method::Nftables, id, &conns)?.release()
}

/// The tables of every family (family number, name), as the kernel lists
/// them: for diagnostics and tests.
pub fn tables() -> Result<Vec<(u8, String)>, NetLockError> {
    nfnl::Socket::open()?.tables()
}
