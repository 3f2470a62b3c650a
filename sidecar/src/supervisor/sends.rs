//! Sends that name a destination: `sendto` with an address, `sendmsg`,
//! `sendmmsg` (docs/security.md, "What each protocol is judged on").
//!
//! The filter notifies them with datagram inspection on (`sendto` only when
//! its address pointer is not null; `sendmsg` and `sendmmsg` always, their
//! destination being in memory) and, either way, with `MSG_FASTOPEN`. Each
//! message's destination is judged like a connect, as the socket's protocol
//! will use it:
//! - UDP, raw, ICMP and SCTP sockets send to `msg_name` when there is one
//!   (an IPv4 socket takes AF_UNSPEC as AF_INET, as `udp_sendmsg` and
//!   `raw_sendmsg` do, so that family hides nothing); SCTP also to the
//!   addresses of its `SCTP_DSTADDRV4/V6` control messages;
//! - TCP ignores `msg_name` unless `MSG_FASTOPEN` connects with it;
//! - a unix datagram socket sends to the path or abstract name, resolved in
//!   the task's root with its rights, as a connect is; unix stream and
//!   seqpacket sockets ignore or refuse a name;
//! - other families (netlink, packet) are judged when the socket is made;
//!   their sends continue when no other task can swap the fd (the kernel
//!   checks a netlink request's capabilities against the sender, which the
//!   supervisor must not become), and are sent from the copy otherwise.
//!
//! In enforce mode the supervisor sends its own copy of each message on the
//! socket it took with `pidfd_getfd`: address, data and control messages
//! (`SCM_RIGHTS` fds taken from the task too), so a thread that rewrites the
//! destination after the check, or `dup2`s another socket onto the fd,
//! changes nothing. What it cannot send as the task would (credentials,
//! options the kernel checks against the sender's capabilities) is refused
//! as unverifiable in enforce mode. Outside enforce mode only the
//! destinations are read, and the call continues.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nfguard_common::Mode;

use super::decode::Sends;
use super::emulate::{Call, Emulation, Emulator, Reply};
use super::failure::Failure;
use super::msg::{self, Cmsg, Message, Want};
use super::request::{Plan, Request, Scope};
use super::sockets::{peer, socket_of};
use super::target::Target;
use crate::event::{Category, Kind, Op};
use crate::net;
use crate::sys;

/// The most a stream socket's send is made to send at once: the call
/// returns the count sent, as a stream socket may.
pub const SEND_MAX: usize = 64 * 1024;
/// The largest datagram the supervisor sends for a task: a datagram is sent
/// whole or not at all (UDP's limit is 64 KiB, a unix datagram's the socket
/// buffer, 208 KiB by default).
pub const DGRAM_MAX: usize = 1 << 20;

/// SCTP control messages (linux/sctp.h) that name more destinations.
pub const SCTP_DSTADDRV4: i32 = 7;
pub const SCTP_DSTADDRV6: i32 = 8;
/// `SOL_UDP`'s `UDP_SEGMENT` (GSO), which libc does not name.
const UDP_SEGMENT: i32 = 103;
/// `SO_TIMESTAMPING_OLD` and `SCM_TXTIME`, at SOL_SOCKET.
const SO_TIMESTAMPING_OLD: i32 = 37;
const SCM_TXTIME: i32 = 61;

/// A socket as the kernel's send path tells it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sock {
    pub family: i32,
    /// The type (SOCK_NONBLOCK and SOCK_CLOEXEC masked off).
    pub kind: i32,
    pub protocol: i32,
}

impl Sock {
    fn inet(&self) -> bool {
        self.family == libc::AF_INET || self.family == libc::AF_INET6
    }

    fn tcp(&self) -> bool {
        self.inet()
            && self.kind == libc::SOCK_STREAM
            && matches!(self.protocol, 0 | libc::IPPROTO_TCP)
    }

    fn sctp(&self) -> bool {
        self.inet() && self.protocol == libc::IPPROTO_SCTP
    }

    fn stream(&self) -> bool {
        self.kind == libc::SOCK_STREAM
    }
}

/// Where one message goes, as its socket reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Destination {
    /// The sockaddr the send uses, to judge (as the protocol reads it).
    pub name: Option<Vec<u8>>,
    /// More peers it reaches (SCTP's destination control messages).
    pub more: Vec<Vec<u8>>,
}

