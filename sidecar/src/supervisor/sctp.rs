//! SCTP's socket options that add addresses: `sctp_bindx` binds more local
//! addresses (`setsockopt(SCTP_SOCKOPT_BINDX_ADD)`), `sctp_connectx`
//! connects to several peers at once (`getsockopt(SCTP_SOCKOPT_CONNECTX3)`,
//! or `setsockopt(SCTP_SOCKOPT_CONNECTX)` and `CONNECTX_OLD` before it). The
//! filter notifies setsockopt at SCTP's level only, and getsockopt for
//! CONNECTX3 only, so every other option stays in the kernel.
//!
//! The addresses are a packed array of `sockaddr_in` (16 bytes) and
//! `sockaddr_in6` (28), each sized by its family, as `sctp_setsockopt_bindx`
//! and `__sctp_connect` walk it. Each is judged like a bind (a served port)
//! or a connect (a peer); in enforce mode the supervisor makes the call on
//! the socket it took, with its copy of the array, and for CONNECTX3 writes
//! the association id back where the kernel would.
//!
//! This kernel has no SCTP (`socket(..., IPPROTO_SCTP)` fails with
//! EPROTONOSUPPORT): the reading of the options is tested on crafted memory
//! (the `Memory` seam) and the filter's side in the policy crate's BPF
//! interpreter; the calls themselves are not made here.

use std::os::fd::{AsFd, OwnedFd};

use nfguard_common::Mode;
use nfguard_policy::{
    SCTP_SOCKOPT_BINDX_ADD, SCTP_SOCKOPT_CONNECTX, SCTP_SOCKOPT_CONNECTX3,
    SCTP_SOCKOPT_CONNECTX_OLD, SOL_SCTP,
};

use super::decode::Ptr;
use super::emulate::{Call, Emulation, Emulator, Reply};
use super::failure::Failure;
use super::request::{Plan, Request, Scope};
use super::sockets::{peer, socket_of};
use super::target::{read_bytes, Memory, Target};
use crate::event::{Category, Op};
use crate::net;
use crate::sys;

/// The most of an option's value the kernel reads: `sctp_setsockopt` trims
/// `optlen` to `PAGE_ALIGN(USHRT_MAX + 2 * sizeof(struct sctp_reset_streams))`.
pub const OPTLEN_MAX: usize = 69_632;
/// `sizeof(struct sctp_getaddrs_old)` on x86_64: assoc_id, addr_num (a
/// length in bytes, despite its name), and the array's address.
const GETADDRS_OLD: usize = 16;

/// The addresses of a packed array, each as its own sockaddr; EINVAL as the
/// kernel says it: an empty array, a family that is not AF_INET or AF_INET6,
/// or an address that runs past the end.
pub fn packed_addrs(bytes: &[u8]) -> Result<Vec<Vec<u8>>, i32> {
    if bytes.is_empty() {
        return Err(libc::EINVAL);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if at + 2 > bytes.len() {
            return Err(libc::EINVAL);
        }
        let size = match i32::from(u16::from_ne_bytes([bytes[at], bytes[at + 1]])) {
            libc::AF_INET => 16,
            libc::AF_INET6 => 28,
            _ => return Err(libc::EINVAL),
        };
        if at + size > bytes.len() {
            return Err(libc::EINVAL);
        }
        out.push(bytes[at..at + size].to_vec());
        at += size;
    }
    Ok(out)
}

/// What an SCTP socket option asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addresses {
    /// Nothing this module judges: the kernel decides (level and option
    /// are registers).
    None,
    /// BINDX_ADD: local addresses to bind.
    Bind(Vec<Vec<u8>>),
    /// CONNECTX, CONNECTX_OLD, CONNECTX3: peers to connect to. For
    /// CONNECTX3, where the task's `sctp_getaddrs_old` and length are.
    Connect {
        addrs: Vec<Vec<u8>>,
        raw: Vec<u8>,
        connectx3: Option<(u64, u64)>,
    },
}

