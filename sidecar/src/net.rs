//! Socket arguments as the model names them. Pure functions over the bytes
//! read from the target.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A decoded sockaddr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    Inet {
        address: String,
        port: u16,
    },
    Unix(UnixAddr),
    /// AF_UNSPEC: connect() uses it to dissolve an association.
    Unspec,
    /// Any other family (netlink, packet...): checked at socket() time.
    Other(u16),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnixAddr {
    Path(String),
    /// Abstract namespace, shown as `@name`.
    Abstract(String),
    /// No name (autobind, or an unnamed socket).
    Unnamed,
}

/// Why a sockaddr could not be decoded (the kernel would say EINVAL too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed socket address: {0}")]
pub struct BadSockAddr(pub &'static str);

/// Decodes a sockaddr the way the kernel reads it for connect/bind.
pub fn parse_sockaddr(b: &[u8]) -> Result<SockAddr, BadSockAddr> {
    if b.len() < 2 {
        return Err(BadSockAddr("shorter than its family field"));
    }
    let family = u16::from_ne_bytes([b[0], b[1]]);
    match i32::from(family) {
        libc::AF_INET => {
            if b.len() < 8 {
                return Err(BadSockAddr("sockaddr_in too short"));
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
            Ok(SockAddr::Inet {
                address: ip.to_string(),
                port,
            })
        }
        libc::AF_INET6 => {
            if b.len() < 24 {
                return Err(BadSockAddr("sockaddr_in6 too short"));
            }
            let port = u16::from_be_bytes([b[2], b[3]]);
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&b[8..24]);
            let ip = Ipv6Addr::from(octets);
            // v4-mapped peers are written as IPv4, so one model entry covers both APIs.
            let address = match ip.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => ip.to_string(),
            };
            Ok(SockAddr::Inet { address, port })
        }
        libc::AF_UNIX => {
            let path = &b[2..];
            if path.is_empty() {
                return Ok(SockAddr::Unix(UnixAddr::Unnamed));
            }
            if path[0] == 0 {
                // Abstract: every byte of the given length counts, NULs included.
                let name = String::from_utf8_lossy(&path[1..]).replace('\0', "\\0");
                return Ok(SockAddr::Unix(UnixAddr::Abstract(name)));
            }
            let end = path.iter().position(|c| *c == 0).unwrap_or(path.len());
            Ok(SockAddr::Unix(UnixAddr::Path(
                String::from_utf8_lossy(&path[..end]).into_owned(),
            )))
        }
        libc::AF_UNSPEC => Ok(SockAddr::Unspec),
        other => Ok(SockAddr::Other(other as u16)),
    }
}

/// The model's name of an address family.
pub fn family_name(family: i32) -> String {
    match family {
        libc::AF_INET => "inet".into(),
        libc::AF_INET6 => "inet6".into(),
        libc::AF_UNIX => "unix".into(),
        libc::AF_PACKET => "packet".into(),
        libc::AF_NETLINK => "netlink".into(),
        other => format!("af{other}"),
    }
}

/// The model's name of a socket type (SOCK_NONBLOCK and SOCK_CLOEXEC ignored).
pub fn type_name(kind: i32) -> String {
    match kind & 0xf {
        libc::SOCK_STREAM => "stream".into(),
        libc::SOCK_DGRAM => "dgram".into(),
        libc::SOCK_RAW => "raw".into(),
        libc::SOCK_SEQPACKET => "seqpacket".into(),
        libc::SOCK_RDM => "rdm".into(),
        other => format!("type{other}"),
    }
}

/// The transport protocol of an inet socket, from its type and protocol.
pub fn protocol_name(kind: i32, protocol: i32) -> String {
    match (kind & 0xf, protocol) {
        (_, libc::IPPROTO_TCP) => "tcp".into(),
        (_, libc::IPPROTO_UDP) => "udp".into(),
        (_, libc::IPPROTO_SCTP) => "sctp".into(),
        (_, libc::IPPROTO_ICMP) | (_, libc::IPPROTO_ICMPV6) => "icmp".into(),
        (libc::SOCK_STREAM, 0) => "tcp".into(),
        (libc::SOCK_DGRAM, 0) => "udp".into(),
        (libc::SOCK_RAW, p) => format!("raw{p}"),
        (_, p) => format!("proto{p}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inet_and_v4_mapped_inet6_addresses_decode_alike() {
        let mut v4 = vec![2, 0, 0x10, 0x7e, 127, 0, 0, 1];
        v4.extend([0u8; 8]);
        assert_eq!(
            parse_sockaddr(&v4).unwrap(),
            SockAddr::Inet {
                address: "127.0.0.1".into(),
                port: 4222
            }
        );
        let mut v6 = vec![10, 0, 0x22, 0xb8, 0, 0, 0, 0];
        v6.extend([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 7]);
        v6.extend([0u8; 4]);
        assert_eq!(
            parse_sockaddr(&v6).unwrap(),
            SockAddr::Inet {
                address: "10.0.0.7".into(),
                port: 8888
            }
        );
    }

    #[test]
    fn unix_paths_abstract_names_and_truncated_input() {
        let mut p = vec![1, 0];
        p.extend(b"/run/x.sock\0garbage");
        assert_eq!(
            parse_sockaddr(&p).unwrap(),
            SockAddr::Unix(UnixAddr::Path("/run/x.sock".into()))
        );
        let mut a = vec![1, 0, 0];
        a.extend(b"nfg");
        assert_eq!(
            parse_sockaddr(&a).unwrap(),
            SockAddr::Unix(UnixAddr::Abstract("nfg".into()))
        );
        assert_eq!(
            parse_sockaddr(&[1, 0]).unwrap(),
            SockAddr::Unix(UnixAddr::Unnamed)
        );
        assert!(parse_sockaddr(&[2]).is_err());
        assert!(
            parse_sockaddr(&[2, 0, 1, 2]).is_err(),
            "a forged short sockaddr_in"
        );
    }

    #[test]
    fn protocol_names_follow_type_and_protocol() {
        assert_eq!(
            protocol_name(libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0),
            "tcp"
        );
        assert_eq!(protocol_name(libc::SOCK_DGRAM, 17), "udp");
        assert_eq!(protocol_name(libc::SOCK_STREAM, 132), "sctp");
        assert_eq!(protocol_name(libc::SOCK_RAW, 1), "icmp");
        assert_eq!(type_name(libc::SOCK_STREAM | libc::SOCK_NONBLOCK), "stream");
        assert_eq!(family_name(libc::AF_PACKET), "packet");
    }
}
