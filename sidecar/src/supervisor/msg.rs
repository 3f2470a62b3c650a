//! The messages of `sendto`, `sendmsg` and `sendmmsg`, read from the target's
//! memory as the kernel reads them (net/socket.c: `__copy_msghdr`,
//! `____sys_sendmsg`, `__sys_sendmmsg`; include/linux/socket.h's cmsg walk),
//! so the supervisor judges the destination the kernel will use and, in
//! enforce mode, sends the copy it judged.
//!
//! The layouts are x86_64's (the only ABI the filter lets through):
//! `struct msghdr` is 56 bytes, `struct mmsghdr` 64, `struct iovec` 16, a
//! `struct cmsghdr` 16 followed by its data, each aligned to 8.
//!
//! Parsers of bytes are pure; the readers go through the [`Memory`] seam,
//! so both are tested on crafted memory without a process.

use super::failure::Failure;
use super::target::{read_bytes, Memory};

/// `sizeof(struct msghdr)`.
pub const MSGHDR: usize = 56;
/// `sizeof(struct mmsghdr)`: a msghdr, the `msg_len` the kernel writes back, padding.
pub const MMSGHDR: usize = 64;
/// Where `msg_len` sits in a `struct mmsghdr`.
pub const MMSG_LEN_AT: u64 = 56;
/// `UIO_MAXIOV`: the most iovecs in a message, and the most messages of a sendmmsg.
pub const UIO_MAXIOV: u64 = 1024;
/// `sizeof(struct sockaddr_storage)`: a longer msg_namelen is clamped to it.
const SOCKADDR_STORAGE: usize = 128;
/// `sizeof(struct cmsghdr)`.
const CMSGHDR: usize = 16;
/// The most control data read (the kernel's `optmem_max` default is 128 KiB;
/// more fails with ENOBUFS there too).
pub const CONTROL_MAX: u64 = 128 * 1024;

/// The fields of a `struct msghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub name: u64,
    /// An `int` in the kernel's view (a huge value is negative: EINVAL).
    pub namelen: i32,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
    pub flags: i32,
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[o..o + 8]);
    u64::from_ne_bytes(w)
}

fn i32_at(b: &[u8], o: usize) -> i32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[o..o + 4]);
    i32::from_ne_bytes(w)
}

/// A `struct msghdr` from its 56 bytes.
pub fn header(b: &[u8; MSGHDR]) -> Header {
    Header {
        name: u64_at(b, 0),
        namelen: i32_at(b, 8),
        iov: u64_at(b, 16),
        iovlen: u64_at(b, 24),
        control: u64_at(b, 32),
        controllen: u64_at(b, 40),
        flags: i32_at(b, 48),
    }
}

/// How many bytes of `msg_name` the kernel takes (`__copy_msghdr`): none
/// for a null pointer or a zero length, at most a sockaddr_storage; a
/// negative length is EINVAL.
pub fn name_len(h: &Header) -> Result<Option<usize>, i32> {
    if h.name == 0 {
        return Ok(None);
    }
    match usize::try_from(h.namelen) {
        Err(_) => Err(libc::EINVAL),
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n.min(SOCKADDR_STORAGE))),
    }
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmsg {
    pub level: i32,
    pub kind: i32,
    pub data: Vec<u8>,
}

/// The control messages in `bytes`, walked as `for_each_cmsghdr` does: a
/// header needs 16 bytes, its `cmsg_len` covers the header and its data and
/// must fit what is left (`CMSG_OK`, else EINVAL), the next one starts at the
/// length aligned to 8, and a tail too short for a header is ignored.
pub fn cmsgs(bytes: &[u8]) -> Result<Vec<Cmsg>, i32> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while bytes.len().saturating_sub(at) >= CMSGHDR {
        let len = u64_at(bytes, at);
        let left = (bytes.len() - at) as u64;
        if len < CMSGHDR as u64 || len > left {
            return Err(libc::EINVAL);
        }
        let len = len as usize;
        out.push(Cmsg {
            level: i32_at(bytes, at + 8),
            kind: i32_at(bytes, at + 12),
            data: bytes[at + CMSGHDR..at + len].to_vec(),
        });
        at += (len + 7) & !7;
    }
    Ok(out)
}

