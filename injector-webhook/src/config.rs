//! What the operator configures on the injector (command-line flags), as plain data so that
//! [`crate::mutate`] stays a pure function of (pod, config, image configs).

use std::collections::BTreeSet;
use std::time::Duration;

/// Default sidecar image (a locally built development image).
pub const DEFAULT_SIDECAR_IMAGE: &str = "localhost/nfguard-sidecar:dev";
/// Address of the sidecar's HTTP API inside the pod (loopback: only the pod can reach it).
pub const SIDECAR_API_ADDR: &str = "127.0.0.1:9901";
/// Default learning period when the pod does not set `nfguard.io/learning-period`.
pub const DEFAULT_LEARNING_PERIOD: &str = "10m";
/// Namespaces never injected, whatever their labels say: the control plane, and nfguard's own.
pub const EXCLUDED_NAMESPACES: [&str; 4] = [
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "nfguard-system",
];

/// Resource requests and limits of the sidecar container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarResources {
    pub cpu_request: String,
    pub memory_request: String,
    pub cpu_limit: String,
    pub memory_limit: String,
}

impl Default for SidecarResources {
    fn default() -> Self {
        Self {
            cpu_request: "20m".into(),
            memory_request: "32Mi".into(),
            cpu_limit: "500m".into(),
            memory_limit: "128Mi".into(),
        }
    }
}

/// Injector configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Image of the `nfguard` sidecar container.
    pub sidecar_image: String,
    /// Put the sidecar first in `containers` (clusters before 1.29, no native sidecars).
    pub classic_sidecar: bool,
    pub resources: SidecarResources,
    /// Registries (`HOST:PORT`) spoken to over plain HTTP. Loopback registries always are.
    pub insecure_registries: BTreeSet<String>,
    /// Extra CA certificates trusted for registries (an internal CA), on top of the
    /// Mozilla roots compiled in.
    pub registry_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Bound on the whole entrypoint resolution of one pod (all its images).
    pub registry_timeout: Duration,
    /// The API server, read for exec reviews (which name the pod but do not carry it).
    /// `None`: exec sessions pass unwrapped, with a warning.
    pub api_server: Option<crate::apiserver::ApiServerConfig>,
    /// The cluster's alert sinks (JSON, docs/alerts.md), passed to every sidecar
    /// unless the pod's `nfguard.io/sinks` annotation replaces them.
    pub default_sinks: Option<String>,
    /// The console every sidecar shares its workload's model through (docs/console.md).
    pub console: Option<ConsoleTarget>,
}

/// Where the sidecars find the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTarget {
    /// `https://nfguard-console.nfguard-system.svc:9950`.
    pub url: String,
    /// A ConfigMap (in the pod's namespace) with `ca.crt`, the CA of the console's certificate.
    pub ca_configmap: Option<String>,
    /// The cluster's name in the console's workload ids.
    pub cluster: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sidecar_image: DEFAULT_SIDECAR_IMAGE.into(),
            classic_sidecar: false,
            resources: SidecarResources::default(),
            insecure_registries: BTreeSet::new(),
            registry_roots: Vec::new(),
            registry_timeout: Duration::from_secs(3),
            api_server: None,
            default_sinks: None,
            console: None,
        }
    }
}