/// Reads the addresses an SCTP option names from the task's memory, as the
/// kernel reads them (`sctp_setsockopt`, `sctp_getsockopt_connectx3`).
pub fn read_addresses<M: Memory>(
    m: &M,
    get: bool,
    name: i32,
    (val, len): (Ptr, u64),
) -> Result<Addresses, Failure> {
    let name = name as u32;
    let array = |at: u64, n: i64| -> Result<(Vec<Vec<u8>>, Vec<u8>), Failure> {
        let n = usize::try_from(n).map_err(|_| Failure::Target(libc::EINVAL))?;
        let bytes = read_bytes(m, at, n.min(OPTLEN_MAX))?;
        let addrs = packed_addrs(&bytes).map_err(Failure::Target)?;
        Ok((addrs, bytes))
    };
    match (get, name) {
        (false, SCTP_SOCKOPT_BINDX_ADD) => {
            // setsockopt's optlen is an int: negative is EINVAL.
            let (addrs, _) = array(val.0, i64::from(len as u32 as i32))?;
            Ok(Addresses::Bind(addrs))
        }
        (false, SCTP_SOCKOPT_CONNECTX | SCTP_SOCKOPT_CONNECTX_OLD) => {
            let (addrs, raw) = array(val.0, i64::from(len as u32 as i32))?;
            Ok(Addresses::Connect {
                addrs,
                raw,
                connectx3: None,
            })
        }
        (true, SCTP_SOCKOPT_CONNECTX3) => {
            // getsockopt: *optlen, then the struct, then the array it points at.
            let l = read_bytes(m, len, 4)?;
            let optlen = i32::from_ne_bytes([l[0], l[1], l[2], l[3]]);
            if optlen < GETADDRS_OLD as i32 {
                return Err(Failure::Target(libc::EINVAL));
            }
            let p = read_bytes(m, val.0, GETADDRS_OLD)?;
            let addr_num = i32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
            let mut w = [0u8; 8];
            w.copy_from_slice(&p[8..16]);
            let (addrs, raw) = array(u64::from_ne_bytes(w), i64::from(addr_num))?;
            Ok(Addresses::Connect {
                addrs,
                raw,
                connectx3: Some((val.0, len)),
            })
        }
        _ => Ok(Addresses::None),
    }
}

/// A socket option the supervisor sets (or gets, for CONNECTX3) for the task.
pub enum SockOptJob {
    /// setsockopt with the copy judged; answered with its return value (the
    /// association id, for CONNECTX).
    Set {
        sock: OwnedFd,
        name: i32,
        value: Vec<u8>,
        connects: bool,
    },
    /// getsockopt(CONNECTX3) on a `sctp_getaddrs_old` of the supervisor's
    /// pointing at its copy; the id goes back to the task's struct at
    /// `optval` and 4 to its `*optlen`, as the kernel writes them.
    Connectx3 {
        sock: OwnedFd,
        addrs: Vec<u8>,
        optval: u64,
        optlen: u64,
        tid: i32,
    },
}

pub fn sockopt(
    t: &Target<'_>,
    scope: &Scope<'_>,
    fd: i32,
    (level, name): (i32, i32),
    (val, len): (Ptr, u64),
    get: bool,
) -> Result<Request, Failure> {
    let mut req = Request::new(Category::Network, None, libc::EACCES);
    if level as u32 != SOL_SCTP {
        // The filter notifies SCTP's level only; anything else is the kernel's.
        return Ok(req);
    }
    let what = read_addresses(&t.memory(), get, name, (val, len))?;
    if what == Addresses::None {
        // Another SCTP option: it adds no address, and which option it is
        // is a register.
        return Ok(req);
    }
    let (sock, family, kind, proto) = socket_of(t, fd)?;
    if proto != libc::IPPROTO_SCTP {
        // Not an SCTP socket: the kernel would answer ENOPROTOOPT. Answering
        // it ourselves keeps a racing dup2 of an SCTP socket out.
        return Err(Failure::Target(libc::ENOPROTOOPT));
    }
    req.family = Some(net::family_name(family));
    let enforce = scope.mode == Mode::Enforce;
    match what {
        Addresses::None => {}
        Addresses::Bind(addrs) => {
            req.op = Some(Op::Bind);
            for a in &addrs {
                peer(t, scope, &mut req, Op::Bind, a, (kind, proto))?;
            }
            if enforce {
                let value = addrs.concat();
                req.plan = Plan::Emulate(Emulation::Call(Box::new(SockOptJob::Set {
                    sock,
                    name,
                    value,
                    connects: false,
                })));
            }
        }
        Addresses::Connect {
            addrs,
            raw,
            connectx3,
        } => {
            req.op = Some(Op::Connect);
            for a in &addrs {
                peer(t, scope, &mut req, Op::Connect, a, (kind, proto))?;
            }
            if enforce {
                req.plan = Plan::Emulate(Emulation::Call(Box::new(match connectx3 {
                    None => SockOptJob::Set {
                        sock,
                        name,
                        value: raw,
                        connects: true,
                    },
                    Some((optval, optlen)) => SockOptJob::Connectx3 {
                        sock,
                        addrs: raw,
                        optval,
                        optlen,
                        tid: t.tid(),
                    },
                })));
            }
        }
    }
    Ok(req)
}

