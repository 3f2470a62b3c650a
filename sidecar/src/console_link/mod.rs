//! The sidecar's link to `nfguard-console`: one model per workload, shared by
//! its replicas (see `console/` for the other side, `wire` for what is said).
//!
//! What the link does, on its own thread, every interval the console names:
//! - takes what the supervisor saw since the last sync (the `ledger`: every
//!   decided observation with its count and times) and, while learning, what
//!   the local model gained by other paths (the exec-session watcher learns
//!   directly): one numbered batch, resent unchanged until acknowledged;
//! - takes the new events from the supervisor's event ring into a spool (a
//!   queue in memory that spills to disk while the console is unreachable, in
//!   order, `sinks::queue`) and sends them;
//! - applies the answer: the lifecycle's mode (`set_mode`) and, when it
//!   changed, the workload's model (swapped in under the write lock, built
//!   outside it), and caches both in a file beside the local model.
//!
//! What it never does: hold the NF. The supervisor's threads only ever touch
//! the ledger (a mutex and a map) and the model's lock for a swap; a console
//! that is down, slow or answering errors changes nothing but the spool.
//! Started with the console unreachable, the sidecar runs the cached model in
//! the cached mode (a pod of an active workload enforces at once, even
//! offline), or learns when there is no cache.

/// The wire types and the ledger, under the names the console crate uses.
pub use crate::console_wire as wire;
pub use crate::observed as ledger;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nfguard_common::Mode;
use serde::{Deserialize, Serialize};

use crate::event::Since;
use crate::model::Model;
use crate::sinks::http::{Client, Endpoint, Trust};
use crate::sinks::queue::{Pushed, Queue};
use crate::supervisor::Shared;

use crate::console_wire::{
    Item, Observed, PodIdentity, SpooledEvent, SyncRequest, SyncResponse, Wanted, WorkloadIdentity,
};

/// How to reach the console and who this sidecar is.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub url: String,
    /// The credential: a join token, or the pod's projected service-account token (read at each sync: it rotates).
    pub token_file: PathBuf,
    /// CA certificates of an https console.
    pub ca: Option<PathBuf>,
    pub workload: WorkloadIdentity,
    pub pod: PodIdentity,
    pub want: Wanted,
    pub units: Vec<UnitConfig>,
    /// Where the cache and the spool live (beside the local model).
    pub state_dir: PathBuf,
    /// The cache file's name stem (`<stem>.console.json`).
    pub stem: String,
}

/// One monitored container: the console's unit of a model is (workload, container, digest).
#[derive(Debug, Clone)]
pub struct UnitConfig {
    pub container: String,
    pub image: String,
    pub digest: String,
    pub static_items: Vec<Item>,
}

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("console URL {url}: {message}")]
    Url { url: String, message: String },
    #[error("console token file {path}: {source}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("console CA file {path}: {message}")]
    Ca { path: PathBuf, message: String },
    #[error("console spool {path}: {source}")]
    Spool {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the link keeps in the pod between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cache {
    workload_id: String,
    state: String,
    mode: Mode,
    version: i64,
    model: Model,
}

struct Unit {
    cfg: UnitConfig,
    queue: Queue,
    /// The observation batch being delivered (resent unchanged until acknowledged).
    pending: Option<(u64, Vec<Observed>)>,
    next_batch: u64,
    /// Items the console has (acknowledged or in its model): not re-sent from the local model.
    reported: BTreeSet<Item>,
    version: Option<i64>,
    state: String,
    mode: Mode,
    model: Model,
    cache: PathBuf,
    dropped: u64,
    /// Event batches whose delivery failed: sent first next time (their items
    /// are on disk meanwhile, `Queue::spill`).
    retry: Vec<crate::sinks::queue::Batch>,
}

/// The link, before its thread starts.
pub struct Link {
    cfg: LinkConfig,
    instance: String,
    units: Vec<Unit>,
    client: Client,
    /// Events taken from the ring: all ids <= low, and those in `seen`.
    low: u64,
    seen: BTreeSet<u64>,
    gap_since: Option<Instant>,
    interval: Duration,
    down_since: Option<Instant>,
}

/// Largest number of events per sync.
const EVENTS_PER_SYNC: usize = 2048;
/// How long the first sync may take before the workload starts without it.
const FIRST_SYNC: Duration = Duration::from_secs(3);

fn cache_path(dir: &Path, stem: &str, container: &str, units: usize) -> PathBuf {
    if units == 1 {
        dir.join(format!("{stem}.console.json"))
    } else {
        dir.join(format!("{stem}.{container}.console.json"))
    }
}

/// A run's id: the console numbers batches and events per run.
fn instance_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos)
}

