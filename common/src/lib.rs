//! What the injector (`injector-webhook/`) and the sidecar (`sidecar/`) must agree on.
//!
//! The injector writes a pod spec that the sidecar later reads through its
//! environment and the shared volume; both sides name the same things here so
//! that a rename cannot silently break the contract between them.
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Labels and annotations read by the injector.
pub mod annotations {
    /// Namespace label that opts a namespace in (`enabled`), and pod label that opts a pod out (`false`).
    pub const INJECT_LABEL: &str = "nfguard.io/inject";
    /// `learn` | `alert` | `enforce`. Absent: learn, then alert once the learning period ends.
    pub const MODE: &str = "nfguard.io/mode";
    /// How long to learn before switching to alert (a duration such as `10m`, `1h30m`).
    pub const LEARNING_PERIOD: &str = "nfguard.io/learning-period";
    /// Comma-separated names of the containers to monitor. Absent: every app container.
    pub const CONTAINERS: &str = "nfguard.io/containers";
    /// JSON array: the entrypoint of images whose config cannot be read from a registry.
    pub const ENTRYPOINT: &str = "nfguard.io/entrypoint";
    /// `alert` | `deny` | `allow`: what to do with exec sessions outside the model.
    pub const EXEC_SESSIONS: &str = "nfguard.io/exec-sessions";
    /// JSON: the alert sinks of this pod (replaces the cluster's default, see docs/alerts.md).
    pub const SINKS: &str = "nfguard.io/sinks";
    /// `inspect` | `off`, for every monitored container, or per container
    /// (`upf-u=off,upf-c=inspect`; unnamed containers get the default,
    /// `inspect`): whether a datagram's destination is judged at every send
    /// or only at `connect()` (see [`crate::Datagrams`]).
    pub const DATAGRAMS: &str = "nfguard.io/datagrams";
    /// Written by the injector: what was injected, by which version.
    pub const STATUS: &str = "nfguard.io/status";
    /// With a console: how long the model runs in dry-run before it is active (`24h`).
    pub const DRY_RUN_PERIOD: &str = "nfguard.io/dry-run-period";
    /// With a console: `true` to wait for an operator's approval before active.
    pub const REQUIRE_APPROVAL: &str = "nfguard.io/require-approval";
}

/// Where things live inside an injected pod.
pub mod paths {
    /// Mount point of the shared emptyDir in the sidecar and in every monitored container.
    pub const SHARED_DIR: &str = "/nfguard";
    /// Name of the shared emptyDir volume.
    pub const SHARED_VOLUME: &str = "nfguard";
    /// The static launcher, copied there by the sidecar before any monitored container starts.
    pub const LAUNCHER: &str = "/nfguard/bin/nfguard-launch";
    /// The supervisor's unix socket; each launcher (keeper) connects to it and hands over its listener.
    pub const SOCKET: &str = "/nfguard/supervisor.sock";
    /// The sidecar writes this file once it is ready to take listeners (startup probe).
    pub const READY: &str = "/nfguard/ready";
    /// Name of the sidecar container.
    pub const SIDECAR_CONTAINER: &str = "nfguard";
}

