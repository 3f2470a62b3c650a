//! Inspecting the network calls: socket, connect, bind, listen. Sends that
//! name a destination are `sends`, SCTP's socket options `sctp`; both judge
//! their addresses with [`peer`].
//!
//! A socket is always taken from the task (`pidfd_getfd` of the calling
//! thread's fd) and acted on by the supervisor in enforce mode, so a thread
//! that swaps another socket onto the fd number after the check changes
//! nothing. A unix socket path is resolved in the task's root with its
//! rights, judged by its real path (a symlink swapped in for a learned but
//! absent path names where it points), and reached through the fd the
//! supervisor holds (`/proc/self/fd/N`), with the task's rights.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::decode::{Base, Ptr};
use super::emulate::Emulation;
use super::failure::Failure;
use super::request::{guard_own, resolve_parent, resolve_path, Plan, Request, Scope};
use super::target::{self, Target};
use crate::event::{Category, Kind, Op};
use crate::model::{ListenEntry, Observation, PeerEntry, SocketEntry, UnixEntry};
use crate::net::{self, SockAddr, UnixAddr};
use crate::resolve::Resolved;
use crate::sys;

/// `sun_path`'s size.
const SUN_PATH: usize = 108;

pub fn socket(t: &Target<'_>, family: i32, kind: i32, protocol: i32) -> Request {
    let mut req = Request::new(Category::Network, Some(Op::Socket), libc::EACCES);
    req.family = Some(net::family_name(family));
    req.protocol = Some(match family {
        libc::AF_INET | libc::AF_INET6 => net::protocol_name(kind, protocol),
        _ => protocol.to_string(),
    });
    req.observations.push(Observation::Socket(SocketEntry {
        exe: t.exe().to_string(),
        family: net::family_name(family),
        kind: net::type_name(kind),
        protocol,
    }));
    // All three arguments are registers: the kernel uses exactly what we saw.
    req.plan = Plan::Continue;
    req
}

/// The socket behind the task's fd, with its domain, type and protocol.
pub(super) fn socket_of(t: &Target<'_>, fd: i32) -> Result<(OwnedFd, i32, i32, i32), Failure> {
    let sock = t.take_fd(fd)?;
    let opt = |name| sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, name);
    let family = opt(libc::SO_DOMAIN).map_err(|_| Failure::Target(libc::ENOTSOCK))?;
    let kind = opt(libc::SO_TYPE).unwrap_or(0);
    let proto = opt(libc::SO_PROTOCOL).unwrap_or(0);
    Ok((sock, family, kind, proto))
}

/// A sockaddr_un for `path`.
fn unix_addr(path: &str) -> Vec<u8> {
    let mut b = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    b.extend_from_slice(path.as_bytes());
    b.push(0);
    b
}

/// What a peer address means for the model and the event; and, for a unix
/// path, the fds and the address the supervisor acts through.
pub(super) struct Peer {
    /// The address the supervisor's own call uses.
    pub(super) addr: Vec<u8>,
    /// Fds that must stay open while it is used (`/proc/self/fd/N` paths).
    pub(super) holds: Vec<OwnedFd>,
}

