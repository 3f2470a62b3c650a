//! What a sidecar and the console say to each other (`POST /api/v1/sync`),
//! used by `console_link` here and by the console crate.
//!
//! One request carries everything a sidecar has to tell (its identity, what
//! it observed since the last acknowledged batch, the events it spooled) and
//! one answer carries everything it needs (the lifecycle state, the mode to
//! run in, and the workload's model when it changed). One round trip per
//! interval keeps the console's load proportional to the number of sidecars,
//! not to the number of syscalls.
//!
//! Exactly-once, across console outages and restarts:
//! - observations (counts) are sent as numbered batches; a batch is resent
//!   unchanged until acknowledged, and the console records the last batch it
//!   applied per sidecar instance (in the same transaction), so a batch whose
//!   answer was lost is not counted twice;
//! - events carry `(instance, id)`, unique in the console's database, so a
//!   resent event is recognised and dropped.

use serde::{Deserialize, Serialize};

use nfguard_common::Mode;

use crate::model::{
    FileEntry, ListenEntry, Model, Observation, PeerEntry, ProcessEntry, SocketEntry, UnixEntry,
};

/// The workload a pod belongs to: the unit a model is shared by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadIdentity {
    /// The cluster's name (`local` on a plain host by default).
    pub cluster: String,
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `Pod` (a bare pod is its own workload), ...
    pub kind: String,
    pub name: String,
}

/// Why a workload name given on the command line is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid workload {0:?}: expected NAMESPACE/KIND/NAME, for example core/Deployment/smf")]
pub struct BadWorkload(pub String);

impl WorkloadIdentity {
    /// Parses `NS/KIND/NAME` (the `--workload` flag), in cluster `cluster`.
    pub fn parse(text: &str, cluster: &str) -> Result<WorkloadIdentity, BadWorkload> {
        let bad = || BadWorkload(text.to_string());
        let mut parts = text.split('/');
        let (Some(ns), Some(kind), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let w = WorkloadIdentity {
            cluster: cluster.to_string(),
            namespace: ns.to_string(),
            kind: canonical_kind(kind).ok_or_else(bad)?,
            name: name.to_string(),
        };
        w.check().map_err(|_| bad())?;
        Ok(w)
    }

    /// Names are DNS labels or subdomains in Kubernetes: no `:` or `/`, which the
    /// console's workload id uses as separators.
    pub fn check(&self) -> Result<(), String> {
        let ok = |s: &str, dots: bool| {
            !s.is_empty()
                && s.len() <= 253
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || c == '_' || (dots && c == '.')
                })
        };
        if !ok(&self.cluster, true) {
            return Err(format!("cluster name {:?} is not a DNS name", self.cluster));
        }
        if !ok(&self.namespace, false) {
            return Err(format!("namespace {:?} is not a DNS label", self.namespace));
        }
        if canonical_kind(&self.kind).as_deref() != Some(self.kind.as_str()) {
            return Err(format!(
                "workload kind {:?} is not one of {}",
                self.kind,
                KINDS.join(", ")
            ));
        }
        if !ok(&self.name, true) {
            return Err(format!("workload name {:?} is not a DNS name", self.name));
        }
        Ok(())
    }

    /// The console's id of the workload: `cluster:namespace:kind:name`, kind in
    /// lower case (stable, readable, safe in a URL path segment).
    pub fn id(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.cluster,
            self.namespace,
            self.kind.to_ascii_lowercase(),
            self.name
        )
    }
}

/// The workload kinds a pod can belong to (the owner kinds of Kubernetes, and `Pod`).
pub const KINDS: [&str; 7] = [
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Pod",
];

/// `deployment` -> `Deployment`: the command line and ids are case-insensitive.
pub fn canonical_kind(kind: &str) -> Option<String> {
    KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .map(|k| k.to_string())
}

/// The pod a sidecar serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIdentity {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The pod's IP addresses: the console resolves learned peers to workloads with them.
    #[serde(default)]
    pub addresses: Vec<String>,
}

/// What the workload asks of its lifecycle (from `nfguard run` flags or the pod's annotations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    /// The mode the workload should reach once active: alert or enforce.
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_period_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_period_ms: Option<u64>,
    /// Dry-run ends only with an operator's approval.
    #[serde(default)]
    pub require_approval: bool,
}

