//! The launcher: `nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]`.
//!
//! It is the first process of a monitored container (the kubelet runs it as
//! the container's command) and it stays there as the *keeper*:
//!
//! ```text
//! keeper (pid 1 of the container)         child
//!   socketpair, block signals, fork ───────► no_new_privs, seccomp(NEW_LISTENER)
//!   recv listener  ◄──── SCM_RIGHTS ──────── sendmsg (not notified), close
//!   connect to the supervisor, hand over     execve(CMD)  ── waits for the supervisor's verdict
//!   the listener; again after each restart
//!   reap zombies, forward signals, exit with CMD's status
//! ```
//!
//! Why the keeper holds the listener: if the last fd of a listener closes,
//! every notified syscall fails with ENOSYS (ARCHITECTURE.md, fact 6). The keeper
//! outlives supervisor crashes, so those syscalls wait instead, and the
//! restarted supervisor gets the same listener back.
//!
//! The launcher is copied into arbitrary images: it is static, starts no
//! thread and depends on the standard library, libc and nix only.

use std::ffi::CString;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::{filter, sys};

/// Version of the keeper -> supervisor hello.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the launcher was asked to do.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub socket: PathBuf,
    pub container: String,
    /// Exec sessions: an id chosen by whoever wrapped the session (the injector's exec rule).
    pub session: Option<String>,
    /// Exec sessions: the API user who opened the session.
    pub user: Option<String>,
    pub command: Vec<String>,
}

/// Exit status of the launcher itself when it cannot start the command
/// (sysexits-like, as shells use 126/127).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_SETUP: i32 = 125;

/// Parses the launcher's arguments (std only, to keep it small).
pub fn parse_args(args: &[String]) -> Result<LaunchConfig, String> {
    let mut socket = std::env::var_os(nfguard_common::env::SOCKET)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(nfguard_common::paths::SOCKET));
    let mut container =
        std::env::var(nfguard_common::env::CONTAINER_NAME).unwrap_or_else(|_| "main".to_string());
    let (mut session, mut user) = (None, None);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--session" => {
                i += 1;
                session = Some(args.get(i).ok_or("--session needs an id")?.clone());
            }
            "--user" => {
                i += 1;
                user = Some(args.get(i).ok_or("--user needs a name")?.clone());
            }
            "--socket" => {
                i += 1;
                socket = PathBuf::from(args.get(i).ok_or("--socket needs a path")?);
            }
            "--container" => {
                i += 1;
                container = args.get(i).ok_or("--container needs a name")?.clone();
            }
            "--" => {
                let command = args[i + 1..].to_vec();
                if command.is_empty() {
                    return Err("no command after --".into());
                }
                if !container
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                {
                    return Err(format!("invalid container name {container:?}"));
                }
                return Ok(LaunchConfig {
                    socket,
                    container,
                    session,
                    user,
                    command,
                });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    Err("usage: nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]".into())
}

/// Finds `cmd` the way execvp would, before the filter is installed (so the
/// search itself costs no notification).
pub fn resolve_command(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(cmd))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| {
                    m.is_file()
                        && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
                .unwrap_or(false)
        })
}

/// Forwarded to the command; everything else keeps its default disposition.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

fn fail(code: i32, msg: impl std::fmt::Display) -> ! {
    eprintln!("nfguard-launch: {msg}");
    std::process::exit(code)
}

