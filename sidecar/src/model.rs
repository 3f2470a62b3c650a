//! The learned model: what a workload normally does.
//!
//! A versioned JSON document meant to be read (and reviewed, and edited) by a
//! person. Every entry names the executable that acts, so a shell that the
//! attacker starts cannot borrow the NF's own rights:
//!
//! ```json
//! { "version": 1,
//!   "processes":  [ { "exe": "/usr/bin/osmo-hlr", "parent": "(launcher)" } ],
//!   "network": {
//!     "sockets": [ { "exe": "/usr/bin/osmo-hlr", "family": "inet", "type": "stream", "protocol": 6 } ],
//!     "listen":  [ { "exe": "/usr/bin/osmo-hlr", "protocol": "tcp", "port": 4222 } ],
//!     "connect": [ { "exe": "...", "protocol": "udp", "address": "10.0.0.7", "port": 8805 } ],
//!     "unix":    [ { "exe": "...", "op": "connect", "path": "/run/x.sock" } ] },
//!   "filesystem": [ { "exe": "/usr/bin/osmo-hlr", "op": "write", "path": "/var/lib/osmocom/hlr.db" } ] }
//! ```
//!
//! Paths are generalised when learned: a component that is a number (a pid) or
//! looks generated (mkstemp suffixes, long hex) becomes `*`, and once a
//! directory holds more than `COLLAPSE_AT` distinct names for one executable and
//! operation, they collapse into `dir/*`. `*` matches exactly one path component.
//!
//! Peers (`connect`: a TCP or SCTP connect, a UDP connect or datagram
//! destination) are generalised for NFs that talk to many of them, per
//! executable and protocol:
//! - more than [`PEERS_PER_SUBNET`] addresses of one /24 (IPv4) or /64 (IPv6)
//!   on one port become that subnet (`"address": "10.0.2.0/24"`): a UPF's
//!   gNBs in one site, an SMF's UPFs;
//! - more than [`SUBNETS_PER_PORT`] entries (addresses or subnets) on one port
//!   become any address on that port (`"address": "*"`): a UPF that talks
//!   GTP-U to every gNB of a region, a server that answers every client from
//!   its well-known port;
//! - more than [`PORTS_PER_PEER`] ports to one address (or subnet, or `*`)
//!   become any port there (`"port": 0`): replies to clients' ephemeral
//!   ports. Port 0 is never a destination (the kernel refuses it), so it
//!   cannot be mistaken for one.
//!
//! A model entry may be written by hand in the same forms. What stays exact
//! is what an NF does not do at scale, and an unlearned peer on an unlearned
//! port is always outside the model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MODEL_VERSION: u32 = 1;
/// Parent name of the process the launcher starts.
pub const LAUNCHER_PARENT: &str = "(launcher)";
/// Parent name of a process that entered the container from outside the launcher.
pub const OUTSIDE_PARENT: &str = "(outside)";
/// Distinct names in one directory (per exe and op) before they collapse into `dir/*`.
pub const COLLAPSE_AT: usize = 8;
/// Addresses of one /24 (or IPv6 /64) on one port, per exe and protocol,
/// before they become the subnet.
pub const PEERS_PER_SUBNET: usize = 4;
/// Addresses or subnets on one port, per exe and protocol, before they
/// become any address on that port (`*`).
pub const SUBNETS_PER_PORT: usize = 8;
/// Ports of one address, per exe and protocol, before they become any port (0).
pub const PORTS_PER_PEER: usize = 8;
/// A peer entry's address that matches every address.
pub const ANY_ADDRESS: &str = "*";
/// A peer entry's port that matches every port.
pub const ANY_PORT: u16 = 0;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessEntry {
    pub exe: String,
    pub parent: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SocketEntry {
    pub exe: String,
    pub family: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub protocol: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListenEntry {
    pub exe: String,
    pub protocol: String,
    pub port: u16,
    /// The address served on (`0.0.0.0` or `::` for every address); absent
    /// in models from before it was learned, and for ports a pod declares:
    /// any address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

impl ListenEntry {
    /// Does this entry allow serving `other`'s port on `other`'s address? A
    /// port learned on one address (loopback) is not served on every one.
    pub fn covers(&self, other: &ListenEntry) -> bool {
        self.exe == other.exe
            && self.protocol == other.protocol
            && self.port == other.port
            && match (&self.address, &other.address) {
                (None, _) => true,
                (Some(a), _) if a == "0.0.0.0" || a == "::" => true,
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
            }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeerEntry {
    pub exe: String,
    pub protocol: String,
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UnixEntry {
    pub exe: String,
    pub op: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileEntry {
    pub exe: String,
    pub op: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub sockets: BTreeSet<SocketEntry>,
    #[serde(default)]
    pub listen: BTreeSet<ListenEntry>,
    #[serde(default)]
    pub connect: BTreeSet<PeerEntry>,
    #[serde(default)]
    pub unix: BTreeSet<UnixEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub version: u32,
    #[serde(default)]
    pub processes: BTreeSet<ProcessEntry>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub filesystem: BTreeSet<FileEntry>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            version: MODEL_VERSION,
            processes: BTreeSet::new(),
            network: Network::default(),
            filesystem: BTreeSet::new(),
        }
    }
}

/// One action of the workload, as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    Exec { parent: String, exe: String },
    Socket(SocketEntry),
    Listen(ListenEntry),
    Connect(PeerEntry),
    Unix(UnixEntry),
    File(FileEntry),
}

/// Why a model file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("model {path} is not a valid nfguard model: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("model {path} has version {found}; this nfguard reads version {MODEL_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write model {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

impl Model {
    /// Loads a model; `Ok(None)` when the file does not exist.
    pub fn load(path: &Path) -> Result<Option<Model>, ModelError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ModelError::Read {
                    path: path.into(),
                    source,
                })
            }
        };
        Self::from_json(&text, path).map(Some)
    }

    pub fn from_json(text: &str, path: &Path) -> Result<Model, ModelError> {
        // Check the version first, so a newer format gets a clear message.
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let v: VersionOnly = serde_json::from_str(text).map_err(|source| ModelError::Parse {
            path: path.into(),
            source,
        })?;
        if v.version != MODEL_VERSION {
            return Err(ModelError::Version {
                path: path.into(),
                found: v.version,
            });
        }
        serde_json::from_str(text).map_err(|source| ModelError::Parse {
            path: path.into(),
            source,
        })
    }

    /// Writes the model atomically (temporary file in the same directory, then
    /// rename), so a crash never leaves a half-written model.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let err = |source| ModelError::Write {
            path: path.into(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self).map_err(|e| err(e.into()))?;
        text.push('\n');
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // A new file (O_CREAT|O_EXCL, which never follows a symlink) under a
        // name nobody can guess ahead: a name planted by another user of the
        // directory is skipped, never written through.
        use std::io::Write as _;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("model");
        let mut attempt = 0u32;
        let (tmp, mut file) = loop {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let tmp = dir.join(format!(".{name}.tmp.{}.{nanos:x}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(err(e)),
            }
        };
        if let Err(e) = file
            .write_all(text.as_bytes())
            .and_then(|_| file.sync_data())
        {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        drop(file);
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })
    }

    pub fn len(&self) -> usize {
        self.processes.len()
            + self.network.sockets.len()
            + self.network.listen.len()
            + self.network.connect.len()
            + self.network.unix.len()
            + self.filesystem.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is `obs` inside the model?
    pub fn allows(&self, obs: &Observation) -> bool {
        match obs {
            Observation::Exec { parent, exe } => self.processes.contains(&ProcessEntry {
                exe: exe.clone(),
                parent: parent.clone(),
            }),
            Observation::Socket(e) => self.network.sockets.contains(e),
            Observation::Listen(e) => self.network.listen.iter().any(|m| m.covers(e)),
            Observation::Connect(e) => {
                self.network.connect.contains(e)
                    || self
                        .peers_of(&e.exe, &e.protocol)
                        .any(|m| peer_matches(m, e))
            }
            Observation::Unix(e) => self
                .network
                .unix
                .iter()
                .any(|m| m.exe == e.exe && m.op == e.op && path_matches(&m.path, &e.path)),
            Observation::File(e) => {
                // Entries are ordered by exe then op: scan only that range.
                let lo = FileEntry {
                    exe: e.exe.clone(),
                    op: e.op.clone(),
                    path: String::new(),
                };
                self.filesystem
                    .range(lo..)
                    .take_while(|m| m.exe == e.exe && m.op == e.op)
                    .any(|m| path_matches(&m.path, &e.path))
            }
        }
    }

    /// Records `obs`; returns whether the model changed.
    pub fn learn(&mut self, obs: &Observation) -> bool {
        if self.allows(obs) {
            return false;
        }
        match obs.clone() {
            Observation::Exec { parent, exe } => {
                self.processes.insert(ProcessEntry { exe, parent })
            }
            Observation::Socket(e) => self.network.sockets.insert(e),
            Observation::Listen(e) => self.network.listen.insert(e),
            Observation::Connect(e) => {
                let inserted = self.network.connect.insert(e.clone());
                self.generalize_peers(&e);
                inserted
            }
            Observation::Unix(mut e) => {
                e.path = generalize_path(&e.path);
                self.network.unix.insert(e)
            }
            Observation::File(mut e) => {
                e.path = generalize_path(&e.path);
                let inserted = self.filesystem.insert(e.clone());
                self.collapse(&e);
                inserted
            }
        }
    }

    /// The peer entries of `exe` for `protocol` (entries are ordered by exe,
    /// then protocol: a range, not a scan).
    fn peers_of<'m>(&'m self, exe: &str, protocol: &str) -> impl Iterator<Item = &'m PeerEntry> {
        let lo = PeerEntry {
            exe: exe.to_string(),
            protocol: protocol.to_string(),
            address: String::new(),
            port: 0,
        };
        let (exe, protocol) = (lo.exe.clone(), lo.protocol.clone());
        self.network
            .connect
            .range(lo..)
            .take_while(move |m| m.exe == exe && m.protocol == protocol)
    }

    /// Replaces `old` entries with `new` (which covers them all).
    fn replace_peers(&mut self, old: Vec<PeerEntry>, new: PeerEntry) {
        for o in &old {
            self.network.connect.remove(o);
        }
        self.network.connect.insert(new);
    }

    /// Generalises the peers of `e`'s exe and protocol after `e` was learned
    /// (see the module documentation): its port's addresses into a subnet,
    /// then into any address; its address's ports into any port.
    fn generalize_peers(&mut self, e: &PeerEntry) {
        let entry = |address: String, port| PeerEntry {
            exe: e.exe.clone(),
            protocol: e.protocol.clone(),
            address,
            port,
        };
        if let Some(subnet) = subnet_of(&e.address) {
            let same: Vec<PeerEntry> = self
                .peers_of(&e.exe, &e.protocol)
                .filter(|m| m.port == e.port && subnet_of(&m.address).as_deref() == Some(&subnet))
                .cloned()
                .collect();
            if same.len() > PEERS_PER_SUBNET {
                self.replace_peers(same, entry(subnet, e.port));
            }
        }
        let on_port: Vec<PeerEntry> = self
            .peers_of(&e.exe, &e.protocol)
            .filter(|m| m.port == e.port)
            .cloned()
            .collect();
        if on_port.len() > SUBNETS_PER_PORT {
            self.replace_peers(on_port, entry(ANY_ADDRESS.into(), e.port));
        }
        // The address (or the pattern that now covers it) and its ports.
        let Some(covering) = self
            .peers_of(&e.exe, &e.protocol)
            .find(|m| m.port == e.port && address_matches(&m.address, &e.address))
            .map(|m| m.address.clone())
        else {
            return;
        };
        let ports: Vec<PeerEntry> = self
            .peers_of(&e.exe, &e.protocol)
            .filter(|m| m.address == covering && m.port != ANY_PORT)
            .cloned()
            .collect();
        if ports.len() > PORTS_PER_PEER {
            self.replace_peers(ports, entry(covering, ANY_PORT));
        }
    }

    /// Collapses the siblings of `e` into `dir/*` once there are too many.
    fn collapse(&mut self, e: &FileEntry) {
        let Some((dir, _)) = e.path.rsplit_once('/') else {
            return;
        };
        let prefix = format!("{dir}/");
        let siblings: Vec<FileEntry> = self
            .filesystem
            .iter()
            .filter(|m| {
                m.exe == e.exe
                    && m.op == e.op
                    && m.path.starts_with(&prefix)
                    && !m.path[prefix.len()..].contains('/')
            })
            .cloned()
            .collect();
        if siblings.len() > COLLAPSE_AT {
            for s in &siblings {
                self.filesystem.remove(s);
            }
            self.filesystem.insert(FileEntry {
                exe: e.exe.clone(),
                op: e.op.clone(),
                path: format!("{prefix}*"),
            });
        }
    }

    /// Adds everything of `other` (learning again merges, it does not overwrite).
    pub fn merge(&mut self, other: &Model) {
        self.processes.extend(other.processes.iter().cloned());
        self.network
            .sockets
            .extend(other.network.sockets.iter().cloned());
        self.network
            .listen
            .extend(other.network.listen.iter().cloned());
        for c in &other.network.connect {
            self.learn(&Observation::Connect(c.clone()));
        }
        self.network.unix.extend(other.network.unix.iter().cloned());
        for f in &other.filesystem {
            self.learn(&Observation::File(f.clone()));
        }
    }

    /// The model as a short table for a person (`nfguard model show`).
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "nfguard model v{}: {} processes, {} network, {} filesystem entries",
            self.version,
            self.processes.len(),
            self.network.sockets.len()
                + self.network.listen.len()
                + self.network.connect.len()
                + self.network.unix.len(),
            self.filesystem.len()
        );
        let mut rows: Vec<[String; 3]> = Vec::new();
        for p in &self.processes {
            rows.push([
                "process".into(),
                p.exe.clone(),
                format!("started by {}", p.parent),
            ]);
        }
        for s in &self.network.sockets {
            rows.push([
                "socket".into(),
                s.exe.clone(),
                format!("{} {} proto {}", s.family, s.kind, s.protocol),
            ]);
        }
        for l in &self.network.listen {
            rows.push([
                "listen".into(),
                l.exe.clone(),
                describe_served(&l.protocol, l.port),
            ]);
        }
        for c in &self.network.connect {
            rows.push([
                "connect".into(),
                c.exe.clone(),
                describe_peer(&c.protocol, &c.address, c.port),
            ]);
        }
        for u in &self.network.unix {
            rows.push([format!("unix {}", u.op), u.exe.clone(), u.path.clone()]);
        }
        for f in &self.filesystem {
            rows.push([format!("file {}", f.op), f.exe.clone(), f.path.clone()]);
        }
        let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(4);
        let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(3);
        let _ = writeln!(out, "{:w0$}  {:w1$}  WHAT", "KIND", "EXE");
        for r in rows {
            let _ = writeln!(out, "{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
        }
        out
    }
}

