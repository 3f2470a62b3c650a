//! `nfguard-bench`: runs every benchmark of issue 5 and writes the JSON report
//! and a Markdown table. See docs/benchmarks.md.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use nfguard_bench::report::{
    self, DatagramConfig, Datagrams, Machine, Memory, OpResult, Report, Server, ServerRun,
    Syscalls, Target, TraceCost, TraceResult, Webhook, WebhookLevel,
};
use nfguard_bench::{refsup, stats, wire, wrk};

#[derive(Parser, Debug)]
#[command(about = "What nfguard costs a network function")]
struct Args {
    /// JSON report.
    #[arg(long, default_value = "bench-results.json")]
    out: PathBuf,
    /// Markdown table (also printed).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Interleaved rounds per syscall configuration.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Interleaved rounds per ptrace-follower configuration.
    #[arg(long, default_value_t = 5)]
    trace_rounds: usize,
    /// Interleaved rounds per nginx configuration.
    #[arg(long, default_value_t = 3)]
    nginx_rounds: usize,
    /// Multiplies every iteration count (0.1 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Seconds of wrk load per nginx round.
    #[arg(long, default_value_t = 10)]
    nginx_seconds: u64,
    /// Seconds of load per webhook concurrency level.
    #[arg(long, default_value_t = 5)]
    webhook_seconds: u64,
    /// Parts to skip: syscalls, trace, nginx, datagrams, webhook, memory.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Where nfguard, nfguard-launch, nfguard-injector and the bench binaries are
    /// (default: beside this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Run one command under the reference supervisor and exit with its status.
    #[arg(long, num_args = 1.., allow_hyphen_values = true)]
    refsup: Option<Vec<String>>,
}

struct Bins {
    nfguard: PathBuf,
    launcher: PathBuf,
    injector: PathBuf,
    load: PathBuf,
    nop: PathBuf,
}

impl Bins {
    fn find(dir: &Path) -> Result<Bins> {
        let b = Bins {
            nfguard: dir.join("nfguard"),
            launcher: dir.join("nfguard-launch"),
            injector: dir.join("nfguard-injector"),
            load: dir.join("nfguard-bench-load"),
            nop: dir.join("nfguard-bench-nop"),
        };
        for p in [&b.nfguard, &b.launcher, &b.load, &b.nop] {
            if !p.is_file() {
                bail!(
                    "{} is missing: build with `cargo build --release --bins` (scripts/bench does)",
                    p.display()
                );
            }
        }
        Ok(b)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(cmd) = &args.refsup {
        let argv: Vec<CString> = cmd
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<_, _>>()?;
        let out = refsup::run(&argv, None, refsup::Answer::Continue)?;
        eprintln!(
            "nfguard-bench: reference supervisor answered {} notifications",
            out.notifications
        );
        std::process::exit(out.exit_code());
    }
    let dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no exe dir")?
            .to_path_buf(),
    };
    let bins = Bins::find(&dir)?;
    let skip = |s: &str| args.skip.iter().any(|x| x == s);
    let mut report = Report {
        version: report::REPORT_VERSION,
        machine: machine(),
        syscalls: None,
        trace: None,
        nginx: None,
        datagrams: None,
        webhook: None,
        memory: Memory::default(),
        targets: Vec::new(),
    };
    if !skip("syscalls") {
        report.syscalls = Some(syscalls(&args, &bins).context("syscall latency")?);
        partial(&args, &report)?;
    }
    if !skip("trace") {
        report.trace = Some(trace_cost(&args, &bins).context("ptrace follower")?);
        partial(&args, &report)?;
    }
    if !skip("nginx") {
        match nginx(&args, &bins, &mut report.memory) {
            Ok(n) => report.nginx = Some(n),
            Err(e) => eprintln!("nfguard-bench: nginx skipped: {e:#}"),
        }
        partial(&args, &report)?;
    }
    if !skip("datagrams") {
        report.datagrams = Some(datagrams(&args, &bins).context("datagrams")?);
        partial(&args, &report)?;
    }
    if !skip("webhook") {
        match webhook(&args, &bins, &mut report.memory) {
            Ok(w) => report.webhook = Some(w),
            Err(e) => eprintln!("nfguard-bench: webhook skipped: {e:#}"),
        }
        partial(&args, &report)?;
    }
    if !skip("memory") {
        memory(&bins, &mut report.memory).context("memory")?;
    }
    report.targets = targets(&report);
    partial(&args, &report)?;
    let table = report::render(&report);
    println!("{table}");
    if let Some(md) = &args.markdown {
        std::fs::write(md, &table)?;
    }
    eprintln!("nfguard-bench: wrote {}", args.out.display());
    Ok(())
}

/// Writes the report so far (a long run that fails late keeps what it measured).
fn partial(args: &Args, r: &Report) -> Result<()> {
    let text = serde_json::to_string_pretty(r)? + "\n";
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))
}

