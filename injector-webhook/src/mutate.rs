//! The pure heart of the injector: given a pod (as the API server sends it), the injector's
//! configuration and the image configs already fetched, decide what happens to the pod and
//! write the JSON Patch (RFC 6902) that puts it under nfguard.
//!
//! The patch is written operation by operation instead of diffing two documents: each
//! operation says what nfguard changed, the webhook never removes a field it does not know
//! (a typed round trip would), and a reviewer can read the patch. Operations on container
//! indexes come before the one insertion into `containers` (classic sidecar mode) so that
//! indexes stay valid while the patch applies.
//!
//! What an injected pod looks like is the contract with the sidecar (`sidecar/`): see the
//! crate README, and `nfguard_common::{paths, env}` for the names.

use std::collections::{BTreeMap, HashMap};

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use nfguard_common::{annotations, env, paths, Mode};
use serde::Deserialize as _;
use serde_json::{json, Value};

use crate::config::{Config, EXCLUDED_NAMESPACES, SIDECAR_API_ADDR};
use crate::image::ImageConfig;
use crate::options::PodOptions;

/// Path of the supervisor binary in the sidecar image.
pub const SIDECAR_BINARY: &str = "/usr/bin/nfguard";

/// Image configs fetched for a pod, by image reference as written in the pod
/// (`Err`: why it could not be read).
pub type ImageConfigs = HashMap<String, Result<ImageConfig, String>>;

/// Why a pod was admitted unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The pod carries `nfguard.io/inject=false`.
    OptedOut,
    /// The pod's namespace is never injected (control plane, nfguard-system).
    ExcludedNamespace,
    /// The pod already carries the sidecar (a reinvocation or a re-applied manifest).
    AlreadyInjected,
    /// `hostPID: true`: the sidecar's view of PIDs would be the node's.
    HostPid,
    /// No app containers to monitor.
    NoContainers,
    /// Some monitored container's entrypoint could not be found.
    EntrypointUnresolved,
    /// The pod already uses the name or path nfguard needs.
    Conflict,
    /// The object is not a pod the injector can read.
    Unreadable,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::OptedOut => "opted_out",
            SkipReason::ExcludedNamespace => "excluded_namespace",
            SkipReason::AlreadyInjected => "already_injected",
            SkipReason::HostPid => "host_pid",
            SkipReason::NoContainers => "no_containers",
            SkipReason::EntrypointUnresolved => "entrypoint_unresolved",
            SkipReason::Conflict => "conflict",
            SkipReason::Unreadable => "unreadable",
        }
    }
}

/// What to do with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Admit with this patch.
    Inject {
        patch: Patch,
        /// Names of the monitored (wrapped) containers.
        containers: Vec<String>,
        warnings: Vec<String>,
    },
    /// Admit unchanged.
    Skip {
        reason: SkipReason,
        warnings: Vec<String>,
    },
    /// Refuse the pod (bad annotations, or enforce mode and nfguard cannot be put in place).
    Deny { message: String },
}

/// A pod the injector has read and decided to inject, pending image configs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Boxed: a `Pod` is large, and the plan is moved through the decision's futures.
    pod: Box<Pod>,
    has_metadata: bool,
    options: PodOptions,
    /// Indexes into `spec.containers`.
    monitored: Vec<usize>,
}

fn skip(reason: SkipReason, warning: Option<String>) -> Outcome {
    Outcome::Skip {
        reason,
        warnings: warning.into_iter().collect(),
    }
}

/// Reads the pod and decides whether to inject it; `Err` is the final outcome (skip or deny).
///
/// `namespace` is the request's namespace (the object's own is often empty at CREATE).
pub fn plan(pod_json: &Value, namespace: Option<&str>, cfg: &Config) -> Result<Plan, Outcome> {
    let pod = Pod::deserialize(pod_json).map_err(|e| {
        skip(
            SkipReason::Unreadable,
            Some(format!(
                "nfguard: pod not injected: cannot read it as a v1 Pod: {e}"
            )),
        )
    })?;
    let has_metadata = pod_json.get("metadata").is_some_and(Value::is_object);
    plan_pod(Box::new(pod), has_metadata, namespace, cfg)
}