/// A peer as events and `model show` name it: `PFCP (N4) to 10.0.2.7:8805`
/// for a port of a core interface (nfguard_common::interfaces), `udp
/// 10.0.2.7:9999` otherwise; patterns as `*:2152`, `10.0.2.0/24:8805`,
/// `10.0.2.7:*`.
pub fn describe_peer(protocol: &str, address: &str, port: u16) -> String {
    let host_port = if port == ANY_PORT {
        format!("{}:*", bracket(address))
    } else {
        join_host_port(address, port)
    };
    match nfguard_common::interfaces::lookup(protocol, port) {
        Some(i) => format!("{} to {host_port}", i.label()),
        None => format!("{protocol} {host_port}"),
    }
}

/// A served port as events and `model show` name it: `PFCP (N4) on udp
/// port 8805`, or `udp port 9999`.
pub fn describe_served(protocol: &str, port: u16) -> String {
    match nfguard_common::interfaces::lookup(protocol, port) {
        Some(i) => format!("{} on {protocol} port {port}", i.label()),
        None => format!("{protocol} port {port}"),
    }
}

fn bracket(address: &str) -> String {
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_string()
    }
}

/// Does the learned peer `m` cover `e`: same exe and protocol, its port or
/// any port, its address, subnet or any address?
pub fn peer_matches(m: &PeerEntry, e: &PeerEntry) -> bool {
    m.exe == e.exe
        && m.protocol == e.protocol
        && (m.port == ANY_PORT || m.port == e.port)
        && address_matches(&m.address, &e.address)
}

