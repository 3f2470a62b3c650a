//! AdmissionReview in, AdmissionReview out: decode or refuse with a reason, build the
//! response from the request, run the same decision as `inject`, encode the patch as the
//! API server wants it.
//!
//! Why the encoding is done by hand: `kube::core::admission::AdmissionResponse::patch` is a
//! `Vec<u8>` that serde writes as an array of numbers, while admission.k8s.io/v1 wants a
//! base64 string (`[]byte` in Go's JSON). The response is therefore turned into a JSON value
//! and its `patch` replaced by the base64 text.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, ObjectMeta, Resource};
use serde::Deserialize as _;
use serde_json::Value;

use crate::apiserver::ApiClient;
use crate::config::Config;
use crate::exec::{self, ExecOutcome, ExecRequest};
use crate::metrics::Metrics;
use crate::mutate::{self, ImageConfigs, Outcome, Plan};
use crate::registry::Resolver;

/// Most distinct images a pod may need resolved; beyond, the pod is not injected (a pod with
/// hundreds of images without command is not a network function, and each lookup costs time).
const MAX_IMAGES: usize = 16;

/// A request the webhook cannot answer with an AdmissionReview (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum BadReview {
    #[error("body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "unsupported review {api_version}/{kind}: expected admission.k8s.io/v1 AdmissionReview"
    )]
    Version { api_version: String, kind: String },
    #[error("not a valid AdmissionReview: {0}")]
    Shape(#[source] serde_json::Error),
    #[error("AdmissionReview has no request")]
    NoRequest,
    #[error("cannot encode the response: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Everything a decision needs, shared by the webhook and `inject`.
#[derive(Debug)]
pub struct Injector {
    pub config: Config,
    pub resolver: Resolver,
    pub metrics: Metrics,
    /// Reads pods for exec reviews; `None` when no API server is configured.
    pub api: Option<ApiClient>,
}

impl Injector {
    pub fn new(config: Config) -> Self {
        Self {
            resolver: Resolver::new(
                config.insecure_registries.clone(),
                config.registry_roots.clone(),
            ),
            api: config.api_server.clone().map(ApiClient::new),
            config,
            metrics: Metrics::default(),
        }
    }

    /// The decision for one pod (or pod template shaped as a pod).
    pub async fn decide(&self, pod: &Value, namespace: Option<&str>) -> Outcome {
        self.decide_planned(mutate::plan(pod, namespace, &self.config))
            .await
    }

    /// [`Self::decide`] for a pod already read (see [`mutate::plan_pod`]).
    pub async fn decide_pod(
        &self,
        pod: Box<Pod>,
        has_metadata: bool,
        namespace: Option<&str>,
    ) -> Outcome {
        self.decide_planned(mutate::plan_pod(pod, has_metadata, namespace, &self.config))
            .await
    }

    async fn decide_planned(&self, plan: Result<Plan, Outcome>) -> Outcome {
        let plan = match plan {
            Ok(p) => p,
            Err(outcome) => return outcome,
        };
        let images = plan.images_to_resolve();
        let configs: ImageConfigs = if images.len() > MAX_IMAGES {
            images
                .iter()
                .map(|i| {
                    (
                        i.clone(),
                        Err(format!("more than {MAX_IMAGES} images to look up")),
                    )
                })
                .collect()
        } else if images.is_empty() {
            ImageConfigs::new()
        } else {
            // Boxed: the registry client's future is large, and every review's future
            // would otherwise carry (and move) its space, needed or not.
            Box::pin(
                self.resolver
                    .resolve_all(&images, self.config.registry_timeout),
            )
            .await
        };
        mutate::mutate(&plan, &self.config, &configs)
    }

    /// Answers one AdmissionReview body.
    pub async fn review(&self, body: &[u8]) -> Result<Vec<u8>, BadReview> {
        let started = Instant::now();
        self.metrics.request();
        let result = self.review_inner(body).await;
        if result.is_err() {
            self.metrics.error();
        }
        self.metrics.observe(started.elapsed());
        result
    }

    async fn review_inner(&self, body: &[u8]) -> Result<Vec<u8>, BadReview> {
        if let Some((req, pod)) = read_pod_review(body) {
            let resp = self.respond(&req, pod.map(Object::Pod)).await;
            return encode(resp);
        }
        let mut value: Value = serde_json::from_slice(body).map_err(BadReview::NotJson)?;
        let api_version = value["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = value["kind"].as_str().unwrap_or("").to_string();
        if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
            return Err(BadReview::Version { api_version, kind });
        }
        let sub = value["request"]["subResource"].as_str().unwrap_or("");
        let is_pods = value["request"]["resource"]["resource"] == "pods"
            && value["request"]["resource"]["group"]
                .as_str()
                .unwrap_or("")
                .is_empty();
        if is_pods && matches!(sub, "exec" | "attach" | "ephemeralcontainers") {
            let request = &value["request"];
            let uid = request["uid"].as_str().unwrap_or("").to_string();
            // Boxed: reading the pod from the API server is a large future that pod
            // reviews should not carry.
            let outcome = Box::pin(self.session(request, sub)).await;
            return encode_session(&uid, outcome, &self.metrics);
        }
        let object = take_object(&mut value);
        let review: AdmissionReview<DynamicObject> =
            serde_json::from_value(value).map_err(BadReview::Shape)?;
        let req: AdmissionRequest<DynamicObject> =
            review.try_into().map_err(|_| BadReview::NoRequest)?;
        let resp = self.respond(&req, object.map(Object::Json)).await;
        encode(resp)
    }

    async fn respond<T: Resource>(
        &self,
        req: &AdmissionRequest<T>,
        object: Option<Object>,
    ) -> AdmissionResponse {
        let mut resp = AdmissionResponse::from(req);
        let warn = |mut r: AdmissionResponse, w: Vec<String>| {
            if !w.is_empty() {
                r.warnings = Some(w);
            }
            r
        };
        let is_pod = req.kind.group.is_empty() && req.kind.kind == "Pod";
        if !is_pod || req.operation != Operation::Create || req.sub_resource.is_some() {
            self.metrics.skip("not_pod_create");
            return warn(
                resp,
                vec![format!(
                    "nfguard: nothing to do for {} {}{}",
                    operation_name(&req.operation),
                    req.kind.kind,
                    req.sub_resource
                        .as_deref()
                        .map(|s| format!("/{s}"))
                        .unwrap_or_default()
                )],
            );
        }
        let Some(object) = object else {
            self.metrics.skip("no_object");
            return warn(
                resp,
                vec!["nfguard: pod not injected: the review carries no object".into()],
            );
        };
        let namespace = req.namespace.as_deref();
        let outcome = match object {
            Object::Json(pod) => self.decide(&pod, namespace).await,
            Object::Pod(pod) => self.decide_pod(pod, true, namespace).await,
        };
        match outcome {
            Outcome::Inject {
                patch,
                containers,
                warnings,
            } => {
                tracing::info!(namespace = ?req.namespace, name = %req.name, uid = %req.uid, ?containers, dry_run = req.dry_run, "injecting");
                self.metrics.injection(req.dry_run);
                resp = match resp.clone().with_patch(patch) {
                    Ok(r) => r,
                    Err(e) => {
                        self.metrics.error();
                        return warn(
                            resp,
                            vec![format!(
                                "nfguard: pod not injected: cannot encode patch: {e}"
                            )],
                        );
                    }
                };
                warn(resp, warnings)
            }
            Outcome::Skip { reason, warnings } => {
                tracing::info!(namespace = ?req.namespace, name = %req.name, reason = reason.as_str(), "not injected");
                self.metrics.skip(reason.as_str());
                warn(resp, warnings)
            }
            Outcome::Deny { message } => {
                tracing::info!(namespace = ?req.namespace, name = %req.name, %message, "denied");
                self.metrics.denial();
                resp.deny(message)
            }
        }
    }

    /// The decision for an exec, attach or debug-container request (see [`crate::exec`]).
    async fn session(&self, request: &Value, sub: &str) -> ExecOutcome {
        let namespace = request["namespace"].as_str().unwrap_or("");
        let name = request["name"].as_str().unwrap_or("");
        let object = &request["object"];
        if sub == "ephemeralcontainers" {
            // The object is the whole pod: no API call needed.
            let old = request.get("oldObject").filter(|o| !o.is_null());
            return exec::decide_ephemeral(object, old);
        }
        let pod = match &self.api {
            None => Err(crate::apiserver::ApiError::NotConfigured),
            Some(api) => api.get_pod(namespace, name).await,
        };
        let pod = match pod {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(namespace, name, error = %e, "cannot read the pod of an exec session");
                return ExecOutcome::Leave {
                    reason: "pod_unreadable",
                    warnings: vec![format!(
                        "nfguard: session not wrapped: cannot read pod {namespace}/{name}: {e}"
                    )],
                };
            }
        };
        if sub == "attach" {
            return exec::decide_attach(&pod, object["stdin"] == true);
        }
        let command: Vec<String> = object["command"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let req = ExecRequest {
            uid: request["uid"].as_str().unwrap_or(""),
            user: request["userInfo"]["username"].as_str().unwrap_or(""),
            container: object["container"].as_str(),
            command,
        };
        let out = exec::decide_exec(&pod, &req);
        if let ExecOutcome::Wrap { .. } = out {
            tracing::info!(namespace, name, uid = req.uid, user = req.user, container = ?req.container, "wrapping exec session");
        }
        out
    }

    /// Time budget of one review, for callers that want to bound it (registry + slack).
    pub fn budget(&self) -> Duration {
        self.config.registry_timeout + Duration::from_secs(2)
    }
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The response to an exec, attach or debug-container review. Written as JSON directly: the
/// object is a PodExecOptions (no metadata), which kube's typed request does not model.
fn encode_session(
    uid: &str,
    outcome: ExecOutcome,
    metrics: &Metrics,
) -> Result<Vec<u8>, BadReview> {
    let mut resp = serde_json::json!({"uid": uid, "allowed": true});
    match &outcome {
        ExecOutcome::Wrap { warnings, .. } => {
            metrics.injection(false);
            if let Some(p) = outcome.patch() {
                let text = serde_json::to_vec(&p).map_err(BadReview::Encode)?;
                resp["patchType"] = "JSONPatch".into();
                resp["patch"] = Value::String(base64(&text));
            }
            if !warnings.is_empty() {
                resp["warnings"] = serde_json::json!(warnings);
            }
        }
        ExecOutcome::Leave { reason, warnings } => {
            metrics.skip(reason);
            if !warnings.is_empty() {
                resp["warnings"] = serde_json::json!(warnings);
            }
        }
        ExecOutcome::Deny { message } => {
            metrics.denial();
            resp["allowed"] = false.into();
            resp["status"] =
                serde_json::json!({"code": 403, "reason": "Forbidden", "message": message});
        }
    }
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp
    }))
    .map_err(BadReview::Encode)
}