fn sh(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    Machine {
        kernel: sh("uname", &["-r"]).unwrap_or_default(),
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu,
        commit: sh("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        date: sh("date", &["-u", "+%Y-%m-%dT%H:%MZ"]).unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- syscalls

const CONFIGS: &[&str] = &[
    "native",
    "reference",
    "ref-emulate",
    "learn",
    "alert",
    "enforce",
    "strace",
];

/// Accepts and drops connections on 127.0.0.1 forever; returns the port.
fn sink_listener() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    Ok(port)
}

fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_checked(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd.output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(output_text(&out))
}

fn count_lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count())
        .unwrap_or(0)
}

fn syscalls(args: &Args, bins: &Bins) -> Result<Syscalls> {
    let tmp = tempfile::Builder::new().prefix("nfguard-bench").tempdir()?;
    let d = tmp.path();
    let port = sink_listener()?;
    let n = |base: usize| ((base as f64 * args.scale) as usize).max(10);
    let ops: Vec<(&str, usize)> = vec![
        ("clock", n(20_000)),
        ("getppid", n(20_000)),
        ("open-ro", n(20_000)),
        ("openat-write", n(5_000)),
        ("connect", n(2_000)),
        ("execve", n(300)),
    ];
    // Paired filter cost (native configuration only: the op installs the filter itself).
    let paired: Vec<(&str, usize)> = vec![
        ("ab-getppid", n(200).clamp(10, 200)),
        ("ab-open-ro", n(200).clamp(10, 200)),
    ];
    let spec: Vec<String> = ops.iter().map(|(o, k)| format!("{o}:{k}")).collect();
    let load_args: Vec<String> = vec![
        "--dir".into(),
        d.display().to_string(),
        "--port".into(),
        port.to_string(),
        "--nop".into(),
        bins.nop.display().to_string(),
        "--ops".into(),
        spec.join(","),
    ];
    let model = d.join("model.json");
    let learn_model = d.join("model-learn.json");
    let nfguard = |mode: &str, model: &Path, events: &Path| {
        let mut c = Command::new(&bins.nfguard);
        c.args(["run", "--mode", mode, "--model"])
            .arg(model)
            .arg("--events")
            .arg(events)
            .arg("--launcher")
            .arg(&bins.launcher)
            .arg("--")
            .arg(&bins.load)
            .args(&load_args);
        c
    };
    eprintln!("nfguard-bench: learning the load binary's model");
    run_checked(
        nfguard("learn", &model, &d.join("learn0.jsonl")),
        "nfguard run --mode learn",
    )?;
    std::fs::copy(&model, &learn_model)?;
    let mut pooled: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    let mut paired_ppm: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    // (op, config) -> the median of each round.
    let mut by_round: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for round in 0..args.rounds {
        for k in 0..CONFIGS.len() {
            // Rotate the order each round so no configuration always runs first.
            let cfg = CONFIGS[(k + round) % CONFIGS.len()];
            eprintln!(
                "nfguard-bench: syscalls round {}/{} {cfg}",
                round + 1,
                args.rounds
            );
            let text = match cfg {
                "native" => {
                    let native = run_checked(
                        {
                            let mut c = Command::new(&bins.load);
                            c.args(&load_args);
                            c
                        },
                        "load (native)",
                    )?;
                    let spec: Vec<String> =
                        paired.iter().map(|(o, k)| format!("{o}:{k}")).collect();
                    let mut ab_args = load_args.clone();
                    *ab_args.last_mut().expect("ops") = spec.join(",");
                    // nfguard's filter, then a one-instruction `ret ALLOW`: the
                    // kernel's fixed cost of having any filter at all.
                    for filter in ["nfguard", "allow"] {
                        let ab = run_checked(
                            {
                                let mut c = Command::new(&bins.load);
                                c.args(&ab_args).args(["--ab-filter", filter]);
                                c
                            },
                            "load (paired filter cost)",
                        )?;
                        for (op, s) in wire::parse(&ab)? {
                            let key = if filter == "allow" {
                                format!("allow:{op}")
                            } else {
                                op
                            };
                            paired_ppm.entry(key).or_default().extend(s);
                        }
                    }
                    native
                }
                "reference" | "ref-emulate" => {
                    let answer = if cfg == "reference" {
                        refsup::Answer::Continue
                    } else {
                        refsup::Answer::Emulate
                    };
                    let mut argv = vec![CString::new(bins.load.as_os_str().as_bytes())?];
                    for a in &load_args {
                        argv.push(CString::new(a.as_str())?);
                    }
                    let (r, w) = nfguard_bench::sys::pipe()?;
                    let reader = std::thread::spawn(move || {
                        let mut s = String::new();
                        let _ = std::fs::File::from(r).read_to_string(&mut s);
                        s
                    });
                    let out = refsup::run(&argv, Some(w), answer)?;
                    let text = reader.join().unwrap_or_default();
                    if out.exit_code() != 0 {
                        bail!(
                            "load under the reference supervisor exited {}",
                            out.exit_code()
                        );
                    }
                    text
                }
                "learn" => run_checked(
                    nfguard("learn", &learn_model, &d.join("learn.jsonl")),
                    "load (learn)",
                )?,
                "alert" => run_checked(
                    nfguard("alert", &model, &d.join("alert.jsonl")),
                    "load (alert)",
                )?,
                "enforce" => run_checked(
                    nfguard("enforce", &model, &d.join("enforce.jsonl")),
                    "load (enforce)",
                )?,
                "strace" => run_checked(
                    {
                        let mut c = Command::new("strace");
                        c.args(["-f", "-qq", "-o", "/dev/null"])
                            .arg(&bins.load)
                            .args(&load_args);
                        c
                    },
                    "load (strace)",
                )?,
                _ => unreachable!(),
            };
            let want: Vec<&str> = ops.iter().map(|(o, _)| *o).collect();
            let samples =
                wire::parse_expecting(&text, &want).with_context(|| format!("config {cfg}"))?;
            for (op, s) in samples {
                by_round
                    .entry((op.clone(), cfg.to_string()))
                    .or_default()
                    .push(stats::summarize(&s).median_ns);
                pooled.entry((op, cfg.to_string())).or_default().extend(s);
            }
        }
    }
    let mut results = Vec::new();
    for (op, _) in &ops {
        let med = |cfg: &str| {
            pooled
                .get(&(op.to_string(), cfg.to_string()))
                .map(|s| stats::summarize(s))
        };
        let native = med("native");
        let reference = med("reference");
        let emulating = med("ref-emulate");
        let rounds_of = |cfg: &str| {
            by_round
                .get(&(op.to_string(), cfg.to_string()))
                .cloned()
                .unwrap_or_default()
        };
        let native_rounds = rounds_of("native");
        for cfg in CONFIGS {
            let Some(summary) = med(cfg) else { continue };
            let ratios: Vec<f64> = rounds_of(cfg)
                .iter()
                .zip(&native_rounds)
                .map(|(a, b)| a / b)
                .collect();
            results.push(OpResult {
                op: op.to_string(),
                config: cfg.to_string(),
                summary,
                ratio_native: native.map(|n| summary.median_ns / n.median_ns),
                ratio_reference: reference.map(|r| summary.median_ns / r.median_ns),
                ratio_emulating: emulating.map(|r| summary.median_ns / r.median_ns),
                ratio_native_by_round: (!ratios.is_empty()).then(|| stats::median_f64(&ratios)),
            });
        }
    }
    let mut events = BTreeMap::new();
    for m in ["alert", "enforce"] {
        events.insert(m.to_string(), count_lines(&d.join(format!("{m}.jsonl"))));
    }
    let filter_cost = paired_ppm
        .iter()
        .filter(|(op, _)| !op.starts_with("allow:"))
        .map(|(op, ppm)| {
            let s = stats::summarize(ppm);
            let allow = paired_ppm
                .get(&format!("allow:{op}"))
                .map(|a| stats::summarize(a).median_ns / 1e6);
            report::Paired {
                op: op.trim_start_matches("ab-").to_string(),
                pairs: s.n,
                median_ratio: s.median_ns / 1e6,
                any_filter_ratio: allow,
            }
        })
        .collect();
    Ok(Syscalls {
        filter_cost,
        rounds: args.rounds,
        configs: CONFIGS.iter().map(|s| s.to_string()).collect(),
        results,
        events,
    })
}