/// Does `pattern` (an address, `a.b.c.d/len`, or `*`) cover `address`?
pub fn address_matches(pattern: &str, address: &str) -> bool {
    if pattern == address || pattern == ANY_ADDRESS {
        return true;
    }
    let Some((net, len)) = pattern.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(len), Ok(addr)) = (
        net.parse::<std::net::IpAddr>(),
        len.parse::<u32>(),
        address.parse::<std::net::IpAddr>(),
    ) else {
        return false;
    };
    match (net, addr) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The /24 of an IPv4 address or the /64 of an IPv6 one, as a pattern.
fn subnet_of(address: &str) -> Option<String> {
    match address.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            Some(format!("{}.{}.{}.0/24", o[0], o[1], o[2]))
        }
        std::net::IpAddr::V6(a) => {
            let net = std::net::Ipv6Addr::from(u128::from(a) & (u128::MAX << 64));
            Some(format!("{net}/64"))
        }
    }
}

/// `host:port`, with brackets for IPv6.
pub fn join_host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// Does `pattern` (components, `*` = any one component) match `path`?
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == path;
    }
    let mut p = pattern.split('/');
    let mut q = path.split('/');
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some("*"), Some(c)) if !c.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Generalises a path for the model: numeric and generated-looking components become `*`.
pub fn generalize_path(path: &str) -> String {
    path.split('/')
        .map(|c| if looks_generated(c) { "*" } else { c })
        .collect::<Vec<_>>()
        .join("/")
}