impl Link {
    /// Checks the configuration and opens the spools; nothing is sent yet.
    pub fn new(cfg: LinkConfig) -> Result<Link, LinkError> {
        let endpoint = Endpoint::parse(&cfg.url).map_err(|message| LinkError::Url {
            url: cfg.url.clone(),
            message,
        })?;
        std::fs::read_to_string(&cfg.token_file).map_err(|source| LinkError::Token {
            path: cfg.token_file.clone(),
            source,
        })?;
        let trust = match &cfg.ca {
            Some(p) => {
                crate::sinks::http::tls_config(&Trust::CaFile(p.clone())).map_err(|message| {
                    LinkError::Ca {
                        path: p.clone(),
                        message,
                    }
                })?;
                Trust::CaFile(p.clone())
            }
            None => Trust::Public,
        };
        let n = cfg.units.len();
        let mut units = Vec::new();
        for u in &cfg.units {
            let spool = cfg
                .state_dir
                .join(format!("{}.console-spool", cfg.stem))
                .join(&u.container);
            let queue = Queue::open(Some(spool.clone()), 65_536, 256 << 20).map_err(|source| {
                LinkError::Spool {
                    path: spool,
                    source,
                }
            })?;
            let cache = cache_path(&cfg.state_dir, &cfg.stem, &u.container, n);
            units.push(Unit {
                cfg: u.clone(),
                queue,
                pending: None,
                next_batch: 1,
                reported: BTreeSet::new(),
                version: None,
                state: "unknown".into(),
                mode: Mode::Learn,
                model: Model::default(),
                cache,
                dropped: 0,
                retry: Vec::new(),
            });
        }
        Ok(Link {
            client: Client::new(endpoint, trust, Duration::from_secs(10)),
            cfg,
            instance: instance_id(),
            units,
            low: 0,
            seen: BTreeSet::new(),
            gap_since: None,
            interval: Duration::from_secs(2),
            down_since: None,
        })
    }

    /// The mode and model to start in: the console's answer if it comes within
    /// a few seconds, else the cache, else learning. Never fails: a console
    /// outage must not keep the workload from starting.
    pub fn start(&mut self) -> (Mode, Model, String) {
        let rt = runtime();
        let mut how = Vec::new();
        for i in 0..self.units.len() {
            let first = rt.block_on(async {
                tokio::time::timeout(FIRST_SYNC, self.sync_unit(i, None)).await
            });
            match first {
                Ok(Ok(_)) => how.push(format!(
                    "{}: {} ({}) from the console",
                    self.units[i].cfg.container, self.units[i].state, self.units[i].mode
                )),
                other => {
                    let why = match other {
                        Ok(Err(e)) => e,
                        _ => format!("no answer within {FIRST_SYNC:?}"),
                    };
                    let u = &mut self.units[i];
                    match std::fs::read_to_string(&u.cache)
                        .ok()
                        .and_then(|t| serde_json::from_str::<Cache>(&t).ok())
                    {
                        Some(c) => {
                            u.mode = c.mode;
                            u.model = c.model;
                            u.version = Some(c.version);
                            u.state = c.state;
                            how.push(format!(
                                "{}: console unreachable ({why}); {} ({}) from the cache {}",
                                u.cfg.container,
                                u.state,
                                u.mode,
                                u.cache.display()
                            ));
                        }
                        None => how.push(format!(
                            "{}: console unreachable ({why}) and no cache: learning until it answers",
                            u.cfg.container
                        )),
                    }
                }
            }
        }
        let (mode, model) = self.combined();
        (mode, model, how.join("; "))
    }