/// Runs the launcher; returns the exit status for the process.
pub fn run(cfg: LaunchConfig) -> i32 {
    let program = match resolve_command(&cfg.command[0]) {
        Some(p) => p,
        None => fail(
            EXIT_NOT_FOUND,
            format!("{}: command not found", cfg.command[0]),
        ),
    };
    let to_c = |s: &[u8]| {
        CString::new(s).unwrap_or_else(|_| fail(EXIT_USAGE, "argument contains a NUL byte"))
    };
    let c_program = to_c(program.as_os_str().as_bytes());
    let c_args: Vec<CString> = cfg.command.iter().map(|a| to_c(a.as_bytes())).collect();
    let bpf = filter::program();

    // Block the signals we handle before forking, so none is lost between fork
    // and the signalfd; the child restores the original mask before exec.
    let mut handled = SigSet::empty();
    handled.add(Signal::SIGCHLD);
    for s in FORWARDED {
        handled.add(s);
    }
    let mut old_mask = SigSet::empty();
    if let Err(e) =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled), Some(&mut old_mask))
    {
        fail(EXIT_SETUP, format!("sigprocmask: {e}"));
    }
    let (keeper_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap_or_else(|e| fail(EXIT_SETUP, format!("socketpair: {e}")));

    let child = match sys::fork_single_threaded() {
        Err(e) => fail(EXIT_SETUP, format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(keeper_end);
            child_exec(child_end, &old_mask, &bpf, &c_program, &c_args)
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(child_end);
    if let Err(e) = sys::set_child_subreaper() {
        eprintln!("nfguard-launch: cannot become subreaper ({e}); orphans are reaped by init");
    }
    let listener = match recv_fd(keeper_end.as_fd()) {
        Ok((fd, _)) => fd,
        Err(e) => {
            // The child failed before handing over the listener; it has said why.
            let _ = kill(child, Signal::SIGKILL);
            let status = wait_for(child);
            if status == 0 {
                fail(
                    EXIT_SETUP,
                    format!("the command's filter was not handed over: {e}"),
                );
            }
            return status;
        }
    };
    drop(keeper_end);
    keep(&cfg, child, listener, handled)
}

/// The child: install the filter, hand the listener to the keeper, exec.
fn child_exec(
    to_keeper: OwnedFd,
    old_mask: &SigSet,
    bpf: &[sys::sock_filter],
    program: &CString,
    args: &[CString],
) -> ! {
    // The command starts with every signal unblocked and at its default
    // action, as under any init: the keeper's own mask and Rust's SIGPIPE
    // ignore (both inherited across exec) are not the command's business.
    let _ = old_mask;
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    sys::reset_sigpipe();
    if let Err(e) = sys::set_no_new_privs() {
        fail(EXIT_SETUP, format!("prctl(PR_SET_NO_NEW_PRIVS): {e}"));
    }
    let listener = match sys::install_filter_with_listener(bpf) {
        Ok(fd) => fd,
        Err(e) => fail(
            EXIT_SETUP,
            format!("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): {e}"),
        ),
    };
    // From here until execve, only syscalls the filter does not notify:
    // sendmsg, close, exit (filter.rs keeps it that way).
    if let Err(e) = send_fd(to_keeper.as_fd(), b"listener", listener.as_fd()) {
        fail(
            EXIT_SETUP,
            format!("handing the listener to the keeper: {e}"),
        );
    }
    drop(listener);
    drop(to_keeper);
    let err = nix::unistd::execv(program, args).unwrap_err();
    let code = if err == nix::errno::Errno::ENOENT {
        EXIT_NOT_FOUND
    } else {
        126
    };
    fail(
        code,
        format!("{}: {}", program.to_string_lossy(), err.desc()),
    )
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
                    // SAFETY: SCM_RIGHTS installed these fds in our table for us alone.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
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

fn status_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

fn wait_for(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(s) => {
                if let Some(code) = status_code(s) {
                    return code;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return EXIT_SETUP,
        }
    }
}

/// The hello the keeper sends with the listener (one JSON object; written by
/// hand to keep serde out of the launcher).
pub fn hello(cfg: &LaunchConfig, child: i32, handoffs: u32) -> String {
    let opt = |v: &Option<String>| match v {
        Some(s) => json_string(s),
        None => "null".to_string(),
    };
    format!(
        "{{\"version\":{PROTOCOL_VERSION},\"container\":{},\"child_pid\":{child},\"handoffs\":{handoffs},\"session\":{},\"user\":{}}}",
        json_string(&cfg.container),
        opt(&cfg.session),
        opt(&cfg.user)
    )
}

/// A JSON string literal (RFC 8259 escapes).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The keeper's loop: hand the listener over (again after each supervisor
/// restart), forward signals, reap, and return the command's exit status.
fn keep(cfg: &LaunchConfig, child: Pid, listener: OwnedFd, handled: SigSet) -> i32 {
    let sfd = SignalFd::with_flags(&handled, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .unwrap_or_else(|e| fail(EXIT_SETUP, format!("signalfd: {e}")));
    let mut conn: Option<UnixStream> = None;
    let mut handoffs = 0u32;
    let mut next_try = Instant::now();
    let mut backoff = Duration::from_millis(20);
    let started_waiting = Instant::now();
    let mut warned = false;
    loop {
        if conn.is_none() && Instant::now() >= next_try {
            match UnixStream::connect(&cfg.socket) {
                Ok(s) => {
                    let msg = hello(cfg, child.as_raw(), handoffs);
                    match send_fd(s.as_fd(), msg.as_bytes(), listener.as_fd()) {
                        Ok(()) => {
                            handoffs += 1;
                            backoff = Duration::from_millis(20);
                            conn = Some(s);
                        }
                        Err(e) => eprintln!("nfguard-launch: handing over the listener: {e}"),
                    }
                }
                Err(e) => {
                    if !warned && started_waiting.elapsed() > Duration::from_secs(5) {
                        eprintln!(
                            "nfguard-launch: waiting for the supervisor at {}: {e}",
                            cfg.socket.display()
                        );
                        warned = true;
                    }
                }
            }
            if conn.is_none() {
                next_try = Instant::now() + backoff;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
        let timeout = if conn.is_some() {
            PollTimeout::NONE
        } else {
            let ms = next_try
                .saturating_duration_since(Instant::now())
                .as_millis();
            PollTimeout::try_from(ms.min(1000) as i32).unwrap_or(PollTimeout::ZERO)
        };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(c) = &conn {
            fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => fail(EXIT_SETUP, format!("poll: {e}")),
        }
        let signal_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let conn_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        drop(fds);
        if signal_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    if let Some(code) = reap(child) {
                        return code;
                    }
                } else if let Ok(s) = Signal::try_from(sig) {
                    let _ = kill(child, s);
                }
            }
        }
        if conn_ready {
            // The supervisor never writes; readable means it closed: it died or restarts.
            let mut byte = [0u8; 64];
            let closed = matches!(
                conn.as_ref()
                    .map(|c| nix::unistd::read(c.as_raw_fd(), &mut byte)),
                Some(Ok(0)) | Some(Err(_))
            );
            if closed {
                // The supervisor also closes when the filter has no user left,
                // i.e. when the command has just exited: reap before worrying.
                if let Some(code) = reap(child) {
                    return code;
                }
                eprintln!("nfguard-launch: supervisor disconnected; notified syscalls wait until it is back");
                conn = None;
                next_try = Instant::now();
            }
        }
    }
}

/// Reaps every exited child; returns the command's status once it has exited.
fn reap(child: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(
            Pid::from_raw(-1),
            Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL),
        ) {
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(s) => {
                if s.pid() == Some(child) {
                    result = status_code(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_after_the_separator_are_the_command_verbatim() {
        let c = parse_args(&args(&[
            "--socket",
            "/s",
            "--container",
            "smf",
            "--",
            "sh",
            "-c",
            "--",
            "x",
        ]))
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/s"));
        assert_eq!(c.container, "smf");
        assert_eq!(c.command, args(&["sh", "-c", "--", "x"]));
    }

    #[test]
    fn the_hello_is_json_whatever_the_user_name() {
        let mut c = parse_args(&args(&[
            "--session",
            "s1",
            "--user",
            "o\"brien\\\n",
            "--",
            "sh",
        ]))
        .unwrap();
        let h: serde_json::Value = serde_json::from_str(&hello(&c, 42, 1)).unwrap();
        assert_eq!(h["user"], "o\"brien\\\n");
        assert_eq!(h["session"], "s1");
        c.user = None;
        let h: serde_json::Value = serde_json::from_str(&hello(&c, 42, 1)).unwrap();
        assert!(h["user"].is_null());
    }

    #[test]
    fn bad_launcher_arguments_are_refused_with_a_reason() {
        assert!(parse_args(&args(&["sh"]))
            .unwrap_err()
            .contains("unknown argument"));
        assert!(parse_args(&args(&["--"]))
            .unwrap_err()
            .contains("no command"));
        assert!(parse_args(&args(&["--container", "a\"b", "--", "x"]))
            .unwrap_err()
            .contains("invalid container"));
    }
}
