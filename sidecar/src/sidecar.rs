//! `nfguard sidecar`: the supervisor inside an injected pod.
//!
//! It reads its identity and settings from the environment the injector set
//! (`nfguard_common::env`), puts the static launcher into the shared volume for
//! the monitored containers, serves their keepers on the shared socket, and
//! moves from learn to alert when the learning period ends.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nfguard_common::{env, paths, ExecSessions, Mode};

use crate::event::Context;
use crate::fanout::EventSink;
use crate::run::{load_model, save_if_changed, spawn_model_saver, SetupError};
use crate::supervisor::Shared;
use crate::{api, server};

/// The sidecar's settings.
#[derive(Debug, Clone)]
pub struct SidecarConfig {
    pub mode: Mode,
    pub learning_period: Option<Duration>,
    pub exec_sessions: ExecSessions,
    pub context: Context,
    pub images: HashMap<String, String>,
    pub socket: PathBuf,
    pub shared_dir: PathBuf,
    /// The model: learned into the shared volume, or read from a mounted file.
    pub model: PathBuf,
    pub api_addr: SocketAddr,
    /// The console, when the injector named one (console_link).
    pub console: Option<crate::console_link::LinkConfig>,
}

/// A setting the injector wrote that the sidecar cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct BadEnv {
    pub var: &'static str,
    pub message: String,
}

/// Reads the configuration from environment variables (`get` is `std::env::var` outside tests).
pub fn config_from(get: impl Fn(&str) -> Option<String>) -> Result<SidecarConfig, BadEnv> {
    let bad = |var: &'static str, message: String| BadEnv { var, message };
    let mode = match get(env::MODE) {
        Some(m) => m
            .parse::<Mode>()
            .map_err(|e| bad(env::MODE, e.to_string()))?,
        None => Mode::Learn,
    };
    let learning_period = get(env::LEARNING_PERIOD)
        .filter(|s| !s.is_empty())
        .map(|s| {
            nfguard_common::parse_duration(&s).map_err(|e| bad(env::LEARNING_PERIOD, e.to_string()))
        })
        .transpose()?;
    let exec_sessions = get(env::EXEC_SESSIONS)
        .map(|s| {
            s.parse::<ExecSessions>()
                .map_err(|e| bad(env::EXEC_SESSIONS, e.to_string()))
        })
        .transpose()?
        .unwrap_or_default();
    let images: HashMap<String, String> = match get(env::CONTAINER_IMAGES) {
        Some(j) => serde_json::from_str(&j).map_err(|e| {
            bad(
                env::CONTAINER_IMAGES,
                format!("not a JSON object of strings: {e}"),
            )
        })?,
        None => HashMap::new(),
    };
    let api_addr = get(env::API_ADDR)
        .unwrap_or_else(|| "127.0.0.1:9901".into())
        .parse()
        .map_err(|e| bad(env::API_ADDR, format!("not an address: {e}")))?;
    let shared_dir =
        PathBuf::from(get("NFGUARD_SHARED_DIR").unwrap_or_else(|| paths::SHARED_DIR.into()));
    let socket = get(env::SOCKET)
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir.join("supervisor.sock"));
    let model = get("NFGUARD_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| shared_dir.join("model.json"));
    let console = console_from(&get, &images, mode, learning_period, &shared_dir, &model)?;
    let context = Context {
        namespace: get(env::POD_NAMESPACE),
        pod: get(env::POD_NAME),
        container: String::new(),
        image: None,
        node: get(env::NODE_NAME),
        session: None,
        user: None,
    };
    Ok(SidecarConfig {
        mode,
        learning_period,
        exec_sessions,
        context,
        images,
        socket,
        shared_dir,
        model,
        api_addr,
        console,
    })
}

