//! The console on real processes: `nfguard-console serve` on a real SQLite
//! file or a real PostgreSQL cluster (started here), and replicas that are
//! real `nfguard run` supervisors of a small shell NF under the seccomp filter.
//!
//! The NF (`nf.sh` below) runs `/bin/true` and `sleep` in a loop, writes its
//! loop count to a file, and runs `ps -ef` as many times as the number the test
//! writes into its `want` file says (read with the shell's builtin `read`: a
//! read-only open, which the filter does not notify, so the trigger itself is
//! not an event).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nfguard_console::client;
use nfguard_console::devdb::{free_port, TempPostgres};
use serde_json::{json, Value};

const CONSOLE: &str = env!("CARGO_BIN_EXE_nfguard-console");
const ADMIN: &str = "admin-token-for-the-tests-0001";
const JOIN_SMF: &str = "join-token-for-smf-only-00001";
const JOIN_UPF: &str = "join-token-for-upf-only-00001";
const SMF: &str = "local:core:deployment:smf";
const UPF: &str = "local:core:deployment:upf";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

/// `nfguard` and `nfguard-launch`, built beside the console by `cargo test --workspace`.
fn nfguard() -> PathBuf {
    let p = Path::new(CONSOLE).with_file_name("nfguard");
    assert!(
        p.exists() && p.with_file_name("nfguard-launch").exists(),
        "{} missing: build the sidecar first (cargo build -p nfguard-sidecar, or cargo test --workspace)",
        p.display()
    );
    p
}

const NF: &str = r#"#!/bin/sh
# A SIGTERM ends the NF between two loops, never inside one (so the loop
# count and the number of /bin/true runs agree).
trap 'stop=1' TERM
n=0; done=0
while [ -z "$stop" ]; do
  /bin/true
  n=$((n+1))
  echo $n > "$DIR/count"
  want=0
  [ -e "$DIR/want" ] && read want < "$DIR/want"
  while [ "$done" -lt "$want" ]; do ps -ef > /dev/null; done=$((done+1)); done
  sleep 0.1
done
"#;

