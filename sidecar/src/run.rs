//! `nfguard run` and `nfguard supervise`: the supervisor on a plain host.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use nfguard_common::Mode;
use nix::sys::signal::{SigSet, Signal};

use crate::event::Context;
use crate::fanout::EventSink;
use crate::model::Model;
use crate::supervisor::Shared;
use crate::{launch, server};

/// A problem with the command line or its files, found before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("model {0} does not exist: learn one first with --mode learn")]
    NoModel(PathBuf),
    #[error("cannot open events file {path}: {source}")]
    Events { path: PathBuf, source: io::Error },
    #[error("{0}: command not found")]
    CommandNotFound(String),
    #[error("cannot find nfguard-launch (looked at {0}); pass --launcher or set NFGUARD_LAUNCHER")]
    NoLauncher(PathBuf),
    #[error("cannot create the supervisor socket {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("cannot start {path}: {source}")]
    Spawn { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Sinks(#[from] crate::sinks::ConfigError),
    #[error(transparent)]
    Console(#[from] crate::console_link::LinkError),
    #[error("cannot serve the API on {addr}: {source}")]
    Api {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
}

impl SetupError {
    /// Exit status: 127 for a missing command (as shells), 64 (EX_USAGE) otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            SetupError::CommandNotFound(_) => 127,
            _ => 64,
        }
    }
}

/// Makes the supervisor unreachable for the workload it judges, which runs
/// with the same uid: not dumpable, so no ptrace, no pidfd_getfd of its
/// listeners, no access to its memory or /proc/<pid>/fd (issue 11, class 1).
/// A workload with CAP_SYS_PTRACE is not stopped by this (docs/security.md).
pub fn protect_self() {
    if let Err(e) = crate::sys::set_dumpable(false) {
        eprintln!("nfguard: cannot make the supervisor non-dumpable ({e}): the workload could take its listeners");
    }
}

/// Loads the model for `mode`: learning may start from nothing, the others may not.
pub fn load_model(mode: Mode, path: &Path) -> Result<Model, SetupError> {
    match Model::load(path)? {
        Some(m) => Ok(m),
        None if mode == Mode::Learn => Ok(Model::default()),
        None => Err(SetupError::NoModel(path.to_path_buf())),
    }
}

/// Opens the events destination: a file (appended) or stderr.
pub fn open_events(path: Option<&Path>) -> Result<EventSink, SetupError> {
    let out: Box<dyn Write + Send> = match path {
        Some(p) => {
            // Never through a symlink, and only a file of ours with one name:
            // a planted name must not be appended to with our rights.
            use std::os::unix::fs::OpenOptionsExt;
            let err = |source| SetupError::Events {
                path: p.to_path_buf(),
                source,
            };
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(p)
                .map_err(err)?;
            crate::private_file::check_single(&f, p).map_err(err)?;
            Box::new(f)
        }
        None => Box::new(io::stderr()),
    };
    Ok(EventSink::new(out))
}

/// Where nfguard-launch is: the flag, $NFGUARD_LAUNCHER, or beside this executable.
pub fn find_launcher(flag: Option<&Path>) -> Result<PathBuf, SetupError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("NFGUARD_LAUNCHER") {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("nfguard-launch")))
        .unwrap_or_else(|| PathBuf::from("nfguard-launch"));
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(SetupError::NoLauncher(beside))
    }
}

/// Saves the model every `period` while it changes (learning), so a crash
/// loses at most that much.
pub fn spawn_model_saver(shared: Arc<Shared>, path: PathBuf, period: Duration) {
    std::thread::spawn(move || loop {
        std::thread::sleep(period);
        save_if_changed(&shared, &path);
    });
}

/// Writes the model if it changed since the last save.
pub fn save_if_changed(shared: &Shared, path: &Path) {
    if shared.model_changed.swap(false, Ordering::AcqRel) {
        if let Err(e) = shared.model_snapshot().save(path) {
            eprintln!("nfguard: {e}");
            shared.model_changed.store(true, Ordering::Release);
        }
    }
}

