//! Socket arguments: families, types, protocols, message flags, options.

use super::{Table, bits, enumerated, lookup};

const FAMILY: Table = named![
    AF_UNSPEC,
    AF_UNIX,
    AF_INET,
    AF_AX25,
    AF_IPX,
    AF_APPLETALK,
    AF_NETROM,
    AF_BRIDGE,
    AF_ATMPVC,
    AF_X25,
    AF_INET6,
    AF_ROSE,
    AF_DECnet,
    AF_NETBEUI,
    AF_SECURITY,
    AF_KEY,
    AF_NETLINK,
    AF_PACKET,
    AF_ASH,
    AF_ECONET,
    AF_ATMSVC,
    AF_RDS,
    AF_SNA,
    AF_IRDA,
    AF_PPPOX,
    AF_WANPIPE,
    AF_LLC,
    AF_IB,
    AF_MPLS,
    AF_CAN,
    AF_TIPC,
    AF_BLUETOOTH,
    AF_IUCV,
    AF_RXRPC,
    AF_ISDN,
    AF_PHONET,
    AF_IEEE802154,
    AF_CAIF,
    AF_ALG,
    AF_NFC,
    AF_VSOCK,
    AF_XDP,
];
const SOCK_TYPE: Table = named![SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_RDM, SOCK_SEQPACKET];
const SOCK: Table = named![SOCK_CLOEXEC, SOCK_NONBLOCK];
const IPPROTO: Table = named![
    IPPROTO_IP,
    IPPROTO_ICMP,
    IPPROTO_IGMP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_RAW,
    IPPROTO_SCTP,
    IPPROTO_UDPLITE,
    IPPROTO_MPTCP,
];
const MSG: Table = named![
    MSG_OOB,
    MSG_PEEK,
    MSG_DONTROUTE,
    MSG_CTRUNC,
    MSG_TRUNC,
    MSG_DONTWAIT,
    MSG_EOR,
    MSG_WAITALL,
    MSG_FIN,
    MSG_SYN,
    MSG_CONFIRM,
    MSG_RST,
    MSG_ERRQUEUE,
    MSG_NOSIGNAL,
    MSG_MORE,
    MSG_WAITFORONE,
    MSG_ZEROCOPY,
    MSG_FASTOPEN,
    MSG_CMSG_CLOEXEC,
];
const SHUT: Table = named![SHUT_RD, SHUT_WR, SHUT_RDWR];
const SOL: Table = named![SOL_IP, SOL_SOCKET, SOL_TCP, SOL_UDP, SOL_IPV6];
const SO: Table = named![
    SO_DEBUG,
    SO_REUSEADDR,
    SO_TYPE,
    SO_ERROR,
    SO_DONTROUTE,
    SO_BROADCAST,
    SO_SNDBUF,
    SO_RCVBUF,
    SO_KEEPALIVE,
    SO_OOBINLINE,
    SO_PRIORITY,
    SO_LINGER,
    SO_REUSEPORT,
    SO_PASSCRED,
    SO_PEERCRED,
    SO_RCVLOWAT,
    SO_SNDLOWAT,
    SO_RCVTIMEO,
    SO_SNDTIMEO,
    SO_BINDTODEVICE,
    SO_TIMESTAMP,
    SO_ACCEPTCONN,
    SO_MARK,
    SO_PROTOCOL,
    SO_DOMAIN,
    SO_BUSY_POLL,
];
const TCP: Table = named![
    TCP_NODELAY,
    TCP_MAXSEG,
    TCP_CORK,
    TCP_KEEPIDLE,
    TCP_KEEPINTVL,
    TCP_KEEPCNT,
    TCP_INFO,
    TCP_QUICKACK,
    TCP_CONGESTION,
    TCP_USER_TIMEOUT,
    TCP_FASTOPEN,
];

pub(in crate::syscall) fn family(v: u32) -> String {
    enumerated(v, FAMILY)
}

/// socket types: "SOCK_STREAM|SOCK_CLOEXEC".
pub(in crate::syscall) fn sock_type(v: u32) -> String {
    let flags = v & (libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) as u32;
    let kind = v & !flags;
    let kind_name = lookup(kind, SOCK_TYPE).map_or_else(|| format!("{kind:#x}"), str::to_string);
    bits(flags, SOCK, Some(kind_name))
}

/// accept4's flags: "SOCK_CLOEXEC", "0".
pub(in crate::syscall) fn sock_flags(v: u32) -> String {
    bits(v, SOCK, None)
}

/// A socket protocol: IPPROTO_* names for the inet families (strace prints
/// `IPPROTO_IP` for 0 there), decimal for the others.
pub(in crate::syscall) fn protocol(family: u32, v: u32) -> String {
    let inet = family == libc::AF_INET as u32 || family == libc::AF_INET6 as u32;
    if inet {
        enumerated(v, IPPROTO)
    } else {
        v.to_string()
    }
}

pub(in crate::syscall) fn msg(v: u32) -> String {
    bits(v, MSG, None)
}

pub(in crate::syscall) fn shutdown(v: u32) -> String {
    enumerated(v, SHUT)
}

/// A socket option level: "SOL_SOCKET", "SOL_TCP".
pub(in crate::syscall) fn sock_level(v: u32) -> String {
    enumerated(v, SOL)
}

/// A socket option, named within its level.
pub(in crate::syscall) fn sock_opt(level: u32, v: u32) -> String {
    match level as i32 {
        libc::SOL_SOCKET => enumerated(v, SO),
        libc::SOL_TCP => enumerated(v, TCP),
        _ => v.to_string(),
    }
}