/// `bytes` as an IPv4 sockaddr when an IPv4 datagram socket would read them
/// so (AF_INET, or AF_UNSPEC, which `udp_sendmsg` and `raw_sendmsg` take as
/// AF_INET); an IPv6 socket also sends to an AF_INET address, and to its
/// peer for AF_UNSPEC (`None`). Errors are the kernel's.
fn inet_name(family: i32, bytes: &[u8]) -> Result<Option<Vec<u8>>, i32> {
    if bytes.len() < 2 {
        return Err(libc::EINVAL);
    }
    let of = i32::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
    let as_v4 = |bytes: &[u8]| {
        if bytes.len() < 16 {
            return Err(libc::EINVAL);
        }
        let mut v = bytes[..16].to_vec();
        v[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        Ok(Some(v))
    };
    match (family, of) {
        (libc::AF_INET, libc::AF_INET | libc::AF_UNSPEC) => as_v4(bytes),
        (libc::AF_INET, _) => Err(libc::EAFNOSUPPORT),
        (_, libc::AF_INET6) if bytes.len() < 24 => Err(libc::EINVAL),
        (_, libc::AF_INET6) => Ok(Some(bytes.to_vec())),
        (_, libc::AF_INET) => as_v4(bytes),
        (_, libc::AF_UNSPEC) => Ok(None),
        _ => Err(libc::EINVAL),
    }
}

/// The port of an inet sockaddr, and the same with the port zeroed (raw
/// sockets have no ports: what is in the field does not count).
fn port_of(sa: &[u8]) -> u16 {
    u16::from_be_bytes([sa[2], sa[3]])
}

/// Where `m`, sent with `flags` on `sock`, goes. Pure.
pub fn destination(sock: Sock, flags: i32, m: &Message) -> Result<Destination, i32> {
    let mut out = Destination::default();
    let Some(bytes) = m.name.as_deref().filter(|b| !b.is_empty()) else {
        // No name (or sendto's zero length): the connected peer, judged at
        // connect(), or an error of the kernel's own.
        return Ok(out);
    };
    if sock.inet() {
        if sock.tcp() && flags & libc::MSG_FASTOPEN == 0 {
            // tcp_sendmsg reads msg_name only to connect by fast open.
            return Ok(out);
        }
        let Some(mut name) = inet_name(sock.family, bytes)? else {
            return Ok(out);
        };
        if sock.kind == libc::SOCK_RAW {
            name[2..4].copy_from_slice(&[0, 0]);
        } else if port_of(&name) == 0 && !sock.sctp() {
            // udp_sendmsg, udpv6_sendmsg: a destination port of 0 is EINVAL.
            return Err(libc::EINVAL);
        }
        if sock.sctp() {
            let port = port_of(&name).to_be_bytes();
            for c in &m.control {
                if c.level != libc::IPPROTO_SCTP {
                    continue;
                }
                match (c.kind, c.data.len()) {
                    (SCTP_DSTADDRV4, 4) => {
                        let mut sa = (libc::AF_INET as u16).to_ne_bytes().to_vec();
                        sa.extend_from_slice(&port);
                        sa.extend_from_slice(&c.data);
                        sa.extend_from_slice(&[0; 8]);
                        out.more.push(sa);
                    }
                    (SCTP_DSTADDRV6, 16) => {
                        let mut sa = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
                        sa.extend_from_slice(&port);
                        sa.extend_from_slice(&[0; 4]);
                        sa.extend_from_slice(&c.data);
                        sa.extend_from_slice(&[0; 4]);
                        out.more.push(sa);
                    }
                    (SCTP_DSTADDRV4 | SCTP_DSTADDRV6, _) => return Err(libc::EINVAL),
                    _ => {}
                }
            }
        }
        out.name = Some(name);
    } else if sock.family == libc::AF_UNIX && sock.kind == libc::SOCK_DGRAM {
        out.name = Some(bytes.to_vec());
    }
    Ok(out)
}

/// Why the supervisor cannot send control message `c` as the task would,
/// if it cannot: what the kernel checks against the sender (credentials, a
/// mark or priority that needs CAP_NET_ADMIN, IP options that need
/// CAP_NET_RAW or route the packet elsewhere) would be checked against the
/// supervisor. Fds (`SCM_RIGHTS`) are taken from the task and passed on.
pub fn unfaithful(sock: Sock, c: &Cmsg) -> Option<String> {
    let ok = match c.level {
        libc::SOL_SOCKET => match c.kind {
            libc::SCM_RIGHTS => true,
            SO_TIMESTAMPING_OLD | SCM_TXTIME => sock.inet(),
            _ => false,
        },
        libc::IPPROTO_IP => matches!(c.kind, libc::IP_TOS | libc::IP_TTL | libc::IP_PKTINFO),
        libc::IPPROTO_IPV6 => matches!(
            c.kind,
            libc::IPV6_PKTINFO | libc::IPV6_HOPLIMIT | libc::IPV6_TCLASS | libc::IPV6_DONTFRAG
        ),
        libc::SOL_UDP => c.kind == UDP_SEGMENT,
        // SCTP's send information, and its destinations (judged above).
        libc::IPPROTO_SCTP => (0..=SCTP_DSTADDRV6).contains(&c.kind),
        _ => false,
    };
    (!ok).then(|| {
        if c.level == libc::SOL_SOCKET && c.kind == libc::SCM_CREDENTIALS {
            return "SCM_CREDENTIALS would name nfguard's process, not the task's".to_string();
        }
        format!(
            "a control message of level {} type {} would be sent with nfguard's identity and capabilities, not the task's",
            c.level, c.kind
        )
    })
}

/// One message the supervisor sends for the task.
pub struct Outgoing {
    pub addr: Option<Vec<u8>>,
    pub data: Vec<u8>,
    /// Control messages; fds of `SCM_RIGHTS` are in `fds`, in order.
    pub control: Vec<Cmsg>,
    pub fds: Vec<OwnedFd>,
    /// The header's MSG_EOR, which `____sys_sendmsg` adds to the call's flags.
    pub eor: bool,
}

impl Outgoing {
    /// The control messages with the supervisor's own numbers of the fds.
    fn encoded_control(&self) -> (Vec<u64>, usize) {
        let mut fds = self.fds.iter();
        let list: Vec<Cmsg> = self
            .control
            .iter()
            .map(|c| {
                if c.level == libc::SOL_SOCKET && c.kind == libc::SCM_RIGHTS {
                    let data = (0..c.data.len() / 4)
                        .filter_map(|_| fds.next())
                        .flat_map(|fd| fd.as_raw_fd().to_ne_bytes())
                        .collect();
                    Cmsg { data, ..c.clone() }
                } else {
                    c.clone()
                }
            })
            .collect();
        msg::encode_cmsgs(&list)
    }
}

/// A send the supervisor makes: one message (`sendto`, `sendmsg`) or a
/// vector of them (`sendmmsg`, answered with the count sent and each
/// `msg_len` written back, as the kernel does).
pub struct SendJob {
    pub sock: OwnedFd,
    /// A stream socket (for people reading a job; the kernel knows it).
    #[allow(dead_code)]
    pub stream: bool,
    pub messages: Vec<Outgoing>,
    /// Fds the addresses name (`/proc/self/fd/N` of a unix socket's file):
    /// held, never read, until the job is dropped after its answer.
    #[allow(dead_code)]
    pub holds: Vec<OwnedFd>,
    pub flags: i32,
    /// sendmmsg: where the vector is in the task's memory.
    pub mmsg: Option<u64>,
    /// A unix send is made with the task's rights (the kernel checks write
    /// permission on the socket file it sends to).
    pub as_caller: bool,
    pub tgid: i32,
    pub tid: i32,
}

pub fn send(
    t: &Target<'_>,
    scope: &Scope<'_>,
    fd: i32,
    of: Sends,
    flags: i32,
) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Network, Some(Op::Send), libc::EACCES);
    if let Sends::Mmsg { vlen: 0, .. } = of {
        // Nothing is sent (the kernel answers 0); vlen is a register.
        return Ok(req);
    }
    let (sock_fd, family, kind, protocol) = socket_of(t, fd)?;
    let sock = Sock {
        family,
        kind: kind & 0xf,
        protocol,
    };
    req.family = Some(net::family_name(family));
    if sock.inet() {
        req.protocol = Some(net::protocol_name(kind, protocol));
    }
    let enforce = scope.mode == Mode::Enforce;
    let want = Want {
        data: enforce.then_some(if sock.stream() { SEND_MAX } else { DGRAM_MAX }),
        control: enforce || sock.sctp(),
    };
    let m = t.memory();
    let (messages, mmsg) = match of {
        Sends::To {
            buf,
            len,
            addr,
            addrlen,
        } => (
            vec![msg::read_sendto(
                &m,
                (buf.0, len),
                (addr.0, addrlen),
                want.data,
            )?],
            None,
        ),
        Sends::Msg { msg } => (vec![msg::read_message(&m, msg.0, want)?], None),
        Sends::Mmsg { vec, vlen } => (msg::read_mmsg(&m, vec.0, vlen, want)?, Some(vec.0)),
    };
    if enforce && !sock.stream() {
        if let Some(big) = messages.iter().find(|m| m.len > DGRAM_MAX as u64) {
            return Err(Failure::refused(
                libc::EMSGSIZE,
                format!(
                    "a datagram of {} bytes is more than nfguard sends for a task ({DGRAM_MAX})",
                    big.len
                ),
            ));
        }
    }
    // Judge each destination once, however many messages share it; the
    // fds a judged address names (`/proc/self/fd/N`) stay open until sent.
    let mut judged: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut holds = Vec::new();
    let mut outgoing = Vec::with_capacity(if enforce { messages.len() } else { 0 });
    for message in messages {
        let dest = destination(sock, flags, &message).map_err(Failure::Target)?;
        let mut addr = message.name.clone();
        for (i, bytes) in dest.name.iter().chain(&dest.more).enumerate() {
            let via = match judged.iter().find(|(b, _)| b == bytes) {
                Some((_, via)) => via.clone(),
                None => {
                    let p = peer(t, scope, &mut req, Op::Send, bytes, (kind, protocol))?;
                    holds.extend(p.holds);
                    judged.push((bytes.clone(), p.addr.clone()));
                    p.addr
                }
            };
            if i == 0 && dest.name.is_some() {
                // The supervisor sends to what it judged (a unix path: the
                // socket file it resolved, through /proc/self/fd/N).
                addr = Some(via);
            }
        }
        if !enforce {
            continue;
        }
        let mut fds = Vec::new();
        for c in &message.control {
            if let Some(why) = unfaithful(sock, c) {
                req.special = Some((Kind::Unverifiable, why));
            }
            if c.level == libc::SOL_SOCKET && c.kind == libc::SCM_RIGHTS && family == libc::AF_UNIX
            {
                for raw in c.data.chunks_exact(4) {
                    let n = i32::from_ne_bytes([raw[0], raw[1], raw[2], raw[3]]);
                    fds.push(t.take_fd(n)?);
                }
            }
        }
        outgoing.push(Outgoing {
            addr,
            data: message.data,
            control: message.control,
            fds,
            eor: message.header_flags & libc::MSG_EOR != 0,
        });
    }
    dedup(&mut req);
    if enforce && !sock.inet() && family != libc::AF_UNIX {
        // Netlink, packet...: no destination judged here, and the kernel
        // checks a netlink request's capabilities against its sender, which
        // the supervisor must not become. The call continues when no other
        // task can swap another socket onto the fd (one thread, nobody
        // sharing its fd table or memory); otherwise it is sent from the copy.
        if super::exec::memory_is_private(t.tid(), true).unwrap_or(false) {
            return Ok(req);
        }
    }
    if enforce {
        req.plan = Plan::Emulate(Emulation::Call(Box::new(SendJob {
            sock: sock_fd,
            stream: sock.stream(),
            messages: outgoing,
            holds,
            flags,
            mmsg,
            as_caller: family == libc::AF_UNIX,
            tgid: t.tgid(),
            tid: t.tid(),
        })));
    }
    Ok(req)
}

