//! `nfguard-console`: the console (`serve`) and its command line for models as code.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nfguard_console::api::App;
use nfguard_console::auth::{self, Auth, Kube};
use nfguard_console::client::{self, Trust};
use nfguard_console::serve::{self, Tls};
use nfguard_console::store::{Settings, Store};
use nfguard_console::yaml;

#[derive(Parser)]
#[command(
    name = "nfguard-console",
    version,
    about = "The nfguard console: one model per workload shared by its replicas, its lifecycle, incidents."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API (and the sidecars' sync).
    Serve(ServeArgs),
    /// Models as code: export, import, diff (`kind: NfguardModel` YAML).
    Model {
        #[command(subcommand)]
        command: ModelCmd,
    },
    /// Operators' and join tokens.
    Token {
        #[command(subcommand)]
        command: TokenCmd,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to serve on; without TLS only a loopback address is accepted.
    #[arg(long, default_value = "127.0.0.1:9950")]
    listen: SocketAddr,
    /// sqlite:PATH (created if missing) or postgres://USER[:PASSWORD]@HOST[:PORT]/DB.
    #[arg(long, default_value = "sqlite:nfguard-console.db")]
    db: String,
    /// A file holding the admin token.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Join tokens for sidecars on hosts: `TOKEN [[CLUSTER:]NS/KIND/NAME]` per line.
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// How often sidecars sync (for example 5s, 500ms).
    #[arg(long, default_value = "5s", value_parser = parse_ms)]
    sync_interval: Duration,
    /// Events within this of an incident's last one join it.
    #[arg(long, default_value = "10m", value_parser = parse_ms)]
    incident_window: Duration,
    /// A model no pod reports for this long is archived.
    #[arg(long, default_value = "24h", value_parser = parse_ms)]
    archive_after: Duration,
    /// POST each new incident (JSON) to this webhook; repeatable.
    #[arg(long = "incident-webhook")]
    incident_webhook: Vec<String>,
    /// The cluster's name in workload ids (for sidecars vouched for by the cluster).
    #[arg(long, default_value = "local")]
    cluster: String,
    /// The web UI trusts this request header (for example X-Forwarded-User) as
    /// the user's name. Only behind an auth proxy that sets it and strips it
    /// from clients: whoever reaches the console directly could claim any name.
    #[arg(long, requires = "auth_proxy_secret_file")]
    auth_proxy_header: Option<String>,
    /// A file holding the secret the auth proxy sends in the
    /// `Nfguard-Proxy-Secret` header with every request: the user header is
    /// believed only with it (the console's port is also the sidecars', so
    /// code inside a monitored pod can always reach it directly).
    #[arg(long, requires = "auth_proxy_header")]
    auth_proxy_secret_file: Option<PathBuf>,
    /// The role of a user named by the auth proxy: viewer, operator or admin.
    #[arg(long, default_value = "viewer", requires = "auth_proxy_header")]
    auth_proxy_role: String,
}

#[derive(Args, Clone)]
struct Remote {
    /// The console's URL.
    #[arg(long)]
    console: String,
    /// A file holding an operator's token.
    #[arg(long)]
    token_file: PathBuf,
    /// CA certificates for an https console.
    #[arg(long)]
    ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Print a workload's model as YAML.
    Export {
        #[command(flatten)]
        remote: Remote,
        /// CLUSTER:NAMESPACE:KIND:NAME
        workload: String,
        #[arg(long)]
        container: Option<String>,
        #[arg(long)]
        digest: Option<String>,
        /// Include hits, first and last seen, and the pods that saw each item.
        #[arg(long)]
        provenance: bool,
    },
    /// Apply a YAML model as approved (manual) rules.
    Import {
        #[command(flatten)]
        remote: Remote,
        file: PathBuf,
    },
    /// Compare two YAML models (files), or a live model with its predecessor (--console).
    Diff {
        /// Compare a live model (the workload id) with its predecessor on this console.
        #[arg(long, requires = "token_file")]
        console: Option<String>,
        #[arg(long, requires = "console")]
        token_file: Option<PathBuf>,
        #[arg(long, requires = "console")]
        ca: Option<PathBuf>,
        /// Two files, or one workload id with --console.
        #[arg(required = true, num_args = 1..=2)]
        args: Vec<String>,
        #[arg(long)]
        container: Option<String>,
        /// With --console: compare with this digest instead of the predecessor.
        #[arg(long)]
        from: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token and print it (shown once).
    Create {
        #[command(flatten)]
        remote: Remote,
        name: String,
        /// viewer, operator, admin or join.
        #[arg(long)]
        role: String,
        /// For join tokens: [CLUSTER:]NS/KIND/NAME, parts may be *.
        #[arg(long)]
        scope: Option<String>,
    },
}

/// `500ms`, `5s`, `10m`, `1h30m`.
fn parse_ms(s: &str) -> Result<Duration, String> {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|e| format!("{s}: {e}"));
    }
    nfguard_common::parse_duration(s).map_err(|e| e.to_string())
}

