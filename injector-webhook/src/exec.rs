//! Exec sessions through the API server: `kubectl exec`, `kubectl attach` and `kubectl debug`
//! on a pod that nfguard protects.
//!
//! Why: a process started by `kubectl exec` is created by the runtime (`runc exec`), not by the
//! launcher, so it does not carry the launcher's seccomp filter (docs/architecture.md, fact 1). The
//! API server lets a mutating webhook see the exec before it happens (a CONNECT of
//! `pods/exec` whose object is `PodExecOptions`) and change its `command`. The injector wraps
//! it in the launcher already present in the container:
//!
//! ```text
//! ["/nfguard/bin/nfguard-launch", "--container", C, "--session", UID, "--user", USER, "--", cmd...]
//! ```
//!
//! so the whole session runs under the filter and every event names the API user.
//!
//! Knowing whether the pod is injected: the exec review carries only the pod's name, so the
//! webhook reads the pod from the API server ([`crate::apiserver`], RBAC `get pods`). A cache
//! of pods seen at CREATE would not do: pods of a Deployment are created with `generateName`
//! (no name yet at admission), the injector runs with two replicas, and restarts forget.
//!
//! A session is wrapped only when it is safe, never breaking an exec that would have worked:
//! - the pod carries `nfguard.io/status` *and* our sidecar (a forged record does not count);
//! - the container is one the injector wrapped (`status.containers`) and its `command` still
//!   starts with the launcher: the launcher is then the container's own entrypoint, so the
//!   file exists whenever the container runs ("launcher missing" cannot happen there);
//! - the sidecar reports ready: a wrapped session's first exec waits for the supervisor's
//!   answer, so with the supervisor down the session would hang.
//!
//! Otherwise the exec passes unchanged with a warning (policies `alert` and `allow`), or is
//! refused (policy `deny`: the operator asked that no unmonitored session run). Everything
//! that does pass unwrapped is still seen by the sidecar's exec-session watcher.

use nfguard_common::{annotations, paths, ExecSessions};
use serde_json::{json, Value};

/// What the webhook answers for a `pods/exec`, `pods/attach` or `pods/ephemeralcontainers`
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// Replace `PodExecOptions.command` with `command`.
    Wrap {
        command: Vec<String>,
        warnings: Vec<String>,
    },
    /// Admit unchanged; `reason` is the metric label.
    Leave {
        reason: &'static str,
        warnings: Vec<String>,
    },
    /// Refuse (policy `deny`).
    Deny { message: String },
}

impl ExecOutcome {
    fn leave(reason: &'static str, warning: Option<String>) -> Self {
        ExecOutcome::Leave {
            reason,
            warnings: warning.into_iter().collect(),
        }
    }

    /// The JSON patch for a wrap, against the PodExecOptions object.
    pub fn patch(&self) -> Option<Value> {
        match self {
            ExecOutcome::Wrap { command, .. } => {
                Some(json!([{"op": "replace", "path": "/command", "value": command}]))
            }
            _ => None,
        }
    }
}

/// The parts of an exec request that matter here.
#[derive(Debug, Clone)]
pub struct ExecRequest<'a> {
    /// The AdmissionReview uid: unique per request, becomes the session id.
    pub uid: &'a str,
    /// `userInfo.username`.
    pub user: &'a str,
    /// `PodExecOptions.container` (empty or absent: the pod's only container).
    pub container: Option<&'a str>,
    pub command: Vec<String>,
}

/// What an injected pod looks like to the exec rule.
struct Injected<'a> {
    policy: ExecSessions,
    monitored: Vec<String>,
    pod: &'a Value,
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod["spec"][field].as_array().into_iter().flatten()
}

/// `Some` when the pod is under nfguard: status record and our sidecar both present.
fn injected(pod: &Value) -> Option<Injected<'_>> {
    let annots = &pod["metadata"]["annotations"];
    let status: Value = serde_json::from_str(annots[annotations::STATUS].as_str()?).ok()?;
    let has_sidecar = containers(pod, "initContainers")
        .chain(containers(pod, "containers"))
        .any(|c| c["name"] == paths::SIDECAR_CONTAINER);
    if !has_sidecar {
        return None;
    }
    let policy = annots[annotations::EXEC_SESSIONS]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_default();
    Some(Injected {
        policy,
        monitored: str_list(&status["containers"]),
        pod,
    })
}

