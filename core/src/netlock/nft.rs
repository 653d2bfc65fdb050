//! The nf_tables messages of the lock, as typed values of rust-netlink's
//! `netlink-packet-netfilter` (which also emits them: netlink headers and
//! attribute headers in host byte order, nf_tables attribute values in
//! network byte order, as the kernel wants).
//!
//! The table is the one CRIU's libnftables commands make, attribute for
//! attribute what `nft` sends for them:
//!
//! ```text
//! table inet CRIU-<id> {
//!     set conns4 { type ipv4_addr . inet_service . ipv4_addr . inet_service }
//!     set conns6 { type ipv6_addr . inet_service . ipv6_addr . inet_service }
//!     chain output { type filter hook output priority 0;
//!         meta mark 0xc114 accept
//!         ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop
//!         ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop }
//!     chain input { (the same, on the input hook) }
//! }
//! ```
//!
//! Each locked connection is two elements (one per direction) of `conns4`
//! or `conns6`. The mark is libsoccr's: packets a restore sends with it
//! (the repair-mode window probe) pass the lock.

use std::net::{SocketAddrV4, SocketAddrV6};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, Expressions, Hook, HookNumber, Immediate,
    ListAttribute, Lookup, Meta, MetaKey, NfTablesMessage, Operator, Payload, Register,
    RuleAttribute, RuleMessage, SetAttribute, SetElementAttribute, SetElementList,
    SetElementMessage, SetFlags, SetMessage, TableAttribute, TableFlags, TableMessage, Verdict,
    VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use crate::sys::kconst::{
    IPPROTO_TCP, NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NFNL_SUBSYS_NFTABLES,
    NFPROTO_IPV4, NFPROTO_IPV6, NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER,
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};

/// libsoccr's `SOCCR_MARK`: packets carrying it pass the lock.
pub const SOCCR_MARK: u32 = 0xC114;

/// The chains, in CRIU's order: name and netfilter hook.
const CHAINS: [(&str, u32); 2] = [("output", NF_INET_LOCAL_OUT), ("input", NF_INET_LOCAL_IN)];

/// nft's datatype numbers (its `enum datatypes`), of which a concatenated
/// key type is built: `nft list` shows the set's type from them; the
/// kernel only stores the number.
const DATATYPE_IPV4_ADDR: u32 = 7;
const DATATYPE_IPV6_ADDR: u32 = 8;
const DATATYPE_INET_SERVICE: u32 = 13;
/// nft's `TYPE_BITS`: bits per datatype in a concatenated type.
const DATATYPE_BITS: u32 = 6;

/// The two address families of the lock's sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    pub fn set_name(self) -> &'static str {
        match self {
            Family::V4 => "conns4",
            Family::V6 => "conns6",
        }
    }

    /// Transaction id of the set, for the rules of the same batch.
    fn set_id(self) -> u32 {
        match self {
            Family::V4 => 1,
            Family::V6 => 2,
        }
    }

    fn addr_len(self) -> u32 {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }

    /// Offsets of the source and destination address in the IP header.
    fn addr_offsets(self) -> (u32, u32) {
        match self {
            Family::V4 => (12, 16),
            Family::V6 => (8, 24),
        }
    }

    fn nfproto(self) -> u8 {
        match self {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        }
    }

    /// `addr . inet_service . addr . inet_service`, as nft numbers it.
    fn key_type(self) -> u32 {
        let addr = match self {
            Family::V4 => DATATYPE_IPV4_ADDR,
            Family::V6 => DATATYPE_IPV6_ADDR,
        };
        [addr, DATATYPE_INET_SERVICE, addr, DATATYPE_INET_SERVICE]
            .into_iter()
            .fold(0, |t, sub| (t << DATATYPE_BITS) | sub)
    }

    /// Key length: each field takes whole 32-bit registers.
    pub fn key_len(self) -> u32 {
        2 * (self.addr_len() + 4)
    }
}

/// One direction of a connection as the set stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tuple {
    V4 {
        src: SocketAddrV4,
        dst: SocketAddrV4,
    },
    V6 {
        src: SocketAddrV6,
        dst: SocketAddrV6,
    },
}