// ---------------------------------------------------------------- trace

/// The ptrace follower's configurations: the same supervisor and launcher,
/// the keeper tracing the workload (`-traced`) or not (`--no-trace`).
const TRACE_CONFIGS: &[&str] = &[
    "native",
    "learn",
    "learn-traced",
    "enforce",
    "enforce-traced",
];

/// Exec, fork and thread latency with and without the keeper's ptrace
/// follower (issue 11: the cost of exec verification), in one run.
fn trace_cost(args: &Args, bins: &Bins) -> Result<TraceCost> {
    let tmp = tempfile::Builder::new()
        .prefix("nfguard-bench-trace")
        .tempdir()?;
    let d = tmp.path();
    let n = |base: usize| ((base as f64 * args.scale) as usize).max(10);
    let ops: Vec<(&str, usize)> =
        vec![("fork", n(2_000)), ("thread", n(2_000)), ("execve", n(300))];
    let spec: Vec<String> = ops.iter().map(|(o, k)| format!("{o}:{k}")).collect();
    let load_args: Vec<String> = vec![
        "--dir".into(),
        d.display().to_string(),
        "--nop".into(),
        bins.nop.display().to_string(),
        "--ops".into(),
        spec.join(","),
    ];
    let model = d.join("model.json");
    let nfguard = |cfg: &str| {
        let (mode, traced) = match cfg.split_once('-') {
            Some((m, _)) => (m, true),
            None => (cfg, false),
        };
        let mut c = Command::new(&bins.nfguard);
        c.args(["run", "--mode", mode, "--model"])
            .arg(&model)
            .arg("--events")
            .arg(d.join(format!("{cfg}.jsonl")))
            .arg("--launcher")
            .arg(&bins.launcher);
        if !traced {
            c.arg("--no-trace");
        }
        c.arg("--").arg(&bins.load).args(&load_args);
        c
    };
    eprintln!("nfguard-bench: trace: learning the load binary's model");
    // Learned traced and untraced alike (the same calls either way).
    run_checked(nfguard("learn-traced"), "nfguard run --mode learn")?;
    let learned = d.join("learned.json");
    std::fs::copy(&model, &learned)?;
    let mut pooled: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for round in 0..args.trace_rounds {
        for k in 0..TRACE_CONFIGS.len() {
            let cfg = TRACE_CONFIGS[(k + round) % TRACE_CONFIGS.len()];
            eprintln!(
                "nfguard-bench: trace round {}/{} {cfg}",
                round + 1,
                args.trace_rounds
            );
            // Learning runs start from the same model each time.
            std::fs::copy(&learned, &model)?;
            let text = if cfg == "native" {
                let mut c = Command::new(&bins.load);
                c.args(&load_args);
                run_checked(c, "load (native)")?
            } else {
                run_checked(nfguard(cfg), &format!("load ({cfg})"))?
            };
            let want: Vec<&str> = ops.iter().map(|(o, _)| *o).collect();
            for (op, s) in
                wire::parse_expecting(&text, &want).with_context(|| format!("config {cfg}"))?
            {
                pooled.entry((op, cfg.to_string())).or_default().extend(s);
            }
        }
    }
    for cfg in ["enforce", "enforce-traced"] {
        let events = count_lines(&d.join(format!("{cfg}.jsonl")));
        if events != 0 {
            bail!("{cfg} wrote {events} events: the load's calls were not all learned");
        }
    }
    let mut results = Vec::new();
    for (op, _) in &ops {
        let med = |cfg: &str| {
            pooled
                .get(&(op.to_string(), cfg.to_string()))
                .map(|s| stats::summarize(s))
        };
        let native = med("native");
        for cfg in TRACE_CONFIGS {
            let Some(summary) = med(cfg) else { continue };
            let untraced = cfg.strip_suffix("-traced").and_then(&med);
            results.push(TraceResult {
                op: op.to_string(),
                config: cfg.to_string(),
                summary,
                ratio_native: native.map(|n| summary.median_ns / n.median_ns),
                ratio_untraced: untraced.map(|u| summary.median_ns / u.median_ns),
            });
        }
    }
    Ok(TraceCost {
        rounds: args.trace_rounds,
        configs: TRACE_CONFIGS.iter().map(|s| s.to_string()).collect(),
        results,
    })
}

