//! The web UI in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven through WebDriver) against a real
//! `nfguard-console serve` fed by real `nfguard run` supervisors of two small
//! shell NFs under the seccomp filter, as in tests/console.rs:
//!
//! - `upf` serves UDP 8805 (PFCP, N4) with a small perl loop;
//! - `smf` runs `/bin/true` in a loop and sends a datagram to the upf's
//!   address on 8805 (a `connect()`: the learned edge of the radar); when the
//!   test creates its `attack` file it runs an attacker's `which ps`,
//!   `ps -ef`, `clear` once, as its own child (checked with the shell's
//!   builtin `test`, which makes no call the filter notifies).
//!
//! The test starts chromedriver on a free port and stops it at the end. The
//! screenshots of docs/ui/ are taken here. Without chromium or chromedriver
//! the test says so and passes, except in CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use nfguard_console::client;
use nfguard_console::devdb::free_port;
use serde_json::{json, Value};

const CONSOLE: &str = env!("CARGO_BIN_EXE_nfguard-console");
const ADMIN: &str = "admin-token-for-the-ui-tests-01";
const JOIN: &str = "join-token-for-the-core-ns-0001";
const SMF: &str = "local:core:deployment:smf";
const UPF: &str = "local:core:deployment:upf";

fn nfguard() -> PathBuf {
    let p = Path::new(CONSOLE).with_file_name("nfguard");
    assert!(
        p.exists() && p.with_file_name("nfguard-launch").exists(),
        "{} missing: build the binaries first (cargo build --workspace --bins --examples)",
        p.display()
    );
    p
}

const UPF_NF: &str = r#"#!/bin/sh
exec perl -MIO::Socket::INET -e '
  my $s = IO::Socket::INET->new(LocalPort => 8805, Proto => "udp") or die "bind: $!";
  while (1) { $s->recv(my $b, 100) }'
"#;

const SMF_NF: &str = r#"#!/bin/sh
trap 'stop=1' TERM
done=
while [ -z "$stop" ]; do
  /bin/true
  perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => $ENV{PEER}, PeerPort => 8805, Proto => "udp")->send("x")'
  if [ -e "$DIR/attack" ] && [ -z "$done" ]; then
    done=1
    which ps > /dev/null; ps -ef > /dev/null; clear > /dev/null 2>&1
  fi
  sleep 0.2
done
"#;

