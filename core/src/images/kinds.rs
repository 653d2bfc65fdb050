//! The one table of image kinds: file name, magic, header, message, framing.
//!
//! Mirrors CRIU's `imgset_template` (`criu/image-desc.c`) plus the message
//! type each image holds (`criu/protobuf-desc.c`, pycriu's `handlers`). Dump,
//! restore and `crit` all look images up here instead of hard-coding names.

use super::magic;

/// What precedes the entries of an image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    /// Only the type magic (inventory.img, the first file CRIU reads).
    Inventory,
    /// `IMG_COMMON_MAGIC`, then the type magic.
    Common,
    /// `IMG_SERVICE_MAGIC`, then the type magic (stats, irmap-cache).
    Service,
    /// No header: the file is raw bytes (pages, ifaddr dumps, tarballs).
    Raw,
}

/// How the body of an image is laid out after the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Repeated `[u32 LE length][protobuf message]` until end of file.
    Entries,
    /// Entries, the first one a `pagemap_head`, the rest `pagemap_entry`.
    Pagemap,
    /// Entries, each followed by raw bytes whose length the entry tells.
    Payload(Payload),
    /// One `ghost_file_entry`, then either `ghost_chunk_entry` + bytes pairs
    /// (when its `chunks` is set) or the file contents up to end of file.
    GhostFile,
    /// No entries at all.
    Raw,
}

/// Where the length of the raw bytes after an entry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload {
    /// The value of this integer field of the entry (`bytes`, `length`).
    Field(&'static str),
    /// `tcp_stream_entry`: `inq_len` bytes of input queue, then `outq_len`.
    TcpQueues,
    /// `bpfmap_data_entry`: `keys_bytes + values_bytes`.
    BpfMap,
    /// `ipc_shm_entry`: `size` bytes, padded to 4 (none when `in_pagemaps`).
    IpcShm,
    /// `ipc_sem_entry`: `nsems` u16 values, padded to 8 bytes.
    IpcSem,
    /// `ipc_msg_entry`: `qnum` times an `ipc_msg` entry plus `msize` bytes
    /// padded to 8.
    IpcMsg,
}

/// One kind of image file.
#[derive(Debug, PartialEq, Eq)]
pub struct ImageKind {
    pub kind: Kind,
    /// The name crit prints in `"magic"` (`CORE`, `PAGEMAP`, …).
    pub name: &'static str,
    pub magic: u32,
    pub header: Header,
    /// CRIU's file name pattern: `%u`/`%lu`/`%d` decimal, `%x` hex, `%s` text.
    pub file: &'static str,
    /// Protobuf message name of the entries (without package).
    pub message: Option<&'static str>,
    pub framing: Framing,
}

macro_rules! image_kinds {
    ($($variant:ident: $name:literal, $magic:ident, $header:ident, $file:literal, $msg:expr, $framing:expr;)*) => {
        /// Every image kind, named after CRIU's `CR_FD_*`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kind { $($variant,)* }

        /// The table, in [`Kind`] order.
        pub static KINDS: &[ImageKind] = &[$(ImageKind {
            kind: Kind::$variant,
            name: $name,
            magic: magic::$magic,
            header: Header::$header,
            file: $file,
            message: $msg,
            framing: $framing,
        },)*];
    };
}

use Framing::{Entries, GhostFile, Pagemap, Payload as P, Raw};
use Payload::{BpfMap, Field, IpcMsg, IpcSem, IpcShm, TcpQueues};