/// A pid, a mkstemp-style name (`tmpXy12Ab`, `sh-thd.AbC123`), or a long hex/uuid string.
fn looks_generated(c: &str) -> bool {
    if c.is_empty() {
        return false;
    }
    if c.chars().all(|ch| ch.is_ascii_digit()) {
        return true;
    }
    let hexish = c
        .chars()
        .filter(|ch| ch.is_ascii_hexdigit() || *ch == '-')
        .count();
    if c.len() >= 16 && hexish == c.len() {
        return true;
    }
    // mkstemp: a 6-character random tail of mixed case letters and digits.
    let tail: Vec<char> = c.chars().rev().take(6).collect();
    if c.len() >= 7 && tail.len() == 6 && tail.iter().all(|ch| ch.is_ascii_alphanumeric()) {
        let upper = tail.iter().any(|ch| ch.is_ascii_uppercase());
        let lower = tail.iter().any(|ch| ch.is_ascii_lowercase());
        let digit = tail.iter().any(|ch| ch.is_ascii_digit());
        let sep = c.chars().rev().nth(6);
        let after_sep_or_tmp =
            matches!(sep, Some('.') | Some('-') | Some('_')) || c.starts_with("tmp");
        return after_sep_or_tmp
            && (upper as u8 + lower as u8 + digit as u8) >= 2
            && (upper || digit);
    }
    false
}

