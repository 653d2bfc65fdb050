//! Kernel constants at the types the code uses. Every value that
//! linux-raw-sys has (generated from each architecture's uapi headers, so
//! per-arch differences such as ppc64's socket options come out right)
//! is taken from it; the few it does not export are defined here, each
//! from a generic uapi header that has the same value on every
//! architecture. `tests/kernel_constants.rs` keeps hand-written kernel
//! constants out of the rest of the code.

use linux_raw_sys::{net, netlink};

// Netlink (linux/netlink.h, linux/rtnetlink.h).
pub const NLM_F_REQUEST: u16 = netlink::NLM_F_REQUEST as u16;
pub const NLM_F_DUMP: u16 = netlink::NLM_F_DUMP as u16;
pub const NLMSG_ERROR: u16 = netlink::NLMSG_ERROR as u16;
pub const NLMSG_DONE: u16 = netlink::NLMSG_DONE as u16;
pub const NLMSG_HDRLEN: usize = size_of::<netlink::nlmsghdr>();
const _: () = assert!(NLMSG_HDRLEN == 16);
pub const NLA_HDRLEN: usize = size_of::<netlink::nlattr>();
const _: () = assert!(NLA_HDRLEN == 4);
pub const RTM_NEWNSID: u16 = netlink::RTM_NEWNSID as u16;
pub const RTM_GETNSID: u16 = netlink::RTM_GETNSID as u16;
pub const NLM_F_ACK: u16 = netlink::NLM_F_ACK as u16;
pub const NLM_F_CREATE: u16 = netlink::NLM_F_CREATE as u16;
pub const NLM_F_EXCL: u16 = netlink::NLM_F_EXCL as u16;
pub const NLM_F_APPEND: u16 = netlink::NLM_F_APPEND as u16;

// Netfilter (linux/netfilter.h; the nf_tables ones below are not in
// linux-raw-sys).
pub const NF_DROP: u32 = net::NF_DROP;
pub const NF_ACCEPT: u32 = net::NF_ACCEPT;
pub const NFPROTO_IPV4: u8 = net::NFPROTO_IPV4 as u8;
pub const NFPROTO_IPV6: u8 = net::NFPROTO_IPV6 as u8;
pub const NF_INET_LOCAL_IN: u32 = net::nf_inet_hooks::NF_INET_LOCAL_IN as u32;
pub const NF_INET_LOCAL_OUT: u32 = net::nf_inet_hooks::NF_INET_LOCAL_OUT as u32;
/// `NFNL_SUBSYS_NFTABLES` (linux/netfilter/nfnetlink.h): the `res_id` of
/// an nf_tables batch.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_PAYLOAD_NETWORK_HEADER`, `NFT_PAYLOAD_TRANSPORT_HEADER`
/// (linux/netfilter/nf_tables.h): where a payload expression loads from.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;

// Address families and protocols (linux/socket.h, linux/in.h).
pub const AF_UNIX: u8 = net::AF_UNIX as u8;
pub const AF_INET: u8 = net::AF_INET as u8;
pub const AF_INET6: u8 = net::AF_INET6 as u8;
pub const AF_NETLINK: u8 = net::AF_NETLINK as u8;
pub const AF_PACKET: u8 = net::AF_PACKET as u8;
pub const IPPROTO_TCP: u8 = net::IPPROTO_TCP as u8;
pub const IPPROTO_UDP: u8 = net::IPPROTO_UDP as u8;
pub const IPPROTO_UDPLITE: u8 = net::IPPROTO_UDPLITE as u8;
pub const IPPROTO_RAW: u8 = net::IPPROTO_RAW as u8;

