//! What the launcher is asked to do: its arguments, the command's path, and
//! the hello it sends the supervisor.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Version of the keeper -> supervisor hello.
pub const PROTOCOL_VERSION: u32 = 1;

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
                    datagrams,
                    command,
                });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
        i += 1;
    }
    Err("usage: nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]".into())
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

/// The hello the keeper sends with the listener: one JSON object.
pub fn hello(cfg: &LaunchConfig, child: i32, handoffs: u32) -> String {
    let opt = |v: &Option<String>| match v {
        Some(s) => json_string(s),
        None => "null".to_string(),
    };
    let datagrams = if cfg.datagrams { "inspect" } else { "off" };
    format!(
        "{{\"version\":{PROTOCOL_VERSION},\"container\":{},\"child_pid\":{child},\"handoffs\":{handoffs},\"session\":{},\"user\":{},\"datagrams\":\"{datagrams}\"}}",
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
        let h: serde_json::Value = serde_json::from_str(&hello(&c, 42, 1)).unwrap();
        assert_eq!(h["user"], "o\"brien\\\n\u{1f}é");
        assert_eq!(h["session"], "s1");
        assert_eq!(h["version"], PROTOCOL_VERSION);
        assert_eq!(h["child_pid"], 42);
        assert_eq!(h["handoffs"], 1);
        assert_eq!(h["container"], "main");
        c.user = None;
        let h: serde_json::Value = serde_json::from_str(&hello(&c, 42, 1)).unwrap();
        assert!(h["user"].is_null());
        assert_eq!(
            hello(&c, 7, 0),
            r#"{"version":1,"container":"main","child_pid":7,"handoffs":0,"session":"s1","user":null,"datagrams":"inspect"}"#
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
        assert_eq!(
            err(&[]),
            "usage: nfguard-launch [--socket PATH] [--container NAME] -- CMD [ARGS...]"
        );
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