/// Entries by kind, for summaries.
pub fn counts(model: &Model) -> BTreeMap<&'static str, usize> {
    BTreeMap::from([
        ("processes", model.processes.len()),
        ("sockets", model.network.sockets.len()),
        ("listen", model.network.listen.len()),
        ("connect", model.network.connect.len()),
        ("unix", model.network.unix.len()),
        ("filesystem", model.filesystem.len()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(exe: &str, op: &str, path: &str) -> Observation {
        Observation::File(FileEntry {
            exe: exe.into(),
            op: op.into(),
            path: path.into(),
        })
    }

    #[test]
    fn generated_components_are_generalised_and_names_are_kept() {
        assert_eq!(
            generalize_path("/proc/4242/attr/current"),
            "/proc/*/attr/current"
        );
        assert_eq!(generalize_path("/tmp/tmpXy12Ab"), "/tmp/*");
        assert_eq!(generalize_path("/tmp/sh-thd.Ab12Cd"), "/tmp/*");
        assert_eq!(
            generalize_path("/run/3f2a9c1e-77b0-4c2e-9d51-0a1b2c3d4e5f/x"),
            "/run/*/x"
        );
        for keep in [
            "/var/lib/osmocom/hlr.db",
            "/etc/passwd",
            "/var/log/smf.log",
            "/tmp/x",
            "/data/journal",
        ] {
            assert_eq!(generalize_path(keep), keep);
        }
    }

    #[test]
    fn a_directory_of_session_files_is_one_entry() {
        let mut m = Model::default();
        for i in 0..100 {
            m.learn(&file("/bin/sh", "create", &format!("/var/spool/job.{i}x")));
        }
        let entries: Vec<_> = m.filesystem.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(entries, vec!["/var/spool/*"]);
        assert!(m.allows(&file("/bin/sh", "create", "/var/spool/job.new")));
        assert!(
            !m.allows(&file("/bin/sh", "create", "/var/spool/sub/dir")),
            "* is one component"
        );
        assert!(
            !m.allows(&file("/bin/bash", "create", "/var/spool/job.new")),
            "another exe"
        );
    }

    #[test]
    fn learning_again_merges() {
        let mut a = Model::default();
        a.learn(&file("/x", "write", "/a"));
        let mut b = Model::default();
        b.learn(&file("/x", "write", "/b"));
        b.learn(&Observation::Exec {
            parent: LAUNCHER_PARENT.into(),
            exe: "/x".into(),
        });
        a.merge(&b);
        assert_eq!(a.filesystem.len(), 2);
        assert_eq!(a.processes.len(), 1);
    }

    #[test]
    fn versions_and_malformed_files_get_one_clear_message() {
        let p = Path::new("m.json");
        let e = Model::from_json(r#"{"version": 2}"#, p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("version 2") && e.contains("reads version 1"),
            "{e}"
        );
        let e = Model::from_json("{", p).unwrap_err().to_string();
        assert!(
            e.starts_with("model m.json is not a valid nfguard model"),
            "{e}"
        );
        let e = Model::from_json(r#"{"version":1,"procs":[]}"#, p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
        let ok = Model::from_json(&serde_json::to_string(&Model::default()).unwrap(), p).unwrap();
        assert_eq!(ok, Model::default());
    }

    #[test]
    fn a_port_learned_on_one_address_is_not_served_on_every_address() {
        let on = |a: Option<&str>| {
            Observation::Listen(ListenEntry {
                exe: "/usr/bin/nf".into(),
                protocol: "tcp".into(),
                port: 8805,
                address: a.map(str::to_string),
            })
        };
        let mut m = Model::default();
        m.learn(&on(Some("127.0.0.1")));
        assert!(m.allows(&on(Some("127.0.0.1"))));
        assert!(
            !m.allows(&on(Some("0.0.0.0"))),
            "loopback learned, every address served"
        );
        assert!(!m.allows(&on(Some("10.0.0.1"))));
        let mut any = Model::default();
        any.learn(&on(Some("0.0.0.0")));
        assert!(
            any.allows(&on(Some("127.0.0.1"))),
            "every address covers one"
        );
        let mut old = Model::default();
        old.learn(&on(None));
        assert!(
            old.allows(&on(Some("0.0.0.0"))),
            "a model without addresses allows any"
        );
        let e = ListenEntry {
            exe: "x".into(),
            protocol: "tcp".into(),
            port: 1,
            address: None,
        };
        let text = serde_json::to_string(&e).unwrap();
        assert!(
            !text.contains("address"),
            "old models read and write the same: {text}"
        );
    }

    #[test]
    fn show_lists_every_entry() {
        let mut m = Model::default();
        m.learn(&Observation::Listen(ListenEntry {
            exe: "/usr/bin/osmo-hlr".into(),
            protocol: "tcp".into(),
            port: 4222,
            address: None,
        }));
        m.learn(&Observation::Connect(PeerEntry {
            exe: "/usr/bin/osmo-hlr".into(),
            protocol: "udp".into(),
            address: "::1".into(),
            port: 53,
        }));
        m.learn(&Observation::Connect(PeerEntry {
            exe: "/usr/bin/osmo-sgsn".into(),
            protocol: "udp".into(),
            address: "10.0.2.7".into(),
            port: 8805,
        }));
        m.learn(&Observation::Connect(PeerEntry {
            exe: "/usr/bin/osmo-sgsn".into(),
            protocol: "udp".into(),
            address: "10.0.2.8".into(),
            port: 9999,
        }));
        let t = m.render_table();
        assert!(t.contains("GSUP on tcp port 4222"), "{t}");
        assert!(t.contains("DNS to [::1]:53"), "{t}");
        assert!(t.contains("PFCP (N4) to 10.0.2.7:8805"), "{t}");
        assert!(t.contains("udp 10.0.2.8:9999"), "{t}");
    }

    fn peer(exe: &str, protocol: &str, address: &str, port: u16) -> Observation {
        Observation::Connect(PeerEntry {
            exe: exe.into(),
            protocol: protocol.into(),
            address: address.into(),
            port,
        })
    }

    fn peers(m: &Model) -> Vec<(String, u16)> {
        m.network
            .connect
            .iter()
            .map(|p| (p.address.clone(), p.port))
            .collect()
    }

    #[test]
    fn many_peers_on_one_port_become_their_subnet_then_any_address() {
        let upf = "/usr/bin/upf";
        let mut m = Model::default();
        for i in 1..=PEERS_PER_SUBNET as u8 {
            m.learn(&peer(upf, "udp", &format!("10.0.2.{i}"), 2152));
        }
        assert_eq!(peers(&m).len(), PEERS_PER_SUBNET, "few peers stay exact");
        assert!(!m.allows(&peer(upf, "udp", "10.0.2.99", 2152)));
        m.learn(&peer(upf, "udp", "10.0.2.200", 2152));
        assert_eq!(peers(&m), vec![("10.0.2.0/24".to_string(), 2152)]);
        assert!(m.allows(&peer(upf, "udp", "10.0.2.99", 2152)));
        assert!(
            !m.allows(&peer(upf, "udp", "10.0.3.1", 2152)),
            "another subnet"
        );
        assert!(
            !m.allows(&peer(upf, "udp", "10.0.2.99", 2153)),
            "another port"
        );
        assert!(
            !m.allows(&peer(upf, "tcp", "10.0.2.99", 2152)),
            "another protocol"
        );
        assert!(
            !m.allows(&peer("/bin/sh", "udp", "10.0.2.99", 2152)),
            "another exe"
        );
        // gNBs all over the region: any address, this port only.
        for site in 10..10 + SUBNETS_PER_PORT as u8 {
            m.learn(&peer(upf, "udp", &format!("10.{site}.0.1"), 2152));
        }
        assert_eq!(peers(&m), vec![(ANY_ADDRESS.to_string(), 2152)]);
        assert!(m.allows(&peer(upf, "udp", "192.0.2.1", 2152)));
        assert!(!m.allows(&peer(upf, "udp", "192.0.2.1", 53)));
        // Learning what is covered adds nothing.
        assert!(!m.learn(&peer(upf, "udp", "10.0.2.1", 2152)));
        assert_eq!(m.network.connect.len(), 1);
    }

    #[test]
    fn many_ports_of_one_peer_become_any_port_there() {
        let dns = "/usr/sbin/dnsd";
        let mut m = Model::default();
        for port in 40000..40000 + PORTS_PER_PEER as u16 + 1 {
            m.learn(&peer(dns, "udp", "192.0.2.10", port));
        }
        assert_eq!(peers(&m), vec![("192.0.2.10".to_string(), ANY_PORT)]);
        assert!(m.allows(&peer(dns, "udp", "192.0.2.10", 5353)));
        assert!(!m.allows(&peer(dns, "udp", "192.0.2.11", 5353)));
        assert!(m.render_table().contains("udp 192.0.2.10:*"));
    }

    #[test]
    fn patterns_match_addresses_of_their_family_only() {
        assert!(address_matches("10.0.2.0/24", "10.0.2.255"));
        assert!(!address_matches("10.0.2.0/24", "10.0.3.0"));
        assert!(address_matches("0.0.0.0/0", "203.0.113.9"));
        assert!(address_matches("2001:db8:1:2::/64", "2001:db8:1:2::77"));
        assert!(!address_matches("2001:db8:1:2::/64", "2001:db8:1:3::77"));
        assert!(!address_matches("10.0.2.0/24", "::ffff:10.0.2.1"));
        assert!(!address_matches("10.0.2.0/33", "10.0.2.1"));
        assert!(!address_matches("junk/24", "10.0.2.1"));
        assert!(address_matches("*", "::1"));
        assert_eq!(
            subnet_of("2001:db8:1:2:3:4:5:6").as_deref(),
            Some("2001:db8:1:2::/64")
        );
    }
}