/// [`plan`] for a pod already read; `has_metadata`: whether its JSON has a `metadata` object.
pub fn plan_pod(
    pod: Box<Pod>,
    has_metadata: bool,
    namespace: Option<&str>,
    cfg: &Config,
) -> Result<Plan, Outcome> {
    let meta = &pod.metadata;
    let no_map = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&no_map);
    if labels.get(annotations::INJECT_LABEL).map(String::as_str) == Some("false") {
        return Err(skip(SkipReason::OptedOut, None));
    }
    let ns = namespace.or(meta.namespace.as_deref()).unwrap_or("");
    if EXCLUDED_NAMESPACES.contains(&ns) {
        return Err(skip(SkipReason::ExcludedNamespace, None));
    }
    let annots = meta.annotations.as_ref().unwrap_or(&no_map);
    let no_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&no_spec);
    let names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    let options = PodOptions::parse(annots, &names).map_err(|e| Outcome::Deny {
        message: format!("nfguard: {e}"),
    })?;
    // Already injected only if both the record and our sidecar are there: a pod (or a
    // manifest) carrying a forged `nfguard.io/status`, or its own container named `nfguard`,
    // must not slip past injection.
    let sidecar = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == paths::SIDECAR_CONTAINER);
    let status = annots.contains_key(annotations::STATUS);
    match sidecar {
        Some(c) if status && c.image.as_deref() == Some(cfg.sidecar_image.as_str()) => {
            return Err(skip(SkipReason::AlreadyInjected, None));
        }
        Some(c) => {
            let why = format!(
                "the pod already has a container named {:?} (image {}) that this injector did not add",
                paths::SIDECAR_CONTAINER,
                c.image.as_deref().unwrap_or("none")
            );
            return Err(if options.enforce() {
                Outcome::Deny {
                    message: format!("nfguard: nfguard.io/mode=enforce but nfguard cannot protect this pod: {why}"),
                }
            } else {
                skip(
                    SkipReason::Conflict,
                    Some(format!("nfguard: pod not injected: {why}")),
                )
            });
        }
        None => {}
    }
    let refuse = |reason: SkipReason, why: String| {
        if options.enforce() {
            Outcome::Deny {
                message: format!(
                    "nfguard: nfguard.io/mode=enforce but nfguard cannot protect this pod: {why}"
                ),
            }
        } else {
            skip(reason, Some(format!("nfguard: pod not injected: {why}")))
        }
    };
    if spec.host_pid == Some(true) {
        return Err(refuse(
            SkipReason::HostPid,
            "hostPID: true (the sidecar must share the pod's own PID namespace)".into(),
        ));
    }
    if spec.containers.is_empty() {
        return Err(skip(SkipReason::NoContainers, None));
    }
    let in_use = spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == paths::SHARED_VOLUME)
        || spec.containers.iter().any(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path.trim_end_matches('/') == paths::SHARED_DIR)
        });
    if in_use {
        return Err(refuse(
            SkipReason::Conflict,
            format!(
                "the pod already uses the volume name {:?} or the path {}",
                paths::SHARED_VOLUME,
                paths::SHARED_DIR
            ),
        ));
    }
    let monitored: Vec<usize> = match &options.containers {
        None => (0..spec.containers.len()).collect(),
        Some(list) => (0..spec.containers.len())
            .filter(|&i| list.contains(&spec.containers[i].name))
            .collect(),
    };
    Ok(Plan {
        has_metadata,
        pod,
        options,
        monitored,
    })
}

fn is_wrapped(command: &[String]) -> bool {
    command.first().map(String::as_str) == Some(paths::LAUNCHER)
}

impl Plan {
    pub fn options(&self) -> &PodOptions {
        &self.options
    }

    fn containers(&self) -> &[Container] {
        self.pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
    }

    /// Images whose config must be read from a registry: monitored containers with no
    /// `command` and no `nfguard.io/entrypoint` for them. Sorted, without duplicates.
    pub fn images_to_resolve(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .monitored
            .iter()
            .map(|&i| &self.containers()[i])
            .filter(|c| c.command.as_ref().is_none_or(Vec::is_empty))
            .filter(|c| {
                self.options
                    .entrypoint
                    .as_ref()
                    .and_then(|e| e.for_container(&c.name))
                    .is_none()
            })
            .filter_map(|c| c.image.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn ptr(tokens: &[&str]) -> PointerBuf {
    // Sized up front: `from_tokens` grows its string token by token (three allocations for
    // `/spec/containers/0/command`). Room for the '/' and one escape per token.
    let len = tokens.iter().map(|t| t.len() + 2).sum();
    let mut p = PointerBuf::parse(String::with_capacity(len)).unwrap_or_default();
    for t in tokens {
        p.push_back(*t);
    }
    p
}

fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: ptr(tokens),
        value,
    })
}