/// One entry of a model, as the console stores it: the sidecar's entry, tagged
/// with its kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Item {
    Process(ProcessEntry),
    Socket(SocketEntry),
    Listen(ListenEntry),
    Connect(PeerEntry),
    Unix(UnixEntry),
    File(FileEntry),
}

impl Item {
    /// The item an observation counts towards, with paths generalised as the
    /// model learns them (so `/proc/4242/stat` and `/proc/4243/stat` are one item).
    pub fn of(obs: &Observation) -> Item {
        match obs {
            Observation::Exec { parent, exe } => Item::Process(ProcessEntry {
                exe: exe.clone(),
                parent: parent.clone(),
            }),
            Observation::Socket(e) => Item::Socket(e.clone()),
            Observation::Listen(e) => Item::Listen(e.clone()),
            Observation::Connect(e) => Item::Connect(e.clone()),
            Observation::Unix(e) => Item::Unix(UnixEntry {
                path: crate::model::generalize_path(&e.path),
                ..e.clone()
            }),
            Observation::File(e) => Item::File(FileEntry {
                path: crate::model::generalize_path(&e.path),
                ..e.clone()
            }),
        }
    }

    pub fn observation(&self) -> Observation {
        match self.clone() {
            Item::Process(p) => Observation::Exec {
                parent: p.parent,
                exe: p.exe,
            },
            Item::Socket(e) => Observation::Socket(e),
            Item::Listen(e) => Observation::Listen(e),
            Item::Connect(e) => Observation::Connect(e),
            Item::Unix(e) => Observation::Unix(e),
            Item::File(e) => Observation::File(e),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Item::Process(_) => "process",
            Item::Socket(_) => "socket",
            Item::Listen(_) => "listen",
            Item::Connect(_) => "connect",
            Item::Unix(_) => "unix",
            Item::File(_) => "file",
        }
    }

    /// The model view's tab: process, network or filesystem.
    pub fn category(&self) -> &'static str {
        match self {
            Item::Process(_) => "process",
            Item::File(_) => "filesystem",
            _ => "network",
        }
    }

    /// The executable that acts.
    pub fn exe(&self) -> &str {
        match self {
            Item::Process(e) => &e.exe,
            Item::Socket(e) => &e.exe,
            Item::Listen(e) => &e.exe,
            Item::Connect(e) => &e.exe,
            Item::Unix(e) => &e.exe,
            Item::File(e) => &e.exe,
        }
    }

    /// A `*` pattern (files and unix sockets), matched component by component.
    pub fn is_pattern(&self) -> bool {
        match self {
            Item::Unix(e) => e.path.contains('*'),
            Item::File(e) => e.path.contains('*'),
            _ => false,
        }
    }

    /// Does this item cover `other` (equal, or a pattern matching it)?
    pub fn covers(&self, other: &Item) -> bool {
        match (self, other) {
            (Item::Unix(a), Item::Unix(b)) => {
                a.exe == b.exe && a.op == b.op && crate::model::path_matches(&a.path, &b.path)
            }
            (Item::File(a), Item::File(b)) => {
                a.exe == b.exe && a.op == b.op && crate::model::path_matches(&a.path, &b.path)
            }
            _ => self == other,
        }
    }

    /// One line for a person: what the workload does.
    pub fn describe(&self) -> String {
        match self {
            Item::Process(p) => format!("{} runs {}", p.parent, p.exe),
            Item::Socket(s) => format!(
                "{} opens {} {} sockets (protocol {})",
                s.exe, s.family, s.kind, s.protocol
            ),
            Item::Listen(l) => format!("{} serves {} port {}", l.exe, l.protocol, l.port),
            Item::Connect(c) => format!(
                "{} talks to {} {}",
                c.exe,
                c.protocol,
                crate::model::join_host_port(&c.address, c.port)
            ),
            Item::Unix(u) => format!("{} {}s unix socket {}", u.exe, u.op, u.path),
            Item::File(f) => format!("{} {}s {}", f.exe, f.op, f.path),
        }
    }

    /// Adds this item to a sidecar model.
    pub fn add_to(&self, model: &mut Model) {
        match self.clone() {
            Item::Process(e) => {
                model.processes.insert(e);
            }
            Item::Socket(e) => {
                model.network.sockets.insert(e);
            }
            Item::Listen(e) => {
                model.network.listen.insert(e);
            }
            Item::Connect(e) => {
                model.network.connect.insert(e);
            }
            Item::Unix(e) => {
                model.network.unix.insert(e);
            }
            Item::File(e) => {
                model.filesystem.insert(e);
            }
        }
    }

    /// Every entry of a sidecar model, as items.
    pub fn all_of(model: &Model) -> Vec<Item> {
        let mut v: Vec<Item> = Vec::with_capacity(model.len());
        v.extend(model.processes.iter().cloned().map(Item::Process));
        v.extend(model.network.sockets.iter().cloned().map(Item::Socket));
        v.extend(model.network.listen.iter().cloned().map(Item::Listen));
        v.extend(model.network.connect.iter().cloned().map(Item::Connect));
        v.extend(model.network.unix.iter().cloned().map(Item::Unix));
        v.extend(model.filesystem.iter().cloned().map(Item::File));
        v
    }
}