/// Environment variables the injector sets on the sidecar and on monitored containers.
pub mod env {
    pub const MODE: &str = "NFGUARD_MODE";
    pub const LEARNING_PERIOD: &str = "NFGUARD_LEARNING_PERIOD";
    pub const EXEC_SESSIONS: &str = "NFGUARD_EXEC_SESSIONS";
    pub const POD_NAME: &str = "NFGUARD_POD_NAME";
    pub const POD_NAMESPACE: &str = "NFGUARD_POD_NAMESPACE";
    pub const POD_UID: &str = "NFGUARD_POD_UID";
    pub const NODE_NAME: &str = "NFGUARD_NODE_NAME";
    /// JSON object: monitored container name -> image.
    pub const CONTAINER_IMAGES: &str = "NFGUARD_CONTAINER_IMAGES";
    /// Set on a monitored container: its own name, passed by the launcher to the supervisor.
    pub const CONTAINER_NAME: &str = "NFGUARD_CONTAINER";
    /// Address of the sidecar's HTTP API (health, model, events).
    pub const API_ADDR: &str = "NFGUARD_API_ADDR";
    /// Socket path, for the launcher and the supervisor.
    pub const SOCKET: &str = "NFGUARD_SOCKET";
    /// JSON: the sinks configuration (docs/alerts.md).
    pub const SINKS: &str = "NFGUARD_SINKS";
    /// Set on a monitored container: `inspect` or `off`, which of the two
    /// seccomp programs its launcher installs (see [`crate::Datagrams`]).
    pub const DATAGRAMS: &str = "NFGUARD_DATAGRAMS";
    /// The console's URL: with it, the sidecar shares its workload's model (docs/console.md).
    pub const CONSOLE_URL: &str = "NFGUARD_CONSOLE_URL";
    /// The credential for the console: the projected service-account token, or a join token.
    pub const CONSOLE_TOKEN_FILE: &str = "NFGUARD_CONSOLE_TOKEN_FILE";
    /// CA certificates of the console's TLS certificate.
    pub const CONSOLE_CA: &str = "NFGUARD_CONSOLE_CA";
    /// The cluster's name in the console's workload ids.
    pub const CLUSTER: &str = "NFGUARD_CLUSTER";
    /// The pod's workload (the kind and name of its controller; `Pod` and the pod's name for a bare pod).
    pub const WORKLOAD_KIND: &str = "NFGUARD_WORKLOAD_KIND";
    pub const WORKLOAD_NAME: &str = "NFGUARD_WORKLOAD_NAME";
    /// JSON object: monitored container name -> image digest (`sha256:...`), as the registry gave it.
    pub const CONTAINER_DIGESTS: &str = "NFGUARD_CONTAINER_DIGESTS";
    /// JSON object: container name -> {"entrypoint": PATH, "ports": [{"port": N, "protocol": "TCP"}]}:
    /// what the image config and the pod spec say without learning (`static` items).
    pub const STATIC: &str = "NFGUARD_STATIC";
    /// The pod's IP addresses (comma-separated, `status.podIPs`).
    pub const POD_IPS: &str = "NFGUARD_POD_IPS";
    /// Dry-run period before the model is active (a duration).
    pub const DRY_RUN_PERIOD: &str = "NFGUARD_DRY_RUN_PERIOD";
    /// `true`: dry-run ends only with an operator's approval.
    pub const REQUIRE_APPROVAL: &str = "NFGUARD_REQUIRE_APPROVAL";
}

/// Where the console's credential and CA are mounted in the sidecar (a projected volume).
pub mod console {
    pub const VOLUME: &str = "nfguard-console";
    pub const MOUNT: &str = "/var/run/secrets/nfguard";
    pub const TOKEN: &str = "/var/run/secrets/nfguard/token";
    pub const CA: &str = "/var/run/secrets/nfguard/ca.crt";
    /// The audience of the projected token (the console's TokenReview asks for it).
    pub const AUDIENCE: &str = "nfguard-console";
}

pub mod interfaces;

/// What nfguard does with an action outside the learned model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Allow everything and record it into the model.
    Learn,
    /// Allow everything and emit an event for each action outside the model.
    Alert,
    /// Deny each action outside the model and emit an event.
    Enforce,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Learn, Mode::Alert, Mode::Enforce];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Learn => "learn",
            Mode::Alert => "alert",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that is not one of the allowed words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: expected one of {allowed}")]
pub struct BadValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

impl FromStr for Mode {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "learn" => Ok(Mode::Learn),
            "alert" => Ok(Mode::Alert),
            "enforce" => Ok(Mode::Enforce),
            _ => Err(BadValue {
                what: "mode",
                value: s.to_string(),
                allowed: "learn, alert, enforce",
            }),
        }
    }
}

/// Policy for processes entering the pod from outside the launcher (`kubectl exec`, probes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecSessions {
    /// Flag sessions outside the model (the default).
    #[default]
    Alert,
    /// In enforce mode, refuse or kill sessions outside the model.
    Deny,
    /// Break-glass: allow every session, still log it.
    Allow,
}

impl ExecSessions {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecSessions::Alert => "alert",
            ExecSessions::Deny => "deny",
            ExecSessions::Allow => "allow",
        }
    }
}