// ---------------------------------------------------------------- nginx

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(st) = child.try_wait()? {
            bail!("{what} exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within 15 s")
}

fn stop(child: &mut Child) {
    let _ = nfguard_bench::sys::kill(child.id() as i32, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// VmHWM of `pid` in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn wrk(port: u16, seconds: u64) -> Result<ServerRun> {
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = output_text(&out);
    if let Some(e) = wrk::errors(&text) {
        bail!("wrk reported errors: {e}");
    }
    wrk::parse(&text).with_context(|| format!("cannot read wrk output: {text}"))
}

fn nginx(args: &Args, bins: &Bins, mem: &mut Memory) -> Result<Server> {
    let nginx_bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("nginx not installed (apt-get install nginx-light)")?;
    let tmp = tempfile::Builder::new()
        .prefix("nfguard-bench-nginx")
        .tempdir()?;
    let t = tmp.path();
    use std::os::unix::fs::PermissionsExt;
    // nginx's workers run as nobody: they must be able to read the document root.
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755))?;
    std::fs::create_dir_all(t.join("html"))?;
    std::fs::write(
        t.join("html/index.html"),
        "<html><body>".to_string() + &"nfguard ".repeat(75) + "</body></html>\n",
    )?;
    let port = free_port()?;
    let p = t.display();
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n  fastcgi_temp_path {p}/fastcgi;\n\
           server {{ listen 127.0.0.1:{port}; root {p}/html; location / {{ }} }}\n}}\n"
    );
    std::fs::write(t.join("nginx.conf"), conf)?;
    let nginx_args: Vec<String> = vec![
        "-p".into(),
        format!("{p}/"),
        "-c".into(),
        format!("{p}/nginx.conf"),
        "-e".into(),
        format!("{p}/error.log"),
    ];
    let model = t.join("nginx-model.json");
    let start = |mode: Option<&str>, events: &Path| -> Result<Child> {
        let mut c = match mode {
            None => Command::new(&nginx_bin),
            Some(m) => {
                let mut c = Command::new(&bins.nfguard);
                c.args(["run", "--mode", m, "--model"])
                    .arg(&model)
                    .arg("--events")
                    .arg(events)
                    .arg("--launcher")
                    .arg(&bins.launcher)
                    .arg("--")
                    .arg(&nginx_bin);
                c
            }
        };
        c.args(&nginx_args).stdout(Stdio::null());
        Ok(c.spawn()?)
    };
    eprintln!("nfguard-bench: nginx: learning under load");
    let mut learn = start(Some("learn"), &t.join("learn.jsonl"))?;
    wait_port(port, &mut learn, "nginx under nfguard learn")?;
    wrk(port, 2)?;
    stop(&mut learn);
    if !model.is_file() {
        bail!("learning nginx wrote no model");
    }
    let mut all = Vec::new();
    let enforce_events = t.join("enforce.jsonl");
    for round in 0..args.nginx_rounds {
        for k in 0..2 {
            let cfg = if (k + round) % 2 == 0 {
                "native"
            } else {
                "enforce"
            };
            eprintln!(
                "nfguard-bench: nginx round {}/{} {cfg}",
                round + 1,
                args.nginx_rounds
            );
            let mut child = start((cfg == "enforce").then_some("enforce"), &enforce_events)?;
            wait_port(port, &mut child, &format!("nginx ({cfg})"))?;
            let r = wrk(port, args.nginx_seconds);
            if cfg == "enforce" {
                let k = vm_hwm_kib(child.id());
                mem.supervisor_nginx_kib = mem.supervisor_nginx_kib.max(k);
            }
            stop(&mut child);
            all.push((cfg.to_string(), r?));
        }
    }
    let med = |cfg: &str, f: fn(&ServerRun) -> f64| {
        stats::median_f64(
            &all.iter()
                .filter(|(c, _)| c == cfg)
                .map(|(_, r)| f(r))
                .collect::<Vec<_>>(),
        )
    };
    let pick = |cfg: &str| ServerRun {
        requests_per_s: med(cfg, |r| r.requests_per_s),
        p50_ms: med(cfg, |r| r.p50_ms),
        p99_ms: med(cfg, |r| r.p99_ms),
    };
    Ok(Server {
        tool: format!("wrk -t1 -c32 -d{}s --latency", args.nginx_seconds),
        rounds: args.nginx_rounds,
        native: pick("native"),
        enforce: pick("enforce"),
        all,
        enforce_events: count_lines(&enforce_events),
    })
}

