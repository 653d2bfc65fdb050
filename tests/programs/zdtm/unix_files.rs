//! The files of unix sockets (CRIU's sk-unix `file_perms` and `deleted`;
//! zdtm's sk-unix-mode, deleted_unix_sock, del_standalone_un):
//!
//! - `DIR/perm.sock`, a listener whose socket file got mode 0640 and owner
//!   1234:2345: after restore the file has them again and a new client
//!   connects to it by its path;
//! - `DIR/gone/del.sock`, a listener with an accepted connection and one
//!   not accepted yet, whose file and directory were then removed: after
//!   restore `DIR/gone` is still absent, the listener still says it is
//!   bound to that name, the pending connection is accepted, and both
//!   connections carry data both ways;
//! - `DIR/reused.sock`, a datagram socket with a sender connected to it,
//!   whose file was removed and whose path now holds someone else's
//!   regular file: after restore that file is untouched and the sender
//!   still reaches the receiver;
//! - `rel.sock`, a datagram socket bound by a relative name in `DIR/rel`,
//!   the program's cwd: after restore it is still bound to `rel.sock`,
//!   its file in `DIR/rel` has its mode 0600, and its sender reaches it.
//!   With the argument `cwd-moved` the program leaves `DIR/rel` after the
//!   bind: where the name points is then unknown, and the dump must refuse
//!   the socket by name (as CRIU does); the program runs on.
#[path = "lib.rs"]
mod zdtm;

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};
use zdtm::ensure;

const OTHERS: &str = "someone else's file";

struct State {
    dir: PathBuf,
    perm: OwnedFd,
    del: OwnedFd,
    client: OwnedFd,
    accepted: OwnedFd,
    pending: OwnedFd,
    receiver: OwnedFd,
    sender: OwnedFd,
    rel: OwnedFd,
    rel_sender: OwnedFd,
}

fn main() {
    zdtm::run(setup, |_| {}, check);
}

fn socket(kind: SocketType) -> Result<OwnedFd, String> {
    rustix::net::socket_with(AddressFamily::UNIX, kind, SocketFlags::CLOEXEC, None)
        .map_err(|e| format!("socket: {e}"))
}

fn addr(p: &Path) -> Result<SocketAddrUnix, String> {
    SocketAddrUnix::new(p).map_err(|e| format!("{}: {e}", p.display()))
}

fn listener(p: &Path) -> Result<OwnedFd, String> {
    let fd = socket(SocketType::STREAM)?;
    rustix::net::bind(&fd, &addr(p)?).map_err(|e| format!("bind {}: {e}", p.display()))?;
    rustix::net::listen(&fd, 8).map_err(|e| format!("listen: {e}"))?;
    Ok(fd)
}

fn connect(p: &Path, kind: SocketType) -> Result<OwnedFd, String> {
    let fd = socket(kind)?;
    rustix::net::connect(&fd, &addr(p)?).map_err(|e| format!("connect {}: {e}", p.display()))?;
    Ok(fd)
}

fn send(fd: impl AsFd, data: &[u8]) -> Result<(), String> {
    let n = rustix::net::send(fd, data, SendFlags::empty()).map_err(|e| format!("send: {e}"))?;
    ensure(n == data.len(), || format!("sent {n} of {}", data.len()))
}

fn recv(fd: impl AsFd, want: &[u8], what: &str) -> Result<(), String> {
    let mut buf = vec![0u8; 256];
    let (n, _) = rustix::net::recv(fd, &mut buf[..], RecvFlags::DONTWAIT)
        .map_err(|e| format!("{what}: recv: {e}"))?;
    ensure(&buf[..n] == want, || {
        format!("{what}: got {:?}, want {:?}", &buf[..n], want)
    })
}

/// The path the socket says it is bound to.
fn bound_name(fd: &OwnedFd) -> Result<PathBuf, String> {
    let a = rustix::net::getsockname(fd).map_err(|e| format!("getsockname: {e}"))?;
    let u = SocketAddrUnix::try_from(a).map_err(|e| format!("not a unix address: {e}"))?;
    u.path()
        .map(|p| PathBuf::from(p.to_string_lossy().into_owned()))
        .ok_or_else(|| "not bound to a path".to_string())
}