/// One observation per destination, however many messages went there.
fn dedup(req: &mut Request) {
    let mut seen = Vec::with_capacity(req.observations.len());
    for o in std::mem::take(&mut req.observations) {
        if !seen.contains(&o) {
            seen.push(o);
        }
    }
    req.observations = seen;
}

/// The flags the supervisor's own send uses: the task's, with MSG_NOSIGNAL
/// (a broken pipe must not signal the supervisor: the task gets its SIGPIPE
/// from `answer`).
fn own_flags(flags: i32) -> i32 {
    flags | libc::MSG_NOSIGNAL
}

/// Sends one message with `flags` (and the header's MSG_EOR).
fn send_one(sock: &OwnedFd, o: &Outgoing, flags: i32) -> std::io::Result<usize> {
    let (control, control_len) = o.encoded_control();
    let flags = if o.eor { flags | libc::MSG_EOR } else { flags };
    sys::sendmsg_copy(
        sock.as_fd(),
        o.addr.as_deref(),
        &o.data,
        &control,
        control_len,
        flags,
    )
}

impl SendJob {
    /// Would the task's call block (no MSG_DONTWAIT, a blocking socket)?
    fn blocking(&self) -> bool {
        self.flags & libc::MSG_DONTWAIT == 0
            && sys::get_status_flags(self.sock.as_fd()).map_or(true, |f| f & libc::O_NONBLOCK == 0)
    }