impl Tuple {
    pub fn family(&self) -> Family {
        match self {
            Tuple::V4 { .. } => Family::V4,
            Tuple::V6 { .. } => Family::V6,
        }
    }

    /// The set key: source address, source port, destination address,
    /// destination port, each in network byte order and padded to 32 bits
    /// (the registers the rule's payload loads fill).
    pub fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.family().key_len() as usize);
        let port = |k: &mut Vec<u8>, p: u16| {
            k.extend_from_slice(&p.to_be_bytes());
            k.extend_from_slice(&[0, 0]);
        };
        match self {
            Tuple::V4 { src, dst } => {
                k.extend_from_slice(&src.ip().octets());
                port(&mut k, src.port());
                k.extend_from_slice(&dst.ip().octets());
                port(&mut k, dst.port());
            }
            Tuple::V6 { src, dst } => {
                k.extend_from_slice(&src.ip().octets());
                port(&mut k, src.port());
                k.extend_from_slice(&dst.ip().octets());
                port(&mut k, dst.port());
            }
        }
        k
    }
}

/// Elements per `NEWSETELEM` message: 512 IPv6 keys nest into about 27
/// KiB, below the 64 KiB an attribute length can say.
pub const ELEMENTS_PER_MESSAGE: usize = 512;

/// One nfnetlink batch being built: the bytes to send and, for each
/// message that asks for an acknowledgement, its sequence number and what
/// it does (for error messages).
pub struct Batch {
    bytes: Vec<u8>,
    acks: Vec<(u32, String)>,
    begin_seq: u32,
    next_seq: u32,
}

impl Batch {
    /// A batch whose messages are numbered from `seq` on.
    pub fn new(seq: u32) -> Batch {
        let mut b = Batch {
            bytes: Vec::new(),
            acks: Vec::new(),
            begin_seq: seq,
            next_seq: seq,
        };
        b.control(ControlMessage::BatchBegin);
        b
    }

    /// The finished batch: bytes, the begin message's sequence number
    /// (where the kernel points errors about the batch as a whole) and the
    /// acknowledged messages.
    pub fn finish(mut self) -> (Vec<u8>, u32, Vec<(u32, String)>) {
        self.control(ControlMessage::BatchEnd);
        (self.bytes, self.begin_seq, self.acks)
    }