// ---------------------------------------------------------------- datagrams

/// A UDP receiver on 127.0.0.1 that drains everything sent to it; returns
/// its port.
fn udp_sink() -> Result<u16> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let _ = nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBuf, &(8 << 20));
    let port = sock.local_addr()?.port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while sock.recv(&mut buf).is_ok() {}
    });
    Ok(port)
}

/// What nfguard costs a UDP sender (issue 15): per datagram with a
/// destination, on a connected socket, at a PFCP-like 3,000 a second (with
/// the supervisor's CPU time), and a GTP-U-like blaster's throughput;
/// natively, and in enforce mode with datagram inspection on and off.
fn datagrams(args: &Args, bins: &Bins) -> Result<Datagrams> {
    let tmp = tempfile::Builder::new()
        .prefix("nfguard-bench-udp")
        .tempdir()?;
    let d = tmp.path();
    let port = udp_sink()?;
    let n = |base: usize| ((base as f64 * args.scale) as usize).max(10);
    let (lat, pfcp, blast_ms) = (n(5000), n(9000), n(3000));
    let load = |ops: &str| -> Vec<String> {
        vec![
            "--dir".into(),
            d.display().to_string(),
            "--udp-port".into(),
            port.to_string(),
            "--nop".into(),
            bins.nop.display().to_string(),
            "--ops".into(),
            ops.into(),
        ]
    };
    let model = d.join("model.json");
    let events = d.join("enforce.jsonl");
    let command = |cfg: &str, ops: &str| {
        let mut c = match cfg {
            "native" => Command::new(&bins.load),
            mode => {
                let (mode, datagrams) = match mode {
                    "learn" => ("learn", "inspect"),
                    other => ("enforce", other),
                };
                let mut c = Command::new(&bins.nfguard);
                c.args(["run", "--mode", mode, "--datagrams", datagrams, "--model"])
                    .arg(&model)
                    .arg("--events")
                    .arg(&events)
                    .arg("--launcher")
                    .arg(&bins.launcher)
                    .arg("--")
                    .arg(&bins.load);
                c
            }
        };
        c.args(load(ops));
        c
    };
    eprintln!("nfguard-bench: datagrams: learning the sender's peer");
    run_checked(
        command("learn", "udp-sendto:10,udp-connected:10"),
        "udp learn",
    )?;
    const CONFIGS: [&str; 3] = ["native", "inspect", "off"];
    let mut pooled: BTreeMap<(&str, &str), Vec<u64>> = BTreeMap::new();
    let mut cpu: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    let mut blast: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 0..args.rounds {
        for k in 0..CONFIGS.len() {
            let cfg = CONFIGS[(k + round) % CONFIGS.len()];
            eprintln!(
                "nfguard-bench: datagrams round {}/{} {cfg}",
                round + 1,
                args.rounds
            );
            let text = run_checked(
                command(cfg, &format!("udp-sendto:{lat},udp-connected:{lat}")),
                "udp latency",
            )?;
            for (op, samples) in wire::parse_expecting(&text, &["udp-sendto", "udp-connected"])? {
                let op = if op == "udp-sendto" {
                    "sendto"
                } else {
                    "connected"
                };
                pooled.entry((cfg, op)).or_default().extend(samples);
            }
            // The paced load: the supervisor's CPU time (nfguard run's own
            // process: the supervisor's threads) sampled until it exits.
            let mut child = command(cfg, &format!("udp-pfcp:{pfcp},sleep:300"))
                .stdout(Stdio::piped())
                .spawn()?;
            let pid = child.id();
            let started = Instant::now();
            let mut out = String::new();
            let mut stdout = child.stdout.take().context("stdout")?;
            let reader = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = stdout.read_to_string(&mut s);
                s
            });
            let mut last_cpu = None;
            while child.try_wait()?.is_none() {
                if let Some(c) = cpu_us(pid) {
                    last_cpu = Some(c);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let wall = started.elapsed().as_secs_f64();
            out.push_str(&reader.join().unwrap_or_default());
            let samples = wire::parse_expecting(&out, &["udp-pfcp"])?;
            pooled
                .entry((cfg, "pfcp"))
                .or_default()
                .extend(samples.into_values().flatten());
            if cfg != "native" {
                if let Some(c) = last_cpu {
                    cpu.entry(cfg)
                        .or_default()
                        .push((c / pfcp as f64, c / 1e6 / wall));
                }
            }
            let text = run_checked(command(cfg, &format!("udp-blast:{blast_ms}")), "udp blast")?;
            let sent = wire::parse_expecting(&text, &["udp-blast"])?
                .into_values()
                .flatten()
                .next()
                .unwrap_or(0);
            blast
                .entry(cfg)
                .or_default()
                .push(sent as f64 / (blast_ms as f64 / 1000.0));
        }
    }
    let configs = CONFIGS
        .iter()
        .map(|cfg| {
            let sum = |op| stats::summarize(pooled.get(&(*cfg, op)).map_or(&[][..], |v| v));
            let c = cpu.get(cfg);
            let med = |f: fn(&(f64, f64)) -> f64| {
                c.map(|v| stats::median_f64(&v.iter().map(f).collect::<Vec<_>>()))
            };
            let rate = stats::median_f64(blast.get(cfg).map_or(&[][..], |v| v));
            DatagramConfig {
                config: cfg.to_string(),
                sendto: sum("sendto"),
                connected: sum("connected"),
                pfcp: sum("pfcp"),
                pfcp_supervisor_us_per_datagram: med(|x| x.0),
                pfcp_supervisor_cpu_share: med(|x| x.1),
                blast_datagrams_per_s: rate,
                blast_mb_per_s: rate * 1400.0 / 1e6,
            }
        })
        .collect();
    Ok(Datagrams {
        rounds: args.rounds,
        configs,
        events: count_lines(&events),
    })
}

