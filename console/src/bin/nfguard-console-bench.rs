//! `nfguard-console-bench`: the console under load from real HTTP clients.
//!
//! Starts `nfguard-console serve` (the binary beside this one) on SQLite, then
//! on a PostgreSQL cluster of its own (Debian's postgresql), and measures:
//! - sync throughput in steady state (each sync: a sidecar of an active
//!   workload reporting counts for ten known items, no event), with many
//!   keep-alive connections; "sidecars served" is that rate times the sync
//!   interval (5 s by default: how many sidecars one console keeps up with);
//! - events ingested per second (syncs carrying 500 new events each);
//! - model fetch latency: a sidecar that starts and gets its workload's model
//!   (1,000 items), p50 and p99;
//! - the console's peak RSS;
//! - two consoles on one PostgreSQL, loaded together.
//!
//! Figures are printed; bounded in time (a few seconds per phase) and only to
//! loopback. The clients share the machine's cores with the console, so the
//! figures are a floor for a console on its own machine.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use nfguard_console::devdb::{free_port, TempPostgres};
use serde_json::{json, Value};

const ADMIN: &str = "bench-admin-token-000000001";
const JOIN: &str = "bench-join-token-0000000001";

struct Console {
    child: Child,
    port: u16,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_console(db: &str, dir: &std::path::Path) -> Console {
    std::fs::write(dir.join("admin"), ADMIN).unwrap();
    std::fs::write(dir.join("join"), format!("{JOIN}\n")).unwrap();
    let exe = std::env::current_exe()
        .unwrap()
        .with_file_name("nfguard-console");
    let port = free_port();
    let child = Command::new(&exe)
        .args([
            "serve",
            "--db",
            db,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--admin-token-file")
        .arg(dir.join("admin"))
        .arg("--join-token-file")
        .arg(dir.join("join"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the console did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Console { child, port }
}

/// CPU seconds (user + system) the process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Sender {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let _ = tcp.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

async fn post(s: &mut Sender, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let req = Request::post(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    s.ready().await.unwrap();
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn item(i: usize) -> Value {
    json!({"kind": "file", "exe": "/usr/bin/nf", "op": "write", "path": format!("/var/lib/nf/{}/state.db", char::from(b'a' + (i % 26) as u8).to_string().repeat(1 + i / 26))})
}

fn sync_req(
    workload: usize,
    pod: &str,
    instance: &str,
    batch: u64,
    items: usize,
    events: &[Value],
) -> Value {
    sync_at(workload, pod, instance, batch, items, events, None)
}

fn sync_at(
    workload: usize,
    pod: &str,
    instance: &str,
    batch: u64,
    items: usize,
    events: &[Value],
    have: Option<i64>,
) -> Value {
    json!({
        "workload": {"cluster": "bench", "namespace": "core", "kind": "Deployment", "name": format!("nf{workload}")},
        "container": "main", "pod": {"name": pod, "addresses": [format!("10.{}.{}.{}", workload / 250, workload % 250, 1)]},
        "instance": instance, "want": {"mode": "enforce", "learning_period_ms": 1000, "dry_run_period_ms": 1000},
        "batch": batch,
        "observations": (0..items).map(|i| json!({"item": item(i), "count": 3, "first_ms": 1, "last_ms": 2})).collect::<Vec<_>>(),
        "events": events,
        "have_version": have,
    })
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// Prepares `workloads` workloads with a model of `items` items each, made active.
async fn prepare(ports: &[u16], workloads: usize, items: usize) {
    let mut s = connect(ports[0]).await;
    for w in 0..workloads {
        let (st, v) = post(
            &mut s,
            "/api/v1/sync",
            JOIN,
            &sync_req(
                w,
                &format!("nf{w}-seed"),
                &format!("seed{w}"),
                1,
                items,
                &[],
            ),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = post(
            &mut s,
            &format!("/api/v1/workloads/bench:core:deployment:nf{w}/approve"),
            ADMIN,
            &json!({}),
        )
        .await;
        assert!(st == 200 || st == 409, "{v}");
    }
}

/// Closed loop: `conns` connections syncing as fast as answered for `secs`; returns (syncs/s, p50 ms, p99 ms).
async fn steady(ports: &[u16], workloads: usize, conns: usize, secs: u64) -> (f64, f64, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..conns {
        let port = ports[c % ports.len()];
        let (stop, count) = (Arc::clone(&stop), Arc::clone(&count));
        tasks.push(tokio::spawn(async move {
            let mut s = connect(port).await;
            let mut lat = Vec::new();
            let mut batch = 0u64;
            let w = c % workloads;
            let pod = format!("nf{w}-pod{c}");
            let instance = format!("bench-{c}");
            // A running sidecar has its model: it says which version, and gets none back.
            let (_, first) = post(
                &mut s,
                "/api/v1/sync",
                JOIN,
                &sync_req(w, &pod, &instance, 0, 0, &[]),
            )
            .await;
            let have = first["version"].as_i64();
            while !stop.load(Ordering::Relaxed) {
                batch += 1;
                let t = Instant::now();
                let (st, v) = post(
                    &mut s,
                    "/api/v1/sync",
                    JOIN,
                    &sync_at(w, &pod, &instance, batch, 10, &[], have),
                )
                .await;
                assert_eq!(st, 200, "{v}");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                count.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let rate = count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    (rate, percentile(&mut all, 0.5), percentile(&mut all, 0.99))
}

/// Events: `conns` connections, each sync carrying `per` new events; returns events/s.
async fn events(ports: &[u16], workloads: usize, conns: usize, per: usize, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..conns {
        let port = ports[c % ports.len()];
        let (stop, count) = (Arc::clone(&stop), Arc::clone(&count));
        tasks.push(tokio::spawn(async move {
            let mut s = connect(port).await;
            let w = c % workloads;
            let pod = format!("nf{w}-ev{c}");
            let instance = format!("ev-{c}-{}", std::process::id());
            let mut seq = 0u64;
            let mut batch = 0;
            let (_, first) = post(&mut s, "/api/v1/sync", JOIN, &sync_req(w, &pod, &instance, 0, 0, &[])).await;
            let have = first["version"].as_i64();
            while !stop.load(Ordering::Relaxed) {
                let evs: Vec<Value> = (0..per)
                    .map(|k| {
                        seq += 1;
                        json!({"instance": instance, "event": {
                            "id": seq, "time": "2026-12-01T12:00:00.000000Z", "category": "network", "verdict": "deny",
                            "kind": "outside-model", "mode": "enforce", "syscall": "connect", "pid": 4000 + (k % 50) as i64, "ppid": 1, "uid": 0,
                            "exe": "/usr/bin/nf", "argv": ["nf"], "cwd": "/", "reason": "the NF does not talk to udp 192.0.2.1:8805",
                            "op": "connect", "protocol": "udp", "address": "192.0.2.1", "port": 8805 + (k % 20) as i64,
                            "ancestors": [], "container": "main", "session": format!("main-{}", k % 5)}})
                    })
                    .collect();
                batch += 1;
                let (st, v) = post(&mut s, "/api/v1/sync", JOIN, &sync_at(w, &pod, &instance, batch, 0, &evs, have)).await;
                assert_eq!(st, 200, "{v}");
                count.fetch_add(v["events_stored"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
        }));
    }
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

/// Model fetch: a starting sidecar (no version) of a workload with `items` items; (p50, p99) ms.
async fn fetch(port: u16, workload: usize, n: usize) -> (f64, f64, usize) {
    let mut s = connect(port).await;
    let mut lat = Vec::new();
    let mut size = 0;
    for i in 0..n {
        let mut req = sync_req(
            workload,
            &format!("fetch{i}"),
            &format!("fetch-{i}-{}", std::process::id()),
            0,
            0,
            &[],
        );
        req["have_version"] = Value::Null;
        let t = Instant::now();
        let (st, v) = post(&mut s, "/api/v1/sync", JOIN, &req).await;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(st, 200, "{v}");
        size = v["model"]["filesystem"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
    }
    (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99), size)
}

async fn run(name: &str, dbs: &[String], dir: &std::path::Path, secs: u64) -> Value {
    let consoles: Vec<Console> = dbs
        .iter()
        .enumerate()
        .map(|(i, db)| {
            let d = dir.join(format!("c{i}"));
            std::fs::create_dir_all(&d).unwrap();
            start_console(db, &d)
        })
        .collect();
    let ports: Vec<u16> = consoles.iter().map(|c| c.port).collect();
    let workloads = 50;
    prepare(&ports, workloads, 10).await;
    // One big model for the fetch.
    {
        let mut s = connect(ports[0]).await;
        let big = sync_req(workloads, "big-seed", "big-seed", 1, 1000, &[]);
        let (st, v) = post(&mut s, "/api/v1/sync", JOIN, &big).await;
        assert_eq!(st, 200, "{v}");
        post(
            &mut s,
            &format!("/api/v1/workloads/bench:core:deployment:nf{workloads}/approve"),
            ADMIN,
            &json!({}),
        )
        .await;
    }
    let cpu0: f64 = consoles.iter().map(|c| cpu_secs(c.child.id())).sum();
    let t0 = Instant::now();
    let (rate, p50, p99) = steady(&ports, workloads, 64, secs).await;
    let cpu = consoles.iter().map(|c| cpu_secs(c.child.id())).sum::<f64>() - cpu0;
    let syncs = rate * t0.elapsed().as_secs_f64();
    let cpu_us_per_sync = cpu * 1e6 / syncs.max(1.0);
    let ev = events(&ports, workloads, 8, 500, secs).await;
    let (f50, f99, items) = fetch(ports[0], workloads, 200).await;
    let rss: Vec<u64> = consoles
        .iter()
        .map(|c| rss_peak_kib(c.child.id()))
        .collect();
    let out = json!({
        "setup": name,
        "consoles": consoles.len(),
        "syncs_per_s": rate.round(),
        "sync_p50_ms": (p50 * 100.0).round() / 100.0,
        "sync_p99_ms": (p99 * 100.0).round() / 100.0,
        "sidecars_served_at_5s": (rate * 5.0).round(),
        "console_cpu_us_per_sync": cpu_us_per_sync.round(),
        "sidecars_per_console_core_at_5s": (5e6 / cpu_us_per_sync.max(1.0)).round(),
        "events_per_s": ev.round(),
        "model_fetch_items": items,
        "model_fetch_p50_ms": (f50 * 100.0).round() / 100.0,
        "model_fetch_p99_ms": (f99 * 100.0).round() / 100.0,
        "console_peak_rss_mib": rss.iter().map(|k| (*k as f64 / 1024.0 * 10.0).round() / 10.0).collect::<Vec<_>>(),
    });
    println!(
        "{name:<24} syncs/s {:>6.0} (p50 {:.1} ms, p99 {:.1} ms; {:.0} us console CPU each) -> sidecars at a 5 s interval {:>6.0} ({:.0} per console core) | events/s {:>6.0} | model fetch ({items} items) p50 {:.1} ms p99 {:.1} ms | peak RSS {} MiB",
        rate, p50, p99, cpu_us_per_sync, rate * 5.0, 5e6 / cpu_us_per_sync.max(1.0), ev, f50, f99, out["console_peak_rss_mib"]
    );
    out
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    let lite = format!("sqlite:{}", dir.path().join("bench.db").display());
    results.push(rt.block_on(run("sqlite", &[lite], dir.path(), secs)));
    match TempPostgres::start() {
        Ok(pg) => {
            let url = pg.database("bench").unwrap();
            results.push(rt.block_on(run(
                "postgres",
                std::slice::from_ref(&url),
                &dir.path().join("pg1"),
                secs,
            )));
            let url2 = pg.database("bench2").unwrap();
            results.push(rt.block_on(run(
                "postgres, two consoles",
                &[url2.clone(), url2],
                &dir.path().join("pg2"),
                secs,
            )));
        }
        Err(e) => eprintln!("nfguard-console-bench: PostgreSQL part skipped: {e}"),
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Array(results)).unwrap()
    );
}
