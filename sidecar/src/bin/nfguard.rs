//! `nfguard`: the supervisor and its command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nfguard_common::Mode;
use nfguard_sidecar::event::Context;
use nfguard_sidecar::model::Model;
use nfguard_sidecar::run::{self, RunOptions, SuperviseOptions};

#[derive(Parser)]
#[command(
    name = "nfguard",
    version,
    about = "Runtime defense for 5G network functions: learn what a workload does, then alert on or block the rest."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a command under the supervisor.
    Run {
        /// learn, alert or enforce.
        #[arg(long, default_value = "learn", value_parser = parse_mode)]
        mode: Mode,
        /// The model file (learn merges into it; alert and enforce read it).
        #[arg(long, default_value = "nfguard-model.json")]
        model: PathBuf,
        /// Where events go, as JSON lines (default: stderr).
        #[arg(long)]
        events: Option<PathBuf>,
        /// Path of nfguard-launch (default: beside this executable).
        #[arg(long)]
        launcher: Option<PathBuf>,
        /// Also send alerts to the sinks of this JSON document (docs/alerts.md).
        #[arg(long)]
        sinks: Option<PathBuf>,
        /// Serve the HTTP API (health, model, events, timeline, metrics) on this address.
        #[arg(long)]
        api: Option<std::net::SocketAddr>,
        /// When the command exits, what is left of its process tree gets SIGTERM,
        /// then SIGKILL after this long (5s, 500ms, 0).
        #[arg(long, default_value = "5s", value_parser = parse_grace)]
        grace: String,
        /// Do not follow the workload with ptrace (to debug it with strace or gdb:
        /// a task has one tracer). Execs are then checked the weaker way (docs/security.md).
        #[arg(long)]
        no_trace: bool,
        /// The console: one model shared by the workload's replicas (docs/console.md).
        #[command(flatten)]
        console: Box<nfguard_sidecar::console_link::ConsoleArgs>,
        /// inspect: judge each datagram's destination (sendto with an address,
        /// sendmsg, sendmmsg); off: at connect() only. Default: NFGUARD_DATAGRAMS, else inspect.
        #[arg(long, value_parser = parse_datagrams)]
        datagrams: Option<nfguard_common::Datagrams>,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Serve launchers that connect to a socket (the sidecar's job).
    Supervise {
        #[arg(long, value_parser = parse_mode)]
        mode: Mode,
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long)]
        socket: PathBuf,
        /// In learn mode, switch to alert after this long (for example 10m).
        #[arg(long, value_parser = parse_period)]
        learning_period: Option<std::time::Duration>,
        /// Also send alerts to the sinks of this JSON document (docs/alerts.md).
        #[arg(long)]
        sinks: Option<PathBuf>,
        /// Serve the HTTP API (health, model, events, timeline, metrics) on this address.
        #[arg(long)]
        api: Option<std::net::SocketAddr>,
        /// Also report processes the launcher did not start (docs/exec-sessions.md).
        #[arg(long)]
        watch_outside: bool,
        /// With --watch-outside: alert, deny or allow.
        #[arg(long, default_value = "alert")]
        exec_sessions: nfguard_common::ExecSessions,
        /// With --watch-outside: how often /proc/loadavg is looked at when nothing is exec'd.
        #[arg(long, default_value = "250ms", value_parser = parse_interval)]
        watch_interval: std::time::Duration,
    },
    /// Run as the sidecar of an injected pod (settings from the environment).
    Sidecar,
    /// Copy the launcher into the shared volume and exit (an init container, for
    /// runtimes without native sidecars).
    InstallLauncher,
    /// Exit 0 when the sidecar is ready (the startup probe).
    Health {
        /// Keep trying for up to 60 s (a postStart hook of a classic sidecar).
        #[arg(long)]
        wait: bool,
        /// Also ask the supervisor's API whether every listener answers (the
        /// liveness probe: a stopped or stuck supervisor fails it).
        #[arg(long)]
        live: bool,
    },
    /// Inspect a model.
    Model {
        #[command(subcommand)]
        command: ModelCmd,
    },
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Print a model as a short table.
    Show { file: PathBuf },
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    s.parse::<Mode>().map_err(|e| e.to_string())
}

fn parse_datagrams(s: &str) -> Result<nfguard_common::Datagrams, String> {
    s.parse()
        .map_err(|e: nfguard_common::BadValue| e.to_string())
}

fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let ms = s
        .strip_suffix("ms")
        .ok_or("expected milliseconds, for example 250ms")?;
    ms.parse()
        .map(std::time::Duration::from_millis)
        .map_err(|e| format!("{s}: {e}"))
}

/// A grace period as the launcher takes it (`--grace`, passed through).
fn parse_grace(s: &str) -> Result<String, String> {
    nfguard_launcher::parse_millis(s)
        .map(|_| s.to_string())
        .ok_or_else(|| format!("{s:?} is not a duration (5s, 500ms, 1m, 0)"))
}

fn parse_period(s: &str) -> Result<std::time::Duration, String> {
    nfguard_common::parse_duration(s).map_err(|e| e.to_string())
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Run {
            mode,
            model,
            events,
            launcher,
            command,
            sinks,
            api,
            console,
            grace,
            no_trace,
            datagrams,
        } => {
            let link = match console.link_config(mode, &model, &command[0]) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("nfguard: {e}");
                    std::process::exit(64);
                }
            };
            match run::run(RunOptions {
                mode,
                model,
                events,
                launcher,
                command,
                sinks,
                api,
                container: console.container.clone(),
                console: link,
                grace,
                trace: !no_trace,
                datagrams,
            }) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("nfguard: {e}");
                    e.exit_code()
                }
            }
        }
        Cmd::Supervise {
            mode,
            model,
            events,
            socket,
            learning_period,
            sinks,
            api,
            watch_outside,
            exec_sessions,
            watch_interval,
        } => match run::supervise(SuperviseOptions {
            mode,
            model,
            events,
            socket,
            learning_period,
            context: Context {
                container: "main".into(),
                ..Context::default()
            },
            sinks,
            api,
            watch_outside: watch_outside.then_some(nfguard_sidecar::outside::WatchOptions {
                policy: exec_sessions,
                interval: watch_interval,
            }),
        }) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("nfguard: {e}");
                e.exit_code()
            }
        },
        Cmd::Sidecar => {
            let cfg = match nfguard_sidecar::sidecar::config_from(|k| std::env::var(k).ok()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("nfguard: {e}");
                    std::process::exit(64);
                }
            };
            match nfguard_sidecar::sidecar::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("nfguard: {e}");
                    64
                }
            }
        }
        Cmd::InstallLauncher => {
            let dir = std::env::var("NFGUARD_SHARED_DIR")
                .unwrap_or_else(|_| nfguard_common::paths::SHARED_DIR.into());
            let result = nfguard_sidecar::run::find_launcher(None)
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    nfguard_sidecar::sidecar::install_launcher(&l, std::path::Path::new(&dir))
                        .map_err(|e| format!("{dir}: {e}"))
                });
            match result {
                Ok(p) => {
                    eprintln!("nfguard: launcher installed at {}", p.display());
                    0
                }
                Err(e) => {
                    eprintln!("nfguard: cannot install the launcher: {e}");
                    73
                }
            }
        }
        Cmd::Health { wait, live } => {
            let cfg = nfguard_sidecar::sidecar::config_from(|k| std::env::var(k).ok());
            let (dir, sock, api) = match &cfg {
                Ok(c) => (c.shared_dir.clone(), c.socket.clone(), c.api_addr),
                Err(_) => (
                    PathBuf::from(nfguard_common::paths::SHARED_DIR),
                    PathBuf::from(nfguard_common::paths::SOCKET),
                    std::net::SocketAddr::from(([127, 0, 0, 1], 9901)),
                ),
            };
            let check = || {
                nfguard_sidecar::sidecar::health(&dir, &sock)?;
                if live {
                    nfguard_sidecar::sidecar::live(api, std::time::Duration::from_secs(2))?;
                }
                Ok::<(), String>(())
            };
            let deadline = std::time::Instant::now()
                + std::time::Duration::from_secs(if wait { 60 } else { 0 });
            loop {
                match check() {
                    Ok(()) => break 0,
                    Err(e) if std::time::Instant::now() >= deadline => {
                        eprintln!("nfguard: {e}");
                        break 1;
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                }
            }
        }
        Cmd::Model {
            command: ModelCmd::Show { file },
        } => match Model::load(&file) {
            Ok(Some(m)) => {
                print!("{}", m.render_table());
                0
            }
            Ok(None) => {
                eprintln!("nfguard: model {} does not exist", file.display());
                66
            }
            Err(e) => {
                eprintln!("nfguard: {e}");
                65
            }
        },
    };
    std::process::exit(code);
}