// ---------------------------------------------------------------- webhook

fn review_body() -> Result<Vec<u8>> {
    let yaml = std::fs::read_to_string(fixture("oai-smf-pod.yaml"))?;
    let mut pod: serde_json::Value = serde_yaml::from_str(&yaml)?;
    let ann = pod["metadata"]
        .as_object_mut()
        .context("pod without metadata")?
        .entry("annotations")
        .or_insert_with(|| serde_json::json!({}));
    ann["nfguard.io/entrypoint"] = serde_json::Value::String(
        r#"["/openair-smf/bin/oai_smf","-c","/openair-smf/etc/smf.yaml","-o"]"#.into(),
    );
    let gvk = serde_json::json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = serde_json::json!({"group": "", "version": "v1", "resource": "pods"});
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": "",
            "namespace": "oai",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    });
    Ok(serde_json::to_vec(&review)?)
}

/// A Kubernetes fixture: the copies of shared/fixtures/k8s kept beside the injector's tests.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../injector-webhook/tests/fixtures")
        .join(name)
}

fn webhook(args: &Args, bins: &Bins, mem: &mut Memory) -> Result<Webhook> {
    if !bins.injector.is_file() {
        bail!("{} missing", bins.injector.display());
    }
    let tmp = tempfile::Builder::new()
        .prefix("nfguard-bench-webhook")
        .tempdir()?;
    let t = tmp.path();
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    std::fs::write(t.join("tls.crt"), ck.cert.pem())?;
    std::fs::write(t.join("tls.key"), ck.key_pair.serialize_pem())?;
    let port = free_port()?;
    let mut child = Command::new(&bins.injector)
        .arg("serve")
        .arg("--tls-cert")
        .arg(t.join("tls.crt"))
        .arg("--tls-key")
        .arg(t.join("tls.key"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| {
        wait_port(port, &mut child, "nfguard-injector")?;
        let body: &'static [u8] = Box::leak(review_body()?.into_boxed_slice());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let cert = ck.cert.der().clone();
        let mut levels = Vec::new();
        let mut injected = false;
        for clients in [1usize, 32] {
            eprintln!("nfguard-bench: webhook, {clients} clients");
            let (server0, client0) = (cpu_us(child.id()), own_cpu_us());
            let (lat, secs, inj) = rt.block_on(webhook_load(
                port,
                cert.clone(),
                body,
                clients,
                args.webhook_seconds,
            ))?;
            // Includes the 0.5 s warm-up, whose requests are not in `lat`: a slight overestimate.
            let per = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / lat.len().max(1) as f64);
            let server_cpu = per(server0, cpu_us(child.id()));
            let client_cpu = per(client0, own_cpu_us());
            injected |= inj;
            let s = stats::summarize(&lat);
            levels.push(WebhookLevel {
                clients,
                requests: lat.len(),
                seconds: secs,
                requests_per_s: lat.len() as f64 / secs,
                p50_ms: s.median_ns / 1e6,
                p99_ms: s.p99_ns / 1e6,
                server_cpu_us_per_request: server_cpu,
                client_cpu_us_per_request: client_cpu,
            });
        }
        mem.injector_kib = vm_hwm_kib(child.id());
        Ok(Webhook { levels, injected })
    })();
    stop(&mut child);
    result
}