/// The operations that append `items` to the array at `tokens` (creating it when absent).
fn append(ops: &mut Vec<PatchOperation>, tokens: &[&str], exists: bool, items: Vec<Value>) {
    if !exists {
        ops.push(add(tokens, Value::Array(items)));
        return;
    }
    let mut path = tokens.to_vec();
    path.push("-");
    for item in items {
        ops.push(add(&path, item));
    }
}

/// Decides the final outcome for a planned pod, with the image configs fetched for
/// [`Plan::images_to_resolve`].
pub fn mutate(plan: &Plan, cfg: &Config, images: &ImageConfigs) -> Outcome {
    let opts = &plan.options;
    let containers = plan.containers();
    let pod_sc = plan
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref());
    let mut warnings = Vec::new();
    let mut ops = Vec::new();
    let mut unresolved = Vec::new();
    let mut wrapped = Vec::new();
    let mut uids: Vec<(String, Option<i64>)> = Vec::new();
    let mut gid = None;
    let mut non_root = false;
    // Whether some monitored container may hold capabilities: then the sidecar
    // needs CAP_SYS_PTRACE to read its memory (see `sidecar_container`).
    let mut nf_has_caps = false;

    for &i in &plan.monitored {
        let c = &containers[i];
        let idx = i.to_string();
        let base = ["spec", "containers", idx.as_str()];
        let at = |field: &'static str| [base[0], base[1], base[2], field];
        let image = c.image.clone().unwrap_or_default();
        let csc = c.security_context.as_ref();
        uids.push((
            c.name.clone(),
            csc.and_then(|s| s.run_as_user)
                .or(pod_sc.and_then(|s| s.run_as_user)),
        ));
        gid = gid
            .or(csc.and_then(|s| s.run_as_group))
            .or(pod_sc.and_then(|s| s.run_as_group));
        non_root |= csc.and_then(|s| s.run_as_non_root).unwrap_or(false)
            || pod_sc.and_then(|s| s.run_as_non_root).unwrap_or(false);
        let caps = csc.and_then(|s| s.capabilities.as_ref());
        let drops_all = caps
            .and_then(|c| c.drop.as_ref())
            .is_some_and(|d| d.iter().any(|x| x == "ALL"));
        let adds = caps
            .and_then(|c| c.add.as_ref())
            .is_some_and(|a| !a.is_empty());
        let privileged = csc.and_then(|s| s.privileged).unwrap_or(false);
        nf_has_caps |= !drops_all || adds || privileged;

        let launcher = |rest: &[String]| -> Value {
            let mut v = vec![paths::LAUNCHER.to_string(), "--".to_string()];
            v.extend(rest.iter().cloned());
            Value::from(v)
        };
        let has_args = c.args.as_ref().is_some_and(|a| !a.is_empty());
        match c.command.as_deref() {
            Some(cmd) if is_wrapped(cmd) => {}
            Some(cmd) if !cmd.is_empty() => ops.push(add(&at("command"), launcher(cmd))),
            _ => {
                if let Some(ep) = opts
                    .entrypoint
                    .as_ref()
                    .and_then(|e| e.for_container(&c.name))
                {
                    // The image's CMD is unknown here; setting `command` drops it, so the
                    // container runs exactly the annotated entrypoint plus its own args.
                    ops.push(add(&at("command"), launcher(ep)));
                } else {
                    match images.get(&image) {
                        Some(Ok(ic)) if !ic.entrypoint.is_empty() || !ic.cmd.is_empty() || has_args => {
                            ops.push(add(&at("command"), launcher(&ic.entrypoint)));
                            // Setting `command` makes the runtime ignore the image's CMD:
                            // carry it over as `args` when the pod gives none.
                            if !has_args && !ic.cmd.is_empty() {
                                ops.push(add(&at("args"), json!(ic.cmd)));
                            }
                        }
                        Some(Ok(_)) => unresolved.push(format!(
                            "container {:?}: image {image} has neither Entrypoint nor Cmd and the pod sets no command",
                            c.name
                        )),
                        Some(Err(e)) => unresolved.push(format!(
                            "container {:?}: entrypoint of image {image} unknown ({e}); set {} or command",
                            c.name,
                            annotations::ENTRYPOINT
                        )),
                        None => unresolved.push(format!(
                            "container {:?}: entrypoint of image {image} was not resolved; set {} or command",
                            c.name,
                            annotations::ENTRYPOINT
                        )),
                    }
                }
            }
        }
        let env_items = vec![
            json!({"name": env::CONTAINER_NAME, "value": c.name}),
            json!({"name": env::SOCKET, "value": paths::SOCKET}),
            json!({"name": env::DATAGRAMS, "value": opts.datagrams.of(&c.name).as_str()}),
        ];
        append(&mut ops, &at("env"), c.env.is_some(), env_items);
        append(
            &mut ops,
            &at("volumeMounts"),
            c.volume_mounts.is_some(),
            vec![
                json!({"name": paths::SHARED_VOLUME, "mountPath": paths::SHARED_DIR, "readOnly": true}),
            ],
        );
        wrapped.push(c.name.clone());
    }

    if !unresolved.is_empty() {
        let why = unresolved.join("; ");
        return if opts.enforce() {
            Outcome::Deny {
                message: format!(
                    "nfguard: nfguard.io/mode=enforce but nfguard cannot protect this pod: {why}"
                ),
            }
        } else {
            let mut w = vec![format!("nfguard: pod not injected: {why}")];
            w.extend(warnings);
            Outcome::Skip {
                reason: SkipReason::EntrypointUnresolved,
                warnings: w,
            }
        };
    }

    // The supervisor reads the NF's memory, which needs the NF's uid (ptrace access mode).
    let mut known: Vec<i64> = uids.iter().filter_map(|(_, u)| *u).collect();
    known.dedup();
    let uid = known.first().copied();
    if known.len() > 1 || (uid.is_some() && uids.iter().any(|(_, u)| u.is_none())) {
        let list: Vec<String> = uids
            .iter()
            .map(|(n, u)| {
                format!(
                    "{n}={}",
                    u.map_or("image default".into(), |u| u.to_string())
                )
            })
            .collect();
        warnings.push(format!(
            "nfguard: monitored containers run as different uids ({}); the sidecar runs as {} and may not read the others' memory",
            list.join(", "),
            uid.map_or("its image's user".into(), |u| u.to_string())
        ));
    } else if uid.is_none() {
        warnings.push("nfguard: monitored containers set no runAsUser; set one so that the sidecar runs as the same uid and can read their memory".into());
    }

    let no_spec = PodSpec::default();
    let spec = plan.pod.spec.as_ref().unwrap_or(&no_spec);
    let images_env: BTreeMap<&str, &str> = plan
        .monitored
        .iter()
        .map(|&i| {
            (
                containers[i].name.as_str(),
                containers[i].image.as_deref().unwrap_or(""),
            )
        })
        .collect();
    let mut sidecar = sidecar_container(cfg, opts, &images_env, uid, gid, non_root, nf_has_caps);
    // The console: where the sidecar shares its workload's model, and who it is.
    let console_volume = cfg
        .console
        .as_ref()
        .map(|console| console_link(console, plan, images, &mut sidecar));

    if spec.share_process_namespace == Some(false) {
        warnings.push("nfguard: shareProcessNamespace: false replaced by true (the sidecar must see the pod's processes)".into());
    }
    if spec.share_process_namespace != Some(true) {
        ops.push(add(&["spec", "shareProcessNamespace"], json!(true)));
    }
    append(
        &mut ops,
        &["spec", "volumes"],
        spec.volumes.is_some(),
        std::iter::once(json!({"name": paths::SHARED_VOLUME, "emptyDir": {}}))
            .chain(console_volume)
            .collect(),
    );
    if cfg.classic_sidecar {
        ops.push(add(&["spec", "containers", "0"], sidecar));
    } else if spec.init_containers.is_some() {
        ops.push(add(&["spec", "initContainers", "0"], sidecar));
    } else {
        ops.push(add(
            &["spec", "initContainers"],
            Value::Array(vec![sidecar]),
        ));
    }

    let status = json!({
        "version": crate::VERSION,
        "sidecarImage": cfg.sidecar_image,
        "containers": wrapped,
        "mode": opts.mode.map_or("default", Mode::as_str),
        "nativeSidecar": !cfg.classic_sidecar,
    })
    .to_string();
    if !plan.has_metadata {
        ops.push(add(&["metadata"], json!({})));
    }
    if plan.pod.metadata.annotations.is_some() {
        ops.push(add(
            &["metadata", "annotations", annotations::STATUS],
            Value::String(status),
        ));
    } else {
        ops.push(add(
            &["metadata", "annotations"],
            json!({ annotations::STATUS: status }),
        ));
    }

    Outcome::Inject {
        patch: Patch(ops),
        containers: wrapped,
        warnings,
    }
}