/// Makes the option's call for the task and answers. A connect may wait
/// for the association (a blocking socket): it runs on a worker thread.
impl Call for SockOptJob {
    fn perform(self: Box<Self>, em: &Emulator, _: &Target<'_>, reply: Reply) {
        perform(em, *self, reply)
    }
}

fn perform(em: &Emulator, job: SockOptJob, reply: Reply) {
    match job {
        SockOptJob::Set {
            sock,
            name,
            value,
            connects,
        } => {
            let run = move || match sys::setsockopt_raw(sock.as_fd(), SOL_SCTP as i32, name, &value)
            {
                Ok(v) => reply.value(i64::from(v)),
                Err(e) => reply.count(Err(e)),
            };
            if connects {
                em.background(Box::new(run))
            } else {
                run()
            }
        }
        SockOptJob::Connectx3 {
            sock,
            addrs,
            optval,
            optlen,
            tid,
        } => em.background(Box::new(move || {
            let mut param = [0u8; GETADDRS_OLD];
            param[4..8].copy_from_slice(&(addrs.len() as i32).to_ne_bytes());
            param[8..16].copy_from_slice(&(addrs.as_ptr() as u64).to_ne_bytes());
            let r = sys::getsockopt_raw(
                sock.as_fd(),
                SOL_SCTP as i32,
                SCTP_SOCKOPT_CONNECTX3 as i32,
                &mut param,
            );
            let done = match &r {
                Ok(_) => true,
                Err(e) => e.raw_os_error() == Some(libc::EINPROGRESS),
            };
            if done {
                // What sctp_getsockopt_connectx3 copies out: the id, and its size.
                let _ = sys::write_process_memory(tid, optval, &param[..4]);
                let _ = sys::write_process_memory(tid, optlen, &4i32.to_ne_bytes());
            }
            drop(addrs);
            match r {
                Ok((v, _)) => reply.value(i64::from(v)),
                Err(e) => reply.count(Err(e)),
            }
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::super::decide;
    use super::super::msg::tests::Space;
    use super::*;
    use crate::model::{ListenEntry, Model, Observation, PeerEntry};

    fn sin(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 8]);
        b
    }

    fn sin6(last: u8, port: u16) -> Vec<u8> {
        let mut b = (libc::AF_INET6 as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&[0; 4]);
        let mut ip = [0u8; 16];
        ip[15] = last;
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 4]);
        b
    }

    #[test]
    fn a_packed_address_array_is_walked_by_family() {
        let mut packed = sin([10, 0, 0, 1], 38412);
        packed.extend(sin6(1, 38412));
        packed.extend(sin([10, 0, 0, 2], 38412));
        let addrs = packed_addrs(&packed).unwrap();
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[1].len(), 28);
        assert_eq!(packed_addrs(&[]), Err(libc::EINVAL), "an empty array");
        assert_eq!(
            packed_addrs(&packed[..40]),
            Err(libc::EINVAL),
            "a truncated sockaddr_in6"
        );
        let mut unix = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        unix.extend([0; 14]);
        assert_eq!(packed_addrs(&unix), Err(libc::EINVAL));
        assert_eq!(
            packed_addrs(&packed[..17]),
            Err(libc::EINVAL),
            "a family cut in half"
        );
    }

    #[test]
    fn bindx_and_both_forms_of_connectx_are_read_from_the_tasks_memory() {
        let mut s = Space::default();
        let mut two = sin([127, 0, 0, 1], 38412);
        two.extend(sin([127, 0, 0, 2], 38412));
        let arr = s.map(0x1000, &two);
        let got = read_addresses(&s, false, SCTP_SOCKOPT_BINDX_ADD as i32, (Ptr(arr), 32)).unwrap();
        assert_eq!(got, Addresses::Bind(packed_addrs(&two).unwrap()));
        for name in [SCTP_SOCKOPT_CONNECTX, SCTP_SOCKOPT_CONNECTX_OLD] {
            match read_addresses(&s, false, name as i32, (Ptr(arr), 32)).unwrap() {
                Addresses::Connect {
                    addrs, connectx3, ..
                } => assert_eq!((addrs.len(), connectx3), (2, None)),
                other => panic!("{other:?}"),
            }
        }
        // CONNECTX3: *optlen, then sctp_getaddrs_old { id, bytes, addrs }.
        let mut param = 0i32.to_ne_bytes().to_vec();
        param.extend(32i32.to_ne_bytes());
        param.extend(arr.to_ne_bytes());
        let p = s.map(0x2000, &param);
        let lenp = s.map(0x3000, &16i32.to_ne_bytes());
        match read_addresses(&s, true, SCTP_SOCKOPT_CONNECTX3 as i32, (Ptr(p), lenp)).unwrap() {
            Addresses::Connect {
                addrs, connectx3, ..
            } => assert_eq!((addrs.len(), connectx3), (2, Some((p, lenp)))),
            other => panic!("{other:?}"),
        }
        // A length shorter than the struct is EINVAL, a bad array pointer EFAULT.
        let short = s.map(0x4000, &8i32.to_ne_bytes());
        assert!(matches!(
            read_addresses(&s, true, SCTP_SOCKOPT_CONNECTX3 as i32, (Ptr(p), short)),
            Err(Failure::Target(libc::EINVAL))
        ));
        assert!(matches!(
            read_addresses(
                &s,
                false,
                SCTP_SOCKOPT_CONNECTX as i32,
                (Ptr(0xdead_0000), 16)
            ),
            Err(Failure::Target(libc::EFAULT))
        ));
        // A negative setsockopt length is EINVAL; other options are not read at all.
        assert!(matches!(
            read_addresses(
                &s,
                false,
                SCTP_SOCKOPT_BINDX_ADD as i32,
                (Ptr(arr), u64::from(u32::MAX))
            ),
            Err(Failure::Target(libc::EINVAL))
        ));
        assert_eq!(
            read_addresses(&s, false, 3, (Ptr(0xdead_0000), 4)).unwrap(),
            Addresses::None,
            "SCTP_NODELAY"
        );
        assert_eq!(
            read_addresses(&s, true, SCTP_SOCKOPT_CONNECTX as i32, (Ptr(arr), lenp)).unwrap(),
            Addresses::None,
            "CONNECTX is a setsockopt; as a getsockopt it connects nothing"
        );
    }

    #[test]
    fn sctp_peers_and_ports_are_decided_like_any_other() {
        // What `peer` makes of the addresses above, decided against a model
        // that has the NGAP peer and port but not the extra ones.
        let exe = "/usr/bin/amf".to_string();
        let ngap = |address: &str| {
            Observation::Connect(PeerEntry {
                exe: exe.clone(),
                protocol: "sctp".into(),
                address: address.into(),
                port: 38412,
            })
        };
        let served = |port| {
            Observation::Listen(ListenEntry {
                exe: exe.clone(),
                protocol: "sctp".into(),
                port,
                address: None,
            })
        };
        let mut model = Model::default();
        model.learn(&ngap("10.0.0.1"));
        model.learn(&served(38412));
        let obs = [
            ngap("10.0.0.1"),
            ngap("10.6.6.6"),
            served(38412),
            served(4444),
        ];
        let d = decide::decide(Mode::Enforce, &model, &obs, None);
        assert!(!d.allow);
        let why = d.flag.unwrap().reason;
        assert!(why.contains("NGAP (N2) to 10.6.6.6:38412"), "{why}");
        assert!(why.contains("sctp port 4444"), "{why}");
        assert!(!why.contains("10.0.0.1"), "{why}");
    }
}