/// Which database a test runs against.
enum Db {
    Sqlite(tempfile::TempDir),
    /// The cluster is kept alive (and stopped on drop) with its database's URL.
    Postgres(#[allow(dead_code)] TempPostgres, String),
}

impl Db {
    fn url(&self) -> String {
        match self {
            Db::Sqlite(d) => format!("sqlite:{}", d.path().join("console.db").display()),
            Db::Postgres(_, url) => url.clone(),
        }
    }
}

fn sqlite() -> Db {
    Db::Sqlite(tempfile::tempdir().unwrap())
}

/// A fresh PostgreSQL cluster; in CI its absence is a failure, elsewhere the test says so and passes.
fn postgres() -> Option<Db> {
    match TempPostgres::start() {
        Ok(pg) => {
            let url = pg.database("nfguard").expect("createdb");
            Some(Db::Postgres(pg, url))
        }
        Err(e) => {
            if std::env::var_os("CI").is_some() {
                panic!("{e}");
            }
            eprintln!("SKIPPED: {e}");
            None
        }
    }
}

struct Console {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    db: String,
}

impl Console {
    fn start(db: &Db) -> Console {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin"), ADMIN).unwrap();
        std::fs::write(
            dir.path().join("join"),
            format!("{JOIN_SMF} core/Deployment/smf\n{JOIN_UPF} core/Deployment/upf\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("smf-token"), JOIN_SMF).unwrap();
        let mut c = Console {
            child: None,
            port: free_port(),
            dir,
            db: db.url(),
        };
        c.restart();
        c
    }

    fn restart(&mut self) {
        let child = Command::new(CONSOLE)
            .args(["serve", "--db", &self.db, "--listen"])
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--admin-token-file")
            .arg(self.dir.path().join("admin"))
            .arg("--join-token-file")
            .arg(self.dir.path().join("join"))
            .args(["--sync-interval", "200ms", "--incident-window", "1m"])
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nfguard-console");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http("GET", &self.url("/healthz"), None, None) {
                return;
            }
            assert!(Instant::now() < deadline, "the console did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn get(&self, path: &str) -> Value {
        let (s, v) = http("GET", &self.url(path), Some(ADMIN), None).unwrap();
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        http("POST", &self.url(path), Some(token), Some(body)).unwrap()
    }

    fn smf_token(&self) -> PathBuf {
        self.dir.path().join("smf-token")
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request over a real socket (the console's own client).
fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    let a = rt.block_on(client::request(
        method.parse().unwrap(),
        url,
        &headers,
        body.map(|b| b.to_string().into_bytes()),
        None,
        Duration::from_secs(20),
    ))?;
    let v = serde_json::from_slice(&a.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&a.body).into()));
    Ok((a.status.as_u16(), v))
}

/// A replica: `nfguard run --console ...` of the shell NF, in its own directory.
struct Replica {
    child: Option<Child>,
    dir: PathBuf,
}

struct Want<'a> {
    workload: &'a str,
    digest: String,
    mode: &'a str,
    learning: &'a str,
    dry_run: &'a str,
}

impl Replica {
    /// Replicas run the same program at the same paths, as pods of one
    /// workload do: the NF at `HOST/nf.sh`, each replica's files in
    /// `HOST/pods/N/` (a number: the model generalises it to `*`).
    fn start(console: &Console, pod: &str, w: &Want) -> Replica {
        let host = console.dir.path();
        let nf = host.join("nf.sh");
        if !nf.exists() {
            std::fs::write(&nf, NF).unwrap();
            std::fs::set_permissions(&nf, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        let pods = host.join("pods");
        std::fs::create_dir_all(&pods).unwrap();
        let n = std::fs::read_dir(&pods).unwrap().count() + 1;
        let dir = pods.join(n.to_string());
        std::fs::create_dir(&dir).unwrap();
        let child = Command::new(nfguard())
            .arg("run")
            .args(["--console", &console.url("")])
            .arg("--console-token-file")
            .arg(console.smf_token())
            .args(["--workload", w.workload, "--pod", pod])
            .arg("--image")
            .arg(format!("registry.local/smf@{}", w.digest))
            .args([
                "--learning-period",
                w.learning,
                "--dry-run-period",
                w.dry_run,
            ])
            .args(["--mode", w.mode])
            .arg("--model")
            .arg(dir.join("model.json"))
            .arg("--events")
            .arg(dir.join("events.jsonl"))
            .arg("--")
            .arg(&nf)
            .env("DIR", &dir)
            .current_dir(&dir)
            .stdout(std::fs::File::create(dir.join("out")).unwrap())
            .stderr(std::fs::File::create(dir.join("err")).unwrap())
            .spawn()
            .expect("starting nfguard run");
        Replica {
            child: Some(child),
            dir,
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    /// Runs `ps -ef` in the NF until it has run `n` times in all.
    fn ps(&self, n: u32) {
        let tmp = self.dir.join("want.tmp");
        std::fs::write(&tmp, format!("{n}\n")).unwrap();
        std::fs::rename(tmp, self.dir.join("want")).unwrap();
    }

    /// The NF's loop count (the shell rewrites the file each loop: a read can
    /// fall between its truncation and its write, so read again then).
    fn loops(&self) -> u64 {
        for _ in 0..50 {
            if let Ok(n) = self.file("count").trim().parse() {
                return n;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        0
    }

    fn events(&self) -> Vec<Value> {
        self.file("events.jsonl")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Stops the replica as a pod is stopped (SIGTERM, forwarded to the NF) and waits.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `f` until it returns Some, for up to `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn container(c: &Console, id: &str) -> Option<Value> {
    let (s, v) = http(
        "GET",
        &c.url(&format!("/api/v1/workloads/{id}")),
        Some(ADMIN),
        None,
    )
    .ok()?;
    (s == 200).then(|| v["containers"][0].clone())
}

fn items(c: &Console, id: &str, q: &str) -> Vec<Value> {
    let m = c.get(&format!("/api/v1/workloads/{id}/model{q}"));
    ["process", "network", "filesystem"]
        .iter()
        .flat_map(|t| m["items"][t].as_array().cloned().unwrap_or_default())
        .collect()
}

fn exec_item<'a>(items: &'a [Value], exe: &str) -> Option<&'a Value> {
    items
        .iter()
        .find(|i| i["kind"] == "process" && i["entry"]["exe"] == exe)
}

// ---- the scenarios, each against SQLite and PostgreSQL ----

/// Two replicas learn one workload into one model with provenance; the model
/// goes through dry-run to active; a third replica starts active at once and
/// its unlearned `ps -ef` is one incident with a timeline.
fn replicas_share_one_model_through_its_lifecycle(db: Db) {
    let c = Console::start(&db);
    let w = Want {
        workload: "core/Deployment/smf",
        digest: digest('a'),
        mode: "alert",
        learning: "3s",
        dry_run: "2s",
    };
    let r1 = Replica::start(&c, "smf-1", &w);
    let r2 = Replica::start(&c, "smf-2", &w);
    let active = wait_for(60, "the model to become active", || {
        container(&c, SMF).filter(|k| k["state"] == "active")
    });
    assert_eq!(active["mode"], "alert", "{active}");
    // Through dry-run, on time, recorded in the audit log.
    let audit = c.get(&format!("/api/v1/workloads/{SMF}/audit"));
    let promotions: Vec<(String, String)> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "promote")
        .map(|a| {
            (
                a["detail"]["from"].as_str().unwrap().into(),
                a["detail"]["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        promotions.contains(&("learning".into(), "dry-run".into())),
        "{audit}"
    );
    assert!(
        promotions.contains(&("dry-run".into(), "active".into())),
        "{audit}"
    );
    assert!(audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| !a["actor"].as_str().unwrap_or("").is_empty()));
    // One model, with each item's provenance: both replicas ran /usr/bin/true.
    let its = items(&c, SMF, "");
    let t =
        exec_item(&its, "/usr/bin/true").unwrap_or_else(|| panic!("no /usr/bin/true in {its:?}"));
    let pods: Vec<&str> = t["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pod"].as_str().unwrap())
        .collect();
    assert_eq!(pods, ["smf-1", "smf-2"], "{t}");
    assert_eq!(t["origin"], "learned");
    assert!(
        t["hits"].as_i64().unwrap() >= 2
            && t["first_seen"].is_string()
            && t["last_seen"].is_string(),
        "{t}"
    );
    let nf = its
        .iter()
        .find(|i| i["kind"] == "process" && i["entry"]["exe"].as_str().unwrap().ends_with("nf.sh"));
    assert_eq!(
        nf.map(|i| &i["origin"]),
        Some(&json!("static")),
        "the entrypoint is known without learning: {its:?}"
    );
    let pods = c.get(&format!("/api/v1/workloads/{SMF}"))["pods"].clone();
    assert_eq!(pods.as_array().unwrap().len(), 2, "{pods}");

    // A third replica is active at once: no learning, and its ps is an incident.
    let mut r3 = Replica::start(&c, "smf-3", &w);
    let first = wait_for(20, "the third replica to start", || {
        Some(r3.file("err")).filter(|e| e.contains("from the"))
    });
    assert!(first.contains("active (alert) from the console"), "{first}");
    wait_for(20, "the NF of the third replica to loop", || {
        (r3.loops() > 2).then_some(())
    });
    r3.ps(1);
    let inc = wait_for(30, "an incident for smf-3", || {
        let v = c.get("/api/v1/incidents");
        v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["pod"] == "smf-3")
            .cloned()
    });
    assert!(inc["title"].as_str().unwrap().contains("ps -ef"), "{inc}");
    assert_eq!(
        (
            inc["state"].as_str(),
            inc["workload_id"].as_str(),
            inc["container"].as_str()
        ),
        (Some("open"), Some(SMF), Some("main"))
    );
    assert_eq!(inc["digest"], digest('a'));
    // Everything ps did in that tree is this one incident, not one alert per call.
    std::thread::sleep(Duration::from_millis(1500));
    let local = r3.events();
    assert!(!local.is_empty());
    let all = c.get("/api/v1/incidents");
    let mine: Vec<&Value> = all["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["pod"] == "smf-3")
        .collect();
    assert_eq!(mine.len(), 1, "{all}");
    assert_eq!(
        mine[0]["events"].as_i64().unwrap() as usize,
        local.len(),
        "{all}"
    );
    let detail = c.get(&format!("/api/v1/incidents/{}", inc["id"]));
    let tl = detail["timeline"].as_array().unwrap();
    assert_eq!(tl[0]["event"]["path"], "/usr/bin/ps", "{detail}");
    assert_eq!(tl[0]["event"]["argv"], json!(["ps", "-ef"]));
    assert!(r3.alive(), "the NF goes on");
    assert!(r1.file("err").contains("moves this workload to alert mode"));
    drop((r1, r2));
}

/// A new image digest starts in dry-run from the previous digest's model and
/// learns only the difference, which `model diff` shows.
fn a_new_digest_starts_in_dry_run_from_its_predecessor(db: Db) {
    let c = Console::start(&db);
    let old = Want {
        workload: "core/Deployment/smf",
        digest: digest('a'),
        mode: "enforce",
        learning: "2s",
        dry_run: "1h",
    };
    let mut r1 = Replica::start(&c, "smf-1", &old);
    wait_for(60, "the old image's model to reach dry-run", || {
        container(&c, SMF).filter(|k| k["state"] == "dry-run")
    });
    r1.stop();
    let new = Want {
        digest: digest('b'),
        ..old
    };
    let r2 = Replica::start(&c, "smf-2", &new);
    let first = wait_for(20, "the new replica to start", || {
        Some(r2.file("err")).filter(|e| e.contains("from the"))
    });
    assert!(
        first.contains("dry-run (alert) from the console"),
        "{first}"
    );
    let k = wait_for(20, "the new digest's model", || {
        container(&c, SMF).filter(|k| k["digest"] == digest('b'))
    });
    assert_eq!(k["state"], "dry-run", "{k}");
    let old_items = items(&c, SMF, &format!("?digest={}", digest('a')));
    let new_items = items(&c, SMF, "");
    let t = exec_item(&new_items, "/usr/bin/true").expect("inherited /usr/bin/true");
    assert_eq!(t["inherited"], true, "{t}");
    assert!(new_items.len() >= old_items.len());
    // Something only the new image does: a candidate, the difference.
    wait_for(20, "the NF to loop", || (r2.loops() > 2).then_some(()));
    r2.ps(1);
    let diff = wait_for(30, "ps in the diff", || {
        let d = c.get(&format!("/api/v1/workloads/{SMF}/model/diff"));
        d["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["entry"]["exe"] == "/usr/bin/ps")
            .then_some(d)
    });
    assert_eq!(diff["from"]["digest"], digest('a'), "{diff}");
    assert_eq!(diff["to"]["digest"], digest('b'));
    // Approving the new image takes its difference into the model.
    let (s, v) = c.post(
        &format!("/api/v1/workloads/{SMF}/approve"),
        ADMIN,
        json!({"reason": "v2 rollout reviewed"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "active");
    let d = c.get(&format!("/api/v1/workloads/{SMF}/model/diff"));
    assert!(
        d["added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["exe"] == "/usr/bin/ps"),
        "{d}"
    );
}

/// A console killed mid-run loses no observation and no event: the NF keeps
/// running in its mode (enforce) meanwhile, and everything arrives after.
fn a_console_outage_loses_nothing_and_pauses_nothing(db: Db) {
    let mut c = Console::start(&db);
    let w = Want {
        workload: "core/Deployment/smf",
        digest: digest('a'),
        mode: "enforce",
        learning: "2s",
        dry_run: "1s",
    };
    let mut r = Replica::start(&c, "smf-1", &w);
    wait_for(60, "active", || {
        container(&c, SMF).filter(|k| k["state"] == "active")
    });
    wait_for(20, "the replica to enforce", || {
        r.file("err").contains("to enforce mode").then_some(())
    });
    c.kill();
    let before = r.loops();
    r.ps(3);
    wait_for(20, "three refused ps", || {
        (r.file("out").matches("Operation not permitted").count()
            + r.file("err").matches("Operation not permitted").count()
            >= 3)
            .then_some(())
    });
    // No timing: the NF goes on looping (ten a second when the machine is
    // idle) while the console is down.
    wait_for(
        20,
        "the NF to keep running while the console is down",
        || (r.loops() > before + 5).then_some(()),
    );
    assert!(r.alive());
    c.restart();
    std::thread::sleep(Duration::from_secs(1));
    r.stop();
    let loops = r.loops() as i64;
    let local = r.events();
    assert!(local.len() >= 3, "{local:?}");
    // Every event, once.
    let incs = c.get("/api/v1/incidents");
    let stored: i64 = incs["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["events"].as_i64().unwrap())
        .sum();
    assert_eq!(stored as usize, local.len(), "{incs}\n{}", r.file("err"));
    // Every observation, once: the NF ran /usr/bin/true once per loop.
    let its = items(&c, SMF, "");
    let t = exec_item(&its, "/usr/bin/true").unwrap();
    assert_eq!(t["hits"].as_i64().unwrap(), loops, "{t}");
    let ps = exec_item(&its, "/usr/bin/ps").expect("ps is a candidate");
    // dash tries each PATH entry: /bin/ps is /usr/bin/ps again on a merged /usr, so a
    // refused `ps` is two refused execs; the console counted exactly those the sidecar saw.
    let refused = local.iter().filter(|e| e["path"] == "/usr/bin/ps").count();
    assert!(refused >= 3, "{local:?}");
    assert_eq!(
        (ps["status"].as_str(), ps["hits"].as_i64()),
        (Some("candidate"), Some(refused as i64)),
        "{ps}"
    );
}

#[test]
fn sqlite_replicas_share_one_model_through_its_lifecycle() {
    if nfguard().exists() {
        replicas_share_one_model_through_its_lifecycle(sqlite());
    }
}

#[test]
fn postgres_replicas_share_one_model_through_its_lifecycle() {
    if let Some(db) = postgres() {
        replicas_share_one_model_through_its_lifecycle(db);
    }
}

#[test]
fn sqlite_a_new_digest_starts_in_dry_run_from_its_predecessor() {
    a_new_digest_starts_in_dry_run_from_its_predecessor(sqlite());
}

#[test]
fn postgres_a_new_digest_starts_in_dry_run_from_its_predecessor() {
    if let Some(db) = postgres() {
        a_new_digest_starts_in_dry_run_from_its_predecessor(db);
    }
}

#[test]
fn sqlite_a_console_outage_loses_nothing_and_pauses_nothing() {
    a_console_outage_loses_nothing_and_pauses_nothing(sqlite());
}

#[test]
fn postgres_a_console_outage_loses_nothing_and_pauses_nothing() {
    if let Some(db) = postgres() {
        a_console_outage_loses_nothing_and_pauses_nothing(db);
    }
}

// ---- credentials, configuration, models as code ----

fn sync_body(workload: (&str, &str), pod: &str, exe: &str) -> Value {
    json!({
        "workload": {"cluster": "local", "namespace": workload.0, "kind": "Deployment", "name": workload.1},
        "container": "main", "pod": {"name": pod, "addresses": ["10.1.0.7"]}, "instance": format!("i-{pod}"),
        "want": {"mode": "enforce", "learning_period_ms": 600000},
        "batch": 1,
        "observations": [{"item": {"kind": "process", "exe": exe, "parent": "(launcher)"}, "count": 1, "first_ms": 1, "last_ms": 2}],
    })
}

#[test]
fn a_sidecar_credential_reads_only_its_own_model_and_approves_nothing() {
    let db = sqlite();
    let c = Console::start(&db);
    let (s, v) = c.post(
        "/api/v1/sync",
        JOIN_SMF,
        sync_body(("core", "smf"), "smf-1", "/usr/bin/smf"),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post(
        "/api/v1/sync",
        JOIN_UPF,
        sync_body(("core", "upf"), "upf-1", "/usr/bin/upf"),
    );
    assert_eq!(s, 200, "{v}");
    let get = |path: &str, token: &str| http("GET", &c.url(path), Some(token), None).unwrap();
    // Its own model: yes. Another workload's: no.
    assert_eq!(
        get(&format!("/api/v1/workloads/{SMF}/model"), JOIN_SMF).0,
        200
    );
    let (s, v) = get(&format!("/api/v1/workloads/{UPF}/model"), JOIN_SMF);
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("may not read workload"),
        "{v}"
    );
    // Nor the list, nor incidents, nor any action, even on its own workload.
    assert_eq!(get("/api/v1/workloads", JOIN_SMF).0, 403);
    assert_eq!(get("/api/v1/incidents", JOIN_SMF).0, 403);
    for action in ["approve", "relearn"] {
        let (s, v) = c.post(
            &format!("/api/v1/workloads/{SMF}/{action}"),
            JOIN_SMF,
            json!({}),
        );
        assert_eq!(s, 403, "{action}: {v}");
    }
    let (s, _) = c.post(&format!("/api/v1/workloads/{SMF}/rules"), JOIN_SMF, json!({"action": "allow", "item": {"kind": "process", "exe": "/bin/sh", "parent": "(launcher)"}}));
    assert_eq!(s, 403);
    // Nor report for another workload.
    let (s, v) = c.post(
        "/api/v1/sync",
        JOIN_SMF,
        sync_body(("core", "upf"), "upf-9", "/bin/sh"),
    );
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("speaks for"), "{v}");
    // Without a credential: nothing; with a bad one: nothing.
    assert_eq!(
        http("GET", &c.url("/api/v1/workloads"), None, None)
            .unwrap()
            .0,
        401
    );
    assert_eq!(get("/api/v1/workloads", "not-a-token-at-all").0, 401);
    // Roles: a viewer reads and cannot approve; an operator approves.
    let (s, v) = c.post(
        "/api/v1/tokens",
        ADMIN,
        json!({"name": "alice", "role": "viewer"}),
    );
    assert_eq!(s, 201, "{v}");
    let viewer = v["token"].as_str().unwrap().to_string();
    let (_, v) = c.post(
        "/api/v1/tokens",
        ADMIN,
        json!({"name": "bob", "role": "operator"}),
    );
    let operator = v["token"].as_str().unwrap().to_string();
    assert_eq!(get("/api/v1/workloads", &viewer).0, 200);
    let (s, v) = c.post(
        &format!("/api/v1/workloads/{SMF}/approve"),
        &viewer,
        json!({}),
    );
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("operator role"),
        "{v}"
    );
    let (s, v) = c.post(
        &format!("/api/v1/workloads/{SMF}/approve"),
        &operator,
        json!({"reason": "reviewed"}),
    );
    assert_eq!((s, v["state"].as_str()), (200, Some("active")), "{v}");
    let audit = c.get(&format!("/api/v1/workloads/{SMF}/audit"));
    let approve = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "approve")
        .unwrap();
    assert_eq!(
        (
            approve["actor"].as_str(),
            approve["detail"]["reason"].as_str()
        ),
        (Some("bob"), Some("reviewed"))
    );
    assert_eq!(
        get("/api/v1/tokens", &operator).0,
        403,
        "only admins see tokens"
    );
    // Bad requests get a 4xx that says why.
    let (s, v) = c.post("/api/v1/sync", JOIN_SMF, json!({"workload": "smf"}));
    assert_eq!(s, 422, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("bad request body"),
        "{v}"
    );
    let (s, v) = c.post(
        &format!("/api/v1/workloads/{SMF}/approve"),
        &operator,
        json!({}),
    );
    assert_eq!(s, 409, "already active: {v}");
    let (s, v) = c.post(
        &format!("/api/v1/workloads/{SMF}/extend"),
        &operator,
        json!({"by": "ten minutes"}),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        get("/api/v1/workloads/local:core:deployment:nope/model", ADMIN).0,
        404
    );
    assert_eq!(get("/api/v1/incidents/abc", ADMIN).0, 400);
}

#[test]
fn models_export_import_and_diff_as_nfguard_model_documents() {
    let db = sqlite();
    let c = Console::start(&db);
    let (s, _) = c.post(
        "/api/v1/sync",
        JOIN_SMF,
        sync_body(("core", "smf"), "smf-1", "/usr/bin/smf"),
    );
    assert_eq!(s, 200);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("admin");
    std::fs::write(&token, ADMIN).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(CONSOLE).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let url = c.url("");
    let tf = token.display().to_string();
    let (code, yaml, err) = cli(&[
        "model",
        "export",
        "--console",
        &url,
        "--token-file",
        &tf,
        SMF,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        yaml.contains("kind: NfguardModel") && yaml.contains("exe: /usr/bin/smf"),
        "{yaml}"
    );
    assert!(!yaml.contains("hits"), "provenance only when asked: {yaml}");
    let a = dir.path().join("a.yaml");
    std::fs::write(&a, &yaml).unwrap();
    let b = dir.path().join("b.yaml");
    let edited = yaml
        .replace(
            "deny: []",
            "deny:\n  - kind: process\n    exe: /usr/bin/ps\n    parent: /usr/bin/dash\n",
        )
        .replace(
            "allow:\n",
            "allow:\n  - kind: listen\n    exe: /usr/bin/smf\n    protocol: tcp\n    port: 8805\n",
        );
    std::fs::write(&b, &edited).unwrap();
    let (code, diff, err) = cli(&[
        "model",
        "diff",
        &a.display().to_string(),
        &b.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(diff, "+ listen   /usr/bin/smf serves tcp port 8805\n");
    let (code, out, err) = cli(&[
        "model",
        "import",
        "--console",
        &url,
        "--token-file",
        &tf,
        &b.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("applied 2 rule(s)"), "{out}");
    let its = items(&c, SMF, "");
    let ps = exec_item(&its, "/usr/bin/ps").unwrap();
    assert_eq!(
        (ps["status"].as_str(), ps["origin"].as_str()),
        (Some("denied"), Some("manual")),
        "{ps}"
    );
    let (code, _, err) = cli(&[
        "model",
        "diff",
        &a.display().to_string(),
        "/nonexistent.yaml",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with("nfguard-console: /nonexistent.yaml:"),
        "{err}"
    );
}

#[test]
fn a_console_says_in_one_line_what_is_wrong_with_its_setup() {
    let run = |args: &[&str]| {
        let out = Command::new(CONSOLE)
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[
        "--db",
        "sqlite:/nonexistent/dir/console.db",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(69));
    let line = err.lines().last().unwrap();
    assert!(
        line.starts_with(
            "nfguard-console: cannot open database sqlite:/nonexistent/dir/console.db"
        ),
        "{err}"
    );
    let (code, err) = run(&["--db", "mysql://x", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("expected sqlite:PATH or postgres://"), "{err}");
    let (code, err) = run(&["--listen", "0.0.0.0:9950"]);
    assert_eq!(code, Some(64));
    assert!(err.contains("needs --tls-cert and --tls-key"), "{err}");
    let (code, err) = run(&["--join-token-file", "/nonexistent"]);
    assert_eq!(code, Some(64), "{err}");
}

#[test]
fn the_console_serves_https_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&c, cert.cert.pem()).unwrap();
    std::fs::write(&k, cert.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("admin"), ADMIN).unwrap();
    let port = free_port();
    let mut child = Command::new(CONSOLE)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(format!("sqlite:{}", dir.path().join("db").display()))
        .arg("--admin-token-file")
        .arg(dir.path().join("admin"))
        .arg("--tls-cert")
        .arg(&c)
        .arg("--tls-key")
        .arg(&k)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/api/v1/workloads");
    let trust = client::Trust::CaFile(c.clone());
    let answer = wait_for(30, "the https console", || {
        rt.block_on(client::request(
            hyper::Method::GET,
            &url,
            &[("authorization", format!("Bearer {ADMIN}"))],
            None,
            Some(&trust),
            Duration::from_secs(5),
        ))
        .ok()
    });
    assert_eq!(answer.status, 200);
    let plain = rt.block_on(client::request(
        hyper::Method::GET,
        &format!("http://127.0.0.1:{port}/healthz"),
        &[],
        None,
        None,
        Duration::from_secs(5),
    ));
    assert!(
        plain.map(|a| a.status != 200).unwrap_or(true),
        "no plain HTTP on the TLS port"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sqlite_and_postgres_get_the_same_schema() {
    let Some(pg) = postgres() else { return };
    let lite = sqlite();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (a, b) = rt.block_on(async {
        let a = nfguard_console::store::Store::open(&lite.url(), Default::default())
            .await
            .unwrap();
        let b = nfguard_console::store::Store::open(&pg.url(), Default::default())
            .await
            .unwrap();
        (a.schema().await.unwrap(), b.schema().await.unwrap())
    });
    assert!(
        a.contains_key("items") && a.contains_key("incidents"),
        "{a:?}"
    );
    assert_eq!(a, b);
}

#[test]
fn a_new_incident_is_posted_to_the_incident_webhook() {
    // A real HTTP receiver on loopback: the first request's body, then 200.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Read, Write};
        for conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = (&conn)
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tx.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    let db = sqlite();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("join"),
        format!("{JOIN_SMF} core/Deployment/smf\n"),
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(CONSOLE)
        .args([
            "serve",
            "--db",
            &db.url(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--join-token-file")
        .arg(dir.path().join("join"))
        .args(["--incident-webhook", &hook])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/api/v1/sync");
    let mut body = sync_body(("core", "smf"), "smf-1", "/usr/bin/smf");
    body["events"] = json!([{"instance": "i-smf-1", "event": {"id": 1, "time": "2026-12-01T12:00:00Z", "category": "process",
        "verdict": "alert", "kind": "outside-model", "syscall": "execve", "exe": "/usr/bin/dash", "path": "/usr/bin/ps",
        "argv": ["ps", "-ef"], "session": "outside-77", "pid": 77, "ppid": 0}}]);
    let (s, v) = wait_for(30, "the console", || {
        http("POST", &url, Some(JOIN_SMF), Some(body.clone())).ok()
    });
    assert_eq!(s, 200, "{v}");
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the webhook got the incident");
    let inc: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(inc["kind"], "nfguard.incident");
    assert_eq!(inc["title"], "alert outside-model: ps -ef");
    assert_eq!(
        (
            inc["workload_id"].as_str(),
            inc["pod"].as_str(),
            inc["tree"].as_str()
        ),
        (Some(SMF), Some("smf-1"), Some("outside"))
    );
    // Once: the same event again is no new incident.
    let (s, _) = http("POST", &url, Some(JOIN_SMF), Some(body)).unwrap();
    assert_eq!(s, 200);
    assert!(
        rx.recv_timeout(Duration::from_secs(3)).is_err(),
        "announced once"
    );
    let _ = child.kill();
    let _ = child.wait();
}