/// The object of a pod review.
enum Object {
    /// As JSON, read by the decision.
    Json(Value),
    /// Already read, with non-empty metadata (see [`read_pod_review`]).
    Pod(Box<Pod>),
}

/// The usual review, a v1 AdmissionReview of a pod with its name or generateName, read in one
/// pass straight into kube's request with the pod typed: no JSON tree of the body is built,
/// copied and dropped. `None` for anything else, including every review that the general
/// path would refuse (or whose pod it could not read): that path then reads the body again,
/// and gives the answers and messages it always gave.
///
/// Reading the pod as a `Pod` accepts all that the general path accepts as a
/// `DynamicObject`, and one thing more: `metadata: null`, read as empty metadata. Empty
/// metadata therefore takes the general path (a real pod has at least a name or a
/// generateName), which also tells it whether the pod has `metadata` at all (it changes the
/// patch). Exec, attach and debug-container reviews carry no pod and fail here too.
fn read_pod_review(body: &[u8]) -> Option<(AdmissionRequest<Pod>, Option<Box<Pod>>)> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(body).ok()?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return None;
    }
    let mut req: AdmissionRequest<Pod> = review.try_into().ok()?;
    let empty = ObjectMeta::default();
    let no_metadata = [&req.object, &req.old_object]
        .into_iter()
        .flatten()
        .any(|p| p.metadata == empty);
    if req.sub_resource.is_some() || no_metadata {
        return None;
    }
    let pod = req.object.take().map(Box::new);
    Some((req, pod))
}