    /// Sends messages from `from` on, as far as they go without waiting
    /// (`wait: false`) or waiting as the task would. Returns how many were
    /// sent, and the count or error of the one that stopped it.
    fn run(&self, from: usize, sent: &mut Vec<usize>, wait: bool) -> Option<std::io::Error> {
        let flags = own_flags(self.flags) | if wait { 0 } else { libc::MSG_DONTWAIT };
        for o in &self.messages[from..] {
            match send_one(&self.sock, o, flags) {
                Ok(n) => sent.push(n),
                Err(e) => return Some(e),
            }
        }
        None
    }

    /// Answers: the count of a single send, or the number of messages of a
    /// sendmmsg (each msg_len written back); the error when nothing was sent.
    fn answer(&self, sent: &[usize], error: Option<std::io::Error>, reply: &Reply) {
        if let Some(e) = &error {
            if e.raw_os_error() == Some(libc::EPIPE) && self.flags & libc::MSG_NOSIGNAL == 0 {
                // The kernel signals the sending thread on a broken stream.
                let _ = sys::tgkill(self.tgid, self.tid, libc::SIGPIPE);
            }
        }
        match self.mmsg {
            None => match (sent.first(), error) {
                (Some(n), _) => reply.value(*n as i64),
                (None, Some(e)) => reply.count(Err(e)),
                (None, None) => reply.value(0),
            },
            Some(vec) => {
                for (i, n) in sent.iter().enumerate() {
                    let at = vec + (i * msg::MMSGHDR) as u64 + msg::MMSG_LEN_AT;
                    let _ = sys::write_process_memory(self.tid, at, &(*n as u32).to_ne_bytes());
                }
                match (sent.len(), error) {
                    (0, Some(e)) => reply.count(Err(e)),
                    (n, _) => reply.value(n as i64),
                }
            }
        }
    }
}