fn usage(msg: String) -> ! {
    eprintln!("nfguard-console: {msg}");
    std::process::exit(64);
}

fn main() {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nfguard-console: cannot start the runtime: {e}");
            std::process::exit(71);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Cmd::Serve(a) => serve_main(a).await,
            Cmd::Model { command } => model_main(command).await,
            Cmd::Token { command } => token_main(command).await,
        }
    });
    std::process::exit(code);
}

async fn serve_main(a: ServeArgs) -> i32 {
    // Everything that can be wrong with the configuration is found before binding (exit 64).
    let admin = a
        .admin_token_file
        .as_deref()
        .map(auth::read_admin_token)
        .transpose()
        .unwrap_or_else(|e| usage(e));
    let join = a
        .join_token_file
        .as_deref()
        .map(auth::read_join_tokens)
        .transpose()
        .unwrap_or_else(|e| usage(e))
        .unwrap_or_default();
    let tls = match (a.tls_cert, a.tls_key) {
        (Some(cert), Some(key)) => {
            if let Err(e) = serve::tls_config(&cert, &key) {
                usage(e.to_string());
            }
            Some(Tls { cert, key })
        }
        _ => None,
    };
    if tls.is_none() && !a.listen.ip().is_loopback() {
        usage(serve::ServeError::PlainOutsideLoopback { addr: a.listen }.to_string());
    }
    let ui = nfguard_console::ui::Settings {
        proxy_header: a.auth_proxy_header.as_deref().map(|h| {
            axum::http::HeaderName::try_from(h)
                .unwrap_or_else(|_| usage(format!("--auth-proxy-header {h:?}: not a header name")))
        }),
        proxy_role: nfguard_console::auth::Role::parse(&a.auth_proxy_role).unwrap_or_else(|| {
            usage(format!(
                "--auth-proxy-role {:?}: expected viewer, operator or admin",
                a.auth_proxy_role
            ))
        }),
        proxy_secret: a.auth_proxy_secret_file.as_deref().map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_else(|e| {
                usage(format!("--auth-proxy-secret-file {}: {e}", f.display()))
            });
            let secret = text.trim();
            if secret.len() < 32 {
                usage(format!(
                    "--auth-proxy-secret-file {}: the secret must be at least 32 characters",
                    f.display()
                ));
            }
            nfguard_console::ui::proxy_secret_digest(secret)
        }),
        secure: tls.is_some(),
    };
    let kube = match Kube::in_cluster(&a.cluster) {
        Some(Ok(k)) => Some(k),
        Some(Err(e)) => usage(format!("service account: {e}")),
        None => None,
    };
    if admin.is_none() && join.is_empty() && kube.is_none() {
        eprintln!("nfguard-console: warning: no --admin-token-file, no --join-token-file and no cluster: nobody can use this console");
    }
    let settings = Settings {
        incident_window_ms: a.incident_window.as_millis() as i64,
        archive_after_ms: a.archive_after.as_millis() as i64,
        sync_interval_ms: a.sync_interval.as_millis() as u64,
        incident_sinks: a.incident_webhook.clone(),
    };
    for w in &a.incident_webhook {
        if !(w.starts_with("http://") || w.starts_with("https://")) {
            usage(format!(
                "--incident-webhook {w:?}: expected an http:// or https:// URL"
            ));
        }
    }
    let store = match Store::open(&a.db, settings).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nfguard-console: {e}");
            return 69;
        }
    };
    let listener = match serve::bind(a.listen, tls.as_ref()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nfguard-console: {e}");
            return 69;
        }
    };
    let addr = listener.local_addr().unwrap_or(a.listen);
    eprintln!(
        "nfguard-console: serving {}://{addr} ({} database)",
        if tls.is_some() { "https" } else { "http" },
        store.dialect.as_str()
    );
    let app = Arc::new(App {
        store,
        auth: Auth::new(admin, join, kube),
        ui,
    });
    let tick = a
        .sync_interval
        .clamp(Duration::from_millis(200), Duration::from_secs(5));
    serve::run(app, listener, tls, tick).await;
    0
}

struct Conn {
    base: String,
    token: String,
    trust: Option<Trust>,
}

fn conn(r: &Remote) -> Result<Conn, String> {
    let token = std::fs::read_to_string(&r.token_file)
        .map_err(|e| format!("{}: {e}", r.token_file.display()))?
        .trim()
        .to_string();
    Ok(Conn {
        base: r.console.trim_end_matches('/').to_string(),
        token,
        trust: r.ca.clone().map(Trust::CaFile),
    })
}

