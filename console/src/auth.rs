//! Who is asking: nothing is read or changed without a credential.
//!
//! - Operators present a bearer token with a role: `viewer` reads, `operator`
//!   also approves, relearns, writes rules and handles incidents, `admin` also
//!   manages tokens. The admin token comes from `--admin-token-file`; the
//!   others are created through the API and kept in the database as SHA-256
//!   hashes (a stolen database does not hand out tokens).
//! - Sidecars are limited to their own workload: they may sync (report their
//!   pod's observations and events, get their model) and read that one model,
//!   nothing else.
//!   - On a host, a sidecar presents a *join token*: from `--join-token-file`
//!     (`TOKEN [SCOPE]` per line) or created through the API with a scope. The
//!     scope says which workloads the token may speak for:
//!     `[CLUSTER:]NAMESPACE/KIND/NAME`, each part a name or `*`.
//!   - In a cluster, a sidecar presents its projected service-account token
//!     (audience `nfguard-console`). The console asks the API server who it is
//!     (TokenReview), reads the pod the token is bound to, and derives the
//!     workload from the pod's owner: the sidecar speaks for exactly that
//!     workload and that pod, whatever it claims.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nfguard_sidecar::console_link::wire::{canonical_kind, WorkloadIdentity};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::client::{self, Trust};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Which workloads a join token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub cluster: String,
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        let bad =
            || format!("scope {text:?}: expected [CLUSTER:]NAMESPACE/KIND/NAME, each a name or *");
        let (cluster, rest) = match text.split_once(':') {
            Some((c, r)) => (c.to_string(), r),
            None => ("*".to_string(), text),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let [ns, kind, name] = parts[..] else {
            return Err(bad());
        };
        if [cluster.as_str(), ns, kind, name]
            .iter()
            .any(|p| p.is_empty())
        {
            return Err(bad());
        }
        let kind = if kind == "*" {
            "*".to_string()
        } else {
            canonical_kind(kind).ok_or_else(bad)?
        };
        Ok(Scope {
            cluster,
            namespace: ns.into(),
            kind,
            name: name.into(),
        })
    }

    pub fn exact(w: &WorkloadIdentity) -> Scope {
        Scope {
            cluster: w.cluster.clone(),
            namespace: w.namespace.clone(),
            kind: w.kind.clone(),
            name: w.name.clone(),
        }
    }

    pub fn covers(&self, w: &WorkloadIdentity) -> bool {
        let m = |p: &str, v: &str| p == "*" || p == v;
        m(&self.cluster, &w.cluster)
            && m(&self.namespace, &w.namespace)
            && m(&self.kind, &w.kind)
            && m(&self.name, &w.name)
    }

    /// Does the scope cover the workload of this console id?
    pub fn covers_id(&self, id: &str) -> bool {
        let p: Vec<&str> = id.splitn(4, ':').collect();
        let [cluster, ns, kind, name] = p[..] else {
            return false;
        };
        let Some(kind) = canonical_kind(kind) else {
            return false;
        };
        self.covers(&WorkloadIdentity {
            cluster: cluster.into(),
            namespace: ns.into(),
            kind,
            name: name.into(),
        })
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}/{}/{}",
            self.cluster, self.namespace, self.kind, self.name
        )
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Operator {
        name: String,
        role: Role,
    },
    Sidecar {
        name: String,
        scope: Scope,
        /// Set when the cluster vouched for the pod (TokenReview): the only pod it may report as.
        pod: Option<String>,
    },
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Operator { name, .. } | Principal::Sidecar { name, .. } => name,
        }
    }

    /// May this caller act with `role`?
    pub fn has(&self, role: Role) -> bool {
        matches!(self, Principal::Operator { role: r, .. } if *r >= role)
    }

    /// May this caller read the model of workload `id`?
    pub fn may_read_workload(&self, id: &str) -> bool {
        match self {
            Principal::Operator { .. } => true,
            Principal::Sidecar { scope, .. } => scope.covers_id(id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send Authorization: Bearer TOKEN")]
    Missing,
    #[error("the credential is not valid")]
    Invalid,
    #[error("the cluster did not vouch for this token: {0}")]
    Kube(String),
    #[error("the credential check failed: {0}")]
    Internal(String),
}

pub fn hash(token: &str) -> String {
    let d = Sha256::digest(token.trim().as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh token: 32 random bytes, URL-safe base64, with a prefix that says what it is.
pub fn new_token() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    format!(
        "nfg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The credentials the console was started with, and how to ask the cluster.
pub struct Auth {
    admin: Option<String>,
    join: Vec<(String, Scope)>,
    kube: Option<Kube>,
    cache: Mutex<HashMap<String, (Instant, Principal)>>,
}

/// Reads `--admin-token-file`: one token (surrounding whitespace ignored).
pub fn read_admin_token(path: &std::path::Path) -> Result<String, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.len() < 16 {
        return Err(format!(
            "{}: the admin token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(t)
}

/// Reads `--join-token-file`: `TOKEN [SCOPE]` per line, `#` comments.
pub fn read_join_tokens(path: &std::path::Path) -> Result<Vec<(String, Scope)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let token = f.next().unwrap_or_default();
        if token.len() < 16 {
            return Err(format!(
                "{} line {}: a join token must be at least 16 characters",
                path.display(),
                i + 1
            ));
        }
        let scope = match f.next() {
            Some(s) => {
                Scope::parse(s).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?
            }
            None => Scope::parse("*/*/*").map_err(|e| e.to_string())?,
        };
        out.push((hash(token), scope));
    }
    Ok(out)
}

impl Auth {
    pub fn new(admin: Option<String>, join: Vec<(String, Scope)>, kube: Option<Kube>) -> Auth {
        Auth {
            admin: admin.map(|t| hash(&t)),
            join,
            kube,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who sent `authorization` (the header's value).
    pub async fn authenticate(
        &self,
        store: &Store,
        authorization: Option<&str>,
    ) -> Result<Principal, AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or(h.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let h = hash(token);
        if self.admin.as_deref() == Some(h.as_str()) {
            return Ok(Principal::Operator {
                name: "admin".into(),
                role: Role::Admin,
            });
        }
        if let Some((_, scope)) = self.join.iter().find(|(t, _)| *t == h) {
            return Ok(Principal::Sidecar {
                name: format!("join token for {scope}"),
                scope: scope.clone(),
                pod: None,
            });
        }
        match store.token_by_hash(&h).await {
            Ok(Some((name, role, scope))) => {
                if role == "join" {
                    let scope = Scope::parse(scope.as_deref().unwrap_or("*/*/*"))
                        .map_err(AuthError::Internal)?;
                    return Ok(Principal::Sidecar {
                        name: format!("join token {name}"),
                        scope,
                        pod: None,
                    });
                }
                let role = Role::parse(&role).ok_or(AuthError::Invalid)?;
                return Ok(Principal::Operator { name, role });
            }
            Ok(None) => {}
            Err(e) => return Err(AuthError::Internal(e.to_string())),
        }
        if let Some(kube) = &self.kube {
            if token.split('.').count() == 3 {
                if let Some((at, p)) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&h)
                {
                    if at.elapsed() < Duration::from_secs(60) {
                        return Ok(p.clone());
                    }
                }
                let p = kube.review(token).await?;
                let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 50_000 {
                    cache.clear();
                }
                cache.insert(h, (Instant::now(), p.clone()));
                return Ok(p);
            }
        }
        Err(AuthError::Invalid)
    }
}

/// The API server, for TokenReview and the pod a token is bound to.
#[derive(Debug, Clone)]
pub struct Kube {
    pub url: String,
    pub token_file: std::path::PathBuf,
    pub ca: Trust,
    /// The name this console gives its cluster in workload ids.
    pub cluster: String,
}

/// The audience a sidecar's projected token must be minted for.
pub const AUDIENCE: &str = "nfguard-console";

impl Kube {
    /// In a pod with a service account: the API server's address, token and CA.
    pub fn in_cluster(cluster: &str) -> Option<Result<Kube, String>> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let dir = std::path::Path::new("/var/run/secrets/kubernetes.io/serviceaccount");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(client::read_certs(&dir.join("ca.crt")).map(|ca| Kube {
            url: format!("https://{host}:{port}"),
            token_file: dir.join("token"),
            ca: Trust::Certs(ca),
            cluster: cluster.to_string(),
        }))
    }

    async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AuthError> {
        let own = std::fs::read_to_string(&self.token_file)
            .map_err(|e| AuthError::Internal(format!("{}: {e}", self.token_file.display())))?;
        let a = client::request(
            method,
            &format!("{}{path}", self.url),
            &[
                ("authorization", format!("Bearer {}", own.trim())),
                ("content-type", "application/json".into()),
                ("accept", "application/json".into()),
            ],
            body.map(|b| b.to_string().into_bytes()),
            Some(&self.ca),
            Duration::from_secs(5),
        )
        .await
        .map_err(AuthError::Internal)?;
        if !a.status.is_success() {
            return Err(AuthError::Internal(format!(
                "{path}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )));
        }
        serde_json::from_slice(&a.body).map_err(|e| AuthError::Internal(format!("{path}: {e}")))
    }

    async fn review(&self, token: &str) -> Result<Principal, AuthError> {
        let review = self
            .call(
                hyper::Method::POST,
                "/apis/authentication.k8s.io/v1/tokenreviews",
                Some(json!({
                    "apiVersion": "authentication.k8s.io/v1",
                    "kind": "TokenReview",
                    "spec": {"token": token, "audiences": [AUDIENCE]},
                })),
            )
            .await?;
        let (ns, pod, uid) = reviewed_pod(&review).map_err(AuthError::Kube)?;
        let pod_doc = self
            .call(
                hyper::Method::GET,
                &format!("/api/v1/namespaces/{ns}/pods/{pod}"),
                None,
            )
            .await?;
        if pod_doc["metadata"]["uid"].as_str() != Some(uid.as_str()) {
            return Err(AuthError::Kube(format!(
                "pod {ns}/{pod} is not the pod the token was issued for"
            )));
        }
        let w = workload_of_pod(&pod_doc, &self.cluster).map_err(AuthError::Kube)?;
        Ok(Principal::Sidecar {
            name: format!("pod {ns}/{pod}"),
            scope: Scope::exact(&w),
            pod: Some(pod),
        })
    }
}

/// From a TokenReview answer: the namespace, name and uid of the pod the token is bound to.
pub fn reviewed_pod(review: &Value) -> Result<(String, String, String), String> {
    let st = &review["status"];
    if st["authenticated"] != true {
        return Err(st["error"]
            .as_str()
            .unwrap_or("not authenticated")
            .to_string());
    }
    if let Some(aud) = st["audiences"].as_array() {
        if !aud.iter().any(|a| a == AUDIENCE) {
            return Err(format!("the token is not for audience {AUDIENCE}"));
        }
    }
    let user = st["user"]["username"].as_str().unwrap_or("");
    let ns = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split(':').next())
        .ok_or_else(|| format!("{user:?} is not a service account"))?;
    let extra = &st["user"]["extra"];
    let first = |k: &str| extra[k][0].as_str().map(String::from);
    let pod = first("authentication.kubernetes.io/pod-name")
        .ok_or("the token is not bound to a pod (use a projected service-account token)")?;
    let uid = first("authentication.kubernetes.io/pod-uid").ok_or("the token names no pod uid")?;
    Ok((ns.to_string(), pod, uid))
}

/// The workload a pod belongs to, from its owner: a ReplicaSet made by a
/// Deployment is named `DEPLOYMENT-HASH` with the pod's `pod-template-hash`
/// label; a Job made by a CronJob is named `CRONJOB-SCHEDULE` (kept as the Job);
/// StatefulSet and DaemonSet own their pods; a pod without an owner is its own workload.
pub fn workload_of_pod(pod: &Value, cluster: &str) -> Result<WorkloadIdentity, String> {
    let md = &pod["metadata"];
    let ns = md["namespace"].as_str().ok_or("the pod has no namespace")?;
    let name = md["name"].as_str().ok_or("the pod has no name")?;
    let owner = md["ownerReferences"]
        .as_array()
        .and_then(|o| o.iter().find(|r| r["controller"] == true).or(o.first()));
    let (kind, wname) = match owner {
        None => ("Pod".to_string(), name.to_string()),
        Some(o) => {
            let kind = o["kind"].as_str().unwrap_or("Pod");
            let oname = o["name"].as_str().unwrap_or(name);
            match kind {
                "ReplicaSet" => match md["labels"]["pod-template-hash"].as_str() {
                    Some(h) if oname.ends_with(&format!("-{h}")) => (
                        "Deployment".to_string(),
                        oname[..oname.len() - h.len() - 1].to_string(),
                    ),
                    _ => ("ReplicaSet".to_string(), oname.to_string()),
                },
                k => (
                    canonical_kind(k).unwrap_or_else(|| "Pod".to_string()),
                    if canonical_kind(k).is_some() {
                        oname
                    } else {
                        name
                    }
                    .to_string(),
                ),
            }
        }
    };
    let w = WorkloadIdentity {
        cluster: cluster.to_string(),
        namespace: ns.to_string(),
        kind,
        name: wname,
    };
    w.check()?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(ns: &str, kind: &str, name: &str) -> WorkloadIdentity {
        WorkloadIdentity {
            cluster: "local".into(),
            namespace: ns.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn scopes_limit_a_join_token_to_its_workloads() {
        let s = Scope::parse("core/deployment/smf").unwrap();
        assert!(s.covers(&w("core", "Deployment", "smf")));
        assert!(!s.covers(&w("core", "Deployment", "amf")));
        assert!(s.covers_id("local:core:deployment:smf"));
        assert!(!s.covers_id("local:core:deployment:amf"));
        let any_in_core = Scope::parse("lab:core/*/*").unwrap();
        assert!(
            !any_in_core.covers(&w("core", "Pod", "x")),
            "another cluster"
        );
        for bad in ["core/smf", "core/Thing/smf", "/x/y", "a/b/c/d"] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sidecars_read_only_their_own_workload_and_never_act() {
        let p = Principal::Sidecar {
            name: "j".into(),
            scope: Scope::parse("core/Deployment/smf").unwrap(),
            pod: None,
        };
        assert!(p.may_read_workload("local:core:deployment:smf"));
        assert!(!p.may_read_workload("local:core:deployment:upf"));
        assert!(!p.has(Role::Viewer));
        let v = Principal::Operator {
            name: "v".into(),
            role: Role::Viewer,
        };
        assert!(v.has(Role::Viewer) && !v.has(Role::Operator));
    }

    #[test]
    fn a_token_review_names_the_pod_and_its_owner_names_the_workload() {
        let review = json!({"status": {"authenticated": true, "audiences": ["nfguard-console"],
            "user": {"username": "system:serviceaccount:core:smf",
                     "extra": {"authentication.kubernetes.io/pod-name": ["smf-7d4b9c-x2x"], "authentication.kubernetes.io/pod-uid": ["u-1"]}}}});
        assert_eq!(
            reviewed_pod(&review).unwrap(),
            ("core".into(), "smf-7d4b9c-x2x".into(), "u-1".into())
        );
        let no = json!({"status": {"authenticated": false, "error": "expired"}});
        assert_eq!(reviewed_pod(&no).unwrap_err(), "expired");
        let pod = json!({"metadata": {"namespace": "core", "name": "smf-7d4b9c-x2x", "labels": {"pod-template-hash": "7d4b9c"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "smf-7d4b9c", "controller": true}]}});
        assert_eq!(
            workload_of_pod(&pod, "c1").unwrap(),
            WorkloadIdentity {
                cluster: "c1".into(),
                namespace: "core".into(),
                kind: "Deployment".into(),
                name: "smf".into()
            }
        );
        let sts = json!({"metadata": {"namespace": "core", "name": "upf-0", "ownerReferences": [{"kind": "StatefulSet", "name": "upf", "controller": true}]}});
        assert_eq!(workload_of_pod(&sts, "c1").unwrap().kind, "StatefulSet");
        let bare = json!({"metadata": {"namespace": "core", "name": "debug"}});
        assert_eq!(
            workload_of_pod(&bare, "c1").unwrap().id(),
            "c1:core:pod:debug"
        );
    }
}