type Latencies = (Vec<u64>, f64, bool);

/// utime+stime of `pid` in microseconds (/proc/<pid>/stat, fields 14 and 15).
fn cpu_us(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1e6 / 100.0) // USER_HZ is 100 on Linux
}

fn own_cpu_us() -> Option<f64> {
    cpu_us(std::process::id())
}

async fn webhook_load(
    port: u16,
    cert: rustls::pki_types::CertificateDer<'static>,
    body: &'static [u8],
    clients: usize,
    seconds: u64,
) -> Result<Latencies> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let warm_until = Instant::now() + Duration::from_millis(500);
    let until = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let connector = connector.clone();
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            tcp.set_nodelay(true)?;
            let name = rustls::pki_types::ServerName::try_from("localhost")?;
            let tls = connector.connect(name, tcp).await?;
            let (mut send, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
            tokio::spawn(conn);
            let mut lat = Vec::new();
            let mut injected = false;
            loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let req = hyper::Request::post("/mutate")
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(body))?;
                send.ready().await?;
                let resp = send.send_request(req).await?;
                let status = resp.status();
                let bytes = http_body_util::BodyExt::collect(resp.into_body())
                    .await?
                    .to_bytes();
                let done = Instant::now();
                if !status.is_success() {
                    bail!(
                        "webhook answered {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                if !injected {
                    injected = bytes.windows(8).any(|w| w == b"\"patch\":");
                }
                if now >= warm_until {
                    lat.push((done - now).as_nanos() as u64);
                }
            }
            anyhow::Ok((lat, injected))
        }));
    }
    let mut all = Vec::new();
    let mut injected = false;
    for t in tasks {
        let (l, i) = t.await??;
        all.extend(l);
        injected |= i;
    }
    Ok((all, seconds as f64, injected))
}

// ---------------------------------------------------------------- memory