/// `cmsgs` laid out again for a send: 8-byte words (the alignment the kernel
/// reads them with) and the length in bytes.
pub fn encode_cmsgs(list: &[Cmsg]) -> (Vec<u64>, usize) {
    let mut bytes = Vec::new();
    for c in list {
        let len = (CMSGHDR + c.data.len()) as u64;
        bytes.extend_from_slice(&len.to_ne_bytes());
        bytes.extend_from_slice(&c.level.to_ne_bytes());
        bytes.extend_from_slice(&c.kind.to_ne_bytes());
        bytes.extend_from_slice(&c.data);
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
    }
    let len = bytes.len();
    let words = bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_ne_bytes(w)
        })
        .collect();
    (words, len)
}

/// What of a message to read: its destination always; its data (at most
/// `data` bytes) and its control messages only when the supervisor will
/// send it (enforce mode) or must judge them (SCTP's destination cmsgs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub data: Option<usize>,
    pub control: bool,
}

/// One message of a send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The destination's bytes, when the call names one. `Some` of no bytes
    /// is `sendto` with an address and a zero length, which the kernel
    /// passes on as such (UDP then answers EINVAL).
    pub name: Option<Vec<u8>>,
    /// The data, concatenated (when asked for).
    pub data: Vec<u8>,
    /// The length of the data as the call gives it (may be more than read).
    pub len: u64,
    pub control: Vec<Cmsg>,
    /// `msg_flags` of the header: the kernel takes MSG_EOR from it.
    pub header_flags: i32,
}

/// The iovecs at `iov`: (base, length) pairs. More than UIO_MAXIOV is
/// EMSGSIZE, and lengths that overflow `ssize_t` EINVAL, as in the kernel.
pub fn read_iovecs<M: Memory>(m: &M, iov: u64, iovlen: u64) -> Result<Vec<(u64, u64)>, Failure> {
    if iovlen > UIO_MAXIOV {
        return Err(Failure::Target(libc::EMSGSIZE));
    }
    if iovlen == 0 {
        return Ok(Vec::new());
    }
    let raw = read_bytes(m, iov, 16 * iovlen as usize)?;
    let mut out = Vec::with_capacity(iovlen as usize);
    for v in raw.chunks_exact(16) {
        let (base, len) = (u64_at(v, 0), u64_at(v, 8));
        if len > isize::MAX as u64 {
            return Err(Failure::Target(libc::EINVAL));
        }
        out.push((base, len));
    }
    Ok(out)
}

/// The bytes the iovecs name, at most `max` of them (in order).
pub fn gather<M: Memory>(m: &M, iovs: &[(u64, u64)], max: usize) -> Result<Vec<u8>, Failure> {
    let mut data = Vec::new();
    for &(base, len) in iovs {
        let take = (len as usize).min(max - data.len());
        if take > 0 {
            data.extend(read_bytes(m, base, take)?);
        }
        if data.len() == max {
            break;
        }
    }
    Ok(data)
}

/// The total length of the iovecs (the kernel clamps it to MAX_RW_COUNT;
/// only the comparison with what was read matters here).
fn total_len(iovs: &[(u64, u64)]) -> u64 {
    iovs.iter().fold(0u64, |t, (_, l)| t.saturating_add(*l))
}

/// Reads the control messages at `control` (`controllen` bytes).
fn read_control<M: Memory>(m: &M, control: u64, controllen: u64) -> Result<Vec<Cmsg>, Failure> {
    if controllen == 0 {
        return Ok(Vec::new());
    }
    if controllen > CONTROL_MAX {
        return Err(Failure::Target(libc::ENOBUFS));
    }
    let bytes = read_bytes(m, control, controllen as usize)?;
    cmsgs(&bytes).map_err(Failure::Target)
}

