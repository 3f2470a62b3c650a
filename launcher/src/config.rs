//! What the launcher is asked to do: its arguments, the command's path, and
//! the hello it sends the supervisor.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Version of the keeper <-> supervisor protocol: the hello, then (2) exec
/// stops and their verdicts as JSON lines on the same connection.
pub const PROTOCOL_VERSION: u32 = 2;

/// How long the rest of the workload gets between SIGTERM and SIGKILL once
/// the command has exited (`--grace`).
pub const DEFAULT_GRACE_MS: u64 = 5_000;

/// Exit status of the launcher itself when it cannot start the command
/// (sysexits-like, as shells use 126/127).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_NOT_FOUND: i32 = 127;
pub const EXIT_SETUP: i32 = 125;

/// Where the supervisor listens when `NFGUARD_SOCKET` is not set
/// (`nfguard_common::paths::SOCKET`; the sidecar's tests check they agree).
pub const DEFAULT_SOCKET: &str = "/nfguard/supervisor.sock";
/// The environment variables the launcher reads (`nfguard_common::env`).
pub const ENV_SOCKET: &core::ffi::CStr = c"NFGUARD_SOCKET";
pub const ENV_CONTAINER: &core::ffi::CStr = c"NFGUARD_CONTAINER";
/// `inspect` (the default) or `off`: which seccomp program to install
/// (`nfguard_policy::PROGRAM_DATAGRAMS` or `PROGRAM`; `nfguard_common::Datagrams`).
pub const ENV_DATAGRAMS: &core::ffi::CStr = c"NFGUARD_DATAGRAMS";

/// What the launcher was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchConfig {
    /// The supervisor's socket (any bytes: a path).
    pub socket: Vec<u8>,
    pub container: String,
    /// Exec sessions: an id chosen by whoever wrapped the session (the injector's exec rule).
    pub session: Option<String>,
    /// Exec sessions: the API user who opened the session.
    pub user: Option<String>,
    /// After the command exits: SIGTERM to what is left, this long, then SIGKILL.
    pub grace_ms: u64,
    /// Follow the workload with ptrace (`--no-trace` turns it off).
    pub trace: bool,
    /// Install the program that inspects datagrams (`NFGUARD_DATAGRAMS`).
    pub datagrams: bool,
    pub command: Vec<String>,
}

/// The environment `parse_args` starts from.
#[derive(Debug, Clone, Default)]
pub struct LaunchEnv {
    /// `NFGUARD_SOCKET`, if set.
    pub socket: Option<Vec<u8>>,
    /// `NFGUARD_CONTAINER`, if set (any bytes; only UTF-8 counts).
    pub container: Option<Vec<u8>>,
    /// `NFGUARD_DATAGRAMS`, if set.
    pub datagrams: Option<Vec<u8>>,
}

impl LaunchEnv {
    /// Reads this process's environment.
    /// Only for the launcher's single thread (see `sys::getenv`).
    pub(crate) fn from_process() -> LaunchEnv {
        LaunchEnv {
            socket: crate::sys::getenv(ENV_SOCKET),
            container: crate::sys::getenv(ENV_CONTAINER),
            datagrams: crate::sys::getenv(ENV_DATAGRAMS),
        }
    }
}

/// The longest session id, user name or container name the hello carries.
pub const MAX_NAME: usize = 512;

/// Parses the launcher's arguments (without the program name).
pub fn parse_args(args: &[String], env: &LaunchEnv) -> Result<LaunchConfig, String> {
    let mut socket = env
        .socket
        .clone()
        .unwrap_or_else(|| DEFAULT_SOCKET.as_bytes().to_vec());
    // Not UTF-8 counts as unset (as `std::env::var` had it).
    let mut container = env
        .container
        .as_deref()
        .and_then(|c| core::str::from_utf8(c).ok())
        .unwrap_or("main")
        .to_string();
    // Unset means the default (inspect); anything but the two words is a
    // mistake in the pod spec, refused before the command starts.
    let datagrams = match env.datagrams.as_deref() {
        None | Some(b"inspect") => true,
        Some(b"off") => false,
        Some(other) => {
            return Err(format!(
                "invalid NFGUARD_DATAGRAMS {:?}: expected inspect or off",
                String::from_utf8_lossy(other)
            ))
        }
    };
    let (mut session, mut user) = (None, None);
    let (mut grace_ms, mut trace) = (DEFAULT_GRACE_MS, true);
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
                socket = args
                    .get(i)
                    .ok_or("--socket needs a path")?
                    .as_bytes()
                    .to_vec();
            }
            "--container" => {
                i += 1;
                container = args.get(i).ok_or("--container needs a name")?.clone();
            }
            "--grace" => {
                i += 1;
                let d = args.get(i).ok_or("--grace needs a duration")?;
                grace_ms = parse_millis(d).ok_or_else(|| {
                    format!("--grace: {d:?} is not a duration (5s, 500ms, 1m, 0)")
                })?;
            }
            "--no-trace" => trace = false,
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
                // The hello carries them in one message the supervisor reads
                // in one go (4 KiB): refuse what could not fit.
                for (what, value) in [("--session", &session), ("--user", &user)] {
                    if value.as_ref().is_some_and(|v| v.len() > MAX_NAME) {
                        return Err(format!("{what} is longer than {MAX_NAME} bytes"));
                    }
                }
                if container.len() > MAX_NAME {
                    return Err(format!(
                        "the container name is longer than {MAX_NAME} bytes"
                    ));
                }
                return Ok(LaunchConfig {
                    socket,
                    container,
                    session,
                    user,
                    grace_ms,
                    trace,
                    datagrams,
                    command,
                });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    Err(USAGE.into())
}