/// What `nfguard run` was asked to do.
pub struct RunOptions {
    pub mode: Mode,
    pub model: PathBuf,
    pub events: Option<PathBuf>,
    pub launcher: Option<PathBuf>,
    pub command: Vec<String>,
    /// The notifying sinks' document (see sinks.rs).
    pub sinks: Option<PathBuf>,
    /// Serve the HTTP API (api.rs) on this address.
    pub api: Option<std::net::SocketAddr>,
    /// The container's name in events and for the console (`main` by default).
    pub container: String,
    /// Share the workload's model through nfguard-console (console_link).
    pub console: Option<crate::console_link::LinkConfig>,
    /// The launcher's `--grace`: how long the rest of the tree has between
    /// SIGTERM and SIGKILL once the command has exited.
    pub grace: String,
    /// The keeper follows the workload with ptrace (the launcher's `--no-trace` when not).
    pub trace: bool,
    /// Which program the launcher installs (`NFGUARD_DATAGRAMS`); None
    /// leaves the environment's choice, or the default.
    pub datagrams: Option<nfguard_common::Datagrams>,
}

/// Runs `command` under the supervisor; returns its exit status.
pub fn run(opts: RunOptions) -> Result<i32, SetupError> {
    protect_self();
    // Everything that can be wrong is checked before anything starts.
    // With a console, the mode and model come from it (or its cache): console_link.
    let mut link = opts
        .console
        .clone()
        .map(crate::console_link::Link::new)
        .transpose()?;
    let (mode, model) = match &mut link {
        Some(l) => {
            let (mode, model, how) = l.start();
            eprintln!("nfguard: {how}");
            (mode, model)
        }
        None => (opts.mode, load_model(opts.mode, &opts.model)?),
    };
    if launch::resolve_command(&opts.command[0]).is_none() {
        return Err(SetupError::CommandNotFound(opts.command[0].clone()));
    }
    let launcher = find_launcher(opts.launcher.as_deref())?;
    let events = open_events(opts.events.as_deref())?;
    if let Some(p) = &opts.sinks {
        events.attach_sinks_file(p, &Context::default())?;
    }

    // Signals for the workload are forwarded by a thread that waits for them;
    // block them before any thread starts so that every thread inherits the mask.
    let mut forwarded = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        forwarded.add(s);
    }
    let _ = forwarded.thread_block();

    let dir = private_dir().map_err(|source| SetupError::Socket {
        path: std::env::temp_dir(),
        source,
    })?;
    let sock_path = dir.join("supervisor.sock");
    let sock = server::bind(&sock_path).map_err(|source| SetupError::Socket {
        path: sock_path.clone(),
        source,
    })?;
    let shared = Arc::new(Shared::new(
        mode,
        model,
        events,
        Context {
            container: opts.container.clone(),
            ..Context::default()
        },
    ));
    // nfguard's own files are no workload's to touch, in any mode.
    shared.own_files.protect(&opts.model);
    shared.own_files.protect(&dir);
    if let Some(p) = &opts.events {
        shared.own_files.protect(p);
    }
    if let Some(p) = &opts.sinks {
        shared.own_files.protect(p);
    }
    // The console link's cache and spool are nfguard's own too.
    if let Some(c) = &opts.console {
        shared
            .own_files
            .protect(&c.state_dir.join(format!("{}.console.json", c.stem)));
        shared
            .own_files
            .protect(&c.state_dir.join(format!("{}.console.tmp", c.stem)));
        shared
            .own_files
            .protect(&c.state_dir.join(format!("{}.console-spool", c.stem)));
    }
    let link = match link {
        Some(l) => Some(
            l.spawn(Arc::clone(&shared))
                .map_err(|source| SetupError::Spawn {
                    path: "the console link thread".into(),
                    source,
                })?,
        ),
        None => None,
    };
    if let Some(addr) = opts.api {
        crate::api::spawn(Arc::clone(&shared), addr)
            .map_err(|source| SetupError::Api { addr, source })?;
    }
    {
        let shared = Arc::clone(&shared);
        let dir = dir.clone();
        std::thread::spawn(move || server::accept_loop(shared, sock, &dir));
    }
    if mode == Mode::Learn || link.is_some() {
        spawn_model_saver(
            Arc::clone(&shared),
            opts.model.clone(),
            Duration::from_secs(2),
        );
    }
    let mut launch = Command::new(&launcher);
    if !opts.trace {
        launch.arg("--no-trace");
    }
    if let Some(d) = opts.datagrams {
        launch.env(nfguard_common::env::DATAGRAMS, d.as_str());
    }
    let mut child = launch
        .arg("--socket")
        .arg(&sock_path)
        .arg("--container")
        .arg(&opts.container)
        .arg("--grace")
        .arg(&opts.grace)
        .arg("--")
        .args(&opts.command)
        .spawn()
        .map_err(|source| SetupError::Spawn {
            path: launcher.clone(),
            source,
        })?;
    let child_pid = child.id() as i32;
    std::thread::spawn(move || loop {
        if let Ok(sig) = forwarded.wait() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child_pid), sig);
        }
    });
    let status = child.wait().map_err(|source| SetupError::Spawn {
        path: launcher,
        source,
    })?;
    if mode == Mode::Learn || link.is_some() {
        save_if_changed(&shared, &opts.model);
    }
    if let Some(l) = &link {
        // What the last moments raised reaches the console, or stays in the spool.
        l.flush(Duration::from_secs(5));
    }
    let _ = std::fs::remove_dir_all(&dir);
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// A fresh directory only we can enter, for the socket.
fn private_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = base.join(format!(
            "nfguard-{}-{nanos:x}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary directory",
    ))
}