/// Reads the `struct msghdr` at `msg` and what `want` asks of it.
pub fn read_message<M: Memory>(m: &M, msg: u64, want: Want) -> Result<Message, Failure> {
    let raw = read_bytes(m, msg, MSGHDR)?;
    let mut b = [0u8; MSGHDR];
    b.copy_from_slice(&raw);
    let h = header(&b);
    let name = match name_len(&h).map_err(Failure::Target)? {
        Some(n) => Some(read_bytes(m, h.name, n)?),
        None => None,
    };
    let iovs = read_iovecs(m, h.iov, h.iovlen)?;
    let data = match want.data {
        Some(max) => gather(m, &iovs, max)?,
        None => Vec::new(),
    };
    let control = if want.control {
        read_control(m, h.control, h.controllen)?
    } else {
        Vec::new()
    };
    Ok(Message {
        name,
        data,
        len: total_len(&iovs),
        control,
        header_flags: h.flags,
    })
}

/// Reads a `sendto`'s message: the buffer and the address (EINVAL for an
/// address length outside 0..=128, as `move_addr_to_kernel` says).
pub fn read_sendto<M: Memory>(
    m: &M,
    (buf, len): (u64, u64),
    (addr, addrlen): (u64, i32),
    data: Option<usize>,
) -> Result<Message, Failure> {
    let name = if addr == 0 {
        None
    } else {
        match usize::try_from(addrlen) {
            Ok(0) => Some(Vec::new()),
            Ok(n) if n <= SOCKADDR_STORAGE => Some(read_bytes(m, addr, n)?),
            _ => return Err(Failure::Target(libc::EINVAL)),
        }
    };
    let data = match data {
        Some(max) => read_bytes(m, buf, (len as usize).min(max))?,
        None => Vec::new(),
    };
    Ok(Message {
        name,
        data,
        len,
        control: Vec::new(),
        header_flags: 0,
    })
}