/// The console link's settings from the injector's environment (none without
/// `NFGUARD_CONSOLE_URL`): the workload's identity, one unit per monitored
/// container with its image digest and static items.
fn console_from(
    get: &impl Fn(&str) -> Option<String>,
    images: &HashMap<String, String>,
    mode: Mode,
    learning_period: Option<Duration>,
    shared_dir: &Path,
    model: &Path,
) -> Result<Option<crate::console_link::LinkConfig>, BadEnv> {
    use crate::console_link::wire::{Item, PodIdentity, Wanted, WorkloadIdentity};
    use crate::console_link::{LinkConfig, UnitConfig};
    let bad = |var: &'static str, message: String| BadEnv { var, message };
    let Some(url) = get(env::CONSOLE_URL).filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let namespace = get(env::POD_NAMESPACE)
        .ok_or_else(|| bad(env::POD_NAMESPACE, "required with a console".into()))?;
    let pod =
        get(env::POD_NAME).ok_or_else(|| bad(env::POD_NAME, "required with a console".into()))?;
    let kind = get(env::WORKLOAD_KIND).unwrap_or_else(|| "Pod".into());
    let workload = WorkloadIdentity {
        cluster: get(env::CLUSTER).unwrap_or_else(|| "local".into()),
        namespace,
        kind: crate::console_link::wire::canonical_kind(&kind).ok_or_else(|| {
            bad(
                env::WORKLOAD_KIND,
                format!("{kind:?} is not a workload kind"),
            )
        })?,
        name: get(env::WORKLOAD_NAME).unwrap_or_else(|| pod.clone()),
    };
    workload.check().map_err(|e| bad(env::WORKLOAD_NAME, e))?;
    let digests: HashMap<String, String> = match get(env::CONTAINER_DIGESTS) {
        Some(j) => serde_json::from_str(&j).map_err(|e| {
            bad(
                env::CONTAINER_DIGESTS,
                format!("not a JSON object of strings: {e}"),
            )
        })?,
        None => HashMap::new(),
    };
    let statics: HashMap<String, serde_json::Value> = match get(env::STATIC) {
        Some(j) => serde_json::from_str(&j)
            .map_err(|e| bad(env::STATIC, format!("not a JSON object: {e}")))?,
        None => HashMap::new(),
    };
    let dry_run = get(env::DRY_RUN_PERIOD)
        .map(|s| {
            nfguard_common::parse_duration(&s).map_err(|e| bad(env::DRY_RUN_PERIOD, e.to_string()))
        })
        .transpose()?;
    let require_approval = match get(env::REQUIRE_APPROVAL).as_deref() {
        None | Some("false") | Some("") => false,
        Some("true") => true,
        Some(v) => {
            return Err(bad(
                env::REQUIRE_APPROVAL,
                format!("{v:?}: expected true or false"),
            ))
        }
    };
    let mut names: Vec<&String> = images.keys().collect();
    names.sort();
    if names.is_empty() {
        return Err(bad(
            env::CONTAINER_IMAGES,
            "names no monitored container".into(),
        ));
    }
    let units = names
        .into_iter()
        .map(|c| {
            let st = statics.get(c);
            let entry = st.and_then(|s| s["entrypoint"].as_str()).map(String::from);
            let mut static_items = Vec::new();
            if let Some(exe) = &entry {
                static_items.push(Item::Process(crate::model::ProcessEntry {
                    exe: exe.clone(),
                    parent: crate::model::LAUNCHER_PARENT.into(),
                }));
                for p in st.and_then(|s| s["ports"].as_array()).into_iter().flatten() {
                    if let (Some(port), Some(proto)) = (p["port"].as_u64(), p["protocol"].as_str())
                    {
                        static_items.push(Item::Listen(crate::model::ListenEntry {
                            exe: exe.clone(),
                            protocol: proto.to_ascii_lowercase(),
                            port: port as u16,
                            address: None,
                        }));
                    }
                }
            }
            UnitConfig {
                container: c.clone(),
                image: images.get(c).cloned().unwrap_or_default(),
                digest: digests.get(c).cloned().unwrap_or_default(),
                static_items,
            }
        })
        .collect();
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model")
        .to_string();
    Ok(Some(LinkConfig {
        url,
        token_file: PathBuf::from(
            get(env::CONSOLE_TOKEN_FILE).unwrap_or_else(|| nfguard_common::console::TOKEN.into()),
        ),
        // The CA comes from an optional ConfigMap: a namespace without it must
        // not keep its pods from starting (the link then cannot verify the
        // console, says so, and spools).
        ca: get(env::CONSOLE_CA).map(PathBuf::from).filter(|p| {
            let there = p.exists();
            if !there {
                eprintln!(
                    "nfguard: {} names {}, which does not exist (no ConfigMap nfguard-console-ca in this namespace?): the console's certificate cannot be verified",
                    env::CONSOLE_CA,
                    p.display()
                );
            }
            there
        }),
        workload,
        pod: PodIdentity {
            name: pod,
            uid: get(env::POD_UID),
            node: get(env::NODE_NAME),
            addresses: get(env::POD_IPS)
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
        },
        want: Wanted {
            // The console's lifecycle decides when; `learn` asks for the default, alert.
            mode: if mode == Mode::Learn {
                Mode::Alert
            } else {
                mode
            },
            learning_period_ms: learning_period.map(|d| d.as_millis() as u64),
            dry_run_period_ms: dry_run.map(|d| d.as_millis() as u64),
            require_approval,
        },
        units,
        state_dir: shared_dir.to_path_buf(),
        stem,
    }))
}