/// The launcher's usage line.
pub const USAGE: &str = "usage: nfguard-launch [--socket PATH] [--container NAME] [--grace DURATION] [--no-trace] -- CMD [ARGS...]";

/// A duration in milliseconds: `0`, or a whole number with `ms`, `s` or `m`.
pub fn parse_millis(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    let scale = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// `PATH` as the launcher reads it: unset or not UTF-8 counts as unset.
pub(crate) fn path_env() -> Option<String> {
    crate::sys::getenv(c"PATH").and_then(|p| String::from_utf8(p).ok())
}

/// Finds `cmd` the way execvp would, before the filter is installed (so the
/// search itself costs no notification): a name with a slash is taken as
/// is, anything else is looked up in `path` (default
/// `/usr/local/bin:/usr/bin:/bin`) for a regular file with an execute bit.
pub fn resolve_command(cmd: &str, path: Option<&str>) -> Option<Vec<u8>> {
    if cmd.contains('/') {
        return Some(cmd.as_bytes().to_vec());
    }
    path.unwrap_or("/usr/local/bin:/usr/bin:/bin")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| {
            let mut p = d.as_bytes().to_owned();
            if !d.ends_with('/') {
                p.push(b'/');
            }
            p.extend_from_slice(cmd.as_bytes());
            p
        })
        .find(|p| {
            alloc::ffi::CString::new(p.as_slice())
                .map(|c| crate::sys::is_executable_file(&c))
                .unwrap_or(false)
        })
}

/// What the keeper says about itself in its hello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeeperState {
    /// The command's pid.
    pub child: i32,
    /// Handovers made before this one.
    pub handoffs: u32,
    /// The keeper follows the workload with ptrace: exec stops will come.
    pub traced: bool,
    /// The keeper's own executable (`/proc/self/exe`), which a supervisor
    /// without CAP_SYS_PTRACE cannot read of a non-dumpable keeper.
    pub exe: Option<String>,
}