fn setup(args: &zdtm::Args) -> Result<State, String> {
    let dir = args.dir.clone();
    let perm_path = dir.join("perm.sock");
    let perm = listener(&perm_path)?;
    std::os::unix::fs::chown(&perm_path, Some(1234), Some(2345)).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&perm_path, std::fs::Permissions::from_mode(0o640))
        .map_err(|e| e.to_string())?;

    let gone = dir.join("gone");
    std::fs::create_dir(&gone).map_err(|e| e.to_string())?;
    let del_path = gone.join("del.sock");
    let del = listener(&del_path)?;
    let client = connect(&del_path, SocketType::STREAM)?;
    let (accepted, _) = rustix::net::acceptfrom_with(&del, SocketFlags::CLOEXEC)
        .map_err(|e| format!("accept: {e}"))?;
    let pending = connect(&del_path, SocketType::STREAM)?;
    send(&client, b"to server")?;
    send(&accepted, b"to client")?;
    std::fs::remove_file(&del_path).map_err(|e| e.to_string())?;
    std::fs::remove_dir(&gone).map_err(|e| e.to_string())?;

    let reused = dir.join("reused.sock");
    let receiver = socket(SocketType::DGRAM)?;
    rustix::net::bind(&receiver, &addr(&reused)?).map_err(|e| format!("bind: {e}"))?;
    let sender = connect(&reused, SocketType::DGRAM)?;
    send(&sender, b"queued")?;
    std::fs::remove_file(&reused).map_err(|e| e.to_string())?;
    std::fs::write(&reused, OTHERS).map_err(|e| e.to_string())?;

    let rel_dir = dir.join("rel");
    std::fs::create_dir(&rel_dir).map_err(|e| e.to_string())?;
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    std::env::set_current_dir(&rel_dir).map_err(|e| e.to_string())?;
    let rel = socket(SocketType::DGRAM)?;
    rustix::net::bind(&rel, &addr(Path::new("rel.sock"))?)
        .map_err(|e| format!("bind rel.sock: {e}"))?;
    if args.rest.iter().any(|a| a == "cwd-moved") {
        std::env::set_current_dir(&cwd).map_err(|e| e.to_string())?;
    }
    std::fs::set_permissions(
        rel_dir.join("rel.sock"),
        std::fs::Permissions::from_mode(0o600),
    )
    .map_err(|e| e.to_string())?;
    let rel_sender = connect(&rel_dir.join("rel.sock"), SocketType::DGRAM)?;
    Ok(State {
        dir,
        perm,
        del,
        client,
        accepted,
        pending,
        receiver,
        sender,
        rel,
        rel_sender,
    })
}

fn check(s: State) -> Result<(), String> {
    // The socket file's mode and owner.
    let perm_path = s.dir.join("perm.sock");
    let m = std::fs::symlink_metadata(&perm_path).map_err(|e| format!("perm.sock: {e}"))?;
    ensure(m.file_type().is_socket(), || {
        "perm.sock is no socket".into()
    })?;
    ensure(m.mode() & 0o7777 == 0o640, || {
        format!("perm.sock: mode {:o}, want 640", m.mode() & 0o7777)
    })?;
    ensure((m.uid(), m.gid()) == (1234, 2345), || {
        format!("perm.sock: owner {}:{}, want 1234:2345", m.uid(), m.gid())
    })?;
    let c = connect(&perm_path, SocketType::STREAM)?;
    let (a, _) = rustix::net::acceptfrom_with(&s.perm, SocketFlags::CLOEXEC)
        .map_err(|e| format!("perm.sock: accept: {e}"))?;
    send(&c, b"hi")?;
    recv(&a, b"hi", "perm.sock connection")?;

    // The deleted listener and its connections.
    let gone = s.dir.join("gone");
    ensure(!gone.exists(), || {
        format!("{} exists again after restore", gone.display())
    })?;
    let name = bound_name(&s.del)?;
    ensure(name == gone.join("del.sock"), || {
        format!("the deleted listener is bound to {}", name.display())
    })?;
    recv(&s.accepted, b"to server", "accepted connection")?;
    recv(&s.client, b"to client", "client")?;
    send(&s.client, b"again")?;
    recv(&s.accepted, b"again", "accepted connection")?;
    let (late, _) = rustix::net::acceptfrom_with(&s.del, SocketFlags::CLOEXEC)
        .map_err(|e| format!("accepting the pending connection: {e}"))?;
    send(&s.pending, b"late")?;
    recv(&late, b"late", "pending connection")?;
    send(&late, b"back")?;
    recv(&s.pending, b"back", "pending client")?;

    // The datagram receiver whose path someone else took.
    let reused = s.dir.join("reused.sock");
    let text = std::fs::read_to_string(&reused).map_err(|e| format!("reused.sock: {e}"))?;
    ensure(text == OTHERS, || format!("reused.sock now holds {text:?}"))?;
    recv(&s.receiver, b"queued", "receiver")?;
    send(&s.sender, b"after")?;
    recv(&s.receiver, b"after", "receiver")?;

    // The relative name.
    let name = bound_name(&s.rel)?;
    ensure(name == Path::new("rel.sock"), || {
        format!("the relative socket is bound to {}", name.display())
    })?;
    let m = std::fs::symlink_metadata(s.dir.join("rel/rel.sock"))
        .map_err(|e| format!("rel/rel.sock: {e}"))?;
    ensure(
        m.file_type().is_socket() && m.mode() & 0o7777 == 0o600,
        || format!("rel/rel.sock: mode {:o}", m.mode()),
    )?;
    send(&s.rel_sender, b"rel")?;
    recv(&s.rel, b"rel", "relative socket")
}