/// The messages of a `sendmmsg` of `vlen` (the kernel takes at most
/// UIO_MAXIOV of them).
pub fn read_mmsg<M: Memory>(
    m: &M,
    vec: u64,
    vlen: u32,
    want: Want,
) -> Result<Vec<Message>, Failure> {
    let n = u64::from(vlen).min(UIO_MAXIOV);
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let at = vec
            .checked_add(i * MMSGHDR as u64)
            .ok_or(Failure::Target(libc::EFAULT))?;
        out.push(read_message(m, at, want)?);
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io;

    /// An address space of regions for tests: each `(base, bytes)`.
    #[derive(Default)]
    pub(crate) struct Space(pub Vec<(u64, Vec<u8>)>);

    impl Space {
        /// Maps `bytes` at `base`; returns `base`.
        pub(crate) fn map(&mut self, base: u64, bytes: &[u8]) -> u64 {
            self.0.push((base, bytes.to_vec()));
            base
        }
    }

    impl Memory for Space {
        fn read(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
            for (base, bytes) in &self.0 {
                if addr >= *base && addr < base + bytes.len() as u64 {
                    let from = (addr - base) as usize;
                    let n = buf.len().min(bytes.len() - from);
                    buf[..n].copy_from_slice(&bytes[from..from + n]);
                    return Ok(n);
                }
            }
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    /// A `struct msghdr`'s bytes.
    pub(crate) fn msghdr(
        name: (u64, u32),
        iov: (u64, u64),
        control: (u64, u64),
        flags: i32,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&name.0.to_ne_bytes());
        b.extend_from_slice(&name.1.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        b.extend_from_slice(&iov.0.to_ne_bytes());
        b.extend_from_slice(&iov.1.to_ne_bytes());
        b.extend_from_slice(&control.0.to_ne_bytes());
        b.extend_from_slice(&control.1.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&[0; 4]);
        assert_eq!(b.len(), MSGHDR);
        b
    }

    pub(crate) fn iovec(parts: &[(u64, u64)]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|(b, l)| b.to_ne_bytes().into_iter().chain(l.to_ne_bytes()))
            .collect()
    }

    pub(crate) fn sockaddr_in(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = (libc::AF_INET as u16).to_ne_bytes().to_vec();
        b.extend_from_slice(&port.to_be_bytes());
        b.extend_from_slice(&ip);
        b.extend_from_slice(&[0; 8]);
        b
    }

    #[test]
    fn a_message_is_read_as_the_kernel_reads_it() {
        let mut s = Space::default();
        let to = s.map(0x1000, &sockaddr_in([10, 0, 2, 7], 8805));
        let a = s.map(0x2000, b"hello ");
        let b = s.map(0x3000, b"world");
        let iov = s.map(0x4000, &iovec(&[(a, 6), (b, 5)]));
        let ctl = encode_cmsgs(&[Cmsg {
            level: libc::IPPROTO_IP,
            kind: libc::IP_TOS,
            data: vec![0x10, 0, 0, 0],
        }]);
        let ctl_bytes: Vec<u8> = ctl.0.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let c = s.map(0x5000, &ctl_bytes[..ctl.1]);
        let msg = s.map(
            0x6000,
            &msghdr((to, 16), (iov, 2), (c, ctl.1 as u64), libc::MSG_EOR),
        );
        let all = Want {
            data: Some(1 << 20),
            control: true,
        };
        let m = read_message(&s, msg, all).unwrap();
        assert_eq!(
            m.name.as_deref(),
            Some(&sockaddr_in([10, 0, 2, 7], 8805)[..])
        );
        assert_eq!(m.data, b"hello world");
        assert_eq!(m.len, 11);
        assert_eq!(m.header_flags, libc::MSG_EOR);
        assert_eq!(m.control.len(), 1);
        assert_eq!(
            (m.control[0].level, m.control[0].kind),
            (libc::IPPROTO_IP, libc::IP_TOS)
        );
        // Outside enforce mode only the destination is read: a bad data
        // pointer does not matter then (the kernel will say EFAULT itself).
        let bad_iov = s.map(0x7000, &iovec(&[(0xdead_0000, 100)]));
        let msg = s.map(0x8000, &msghdr((to, 16), (bad_iov, 1), (0, 0), 0));
        let name_only = Want {
            data: None,
            control: false,
        };
        let m = read_message(&s, msg, name_only).unwrap();
        assert_eq!(m.name.as_deref().map(<[u8]>::len), Some(16));
        assert!(matches!(
            read_message(&s, msg, all),
            Err(Failure::Target(libc::EFAULT))
        ));
        // Data is read up to the limit asked for.
        let msg = s.map(0x9000, &msghdr((0, 0), (iov, 2), (0, 0), 0));
        let m = read_message(
            &s,
            msg,
            Want {
                data: Some(4),
                control: false,
            },
        )
        .unwrap();
        assert_eq!((m.data.as_slice(), m.len, m.name), (&b"hell"[..], 11, None));
    }

    #[test]
    fn msg_name_is_taken_as_the_kernel_copies_the_header() {
        let h = |name, namelen| Header {
            name,
            namelen,
            iov: 0,
            iovlen: 0,
            control: 0,
            controllen: 0,
            flags: 0,
        };
        assert_eq!(name_len(&h(0, 16)), Ok(None), "a null name with a length");
        assert_eq!(name_len(&h(0x1000, 0)), Ok(None), "a name of no length");
        assert_eq!(name_len(&h(0x1000, 16)), Ok(Some(16)));
        assert_eq!(
            name_len(&h(0x1000, 4096)),
            Ok(Some(128)),
            "clamped, not refused"
        );
        assert_eq!(name_len(&h(0x1000, -1)), Err(libc::EINVAL));
    }

    #[test]
    fn control_messages_are_walked_as_for_each_cmsghdr_walks_them() {
        let two = [
            Cmsg {
                level: libc::SOL_SOCKET,
                kind: libc::SCM_RIGHTS,
                data: 7i32.to_ne_bytes().to_vec(),
            },
            Cmsg {
                level: libc::IPPROTO_IPV6,
                kind: libc::IPV6_HOPLIMIT,
                data: 64i32.to_ne_bytes().to_vec(),
            },
        ];
        let (words, len) = encode_cmsgs(&two);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        assert_eq!(len, 48, "two headers of 16 and data of 4, each padded to 8");
        assert_eq!(cmsgs(&bytes[..len]).unwrap(), two);
        // A tail shorter than a header is ignored; a length past the end is EINVAL.
        let mut tail = bytes[..len].to_vec();
        tail.extend_from_slice(&[0xff; 15]);
        assert_eq!(cmsgs(&tail).unwrap(), two);
        let mut long = bytes[..24].to_vec();
        long[..8].copy_from_slice(&25u64.to_ne_bytes());
        assert_eq!(cmsgs(&long), Err(libc::EINVAL));
        let mut short = bytes[..24].to_vec();
        short[..8].copy_from_slice(&15u64.to_ne_bytes());
        assert_eq!(cmsgs(&short), Err(libc::EINVAL));
        assert_eq!(cmsgs(&[]).unwrap(), vec![]);
    }

    #[test]
    fn sendmmsg_reads_each_message_and_at_most_uio_maxiov() {
        let mut s = Space::default();
        let data = s.map(0x1000, b"x");
        let iov = s.map(0x2000, &iovec(&[(data, 1)]));
        let mut vec = Vec::new();
        for i in 0..3u8 {
            let to = s.map(
                0x10_000 + u64::from(i) * 0x100,
                &sockaddr_in([127, 0, 0, i + 1], 2152),
            );
            vec.extend(msghdr((to, 16), (iov, 1), (0, 0), 0));
            vec.extend([0u8; 8]); // msg_len and padding
        }
        let v = s.map(0x20_000, &vec);
        let want = Want {
            data: Some(64),
            control: false,
        };
        let msgs = read_mmsg(&s, v, 3, want).unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[2].name.as_ref().unwrap()[4..8], [127, 0, 0, 3]);
        // A vector that ends early is a bad pointer, as for the kernel.
        assert!(matches!(
            read_mmsg(&s, v, 4, want),
            Err(Failure::Target(libc::EFAULT))
        ));
        assert!(matches!(
            read_iovecs(&s, iov, UIO_MAXIOV + 1),
            Err(Failure::Target(libc::EMSGSIZE))
        ));
    }

    #[test]
    fn sendto_addresses_follow_move_addr_to_kernel() {
        let mut s = Space::default();
        let to = s.map(0x1000, &sockaddr_in([10, 0, 0, 1], 53));
        let buf = s.map(0x2000, b"q");
        let m = read_sendto(&s, (buf, 1), (to, 16), Some(10)).unwrap();
        assert_eq!((m.name.map(|n| n.len()), m.data), (Some(16), b"q".to_vec()));
        assert_eq!(read_sendto(&s, (buf, 1), (0, 16), None).unwrap().name, None);
        assert_eq!(
            read_sendto(&s, (buf, 1), (to, 0), None).unwrap().name,
            Some(vec![])
        );
        for bad in [129, -1] {
            assert!(matches!(
                read_sendto(&s, (buf, 1), (to, bad), None),
                Err(Failure::Target(libc::EINVAL))
            ));
        }
    }

    proptest! {
        /// Any bytes as control data, and any memory under a msghdr: an
        /// answer, never a panic.
        #[test]
        fn any_control_bytes_walk_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = cmsgs(&bytes);
        }

        #[test]
        fn any_message_memory_reads_without_panic(
            hdr in proptest::collection::vec(any::<u8>(), MSGHDR..MSGHDR + 1),
            other in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut s = Space::default();
            let at = s.map(0x1000, &hdr);
            s.map(0x2000, &other);
            let _ = read_message(&s, at, Want { data: Some(4096), control: true });
        }
    }
}
