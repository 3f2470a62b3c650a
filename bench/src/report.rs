//! The JSON report (for comparisons across commits) and the Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

pub const REPORT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub machine: Machine,
    pub syscalls: Option<Syscalls>,
    /// What the keeper's ptrace follower costs (exec and fork latency).
    #[serde(default)]
    pub trace: Option<TraceCost>,
    pub nginx: Option<Server>,
    /// Datagram inspection (issue 15): per-datagram cost and UDP throughput.
    #[serde(default)]
    pub datagrams: Option<Datagrams>,
    pub webhook: Option<Webhook>,
    pub memory: Memory,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub kernel: String,
    pub nproc: usize,
    pub cpu: String,
    pub commit: String,
    pub date: String,
}

/// Per-syscall latency: every configuration ran `rounds` times, interleaved;
/// the samples of all rounds are pooled per (op, config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Syscalls {
    pub rounds: usize,
    pub configs: Vec<String>,
    pub results: Vec<OpResult>,
    /// Events written per configuration (alert/enforce must see none: every call was learned).
    pub events: BTreeMap<String, usize>,
    /// The filter's own cost on unmonitored calls, measured in paired blocks.
    #[serde(default)]
    pub filter_cost: Vec<Paired>,
}

/// Median over pairs of (block median with nfguard's filter / block median without).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub op: String,
    pub pairs: usize,
    pub median_ratio: f64,
    /// The same with a one-instruction `ret ALLOW` filter instead of nfguard's:
    /// what the kernel charges for having any filter at all.
    #[serde(default)]
    pub any_filter_ratio: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpResult {
    pub op: String,
    pub config: String,
    pub summary: Summary,
    /// Median over the native median of the same op.
    pub ratio_native: Option<f64>,
    /// Median over the reference supervisor's median of the same op.
    pub ratio_reference: Option<f64>,
    /// Median over the emulating reference supervisor's median of the same op
    /// (`ref-emulate`: the floor for enforce mode, which emulates too).
    #[serde(default)]
    pub ratio_emulating: Option<f64>,
    /// Median over rounds of (this round's median / native's median in the
    /// same round): less sensitive to drift between rounds than the pooled ratio.
    pub ratio_native_by_round: Option<f64>,
}

impl Syscalls {
    pub fn get(&self, op: &str, config: &str) -> Option<&OpResult> {
        self.results
            .iter()
            .find(|r| r.op == op && r.config == config)
    }
}

/// Exec, fork and thread latency with and without the keeper's ptrace
/// follower, every configuration in the same run, rounds interleaved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceCost {
    pub rounds: usize,
    pub configs: Vec<String>,
    pub results: Vec<TraceResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceResult {
    pub op: String,
    pub config: String,
    pub summary: Summary,
    /// Median over the native median of the same op.
    pub ratio_native: Option<f64>,
    /// For a traced configuration: median over the same mode untraced.
    pub ratio_untraced: Option<f64>,
}

impl TraceCost {
    pub fn get(&self, op: &str, config: &str) -> Option<&TraceResult> {
        self.results
            .iter()
            .find(|r| r.op == op && r.config == config)
    }
}

/// nginx under wrk: medians over rounds, native and enforce interleaved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub tool: String,
    pub rounds: usize,
    pub native: ServerRun,
    pub enforce: ServerRun,
    pub all: Vec<(String, ServerRun)>,
    pub enforce_events: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerRun {
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// UDP sends natively, under enforce with datagram inspection (`inspect`)
/// and without (`off`), interleaved rounds, samples pooled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Datagrams {
    pub rounds: usize,
    pub configs: Vec<DatagramConfig>,
    /// Events written under enforce (none: every peer was learned).
    pub events: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatagramConfig {
    pub config: String,
    /// sendto with its address, back to back: the cost per datagram.
    pub sendto: Summary,
    /// send on a connected socket (sendto with a null address).
    pub connected: Summary,
    /// sendto paced at 3,000 a second (PFCP-like).
    pub pfcp: Summary,
    /// The supervisor's CPU time per datagram of the paced load, and the
    /// share of one CPU it takes at 3,000 a second.
    pub pfcp_supervisor_us_per_datagram: Option<f64>,
    pub pfcp_supervisor_cpu_share: Option<f64>,
    /// 1,400-byte datagrams as fast as they go (GTP-U-like), median over rounds.
    pub blast_datagrams_per_s: f64,
    pub blast_mb_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub levels: Vec<WebhookLevel>,
    pub injected: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WebhookLevel {
    pub clients: usize,
    pub requests: usize,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// CPU time (user+system) the injector spent per request.
    pub server_cpu_us_per_request: Option<f64>,
    /// CPU time the bench's own client spent per request (same machine).
    pub client_cpu_us_per_request: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub model_entries: usize,
    pub supervisor_big_model_kib: Option<u64>,
    pub supervisor_nginx_kib: Option<u64>,
    pub injector_kib: Option<u64>,
    pub launcher_bytes: Option<u64>,
    pub sidecar_image_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub holds: Option<bool>,
}

fn us(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0}", ns / 1000.0)
    } else if ns >= 10_000.0 {
        format!("{:.1}", ns / 1000.0)
    } else {
        format!("{:.2}", ns / 1000.0)
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into())
}