/// What `nfguard supervise` was asked to do.
pub struct SuperviseOptions {
    pub mode: Mode,
    pub model: PathBuf,
    pub events: Option<PathBuf>,
    pub socket: PathBuf,
    pub learning_period: Option<Duration>,
    pub context: Context,
    /// The notifying sinks' document (see sinks.rs).
    pub sinks: Option<PathBuf>,
    /// Serve the HTTP API (api.rs) on this address.
    pub api: Option<std::net::SocketAddr>,
    /// Watch for processes the launcher did not start (outside.rs).
    pub watch_outside: Option<crate::outside::WatchOptions>,
}

/// Serves keepers on a socket until killed (the sidecar, and the restart test).
pub fn supervise(opts: SuperviseOptions) -> Result<(), SetupError> {
    protect_self();
    let model = load_model(opts.mode, &opts.model)?;
    let events = open_events(opts.events.as_deref())?;
    if let Some(p) = &opts.sinks {
        events.attach_sinks_file(p, &opts.context)?;
    }
    let sock = server::bind(&opts.socket).map_err(|source| SetupError::Socket {
        path: opts.socket.clone(),
        source,
    })?;
    let shared = Arc::new(Shared::new(opts.mode, model, events, opts.context));
    // nfguard's own files are no workload's to touch, in any mode (the
    // in-flight journals are protected as keepers hand over, server.rs).
    for p in [
        Some(&opts.model),
        opts.events.as_ref(),
        Some(&opts.socket),
        opts.sinks.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        shared.own_files.protect(p);
    }
    // Beside the socket: the in-flight journals of keepers yet to come and
    // the exec tickets, whose names a workload could plant ahead.
    let beside = opts
        .socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    shared.own_files.protect_prefix(beside, ".inflight-");
    shared.own_files.protect_prefix(beside, ".exec-tickets");
    if let Some(addr) = opts.api {
        crate::api::spawn(Arc::clone(&shared), addr)
            .map_err(|source| SetupError::Api { addr, source })?;
    }
    spawn_model_saver(
        Arc::clone(&shared),
        opts.model.clone(),
        Duration::from_secs(1),
    );
    if let (Mode::Learn, Some(period)) = (opts.mode, opts.learning_period) {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            std::thread::sleep(period);
            shared.set_mode(Mode::Alert);
            eprintln!("nfguard: learning period over; now in alert mode");
        });
    }
    if let Some(w) = opts.watch_outside {
        crate::outside::spawn(Arc::clone(&shared), w).map_err(|source| SetupError::Spawn {
            path: "the exec-session watcher thread".into(),
            source,
        })?;
    }
    let state_dir = opts
        .socket
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    server::accept_loop(shared, sock, &state_dir);
    Ok(())
}