fn memory(bins: &Bins, mem: &mut Memory) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("nfguard-bench-mem")
        .tempdir()?;
    let t = tmp.path();
    let entries = 10_000;
    let model = t.join("big.json");
    nfguard_bench::bigmodel::write(&model, entries)?;
    mem.model_entries = entries;
    let port = sink_listener()?;
    let mut child = Command::new(&bins.nfguard)
        .args(["run", "--mode", "alert", "--model"])
        .arg(&model)
        .arg("--events")
        .arg(t.join("events.jsonl"))
        .arg("--launcher")
        .arg(&bins.launcher)
        .arg("--")
        .arg(&bins.load)
        .args([
            "--dir",
            &t.display().to_string(),
            "--port",
            &port.to_string(),
            "--nop",
        ])
        .arg(&bins.nop)
        .args(["--ops", "openat-write:500,connect:500,execve:50,sleep:300"])
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut peak = None;
    loop {
        if let Some(k) = vm_hwm_kib(pid) {
            peak = peak.max(Some(k));
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    mem.supervisor_big_model_kib = peak;
    mem.launcher_bytes = std::fs::metadata(&bins.launcher).ok().map(|m| m.len());
    mem.sidecar_image_bytes = sh(
        "podman",
        &[
            "image",
            "inspect",
            "localhost/nfguard-sidecar:dev",
            "--format",
            "{{.Size}}",
        ],
    )
    .and_then(|s| s.trim().parse().ok());
    Ok(())
}

// ---------------------------------------------------------------- targets

fn targets(r: &Report) -> Vec<Target> {
    let mut t = Vec::new();
    let mut add = |name: &str, goal: &str, measured: String, holds: Option<bool>| {
        t.push(Target {
            name: name.into(),
            target: goal.into(),
            measured,
            holds,
        })
    };
    if let Some(sc) = &r.syscalls {
        for op in ["getppid", "open-ro"] {
            if let Some(p) = sc.filter_cost.iter().find(|p| p.op == op) {
                add(
                    &format!("unmonitored {op}: the filter's own cost, paired blocks"),
                    "<= 1.02x native",
                    format!("{:.3}x ({} pairs)", p.median_ratio, p.pairs),
                    Some(p.median_ratio <= 1.02),
                );
                if let Some(any) = p.any_filter_ratio {
                    let beyond = p.median_ratio / any;
                    add(
                        &format!("unmonitored {op}: nfguard's filter over a one-instruction filter (the kernel's fixed cost of any filter: {any:.3}x)"),
                        "<= 1.02x",
                        format!("{beyond:.3}x"),
                        Some(beyond <= 1.02),
                    );
                }
            }
            let worst = ["learn", "alert", "enforce"]
                .iter()
                .filter_map(|c| {
                    sc.get(op, c)
                        .and_then(|x| x.ratio_native_by_round.or(x.ratio_native))
                })
                .fold(f64::NAN, f64::max);
            add(
                &format!("unmonitored {op} under nfguard (worst mode, median of per-round ratios)"),
                "<= 1.02x native",
                format!("{worst:.3}x"),
                Some(worst <= 1.02),
            );
        }
        for op in ["openat-write", "connect", "execve"] {
            for mode in ["alert", "enforce"] {
                let Some(x) = sc.get(op, mode) else { continue };
                let Some(r) = x.ratio_reference else { continue };
                add(
                    &format!("notified {op}, {mode}"),
                    "<= 1.3x reference",
                    format!("{r:.2}x"),
                    Some(r <= 1.3),
                );
                if let (Some(e), "enforce", "openat-write" | "connect") =
                    (x.ratio_emulating, mode, op)
                {
                    add(
                        &format!("notified {op}, enforce, over the emulating reference"),
                        "<= 1.3x ref-emulate",
                        format!("{e:.2}x"),
                        Some(e <= 1.3),
                    );
                }
            }
        }
    }
    if let Some(n) = &r.nginx {
        let tput = n.enforce.requests_per_s / n.native.requests_per_s;
        add(
            "nginx throughput, enforce",
            ">= 0.97x native",
            format!("{tput:.3}x"),
            Some(tput >= 0.97),
        );
        let p99 = n.enforce.p99_ms / n.native.p99_ms;
        add(
            "nginx p99 latency, enforce",
            "<= 1.10x native",
            format!("{p99:.3}x"),
            Some(p99 <= 1.10),
        );
    }
    if let Some(w) = &r.webhook {
        if let Some(l) = w.levels.iter().find(|l| l.clients == 32) {
            add(
                "webhook p99, 32 clients",
                "< 2 ms",
                format!("{:.2} ms", l.p99_ms),
                Some(l.p99_ms < 2.0),
            );
        }
    }
    let m = &r.memory;
    if let Some(k) = m.supervisor_big_model_kib {
        let mb = k as f64 / 1024.0;
        add(
            "supervisor peak RSS, 10,000-entry model",
            "< 20 MB",
            format!("{mb:.1} MiB"),
            Some(k * 1024 < 20_000_000),
        );
    }
    if let Some(b) = m.launcher_bytes {
        add(
            "static launcher size",
            "< 1 MB",
            format!("{:.0} KiB", b as f64 / 1024.0),
            Some(b < 1_000_000),
        );
    }
    t
}