image_kinds! {
    Inventory: "INVENTORY", INVENTORY, Inventory, "inventory.img", Some("inventory_entry"), Entries;
    Pstree: "PSTREE", PSTREE, Common, "pstree.img", Some("pstree_entry"), Entries;
    Fdinfo: "FDINFO", FDINFO, Common, "fdinfo-%u.img", Some("fdinfo_entry"), Entries;
    Pagemap: "PAGEMAP", PAGEMAP, Common, "pagemap-%lu.img", Some("pagemap_entry"), Pagemap;
    ShmemPagemap: "PAGEMAP", PAGEMAP, Common, "pagemap-shmem-%lu.img", Some("pagemap_entry"), Pagemap;
    Pages: "PAGES", RAW, Raw, "pages-%u.img", None, Raw;
    Core: "CORE", CORE, Common, "core-%u.img", Some("core_entry"), Entries;
    Ids: "IDS", IDS, Common, "ids-%u.img", Some("task_kobj_ids_entry"), Entries;
    Mm: "MM", MM, Common, "mm-%u.img", Some("mm_entry"), Entries;
    Vmas: "VMAS", VMAS, Common, "vmas-%u.img", Some("vma_entry"), Entries;
    Creds: "CREDS", CREDS, Common, "creds-%u.img", Some("creds_entry"), Entries;
    Fs: "FS", FS, Common, "fs-%u.img", Some("fs_entry"), Entries;
    Sigact: "SIGACT", SIGACT, Common, "sigacts-%u.img", Some("sa_entry"), Entries;
    Itimers: "ITIMERS", ITIMERS, Common, "itimers-%u.img", Some("itimer_entry"), Entries;
    PosixTimers: "POSIX_TIMERS", POSIX_TIMERS, Common, "posix-timers-%u.img", Some("posix_timer_entry"), Entries;
    Rlimit: "RLIMIT", RLIMIT, Common, "rlimit-%u.img", Some("rlimit_entry"), Entries;
    Signal: "SIGNAL", SIGNAL, Common, "signal-s-%u.img", Some("signal_queue_entry"), Entries;
    Psignal: "SIGNAL", SIGNAL, Common, "signal-p-%u.img", Some("signal_queue_entry"), Entries;
    Seccomp: "SECCOMP", SECCOMP, Common, "seccomp.img", Some("seccomp_entry"), Entries;
    Files: "FILES", FILES, Common, "files.img", Some("file_entry"), Entries;
    RegFiles: "REG_FILES", REG_FILES, Common, "reg-files.img", Some("reg_file_entry"), Entries;
    ExtFiles: "EXT_FILES", EXT_FILES, Common, "ext-files.img", Some("ext_file_entry"), Entries;
    NsFiles: "NS_FILES", NS_FILES, Common, "ns-files.img", Some("ns_file_entry"), Entries;
    RemapFpath: "REMAP_FPATH", REMAP_FPATH, Common, "remap-fpath.img", Some("remap_file_path_entry"), Entries;
    GhostFile: "GHOST_FILE", GHOST_FILE, Common, "ghost-file-%x.img", Some("ghost_file_entry"), GhostFile;
    MemfdInode: "MEMFD_INODE", MEMFD_INODE, Common, "memfd.img", Some("memfd_inode_entry"), Entries;
    Pipes: "PIPES", PIPES, Common, "pipes.img", Some("pipe_entry"), Entries;
    PipesData: "PIPES_DATA", PIPES_DATA, Common, "pipes-data.img", Some("pipe_data_entry"), P(Field("bytes"));
    Fifo: "FIFO", FIFO, Common, "fifo.img", Some("fifo_entry"), Entries;
    FifoData: "FIFO_DATA", FIFO_DATA, Common, "fifo-data.img", Some("pipe_data_entry"), P(Field("bytes"));
    Unixsk: "UNIXSK", UNIXSK, Common, "unixsk.img", Some("unix_sk_entry"), Entries;
    Inetsk: "INETSK", INETSK, Common, "inetsk.img", Some("inet_sk_entry"), Entries;
    Packetsk: "PACKETSK", PACKETSK, Common, "packetsk.img", Some("packet_sock_entry"), Entries;
    NetlinkSk: "NETLINK_SK", NETLINK_SK, Common, "netlinksk.img", Some("netlink_sk_entry"), Entries;
    SkQueues: "SK_QUEUES", SK_QUEUES, Common, "sk-queues.img", Some("sk_packet_entry"), P(Field("length"));
    TcpStream: "TCP_STREAM", TCP_STREAM, Common, "tcp-stream-%x.img", Some("tcp_stream_entry"), P(TcpQueues);
    EventfdFile: "EVENTFD_FILE", EVENTFD_FILE, Common, "eventfd.img", Some("eventfd_file_entry"), Entries;
    EventpollFile: "EVENTPOLL_FILE", EVENTPOLL_FILE, Common, "eventpoll.img", Some("eventpoll_file_entry"), Entries;
    EventpollTfd: "EVENTPOLL_TFD", EVENTPOLL_TFD, Common, "eventpoll-tfd.img", Some("eventpoll_tfd_entry"), Entries;
    Signalfd: "SIGNALFD", SIGNALFD, Common, "signalfd.img", Some("signalfd_entry"), Entries;
    InotifyFile: "INOTIFY_FILE", INOTIFY_FILE, Common, "inotify.img", Some("inotify_file_entry"), Entries;
    InotifyWd: "INOTIFY_WD", INOTIFY_WD, Common, "inotify-wd.img", Some("inotify_wd_entry"), Entries;
    FanotifyFile: "FANOTIFY_FILE", FANOTIFY_FILE, Common, "fanotify.img", Some("fanotify_file_entry"), Entries;
    FanotifyMark: "FANOTIFY_MARK", FANOTIFY_MARK, Common, "fanotify-mark.img", Some("fanotify_mark_entry"), Entries;
    Timerfd: "TIMERFD", TIMERFD, Common, "timerfd.img", Some("timerfd_entry"), Entries;
    Tunfile: "TUNFILE", TUNFILE, Common, "tunfile.img", Some("tunfile_entry"), Entries;
    TtyFiles: "TTY_FILES", TTY_FILES, Common, "tty.img", Some("tty_file_entry"), Entries;
    TtyInfo: "TTY_INFO", TTY_INFO, Common, "tty-info.img", Some("tty_info_entry"), Entries;
    TtyData: "TTY_DATA", TTY_DATA, Common, "tty-data.img", Some("tty_data_entry"), Entries;
    FileLocks: "FILE_LOCKS", FILE_LOCKS, Common, "filelocks.img", Some("file_lock_entry"), Entries;
    BpfmapFile: "BPFMAP_FILE", BPFMAP_FILE, Common, "bpfmap-file.img", Some("bpfmap_file_entry"), Entries;
    BpfmapData: "BPFMAP_DATA", BPFMAP_DATA, Common, "bpfmap-data.img", Some("bpfmap_data_entry"), P(BpfMap);
    Pidfd: "PIDFD", PIDFD, Common, "pidfd.img", Some("pidfd_entry"), Entries;
    Utsns: "UTSNS", UTSNS, Common, "utsns-%u.img", Some("utsns_entry"), Entries;
    IpcVar: "IPC_VAR", IPC_VAR, Common, "ipcns-var-%u.img", Some("ipc_var_entry"), Entries;
    IpcnsShm: "IPCNS_SHM", IPCNS_SHM, Common, "ipcns-shm-%u.img", Some("ipc_shm_entry"), P(IpcShm);
    IpcnsMsg: "IPCNS_MSG", IPCNS_MSG, Common, "ipcns-msg-%u.img", Some("ipc_msg_entry"), P(IpcMsg);
    IpcnsSem: "IPCNS_SEM", IPCNS_SEM, Common, "ipcns-sem-%u.img", Some("ipc_sem_entry"), P(IpcSem);
    Mnts: "MNTS", MNTS, Common, "mountpoints-%u.img", Some("mnt_entry"), Entries;
    Netdev: "NETDEV", NETDEV, Common, "netdev-%u.img", Some("net_device_entry"), Entries;
    Netns: "NETNS", NETNS, Common, "netns-%u.img", Some("netns_entry"), Entries;
    Userns: "USERNS", USERNS, Common, "userns-%u.img", Some("userns_entry"), Entries;
    Timens: "TIMENS", TIMENS, Common, "timens-%u.img", Some("timens_entry"), Entries;
    Pidns: "PIDNS", PIDNS, Common, "pidns-%u.img", Some("pidns_entry"), Entries;
    Cgroup: "CGROUP", CGROUP, Common, "cgroup.img", Some("cgroup_entry"), Entries;
    Cpuinfo: "CPUINFO", CPUINFO, Common, "cpuinfo.img", Some("cpuinfo_entry"), Entries;
    BinfmtMisc: "BINFMT_MISC", BINFMT_MISC, Common, "binfmt-misc.img", Some("binfmt_misc_entry"), Entries;
    Autofs: "AUTOFS", AUTOFS, Common, "autofs-%u.img", Some("autofs_entry"), Entries;
    Apparmor: "APPARMOR", APPARMOR, Common, "apparmor.img", Some("apparmor_entry"), Entries;
    Stats: "STATS", STATS, Service, "stats-%s", Some("stats_entry"), Entries;
    IrmapCache: "IRMAP_CACHE", IRMAP_CACHE, Service, "irmap-cache", Some("irmap_cache_entry"), Entries;
    Ifaddr: "IFADDR", RAW, Raw, "ifaddr-%u.img", None, Raw;
    Route: "ROUTE", RAW, Raw, "route-%u.img", None, Raw;
    Route6: "ROUTE6", RAW, Raw, "route6-%u.img", None, Raw;
    Rule: "RULE", RAW, Raw, "rule-%u.img", None, Raw;
    Iptables: "IPTABLES", RAW, Raw, "iptables-%u.img", None, Raw;
    Ip6tables: "IP6TABLES", RAW, Raw, "ip6tables-%u.img", None, Raw;
    Nftables: "NFTABLES", RAW, Raw, "nftables-%u.img", None, Raw;
    NetnfCt: "NETNF_CT", RAW, Raw, "netns-ct-%u.img", None, Raw;
    NetnfExp: "NETNF_EXP", RAW, Raw, "netns-exp-%u.img", None, Raw;
    TmpfsImg: "TMPFS_IMG", RAW, Raw, "tmpfs-%u.tar.gz.img", None, Raw;
    TmpfsDev: "TMPFS_DEV", RAW, Raw, "tmpfs-dev-%u.tar.gz.img", None, Raw;
}

