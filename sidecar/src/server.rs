//! The supervisor's socket: keepers connect, hand over their listener, and
//! stay connected so that they notice when the supervisor goes away.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::launch;
use crate::supervisor::{self, Listener, Shared};

/// The hello a keeper sends with its listener. Every field is on the wire;
/// `child_pid` and `handoffs` are for people reading a capture, not for the
/// supervisor (which knows the keeper by SO_PEERCRED).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
pub struct Hello {
    pub version: u32,
    pub container: String,
    pub child_pid: i32,
    pub handoffs: u32,
    #[serde(default)]
    pub session: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// The keeper traces its workload and will send exec stops (protocol 2).
    #[serde(default)]
    pub traced: bool,
    /// The keeper's own executable, as it reads /proc/self/exe.
    #[serde(default)]
    pub exe: Option<String>,
    /// `inspect` or `off`: the program the keeper installed. A keeper from
    /// before datagram inspection says nothing: it installed `off`'s.
    #[serde(default)]
    pub datagrams: Option<nfguard_common::Datagrams>,
}

/// Binds the supervisor's socket, replacing a stale one left by a crash.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    UnixListener::bind(path)
}

/// Accepts keepers forever, one listener thread each. Each listener's
/// in-flight journal lives in `state_dir`.
pub fn accept_loop(shared: Arc<Shared>, sock: UnixListener, state_dir: &Path) {
    // Exec tickets outlive this process: an exec let through just before a
    // crash is verified by the next supervisor (exec_verify.rs).
    let tickets = state_dir.join(".exec-tickets");
    shared.own_files.protect(&tickets);
    shared.own_files.protect(&tickets.with_extension("tmp"));
    if let Err(e) = shared.exec_tickets.persist(&tickets) {
        eprintln!(
            "nfguard: exec tickets kept in memory only ({}: {e}); an exec stop pending across a restart will be refused",
            tickets.display()
        );
    }
    for conn in sock.incoming() {
        match conn {
            Ok(stream) => {
                // Each hello is read on its own thread: a client that connects
                // and sends nothing must not hold up the next keeper's handover.
                let (shared, state_dir) = (Arc::clone(&shared), state_dir.to_path_buf());
                let spawned = std::thread::Builder::new()
                    .name("nfguard-hello".into())
                    .spawn(move || {
                        match take_listener(&shared, stream, &state_dir) {
                            // A client that closes before sending a byte is
                            // `nfguard health` seeing that the socket accepts:
                            // one a probe period is not worth a log line.
                            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                            Err(e) => eprintln!("nfguard: a keeper's handover failed: {e}"),
                            Ok(()) => {}
                        }
                    });
                if let Err(e) = spawned {
                    eprintln!("nfguard: no thread for a keeper's handover: {e}");
                }
            }
            Err(e) => {
                // Out of fds (EMFILE, ENFILE) returns at once: say it once a
                // second at most and wait, rather than spin.
                eprintln!("nfguard: accept on the supervisor socket failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// How long a client may take to send its hello once connected.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn take_listener(shared: &Arc<Shared>, stream: UnixStream, state_dir: &Path) -> io::Result<()> {
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    let (fd, bytes) = launch::recv_fd(stream.as_fd())?;
    // The connection then carries exec stops and verdicts (keeper_link.rs).
    stream.set_read_timeout(None)?;
    let hello: Hello = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad hello: {e}")))?;
    if hello.version != launch::PROTOCOL_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "keeper speaks protocol {}, this supervisor {}",
                hello.version,
                launch::PROTOCOL_VERSION
            ),
        ));
    }
    // Only a seccomp listener makes a keeper: anything else (a process that
    // connects and hands over some other fd to be taken for a keeper, so
    // that the watcher counts its children as inside) is turned away before
    // it is registered.
    if !crate::sys::is_seccomp_listener(fd.as_fd()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the fd handed over is not a seccomp listener",
        ));
    }
    let cred = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(io::Error::from)?;
    let keeper_pid = cred.pid();
    shared.keepers.register(keeper_pid, &hello.container);
    let journal = state_dir.join(format!(".inflight-{keeper_pid}"));
    shared.own_files.protect(&journal);
    let listener = Listener {
        fd,
        session: hello
            .session
            .unwrap_or_else(|| format!("{}-{keeper_pid}", hello.container)),
        user: hello.user,
        container: hello.container,
        keeper_pid,
        connection: Some(stream),
        // Keyed by the keeper, which outlives supervisor restarts.
        journal: Some(journal),
        busy_since: Default::default(),
        traced: hello.traced,
        keeper_exe: hello.exe,
        datagrams: hello.datagrams.unwrap_or(nfguard_common::Datagrams::Off),
    };
    supervisor::spawn(Arc::clone(shared), listener)?;
    Ok(())
}