/// Fills `req` with what `bytes` (a sockaddr of the task) names, for a
/// connect-like (`bind: false`) or bind call on a socket of `kind`/`proto`.
pub(super) fn peer(
    t: &Target<'_>,
    scope: &Scope<'_>,
    req: &mut Request,
    op: Op,
    bytes: &[u8],
    (kind, proto): (i32, i32),
) -> Result<Peer, Failure> {
    let exe = t.exe().to_string();
    let mut out = Peer {
        addr: bytes.to_vec(),
        holds: Vec::new(),
    };
    match net::parse_sockaddr(bytes).map_err(|_| Failure::Target(libc::EINVAL))? {
        SockAddr::Inet { address, port } => {
            let protocol = net::protocol_name(kind, proto);
            req.protocol = Some(protocol.clone());
            req.address = Some(address.clone());
            req.port = Some(port);
            if op != Op::Bind {
                req.observations.push(Observation::Connect(PeerEntry {
                    exe,
                    protocol,
                    address,
                    port,
                }));
            } else if port != 0 {
                req.observations.push(Observation::Listen(ListenEntry {
                    exe,
                    protocol,
                    port,
                    address: Some(address),
                }));
            }
        }
        SockAddr::Unix(UnixAddr::Path(p)) => {
            let abs = crate::resolve::absolutize(&t.base_dir(Base::Cwd)?, &p);
            let (real, via) = if op == Op::Bind {
                // The socket file is made in the directory resolved here.
                let (dir, real, name) = resolve_parent(t, scope, &abs)?;
                let via = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
                out.holds.push(dir);
                (real, via)
            } else {
                // Connect to the socket resolved here, whatever the path names later.
                match resolve_path(t, scope, &abs, true)? {
                    Resolved::Existing { fd, real } => {
                        let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
                        out.holds.push(fd);
                        (real, via)
                    }
                    Resolved::Missing { .. } => return Err(Failure::Target(libc::ENOENT)),
                }
            };
            if via.len() >= SUN_PATH {
                req.special = Some((
                    Kind::Unverifiable,
                    format!("unix socket path {real} is too long to act on safely"),
                ));
            } else {
                out.addr = unix_addr(&via);
            }
            req.path = Some(real.clone());
            guard_own(req, scope, &real, None);
            req.observations.push(Observation::Unix(UnixEntry {
                exe,
                op: if op == Op::Bind { "bind" } else { "connect" }.into(),
                path: real,
            }));
        }
        SockAddr::Unix(UnixAddr::Abstract(name)) => {
            let shown = format!("@{name}");
            req.path = Some(shown.clone());
            req.observations.push(Observation::Unix(UnixEntry {
                exe,
                op: if op == Op::Bind { "bind" } else { "connect" }.into(),
                path: shown,
            }));
        }
        SockAddr::Unix(UnixAddr::Unnamed) | SockAddr::Unspec | SockAddr::Other(_) => {}
    }
    Ok(out)
}

/// connect (`bind: false`) and bind.
pub fn sockaddr(
    t: &Target<'_>,
    scope: &Scope<'_>,
    bind: bool,
    fd: i32,
    addr: Ptr,
    len: i32,
) -> Result<Request, Failure> {
    let op = if bind { Op::Bind } else { Op::Connect };
    let mut req = Request::new(Category::Network, Some(op), libc::EACCES);
    // The kernel's bounds (move_addr_to_kernel: 0..=sizeof(sockaddr_storage));
    // a sockaddr shorter than its family field is EINVAL for every family.
    let len = match usize::try_from(len) {
        Ok(l) if (2..=128).contains(&l) => l,
        _ => return Err(Failure::Target(libc::EINVAL)),
    };
    let mut bytes = target::read_bytes(&t.memory(), addr.0, len)?;
    let (sock, family, kind, proto) = socket_of(t, fd)?;
    req.family = Some(net::family_name(family));
    if bind && family == libc::AF_INET {
        unspec_bind_as_inet(&mut bytes);
    }
    let peer = peer(t, scope, &mut req, op, &bytes, (kind, proto))?;
    let unix = family == libc::AF_UNIX;
    req.plan = Plan::Emulate(if bind {
        Emulation::Bind {
            sock,
            addr: peer.addr,
            holds: peer.holds,
        }
    } else {
        Emulation::Connect {
            sock,
            addr: peer.addr,
            holds: peer.holds,
            as_caller: unix,
        }
    });
    Ok(req)
}

/// `inet_bind` (and raw and ping sockets' binds) take AF_UNSPEC with
/// INADDR_ANY as AF_INET, "for compatibility": such a sockaddr binds its
/// port, so it is judged (and bound) as the AF_INET one it is.
pub(super) fn unspec_bind_as_inet(bytes: &mut [u8]) {
    if bytes.len() >= 16
        && u16::from_ne_bytes([bytes[0], bytes[1]]) == libc::AF_UNSPEC as u16
        && bytes[4..8] == [0, 0, 0, 0]
    {
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    }
}

/// The most of an `IP_OPTIONS` value the kernel takes (an IPv4 header's
/// options); IPv6 routing headers are longer, and only their first bytes
/// are read, to say what they are.
const OPTIONS_SHOWN: usize = 40;

