//! Fork, filter, hand over, keep: the launcher's life after its arguments.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::c_int;
use core::fmt::Display;

use crate::config::{hello, path_env, resolve_command, LaunchConfig};
use crate::config::{EXIT_NOT_FOUND, EXIT_SETUP, EXIT_USAGE};
use crate::sys::{self, Fd, SigSet};

/// Forwarded to the command; everything else keeps its default disposition.
const FORWARDED: [c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

const MS: u64 = 1_000_000;

/// `nfguard-launch: {msg}` on stderr, as one write.
pub fn warn(msg: impl Display) {
    sys::write_stderr(format!("nfguard-launch: {msg}\n").as_bytes());
}

/// Says why and exits with `code`.
pub fn fail(code: i32, msg: impl Display) -> ! {
    warn(msg);
    sys::exit(code)
}

/// Runs the launcher; returns the exit status for the process.
pub fn run(cfg: LaunchConfig) -> i32 {
    let program = match resolve_command(&cfg.command[0], path_env().as_deref()) {
        Some(p) => p,
        None => fail(
            EXIT_NOT_FOUND,
            format_args!("{}: command not found", cfg.command[0]),
        ),
    };
    let to_c = |s: &[u8]| {
        CString::new(s).unwrap_or_else(|_| fail(EXIT_USAGE, "argument contains a NUL byte"))
    };
    let c_program = to_c(&program);
    let c_args: Vec<CString> = cfg.command.iter().map(|a| to_c(a.as_bytes())).collect();
    let bpf: &[libc::sock_filter] = if cfg.datagrams {
        &crate::FILTER_DATAGRAMS
    } else {
        &crate::FILTER
    };

    // Block the signals we handle before forking, so none is lost between fork
    // and the signalfd; the child unblocks everything before exec.
    let mut handled = SigSet::empty();
    handled.add(libc::SIGCHLD);
    for s in FORWARDED {
        handled.add(s);
    }
    if let Err(e) = sys::sigprocmask(libc::SIG_BLOCK, &handled) {
        fail(EXIT_SETUP, format_args!("sigprocmask: {e}"));
    }
    let (keeper_end, child_end) = sys::socketpair_seqpacket()
        .unwrap_or_else(|e| fail(EXIT_SETUP, format_args!("socketpair: {e}")));

    let child = match sys::fork() {
        Err(e) => fail(EXIT_SETUP, format_args!("fork: {e}")),
        Ok(0) => {
            drop(keeper_end);
            child_exec(child_end, (bpf, cfg.datagrams), &c_program, &c_args)
        }
        Ok(child) => child,
    };
    drop(child_end);
    if let Err(e) = sys::set_child_subreaper() {
        warn(format_args!(
            "cannot become subreaper ({e}); orphans are reaped by init"
        ));
    }
    let listener = match sys::recv_fd(&keeper_end) {
        Ok((fd, _)) => fd,
        Err(e) => {
            // The child failed before handing over the listener; it has said why.
            sys::kill(child, libc::SIGKILL);
            let status = wait_for(child);
            if status == 0 {
                fail(
                    EXIT_SETUP,
                    format_args!("the command's filter was not handed over: {e}"),
                );
            }
            return status;
        }
    };
    drop(keeper_end);
    keep(&cfg, child, listener, &handled)
}

/// The child: install the filter, hand the listener to the keeper, exec.
fn child_exec(
    to_keeper: Fd,
    (bpf, datagrams): (&[libc::sock_filter], bool),
    program: &CString,
    args: &[CString],
) -> ! {
    // The command starts with every signal unblocked and at its default
    // action, as under any init: the keeper's own mask and the SIGPIPE
    // ignore (both inherited across exec) are not the command's business.
    let _ = sys::sigprocmask(libc::SIG_SETMASK, &SigSet::empty());
    sys::reset_sigpipe();
    if let Err(e) = sys::set_no_new_privs() {
        fail(EXIT_SETUP, format_args!("prctl(PR_SET_NO_NEW_PRIVS): {e}"));
    }
    let listener = match sys::install_filter_with_listener(bpf) {
        Ok(fd) => fd,
        Err(e) => fail(
            EXIT_SETUP,
            format_args!("seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER): {e}"),
        ),
    };
    // From here until execve, only syscalls the filter does not notify:
    // sendmsg, close, exit (policy/src/lib.rs keeps it that way). The
    // program that inspects datagrams notifies every sendmsg but one that
    // carries the handover flag: this one, which nobody could answer yet.
    let flags = if datagrams {
        nfguard_policy::HANDOVER_FLAG as c_int
    } else {
        0
    };
    if let Err(e) = sys::send_fd(&to_keeper, b"listener", listener.raw(), flags) {
        fail(
            EXIT_SETUP,
            format_args!("handing the listener to the keeper: {e}"),
        );
    }
    drop(listener);
    drop(to_keeper);
    if datagrams {
        // The flag let the handover through; from now on it lets nothing
        // through. Without the seal the command would have a way around
        // datagram inspection: better not to start it.
        if let Err(e) = sys::install_filter(&crate::SEAL) {
            fail(
                EXIT_SETUP,
                format_args!("seccomp(SECCOMP_SET_MODE_FILTER) of the seal: {e}"),
            );
        }
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(core::ptr::null());
    let err = sys::execv(program, &argv);
    let code = if err.0 == libc::ENOENT {
        EXIT_NOT_FOUND
    } else {
        126
    };
    fail(
        code,
        format_args!("{}: {}", program.to_string_lossy(), err.desc()),
    )
}

/// The status a shell would report: the exit code, or 128 + the signal.
/// Every signal number counts: the nix-based keeper could not represent
/// real-time signals (34 and up), lost such a status and then never exited.
fn status_code(status: c_int) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

fn wait_for(child: libc::pid_t) -> i32 {
    loop {
        match sys::waitpid(child, 0) {
            Ok(Some((_, s))) => {
                if let Some(code) = status_code(s) {
                    return code;
                }
            }
            Ok(None) => {}
            Err(e) if e.0 == libc::EINTR => continue,
            Err(_) => return EXIT_SETUP,
        }
    }
}

/// The keeper's loop: hand the listener over (again after each supervisor
/// restart), forward signals, reap, and return the command's exit status.
fn keep(cfg: &LaunchConfig, child: libc::pid_t, listener: Fd, handled: &SigSet) -> i32 {
    let sfd =
        sys::signalfd(handled).unwrap_or_else(|e| fail(EXIT_SETUP, format_args!("signalfd: {e}")));
    let mut conn: Option<Fd> = None;
    let mut handoffs = 0u32;
    let mut next_try = sys::now_ns();
    let mut backoff = 20 * MS;
    let started_waiting = sys::now_ns();
    let mut warned = false;
    let (mut connected_at, mut last_disconnect_warning) = (0u64, None::<u64>);
    loop {
        if conn.is_none() && sys::now_ns() >= next_try {
            match sys::connect_unix(&cfg.socket) {
                Ok(s) => {
                    let msg = hello(cfg, child, handoffs);
                    match sys::send_fd(&s, msg.as_bytes(), listener.raw(), 0) {
                        Ok(()) => {
                            handoffs += 1;
                            connected_at = sys::now_ns();
                            conn = Some(s);
                        }
                        Err(e) => warn(format_args!("handing over the listener: {e}")),
                    }
                }
                Err(e) => {
                    if !warned && sys::now_ns().saturating_sub(started_waiting) > 5_000 * MS {
                        warn(format_args!(
                            "waiting for the supervisor at {}: {e}",
                            String::from_utf8_lossy(&cfg.socket)
                        ));
                        warned = true;
                    }
                }
            }
            if conn.is_none() {
                next_try = sys::now_ns() + backoff;
                backoff = (backoff * 2).min(500 * MS);
            }
        }
        let timeout = if conn.is_some() {
            -1
        } else {
            // Whole milliseconds, rounded down (as Duration::as_millis).
            (next_try.saturating_sub(sys::now_ns()) / MS).min(1000) as c_int
        };
        let mut fds = [sfd.raw(), conn.as_ref().map_or(-1, Fd::raw)].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        let nfds = if conn.is_some() { 2 } else { 1 };
        match sys::poll(&mut fds[..nfds], timeout) {
            Ok(()) => {}
            Err(e) if e.0 == libc::EINTR => {}
            Err(e) => fail(EXIT_SETUP, format_args!("poll: {e}")),
        }
        let signal_ready = fds[0].revents != 0;
        let conn_ready = nfds == 2 && fds[1].revents != 0;
        if signal_ready {
            while let Ok(Some(sig)) = sys::read_signal(&sfd) {
                if sig == libc::SIGCHLD {
                    if let Some(code) = reap(child) {
                        return code;
                    }
                } else {
                    sys::kill(child, sig);
                }
            }
        }
        if conn_ready {
            // The supervisor never writes; readable means it closed: it died or restarts.
            let mut byte = [0u8; 64];
            let closed = matches!(
                conn.as_ref().map(|c| sys::read(c, &mut byte)),
                Some(Ok(0)) | Some(Err(_))
            );
            if closed {
                // The supervisor also closes when the filter has no user left,
                // i.e. when the command has just exited: reap before worrying.
                if let Some(code) = reap(child) {
                    return code;
                }
                let now = sys::now_ns();
                if now.saturating_sub(connected_at) >= STABLE {
                    // It served, then went: come back as soon as it does.
                    backoff = 20 * MS;
                    next_try = now;
                } else {
                    // It closed right after the handover (a bad hello, another
                    // protocol version): keep backing off, do not spin.
                    next_try = now + backoff;
                    backoff = (backoff * 2).min(500 * MS);
                }
                if last_disconnect_warning.is_none_or(|t| now.saturating_sub(t) >= 10_000 * MS) {
                    warn("supervisor disconnected; notified syscalls wait until it is back");
                    last_disconnect_warning = Some(now);
                }
                conn = None;
            }
        }
    }
}

/// How long a supervisor must keep a handover before a disconnect resets the
/// backoff (one that closes at once is retried ever more slowly, up to 0.5 s).
const STABLE: u64 = 1_000 * MS;

/// Reaps every exited child; returns the command's status once it has exited.
fn reap(child: libc::pid_t) -> Option<i32> {
    let mut result = None;
    loop {
        match sys::waitpid(-1, libc::WNOHANG | libc::__WALL) {
            Ok(None) | Err(_) => return result,
            Ok(Some((pid, s))) => {
                if pid == child {
                    result = status_code(s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn exit_codes_and_signals_read_as_a_shell_reports_them() {
        assert_eq!(status_code(3 << 8), Some(3));
        assert_eq!(status_code(libc::SIGTERM), Some(143));
        assert_eq!(
            status_code(libc::SIGRTMIN() + 3),
            Some(128 + libc::SIGRTMIN() + 3)
        );
        assert_eq!(status_code(libc::SIGKILL | 0x80), Some(137)); // core dumped
        assert_eq!(status_code(0x137f), None); // stopped by SIGSTOP
    }
}