/// The pod of a review (`request.object`; `None` when absent or null), moved out of it.
///
/// The pod is most of the body. Left in place, kube's decoding of the review would copy it
/// twice through serde's buffer for flattened fields (`DynamicObject`) only to drop it, and
/// the pod would then be copied once more for the decision. That decoding still checks the
/// rest of the review; what it would check of the object (a map whose `metadata`, if any, is
/// an `ObjectMeta`) is checked here, and an object that fails is left in place (and copied)
/// so that the review is refused with kube's own message, exactly as before.
fn take_object(review: &mut Value) -> Option<Value> {
    let object = review.pointer_mut("/request/object")?;
    if object.is_null() {
        return None;
    }
    let decodes = object.is_object()
        && object
            .get("metadata")
            .is_none_or(|m| ObjectMeta::deserialize(m).is_ok());
    Some(if decodes {
        object.take()
    } else {
        object.clone()
    })
}

fn encode(mut resp: AdmissionResponse) -> Result<Vec<u8>, BadReview> {
    // Taken out before the conversion: left in, its bytes would become one JSON number each.
    let patch = resp.patch.take();
    let mut out = serde_json::to_value(resp.into_review()).map_err(BadReview::Encode)?;
    // The base64 patch is most of the answer: room for it up front, not by doubling.
    let mut size = 1024;
    if let (Some(p), Some(r)) = (patch, out.get_mut("response")) {
        let text = base64(&p);
        size += text.len();
        r["patch"] = Value::String(text);
    }
    let mut bytes = Vec::with_capacity(size);
    serde_json::to_writer(&mut bytes, &out).map_err(BadReview::Encode)?;
    Ok(bytes)
}