fn kib(k: Option<u64>) -> String {
    k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_else(|| "not measured".into())
}

/// The ptrace follower's cost: one row per op, one column per configuration.
fn render_trace(s: &mut String, t: &TraceCost) {
    let _ = writeln!(
        s,
        "The keeper's ptrace follower: latency in microseconds, median / p99 ({} interleaved rounds, samples pooled). Ratios: over native (xN) and, traced, over the same mode untraced (xU).\n",
        t.rounds
    );
    let mut header = "| op |".to_string();
    let mut rule = "| --- |".to_string();
    for c in &t.configs {
        let _ = write!(header, " {c} |");
        rule.push_str(" --- |");
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let mut ops: Vec<&str> = Vec::new();
    for x in &t.results {
        if !ops.contains(&x.op.as_str()) {
            ops.push(&x.op);
        }
    }
    for op in ops {
        let _ = write!(s, "| {op} |");
        for c in &t.configs {
            match t.get(op, c) {
                Some(x) => {
                    let mut cell =
                        format!("{} / {}", us(x.summary.median_ns), us(x.summary.p99_ns));
                    if c != "native" {
                        let _ = write!(cell, " ({}N", ratio(x.ratio_native).trim_end_matches('x'));
                        if let Some(u) = x.ratio_untraced {
                            let _ = write!(cell, ", {}U", ratio(Some(u)).trim_end_matches('x'));
                        }
                        cell.push(')');
                    }
                    let _ = write!(s, " {cell} |");
                }
                None => s.push_str(" - |"),
            }
        }
        s.push('\n');
    }
    s.push('\n');
}

/// The report as Markdown tables.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(
        s,
        "Machine: {} ({} CPUs), kernel {}, commit {}, {}.\n",
        m.cpu, m.nproc, m.kernel, m.commit, m.date
    );
    if let Some(sc) = &r.syscalls {
        let n = sc.results.first().map(|x| x.summary.n).unwrap_or(0);
        let _ = writeln!(
            s,
            "Per-syscall latency, microseconds, median / p99 ({} interleaved rounds; samples pooled, e.g. {} for the first op). Ratios: median over native (xN), over the reference supervisor (xR) and, for enforce, over the emulating reference (xE).\n",
            sc.rounds, n
        );
        let mut header = "| op |".to_string();
        let mut rule = "| --- |".to_string();
        for c in &sc.configs {
            let _ = write!(header, " {c} |");
            rule.push_str(" --- |");
        }
        let _ = writeln!(s, "{header}\n{rule}");
        let mut ops: Vec<&str> = Vec::new();
        for x in &sc.results {
            if !ops.contains(&x.op.as_str()) {
                ops.push(&x.op);
            }
        }
        for op in ops {
            let _ = write!(s, "| {op} |");
            for c in &sc.configs {
                match sc.get(op, c) {
                    Some(x) => {
                        let mut cell =
                            format!("{} / {}", us(x.summary.median_ns), us(x.summary.p99_ns));
                        if c != "native" {
                            let _ =
                                write!(cell, " ({}N", ratio(x.ratio_native).trim_end_matches('x'));
                            if c != "reference" && x.ratio_reference.is_some() {
                                let _ = write!(
                                    cell,
                                    ", {}R",
                                    ratio(x.ratio_reference).trim_end_matches('x')
                                );
                            }
                            if c == "enforce" && x.ratio_emulating.is_some() {
                                let _ = write!(
                                    cell,
                                    ", {}E",
                                    ratio(x.ratio_emulating).trim_end_matches('x')
                                );
                            }
                            cell.push(')');
                        }
                        let _ = write!(s, " {cell} |");
                    }
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        if !sc.filter_cost.is_empty() {
            let f: Vec<String> = sc
                .filter_cost
                .iter()
                .map(|p| {
                    let any = p
                        .any_filter_ratio
                        .map(|a| format!("; a one-instruction filter: {a:.3}x"))
                        .unwrap_or_default();
                    format!("{} {:.3}x ({} pairs{any})", p.op, p.median_ratio, p.pairs)
                })
                .collect();
            let _ = writeln!(
                s,
                "\nThe filter's own cost on unmonitored calls, paired 2,000-call blocks with and without it, alternating: {}.",
                f.join(", ")
            );
        }
        let ev: Vec<String> = sc.events.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(s, "\nEvents written during the runs: {}.\n", ev.join(", "));
    }
    if let Some(t) = &r.trace {
        render_trace(&mut s, t);
    }
    if let Some(d) = &r.datagrams {
        let _ = writeln!(
            s,
            "UDP datagrams to a learned peer on 127.0.0.1 ({} interleaved rounds; latency in microseconds, median / p99; `inspect` and `off` are enforce mode with and without datagram inspection):\n\n| config | sendto with an address | connected send | PFCP-like, 3,000/s | supervisor CPU per datagram, and share of a CPU at 3,000/s | GTP-U-like blast, 1,400 B |\n| --- | --- | --- | --- | --- | --- |",
            d.rounds
        );
        for c in &d.configs {
            let cpu = match (
                c.pfcp_supervisor_us_per_datagram,
                c.pfcp_supervisor_cpu_share,
            ) {
                (Some(u), Some(sh)) => format!("{u:.1} us, {:.1}%", sh * 100.0),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} / {} | {} / {} | {} / {} | {cpu} | {:.0}/s, {:.0} MB/s |",
                c.config,
                us(c.sendto.median_ns),
                us(c.sendto.p99_ns),
                us(c.connected.median_ns),
                us(c.connected.p99_ns),
                us(c.pfcp.median_ns),
                us(c.pfcp.p99_ns),
                c.blast_datagrams_per_s,
                c.blast_mb_per_s
            );
        }
        let _ = writeln!(s, "\nEvents written under enforce: {}.\n", d.events);
    }
    if let Some(n) = &r.nginx {
        let _ = writeln!(
            s,
            "nginx 1 worker, `{}` ({} rounds each, interleaved, medians):\n\n| config | requests/s | p50 | p99 |\n| --- | --- | --- | --- |",
            n.tool, n.rounds
        );
        for (name, x) in [("native", &n.native), ("enforce", &n.enforce)] {
            let _ = writeln!(
                s,
                "| {name} | {:.0} | {:.3} ms | {:.3} ms |",
                x.requests_per_s, x.p50_ms, x.p99_ms
            );
        }
        let _ = writeln!(
            s,
            "| enforce / native | {:.3} | {:.3} | {:.3} |\n",
            n.enforce.requests_per_s / n.native.requests_per_s,
            n.enforce.p50_ms / n.native.p50_ms,
            n.enforce.p99_ms / n.native.p99_ms
        );
    }
    if let Some(w) = &r.webhook {
        let _ = writeln!(
            s,
            "Webhook (`nfguard-injector serve`, HTTPS, keep-alive, oai-smf pod, patch returned: {}):\n\n| clients | requests | requests/s | p50 | p99 | injector CPU per request | client CPU per request |\n| --- | --- | --- | --- | --- | --- | --- |",
            w.injected
        );
        for l in &w.levels {
            let _ = writeln!(
                s,
                "| {} | {} | {:.0} | {:.3} ms | {:.3} ms | {} | {} |",
                l.clients,
                l.requests,
                l.requests_per_s,
                l.p50_ms,
                l.p99_ms,
                l.server_cpu_us_per_request
                    .map(|x| format!("{x:.0} us"))
                    .unwrap_or_else(|| "-".into()),
                l.client_cpu_us_per_request
                    .map(|x| format!("{x:.0} us"))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        s.push('\n');
    }
    let mem = &r.memory;
    let _ = writeln!(
        s,
        "Memory and size: supervisor peak RSS with a {}-entry model {}; with nginx's model under load {}; injector under the webhook load {}; static launcher {}; sidecar image {}.\n",
        mem.model_entries,
        kib(mem.supervisor_big_model_kib),
        kib(mem.supervisor_nginx_kib),
        kib(mem.injector_kib),
        mem.launcher_bytes.map(|b| format!("{:.0} KiB", b as f64 / 1024.0)).unwrap_or_else(|| "not built".into()),
        mem.sidecar_image_bytes.map(|b| format!("{:.1} MiB", b as f64 / 1048576.0)).unwrap_or_else(|| "not built".into()),
    );
    if !r.targets.is_empty() {
        let _ = writeln!(
            s,
            "| target | goal | measured | holds |\n| --- | --- | --- | --- |"
        );
        for t in &r.targets {
            let h = match t.holds {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            };
            let _ = writeln!(s, "| {} | {} | {} | {} |", t.name, t.target, t.measured, h);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Report {
        let sum = Summary {
            n: 10,
            median_ns: 800.0,
            p99_ns: 1500.0,
        };
        Report {
            version: REPORT_VERSION,
            machine: Machine {
                kernel: "6.18".into(),
                nproc: 2,
                cpu: "x".into(),
                commit: "abc".into(),
                date: "today".into(),
            },
            syscalls: Some(Syscalls {
                rounds: 3,
                configs: vec!["native".into(), "enforce".into()],
                results: vec![
                    OpResult {
                        op: "getppid".into(),
                        config: "native".into(),
                        summary: sum,
                        ratio_native: Some(1.0),
                        ratio_reference: None,
                        ratio_emulating: None,
                        ratio_native_by_round: Some(1.0),
                    },
                    OpResult {
                        op: "getppid".into(),
                        config: "enforce".into(),
                        summary: sum,
                        ratio_native: Some(1.01),
                        ratio_reference: Some(0.5),
                        ratio_emulating: None,
                        ratio_native_by_round: Some(1.02),
                    },
                ],
                events: BTreeMap::from([("enforce".to_string(), 0)]),
                filter_cost: vec![Paired {
                    op: "getppid".into(),
                    pairs: 20,
                    median_ratio: 1.004,
                    any_filter_ratio: Some(1.003),
                }],
            }),
            trace: Some(TraceCost {
                rounds: 2,
                configs: vec!["native".into(), "learn".into(), "learn-traced".into()],
                results: vec![
                    TraceResult {
                        op: "fork".into(),
                        config: "native".into(),
                        summary: sum,
                        ratio_native: Some(1.0),
                        ratio_untraced: None,
                    },
                    TraceResult {
                        op: "fork".into(),
                        config: "learn-traced".into(),
                        summary: sum,
                        ratio_native: Some(2.5),
                        ratio_untraced: Some(2.0),
                    },
                ],
            }),
            datagrams: Some(Datagrams {
                rounds: 1,
                configs: vec![DatagramConfig {
                    config: "inspect".into(),
                    sendto: sum,
                    connected: sum,
                    pfcp: sum,
                    pfcp_supervisor_us_per_datagram: Some(12.0),
                    pfcp_supervisor_cpu_share: Some(0.036),
                    blast_datagrams_per_s: 30000.0,
                    blast_mb_per_s: 42.0,
                }],
                events: 0,
            }),
            nginx: Some(Server {
                tool: "wrk".into(),
                rounds: 1,
                native: ServerRun {
                    requests_per_s: 100.0,
                    p50_ms: 0.1,
                    p99_ms: 1.0,
                },
                enforce: ServerRun {
                    requests_per_s: 99.0,
                    p50_ms: 0.1,
                    p99_ms: 1.1,
                },
                all: vec![],
                enforce_events: 0,
            }),
            webhook: None,
            memory: Memory {
                model_entries: 10_000,
                supervisor_big_model_kib: Some(9000),
                ..Memory::default()
            },
            targets: vec![Target {
                name: "t".into(),
                target: "<1".into(),
                measured: "0.5".into(),
                holds: Some(true),
            }],
        }
    }

    #[test]
    fn report_round_trips_through_json_and_renders() {
        let r = sample();
        let text = serde_json::to_string_pretty(&r).unwrap();
        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        let table = render(&r);
        assert!(
            table.contains("| getppid | 0.80 / 1.50 | 0.80 / 1.50 (1.01N, 0.50R) |"),
            "{table}"
        );
        assert!(table.contains("| enforce / native | 0.990 |"), "{table}");
        assert!(
            table.contains("| fork | 0.80 / 1.50 | - | 0.80 / 1.50 (2.50N, 2.00U) |"),
            "{table}"
        );
        assert!(table.contains("8.8 MiB"), "{table}");
        assert!(table.contains("| inspect | 0.80 / 1.50 |"), "{table}");
        assert!(table.contains("12.0 us, 3.6%"), "{table}");
    }
}
