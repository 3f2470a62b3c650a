//! `nfguard-injector`: the admission webhook (`serve`) and offline injection (`inject`).
//! Thin on purpose: flags become a [`nfguard_injector::Config`], the library does the rest.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nfguard_injector::apiserver::{self, ApiServerConfig};
use nfguard_injector::config::{SidecarResources, DEFAULT_SIDECAR_IMAGE};
use nfguard_injector::review::Injector;
use nfguard_injector::{server, tls, Config};

/// sysexits EX_USAGE: bad flags or configuration, nothing was started.
const EX_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "nfguard-injector",
    version,
    about = "Injects the nfguard sidecar into pods: admission webhook or offline."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the mutating admission webhook over HTTPS.
    Serve(ServeArgs),
    /// Inject workloads in a YAML file (or `-` for stdin) and print the result.
    Inject(InjectArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// PEM certificate chain (reloaded when it changes).
    #[arg(long)]
    tls_cert: PathBuf,
    /// PEM private key.
    #[arg(long)]
    tls_key: PathBuf,
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: SocketAddr,
    /// How often to check the certificate files for changes.
    #[arg(long, default_value = "5s", value_parser = duration)]
    cert_reload_interval: Duration,
    /// API server for exec reviews (https://HOST:PORT); default: in-cluster service account.
    #[arg(long)]
    api_server: Option<String>,
    /// PEM CA of the API server (with --api-server).
    #[arg(long, requires = "api_server")]
    api_ca: Option<PathBuf>,
    /// Bearer token file for the API server (with --api-server; re-read for every call).
    #[arg(long, requires = "api_server")]
    api_token_file: Option<PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

impl ServeArgs {
    /// Where exec reviews read pods; `Err` is one line for the user (exit 64).
    fn api_server(&self) -> Result<Option<ApiServerConfig>, String> {
        let Some(url) = &self.api_server else {
            return ApiServerConfig::in_cluster().transpose();
        };
        let ca = match &self.api_ca {
            Some(p) => apiserver::read_ca(p).map_err(|e| format!("API server CA: {e}"))?,
            None => Vec::new(),
        };
        Ok(Some(ApiServerConfig {
            url: url.clone(),
            token_file: self.api_token_file.clone(),
            ca,
        }))
    }
}

#[derive(Args)]
struct InjectArgs {
    /// YAML file, or `-` for stdin.
    #[arg(short = 'f', long = "filename")]
    file: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CommonArgs {
    /// Image of the nfguard sidecar.
    #[arg(long, default_value = DEFAULT_SIDECAR_IMAGE)]
    sidecar_image: String,
    /// Put the sidecar first in `containers` (clusters before 1.29, no native sidecars).
    #[arg(long)]
    classic_sidecar: bool,
    /// Registry (HOST:PORT) to reach over plain HTTP; repeatable. Loopback always is.
    #[arg(long = "insecure-registry")]
    insecure_registry: Vec<String>,
    /// PEM file of CA certificates to trust for registries (besides the Mozilla roots); repeatable.
    #[arg(long = "registry-ca")]
    registry_ca: Vec<PathBuf>,
    /// Bound on reading the image configs of one pod (keep well under the webhook timeout).
    #[arg(long, default_value = "3s", value_parser = duration)]
    registry_timeout: Duration,
    #[arg(long, default_value = "20m")]
    sidecar_cpu_request: String,
    #[arg(long, default_value = "32Mi")]
    sidecar_memory_request: String,
    #[arg(long, default_value = "500m")]
    sidecar_cpu_limit: String,
    #[arg(long, default_value = "128Mi")]
    sidecar_memory_limit: String,
    /// JSON file of the cluster's alert sinks (docs/alerts.md), passed to every sidecar.
    #[arg(long)]
    sinks: Option<PathBuf>,
    /// The console's URL, passed to every sidecar with its workload's identity and image digests.
    #[arg(long)]
    console_url: Option<String>,
    /// ConfigMap (in each pod's namespace) holding ca.crt, the console certificate's CA.
    #[arg(long, requires = "console_url")]
    console_ca_configmap: Option<String>,
    /// The cluster's name in the console's workload ids.
    #[arg(long, default_value = "local")]
    cluster_name: String,
}

fn duration(s: &str) -> Result<Duration, String> {
    nfguard_common::parse_duration(s).map_err(|e| e.to_string())
}

impl CommonArgs {
    /// The injector's configuration; `Err` is one line for the user (exit 64).
    fn config(&self) -> Result<Config, String> {
        let mut registry_roots = Vec::new();
        for path in &self.registry_ca {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read registry CA {}: {e}", path.display()))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| format!("registry CA {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "registry CA {}: no PEM certificate",
                    path.display()
                ));
            }
            registry_roots.extend(certs);
        }
        Ok(Config {
            sidecar_image: self.sidecar_image.clone(),
            classic_sidecar: self.classic_sidecar,
            resources: SidecarResources {
                cpu_request: self.sidecar_cpu_request.clone(),
                memory_request: self.sidecar_memory_request.clone(),
                cpu_limit: self.sidecar_cpu_limit.clone(),
                memory_limit: self.sidecar_memory_limit.clone(),
            },
            insecure_registries: self
                .insecure_registry
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            registry_roots,
            registry_timeout: self.registry_timeout,
            api_server: None,
            console: match &self.console_url {
                None => None,
                Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                    Some(nfguard_injector::config::ConsoleTarget {
                        url: url.clone(),
                        ca_configmap: self.console_ca_configmap.clone(),
                        cluster: self.cluster_name.clone(),
                    })
                }
                Some(url) => {
                    return Err(format!(
                        "--console-url {url:?}: expected an http:// or https:// URL"
                    ))
                }
            },
            default_sinks: match &self.sinks {
                None => None,
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read sinks {}: {e}", path.display()))?;
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|e| format!("sinks {}: not JSON: {e}", path.display()))?;
                    if !v.is_object() {
                        return Err(format!("sinks {}: expected a JSON object", path.display()));
                    }
                    Some(v.to_string())
                }
            },
        })
    }
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("nfguard-injector: {msg}");
    ExitCode::from(EX_USAGE)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EX_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nfguard-injector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(a) => runtime.block_on(serve(a)),
        Command::Inject(a) => runtime.block_on(inject(a)),
    }
}