/// Standard base64 with padding (RFC 4648 section 4), as Go's encoding/json writes `[]byte`.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sextet = |n: u32, i: u32| ABC[(n >> (18 - 6 * i)) as usize & 63];
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    let mut chunks = data.chunks_exact(3);
    for c in &mut chunks {
        let n = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
        out.extend_from_slice(&[sextet(n, 0), sextet(n, 1), sextet(n, 2), sextet(n, 3)]);
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.extend_from_slice(&[sextet(n, 0), sextet(n, 1), b'=', b'=']);
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.extend_from_slice(&[sextet(n, 0), sextet(n, 1), sextet(n, 2), b'=']);
        }
        _ => {}
    }
    // Only bytes of ABC and '=' were written: always ASCII.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: kube's AdmissionResponse serialises `patch` as an array of numbers; the
    /// API server wants base64 text and rejects the number array.
    #[test]
    fn kube_admission_patch_is_sent_as_base64_text_not_a_number_array() {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE", "userInfo": {}, "object": null}
        }))
        .unwrap();
        let req: AdmissionRequest<DynamicObject> = review.try_into().unwrap();
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/spec/shareProcessNamespace", "value": true}
        ]))
        .unwrap();
        let resp = AdmissionResponse::from(&req).with_patch(patch).unwrap();
        let out: Value = serde_json::from_slice(&encode(resp).unwrap()).unwrap();
        assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(out["response"]["uid"], "u1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let text = out["response"]["patch"]
            .as_str()
            .expect("patch must be a string");
        assert_eq!(
            text,
            base64(br#"[{"op":"add","path":"/spec/shareProcessNamespace","value":true}]"#)
        );
    }

    /// The one pod the typed reading accepts and kube's `DynamicObject` refuses: it must
    /// take the general path and be refused with kube's message, as before.
    #[tokio::test]
    async fn a_pod_with_null_metadata_takes_the_general_path_and_is_refused() {
        let review = |metadata: Value| {
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE", "userInfo": {},
                    "object": {"metadata": metadata, "spec": {"containers": [
                        {"name": "a", "image": "img", "command": ["/x"]}]}}}
            }))
            .unwrap()
        };
        let named = review(serde_json::json!({"name": "p"}));
        assert!(read_pod_review(&named).is_some());
        let null = review(Value::Null);
        assert!(read_pod_review(&null).is_none());
        let inj = Injector::new(Config::default());
        let err = inj.review(&null).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "not a valid AdmissionReview: invalid type: null, expected ObjectMeta"
        );
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