    /// One mode and one model for the supervisor: the least advanced mode of
    /// the units (a learning container keeps the pod learning) and the union of
    /// their models (the supervisor keeps one model for the pod).
    fn combined(&self) -> (Mode, Model) {
        let rank = |m: Mode| match m {
            Mode::Learn => 0,
            Mode::Alert => 1,
            Mode::Enforce => 2,
        };
        let mode = self
            .units
            .iter()
            .map(|u| u.mode)
            .min_by_key(|m| rank(*m))
            .unwrap_or(Mode::Learn);
        let mut model = Model::default();
        for u in &self.units {
            if self.units.len() == 1 {
                model = u.model.clone();
            } else {
                model.merge(&u.model);
            }
        }
        (mode, model)
    }

    /// Runs the link on its own thread until the process ends.
    pub fn spawn(mut self, shared: Arc<Shared>) -> std::io::Result<LinkHandle> {
        // From now on the supervisor counts what it decides, for the console.
        shared.observed.enable();
        let flush = Arc::new((std::sync::Mutex::new(0u64), std::sync::Condvar::new()));
        let done = Arc::clone(&flush);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("nfguard-console".into())
            .spawn(move || {
                let rt = runtime();
                loop {
                    let wait = self.interval;
                    let flushing = matches!(rx.recv_timeout(wait), Ok(()));
                    rt.block_on(self.round(&shared));
                    if flushing {
                        // One more round so what the last round spooled is sent too.
                        rt.block_on(self.round(&shared));
                        let (n, cv) = &*done;
                        *n.lock().unwrap_or_else(|p| p.into_inner()) += 1;
                        cv.notify_all();
                    }
                }
            })?;
        Ok(LinkHandle { flush, tx })
    }