    /// Whether no message was added yet.
    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    fn control(&mut self, msg: ControlMessage) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
        self.emit(NetfilterMessage::new(header, msg), NLM_F_REQUEST);
    }

    fn emit(&mut self, msg: NetfilterMessage, flags: u16) -> u32 {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.bytes.extend_from_slice(&serialize(msg, flags, seq));
        seq
    }

    /// Adds one nf_tables message of family inet, acknowledged.
    fn push(&mut self, what: String, msg: NfTablesMessage, flags: u16) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0);
        let seq = self.emit(
            NetfilterMessage::new(header, msg),
            NLM_F_REQUEST | NLM_F_ACK | flags,
        );
        self.acks.push((seq, what));
    }

    /// Creates the table, failing if it exists (nft's `create table`).
    pub fn new_table(&mut self, table: &str) {
        let msg = NfTablesMessage::NewTable(TableMessage {
            attributes: vec![
                TableAttribute::Name(table.to_owned()),
                TableAttribute::Flags(TableFlags::empty()),
            ],
        });
        self.push(
            format!("creating table inet {table}"),
            msg,
            NLM_F_CREATE | NLM_F_EXCL,
        );
    }

    pub fn del_table(&mut self, table: &str) {
        let msg = NfTablesMessage::DeleteTable(TableMessage {
            attributes: vec![TableAttribute::Name(table.to_owned())],
        });
        self.push(format!("deleting table inet {table}"), msg, 0);
    }

    /// A base chain of type filter at priority 0 on `hook`.
    pub fn new_chain(&mut self, table: &str, chain: &str, hook: u32) {
        self.new_chain_with(table, chain, hook, None);
    }

    /// [`Batch::new_chain`] with a `policy` verdict (`NF_DROP`) where
    /// given; nft's default (accept) otherwise.
    fn new_chain_with(&mut self, table: &str, chain: &str, hook: u32, policy: Option<u32>) {
        let mut attributes = vec![
            ChainAttribute::Table(table.to_owned()),
            ChainAttribute::Name(chain.to_owned()),
            ChainAttribute::Hook(vec![
                Hook::Number(HookNumber::Other(hook)),
                Hook::Priority(0),
            ]),
        ];
        if let Some(p) = policy {
            attributes.push(ChainAttribute::Policy(p));
        }
        attributes.push(ChainAttribute::Type("filter".to_owned()));
        let msg = NfTablesMessage::NewChain(ChainMessage { attributes });
        self.push(
            format!("creating chain {chain} of table inet {table}"),
            msg,
            NLM_F_CREATE,
        );
    }

    /// The set of one family's connection tuples.
    pub fn new_set(&mut self, table: &str, family: Family) {
        let name = family.set_name();
        let msg = NfTablesMessage::NewSet(SetMessage {
            attributes: vec![
                SetAttribute::Table(table.to_owned()),
                SetAttribute::Name(name.to_owned()),
                SetAttribute::Flags(SetFlags::empty()),
                SetAttribute::KeyType(family.key_type()),
                SetAttribute::KeyLen(family.key_len()),
                SetAttribute::Id(family.set_id()),
            ],
        });
        self.push(
            format!("creating set {name} of table inet {table}"),
            msg,
            NLM_F_CREATE,
        );
    }

    /// Appends a rule of `exprs` to `chain`.
    fn new_rule(&mut self, table: &str, chain: &str, what: &str, exprs: Vec<Expressions>) {
        let msg = NfTablesMessage::NewRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(table.to_owned()),
                RuleAttribute::Chain(chain.to_owned()),
                RuleAttribute::Expressions(exprs.into_iter().map(ListAttribute::from).collect()),
            ],
        });
        self.push(
            format!("adding rule `{what}` to chain {chain} of table inet {table}"),
            msg,
            NLM_F_CREATE | NLM_F_APPEND,
        );
    }

    /// `meta mark 0xc114 accept`. The mark is a host-order `u32`.
    pub fn new_mark_rule(&mut self, table: &str, chain: &str) {
        let exprs = vec![
            meta(MetaKey::Mark),
            cmp_eq(SOCCR_MARK.to_ne_bytes().to_vec()),
            verdict(NF_ACCEPT),
        ];
        self.new_rule(table, chain, "meta mark 0xc114 accept", exprs);
    }

    /// `ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop` (or the
    /// ip6 one): the family and protocol checks the inet family needs,
    /// then the four fields loaded into consecutive 32-bit registers and
    /// looked up as one key.
    pub fn new_lookup_rule(&mut self, table: &str, chain: &str, family: Family) {
        let (saddr, daddr) = family.addr_offsets();
        let alen = family.addr_len();
        let fields = [
            (NFT_PAYLOAD_NETWORK_HEADER, saddr, alen),
            (NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2),
            (NFT_PAYLOAD_NETWORK_HEADER, daddr, alen),
            (NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
        ];
        let mut exprs = vec![
            meta(MetaKey::Nfproto),
            cmp_eq(vec![family.nfproto()]),
            meta(MetaKey::L4Proto),
            cmp_eq(vec![IPPROTO_TCP]),
        ];
        let mut word = 0;
        for (base, offset, len) in fields {
            exprs.push(Expressions::Payload(vec![
                Payload::DestinationRegister(reg32(word)),
                Payload::Base(base),
                Payload::Offset(offset),
                Payload::Len(len),
            ]));
            word += len.div_ceil(4);
        }
        exprs.push(Expressions::Lookup(vec![
            Lookup::Set(family.set_name().to_owned()),
            Lookup::SourceRegister(reg32(0)),
            Lookup::SetId(family.set_id()),
        ]));
        exprs.push(verdict(NF_DROP));
        let what = match family {
            Family::V4 => "ip saddr . tcp sport . ip daddr . tcp dport @conns4 drop",
            Family::V6 => "ip6 saddr . tcp sport . ip6 daddr . tcp dport @conns6 drop",
        };
        self.new_rule(table, chain, what, exprs);
    }

    /// Everything but the elements: the table, its sets, its chains and
    /// their rules, in one transaction.
    pub fn skeleton(&mut self, table: &str) {
        self.new_table(table);
        for family in Family::ALL {
            self.new_set(table, family);
        }
        for (chain, hook) in CHAINS {
            self.new_chain(table, chain, hook);
            self.new_mark_rule(table, chain);
            for family in Family::ALL {
                self.new_lookup_rule(table, chain, family);
            }
        }
    }

    /// The lock of a whole net namespace (CRIU's
    /// `network_lock_internal`): the table with chains `output` and
    /// `input` that drop every packet but libsoccr's marked ones.
    ///
    /// ```text
    /// table inet CRIU-<id> {
    ///     chain output { type filter hook output priority 0; policy drop;
    ///         meta mark 0xc114 accept }
    ///     chain input { type filter hook input priority 0; policy drop;
    ///         meta mark 0xc114 accept }
    /// }
    /// ```
    pub fn namespace_lock(&mut self, table: &str) {
        self.new_table(table);
        for (chain, hook) in CHAINS {
            self.new_chain_with(table, chain, hook, Some(NF_DROP));
            self.new_mark_rule(table, chain);
        }
    }

    /// Adds `keys` (at most [`ELEMENTS_PER_MESSAGE`]) to the set of
    /// `family`. Adding an element that is there already is no error.
    pub fn new_elements(&mut self, table: &str, family: Family, keys: &[Vec<u8>]) {
        let elements = keys
            .iter()
            .map(|k| {
                ListAttribute::Element(vec![SetElementAttribute::Key(DataAttribute::Value(
                    k.clone(),
                ))])
            })
            .collect();
        let msg = NfTablesMessage::NewSetElement(SetElementMessage {
            attributes: vec![
                SetElementList::Table(table.to_owned()),
                SetElementList::Set(family.set_name().to_owned()),
                SetElementList::Elements(elements),
            ],
        });
        self.push(
            format!(
                "adding {} element(s) to set {} of table inet {table}",
                keys.len(),
                family.set_name()
            ),
            msg,
            NLM_F_CREATE,
        );
    }
}

