//! Real things for the tests: a real registry (Debian's `docker-registry`) on loopback, a
//! real HTTPS webhook server with a test CA made by rcgen, real HTTP clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use nfguard_injector::review::Injector;
use nfguard_injector::tls::CertStore;
use nfguard_injector::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const LAUNCHER: &str = nfguard_common::paths::LAUNCHER;

pub fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fixture document as JSON, with `REGISTRY` replaced by `registry`.
pub fn fixture_json(name: &str, registry: &str) -> Value {
    let text = fixture(name).replace("REGISTRY", registry);
    serde_yaml::from_str(&text).unwrap()
}

// ---------- plain HTTP(S) client ----------

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One request on a new connection (TLS when `tls` is given, with SNI `localhost`).
pub async fn request(
    addr: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = match tls {
        Some(cfg) => {
            let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
            let name = rustls::pki_types::ServerName::try_from(host).unwrap();
            let s = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .unwrap();
            send(TokioIo::new(s), req).await
        }
        None => send(TokioIo::new(tcp), req).await,
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

async fn send<I>(io: I, req: Request<Full<Bytes>>) -> hyper::Response<hyper::body::Incoming>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

// ---------- registry ----------

fn find_registry() -> PathBuf {
    let fixed = PathBuf::from("/usr/bin/docker-registry");
    if fixed.exists() {
        return fixed;
    }
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("docker-registry")).find(|p| p.exists()))
        .unwrap_or_else(|| {
            panic!("docker-registry not found: these tests need a real OCI registry; run `apt-get install docker-registry`")
        })
}

/// Debian's docker-registry (the CNCF distribution registry) on a loopback port.
pub struct Registry {
    child: Child,
    pub addr: String,
    /// Set when the registry serves HTTPS (trusting the test CA).
    tls: Option<Arc<rustls::ClientConfig>>,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

impl Registry {
    pub async fn start() -> Registry {
        Self::start_on("127.0.0.1", None).await
    }

    /// A registry serving HTTPS on `ip` with a certificate from `ca` for that address.
    pub async fn start_tls(ip: &str, ca: &TestCa) -> Registry {
        Self::start_on(ip, Some(ca)).await
    }

    async fn start_on(ip: &str, ca: Option<&TestCa>) -> Registry {
        let bin = find_registry();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("{ip}:{port}");
        let mut tls_config = String::new();
        if let Some(ca) = ca {
            let (cert, key) = ca.leaf_for(&[ip]);
            std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
            std::fs::write(dir.path().join("tls.key"), key).unwrap();
            tls_config = format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("tls.crt").display(),
                dir.path().join("tls.key").display()
            );
        }
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n{tls_config}",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(&bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let reg = Registry {
            child,
            addr,
            tls: ca.map(TestCa::client_config),
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(tcp) = tokio::net::TcpStream::connect(&reg.addr).await {
                drop(tcp);
                let r = reg.call("GET", "/v2/", &[], vec![]).await;
                if r.status == StatusCode::OK {
                    return reg;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "docker-registry did not come up on {}",
                reg.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        request(&self.addr, self.tls.clone(), method, path, headers, body).await
    }

    /// Uploads a blob through the registry's HTTP API (monolithic upload), returns its digest.
    pub async fn push_blob(&self, name: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let r = self
            .call(
                "POST",
                &format!("/v2/{name}/blobs/uploads/"),
                &[("content-length", "0")],
                vec![],
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        let location = r.headers["location"].to_str().unwrap().to_string();
        let path = location
            .strip_prefix(&format!("http://{}", self.addr))
            .or_else(|| location.strip_prefix(&format!("https://{}", self.addr)))
            .unwrap_or(&location)
            .to_string();
        let sep = if path.contains('?') { '&' } else { '?' };
        let r = self
            .call(
                "PUT",
                &format!("{path}{sep}digest={digest}"),
                &[("content-type", "application/octet-stream")],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        digest
    }

    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self
            .call(
                "PUT",
                &format!("/v2/{name}/manifests/{reference}"),
                &[("content-type", media_type)],
                body.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        sha256(body)
    }

    /// Pushes a one-layer OCI image whose config has this Entrypoint and Cmd; returns the
    /// manifest's digest.
    pub async fn push_image(
        &self,
        name: &str,
        tag: &str,
        entrypoint: Option<&[&str]>,
        cmd: Option<&[&str]>,
    ) -> String {
        let (manifest, _) = self.image_manifest(name, entrypoint, cmd, "amd64").await;
        self.put_manifest(
            name,
            tag,
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .await
    }

    async fn image_manifest(
        &self,
        name: &str,
        entrypoint: Option<&[&str]>,
        cmd: Option<&[&str]>,
        arch: &str,
    ) -> (Vec<u8>, String) {
        let layer = format!("layer of {name} for {arch}").into_bytes();
        let layer_digest = self.push_blob(name, &layer).await;
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }))
        .unwrap();
        let config_digest = self.push_blob(name, &config).await;
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        }))
        .unwrap();
        let digest = sha256(&manifest);
        (manifest, digest)
    }

    /// Pushes a multi-platform index: an arm64 image first (a different entrypoint, which
    /// must not be picked), then the amd64 one.
    pub async fn push_index(&self, name: &str, tag: &str, entrypoint: &[&str], cmd: &[&str]) {
        let mut entries = Vec::new();
        for (arch, ep) in [
            ("arm64", vec!["/wrong-arch"]),
            ("amd64", entrypoint.to_vec()),
        ] {
            let (m, d) = self.image_manifest(name, Some(&ep), Some(cmd), arch).await;
            self.put_manifest(name, &d, "application/vnd.oci.image.manifest.v1+json", &m)
                .await;
            entries.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": d, "size": m.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        self.put_manifest(name, tag, "application/vnd.oci.image.index.v1+json", &index)
            .await;
    }
}