impl Kind {
    /// This kind's row of the table.
    pub fn desc(self) -> &'static ImageKind {
        &KINDS[self as usize]
    }

    /// File name for an image with a numeric id (ignored by fixed names).
    pub fn file_name(self, id: u64) -> String {
        self.desc().file_name(&id.to_string(), &format!("{id:x}"))
    }
}

impl ImageKind {
    /// The kind an image with this type magic holds (the first table row
    /// with it: `PAGEMAP` for pagemaps and shmem pagemaps alike).
    pub fn by_magic(magic: u32) -> Option<&'static ImageKind> {
        if magic == magic::RAW {
            return None;
        }
        KINDS.iter().find(|k| k.magic == magic)
    }

    /// The kind crit calls `name` (the `"magic"` of its JSON).
    pub fn by_name(name: &str) -> Option<&'static ImageKind> {
        KINDS
            .iter()
            .find(|k| k.name == name && k.header != Header::Raw)
    }

    /// Fills the pattern's placeholder with `dec` (for `%u`, `%d`, `%lu`,
    /// `%ld`, `%s`) or `hex` (for `%x`).
    pub fn file_name(&self, dec: &str, hex: &str) -> String {
        for (pat, val) in [
            ("%lu", dec),
            ("%ld", dec),
            ("%u", dec),
            ("%d", dec),
            ("%s", dec),
            ("%x", hex),
        ] {
            if self.file.contains(pat) {
                return self.file.replacen(pat, val, 1);
            }
        }
        self.file.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_kind_order() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.kind as usize, i, "{}", k.name);
        }
    }

    #[test]
    fn every_entry_kind_has_a_crit_name_for_its_magic() {
        for k in KINDS.iter().filter(|k| k.header != Header::Raw) {
            assert_eq!(magic::by_name(k.name), Some(k.magic), "{}", k.file);
            assert!(k.message.is_some());
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(Kind::Core.file_name(42), "core-42.img");
        assert_eq!(Kind::GhostFile.file_name(26), "ghost-file-1a.img");
        assert_eq!(Kind::Pstree.file_name(0), "pstree.img");
        assert_eq!(Kind::Stats.desc().file_name("dump", ""), "stats-dump");
        assert_eq!(
            ImageKind::by_magic(magic::PAGEMAP).map(|k| k.kind),
            Some(Kind::Pagemap)
        );
    }
}