/// Copies the launcher into the shared volume (write then rename: a container
/// starting meanwhile never runs half a binary).
pub fn install_launcher(source: &Path, shared_dir: &Path) -> io::Result<PathBuf> {
    let bin = shared_dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let dest = bin.join("nfguard-launch");
    let tmp = bin.join(".nfguard-launch.tmp");
    std::fs::copy(source, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, &dest)?;
    Ok(dest)
}

/// Errors of `nfguard sidecar`, each one line.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Env(#[from] BadEnv),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot install the launcher into {dir}: {source}")]
    Launcher { dir: PathBuf, source: io::Error },
    #[error("cannot serve the API on {addr}: {source}")]
    Api { addr: SocketAddr, source: io::Error },
}

/// Runs the sidecar until killed.
pub fn run(cfg: SidecarConfig) -> Result<(), SidecarError> {
    crate::run::protect_self();
    let launcher = crate::run::find_launcher(None)?;
    install_launcher(&launcher, &cfg.shared_dir).map_err(|source| SidecarError::Launcher {
        dir: cfg.shared_dir.clone(),
        source,
    })?;
    // With a learning period and no model yet, every mode starts by learning:
    // `learn` then goes on in alert mode, `alert` and `enforce` in themselves.
    let learning = cfg
        .learning_period
        .filter(|_| cfg.mode == Mode::Learn || !cfg.model.exists());
    let start_mode = if learning.is_some() {
        Mode::Learn
    } else {
        cfg.mode
    };
    let after_learning = if cfg.mode == Mode::Learn {
        Mode::Alert
    } else {
        cfg.mode
    };
    // With a console, its lifecycle decides the mode and it holds the model (console_link).
    let mut link = cfg
        .console
        .clone()
        .map(crate::console_link::Link::new)
        .transpose()
        .map_err(SetupError::from)?;
    let (start_mode, learning, model) = match &mut link {
        Some(l) => {
            let (mode, model, how) = l.start();
            eprintln!("nfguard: {how}");
            (mode, None, model)
        }
        None => (start_mode, learning, load_model(start_mode, &cfg.model)?),
    };
    let events = EventSink::new(Box::new(io::stdout()));
    events
        .attach_sinks_env(&cfg.context, &cfg.shared_dir)
        .map_err(|e| BadEnv {
            var: "NFGUARD_SINKS",
            message: e.to_string(),
        })?;
    let sock = server::bind(&cfg.socket).map_err(|source| SetupError::Socket {
        path: cfg.socket.clone(),
        source,
    })?;
    let mut shared = Shared::new(start_mode, model, events, cfg.context.clone());
    shared.images = cfg.images.clone();
    // The shared volume is read-only in the NF's containers; its files are
    // nfguard's own all the same, in any mode.
    shared.own_files.protect(&cfg.shared_dir);
    shared.own_files.protect(&cfg.model);
    let shared = Arc::new(shared);
    if let Some(l) = link {
        l.spawn(Arc::clone(&shared))
            .map_err(|source| SetupError::Spawn {
                path: "the console link thread".into(),
                source,
            })?;
    }
    api::spawn(Arc::clone(&shared), cfg.api_addr).map_err(|source| SidecarError::Api {
        addr: cfg.api_addr,
        source,
    })?;
    spawn_model_saver(
        Arc::clone(&shared),
        cfg.model.clone(),
        Duration::from_secs(2),
    );
    if let Some(period) = learning {
        let shared = Arc::clone(&shared);
        let model_path = cfg.model.clone();
        std::thread::spawn(move || {
            std::thread::sleep(period);
            save_if_changed(&shared, &model_path);
            shared.set_mode(after_learning);
            eprintln!("nfguard: learning period over; now in {after_learning} mode");
        });
    }
    // Processes that enter the pod from outside the launcher (kubectl exec, probes).
    crate::outside::spawn(
        Arc::clone(&shared),
        crate::outside::WatchOptions {
            policy: cfg.exec_sessions,
            ..Default::default()
        },
    )
    .map_err(|source| SetupError::Spawn {
        path: "the exec-session watcher thread".into(),
        source,
    })?;
    // Ready: the startup probe (`nfguard health`) lets the monitored containers start.
    let _ = std::fs::write(cfg.shared_dir.join("ready"), b"ok\n");
    eprintln!(
        "nfguard: supervising on {} in {} mode (model {})",
        cfg.socket.display(),
        start_mode,
        cfg.model.display()
    );
    server::accept_loop(shared, sock, &cfg.shared_dir);
    Ok(())
}