    /// One sync of every unit.
    async fn round(&mut self, shared: &Shared) {
        self.take_events(shared);
        let before = self.combined();
        let mut failure = None;
        for i in 0..self.units.len() {
            if shared.mode() == Mode::Learn {
                self.add_learned_locally(i, shared);
            }
            // A backlog (after an outage) drains in several syncs in a row.
            for _ in 0..64 {
                match self.sync_unit(i, Some(&shared.observed)).await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        match failure {
            None => {
                if let Some(since) = self.down_since.take() {
                    eprintln!(
                        "nfguard: console {} reachable again after {:.0?}; spooled observations and events delivered",
                        self.cfg.url,
                        since.elapsed()
                    );
                }
            }
            Some(e) => {
                if self.down_since.is_none() {
                    self.down_since = Some(Instant::now());
                    eprintln!(
                        "nfguard: console {} unreachable ({e}); going on in {} mode and spooling until it answers",
                        self.cfg.url,
                        shared.mode()
                    );
                }
            }
        }
        let after = self.combined();
        if after.1 != before.1 {
            // Build outside the lock, swap under it: the NF's calls wait for a pointer swap at most.
            let mut next = after.1;
            let mut m = shared.model.write().unwrap_or_else(|p| p.into_inner());
            std::mem::swap(&mut *m, &mut next);
        }
        if after.0 != shared.mode() {
            eprintln!(
                "nfguard: the console moves this workload to {} mode ({})",
                after.0,
                self.units
                    .iter()
                    .map(|u| format!("{}: {}", u.cfg.container, u.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            shared.set_mode(after.0);
        }
    }

    /// New events from the supervisor's ring, into the units' spools (each
    /// unit's container's events into its own).
    fn take_events(&mut self, shared: &Shared) {
        let fresh = shared.events.recent_since(Some(&Since::Id(self.low)));
        for e in fresh {
            if e.id <= self.low || !self.seen.insert(e.id) {
                continue;
            }
            let c = e.context.container.clone();
            let u = self
                .units
                .iter_mut()
                .position(|u| u.cfg.container == c)
                .unwrap_or(0);
            let body = serde_json::json!({"instance": self.instance, "event": e});
            if self.units[u].queue.push("event", 1, body) == Pushed::Dropped {
                self.units[u].dropped += 1;
            }
        }
        // Ids are handed out before events are emitted, so one may land late:
        // wait a little for a gap to fill before moving past it.
        while self.seen.remove(&(self.low + 1)) {
            self.low += 1;
        }
        match self.seen.first().copied() {
            Some(first) if first > self.low + 1 => {
                let since = *self.gap_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(2) {
                    self.low = first - 1;
                    self.gap_since = None;
                }
            }
            _ => self.gap_since = None,
        }
    }

    /// While learning, what the local model gained outside the ledger (the
    /// exec-session watcher learns directly) is reported too.
    fn add_learned_locally(&mut self, i: usize, shared: &Shared) {
        if self.units.len() != 1 {
            return; // one model for the pod: whose container learned it is unknown
        }
        let local = Item::all_of(&shared.model_snapshot());
        let u = &mut self.units[i];
        let now = ledger::now_ms();
        let pending: BTreeSet<&Item> = u
            .pending
            .iter()
            .flat_map(|(_, o)| o.iter().map(|o| &o.item))
            .collect();
        let extra: Vec<Item> = local
            .into_iter()
            .filter(|it| !u.reported.contains(it) && !pending.contains(it))
            .collect();
        if !extra.is_empty() {
            shared.observed.ensure_at(&u.cfg.container, &extra, now);
        }
    }

    /// One sync of unit `i`; true when events are left to send.
    async fn sync_unit(
        &mut self,
        i: usize,
        ledger: Option<&ledger::Ledger>,
    ) -> Result<bool, String> {
        let token = std::fs::read_to_string(&self.cfg.token_file)
            .map_err(|e| format!("{}: {e}", self.cfg.token_file.display()))?;
        let u = &mut self.units[i];
        if u.pending.is_none() {
            let obs = ledger.map(|l| l.take(&u.cfg.container)).unwrap_or_default();
            if !obs.is_empty() {
                u.pending = Some((u.next_batch, obs));
                u.next_batch += 1;
            }
        }
        let mut batches: Vec<crate::sinks::queue::Batch> = std::mem::take(&mut u.retry);
        while batches.iter().map(|b| b.items.len()).sum::<usize>() < EVENTS_PER_SYNC {
            let Some(b) = u.queue.take() else { break };
            batches.push(b);
        }
        let events: Vec<SpooledEvent> = batches
            .iter()
            .flat_map(|b| b.items.iter())
            .filter_map(|it| serde_json::from_value(it.body.clone()).ok())
            .collect();
        let (batch_no, observations) = u.pending.clone().unwrap_or((0, Vec::new()));
        let req = SyncRequest {
            workload: self.cfg.workload.clone(),
            container: u.cfg.container.clone(),
            image: u.cfg.image.clone(),
            digest: u.cfg.digest.clone(),
            pod: self.cfg.pod.clone(),
            instance: self.instance.clone(),
            want: self.cfg.want.clone(),
            static_items: u.cfg.static_items.clone(),
            batch: batch_no,
            observations,
            events,
            dropped_events: u.dropped,
            have_version: u.version,
        };
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let headers = [(
            "authorization".to_string(),
            format!("Bearer {}", token.trim()),
        )];
        let answer = self.client.post(Some("/api/v1/sync"), &headers, body).await;
        let u = &mut self.units[i];
        let answer = match answer {
            Ok(a) if a.status.is_success() => a,
            Ok(a) => {
                for b in batches.iter_mut() {
                    u.queue.spill(b, 0);
                }
                u.retry = batches;
                let msg = serde_json::from_slice::<serde_json::Value>(&a.body)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(String::from))
                    .unwrap_or_default();
                return Err(format!("{}: {msg}", a.status));
            }
            Err(e) => {
                for b in batches.iter_mut() {
                    u.queue.spill(b, 0);
                }
                u.retry = batches;
                return Err(e);
            }
        };
        let resp: SyncResponse = match serde_json::from_slice(&answer.body) {
            Ok(r) => r,
            Err(e) => {
                for b in batches.iter_mut() {
                    u.queue.spill(b, 0);
                }
                u.retry = batches;
                return Err(format!("unreadable answer: {e}"));
            }
        };
        if !batches.is_empty() {
            u.queue.up();
        }
        for b in batches {
            u.queue.done(b);
        }
        if let Some((n, obs)) = &u.pending {
            if resp.acked_batch >= *n {
                u.reported.extend(obs.iter().map(|o| o.item.clone()));
                u.pending = None;
            }
        }
        let changed = resp.model.is_some() || resp.mode != u.mode || resp.state != u.state;
        if let Some(m) = resp.model {
            u.reported.extend(Item::all_of(&m));
            u.model = m;
        }
        u.version = Some(resp.version);
        u.mode = resp.mode;
        u.state = resp.state.clone();
        self.interval = Duration::from_millis(resp.interval_ms.clamp(100, 60_000));
        if changed && resp.mode != Mode::Learn {
            let c = Cache {
                workload_id: resp.workload_id,
                state: resp.state,
                mode: resp.mode,
                version: resp.version,
                model: u.model.clone(),
            };
            if let Ok(text) = serde_json::to_string_pretty(&c) {
                let tmp = u.cache.with_extension("tmp");
                if std::fs::write(&tmp, text)
                    .and_then(|_| std::fs::rename(&tmp, &u.cache))
                    .is_err()
                {
                    eprintln!(
                        "nfguard: cannot write the console cache {}",
                        u.cache.display()
                    );
                }
            }
        }
        let (mem, spooled, _) = u.queue.depth();
        Ok(mem > 0 || spooled > 0)
    }
}

/// Asks the link for a last round (at exit) and waits for it a little.
pub struct LinkHandle {
    flush: Arc<(std::sync::Mutex<u64>, std::sync::Condvar)>,
    tx: std::sync::mpsc::Sender<()>,
}

impl LinkHandle {
    /// Sends what is pending now; gives up after `timeout` (it stays in the spool).
    pub fn flush(&self, timeout: Duration) {
        let (n, cv) = &*self.flush;
        let start = *n.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.tx.send(());
        let deadline = Instant::now() + timeout;
        let mut g = n.lock().unwrap_or_else(|p| p.into_inner());
        while *g == start {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = cv
                .wait_timeout(g, left)
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread tokio runtime")
}

/// The host's addresses (for `nfguard run`: the console resolves peers to workloads with them),
/// from /proc/net/fib_trie's local host routes and /proc/net/if_inet6.
pub fn host_addresses() -> Vec<String> {
    let mut out = BTreeSet::new();
    if let Ok(t) = std::fs::read_to_string("/proc/net/fib_trie") {
        out.extend(local_v4(&t));
    }
    if let Ok(t) = std::fs::read_to_string("/proc/net/if_inet6") {
        for line in t.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 6 && f[5] != "lo" && f[0].len() == 32 && !f[0].starts_with("fe80") {
                let groups: Vec<String> =
                    (0..8).map(|i| f[0][i * 4..i * 4 + 4].to_string()).collect();
                if let Ok(a) = groups.join(":").parse::<std::net::Ipv6Addr>() {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The `/32 host LOCAL` addresses of a fib_trie dump, loopback left out.
pub fn local_v4(fib_trie: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut last: Option<&str> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(addr) = t.strip_prefix("|-- ") {
            last = Some(addr);
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                if !a.starts_with("127.") {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_addresses_come_from_its_local_routes() {
        let t = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 10.0.2.255\n        /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        assert_eq!(local_v4(t), vec!["10.0.2.15".to_string()]);
    }
}

/// `nfguard run`'s console flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConsoleArgs {
    /// Share this workload's model through nfguard-console at this URL; --mode is then
    /// what the workload should reach (alert or enforce) and the console's lifecycle decides when.
    #[arg(long)]
    pub console: Option<String>,
    /// The credential for the console (a join token).
    #[arg(long, requires = "console")]
    pub console_token_file: Option<PathBuf>,
    /// CA certificates of an https console.
    #[arg(long, requires = "console")]
    pub console_ca: Option<PathBuf>,
    /// The workload this process is a replica of: NAMESPACE/KIND/NAME.
    #[arg(long, requires = "console")]
    pub workload: Option<String>,
    /// The container's name (default main).
    #[arg(long, default_value = "main")]
    pub container: String,
    /// The image, REF@sha256:DIGEST: a new digest starts from the previous one's model.
    #[arg(long, requires = "console")]
    pub image: Option<String>,
    /// How long the workload learns, counted across its replicas (default 10m).
    #[arg(long, requires = "console", value_parser = parse_period)]
    pub learning_period: Option<Duration>,
    /// How long it then runs in dry-run (alerts only) before it is active (default 24h).
    #[arg(long, requires = "console", value_parser = parse_period)]
    pub dry_run_period: Option<Duration>,
    /// Dry-run ends only when an operator approves.
    #[arg(long, requires = "console")]
    pub require_approval: bool,
    /// This replica's name (default HOSTNAME-PID).
    #[arg(long, requires = "console")]
    pub pod: Option<String>,
    /// The cluster's name in the workload's id (default local).
    #[arg(long, requires = "console", default_value = "local")]
    pub cluster: String,
}

fn parse_period(s: &str) -> Result<Duration, String> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("{s}: {e}"));
    }
    nfguard_common::parse_duration(s).map_err(|e| e.to_string())
}

/// `REF@sha256:HEX` -> (the reference, `sha256:HEX`).
pub fn split_image(image: &str) -> Result<(String, String), String> {
    match image.rsplit_once('@') {
        Some((_, d))
            if d.starts_with("sha256:")
                && d.len() == 71
                && d[7..].chars().all(|c| c.is_ascii_hexdigit()) =>
        {
            Ok((image.to_string(), d.to_string()))
        }
        _ => Err(format!(
            "--image {image:?}: expected REF@sha256:<64 hex digits>"
        )),
    }
}

impl ConsoleArgs {
    /// The link's configuration for `nfguard run` (None without --console).
    pub fn link_config(
        &self,
        mode: Mode,
        model: &Path,
        command: &str,
    ) -> Result<Option<LinkConfig>, String> {
        let Some(url) = &self.console else {
            return Ok(None);
        };
        if mode == Mode::Learn {
            return Err("with --console, --mode is what the workload should reach: alert or enforce (the console decides when it learns)".into());
        }
        let token_file = self
            .console_token_file
            .clone()
            .ok_or("--console needs --console-token-file")?;
        let workload = self
            .workload
            .as_deref()
            .ok_or("--console needs --workload NAMESPACE/KIND/NAME")?;
        let workload =
            WorkloadIdentity::parse(workload, &self.cluster).map_err(|e| e.to_string())?;
        let (image, digest) = match &self.image {
            Some(i) => split_image(i)?,
            None => (String::new(), String::new()),
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let pod = self
            .pod
            .clone()
            .unwrap_or_else(|| format!("{}-{}", host.trim(), std::process::id()));
        // Known without learning: the program this replica starts.
        let static_items = crate::launch::resolve_command(command)
            .and_then(|p| std::fs::canonicalize(p).ok())
            .map(|p| {
                vec![Item::Process(crate::model::ProcessEntry {
                    exe: p.display().to_string(),
                    parent: crate::model::LAUNCHER_PARENT.into(),
                })]
            })
            .unwrap_or_default();
        let state_dir = model
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let stem = model
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("nfguard-model")
            .to_string();
        Ok(Some(LinkConfig {
            url: url.clone(),
            token_file,
            ca: self.console_ca.clone(),
            workload,
            pod: PodIdentity {
                name: pod,
                uid: None,
                node: Some(host.trim().to_string()).filter(|h| !h.is_empty()),
                addresses: host_addresses(),
            },
            want: Wanted {
                mode,
                learning_period_ms: self.learning_period.map(|d| d.as_millis() as u64),
                dry_run_period_ms: self.dry_run_period.map(|d| d.as_millis() as u64),
                require_approval: self.require_approval,
            },
            units: vec![UnitConfig {
                container: self.container.clone(),
                image,
                digest,
                static_items,
            }],
            state_dir,
            stem,
        }))
    }
}