/// Makes the sends of `job` for the task and answers. Datagrams go out at
/// once, without waiting; a send that would block, on a socket the task
/// would block on, is finished on a worker thread so the listener's other
/// notifications are not held up.
impl Call for SendJob {
    fn perform(self: Box<Self>, em: &Emulator, target: &Target<'_>, reply: Reply) {
        perform(em, *self, target, reply)
    }
}

fn perform(em: &Emulator, job: SendJob, target: &Target<'_>, reply: Reply) {
    let creds = if job.as_caller {
        match em.creds_for(target) {
            Ok(c) => c,
            Err(e) => return reply.result(Err(e)),
        }
    } else {
        None
    };
    let mut sent = Vec::with_capacity(job.messages.len());
    let first = em.with_creds(Ok(creds.clone()), || Ok(job.run(0, &mut sent, false)));
    let error = match first {
        Ok(e) => e,
        Err(e) => return reply.result(Err(e)),
    };
    let would_block = error
        .as_ref()
        .is_some_and(|e| e.raw_os_error() == Some(libc::EAGAIN));
    if would_block && job.blocking() {
        let switcher = em.background_switcher();
        em.background(Box::new(move || {
            let from = sent.len();
            let error = switcher
                .run(creds, || Ok(job.run(from, &mut sent, true)))
                .unwrap_or_else(Some);
            job.answer(&sent, error, &reply);
        }));
        return;
    }
    job.answer(&sent, error, &reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP4: Sock = Sock {
        family: libc::AF_INET,
        kind: libc::SOCK_DGRAM,
        protocol: libc::IPPROTO_UDP,
    };
    const UDP6: Sock = Sock {
        family: libc::AF_INET6,
        kind: libc::SOCK_DGRAM,
        protocol: 0,
    };
    const TCP4: Sock = Sock {
        family: libc::AF_INET,
        kind: libc::SOCK_STREAM,
        protocol: 0,
    };
    const SCTP4: Sock = Sock {
        family: libc::AF_INET,
        kind: libc::SOCK_SEQPACKET,
        protocol: libc::IPPROTO_SCTP,
    };
    const RAW4: Sock = Sock {
        family: libc::AF_INET,
        kind: libc::SOCK_RAW,
        protocol: libc::IPPROTO_ICMP,
    };

    fn sin(family: i32, ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = (family as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 8]);
        b
    }

    fn to(name: Option<Vec<u8>>) -> Message {
        Message {
            name,
            ..Message::default()
        }
    }

    fn judged(sock: Sock, flags: i32, m: &Message) -> Result<Option<net::SockAddr>, i32> {
        Ok(destination(sock, flags, m)?
            .name
            .map(|n| net::parse_sockaddr(&n).unwrap()))
    }

    fn inet(a: &str, port: u16) -> Option<net::SockAddr> {
        Some(net::SockAddr::Inet {
            address: a.into(),
            port,
        })
    }

    #[test]
    fn a_udp_destination_is_judged_as_the_kernel_will_use_it() {
        let pfcp = sin(libc::AF_INET, [10, 0, 2, 7], 8805);
        assert_eq!(
            judged(UDP4, 0, &to(Some(pfcp.clone()))),
            Ok(inet("10.0.2.7", 8805))
        );
        // AF_UNSPEC is AF_INET to udp_sendmsg: it hides nothing.
        let unspec = sin(libc::AF_UNSPEC, [10, 9, 9, 9], 9999);
        assert_eq!(
            judged(UDP4, 0, &to(Some(unspec.clone()))),
            Ok(inet("10.9.9.9", 9999))
        );
        // ...but is "the connected peer" to udpv6_sendmsg.
        assert_eq!(judged(UDP6, 0, &to(Some(unspec))), Ok(None));
        // An IPv6 socket sends to an IPv4 address too.
        assert_eq!(
            judged(UDP6, 0, &to(Some(pfcp.clone()))),
            Ok(inet("10.0.2.7", 8805))
        );
        // No name, or sendto's zero length: the connected peer (judged at connect()).
        assert_eq!(judged(UDP4, 0, &to(None)), Ok(None));
        assert_eq!(judged(UDP4, 0, &to(Some(vec![]))), Ok(None));
        // The kernel's own refusals.
        assert_eq!(
            judged(UDP4, 0, &to(Some(pfcp[..8].to_vec()))),
            Err(libc::EINVAL)
        );
        assert_eq!(
            judged(UDP4, 0, &to(Some(sin(libc::AF_INET, [10, 0, 0, 1], 0)))),
            Err(libc::EINVAL),
            "port 0"
        );
        assert_eq!(
            judged(UDP4, 0, &to(Some(sin(libc::AF_INET6, [0; 4], 1)))),
            Err(libc::EAFNOSUPPORT)
        );
    }

    #[test]
    fn tcp_ignores_the_name_unless_fast_open_connects_with_it() {
        let m = to(Some(sin(libc::AF_INET, [127, 0, 0, 1], 80)));
        assert_eq!(judged(TCP4, 0, &m), Ok(None));
        assert_eq!(
            judged(TCP4, libc::MSG_FASTOPEN, &m),
            Ok(inet("127.0.0.1", 80))
        );
    }

    #[test]
    fn raw_sockets_have_no_ports_and_sctp_names_more_peers_in_cmsgs() {
        let m = to(Some(sin(libc::AF_INET, [8, 8, 8, 8], 1234)));
        assert_eq!(judged(RAW4, 0, &m), Ok(inet("8.8.8.8", 0)));
        let mut m = to(Some(sin(libc::AF_INET, [10, 0, 0, 1], 38412)));
        m.control = vec![
            Cmsg {
                level: libc::IPPROTO_SCTP,
                kind: SCTP_DSTADDRV4,
                data: vec![10, 0, 0, 2],
            },
            Cmsg {
                level: libc::IPPROTO_SCTP,
                kind: 2, // SCTP_SNDINFO
                data: vec![0; 16],
            },
        ];
        let d = destination(SCTP4, 0, &m).unwrap();
        assert_eq!(
            net::parse_sockaddr(&d.name.unwrap()).unwrap(),
            inet("10.0.0.1", 38412).unwrap()
        );
        assert_eq!(d.more.len(), 1);
        assert_eq!(
            net::parse_sockaddr(&d.more[0]).unwrap(),
            inet("10.0.0.2", 38412).unwrap(),
            "the extra address takes the name's port"
        );
        m.control[0].data.push(0);
        assert_eq!(
            destination(SCTP4, 0, &m),
            Err(libc::EINVAL),
            "a DSTADDRV4 of 5 bytes"
        );
    }

    #[test]
    fn only_unix_datagram_sockets_send_to_a_name() {
        let mut path = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        path.extend_from_slice(b"/run/x.sock\0");
        let m = to(Some(path.clone()));
        for (kind, named) in [
            (libc::SOCK_DGRAM, true),
            (libc::SOCK_STREAM, false),
            (libc::SOCK_SEQPACKET, false),
        ] {
            let sock = Sock {
                family: libc::AF_UNIX,
                kind,
                protocol: 0,
            };
            assert_eq!(
                destination(sock, 0, &m).unwrap().name.is_some(),
                named,
                "{kind}"
            );
        }
        let netlink = Sock {
            family: libc::AF_NETLINK,
            kind: libc::SOCK_RAW,
            protocol: 0,
        };
        assert_eq!(destination(netlink, 0, &m).unwrap(), Destination::default());
    }

    #[test]
    fn what_the_supervisor_cannot_send_as_the_task_is_named() {
        let c = |level, kind| Cmsg {
            level,
            kind,
            data: vec![0; 4],
        };
        for ok in [
            c(libc::IPPROTO_IP, libc::IP_PKTINFO),
            c(libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
            c(libc::SOL_UDP, UDP_SEGMENT),
            c(libc::SOL_SOCKET, libc::SCM_RIGHTS),
            c(libc::IPPROTO_SCTP, SCTP_DSTADDRV4),
        ] {
            assert_eq!(unfaithful(UDP4, &ok), None, "{ok:?}");
        }
        for bad in [
            c(libc::SOL_SOCKET, libc::SCM_CREDENTIALS),
            c(libc::SOL_SOCKET, libc::SO_MARK),
            c(libc::SOL_SOCKET, libc::SO_PRIORITY),
            c(libc::IPPROTO_IP, libc::IP_RETOPTS), // source routing: another first hop
            c(libc::IPPROTO_IPV6, libc::IPV6_RTHDR),
            c(libc::IPPROTO_IPV6, libc::IPV6_HOPOPTS),
        ] {
            assert!(unfaithful(UDP4, &bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn fds_passed_are_renumbered_as_the_supervisor_holds_them() {
        let a = std::fs::File::open("/dev/null").unwrap();
        let b = std::fs::File::open("/dev/null").unwrap();
        let o = Outgoing {
            addr: None,
            data: vec![1],
            control: vec![Cmsg {
                level: libc::SOL_SOCKET,
                kind: libc::SCM_RIGHTS,
                data: [900i32, 901].iter().flat_map(|n| n.to_ne_bytes()).collect(),
            }],
            fds: vec![OwnedFd::from(a), OwnedFd::from(b)],
            eor: false,
        };
        let (words, len) = o.encoded_control();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let back = msg::cmsgs(&bytes[..len]).unwrap();
        let fds: Vec<i32> = back[0]
            .data
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let ours: Vec<i32> = o.fds.iter().map(|f| f.as_raw_fd()).collect();
        assert_eq!(fds, ours);
    }
}