/// Is the sidecar ready (pod status)? Absent status counts as not ready.
fn sidecar_ready(pod: &Value) -> bool {
    let statuses = |f: &str| {
        pod["status"][f]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
    };
    statuses("initContainerStatuses")
        .chain(statuses("containerStatuses"))
        .any(|s| s["name"] == paths::SIDECAR_CONTAINER && s["ready"] == true)
}

/// The container an exec without `container` goes to: the pod's only app container. (kubectl
/// itself always names one; the API server refuses an empty name when there are several.)
fn target_container<'a>(pod: &'a Value, asked: Option<&'a str>) -> Option<&'a str> {
    match asked.filter(|c| !c.is_empty()) {
        Some(c) => Some(c),
        None => {
            let mut names = containers(pod, "containers").filter_map(|c| c["name"].as_str());
            match (names.next(), names.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

/// Refuse under `deny`, pass with a warning otherwise.
fn unmonitored(inj: &Injected<'_>, reason: &'static str, why: String) -> ExecOutcome {
    match inj.policy {
        ExecSessions::Deny => ExecOutcome::Deny {
            message: format!("nfguard: nfguard.io/exec-sessions=deny and {why}"),
        },
        _ => ExecOutcome::leave(
            reason,
            Some(format!(
                "nfguard: session not wrapped: {why}; the sidecar's exec-session watcher still reports it"
            )),
        ),
    }
}

/// The decision for a `pods/exec` CONNECT. `pod` is the pod as read from the API server.
pub fn decide_exec(pod: &Value, req: &ExecRequest<'_>) -> ExecOutcome {
    let Some(inj) = injected(pod) else {
        return ExecOutcome::leave("not_injected", None);
    };
    if req.command.first().map(String::as_str) == Some(paths::LAUNCHER) {
        return ExecOutcome::leave("already_wrapped", None);
    }
    let Some(container) = target_container(pod, req.container) else {
        return ExecOutcome::leave("no_container", None);
    };
    if container == paths::SIDECAR_CONTAINER {
        // The sidecar's image holds nfguard and nothing else; its own processes are not
        // supervised by itself. Say so rather than pretend.
        return ExecOutcome::leave(
            "sidecar",
            Some("nfguard: exec into the nfguard sidecar is not monitored".into()),
        );
    }
    if !inj.monitored.iter().any(|m| m == container) {
        return ExecOutcome::leave(
            "not_monitored",
            Some(format!(
                "nfguard: container {container:?} is not monitored (nfguard.io/containers)"
            )),
        );
    }
    let spec = containers(inj.pod, "containers").find(|c| c["name"] == container);
    let launcher_is_entrypoint = spec
        .map(|c| str_list(&c["command"]))
        .is_some_and(|cmd| cmd.first().map(String::as_str) == Some(paths::LAUNCHER));
    if !launcher_is_entrypoint {
        return unmonitored(
            &inj,
            "launcher_missing",
            format!("container {container:?} does not run under the launcher"),
        );
    }
    if !sidecar_ready(inj.pod) {
        return unmonitored(
            &inj,
            "sidecar_not_ready",
            "the nfguard sidecar is not ready (a wrapped session would wait for it)".into(),
        );
    }
    let mut command = vec![
        paths::LAUNCHER.to_string(),
        "--container".into(),
        container.to_string(),
        "--session".into(),
        req.uid.to_string(),
        "--user".into(),
        req.user.to_string(),
        "--".into(),
    ];
    command.extend(req.command.iter().cloned());
    let warnings = match inj.policy {
        ExecSessions::Allow => vec![format!(
            "nfguard: break-glass session (nfguard.io/exec-sessions=allow): allowed, and logged as session {}",
            req.uid
        )],
        _ => Vec::new(),
    };
    ExecOutcome::Wrap { command, warnings }
}

/// The decision for a `pods/attach` CONNECT. Attach starts no process: it joins the stdio of
/// the container's own process, which the launcher started under the filter, so whatever a
/// user types there is supervised. Under `deny`, writing to an NF's stdin is still refused:
/// no NF reads commands from a terminal in normal operation.
pub fn decide_attach(pod: &Value, stdin: bool) -> ExecOutcome {
    let Some(inj) = injected(pod) else {
        return ExecOutcome::leave("not_injected", None);
    };
    if stdin && inj.policy == ExecSessions::Deny {
        return ExecOutcome::Deny {
            message: "nfguard: nfguard.io/exec-sessions=deny: attaching with stdin to a protected container is refused".into(),
        };
    }
    ExecOutcome::leave(
        "attach",
        Some("nfguard: attach joins the container's own process, which runs under nfguard".into()),
    )
}

/// The decision for an UPDATE of `pods/ephemeralcontainers` (`kubectl debug`). `pod` is the
/// new object, `old` the pod before. A debug container is started by the runtime, outside the
/// launcher, and may not even have a shell to wrap; it cannot be put under the filter, so:
/// refused under `deny`, allowed with a warning otherwise (the watcher reports its processes,
/// which share the pod's PID namespace).
pub fn decide_ephemeral(pod: &Value, old: Option<&Value>) -> ExecOutcome {
    let Some(inj) = injected(pod) else {
        return ExecOutcome::leave("not_injected", None);
    };
    let before: Vec<&str> = old
        .map(|o| {
            containers(o, "ephemeralContainers")
                .filter_map(|c| c["name"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let added: Vec<&str> = containers(pod, "ephemeralContainers")
        .filter_map(|c| c["name"].as_str())
        .filter(|n| !before.contains(n))
        .collect();
    if added.is_empty() {
        return ExecOutcome::leave("no_new_ephemeral_container", None);
    }
    unmonitored(
        &inj,
        "ephemeral_container",
        format!(
            "debug container(s) {} would run outside the launcher",
            added.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(policy: Option<&str>, ready: bool) -> Value {
        let mut annots =
            json!({annotations::STATUS: r#"{"version":"0.1.0","containers":["smf"]}"#});
        if let Some(p) = policy {
            annots[annotations::EXEC_SESSIONS] = json!(p);
        }
        json!({
            "metadata": {"name": "smf-0", "annotations": annots},
            "spec": {
                "initContainers": [{"name": "nfguard", "image": "x"}],
                "containers": [
                    {"name": "smf", "command": [paths::LAUNCHER, "--", "/bin/smf"]},
                    {"name": "log", "command": ["/bin/tail"]}
                ]
            },
            "status": {"initContainerStatuses": [{"name": "nfguard", "ready": ready}]}
        })
    }

    fn req(container: Option<&'static str>) -> ExecRequest<'static> {
        ExecRequest {
            uid: "u-1",
            user: "alice",
            container,
            command: vec!["sh".into()],
        }
    }

    #[test]
    fn a_monitored_container_gets_its_session_wrapped_with_user_and_session() {
        let out = decide_exec(&pod(None, true), &req(Some("smf")));
        let ExecOutcome::Wrap { command, .. } = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            command,
            [
                paths::LAUNCHER,
                "--container",
                "smf",
                "--session",
                "u-1",
                "--user",
                "alice",
                "--",
                "sh"
            ]
        );
    }

    #[test]
    fn unmonitored_or_unready_containers_pass_unless_the_policy_is_deny() {
        assert!(matches!(
            decide_exec(&pod(None, true), &req(Some("log"))),
            ExecOutcome::Leave {
                reason: "not_monitored",
                ..
            }
        ));
        assert!(matches!(
            decide_exec(&pod(None, false), &req(Some("smf"))),
            ExecOutcome::Leave {
                reason: "sidecar_not_ready",
                ..
            }
        ));
        assert!(matches!(
            decide_exec(&pod(Some("deny"), false), &req(Some("smf"))),
            ExecOutcome::Deny { .. }
        ));
        assert!(matches!(
            decide_exec(&pod(None, true), &req(None)),
            ExecOutcome::Leave {
                reason: "no_container",
                ..
            }
        ));
    }
}