async fn call(
    c: &Conn,
    method: hyper::Method,
    path: &str,
    body: Option<(String, &str)>,
) -> Result<Vec<u8>, String> {
    let mut headers = vec![("authorization", format!("Bearer {}", c.token))];
    if let Some((_, ct)) = &body {
        headers.push(("content-type", ct.to_string()));
    }
    let a = client::request(
        method,
        &format!("{}{path}", c.base),
        &headers,
        body.map(|(b, _)| b.into_bytes()),
        c.trust.as_ref(),
        Duration::from_secs(30),
    )
    .await?;
    if !a.status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&a.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&a.body).into_owned());
        return Err(format!("{}: {msg}", a.status));
    }
    Ok(a.body)
}

fn q(pairs: &[(&str, &Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", enc(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn load_doc(path: &str) -> Result<yaml::Doc, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let d: yaml::Doc = serde_yaml::from_str(&text)
        .map_err(|e| format!("{path}: not an NfguardModel document: {e}"))?;
    d.check().map_err(|e| format!("{path}: {e}"))?;
    Ok(d)
}

async fn model_main(cmd: ModelCmd) -> i32 {
    let r: Result<(), String> = async {
        match cmd {
            ModelCmd::Export {
                remote,
                workload,
                container,
                digest,
                provenance,
            } => {
                let c = conn(&remote)?;
                let p = if provenance {
                    Some("true".to_string())
                } else {
                    None
                };
                let path = format!(
                    "/api/v1/workloads/{}/model/export{}",
                    enc(&workload),
                    q(&[
                        ("container", &container),
                        ("digest", &digest),
                        ("provenance", &p)
                    ])
                );
                let body = call(&c, hyper::Method::GET, &path, None).await?;
                print!("{}", String::from_utf8_lossy(&body));
                Ok(())
            }
            ModelCmd::Import { remote, file } => {
                let c = conn(&remote)?;
                let path_s = file.display().to_string();
                let doc = load_doc(&path_s)?;
                let text = std::fs::read_to_string(&file).map_err(|e| format!("{path_s}: {e}"))?;
                let body = call(
                    &c,
                    hyper::Method::POST,
                    &format!(
                        "/api/v1/workloads/{}/model/import",
                        enc(&doc.spec.workload.id())
                    ),
                    Some((text, "application/yaml")),
                )
                .await?;
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                println!(
                    "applied {} rule(s) to model {}",
                    v["applied"], v["model_id"]
                );
                Ok(())
            }
            ModelCmd::Diff {
                console,
                token_file,
                ca,
                args,
                container,
                from,
            } => {
                let remote = console.zip(token_file).map(|(console, token_file)| Remote {
                    console,
                    token_file,
                    ca,
                });
                match (remote, args.as_slice()) {
                    (None, [a, b]) => {
                        let d = yaml::diff(&load_doc(a)?, &load_doc(b)?);
                        print!("{}", yaml::render_diff(&d));
                        Ok(())
                    }
                    (Some(remote), [w]) => {
                        let c = conn(&remote)?;
                        let path = format!(
                            "/api/v1/workloads/{}/model/diff{}",
                            enc(w),
                            q(&[("container", &container), ("from", &from)])
                        );
                        let body = call(&c, hyper::Method::GET, &path, None).await?;
                        let v: serde_json::Value =
                            serde_json::from_slice(&body).map_err(|e| e.to_string())?;
                        let items = |k: &str| -> Vec<nfguard_sidecar::console_link::wire::Item> {
                            serde_json::from_value(v[k].clone()).unwrap_or_default()
                        };
                        println!("# {} -> {}", v["from"]["digest"], v["to"]["digest"]);
                        print!(
                            "{}",
                            yaml::render_diff(&yaml::Diff {
                                added: items("added"),
                                removed: items("removed")
                            })
                        );
                        for cnd in v["candidates"].as_array().into_iter().flatten() {
                            println!("? candidate {}", cnd["describe"].as_str().unwrap_or(""));
                        }
                        Ok(())
                    }
                    _ => {
                        Err("model diff takes two files, or one workload id with --console".into())
                    }
                }
            }
        }
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nfguard-console: {e}");
            1
        }
    }
}

async fn token_main(cmd: TokenCmd) -> i32 {
    let TokenCmd::Create {
        remote,
        name,
        role,
        scope,
    } = cmd;
    let r: Result<(), String> = async {
        let c = conn(&remote)?;
        let body = serde_json::json!({"name": name, "role": role, "scope": scope}).to_string();
        let out = call(
            &c,
            hyper::Method::POST,
            "/api/v1/tokens",
            Some((body, "application/json")),
        )
        .await?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| e.to_string())?;
        println!("{}", v["token"].as_str().unwrap_or(""));
        Ok(())
    }
    .await;
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("nfguard-console: {e}");
            1
        }
    }
}