// Not in linux-raw-sys: generic headers, one value on every arch.

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NDIAG_PROTO_ALL` (linux/netlink_diag.h): every netlink protocol.
pub const NDIAG_PROTO_ALL: u8 = 255;
/// `UDIAG_SHOW_*` request bits (linux/unix_diag.h).
pub const UDIAG_SHOW_NAME: u32 = 0x01;
pub const UDIAG_SHOW_VFS: u32 = 0x02;
pub const UDIAG_SHOW_PEER: u32 = 0x04;
pub const UDIAG_SHOW_ICONS: u32 = 0x08;
pub const UDIAG_SHOW_RQLEN: u32 = 0x10;
/// `UNIX_DIAG_*` reply attributes (linux/unix_diag.h).
pub const UNIX_DIAG_NAME: u16 = 0;
pub const UNIX_DIAG_VFS: u16 = 1;
pub const UNIX_DIAG_PEER: u16 = 2;
pub const UNIX_DIAG_ICONS: u16 = 3;
pub const UNIX_DIAG_RQLEN: u16 = 4;
pub const UNIX_DIAG_SHUTDOWN: u16 = 6;
/// `NDIAG_SHOW_*` request bits and `NETLINK_DIAG_*` reply attributes
/// (linux/netlink_diag.h).
pub const NDIAG_SHOW_GROUPS: u32 = 0x02;
pub const NDIAG_SHOW_FLAGS: u32 = 0x08;
pub const NETLINK_DIAG_GROUPS: u16 = 1;
pub const NETLINK_DIAG_FLAGS: u16 = 4;
/// `NDIAG_FLAG_CB_RUNNING`: a dump the socket asked for is still running.
pub const NDIAG_FLAG_CB_RUNNING: u32 = 0x01;
/// `PACKET_SHOW_*` request bits, `PACKET_DIAG_*` reply attributes and
/// `PDI_*` flags of `packet_diag_info` (linux/packet_diag.h).
pub const PACKET_SHOW_INFO: u32 = 0x01;
pub const PACKET_SHOW_MCLIST: u32 = 0x02;
pub const PACKET_SHOW_RING_CFG: u32 = 0x04;
pub const PACKET_SHOW_FANOUT: u32 = 0x08;
pub const PACKET_DIAG_INFO: u16 = 0;
pub const PACKET_DIAG_MCLIST: u16 = 1;
pub const PACKET_DIAG_RX_RING: u16 = 2;
pub const PACKET_DIAG_TX_RING: u16 = 3;
pub const PACKET_DIAG_FANOUT: u16 = 4;
pub const PDI_AUXDATA: u32 = 0x02;
pub const PDI_ORIGDEV: u32 = 0x04;
pub const PDI_VNETHDR: u32 = 0x08;
pub const PDI_LOSS: u32 = 0x10;
/// `SOCK_PACKET` (linux/net.h; MIPS alone numbers socket types its own
/// way): the obsolete packet socket type.
pub const SOCK_PACKET: u32 = 10;
/// `ICMP_FILTER` (linux/icmp.h, level `SOL_RAW`) and `ICMPV6_FILTER`
/// (linux/icmpv6.h, level `SOL_ICMPV6`): which ICMP types a raw socket of
/// that protocol drops.
pub const ICMP_FILTER: u32 = 1;
pub const ICMPV6_FILTER: u32 = 1;
/// `NETNSA_*` attributes (linux/net_namespace.h).
pub const NETNSA_NSID: u16 = 1;
pub const NETNSA_PID: u16 = 2;
/// `VETH_INFO_PEER` (linux/veth.h).
pub const VETH_INFO_PEER: u16 = 1;
/// `SIOCGSKNS` (linux/sockios.h): a socket's network namespace.
pub const SIOCGSKNS: u32 = 0x894c;
/// `SIOCUNIXFILE` (linux/un.h: `SIOCPROTOPRIVATE + 0`).
pub const SIOCUNIXFILE: u32 = linux_raw_sys::ioctl::SIOCPROTOPRIVATE;
/// `PR_THP_DISABLE_EXCEPT_ADVISED` (linux/prctl.h, Linux 6.18): the flag
/// `PR_SET_THP_DISABLE` takes and `PR_GET_THP_DISABLE` reports as bit 1.
pub const PR_THP_DISABLE_EXCEPT_ADVISED: i32 = 1 << 1;
// I/O priorities (linux/ioprio.h): `ioprio_get` of one thread, and the
// class and level an I/O priority is made of.
pub const IOPRIO_WHO_PROCESS: u32 = 1;
pub const IOPRIO_CLASS_SHIFT: u32 = 13;
pub const IOPRIO_CLASS_NONE: u32 = 0;
pub const IOPRIO_CLASS_BE: u32 = 2;
/// The level of the kernel's normal best-effort priority.
pub const IOPRIO_NORM: u32 = 4;
/// `ARCH_SET_GS` (x86's asm/prctl.h; x86 only; linux-raw-sys has only
/// `ARCH_SET_FS`, 0x1002, of the pair).
pub const ARCH_SET_GS: u32 = 0x1001;
/// `ARCH_MAP_VDSO_32` (x86's asm/prctl.h; x86 only).
pub const ARCH_MAP_VDSO_32: u32 = 0x2002;
/// TCP states as sock_diag reports them (include/net/tcp_states.h, the
/// same on every arch; not a uapi header).
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_LISTEN: u8 = 10;
pub const TCP_CLOSING: u8 = 11;
pub const TCP_NEW_SYN_RECV: u8 = 12;
/// `INET_DIAG_SHUTDOWN` (linux/inet_diag.h): the reply attribute holding
/// `sk_shutdown` (a `u8`), which the kernel always adds.
pub const INET_DIAG_SHUTDOWN: u16 = 8;
/// `SIOCOUTQNSD` (linux/sockios.h, generic: only `SIOCINQ`/`SIOCOUTQ`,
/// which are `FIONREAD`/`TIOCOUTQ`, differ per arch): the bytes of a TCP
/// send queue not sent yet.
pub const SIOCOUTQNSD: u32 = 0x894b;
/// TCP option kinds (RFC 9293, 7323, 2018: wire values, the same
/// everywhere), as `TCP_REPAIR_OPTIONS` takes them (net/tcp.h, not uapi).
pub const TCPOPT_MAXSEG: u32 = 2;
pub const TCPOPT_WINDOW: u32 = 3;
pub const TCPOPT_SACK_PERM: u32 = 4;
pub const TCPOPT_TIMESTAMP: u32 = 8;
/// SysV IPC (linux/ipc.h, linux/shm.h, linux/sem.h, linux/msg.h: generic
/// headers, the same on every architecture; linux-raw-sys has none).
pub const IPC_CREAT: u32 = 0o1000;
pub const IPC_EXCL: u32 = 0o2000;
pub const IPC_NOWAIT: u32 = 0o4000;
pub const IPC_RMID: u32 = 0;
pub const IPC_SET: u32 = 1;
pub const IPC_STAT: u32 = 2;
pub const GETALL: u32 = 13;
pub const SETALL: u32 = 17;
pub const SHM_RDONLY: u32 = 0o10000;
/// `msgrcv` copies message number `msgtyp` without taking it off.
pub const MSG_COPY: u32 = 0o40000;