/// `nfguard health`: is the sidecar ready (launcher in place, socket accepting)?
/// Is the supervisor answering? `GET /healthz` on its API within `timeout`:
/// a stopped supervisor still accepts connections (the kernel queues them)
/// but never answers, and one with a stuck listener answers 503.
pub fn live(api: SocketAddr, timeout: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let fail = |e: std::io::Error| format!("supervisor API {api}: {e}");
    let mut s = std::net::TcpStream::connect_timeout(&api, timeout).map_err(fail)?;
    s.set_read_timeout(Some(timeout)).map_err(fail)?;
    s.set_write_timeout(Some(timeout)).map_err(fail)?;
    s.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(fail)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            format!("supervisor API {api}: no answer within {timeout:?} (stopped?)")
        }
        _ => fail(e),
    })?;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).unwrap_or("");
    if status == "200" {
        Ok(())
    } else {
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        Err(format!("supervisor unhealthy ({status}): {body}"))
    }
}

pub fn health(shared_dir: &Path, socket: &Path) -> Result<(), String> {
    if !shared_dir.join("ready").exists() {
        return Err("not ready yet".into());
    }
    if !shared_dir.join("bin/nfguard-launch").exists() {
        return Err("launcher missing from the shared volume".into());
    }
    std::os::unix::net::UnixStream::connect(socket)
        .map(drop)
        .map_err(|e| format!("supervisor socket {}: {e}", socket.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_injectors_environment_becomes_the_sidecars_configuration() {
        let c = config_from(env_of(&[
            (env::MODE, "learn"),
            (env::LEARNING_PERIOD, "90s"),
            (env::POD_NAME, "smf-0"),
            (env::POD_NAMESPACE, "core"),
            (env::CONTAINER_IMAGES, r#"{"smf":"oai-smf:v2"}"#),
        ]))
        .unwrap();
        assert_eq!(c.mode, Mode::Learn);
        assert_eq!(c.learning_period, Some(Duration::from_secs(90)));
        assert_eq!(c.context.pod.as_deref(), Some("smf-0"));
        assert_eq!(c.images["smf"], "oai-smf:v2");
        assert_eq!(c.socket, PathBuf::from("/nfguard/supervisor.sock"));
        assert_eq!(c.model, PathBuf::from("/nfguard/model.json"));
    }

    #[test]
    fn with_a_console_the_environment_names_the_workload_its_units_and_static_items() {
        let c = config_from(env_of(&[
            (env::POD_NAME, "smf-7d4b9c-x2x"),
            (env::POD_NAMESPACE, "core"),
            (env::CONTAINER_IMAGES, r#"{"smf":"reg/smf:v2"}"#),
            (env::CONSOLE_URL, "https://console:9950"),
            (env::WORKLOAD_KIND, "Deployment"),
            (env::WORKLOAD_NAME, "smf"),
            (env::CONTAINER_DIGESTS, r#"{"smf":"sha256:abc"}"#),
            (
                env::STATIC,
                r#"{"smf":{"entrypoint":"/usr/bin/smf","ports":[{"port":8805,"protocol":"UDP"}]}}"#,
            ),
            (env::POD_IPS, "10.1.0.7,fd00::7"),
            (env::REQUIRE_APPROVAL, "true"),
        ]))
        .unwrap();
        let l = c.console.unwrap();
        assert_eq!(l.workload.id(), "local:core:deployment:smf");
        assert_eq!(l.pod.addresses, ["10.1.0.7", "fd00::7"]);
        assert!(l.want.require_approval);
        assert_eq!(
            l.want.mode,
            Mode::Alert,
            "learn asks for the default: alert once active"
        );
        assert_eq!(
            (l.units[0].container.as_str(), l.units[0].digest.as_str()),
            ("smf", "sha256:abc")
        );
        assert_eq!(
            l.units[0].static_items.len(),
            2,
            "{:?}",
            l.units[0].static_items
        );
        let e = config_from(env_of(&[
            (env::CONSOLE_URL, "https://c"),
            (env::POD_NAME, "p"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("NFGUARD_POD_NAMESPACE:"), "{e}");
    }

    #[test]
    fn bad_settings_name_the_variable() {
        let e = config_from(env_of(&[(env::MODE, "block")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("NFGUARD_MODE:") && e.contains("learn, alert, enforce"),
            "{e}"
        );
        let e = config_from(env_of(&[(env::CONTAINER_IMAGES, "[1]")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("NFGUARD_CONTAINER_IMAGES:"), "{e}");
    }
}