/// The hello the keeper sends with the listener: one JSON object.
pub fn hello(cfg: &LaunchConfig, k: &KeeperState) -> String {
    let opt = |v: &Option<String>| match v {
        Some(s) => json_string(s),
        None => "null".to_string(),
    };
    let datagrams = if cfg.datagrams { "inspect" } else { "off" };
    format!(
        "{{\"version\":{PROTOCOL_VERSION},\"container\":{},\"child_pid\":{},\"handoffs\":{},\"session\":{},\"user\":{},\"traced\":{},\"exe\":{},\"datagrams\":\"{datagrams}\"}}",
        json_string(&cfg.container),
        k.child,
        k.handoffs,
        opt(&cfg.session),
        opt(&cfg.user),
        k.traced,
        opt(&k.exe)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_after_the_separator_are_the_command_verbatim() {
        let c = parse_args(
            &args(&[
                "--socket",
                "/s",
                "--container",
                "smf",
                "--",
                "sh",
                "-c",
                "--",
                "x",
            ]),
            &LaunchEnv::default(),
        )
        .unwrap();
        assert_eq!(c.socket, b"/s");
        assert_eq!(c.container, "smf");
        assert_eq!(c.command, args(&["sh", "-c", "--", "x"]));
    }

    #[test]
    fn the_environment_gives_the_defaults() {
        let c = parse_args(&args(&["--", "x"]), &LaunchEnv::default()).unwrap();
        assert_eq!(c.socket, DEFAULT_SOCKET.as_bytes());
        assert_eq!(c.container, "main");
        assert!(
            c.datagrams,
            "datagrams are inspected unless the pod says off"
        );
        let env = LaunchEnv {
            socket: Some(b"/run/\xffs".to_vec()),
            container: Some(b"nf".to_vec()),
            datagrams: Some(b"off".to_vec()),
        };
        let c = parse_args(&args(&["--", "x"]), &env).unwrap();
        assert_eq!(c.socket, b"/run/\xffs");
        assert_eq!(c.container, "nf");
        assert!(!c.datagrams);
        let env = LaunchEnv {
            datagrams: Some(b"on".to_vec()),
            ..LaunchEnv::default()
        };
        assert_eq!(
            parse_args(&args(&["--", "x"]), &env).unwrap_err(),
            "invalid NFGUARD_DATAGRAMS \"on\": expected inspect or off"
        );
        let env = LaunchEnv {
            socket: None,
            container: Some(b"n\xfff".to_vec()),
            datagrams: None,
        };
        assert_eq!(
            parse_args(&args(&["--", "x"]), &env).unwrap().container,
            "main"
        );
    }

    #[test]
    fn the_hello_is_json_whatever_the_user_name() {
        let mut c = parse_args(
            &args(&[
                "--session",
                "s1",
                "--user",
                "o\"brien\\\n\u{1f}é",
                "--",
                "sh",
            ]),
            &LaunchEnv::default(),
        )
        .unwrap();
        let k = KeeperState {
            child: 42,
            handoffs: 1,
            traced: true,
            exe: Some("/nfguard/bin/nfguard-launch".into()),
        };
        let h: serde_json::Value = serde_json::from_str(&hello(&c, &k)).unwrap();
        assert_eq!(h["user"], "o\"brien\\\n\u{1f}é");
        assert_eq!(h["session"], "s1");
        assert_eq!(h["version"], PROTOCOL_VERSION);
        assert_eq!(h["child_pid"], 42);
        assert_eq!(h["handoffs"], 1);
        assert_eq!(h["container"], "main");
        assert_eq!(h["traced"], true);
        assert_eq!(h["exe"], "/nfguard/bin/nfguard-launch");
        c.user = None;
        let h: serde_json::Value = serde_json::from_str(&hello(&c, &k)).unwrap();
        assert!(h["user"].is_null());
        let k = KeeperState {
            child: 7,
            ..KeeperState::default()
        };
        assert_eq!(
            hello(&c, &k),
            r#"{"version":2,"container":"main","child_pid":7,"handoffs":0,"session":"s1","user":null,"traced":false,"exe":null,"datagrams":"inspect"}"#
        );
    }

    #[test]
    fn grace_and_tracing_are_options() {
        let env = LaunchEnv::default();
        let c = parse_args(&args(&["--", "x"]), &env).unwrap();
        assert_eq!((c.grace_ms, c.trace), (DEFAULT_GRACE_MS, true));
        let c = parse_args(&args(&["--grace", "250ms", "--no-trace", "--", "x"]), &env).unwrap();
        assert_eq!((c.grace_ms, c.trace), (250, false));
        for (text, ms) in [("0", Some(0)), ("2s", Some(2_000)), ("1m", Some(60_000))] {
            assert_eq!(parse_millis(text), ms, "{text}");
        }
        for bad in ["", "5", "s", "1h", "-1s", "1.5s", "99999999999999999999m"] {
            assert_eq!(parse_millis(bad), None, "{bad}");
        }
        assert_eq!(
            parse_args(&args(&["--grace", "soon", "--", "x"]), &env).unwrap_err(),
            "--grace: \"soon\" is not a duration (5s, 500ms, 1m, 0)"
        );
    }

    #[test]
    fn bad_launcher_arguments_are_refused_with_a_reason() {
        let env = LaunchEnv::default();
        let err = |v: &[&str]| parse_args(&args(v), &env).unwrap_err();
        assert_eq!(err(&["sh"]), "unknown argument \"sh\"");
        assert_eq!(err(&["--"]), "no command after --");
        assert_eq!(
            err(&["--container", "a\"b\u{7}", "--", "x"]),
            "invalid container name \"a\\\"b\\u{7}\""
        );
        assert_eq!(err(&["--user"]), "--user needs a name");
        let long = "u".repeat(MAX_NAME + 1);
        assert_eq!(
            err(&["--user", &long, "--", "x"]),
            "--user is longer than 512 bytes"
        );
        assert_eq!(err(&["--session"]), "--session needs an id");
        assert_eq!(err(&["--socket"]), "--socket needs a path");
        assert_eq!(err(&["--container"]), "--container needs a name");
        assert_eq!(err(&[]), USAGE);
    }

    #[test]
    fn commands_are_found_like_execvp() {
        assert_eq!(resolve_command("./x", None).unwrap(), b"./x");
        assert_eq!(
            resolve_command("sh", Some("/nonexistent::/bin/")).unwrap(),
            b"/bin/sh"
        );
        assert_eq!(resolve_command("sh", Some("/bin")).unwrap(), b"/bin/sh");
        assert!(resolve_command("sh", Some("/nonexistent")).is_none());
        // Not a regular file, or not executable.
        assert!(resolve_command("bin", Some("/usr")).is_none());
        assert!(resolve_command("passwd", Some("/etc")).is_none());
    }
}
