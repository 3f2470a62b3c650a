//! Alerts that reach people: the notifying sinks (webhook, Falco JSON for
//! falcosidekick, Slack, Kubernetes Events).
//!
//! Flow: `EventSink::emit` (`fanout`, on the supervisor thread) hands each event to
//! `Dispatcher::submit`, a non-blocking `try_send` into a bounded channel: the
//! workload's call is never held up by a sink. On the dispatcher's own thread
//! (a single-threaded tokio runtime) the aggregator (`aggregate`) turns events
//! into alerts, each alert is rendered in every sink's format (`format`) and
//! queued on that sink's queue (`queue`: memory, then a spool directory), and
//! one task per sink delivers its queue in order, retrying with exponential
//! backoff. stdout keeps every raw event; the sinks get the aggregated alerts.
//!
//! Loss is never silent: an event that finds the channel full, or an alert
//! that finds its sink's memory and spool full, is counted
//! (`nfguard_sink_dropped_*` metrics) and logged on stderr.
//!
//! Configuration: a JSON document (see `SinksConfig` and docs/alerts.md),
//! from `NFGUARD_SINKS` (its text) or `NFGUARD_SINKS_FILE` (a path) in the pod,
//! or `--sinks FILE` on the command line.

pub mod aggregate;
pub mod format;
pub mod http;
pub mod queue;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::{mpsc, Notify};

use crate::event::{Context, Event};
use aggregate::{Aggregator, Alert};
use format::PodRef;
use http::{Client, Endpoint, Trust};
use queue::{Pushed, Queue};

/// Events waiting for the aggregator; beyond, they are counted as dropped.
const CHANNEL: usize = 65_536;
/// Deviations grouped at once (bounds the aggregator's memory).
const MAX_OPEN: usize = 4096;
/// Where the projected service-account token and CA live in a pod.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The sinks document.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    #[serde(default)]
    pub sinks: Vec<SinkConfig>,
    /// Repeats of a deviation within this window become one alert ("60s").
    #[serde(default = "default_window", deserialize_with = "de_duration")]
    pub window: Duration,
    /// Spool directory (one subdirectory per sink); none: memory only.
    #[serde(default)]
    pub spool: Option<PathBuf>,
    /// Alerts held in memory per sink before spilling to the spool.
    #[serde(default = "default_memory_queue")]
    pub memory_queue: usize,
    /// Largest spool per sink, in bytes.
    #[serde(default = "default_spool_max")]
    pub spool_max_bytes: u64,
    #[serde(default)]
    pub backoff: Backoff,
    /// Per request.
    #[serde(default = "default_timeout", deserialize_with = "de_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backoff {
    #[serde(default = "default_backoff_initial", deserialize_with = "de_duration")]
    pub initial: Duration,
    #[serde(default = "default_backoff_max", deserialize_with = "de_duration")]
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(60)
}
fn default_memory_queue() -> usize {
    1024
}
fn default_spool_max() -> u64 {
    64 << 20
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(60)
}

/// `250ms`, `90s`, `10m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Some(ms) = s.trim().strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("invalid duration {s:?}"));
    }
    nfguard_common::parse_duration(s).map_err(|e| format!("{e} (or ms)"))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

/// One sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// POST each alert as JSON.
    Webhook {
        name: Option<String>,
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// POST Falco's JSON output (falcosidekick listens on :2801, path /).
    Falco {
        name: Option<String>,
        url: String,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        hostname: Option<String>,
    },
    /// A Slack (or compatible) incoming webhook.
    Slack { name: Option<String>, url: String },
    /// Events on the pod through the API server.
    Kubernetes {
        name: Option<String>,
        /// Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
        api_server: Option<String>,
        /// Default: the service account's projected token.
        token_file: Option<PathBuf>,
        /// Default: the service account's ca.crt.
        ca_file: Option<PathBuf>,
        namespace: Option<String>,
        pod: Option<String>,
        pod_uid: Option<String>,
    },
}

impl SinkConfig {
    fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Webhook { .. } => "webhook",
            SinkConfig::Falco { .. } => "falco",
            SinkConfig::Slack { .. } => "slack",
            SinkConfig::Kubernetes { .. } => "kubernetes",
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            SinkConfig::Webhook { name, .. }
            | SinkConfig::Falco { name, .. }
            | SinkConfig::Slack { name, .. }
            | SinkConfig::Kubernetes { name, .. } => name.as_deref(),
        }
    }
}