impl FromStr for ExecSessions {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "alert" => Ok(ExecSessions::Alert),
            "deny" => Ok(ExecSessions::Deny),
            "allow" => Ok(ExecSessions::Allow),
            _ => Err(BadValue {
                what: "exec-sessions policy",
                value: s.to_string(),
                allowed: "alert, deny, allow",
            }),
        }
    }
}

/// Whether the destination of each datagram is judged.
///
/// - `inspect` (the default): the launcher installs the program that also
///   notifies sends naming a destination (`sendto` with an address, every
///   `sendmsg` and `sendmmsg`); each destination is judged like a connect,
///   and in enforce mode the supervisor makes the send itself. A connected
///   socket's `send`/`write`/`sendto(NULL)` still costs nothing.
/// - `off`: destinations are judged at `connect()` only; a datagram sent
///   with an address of its own is not seen. For a user-plane container
///   (a UPF's GTP-U socket at line rate), where a notification per packet
///   costs more than the work itself (docs/benchmarks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Datagrams {
    #[default]
    Inspect,
    Off,
}

impl Datagrams {
    pub fn as_str(self) -> &'static str {
        match self {
            Datagrams::Inspect => "inspect",
            Datagrams::Off => "off",
        }
    }
}

impl fmt::Display for Datagrams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Datagrams {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inspect" => Ok(Datagrams::Inspect),
            "off" => Ok(Datagrams::Off),
            _ => Err(BadValue {
                what: "datagrams setting",
                value: s.to_string(),
                allowed: "inspect, off",
            }),
        }
    }
}

/// The `nfguard.io/datagrams` annotation: one setting for every container,
/// or `NAME=SETTING` pairs (comma-separated) with the default for the rest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatagramsAnnotation {
    pub all: Datagrams,
    pub per_container: Vec<(String, Datagrams)>,
}

impl DatagramsAnnotation {
    /// The setting of container `name`.
    pub fn of(&self, name: &str) -> Datagrams {
        self.per_container
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.all, |(_, d)| *d)
    }
}

impl FromStr for DatagramsAnnotation {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.contains('=') {
            return Ok(DatagramsAnnotation {
                all: s.parse()?,
                per_container: Vec::new(),
            });
        }
        let mut out = DatagramsAnnotation::default();
        for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || BadValue {
                what: "datagrams annotation",
                value: s.to_string(),
                allowed: "inspect, off, or CONTAINER=inspect|off pairs separated by commas",
            };
            let (name, value) = pair.split_once('=').ok_or_else(bad)?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad());
            }
            out.per_container
                .push((name.to_string(), value.trim().parse().map_err(|_| bad())?));
        }
        Ok(out)
    }
}

/// A duration that is not of the form `90s`, `10m`, `1h30m`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number followed by s, m or h (for example 90s, 10m, 1h30m)"
)]
pub struct BadDuration(pub String);

/// Parses durations such as `45s`, `10m`, `1h30m`, `2h` (what operators write in annotations).
pub fn parse_duration(text: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(text.to_string());
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        number.clear();
        saw_unit = true;
    }
    if !number.is_empty() || !saw_unit {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_bad_values_name_the_choices() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        let err = "Enforce".parse::<Mode>().unwrap_err().to_string();
        assert!(err.contains("learn, alert, enforce"), "{err}");
    }

    #[test]
    fn the_datagrams_annotation_names_one_setting_or_one_per_container() {
        let a: DatagramsAnnotation = "off".parse().unwrap();
        assert_eq!((a.of("upf"), a.of("x")), (Datagrams::Off, Datagrams::Off));
        let a: DatagramsAnnotation = " upf-u=off, upf-c = inspect ".parse().unwrap();
        assert_eq!(a.of("upf-u"), Datagrams::Off);
        assert_eq!(a.of("upf-c"), Datagrams::Inspect);
        assert_eq!(a.of("other"), Datagrams::default());
        assert_eq!(Datagrams::default(), Datagrams::Inspect);
        for bad in ["", "on", "upf=", "=off", "upf=maybe", "upf-u=off,junk"] {
            let e = bad.parse::<DatagramsAnnotation>().unwrap_err().to_string();
            assert!(e.contains("inspect"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_like_operators_write_them() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "10", "m", "10x", "-5m", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