/// One item a sidecar saw, with how often and when (unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub item: Item,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

/// A spooled event: the sidecar's JSON event, with the sidecar run that raised it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledEvent {
    pub instance: String,
    pub event: serde_json::Value,
}

/// `POST /api/v1/sync`, from a sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub workload: WorkloadIdentity,
    pub container: String,
    /// The image reference, `REF@sha256:D` when known.
    #[serde(default)]
    pub image: String,
    /// `sha256:...`, or empty when the image digest is unknown.
    #[serde(default)]
    pub digest: String,
    pub pod: PodIdentity,
    /// This sidecar run (random at start): batches and events are numbered per run.
    pub instance: String,
    pub want: Wanted,
    /// Items known without learning: the entrypoint, the declared ports.
    #[serde(default)]
    pub static_items: Vec<Item>,
    /// The observation batch's number (from 1), with its observations.
    #[serde(default)]
    pub batch: u64,
    #[serde(default)]
    pub observations: Vec<Observed>,
    #[serde(default)]
    pub events: Vec<SpooledEvent>,
    /// Events the sidecar had to drop (spool full): reported, never silent.
    #[serde(default)]
    pub dropped_events: u64,
    /// The model version the sidecar runs; the answer carries a model only when it differs.
    #[serde(default)]
    pub have_version: Option<i64>,
}

/// The console's answer to a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncResponse {
    pub workload_id: String,
    pub model_id: i64,
    /// learning, dry-run, active or archived.
    pub state: String,
    /// The mode to run in now.
    pub mode: Mode,
    pub version: i64,
    /// The model to enforce, when it differs from `have_version` (never while learning:
    /// a learning sidecar allows everything and needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
    /// The last observation batch applied for this instance.
    pub acked_batch: u64,
    /// Events stored by this request (resent ones not counted).
    pub events_stored: u64,
    /// When to sync again.
    pub interval_ms: u64,
    /// One sentence on the lifecycle (what it waits for).
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_parse_from_the_command_line_and_get_a_readable_id() {
        let w = WorkloadIdentity::parse("core/deployment/smf", "local").unwrap();
        assert_eq!(w.kind, "Deployment");
        assert_eq!(w.id(), "local:core:deployment:smf");
        for bad in [
            "core/smf",
            "core/Thing/smf",
            "a/b/c/d",
            "core/Deployment/",
            "co:re/Pod/x",
        ] {
            assert!(WorkloadIdentity::parse(bad, "local").is_err(), "{bad}");
        }
    }

    #[test]
    fn items_carry_their_kind_and_generalise_paths() {
        let i = Item::of(&Observation::File(FileEntry {
            exe: "/bin/nf".into(),
            op: "write".into(),
            path: "/proc/4242/attr".into(),
        }));
        let j = serde_json::to_value(&i).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"kind":"file","exe":"/bin/nf","op":"write","path":"/proc/*/attr"})
        );
        assert!(i.is_pattern());
        let concrete = Item::File(FileEntry {
            exe: "/bin/nf".into(),
            op: "write".into(),
            path: "/proc/1/attr".into(),
        });
        assert!(i.covers(&concrete) && !concrete.covers(&i));
        let back: Item = serde_json::from_value(j).unwrap();
        assert_eq!(back, i);
    }
}
