//! Socket addresses as strace prints them, from the bytes BPF copied at
//! entry: `{sa_family=AF_INET, sin_port=htons(8080),
//! sin_addr=inet_addr("127.0.0.1")}`, the AF_INET6 and AF_UNIX forms, and
//! AF_NETLINK; any other family shows its raw `sa_data`. Field offsets come
//! from libc's struct layouts, so nothing here is a typed offset.

use std::mem::{offset_of, size_of};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Copied, flags, quote};

/// The sockaddr in `copied`, `...` after it when the copy was cut.
pub(super) fn format(copied: &Copied<'_>) -> String {
    let b = copied.bytes;
    let Some(family) = field::<2>(b, 0).map(u16::from_ne_bytes) else {
        // strace too falls back to the pointer's bytes when there is no family.
        return quote::quoted(b);
    };
    let name = flags::family(u32::from(family));
    let body = match i32::from(family) {
        libc::AF_INET => inet(b),
        libc::AF_INET6 => inet6(b),
        libc::AF_UNIX => Some(unix(b)),
        libc::AF_NETLINK => netlink(b),
        _ => None,
    };
    let body = body.unwrap_or_else(|| format!(", sa_data={}", quote::quoted(&b[b.len().min(2)..])));
    let dots = if copied.truncated { "..." } else { "" };
    format!("{{sa_family={name}{body}}}{dots}")
}

/// `N` bytes at `offset`, None when the copy is shorter.
fn field<const N: usize>(b: &[u8], offset: usize) -> Option<[u8; N]> {
    b.get(offset..offset + N)?.try_into().ok()
}

fn inet(b: &[u8]) -> Option<String> {
    if b.len() < size_of::<libc::sockaddr_in>() {
        return None;
    }
    let port = u16::from_be_bytes(field(b, offset_of!(libc::sockaddr_in, sin_port))?);
    let addr = Ipv4Addr::from(field::<4>(b, offset_of!(libc::sockaddr_in, sin_addr))?);
    Some(format!(
        ", sin_port=htons({port}), sin_addr=inet_addr(\"{addr}\")"
    ))
}

fn inet6(b: &[u8]) -> Option<String> {
    if b.len() < size_of::<libc::sockaddr_in6>() {
        return None;
    }
    let port = u16::from_be_bytes(field(b, offset_of!(libc::sockaddr_in6, sin6_port))?);
    let flow = u32::from_be_bytes(field(b, offset_of!(libc::sockaddr_in6, sin6_flowinfo))?);
    let addr = Ipv6Addr::from(field::<16>(b, offset_of!(libc::sockaddr_in6, sin6_addr))?);
    let scope = u32::from_ne_bytes(field(b, offset_of!(libc::sockaddr_in6, sin6_scope_id))?);
    Some(format!(
        ", sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), \
         inet_pton(AF_INET6, \"{addr}\", &sin6_addr), sin6_scope_id={scope}"
    ))
}

/// A path (up to its NUL), an abstract name (`@"name"`, every byte of the
/// given length counts), or nothing for an unnamed socket.
fn unix(b: &[u8]) -> String {
    let path = &b[offset_of!(libc::sockaddr_un, sun_path).min(b.len())..];
    match path.split_first() {
        None => String::new(),
        Some((0, name)) => format!(", sun_path=@{}", quote::quoted(name)),
        Some(_) => {
            let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
            format!(", sun_path={}", quote::quoted(&path[..end]))
        }
    }
}

fn netlink(b: &[u8]) -> Option<String> {
    let pid = u32::from_ne_bytes(field(b, offset_of!(libc::sockaddr_nl, nl_pid))?);
    let groups = u32::from_ne_bytes(field(b, offset_of!(libc::sockaddr_nl, nl_groups))?);
    Some(format!(", nl_pid={pid}, nl_groups={groups:08x}"))
}