/// The pod's workload, from its controller: a ReplicaSet named `DEPLOYMENT-HASH` (with the
/// pod's `pod-template-hash` label) belongs to that Deployment; a pod without an owner is
/// its own workload. (The console checks this again from the pod for service-account tokens.)
pub fn workload_of(pod: &Pod) -> (String, String) {
    let md = &pod.metadata;
    let name = md
        .name
        .clone()
        .or_else(|| {
            md.generate_name
                .clone()
                .map(|g| g.trim_end_matches('-').to_string())
        })
        .unwrap_or_default();
    let owner = md
        .owner_references
        .as_ref()
        .and_then(|o| o.iter().find(|r| r.controller == Some(true)).or(o.first()));
    match owner {
        None => ("Pod".into(), name),
        Some(o) if o.kind == "ReplicaSet" => {
            let hash = md
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                .map(|h| format!("-{h}"));
            match hash {
                Some(h) if o.name.ends_with(&h) => (
                    "Deployment".into(),
                    o.name[..o.name.len() - h.len()].to_string(),
                ),
                _ => ("ReplicaSet".into(), o.name.clone()),
            }
        }
        Some(o) => (o.kind.clone(), o.name.clone()),
    }
}

/// Adds the console's settings to the sidecar (its URL, credential, the workload's
/// identity, the images' digests and what is known statically) and returns the
/// projected volume with the pod's service-account token for the console.
fn console_link(
    console: &crate::config::ConsoleTarget,
    plan: &Plan,
    images: &ImageConfigs,
    sidecar: &mut Value,
) -> Value {
    let containers = plan.containers();
    let (kind, name) = workload_of(&plan.pod);
    let mut digests = BTreeMap::new();
    let mut statics = BTreeMap::new();
    for &i in &plan.monitored {
        let c = &containers[i];
        let image = c.image.clone().unwrap_or_default();
        let ic = images.get(&image).and_then(|r| r.as_ref().ok());
        if let Some(d) = ic.and_then(|ic| ic.digest.clone()) {
            digests.insert(c.name.clone(), d);
        }
        let entrypoint = c
            .command
            .as_ref()
            .and_then(|cmd| cmd.first().cloned())
            .or_else(|| {
                plan.options
                    .entrypoint
                    .as_ref()
                    .and_then(|e| e.for_container(&c.name))
                    .and_then(|e| e.first().cloned())
            })
            .or_else(|| ic.and_then(|ic| ic.entrypoint.first().or(ic.cmd.first()).cloned()))
            .filter(|e| e.starts_with('/'));
        let ports: Vec<Value> = c
            .ports
            .iter()
            .flatten()
            .map(|p| json!({"port": p.container_port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())}))
            .collect();
        statics.insert(
            c.name.clone(),
            json!({"entrypoint": entrypoint, "ports": ports}),
        );
    }
    let annots = plan.pod.metadata.annotations.clone().unwrap_or_default();
    let mut envs = vec![
        json!({"name": env::CONSOLE_URL, "value": console.url}),
        json!({"name": env::CONSOLE_TOKEN_FILE, "value": nfguard_common::console::TOKEN}),
        json!({"name": env::CLUSTER, "value": console.cluster}),
        json!({"name": env::WORKLOAD_KIND, "value": kind}),
        json!({"name": env::WORKLOAD_NAME, "value": name}),
        json!({"name": env::CONTAINER_DIGESTS, "value": serde_json::to_string(&digests).unwrap_or_default()}),
        json!({"name": env::STATIC, "value": serde_json::to_string(&statics).unwrap_or_default()}),
        json!({"name": env::POD_IPS, "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}}),
    ];
    if console.ca_configmap.is_some() {
        envs.push(json!({"name": env::CONSOLE_CA, "value": nfguard_common::console::CA}));
    }
    for (annotation, var) in [
        (annotations::DRY_RUN_PERIOD, env::DRY_RUN_PERIOD),
        (annotations::REQUIRE_APPROVAL, env::REQUIRE_APPROVAL),
    ] {
        if let Some(v) = annots.get(annotation) {
            envs.push(json!({"name": var, "value": v}));
        }
    }
    if let Some(e) = sidecar["env"].as_array_mut() {
        e.extend(envs);
    }
    if let Some(m) = sidecar["volumeMounts"].as_array_mut() {
        m.push(json!({"name": nfguard_common::console::VOLUME, "mountPath": nfguard_common::console::MOUNT, "readOnly": true}));
    }
    let mut sources = vec![json!({"serviceAccountToken": {
        "audience": nfguard_common::console::AUDIENCE, "expirationSeconds": 3600, "path": "token"}})];
    if let Some(cm) = &console.ca_configmap {
        sources.push(
            // Optional: a namespace without it still starts its pods (the sidecar
            // says it cannot verify the console, learns locally and spools).
            json!({"configMap": {"name": cm, "optional": true, "items": [{"key": "ca.crt", "path": "ca.crt"}]}}),
        );
    }
    json!({"name": nfguard_common::console::VOLUME, "projected": {"sources": sources}})
}

/// The `nfguard` container.
fn sidecar_container(
    cfg: &Config,
    opts: &PodOptions,
    images: &BTreeMap<&str, &str>,
    uid: Option<i64>,
    gid: Option<i64>,
    non_root: bool,
    nf_has_caps: bool,
) -> Value {
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    // The sidecar's reading (sidecar/src/run.rs): NFGUARD_MODE=learn with a learning period
    // learns, then switches to alert; learn without one learns until told otherwise. So:
    // no nfguard.io/mode -> learn + period (default 10m); an explicit `learn` with no
    // learning-period annotation -> learn only; alert/enforce -> that mode (the period is
    // passed along for the record).
    let mode = opts.mode.unwrap_or(Mode::Learn);
    let explicit_learn_only = opts.mode == Some(Mode::Learn) && !opts.learning_period_set;
    let mut envs = vec![json!({"name": env::MODE, "value": mode.as_str()})];
    if !explicit_learn_only {
        envs.push(json!({"name": env::LEARNING_PERIOD, "value": opts.learning_period}));
    }
    envs.extend([
        json!({"name": env::EXEC_SESSIONS, "value": opts.exec_sessions.as_str()}),
        field(env::POD_NAME, "metadata.name"),
        field(env::POD_NAMESPACE, "metadata.namespace"),
        field(env::POD_UID, "metadata.uid"),
        field(env::NODE_NAME, "spec.nodeName"),
        json!({"name": env::CONTAINER_IMAGES, "value": serde_json::to_string(images).unwrap_or_default()}),
        json!({"name": env::API_ADDR, "value": SIDECAR_API_ADDR}),
        json!({"name": env::SOCKET, "value": paths::SOCKET}),
    ]);
    if let Some(sinks) = opts.sinks.as_ref().or(cfg.default_sinks.as_ref()) {
        envs.push(json!({"name": env::SINKS, "value": sinks}));
    }
    let envs = Value::Array(envs);
    let mut sc = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": true,
        "seccompProfile": {"type": "RuntimeDefault"},
    });
    if nf_has_caps {
        // The kernel lets one process read another's memory (ptrace access
        // mode ATTACH) only if it holds every capability the other has, or
        // CAP_SYS_PTRACE. An NF that keeps capabilities (the runtime's default
        // set, or added ones) is out of reach of a sidecar that dropped them all.
        sc["capabilities"] = json!({"drop": ["ALL"], "add": ["SYS_PTRACE"]});
    }
    if let Some(u) = uid {
        sc["runAsUser"] = json!(u);
        if u != 0 {
            sc["runAsNonRoot"] = json!(true);
        }
    } else if non_root {
        sc["runAsNonRoot"] = json!(true);
    }
    if let Some(g) = gid {
        sc["runAsGroup"] = json!(g);
    }
    let r = &cfg.resources;
    let mut c = json!({
        "name": paths::SIDECAR_CONTAINER,
        "image": cfg.sidecar_image,
        "command": [SIDECAR_BINARY, "sidecar"],
        "resources": {
            "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
            "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
        },
        "startupProbe": {
            "exec": {"command": [SIDECAR_BINARY, "health"]},
            "periodSeconds": 1,
            "failureThreshold": 30,
        },
        // A stopped or stuck supervisor fails this: the kubelet restarts the
        // sidecar, the keepers hand their listeners to the new supervisor and
        // the in-flight journal has what the old one had received. Meanwhile
        // the NF's notified calls wait (closed, not open).
        "livenessProbe": {
            "exec": {"command": [SIDECAR_BINARY, "health", "--live"]},
            "periodSeconds": 5,
            "timeoutSeconds": 4,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": paths::SHARED_VOLUME, "mountPath": paths::SHARED_DIR}],
    });
    // Moved in: `json!` would copy them (it serialises what it is given into a new value).
    c["env"] = envs;
    c["securityContext"] = sc;
    if cfg.classic_sidecar {
        // Without native sidecars nothing makes the app containers wait for the startup
        // probe; the kubelet does wait for a postStart hook before starting the next
        // container, so the hook blocks until the supervisor is ready.
        c["lifecycle"] =
            json!({"postStart": {"exec": {"command": [SIDECAR_BINARY, "health", "--wait"]}}});
    } else {
        c["restartPolicy"] = json!("Always");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(container: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container]}})
    }

    fn run(pod_json: &Value, images: ImageConfigs) -> (Outcome, Value) {
        let cfg = Config::default();
        let plan = plan(pod_json, Some("ns"), &cfg).unwrap();
        let outcome = mutate(&plan, &cfg, &images);
        let mut out = pod_json.clone();
        if let Outcome::Inject { patch, .. } = &outcome {
            json_patch::patch(&mut out, &patch.0).unwrap();
        }
        (outcome, out)
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfigs {
        let ic = ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            digest: None,
        };
        HashMap::from([("img".to_string(), Ok(ic))])
    }

    #[test]
    fn with_a_console_the_sidecar_gets_its_url_token_workload_digest_and_static_items() {
        let cfg = Config {
            console: Some(crate::config::ConsoleTarget {
                url: "https://nfguard-console.nfguard-system.svc:9950".into(),
                ca_configmap: Some("nfguard-console-ca".into()),
                cluster: "lab".into(),
            }),
            ..Config::default()
        };
        let pod_json = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "smf-7d4b9c-x2x", "labels": {"pod-template-hash": "7d4b9c"},
                         "annotations": {"nfguard.io/require-approval": "true"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "smf-7d4b9c", "uid": "u", "controller": true}]},
            "spec": {"containers": [{"name": "smf", "image": "img", "ports": [{"containerPort": 8805, "protocol": "UDP"}]}]}});
        let mut images = image(&["/usr/bin/smf"], &[]);
        if let Some(Ok(ic)) = images.get_mut("img") {
            ic.digest = Some(format!("sha256:{}", "c".repeat(64)));
        }
        let plan = plan(&pod_json, Some("core"), &cfg).unwrap();
        let outcome = mutate(&plan, &cfg, &images);
        let mut out = pod_json.clone();
        let Outcome::Inject { patch, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        json_patch::patch(&mut out, &patch.0).unwrap();
        let sidecar = &out["spec"]["initContainers"][0];
        let env_of = |n: &str| {
            sidecar["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == n)
                .map(|e| e["value"].clone())
        };
        assert_eq!(
            env_of(env::CONSOLE_URL).unwrap(),
            "https://nfguard-console.nfguard-system.svc:9950"
        );
        assert_eq!(env_of(env::WORKLOAD_KIND).unwrap(), "Deployment");
        assert_eq!(env_of(env::WORKLOAD_NAME).unwrap(), "smf");
        assert_eq!(env_of(env::CLUSTER).unwrap(), "lab");
        assert_eq!(env_of(env::REQUIRE_APPROVAL).unwrap(), "true");
        let digests: Value =
            serde_json::from_str(env_of(env::CONTAINER_DIGESTS).unwrap().as_str().unwrap())
                .unwrap();
        assert_eq!(digests["smf"], format!("sha256:{}", "c".repeat(64)));
        let statics: Value =
            serde_json::from_str(env_of(env::STATIC).unwrap().as_str().unwrap()).unwrap();
        assert_eq!(
            statics["smf"],
            json!({"entrypoint": "/usr/bin/smf", "ports": [{"port": 8805, "protocol": "UDP"}]})
        );
        let vol = out["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "nfguard-console")
            .unwrap();
        assert_eq!(
            vol["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            "nfguard-console"
        );
        assert!(sidecar["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/var/run/secrets/nfguard"));
    }

    #[test]
    fn an_image_with_only_a_cmd_runs_its_cmd_under_the_launcher() {
        let (_, out) = run(
            &pod(json!({"name": "a", "image": "img"})),
            image(&[], &["/bin/nf", "-d"]),
        );
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["command"], json!([paths::LAUNCHER, "--"]));
        assert_eq!(c["args"], json!(["/bin/nf", "-d"]));
    }

    #[test]
    fn pod_args_replace_the_image_cmd_as_kubernetes_does() {
        let (_, out) = run(
            &pod(json!({"name": "a", "image": "img", "args": ["-x"]})),
            image(&["/bin/nf"], &["-d"]),
        );
        let c = &out["spec"]["containers"][0];
        assert_eq!(c["command"], json!([paths::LAUNCHER, "--", "/bin/nf"]));
        assert_eq!(c["args"], json!(["-x"]));
    }

    #[test]
    fn an_image_with_nothing_to_run_is_not_injected() {
        let (o, _) = run(&pod(json!({"name": "a", "image": "img"})), image(&[], &[]));
        assert!(
            matches!(
                o,
                Outcome::Skip {
                    reason: SkipReason::EntrypointUnresolved,
                    ..
                }
            ),
            "{o:?}"
        );
    }

    fn sidecar_env(out: &Value, name: &str) -> Option<Value> {
        out["spec"]["initContainers"][0]["env"]
            .as_array()?
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].clone())
    }

    #[test]
    fn the_pods_sinks_replace_the_clusters_and_reach_the_sidecar() {
        let mut cfg = Config {
            default_sinks: Some(r#"{"sinks":[{"type":"webhook","url":"http://soc"}]}"#.into()),
            ..Config::default()
        };
        let p = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "img", "command": ["/x"]}]}});
        let outcome = mutate(&plan(&p, Some("ns"), &cfg).unwrap(), &cfg, &HashMap::new());
        let Outcome::Inject { patch, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        let mut out = p.clone();
        json_patch::patch(&mut out, &patch.0).unwrap();
        assert_eq!(
            sidecar_env(&out, env::SINKS).unwrap(),
            r#"{"sinks":[{"type":"webhook","url":"http://soc"}]}"#
        );
        // The annotation wins over the cluster's default.
        let mut p2 = p.clone();
        p2["metadata"]["annotations"] =
            json!({annotations::SINKS: r#"{"sinks":[{"type":"slack","url":"http://chat"}]}"#});
        let outcome = mutate(&plan(&p2, Some("ns"), &cfg).unwrap(), &cfg, &HashMap::new());
        let Outcome::Inject { patch, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        let mut out = p2.clone();
        json_patch::patch(&mut out, &patch.0).unwrap();
        assert!(sidecar_env(&out, env::SINKS)
            .unwrap()
            .as_str()
            .unwrap()
            .contains("slack"));
        // No sinks anywhere: no variable (the sidecar keeps stdout only).
        cfg.default_sinks = None;
        let outcome = mutate(&plan(&p, Some("ns"), &cfg).unwrap(), &cfg, &HashMap::new());
        let Outcome::Inject { patch, .. } = &outcome else {
            panic!("{outcome:?}")
        };
        let mut out = p.clone();
        json_patch::patch(&mut out, &patch.0).unwrap();
        assert!(sidecar_env(&out, env::SINKS).is_none());
    }

    #[test]
    fn metadata_and_annotations_are_created_when_absent() {
        let p = json!({"spec": {"containers": [{"name": "a", "image": "img", "command": ["/x"]}]}});
        let (_, out) = run(&p, HashMap::new());
        assert!(out["metadata"]["annotations"][annotations::STATUS].is_string());
    }
}