// ---------- TLS test CA ----------

pub struct TestCa {
    pub cert: rcgen::Certificate,
    pub key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    /// A serving certificate for localhost / 127.0.0.1: (cert PEM, key PEM).
    pub fn leaf(&self) -> (String, String) {
        self.leaf_for(&["localhost", "127.0.0.1"])
    }

    /// A serving certificate for these names or addresses: (cert PEM, key PEM).
    pub fn leaf_for(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.der().clone()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Arc::new(cfg)
    }
}

// ---------- the webhook ----------

pub struct Webhook {
    pub addr: SocketAddr,
    pub tls: Arc<rustls::ClientConfig>,
    pub injector: Arc<Injector>,
    pub dir: tempfile::TempDir,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub certs: Arc<CertStore>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the real server on 127.0.0.1:0 with a fresh test CA.
pub async fn start_webhook(config: Config) -> Webhook {
    let ca = TestCa::new("nfguard test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let certs = CertStore::new(cert_path.clone(), key_path.clone()).unwrap();
    certs.spawn_reloader(Duration::from_millis(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let injector = Arc::new(Injector::new(config));
    let task = tokio::spawn(nfguard_injector::server::serve(
        listener,
        certs.clone(),
        injector.clone(),
    ));
    Webhook {
        addr,
        tls: ca.client_config(),
        injector,
        dir,
        cert_path,
        key_path,
        certs,
        task,
    }
}

pub fn review(pod: &Value, namespace: &str, dry_run: bool) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": pod["metadata"]["name"].as_str().unwrap_or(""),
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": ["system:serviceaccounts"]},
            "object": pod,
            "oldObject": null,
            "dryRun": dry_run,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        }
    })
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// What the webhook answered for one pod.
pub struct Admitted {
    pub response: Value,
    /// The pod after applying the returned patch (the pod itself when there is none).
    pub pod: Value,
    pub patched: bool,
}

impl Admitted {
    pub fn allowed(&self) -> bool {
        self.response["allowed"] == true
    }
    pub fn warnings(&self) -> String {
        self.response["warnings"].to_string()
    }
    pub fn message(&self) -> String {
        self.response["status"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Webhook {
    pub async fn post(&self, content_type: &str, body: Vec<u8>) -> Reply {
        request(
            &self.addr.to_string(),
            Some(self.tls.clone()),
            "POST",
            "/mutate",
            &[("content-type", content_type)],
            body,
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        request(
            &self.addr.to_string(),
            Some(self.tls.clone()),
            "GET",
            path,
            &[],
            vec![],
        )
        .await
    }

    /// Sends a real AdmissionReview over HTTPS and applies the returned patch.
    pub async fn admit_with(&self, pod: &Value, namespace: &str, dry_run: bool) -> Admitted {
        let r = self
            .post(
                "application/json",
                serde_json::to_vec(&review(pod, namespace, dry_run)).unwrap(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        let response = v["response"].clone();
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        let mut out = pod.clone();
        let patched = match response.get("patch") {
            None => false,
            Some(p) => {
                let text = p
                    .as_str()
                    .unwrap_or_else(|| panic!("patch must be a base64 string, got {p}"));
                assert_eq!(response["patchType"], "JSONPatch");
                let patch: json_patch::Patch =
                    serde_json::from_slice(&base64_decode(text)).unwrap();
                json_patch::patch(&mut out, &patch.0).unwrap();
                true
            }
        };
        Admitted {
            response,
            pod: out,
            patched,
        }
    }

    pub async fn admit(&self, pod: &Value) -> Admitted {
        self.admit_with(pod, "oai", false).await
    }
}

// ---------- the API server's pod endpoint ----------

/// Stands in for the Kubernetes API server's `GET /api/v1/namespaces/NS/pods/NAME` over real
/// HTTPS on loopback (no cluster runs on these machines): answers the pods it was given, 404
/// for the others, 401 without the bearer token. Records the paths it was asked for.
pub struct PodApi {
    pub url: String,
    pub ca: TestCa,
    pub token_file: PathBuf,
    pub asked: Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodApi {
    pub async fn start(pods: Vec<Value>) -> PodApi {
        let ca = TestCa::new("kubernetes CA");
        let (cert, key) = ca.leaf();
        let certs: Vec<_> = rustls_pemfile::certs(&mut cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut key.as_bytes())
            .unwrap()
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "test-token\n").unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "https://localhost:{}",
            listener.local_addr().unwrap().port()
        );
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let pods = Arc::new(pods);
        let log = asked.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, pods, log) = (acceptor.clone(), pods.clone(), log.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (pods, log) = (pods.clone(), log.clone());
                            async move {
                                let path = req.uri().path().to_string();
                                log.lock().unwrap().push(path.clone());
                                let authorized = req
                                    .headers()
                                    .get(hyper::header::AUTHORIZATION)
                                    .is_some_and(|v| v == "Bearer test-token");
                                let found = pods.iter().find(|p| {
                                    path == format!(
                                        "/api/v1/namespaces/{}/pods/{}",
                                        p["metadata"]["namespace"].as_str().unwrap_or(""),
                                        p["metadata"]["name"].as_str().unwrap_or("")
                                    )
                                });
                                let (status, body) = match (authorized, found) {
                                    (false, _) => (
                                        StatusCode::UNAUTHORIZED,
                                        json!({"kind": "Status", "code": 401}),
                                    ),
                                    (true, None) => (
                                        StatusCode::NOT_FOUND,
                                        json!({"kind": "Status", "code": 404}),
                                    ),
                                    (true, Some(p)) => (StatusCode::OK, p.clone()),
                                };
                                let mut resp =
                                    hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                                *resp.status_mut() = status;
                                Ok::<_, std::convert::Infallible>(resp)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        PodApi {
            url,
            ca,
            token_file,
            asked,
            _dir: dir,
            task,
        }
    }

    pub fn config(&self) -> nfguard_injector::apiserver::ApiServerConfig {
        nfguard_injector::apiserver::ApiServerConfig {
            url: self.url.clone(),
            token_file: Some(self.token_file.clone()),
            ca: vec![self.ca.cert.der().clone()],
        }
    }
}

/// An AdmissionReview for `kubectl exec` (CONNECT pods/exec), as the API server sends it.
pub fn exec_review(uid: &str, namespace: &str, pod: &str, user: &str, options: Value) -> Value {
    let opts_kind = json!({"group": "", "version": "v1", "kind": "PodExecOptions"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    let sub = if options["kind"] == "PodAttachOptions" {
        "attach"
    } else {
        "exec"
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": opts_kind, "resource": gvr, "subResource": sub,
            "requestKind": opts_kind, "requestResource": gvr, "requestSubResource": sub,
            "name": pod, "namespace": namespace,
            "operation": "CONNECT",
            "userInfo": {"username": user, "uid": "1b2c", "groups": ["system:masters", "system:authenticated"]},
            "object": options,
            "oldObject": null,
            "dryRun": false,
            "options": null,
        }
    })
}

impl Webhook {
    /// Sends an exec (or attach) review over HTTPS; returns the response and the
    /// PodExecOptions with the returned patch applied.
    pub async fn admit_session(&self, review: &Value) -> (Value, Value) {
        let r = self
            .post("application/json", serde_json::to_vec(review).unwrap())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let v = r.json();
        assert_eq!(v["kind"], "AdmissionReview");
        let response = v["response"].clone();
        assert_eq!(response["uid"], review["request"]["uid"]);
        let mut object = review["request"]["object"].clone();
        if let Some(p) = response.get("patch") {
            assert_eq!(response["patchType"], "JSONPatch");
            let patch: json_patch::Patch =
                serde_json::from_slice(&base64_decode(p.as_str().expect("base64 text"))).unwrap();
            json_patch::patch(&mut object, &patch.0).unwrap();
        }
        (response, object)
    }
}