/// `setsockopt` of an option that can source-route (`IP_OPTIONS`,
/// `IPV6_RTHDR`, `IPV6_2292PKTOPTIONS`; the filter notifies no other at
/// these levels): every later packet of the socket, to a learned peer too,
/// would go first to hops of the caller's choosing. Refused in every mode
/// when it sets a value. What decides is a register (`optlen`), so a racing
/// thread cannot change the outcome; the value is read only to say what it
/// was. An empty value clears the option: the kernel's.
pub fn source_routing(
    t: &Target<'_>,
    (level, name): (i32, i32),
    (val, len): (Ptr, u64),
) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Network, None, libc::EPERM);
    // optlen is an int; the kernel refuses a negative one itself.
    let len = len as u32 as i32;
    let asked = (level as u32, name as u32);
    if len <= 0 || !nfguard_policy::SOURCE_ROUTING_OPTIONS.contains(&asked) {
        return Ok(req);
    }
    let option = match (level, name as u32) {
        (libc::IPPROTO_IP, _) => "IP_OPTIONS",
        (_, n) if n == libc::IPV6_RTHDR as u32 => "IPV6_RTHDR",
        _ => "IPV6_2292PKTOPTIONS",
    };
    let shown = (len as usize).min(OPTIONS_SHOWN);
    let what = match target::read_bytes(&t.memory(), val.0, shown) {
        Ok(bytes) if level == libc::IPPROTO_IP => describe_ip_options(&bytes),
        Ok(bytes) => format!(
            "{} bytes, starting {:02x?}",
            len,
            &bytes[..bytes.len().min(4)]
        ),
        Err(_) => format!("{len} bytes, unreadable"),
    };
    req.forbid(format!(
        "setsockopt({option}) ({what}): IP options on a socket can route its packets through hops of the caller's choosing"
    ));
    Ok(req)
}

/// The IPv4 options in `bytes`, by name (RFC 791): source routes named as such.
fn describe_ip_options(bytes: &[u8]) -> String {
    let mut names = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let kind = bytes[at];
        names.push(match kind {
            0 => break,
            1 => {
                at += 1;
                continue;
            }
            131 => "LSRR (loose source route)".to_string(),
            137 => "SSRR (strict source route)".to_string(),
            7 => "record route".to_string(),
            68 => "timestamp".to_string(),
            k => format!("option {k}"),
        });
        let size = bytes.get(at + 1).copied().unwrap_or(0) as usize;
        if size < 2 {
            break;
        }
        at += size;
    }
    if names.is_empty() {
        "no option".to_string()
    } else {
        names.join(", ")
    }
}

pub fn listen(t: &Target<'_>, fd: i32, backlog: i32) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Network, Some(Op::Listen), libc::EACCES);
    let (sock, family, kind, proto) = socket_of(t, fd)?;
    req.family = Some(net::family_name(family));
    if family == libc::AF_INET || family == libc::AF_INET6 {
        let name = sys::getsockname_raw(sock.as_fd())
            .map_err(|e| Failure::ours("read the socket's name", e))?;
        if let Ok(SockAddr::Inet { address, port }) = net::parse_sockaddr(&name) {
            let protocol = net::protocol_name(kind, proto);
            req.protocol = Some(protocol.clone());
            req.address = Some(address.clone());
            req.port = Some(port);
            req.observations.push(Observation::Listen(ListenEntry {
                exe: t.exe().to_string(),
                protocol,
                port,
                address: Some(address),
            }));
        }
    }
    req.plan = Plan::Emulate(Emulation::Listen { sock, backlog });
    Ok(req)
}

#[cfg(test)]
mod source_routing_tests {
    use super::describe_ip_options;

    #[test]
    fn ip_options_are_named_and_source_routes_said_so() {
        // NOP, then LSRR with one hop (type, length 7, pointer 4, address).
        let lsrr = [1, 131, 7, 4, 10, 0, 0, 9];
        assert_eq!(describe_ip_options(&lsrr), "LSRR (loose source route)");
        let both = [137, 7, 4, 10, 0, 0, 9, 68, 4, 5, 0];
        assert_eq!(
            describe_ip_options(&both),
            "SSRR (strict source route), timestamp"
        );
        assert_eq!(describe_ip_options(&[0, 131]), "no option");
        // A length that runs past the end, or one too short, ends the walk.
        assert_eq!(
            describe_ip_options(&[131, 200]),
            "LSRR (loose source route)"
        );
        assert_eq!(describe_ip_options(&[7, 0, 131]), "record route");
    }
}
