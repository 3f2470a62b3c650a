//! The whole path in a real pod: an NF pod (osmo-hlr, no `command`, exec
//! probes) is admitted by the real injector over HTTPS (which resolves the
//! entrypoint from a real registry on loopback), the patch is applied, podman
//! plays the result, nfguard learns, and then an attacker's `which ps`,
//! `ps -ef` and `sh -c 'clear; cat /etc/passwd > /tmp/x'` are flagged (alert)
//! or fail (enforce) while the NF keeps serving and its probes stay silent.
//!
//! Needs root, podman, docker-registry, osmo-hlr, curl and openssl
//! (`scripts/setup` installs them); under CI=true a missing one is a failure.
//! The images are built by `scripts/build-images`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn release(bin: &str) -> PathBuf {
    repo()
        .join("target/x86_64-unknown-linux-gnu/release")
        .join(bin)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Everything this test needs, or why not: a failure in CI, a skip elsewhere.
fn prerequisites() -> bool {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root".to_string());
    }
    for (prog, pkg) in [
        ("podman", "podman"),
        ("docker-registry", "docker-registry"),
        ("osmo-hlr", "osmo-hlr"),
        ("curl", "curl"),
        ("openssl", "openssl"),
        ("nsenter", "util-linux"),
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {prog}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            missing.push(format!("{prog} (apt-get install {pkg})"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "the pod test needs {}; scripts/setup installs them",
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

static IMAGES: Once = Once::new();

fn build_images() {
    IMAGES.call_once(|| {
        if std::env::var_os("NFGUARD_E2E_IMAGES_BUILT").is_some() {
            return; // a developer's loop: the images are already there
        }
        let o = run(Command::new(repo().join("scripts/build-images")).current_dir(repo()));
        assert!(
            o.status.success(),
            "scripts/build-images failed:\n{}",
            text(&o)
        );
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} does not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Processes and pods that must not outlive the test, whatever happens.
struct Cleanup {
    children: Vec<Child>,
    pods: Vec<String>,
    images: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pod in &self.pods {
            let _ = Command::new("podman")
                .args(["pod", "rm", "-f", pod])
                .output();
            let _ = Command::new("podman")
                .args(["volume", "rm", "-f", &format!("nfguard-{pod}")])
                .output();
        }
        for image in &self.images {
            let _ = Command::new("podman").args(["rmi", "-f", image]).output();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Stage {
    dir: PathBuf,
    registry_port: u16,
    injector_port: u16,
    cleanup: Cleanup,
}

/// A registry on loopback holding the NF image, and the injector over HTTPS.
fn stage(dir: &Path) -> Stage {
    let mut cleanup = Cleanup {
        children: Vec::new(),
        pods: Vec::new(),
        images: Vec::new(),
    };
    let registry_port = free_port();
    std::fs::write(
        dir.join("registry.yml"),
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{registry_port}\n",
            dir.join("registry").display()
        ),
    )
    .unwrap();
    cleanup.children.push(
        Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("registry.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(registry_port, "docker-registry");
    let image = format!("127.0.0.1:{registry_port}/nf-osmo-hlr:dev");
    cleanup.images.push(image.clone());
    let o = run(Command::new("podman").args([
        "push",
        "-q",
        "--tls-verify=false",
        "localhost/nf-osmo-hlr:dev",
        &image,
    ]));
    assert!(o.status.success(), "push: {}", text(&o));
    // A self-signed serving certificate for 127.0.0.1.
    let o = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=nfguard-injector",
        ])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt")));
    assert!(o.status.success(), "openssl: {}", text(&o));
    let injector_port = free_port();
    cleanup.children.push(
        Command::new(release("nfguard-injector"))
            .arg("serve")
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .args(["--listen", &format!("127.0.0.1:{injector_port}")])
            .args(["--sidecar-image", "localhost/nfguard-sidecar:dev"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(injector_port, "nfguard-injector");
    Stage {
        dir: dir.to_path_buf(),
        registry_port,
        injector_port,
        cleanup,
    }
}

impl Stage {
    /// Sends the pod to the injector as the API server would and applies the patch.
    fn admit(&self, pod: &Value) -> Value {
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "e2e-0001",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": pod["metadata"]["namespace"],
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": pod,
                "dryRun": false
            }
        });
        let path = self.dir.join("review.json");
        std::fs::write(&path, serde_json::to_vec(&review).unwrap()).unwrap();
        let o = run(Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(self.dir.join("tls.crt"))
            .args(["-H", "Content-Type: application/json", "--data-binary"])
            .arg(format!("@{}", path.display()))
            .arg(format!("https://127.0.0.1:{}/mutate", self.injector_port)));
        assert!(o.status.success(), "admission over HTTPS: {}", text(&o));
        let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
        let response = &answer["response"];
        assert_eq!(response["uid"], "e2e-0001");
        assert_eq!(response["allowed"], true, "{answer}");
        assert_eq!(response["patchType"], "JSONPatch", "{answer}");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(
                response["patch"]
                    .as_str()
                    .expect("the patch is a base64 string"),
            )
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
        let mut pod = pod.clone();
        json_patch::patch(&mut pod, &patch).unwrap();
        pod
    }
}

/// Podman 4.3 has no native sidecars (an init container with restartPolicy
/// Always would have to finish first), so the sidecar becomes the first
/// regular container, and an init container puts the launcher into the shared
/// volume beforehand, as the native sidecar's start-up does in a cluster.
fn for_podman(mut pod: Value) -> Value {
    let mut inits = pod["spec"]
        .as_object_mut()
        .unwrap()
        .remove("initContainers")
        .expect("the injected sidecar");
    let mut sidecar = inits.as_array_mut().unwrap().remove(0);
    assert_eq!(sidecar["name"], "nfguard");
    assert_eq!(sidecar["restartPolicy"], "Always", "a native sidecar");
    // Podman 4.3's downward API knows metadata.name (kept, so it is tested for
    // real) but not namespace, uid or nodeName: those become the values a
    // kubelet would have put there.
    let namespace = pod["metadata"]["namespace"].clone();
    for var in sidecar["env"].as_array_mut().unwrap() {
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => namespace.clone(),
            Some("metadata.uid") => json!("podman-pod"),
            Some("spec.nodeName") => json!("localhost"),
            _ => continue,
        };
        let v = var.as_object_mut().unwrap();
        v.remove("valueFrom");
        v.insert("value".into(), value);
    }
    let spec = pod["spec"].as_object_mut().unwrap();
    let sidecar_obj = sidecar.as_object_mut().unwrap();
    sidecar_obj.remove("restartPolicy");
    sidecar_obj.remove("startupProbe");
    let install = json!({
        "name": "nfguard-install",
        "image": sidecar["image"],
        "command": ["/usr/bin/nfguard", "install-launcher"],
        "volumeMounts": sidecar["volumeMounts"],
    });
    spec.insert("initContainers".into(), json!([install]));
    spec["containers"]
        .as_array_mut()
        .unwrap()
        .insert(0, sidecar);
    // Podman 4.3 makes an emptyDir a *named* volume, shared by every pod that
    // uses the name and kept after the pod: give each pod its own, as a
    // kubelet's emptyDir is.
    let volume = format!("nfguard-{}", pod["metadata"]["name"].as_str().unwrap());
    let rename = |mounts: &mut Value| {
        for m in mounts.as_array_mut().into_iter().flatten() {
            if m["name"] == "nfguard" {
                m["name"] = json!(volume);
            }
        }
    };
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().unwrap() {
            rename(&mut c["volumeMounts"]);
        }
    }
    rename(&mut pod["spec"]["volumes"]);
    let annotations = pod["metadata"]["annotations"].as_object_mut().unwrap();
    annotations.insert(
        "io.podman.annotations.init.container.type".into(),
        json!("always"),
    );
    // Podman 4.3 refuses annotation values over 63 characters (a label rule it
    // applies to annotations too); the status annotation is for the injector's
    // second pass, which does not happen here.
    annotations.remove("nfguard.io/status");
    pod
}

/// The pod's sidecar container name under podman.
fn ctr(pod: &str, name: &str) -> String {
    format!("{pod}-{name}")
}

fn pid_of(container: &str) -> i32 {
    let o = run(Command::new("podman").args(["inspect", "-f", "{{.State.Pid}}", container]));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Runs `f` in the network namespace of `pid` (the pod's), on its own thread.
fn in_netns<T: Send + 'static>(pid: i32, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// An HTTP GET to the sidecar's API on the pod's loopback.
fn api_get(pid: i32, path: &str) -> (u16, String) {
    let path = path.to_string();
    in_netns(pid, move || {
        let mut s =
            std::net::TcpStream::connect("127.0.0.1:9901").expect("the sidecar API listens");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: nfguard\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let code = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    })
}

/// Does the NF answer on its GSUP port (from inside the pod's network)?
fn nf_serves(pid: i32) -> bool {
    in_netns(pid, || {
        std::net::TcpStream::connect_timeout(
            &"127.0.0.1:4222".parse().unwrap(),
            Duration::from_secs(2),
        )
        .is_ok()
    })
}

fn podman_exec(container: &str, cmd: &[&str]) -> Output {
    run(Command::new("podman").args(["exec", container]).args(cmd))
}

/// The sidecar's events: JSON lines on its stdout.
fn sidecar_events(pod: &str) -> Vec<Value> {
    let o = run(Command::new("podman").args(["logs", &ctr(pod, "nfguard")]));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn sidecar_log(pod: &str) -> String {
    let o = run(Command::new("podman").args(["logs", &ctr(pod, "nfguard")]));
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs the exec probe every 2 s, as the kubelet does, until dropped; counts failures.
struct Prober {
    stop: Arc<AtomicBool>,
    runs: Arc<Mutex<(u32, u32)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(container: String) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(Mutex::new((0, 0)));
        let (s, r) = (Arc::clone(&stop), Arc::clone(&runs));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let ok = podman_exec(&container, &["sh", "/scripts/live-ready.sh"])
                    .status
                    .success();
                let mut g = r.lock().unwrap();
                g.0 += 1;
                if !ok {
                    g.1 += 1;
                }
                drop(g);
                std::thread::sleep(Duration::from_secs(2));
            }
        });
        Prober {
            stop,
            runs,
            thread: Some(thread),
        }
    }
    fn counts(&self) -> (u32, u32) {
        *self.runs.lock().unwrap()
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Plays the NF pod in `mode` and waits until it has learned and switched.
/// Returns the stage (for cleanup), the sidecar's pid and the NF image name.
fn play_learned(
    name: &str,
    mode: &str,
    sessions: &str,
    dir: &Path,
) -> (Stage, i32, String, Prober) {
    let mut stage = stage(dir);
    let image = format!("127.0.0.1:{}/nf-osmo-hlr:dev", stage.registry_port);
    let manifest = std::fs::read_to_string(repo().join("tests/fixtures/hlr-pod.yaml"))
        .unwrap()
        .replace("name: hlr", &format!("name: {name}"))
        .replace("MODE", mode)
        .replace("PERIOD", "25s")
        .replace("SESSIONS", sessions)
        .replace("IMAGE", &image);
    let pod: Value = serde_yaml::from_str(&manifest).unwrap();
    let injected = stage.admit(&pod);
    // What the injector did: sidecar first, volume in both, launcher wrapping the image's entrypoint.
    let nf = &injected["spec"]["containers"][0];
    assert_eq!(injected["spec"]["initContainers"][0]["name"], "nfguard");
    assert_eq!(
        nf["command"],
        json!(["/nfguard/bin/nfguard-launch", "--", "/usr/bin/osmo-hlr"])
    );
    assert_eq!(
        nf["args"],
        json!([
            "-c",
            "/etc/osmocom/osmo-hlr.cfg",
            "-l",
            "/var/lib/osmocom/hlr.db"
        ])
    );
    assert_eq!(injected["spec"]["shareProcessNamespace"], true);
    let played = for_podman(injected);
    let file = dir.join("pod.yaml");
    std::fs::write(&file, serde_yaml::to_string(&played).unwrap()).unwrap();
    stage.cleanup.pods.push(name.to_string());
    // A pod of that name left by an interrupted run would make `kube play` fail.
    let _ = run(Command::new("podman").args(["pod", "rm", "-f", name]));
    let _ = run(Command::new("podman").args(["volume", "rm", "-f", &format!("nfguard-{name}")]));
    let o = run(Command::new("podman")
        .args(["kube", "play", "--tls-verify=false"])
        .arg(&file));
    assert!(o.status.success(), "podman kube play: {}", text(&o));
    let sidecar = ctr(name, "nfguard");
    let deadline = Instant::now() + Duration::from_secs(90);
    let (pid_sidecar, pid_nf) = loop {
        let (s, n) = (pid_of(&sidecar), pid_of(&ctr(name, "nf")));
        if s > 0 && n > 0 && nf_serves(n) {
            break (s, n);
        }
        assert!(
            Instant::now() < deadline,
            "the pod did not come up; sidecar log:\n{}",
            sidecar_log(name)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = pid_nf;
    // The kubelet's probes, from now on; and the NF's own traffic.
    let prober = Prober::start(ctr(name, "nf"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sidecar_log(name).contains("learning period over") {
        assert!(
            Instant::now() < deadline,
            "learning never ended; sidecar log:\n{}",
            sidecar_log(name)
        );
        assert!(
            nf_serves(pid_sidecar),
            "the NF stopped serving while learning"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    (stage, pid_sidecar, image, prober)
}

/// The attacker's commands, as `kubectl exec` runs them without the exec rule
/// (unwrapped) and with it (wrapped in the launcher by the injector).
const ATTACKS: [&[&str]; 3] = [
    &["which", "ps"],
    &["ps", "-ef"],
    &["sh", "-c", "clear; cat /etc/passwd > /tmp/x"],
];

fn wrapped<'a>(session: &'a str, cmd: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "/nfguard/bin/nfguard-launch",
        "--container",
        "nf",
        "--session",
        session,
        "--user",
        "alice",
        "--",
    ];
    v.extend_from_slice(cmd);
    v
}

fn find<'a>(events: &'a [Value], needle: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| {
            e["path"].as_str().is_some_and(|p| p.ends_with(needle))
                || e["argv"]
                    .as_array()
                    .is_some_and(|a| a.first().and_then(|x| x.as_str()) == Some(needle))
        })
        .collect()
}

fn check_context(e: &Value, pod: &str, image: &str) {
    assert_eq!(e["namespace"], "core", "{e}");
    assert_eq!(e["pod"], pod, "{e}");
    assert_eq!(e["container"], "nf", "{e}");
    assert_eq!(e["image"], image, "{e}");
    for f in [
        "time", "pid", "ppid", "argv", "reason", "category", "verdict",
    ] {
        assert!(!e[f].is_null(), "{f} missing: {e}");
    }
}

#[test]
fn alert_mode_flags_the_attackers_commands_and_leaves_the_nf_and_its_probes_alone() {
    if !prerequisites() {
        return;
    }
    build_images();
    let dir = tempfile_dir("alert");
    let pod = "hlr-alert";
    let (stage, pid, image, prober) = play_learned(pod, "alert", "alert", &dir);
    let before = sidecar_events(pod).len();
    for cmd in ATTACKS {
        let o = podman_exec(&ctr(pod, "nf"), cmd);
        assert!(
            o.status.success() || cmd[0] == "sh",
            "alert mode lets {cmd:?} run: {}",
            text(&o)
        );
    }
    for cmd in ATTACKS {
        let o = podman_exec(&ctr(pod, "nf"), &wrapped("e2e-alert", cmd));
        assert!(
            o.status.success() || cmd[0] == "sh",
            "alert mode lets wrapped {cmd:?} run: {}\nsidecar log:\n{}",
            text(&o),
            sidecar_log(pod)
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let events = sidecar_events(pod);
    let new = &events[before..];
    let log = sidecar_log(pod);
    for name in ["which", "ps", "clear"] {
        let hits = find(new, name);
        assert!(!hits.is_empty(), "no event for {name}; sidecar log:\n{log}");
        for e in &hits {
            check_context(e, pod, &image);
            assert_eq!(e["verdict"], "alert");
        }
    }
    // The wrapped session's events name the API user and the session.
    let wrapped_events: Vec<&Value> = new.iter().filter(|e| e["session"] == "e2e-alert").collect();
    assert!(wrapped_events.iter().any(|e| e["user"] == "alice" && e["path"].as_str().is_some_and(|p| p.ends_with("/ps"))), "{log}");
    // Nothing about the NF itself or its probes.
    let (probes, probe_failures) = prober.counts();
    assert!(
        probes >= 3 && probe_failures == 0,
        "probes {probes}, failed {probe_failures}"
    );
    for e in &events {
        assert_ne!(
            e["exe"], "/usr/bin/osmo-hlr",
            "the NF's own activity was flagged: {e}"
        );
        let argv = e["argv"].to_string();
        assert!(
            !argv.contains("live-ready"),
            "a learned probe was flagged: {e}"
        );
    }
    assert!(nf_serves(pid), "the NF must still serve");
    // The API: health, model, events.
    assert_eq!(api_get(pid, "/healthz").0, 200);
    let (code, model) = api_get(pid, "/model");
    assert_eq!(code, 200);
    assert!(model.contains("/usr/bin/osmo-hlr"), "{model}");
    let (code, body) = api_get(pid, "/events");
    assert_eq!(code, 200);
    let api_events: Value = serde_json::from_str(&body).unwrap();
    assert!(
        api_events.as_array().is_some_and(|a| a.len() >= 3),
        "{body}"
    );
    if std::env::var_os("NFGUARD_DEMO").is_some() {
        // scripts/demo: show what a responder would see.
        println!("\n== alerts raised in pod {pod} after learning\n");
        for e in new {
            println!(
                "{}  {:5}  {}/{} container {}  pid {} (parent {})  {}  {}\n    session {}{}  why: {}",
                e["time"].as_str().unwrap_or(""),
                e["verdict"].as_str().unwrap_or(""),
                e["namespace"].as_str().unwrap_or(""),
                e["pod"].as_str().unwrap_or(""),
                e["container"].as_str().unwrap_or(""),
                e["pid"],
                e["ppid"],
                e["path"].as_str().or(e["address"].as_str()).unwrap_or(""),
                e["argv"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
                e["session"].as_str().unwrap_or(""),
                e["user"].as_str().map(|u| format!(" (user {u})")).unwrap_or_default(),
                e["reason"].as_str().unwrap_or(""),
            );
        }
        let (_, timeline) = api_get(pid, "/timeline?format=text&session=e2e-alert");
        println!("\n== timeline of the exec session e2e-alert (GET /timeline?format=text&session=e2e-alert)\n\n{timeline}");
    }
    drop(prober);
    drop(stage);
}

#[test]
fn enforce_mode_makes_the_attackers_commands_fail_and_the_nf_keeps_serving() {
    if !prerequisites() {
        return;
    }
    build_images();
    let dir = tempfile_dir("enforce");
    let pod = "hlr-enforce";
    let (stage, pid, image, prober) = play_learned(pod, "enforce", "deny", &dir);
    for cmd in ATTACKS {
        let o = podman_exec(&ctr(pod, "nf"), &wrapped("e2e-enforce", cmd));
        let why = format!(
            "wrapped {cmd:?}: {}\nsidecar log:\n{}",
            text(&o),
            sidecar_log(pod)
        );
        assert!(!o.status.success(), "enforce mode must refuse {why}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("Operation not permitted"),
            "{why}"
        );
    }
    let nf_pid = pid_of(&ctr(pod, "nf"));
    assert!(
        !Path::new(&format!("/proc/{nf_pid}/root/tmp/x")).exists(),
        "the attacker's file was written"
    );
    // Unwrapped (no exec rule in the cluster): the runtime starts these outside
    // any filter, so nothing can refuse their first exec; the watcher reports
    // each one and, under exec-sessions=deny, kills what it catches alive.
    let before = sidecar_events(pod).len();
    for cmd in ATTACKS {
        podman_exec(&ctr(pod, "nf"), cmd);
    }
    std::thread::sleep(Duration::from_secs(3));
    let events = sidecar_events(pod);
    let log = sidecar_log(pod);
    let seen: Vec<String> = events[before..]
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["verdict"], e["path"], e["argv"], e["reason"]
            )
        })
        .collect();
    for name in ["which.debianutils", "ps"] {
        assert!(
            !find(&events[before..], name).is_empty(),
            "no event for unwrapped {name}; new events:\n{}\nlog:\n{log}",
            seen.join("\n")
        );
    }
    let denied: Vec<&Value> = events.iter().filter(|e| e["verdict"] == "deny").collect();
    assert!(denied.len() >= 3, "{log}");
    for e in denied.iter().filter(|e| e["session"] == "e2e-enforce") {
        check_context(e, pod, &image);
        assert_eq!(e["user"], "alice");
    }
    let (probes, probe_failures) = prober.counts();
    assert!(
        probes >= 3 && probe_failures == 0,
        "probes {probes}, failed {probe_failures}; log:\n{log}"
    );
    assert!(nf_serves(pid), "the NF must still serve");
    drop(prober);
    drop(stage);
}

fn tempfile_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nfguard-e2e-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