async fn serve(a: ServeArgs) -> ExitCode {
    // Everything that can be wrong in the configuration is checked before binding.
    let certs = match tls::CertStore::new(a.tls_cert.clone(), a.tls_key.clone()) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let mut config = match a.common.config() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    config.api_server = match a.api_server() {
        Ok(api) => api,
        Err(e) => return usage_error(e),
    };
    if config.api_server.is_none() {
        tracing::warn!(
            "no API server (not in a pod, no --api-server): exec sessions pass unwrapped"
        );
    }
    let injector = Arc::new(Injector::new(config));
    let listener = match tokio::net::TcpListener::bind(a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("nfguard-injector: cannot listen on {}: {e}", a.listen);
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(listen = %a.listen, sidecar_image = %injector.config.sidecar_image, "serving admission webhook");
    certs.spawn_reloader(a.cert_reload_interval);
    let stop = async {
        #[cfg(unix)]
        {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    };
    tokio::select! {
        r = server::serve(listener, certs, injector) => {
            if let Err(e) = r {
                eprintln!("nfguard-injector: server failed: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = stop => tracing::info!("shutting down"),
    }
    ExitCode::SUCCESS
}

async fn inject(a: InjectArgs) -> ExitCode {
    let mut input = String::new();
    let read = if a.file == "-" {
        std::io::stdin().read_to_string(&mut input).map(|_| ())
    } else {
        std::fs::read_to_string(&a.file).map(|s| input = s)
    };
    if let Err(e) = read {
        return usage_error(format_args!("cannot read {}: {e}", a.file));
    }
    let config = match a.common.config() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let injector = Injector::new(config);
    match injector.inject_yaml(&input).await {
        Ok(out) => {
            for w in &out.warnings {
                eprintln!("nfguard-injector: {w}");
            }
            print!("{}", out.yaml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nfguard-injector: {e}");
            ExitCode::FAILURE
        }
    }
}