/// The request for every table of every family (`nft list tables`).
pub fn get_tables(seq: u32) -> Vec<u8> {
    let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, 0);
    let msg = NfTablesMessage::GetTable(TableMessage { attributes: vec![] });
    serialize(
        NetfilterMessage::new(header, msg),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// The table name of a `NEWTABLE` message of a dump, with its family.
pub fn table_of(msg: &NetfilterMessage) -> Option<(u8, String)> {
    use netlink_packet_netfilter::NetfilterMessageInner;
    let NetfilterMessageInner::NfTables(NfTablesMessage::NewTable(t)) = &msg.inner else {
        return None;
    };
    t.attributes.iter().find_map(|a| match a {
        TableAttribute::Name(n) => Some((u8::from(msg.header.family), n.clone())),
        _ => None,
    })
}

fn serialize(msg: NetfilterMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

/// 32-bit register `word` (`NFT_REG32_00 + word`); word 0 is also the
/// 128-bit `NFT_REG_1`, the name nft gives it.
fn reg32(word: u32) -> Register {
    if word == 0 {
        Register::Reg1
    } else {
        Register::from(u32::from(Register::Reg32_00) + word)
    }
}

fn meta(key: MetaKey) -> Expressions {
    Expressions::Meta(vec![
        Meta::DestinationRegister(Register::Reg1),
        Meta::Key(key),
    ])
}

fn cmp_eq(data: Vec<u8>) -> Expressions {
    Expressions::Cmp(vec![
        Cmp::SourceRegister(Register::Reg1),
        Cmp::Op(Operator::Equal),
        Cmp::Data(DataAttribute::Value(data)),
    ])
}

fn verdict(code: u32) -> Expressions {
    Expressions::Immediate(vec![
        Immediate::DestinationRegister(Register::Verdict),
        Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
            Verdict::Other(code),
        )])),
    ])
}