/// A sinks document that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("sinks configuration{}: {message}", .origin.as_deref().map(|o| format!(" ({o})")).unwrap_or_default())]
pub struct ConfigError {
    pub origin: Option<String>,
    pub message: String,
}

impl SinksConfig {
    pub fn parse(text: &str) -> Result<SinksConfig, ConfigError> {
        let cfg: SinksConfig = serde_json::from_str(text).map_err(|e| ConfigError {
            origin: None,
            message: e.to_string(),
        })?;
        let mut seen = Vec::new();
        for (i, s) in cfg.sinks.iter().enumerate() {
            let name = sink_name(s, i);
            if seen.contains(&name) {
                return Err(ConfigError {
                    origin: None,
                    message: format!("two sinks are named {name:?}"),
                });
            }
            seen.push(name);
            let url = match s {
                SinkConfig::Webhook { url, .. }
                | SinkConfig::Falco { url, .. }
                | SinkConfig::Slack { url, .. } => Some(url),
                SinkConfig::Kubernetes { api_server, .. } => api_server.as_ref(),
            };
            if let Some(url) = url {
                Endpoint::parse(url).map_err(|message| ConfigError {
                    origin: None,
                    message,
                })?;
            }
        }
        if cfg.backoff.initial.is_zero() || cfg.backoff.max < cfg.backoff.initial {
            return Err(ConfigError {
                origin: None,
                message: "backoff: initial must be above zero and max at least initial".into(),
            });
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<SinksConfig, ConfigError> {
        let origin = Some(path.display().to_string());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        SinksConfig::parse(&text).map_err(|e| ConfigError { origin, ..e })
    }
}

/// A sink's name: its `name`, or its type (with its position when repeated).
fn sink_name(s: &SinkConfig, i: usize) -> String {
    match s.name() {
        Some(n) => n
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None if i == 0 => s.kind().to_string(),
        None => format!("{}-{i}", s.kind()),
    }
}

/// Counters of one sink.
#[derive(Default)]
pub struct SinkStats {
    /// (category) -> (alerts, events) delivered.
    delivered: Mutex<BTreeMap<String, (u64, u64)>>,
    pub rejected: AtomicU64,
    pub retries: AtomicU64,
    pub dropped_alerts: AtomicU64,
    pub dropped_events: AtomicU64,
    pub up: AtomicBool,
}

impl SinkStats {
    /// Alerts and events delivered, all categories.
    pub fn delivered(&self) -> (u64, u64) {
        self.delivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .fold((0, 0), |(a, e), (x, y)| (a + x, e + y))
    }
}

enum Target {
    Webhook { headers: Vec<(String, String)> },
    Falco { hostname: String, tags: Vec<String> },
    Slack,
    Kubernetes { pod: PodRef, token_file: PathBuf },
}

/// One configured sink.
pub struct Sink {
    pub name: String,
    pub kind: &'static str,
    pub queue: Queue,
    pub stats: SinkStats,
    target: Target,
    endpoint: Endpoint,
    trust: Trust,
    notify: Notify,
}

impl Sink {
    fn render(&self, a: &Alert) -> serde_json::Value {
        match &self.target {
            Target::Webhook { .. } => format::webhook(a),
            Target::Falco { hostname, tags } => format::falco(a, hostname, tags),
            Target::Slack => format::slack(a),
            Target::Kubernetes { pod, .. } => format::kubernetes(a, pod),
        }
    }

    fn headers(&self) -> Result<Vec<(String, String)>, String> {
        match &self.target {
            Target::Webhook { headers } => Ok(headers.clone()),
            Target::Kubernetes { token_file, .. } => {
                // Read at each request: projected tokens rotate.
                let token = std::fs::read_to_string(token_file)
                    .map_err(|e| format!("token file {}: {e}", token_file.display()))?;
                Ok(vec![(
                    "authorization".into(),
                    format!("Bearer {}", token.trim()),
                )])
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// Counters of the hand-off.
#[derive(Default)]
pub struct DispatchStats {
    pub submitted: AtomicU64,
    /// Events that found the channel full (or the dispatcher gone).
    pub dropped: AtomicU64,
    pub alerts: AtomicU64,
    pub open_groups: AtomicU64,
}

/// The notifying sinks of one supervisor.
pub struct Dispatcher {
    tx: mpsc::Sender<Event>,
    pub stats: Arc<DispatchStats>,
    pub sinks: Vec<Arc<Sink>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field(
                "sinks",
                &self.sinks.iter().map(|s| &s.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Dispatcher {
    /// Starts the sinks on their own thread. `context` fills in what the
    /// Kubernetes sink needs (namespace, pod, node) when the document does not.
    pub fn start(cfg: SinksConfig, context: &Context) -> Result<Dispatcher, ConfigError> {
        let bad = |message: String| ConfigError {
            origin: None,
            message,
        };
        let mut sinks = Vec::new();
        for (i, s) in cfg.sinks.iter().enumerate() {
            let name = sink_name(s, i);
            let dir = cfg.spool.as_ref().map(|d| d.join(&name));
            let queue =
                Queue::open(dir.clone(), cfg.memory_queue, cfg.spool_max_bytes).map_err(|e| {
                    bad(format!(
                        "sink {name}: spool {}: {e}",
                        dir.as_deref()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default()
                    ))
                })?;
            let (target, url, trust) = match s {
                SinkConfig::Webhook { url, headers, .. } => (
                    Target::Webhook {
                        headers: headers
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                    },
                    url.clone(),
                    Trust::Public,
                ),
                SinkConfig::Falco {
                    url,
                    tags,
                    hostname,
                    ..
                } => (
                    Target::Falco {
                        hostname: hostname
                            .clone()
                            .or_else(|| context.node.clone())
                            .or_else(|| std::env::var("HOSTNAME").ok())
                            .unwrap_or_default(),
                        tags: tags.clone(),
                    },
                    url.clone(),
                    Trust::Public,
                ),
                SinkConfig::Slack { url, .. } => (Target::Slack, url.clone(), Trust::Public),
                SinkConfig::Kubernetes {
                    api_server,
                    token_file,
                    ca_file,
                    namespace,
                    pod,
                    pod_uid,
                    ..
                } => {
                    let server = match api_server {
                        Some(s) => s.clone(),
                        None => {
                            let host = std::env::var("KUBERNETES_SERVICE_HOST")
                                .map_err(|_| bad(format!("sink {name}: no api_server and KUBERNETES_SERVICE_HOST is not set")))?;
                            let port = std::env::var("KUBERNETES_SERVICE_PORT")
                                .unwrap_or_else(|_| "443".into());
                            let host = if host.contains(':') {
                                format!("[{host}]")
                            } else {
                                host
                            };
                            format!("https://{host}:{port}")
                        }
                    };
                    let namespace = namespace
                        .clone()
                        .or_else(|| context.namespace.clone())
                        .or_else(|| {
                            std::fs::read_to_string(Path::new(SA_DIR).join("namespace"))
                                .ok()
                                .map(|s| s.trim().to_string())
                        })
                        .ok_or_else(|| {
                            bad(format!("sink {name}: the pod's namespace is unknown"))
                        })?;
                    let pod_name = pod
                        .clone()
                        .or_else(|| context.pod.clone())
                        .ok_or_else(|| bad(format!("sink {name}: the pod's name is unknown")))?;
                    (
                        Target::Kubernetes {
                            pod: PodRef {
                                namespace,
                                name: pod_name,
                                uid: pod_uid
                                    .clone()
                                    .or_else(|| std::env::var(nfguard_common::env::POD_UID).ok()),
                                node: context.node.clone(),
                            },
                            token_file: token_file
                                .clone()
                                .unwrap_or_else(|| Path::new(SA_DIR).join("token")),
                        },
                        server,
                        Trust::CaFile(
                            ca_file
                                .clone()
                                .unwrap_or_else(|| Path::new(SA_DIR).join("ca.crt")),
                        ),
                    )
                }
            };
            let mut endpoint = Endpoint::parse(&url).map_err(&bad)?;
            if let Target::Kubernetes { pod, .. } = &target {
                endpoint.path = format!("/api/v1/namespaces/{}/events", pod.namespace);
            }
            sinks.push(Arc::new(Sink {
                name,
                kind: s.kind(),
                queue,
                stats: SinkStats::default(),
                target,
                endpoint,
                trust,
                notify: Notify::new(),
            }));
        }
        let (tx, rx) = mpsc::channel(CHANNEL);
        let stats = Arc::new(DispatchStats::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the sinks' runtime: {e}")))?;
        {
            let sinks = sinks.clone();
            let stats = Arc::clone(&stats);
            let cfg = cfg.clone();
            std::thread::Builder::new()
                .name("nfguard-sinks".into())
                .spawn(move || rt.block_on(run(cfg, sinks, stats, rx)))
                .map_err(|e| bad(format!("cannot start the sinks' thread: {e}")))?;
        }
        Ok(Dispatcher { tx, stats, sinks })
    }

    /// Hands one event over; never blocks.
    pub fn submit(&self, e: Event) {
        self.stats.submitted.fetch_add(1, Ordering::Relaxed);
        if self.tx.try_send(e).is_err() {
            let n = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                eprintln!("nfguard: the sinks fall behind: {n} event(s) not handed to them so far (they stay on stdout)");
            }
        }
    }

    /// True when every sink has delivered (or dropped) everything handed over.
    pub fn idle(&self) -> bool {
        let handed = self.stats.submitted.load(Ordering::Relaxed)
            - self.stats.dropped.load(Ordering::Relaxed);
        self.tx.capacity() == self.tx.max_capacity()
            && self.stats.open_groups.load(Ordering::Relaxed) == 0
            && handed > 0
            && self
                .sinks
                .iter()
                .all(|s| s.queue.depth().0 == 0 && s.queue.depth().1 == 0)
    }

    pub fn render_metrics(&self, o: &mut String) {
        let _ = writeln!(o, "# HELP nfguard_sink_events_submitted_total Events handed to the notifying sinks.\n# TYPE nfguard_sink_events_submitted_total counter");
        let _ = writeln!(
            o,
            "nfguard_sink_events_submitted_total {}",
            self.stats.submitted.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP nfguard_sink_events_dropped_total Events lost before aggregation (hand-off full); they stay on stdout.\n# TYPE nfguard_sink_events_dropped_total counter");
        let _ = writeln!(
            o,
            "nfguard_sink_events_dropped_total {}",
            self.stats.dropped.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP nfguard_alerts_total Alerts made from events (after aggregation).\n# TYPE nfguard_alerts_total counter");
        let _ = writeln!(
            o,
            "nfguard_alerts_total {}",
            self.stats.alerts.load(Ordering::Relaxed)
        );
        let _ = writeln!(o, "# HELP nfguard_alert_groups_open Deviations inside their aggregation window.\n# TYPE nfguard_alert_groups_open gauge");
        let _ = writeln!(
            o,
            "nfguard_alert_groups_open {}",
            self.stats.open_groups.load(Ordering::Relaxed)
        );
        let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for s in &self.sinks {
            let l = format!(
                "sink=\"{}\",type=\"{}\"",
                crate::metrics::escape(&s.name),
                s.kind
            );
            for (cat, (alerts, events)) in s
                .stats
                .delivered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                lines
                    .entry("nfguard_sink_alerts_delivered_total")
                    .or_default()
                    .push(format!("{{{l},category=\"{cat}\"}} {alerts}"));
                lines
                    .entry("nfguard_sink_events_delivered_total")
                    .or_default()
                    .push(format!("{{{l},category=\"{cat}\"}} {events}"));
            }
            let (mem, spooled, bytes) = s.queue.depth();
            let q = &mut lines;
            q.entry("nfguard_sink_queue_depth")
                .or_default()
                .push(format!("{{{l},where=\"memory\"}} {mem}"));
            q.entry("nfguard_sink_queue_depth")
                .or_default()
                .push(format!("{{{l},where=\"spool\"}} {spooled}"));
            q.entry("nfguard_sink_spool_bytes")
                .or_default()
                .push(format!("{{{l}}} {bytes}"));
            q.entry("nfguard_sink_rejected_total")
                .or_default()
                .push(format!(
                    "{{{l}}} {}",
                    s.stats.rejected.load(Ordering::Relaxed)
                ));
            q.entry("nfguard_sink_retries_total")
                .or_default()
                .push(format!(
                    "{{{l}}} {}",
                    s.stats.retries.load(Ordering::Relaxed)
                ));
            q.entry("nfguard_sink_dropped_alerts_total")
                .or_default()
                .push(format!(
                    "{{{l}}} {}",
                    s.stats.dropped_alerts.load(Ordering::Relaxed)
                ));
            q.entry("nfguard_sink_dropped_events_total")
                .or_default()
                .push(format!(
                    "{{{l}}} {}",
                    s.stats.dropped_events.load(Ordering::Relaxed)
                ));
            q.entry("nfguard_sink_up").or_default().push(format!(
                "{{{l}}} {}",
                u8::from(s.stats.up.load(Ordering::Relaxed))
            ));
        }
        for (name, rows) in lines {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(o, "# HELP {name} Per notifying sink.\n# TYPE {name} {kind}");
            for r in rows {
                let _ = writeln!(o, "{name}{r}");
            }
        }
    }
}

/// The dispatcher's thread: aggregation, then one delivery task per sink.
async fn run(
    cfg: SinksConfig,
    sinks: Vec<Arc<Sink>>,
    stats: Arc<DispatchStats>,
    mut rx: mpsc::Receiver<Event>,
) {
    for s in &sinks {
        s.stats.up.store(true, Ordering::Relaxed);
        tokio::spawn(deliver(Arc::clone(s), cfg.backoff.clone(), cfg.timeout));
        // What a previous run left in the spool goes first.
        s.notify.notify_one();
    }
    let mut agg = Aggregator::new(cfg.window, MAX_OPEN);
    let tick = (cfg.window / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    loop {
        let alerts = tokio::select! {
            e = rx.recv() => match e {
                Some(e) => agg.offer(e, Instant::now()),
                None => {
                    let rest = agg.flush();
                    fan_out(&sinks, &stats, rest);
                    return;
                }
            },
            _ = ticker.tick() => agg.expire(Instant::now()),
        };
        fan_out(&sinks, &stats, alerts);
        stats
            .open_groups
            .store(agg.open() as u64, Ordering::Relaxed);
    }
}

fn category(a: &Alert) -> String {
    serde_json::to_value(a.event.category)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn fan_out(sinks: &[Arc<Sink>], stats: &DispatchStats, alerts: Vec<Alert>) {
    for a in alerts {
        stats.alerts.fetch_add(1, Ordering::Relaxed);
        let cat = category(&a);
        for s in sinks {
            match s.queue.push(&cat, a.count, s.render(&a)) {
                Pushed::Dropped => {
                    let n = s.stats.dropped_alerts.fetch_add(1, Ordering::Relaxed) + 1;
                    s.stats.dropped_events.fetch_add(a.count, Ordering::Relaxed);
                    if n.is_power_of_two() {
                        eprintln!(
                            "nfguard: sink {}: memory queue and spool full: {n} alert(s) lost so far (event {} among them)",
                            s.name, a.event.id
                        );
                    }
                }
                Pushed::Memory | Pushed::Spool => s.notify.notify_one(),
            }
        }
    }
}

/// Is a refusal worth retrying? Server trouble, throttling, and auth (a
/// token that rotates, RBAC applied later) are; a malformed request is not.
fn retryable(status: hyper::StatusCode) -> bool {
    status.is_server_error() || matches!(status.as_u16(), 401 | 403 | 408 | 425 | 429)
}

/// Delivers one sink's queue, in order, forever.
async fn deliver(sink: Arc<Sink>, backoff: Backoff, timeout: Duration) {
    let mut client = Client::new(sink.endpoint.clone(), sink.trust.clone(), timeout);
    loop {
        let Some(mut batch) = sink.queue.take() else {
            sink.notify.notified().await;
            continue;
        };
        let mut i = 0;
        let mut delay = backoff.initial;
        let mut failures = 0u64;
        while i < batch.items.len() {
            let item = &batch.items[i];
            let body = serde_json::to_vec(&item.body).unwrap_or_default();
            let result = match sink.headers() {
                Ok(h) => client.post(None, &h, body).await,
                Err(e) => Err(e),
            };
            let failure = match result {
                Ok(answer) if answer.status.is_success() => None,
                Ok(answer) if !retryable(answer.status) => {
                    sink.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "nfguard: sink {} refused an alert ({}): {}; it is dropped",
                        sink.name,
                        answer.status,
                        String::from_utf8_lossy(&answer.body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                    i += 1;
                    continue;
                }
                Ok(answer) => Some(format!("answered {}", answer.status)),
                Err(e) => Some(e),
            };
            match failure {
                None => {
                    if failures > 0 {
                        eprintln!("nfguard: sink {} is back after {failures} failed attempt(s); delivering what was queued", sink.name);
                        failures = 0;
                    }
                    sink.stats.up.store(true, Ordering::Relaxed);
                    sink.queue.up();
                    let mut d = sink
                        .stats
                        .delivered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    let c = d.entry(item.category.clone()).or_default();
                    c.0 += 1;
                    c.1 += item.events;
                    drop(d);
                    delay = backoff.initial;
                    i += 1;
                }
                Some(why) => {
                    if failures == 0 {
                        eprintln!(
                            "nfguard: sink {} ({}:{}) failed: {why}; retrying with backoff, alerts wait in {}",
                            sink.name,
                            client.endpoint().host,
                            client.endpoint().port,
                            sink.queue
                                .spool_dir()
                                .map(|d| format!("the spool {}", d.display()))
                                .unwrap_or_else(|| "memory".into())
                        );
                    }
                    failures += 1;
                    sink.stats.up.store(false, Ordering::Relaxed);
                    sink.stats.retries.fetch_add(1, Ordering::Relaxed);
                    sink.queue.spill(&mut batch, i);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(backoff.max);
                }
            }
        }
        sink.queue.done(batch);
    }
}

/// Where a pod's sinks document comes from: `NFGUARD_SINKS` (the document
/// itself: the injector passes the pod's `nfguard.io/sinks` annotation, or
/// the cluster's default), else `NFGUARD_SINKS_FILE` (a mounted file).
pub fn config_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<SinksConfig>, ConfigError> {
    if let Some(text) = get("NFGUARD_SINKS").filter(|t| !t.trim().is_empty()) {
        return SinksConfig::parse(&text)
            .map(Some)
            .map_err(|e| ConfigError {
                origin: Some("NFGUARD_SINKS".into()),
                ..e
            });
    }
    match get("NFGUARD_SINKS_FILE").filter(|t| !t.trim().is_empty()) {
        Some(path) => SinksConfig::load(Path::new(&path)).map(Some),
        None => Ok(None),
    }
}

/// Starts the dispatcher of `cfg` and hands it to `attach`, which says
/// whether it took it (`EventSink::attach_sinks` attaches it to its events).
pub fn start(
    cfg: SinksConfig,
    context: &Context,
    attach: impl FnOnce(Dispatcher) -> bool,
) -> Result<(), ConfigError> {
    let names: Vec<String> = cfg
        .sinks
        .iter()
        .enumerate()
        .map(|(i, s)| sink_name(s, i))
        .collect();
    let d = Dispatcher::start(cfg, context)?;
    if !attach(d) {
        return Err(ConfigError {
            origin: None,
            message: "sinks are already attached".into(),
        });
    }
    if !names.is_empty() {
        eprintln!("nfguard: alerts go to {}", names.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_document_parses_and_defaults_fill_the_rest() {
        let c = SinksConfig::parse(
            r#"{"window": "30s", "spool": "/nfguard/spool", "backoff": {"initial": "200ms"},
                "sinks": [{"type": "webhook", "url": "http://soc.example:8080/in", "headers": {"x-token": "t"}},
                          {"type": "falco", "url": "http://falcosidekick.falco:2801/"},
                          {"type": "slack", "name": "oncall", "url": "https://hooks.slack.com/services/T/B/x"},
                          {"type": "kubernetes"},
                          {"type": "webhook", "url": "http://second/"}]}"#,
        )
        .unwrap();
        assert_eq!(c.window, Duration::from_secs(30));
        assert_eq!(c.backoff.initial, Duration::from_millis(200));
        assert_eq!(c.backoff.max, Duration::from_secs(60));
        assert_eq!(c.memory_queue, 1024);
        let names: Vec<String> = c
            .sinks
            .iter()
            .enumerate()
            .map(|(i, s)| sink_name(s, i))
            .collect();
        assert_eq!(
            names,
            ["webhook", "falco-1", "oncall", "kubernetes-3", "webhook-4"]
        );
    }

    #[test]
    fn mistakes_are_named() {
        for (doc, says) in [
            (
                r#"{"sinks": [{"type": "webhok", "url": "http://x/"}]}"#,
                "webhok",
            ),
            (
                r#"{"sinks": [{"type": "webhook", "ur": "http://x/"}]}"#,
                "ur",
            ),
            (
                r#"{"sinks": [{"type": "slack", "url": "hooks.slack.com"}]}"#,
                "http",
            ),
            (r#"{"window": "1 minute"}"#, "1 minute"),
            (
                r#"{"sinks": [{"type": "slack", "url": "http://a/"}, {"type": "webhook", "name": "slack", "url": "http://b/"}]}"#,
                "two sinks",
            ),
        ] {
            let e = SinksConfig::parse(doc).unwrap_err().to_string();
            assert!(e.contains(says), "{doc}: {e}");
        }
    }

    #[test]
    fn the_environment_names_the_document() {
        let env = |k: &str| (k == "NFGUARD_SINKS").then(|| "{\"sinks\": 3}".to_string());
        let e = config_from_env(env).unwrap_err().to_string();
        assert!(e.contains("NFGUARD_SINKS"), "{e}");
        assert!(config_from_env(|_| None).unwrap().is_none());
    }
}