/// One request over a real socket (the console's own client); the body as JSON or text.
fn http(
    method: &str,
    url: &str,
    headers: &[(&'static str, String)],
    body: Option<Vec<u8>>,
) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt
        .block_on(client::request(
            method.parse().unwrap(),
            url,
            headers,
            body,
            None,
            Duration::from_secs(20),
        ))
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    (
        a.status.as_u16(),
        String::from_utf8_lossy(&a.body).into_owned(),
    )
}

struct Console {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Console {
    fn start() -> Console {
        Console::start_with(&[])
    }

    fn start_with(flags: &[&str]) -> Console {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin"), ADMIN).unwrap();
        std::fs::write(dir.path().join("join"), format!("{JOIN} core/*/*\n")).unwrap();
        std::fs::write(dir.path().join("join-token"), JOIN).unwrap();
        Console::spawn(dir, flags)
    }

    fn spawn(dir: tempfile::TempDir, flags: &[&str]) -> Console {
        let port = free_port();
        let child = Command::new(CONSOLE)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--db")
            .arg(format!(
                "sqlite:{}",
                dir.path().join("console.db").display()
            ))
            .arg("--admin-token-file")
            .arg(dir.path().join("admin"))
            .arg("--join-token-file")
            .arg(dir.path().join("join"))
            .args(["--sync-interval", "200ms"])
            .args(flags)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nfguard-console");
        let mut c = Console { child, port, dir };
        // Up, or gone (another test took the free port first: a new one then).
        let up = wait_for(30, "the console", || {
            if c.child.try_wait().ok().flatten().is_some() {
                return Some(false);
            }
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let a = rt.block_on(client::request(
                "GET".parse().unwrap(),
                &c.url("/healthz"),
                &[],
                None,
                None,
                Duration::from_secs(5),
            ));
            a.ok().filter(|a| a.status == 200).map(|_| true)
        });
        if up {
            return c;
        }
        let dir = std::mem::replace(&mut c.dir, tempfile::tempdir().unwrap());
        drop(c);
        Console::spawn(dir, flags)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (s, b) = http(
            method,
            &self.url(path),
            &[
                ("authorization", format!("Bearer {ADMIN}")),
                ("content-type", "application/json".into()),
            ],
            body.map(|b| b.to_string().into_bytes()),
        );
        (s, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    fn get(&self, path: &str) -> Value {
        let (s, v) = self.api("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    fn token(&self, name: &str, role: &str) -> String {
        let (s, v) = self.api(
            "POST",
            "/api/v1/tokens",
            Some(json!({"name": name, "role": role})),
        );
        assert_eq!(s, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workload's one replica: `nfguard run --console ...` of a shell NF.
struct Replica(Option<Child>);

impl Replica {
    fn start(c: &Console, name: &str, script: &str, env: &[(&str, &str)]) -> Replica {
        let dir = c.dir.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        let nf = dir.join("nf.sh");
        std::fs::write(&nf, script).unwrap();
        std::fs::set_permissions(&nf, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let mut cmd = Command::new(nfguard());
        cmd.arg("run")
            .args(["--console", &c.url("")])
            .arg("--console-token-file")
            .arg(c.dir.path().join("join-token"))
            .args(["--workload", &format!("core/Deployment/{name}")])
            .args(["--pod", &format!("{name}-1")])
            .arg("--image")
            .arg(format!("registry.local/{name}@sha256:{}", "a".repeat(64)))
            .args(["--learning-period", "3s", "--dry-run-period", "1h"])
            .args(["--mode", "enforce", "--model"])
            .arg(dir.join("model.json"))
            .arg("--events")
            .arg(dir.join("events.jsonl"))
            .arg("--")
            .arg(&nf)
            .env("DIR", &dir)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("err")).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Replica(Some(cmd.spawn().expect("starting nfguard run")))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

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

fn state(c: &Console, id: &str) -> String {
    let (s, v) = c.api("GET", &format!("/api/v1/workloads/{id}"), None);
    if s != 200 {
        return String::new();
    }
    v["containers"][0]["state"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn items(c: &Console, id: &str) -> Vec<Value> {
    let m = c.get(&format!("/api/v1/workloads/{id}/model"));
    ["process", "network", "filesystem"]
        .iter()
        .flat_map(|t| m["items"][t].as_array().cloned().unwrap_or_default())
        .collect()
}

/// chromedriver on a free port, stopped on drop; None (after saying why) when
/// chromium or chromedriver is not installed outside CI.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Option<Driver> {
        let missing: Vec<&str> = [
            ("chromium", "chromium"),
            ("chromedriver", "chromium-driver"),
        ]
        .into_iter()
        .filter(|(bin, _)| !Path::new("/usr/bin").join(bin).exists())
        .map(|(_, pkg)| pkg)
        .collect();
        if !missing.is_empty() {
            let why = format!(
                "the browser tests need Debian's {} (scripts/setup installs them)",
                missing.join(" and ")
            );
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("skipping: {why}");
            return None;
        }
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let d = Driver {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        };
        wait_for(30, "chromedriver", || {
            let r = std::net::TcpStream::connect(("127.0.0.1", d.port));
            r.is_ok().then_some(())
        });
        Some(d)
    }

    async fn browser(&self) -> Client {
        let caps = json!({
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,800", "--hide-scrollbars",
                         format!("--user-data-dir={}", self._profile.path().display())],
            }
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a chromium session through chromedriver");
        // The window's frame takes part of --window-size: make the page itself 1280x800.
        let inner = b
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        let (w, h) = (
            inner[0].as_u64().unwrap_or(1280),
            inner[1].as_u64().unwrap_or(800),
        );
        b.set_window_size((2560 - w) as u32, (1600 - h) as u32)
            .await
            .unwrap();
        b
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The screenshots the README shows, kept in docs/ui/.
async fn screenshot(b: &Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ui");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}

async fn body_text(b: &Client) -> String {
    b.find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .unwrap()
}

async fn login(b: &Client, c: &Console, token: &str) {
    b.delete_all_cookies().await.unwrap();
    b.goto(&c.url("/ui/login")).await.unwrap();
    b.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    b.find(Locator::Css("form.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // A click returns before the next page has loaded: wait for it (WebDriver's own wait).
    let who = b
        .wait()
        .for_element(Locator::Css(".who"))
        .await
        .expect("logged in");
    assert!(!who.text().await.unwrap().is_empty());
}

fn ui(id: &str) -> String {
    format!("/ui/workloads/{}", id.replace(':', "%3A"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_the_radar_the_model_and_the_attack_and_only_an_operator_approves() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let c = tokio::task::block_in_place(Console::start);
    let operator = tokio::task::block_in_place(|| c.token("alice", "operator"));
    let viewer = tokio::task::block_in_place(|| c.token("victor", "viewer"));
    // The upf first: the smf sends to the address its pod reports.
    let _upf = Replica::start(&c, "upf", UPF_NF, &[]);
    let peer = tokio::task::block_in_place(|| {
        wait_for(30, "the upf's pod address", || {
            let w = c.api("GET", &format!("/api/v1/workloads/{UPF}"), None).1;
            w["pods"][0]["addresses"][0].as_str().map(String::from)
        })
    });
    let smf = Replica::start(&c, "smf", SMF_NF, &[("PEER", &peer)]);
    tokio::task::block_in_place(|| {
        wait_for(60, "both models in dry-run", || {
            (state(&c, SMF) == "dry-run" && state(&c, UPF) == "dry-run").then_some(())
        });
        let smf_items = items(&c, SMF);
        assert!(
            smf_items
                .iter()
                .any(|i| i["entry"]["kind"] == "connect" && i["entry"]["port"] == 8805),
            "the smf learned its N4 peer: {smf_items:?}"
        );
        std::fs::write(c.dir.path().join("smf/attack"), "").unwrap();
        wait_for(30, "the attack's incident", || {
            let l = c.get("/api/v1/incidents");
            let id = l["incidents"].as_array()?.first()?["id"].as_i64()?;
            let i = c.get(&format!("/api/v1/incidents/{id}"));
            i.to_string().contains("\"clear\"").then_some(())
        });
    });
    drop(smf);

    let b = driver.browser().await;
    login(&b, &c, &operator).await;

    // The overview: every workload with its state.
    b.goto(&c.url("/ui/")).await.unwrap();
    let t = body_text(&b).await;
    assert!(
        t.contains("smf") && t.contains("upf") && t.contains("dry-run"),
        "{t}"
    );
    screenshot(&b, "overview.png").await;

    // The radar: both workloads, and the smf's N4 edge to the upf.
    b.goto(&c.url("/ui/radar")).await.unwrap();
    for id in [SMF, UPF] {
        b.find(Locator::Css(&format!("g.node[data-id='{id}']")))
            .await
            .unwrap_or_else(|_| panic!("the radar shows {id}"));
    }
    let edge = b
        .find(Locator::Css(&format!(
            "g.edge[data-from='{SMF}'][data-to='{UPF}']"
        )))
        .await
        .expect("the radar draws the edge from the smf to the upf");
    let label = edge.find(Locator::Css("text")).await.unwrap();
    let label = label.html(true).await.unwrap();
    assert!(label.contains("N4 (PFCP)"), "{label}");
    screenshot(&b, "radar.png").await;

    // The model view: learned processes, and the ports served and talked to.
    b.goto(&c.url(&format!("{}?tab=network", ui(UPF))))
        .await
        .unwrap();
    let t = body_text(&b).await;
    assert!(t.contains("serves udp port 8805"), "{t}");
    b.goto(&c.url(&format!("{}?tab=network", ui(SMF))))
        .await
        .unwrap();
    let t = body_text(&b).await;
    assert!(t.contains(&peer) && t.contains("8805"), "{t}");
    b.goto(&c.url(&ui(SMF))).await.unwrap();
    let rows = b
        .find_all(Locator::Css("table.items tr[data-kind='process']"))
        .await
        .unwrap();
    let mut processes = Vec::new();
    for r in rows {
        processes.push(r.text().await.unwrap());
    }
    assert!(
        processes
            .iter()
            .any(|r| r.contains("runs /usr/bin/true") && r.contains("learned")),
        "{processes:?}"
    );
    screenshot(&b, "model.png").await;

    // The incidents: the attack is one incident; its timeline lists the
    // attacker's commands in order.
    b.goto(&c.url("/ui/incidents")).await.unwrap();
    let rows = b
        .find_all(Locator::Css("table.incidents tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one incident");
    screenshot(&b, "incidents.png").await;
    rows[0]
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("ol.timeline"))
        .await
        .expect("the incident's page");
    let mut lines = Vec::new();
    for li in b
        .find_all(Locator::Css("ol.timeline li .cmd"))
        .await
        .unwrap()
    {
        lines.push(li.text().await.unwrap());
    }
    let at = |cmd: &str| {
        lines
            .iter()
            .position(|l| l == cmd)
            .unwrap_or_else(|| panic!("{cmd} is not in the timeline: {lines:?}"))
    };
    assert!(
        at("which ps") < at("ps -ef") && at("ps -ef") < at("clear"),
        "{lines:?}"
    );
    let t = body_text(&b).await;
    assert!(
        t.contains("smf-1") && t.contains("registry.local/smf"),
        "{t}"
    );
    screenshot(&b, "incident.png").await;

    // Approve from the model view: the smf's model is active.
    b.goto(&c.url(&ui(SMF))).await.unwrap();
    b.find(Locator::Css("button[value='approve']"))
        .await
        .expect("an operator is offered Approve")
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("section.lifecycle .badge.s-active"))
        .await
        .expect("the model view after the approve shows the model active");
    let lc = b
        .find(Locator::Css("section.lifecycle"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(lc.contains("active"), "{lc}");
    assert_eq!(tokio::task::block_in_place(|| state(&c, SMF)), "active");
    let audit = tokio::task::block_in_place(|| c.get(&format!("/api/v1/workloads/{SMF}/audit")));
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["actor"] == "alice" && a["action"] == "approve"),
        "{audit}"
    );

    // A viewer: no Approve button, and a forged approve (with the viewer's
    // own valid session and CSRF token) is refused by the server.
    login(&b, &c, &viewer).await;
    b.goto(&c.url(&ui(UPF))).await.unwrap();
    assert!(
        b.find_all(Locator::Css(
            "form[action$='/approve'], button[value='approve']"
        ))
        .await
        .unwrap()
        .is_empty(),
        "a viewer is offered no Approve"
    );
    let csrf = b
        .find(Locator::Css("input[name='csrf']"))
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let cookies: Vec<String> = b
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| format!("{}={}", k.name(), k.value()))
        .collect();
    b.close().await.unwrap();
    let (status, page) = tokio::task::block_in_place(|| {
        http(
            "POST",
            &c.url(&format!("{}/approve", ui(UPF))),
            &[
                ("cookie", cookies.join("; ")),
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ],
            Some(format!("csrf={csrf}&container=main").into_bytes()),
        )
    });
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("victor may not"), "{page}");
    assert_eq!(tokio::task::block_in_place(|| state(&c, UPF)), "dry-run");
}

/// No browser needed: the headers, the escaping of what an attacker names,
/// and the CSRF check.
#[test]
fn pages_are_escaped_framed_by_a_strict_policy_and_forms_need_their_csrf_token() {
    let c = Console::start();
    let evil = "/tmp/<script>alert(1)</script>";
    let sync = json!({
        "workload": {"cluster": "local", "namespace": "core", "kind": "Deployment", "name": "smf"},
        "container": "main", "pod": {"name": "smf-1", "addresses": ["10.1.0.7"]}, "instance": "i-1",
        "want": {"mode": "enforce", "learning_period_ms": 600000},
        "batch": 1,
        "observations": [{"item": {"kind": "process", "exe": evil, "parent": "(launcher)"}, "count": 1, "first_ms": 1, "last_ms": 2}],
    });
    let (s, b) = http(
        "POST",
        &c.url("/api/v1/sync"),
        &[
            ("authorization", format!("Bearer {JOIN}")),
            ("content-type", "application/json".into()),
        ],
        Some(sync.to_string().into_bytes()),
    );
    assert_eq!(s, 200, "{b}");
    // Without a session: the login form.
    let (s, _) = http("GET", &c.url("/ui/"), &[], None);
    assert_eq!(s, 303);
    // Log in with the admin token (the CSRF cookie first, from the form).
    let a = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client::request(
            "GET".parse().unwrap(),
            &c.url("/ui/login"),
            &[],
            None,
            None,
            Duration::from_secs(10),
        ))
        .unwrap();
    let h = |k: &str| a.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(h("content-security-policy").contains("default-src 'none'"));
    assert!(h("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(h("x-frame-options"), "DENY");
    let set = h("set-cookie");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let csrf_cookie = set.split(';').next().unwrap().to_string();
    let form = String::from_utf8_lossy(&a.body).into_owned();
    let csrf = form
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let post = |path: &str, cookie: &str, body: String| {
        http(
            "POST",
            &c.url(path),
            &[
                ("cookie", cookie.to_string()),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            Some(body.into_bytes()),
        )
    };
    let (s, _) = post(
        "/ui/login",
        &csrf_cookie,
        format!("token={ADMIN}&csrf=forged"),
    );
    assert_eq!(s, 403, "a login without the form's CSRF token");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt
        .block_on(client::request(
            "POST".parse().unwrap(),
            &c.url("/ui/login"),
            &[
                ("cookie", csrf_cookie.clone()),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            Some(format!("token={ADMIN}&csrf={csrf}").into_bytes()),
            None,
            Duration::from_secs(10),
        ))
        .unwrap();
    assert_eq!(a.status.as_u16(), 303);
    let session = a
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let cookie = format!("{csrf_cookie}; {session}");
    let (s, page) = http(
        "GET",
        &c.url(&format!("{}?tab=process", ui(SMF))),
        &[("cookie", cookie.clone())],
        None,
    );
    assert_eq!(s, 200);
    assert!(!page.contains("<script>alert(1)"), "{page}");
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    // An admin's approve without the CSRF token is refused, with it done.
    let (s, _) = post(&format!("{}/approve", ui(SMF)), &cookie, "csrf=nope".into());
    assert_eq!(s, 403);
    assert_eq!(state(&c, SMF), "learning");
    let (s, _) = post(
        &format!("{}/approve", ui(SMF)),
        &cookie,
        format!("csrf={csrf}"),
    );
    assert_eq!(s, 303);
    assert_eq!(state(&c, SMF), "active");
}

/// Behind an auth proxy: the header names the user, who has the configured
/// role (here viewer: reads, and a forged approve is refused); without the
/// header, the login form as before.
#[test]
fn an_auth_proxy_names_the_user_who_gets_the_configured_role() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-secret-only-the-proxy-and-the-console-know";
    let secret_file = dir.path().join("proxy.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let c = Console::start_with(&[
        "--auth-proxy-header",
        "X-Forwarded-User",
        "--auth-proxy-role",
        "viewer",
        "--auth-proxy-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    let user = [
        ("x-forwarded-user", "bob".to_string()),
        ("nfguard-proxy-secret", secret.to_string()),
    ];
    let (s, page) = http("GET", &c.url("/ui/incidents"), &user, None);
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("bob (viewer)"), "{page}");
    let (s, _) = http("GET", &c.url("/ui/incidents"), &[], None);
    assert_eq!(s, 303, "no header: the login form");
    // Straight to the console's port (as code in a monitored pod can): the
    // user header without the proxy's secret, or with a wrong one, is nobody.
    for forged in [
        vec![user[0].clone()],
        vec![
            user[0].clone(),
            ("nfguard-proxy-secret", "guess".to_string()),
        ],
    ] {
        let (s, _) = http("GET", &c.url("/ui/incidents"), &forged, None);
        assert_eq!(s, 303, "{forged:?} must not be believed");
    }
    // The CSRF cookie and its form token, then a viewer's approve: 403.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let a = rt
        .block_on(client::request(
            "GET".parse().unwrap(),
            &c.url("/ui/"),
            &user,
            None,
            None,
            Duration::from_secs(10),
        ))
        .unwrap();
    let cookie = a.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let page = String::from_utf8_lossy(&a.body).into_owned();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (s, page) = http(
        "POST",
        &c.url(&format!("{}/approve", ui(SMF))),
        &[
            user[0].clone(),
            user[1].clone(),
            ("cookie", cookie.clone()),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        Some(format!("csrf={csrf}").into_bytes()),
    );
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("bob may not"), "{page}");
    // The same form sent from a sibling site's page (same-site, which
    // SameSite=Strict lets through): refused before anything else.
    let (s, page) = http(
        "POST",
        &c.url(&format!("{}/approve", ui(SMF))),
        &[
            user[0].clone(),
            user[1].clone(),
            ("cookie", cookie),
            ("sec-fetch-site", "same-site".into()),
            ("content-type", "application/x-www-form-urlencoded".into()),
        ],
        Some(format!("csrf={csrf}").into_bytes()),
    );
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("another site"), "{page}");
}
