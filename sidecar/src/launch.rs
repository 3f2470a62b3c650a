//! The supervisor's side of the launcher (`nfguard-launch`): the handover of
//! a keeper's listener, and what the sidecar shares with the launcher.
//!
//! The launcher itself is the `nfguard-launcher` crate (`launcher/`): it is
//! the first process of a monitored container and stays there as the
//! keeper, holding the seccomp listener and handing it to the supervisor
//! (again after each restart). It is `no_std`, so the static binary that
//! goes into every pod stays small; see its crate documentation.

use std::ffi::OsString;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

pub use nfguard_launcher::{EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE, PROTOCOL_VERSION};

/// Finds `cmd` the way the launcher will (execvp's search, `$PATH` or
/// `/usr/local/bin:/usr/bin:/bin`), so `nfguard run` can refuse a missing
/// command before starting anything.
pub fn resolve_command(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").ok();
    nfguard_launcher::resolve_command(cmd, path.as_deref())
        .map(|p| PathBuf::from(OsString::from_vec(p)))
}

/// Sends `data` with exactly one fd attached (SCM_RIGHTS).
pub fn send_fd(
    sock: std::os::fd::BorrowedFd<'_>,
    data: &[u8],
    fd: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(data)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receives one message with exactly one fd (MSG_CMSG_CLOEXEC, so the fd never
/// leaks into a program we exec). Returns the fd and the message bytes.
pub fn recv_fd(sock: std::os::fd::BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut cmsg_space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let (n, fd) = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let mut fd = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    let owned = crate::sys::own_received_fd(raw);
                    if fd.is_none() {
                        fd = Some(owned);
                    } // extra fds are closed by the drop
                }
            }
        }
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "control message truncated",
            ));
        }
        (msg.bytes, fd)
    };
    buf.truncate(n);
    match fd {
        Some(fd) => Ok((fd, buf)),
        None if n == 0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message without an fd",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launcher_agrees_with_the_common_contract() {
        use nfguard_common::{env, paths};
        assert_eq!(nfguard_launcher::DEFAULT_SOCKET, paths::SOCKET);
        assert_eq!(nfguard_launcher::ENV_SOCKET.to_str(), Ok(env::SOCKET));
        assert_eq!(
            nfguard_launcher::ENV_CONTAINER.to_str(),
            Ok(env::CONTAINER_NAME)
        );
        assert_eq!(nfguard_launcher::ENV_DATAGRAMS.to_str(), Ok(env::DATAGRAMS));
        // The launcher's default is the contract's.
        let cfg = nfguard_launcher::parse_args(
            &["--".to_string(), "x".to_string()],
            &nfguard_launcher::LaunchEnv::default(),
        )
        .unwrap();
        assert_eq!(
            cfg.datagrams,
            nfguard_common::Datagrams::default() == nfguard_common::Datagrams::Inspect
        );
    }

    #[test]
    fn commands_are_resolved_through_the_launcher() {
        assert_eq!(resolve_command("/x/y"), Some(PathBuf::from("/x/y")));
        assert!(resolve_command("sh").is_some());
        assert!(resolve_command("nfguard-no-such-command").is_none());
    }
}
