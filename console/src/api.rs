//! The console's HTTP API (JSON), on axum.
//!
//! Why axum: about twenty routes with path parameters, query strings and JSON
//! bodies, each of which must answer a malformed request with a 4xx that says
//! why. axum is the tokio project's router on hyper 1 (the HTTP stack the
//! workspace already builds), so it adds routing and extraction, not a second
//! server or runtime; TLS stays ours (rustls, see `serve`).
//!
//! The JSON is shaped for the pages of the web UI, so each needs one or two
//! calls: the overview (`GET /workloads`: every workload with its containers'
//! lifecycle, pods and open incidents), the radar (`GET /radar`: nodes and
//! edges, peers resolved to workloads through the pods' addresses), the model
//! view (`GET /workloads/{id}/model`: items by tab with origin and provenance,
//! and the difference from the previous image) and an incident with its
//! timeline (`GET /incidents/{id}`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use nfguard_sidecar::console_link::wire::{Item, SyncRequest, WorkloadIdentity};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{Auth, AuthError, Principal, Role};
use crate::lifecycle::{Action, State as LcState};
use crate::store::{self, rfc3339, ModelRow, Store, StoreError};
use crate::{radar, yaml};

pub struct App {
    pub store: Store,
    pub auth: Auth,
    /// How the web UI authenticates (see `ui`).
    pub ui: crate::ui::settings::Settings,
}

/// An error as the API answers it: a status and one sentence.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Bad(_) | StoreError::Url(_) => StatusCode::BAD_REQUEST,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let status = match e {
            AuthError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError(status, e.to_string())
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::FORBIDDEN, msg.into())
}

type ApiResult = Result<Response, ApiError>;

fn ok(v: Value) -> ApiResult {
    Ok(Json(v).into_response())
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError(e.status(), format!("bad request body: {}", e.body_text())))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| bad(format!("bad query: {}", e.body_text())))
}

async fn who(app: &App, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    Ok(app.auth.authenticate(&app.store, h).await?)
}

async fn need(app: &App, headers: &HeaderMap, role: Role) -> Result<Principal, ApiError> {
    let p = who(app, headers).await?;
    if !p.has(role) {
        return Err(forbidden(format!(
            "{} may not do this: it needs the {} role",
            p.name(),
            role.as_str()
        )));
    }
    Ok(p)
}

/// The API's routes, with `pages` (the web UI's) beside them on one state.
pub fn router(app: Arc<App>, pages: Router<Arc<App>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/sync", post(sync))
        .route("/api/v1/workloads", get(workloads))
        .route("/api/v1/workloads/{id}", get(workload))
        .route("/api/v1/workloads/{id}/model", get(model))
        .route("/api/v1/workloads/{id}/model/diff", get(model_diff))
        .route("/api/v1/workloads/{id}/model/export", get(model_export))
        .route("/api/v1/workloads/{id}/model/import", post(model_import))
        .route("/api/v1/workloads/{id}/approve", post(approve))
        .route("/api/v1/workloads/{id}/relearn", post(relearn))
        .route("/api/v1/workloads/{id}/extend", post(extend))
        .route("/api/v1/workloads/{id}/rules", post(add_rule))
        .route("/api/v1/workloads/{id}/rules/{item}", delete(delete_rule))
        .route("/api/v1/workloads/{id}/audit", get(workload_audit))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/radar", get(radar_view))
        .route("/api/v1/incidents", get(incidents))
        .route("/api/v1/incidents/{id}", get(incident))
        .route("/api/v1/incidents/{id}/state", post(incident_state))
        .route("/api/v1/events/{id}/add-to-model", post(add_to_model))
        .route("/api/v1/tokens", get(tokens).post(create_token))
        .route("/api/v1/tokens/{name}", delete(delete_token))
        .merge(pages)
        .fallback(|| async {
            ApiError(
                StatusCode::NOT_FOUND,
                "no such endpoint: see docs/console.md for the API".into(),
            )
        })
        .layer(DefaultBodyLimit::max(32 * 1024 * 1024))
        .with_state(app)
}

async fn healthz(State(app): State<Arc<App>>) -> ApiResult {
    match app.store.ping().await {
        Ok(()) => Ok((StatusCode::OK, "ok\n").into_response()),
        Err(e) => Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn sync(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Result<Json<SyncRequest>, JsonRejection>,
) -> ApiResult {
    let p = who(&app, &headers).await?;
    let mut req = body(b)?;
    match &p {
        Principal::Sidecar { scope, pod, .. } => {
            if pod.is_none() && !scope.covers(&req.workload) {
                return Err(forbidden(format!(
                    "this credential speaks for {scope}, not for {}",
                    req.workload.id()
                )));
            }
            if let Some(pod) = pod {
                // The cluster vouched for this pod: its workload is the one the
                // console derived from the pod's owner, whatever the sidecar guessed.
                req.workload = WorkloadIdentity {
                    cluster: scope.cluster.clone(),
                    namespace: scope.namespace.clone(),
                    kind: scope.kind.clone(),
                    name: scope.name.clone(),
                };
                if *pod != req.pod.name {
                    return Err(forbidden(format!(
                        "this credential is bound to pod {pod}, not {}",
                        req.pod.name
                    )));
                }
            }
        }
        Principal::Operator { .. } => {
            return Err(forbidden(
                "sync is for sidecars: use a join token or the pod's service-account token",
            ))
        }
    }
    let resp = app.store.sync(&req, store::now_ms()).await?;
    ok(serde_json::to_value(resp).unwrap_or(Value::Null))
}

#[derive(Deserialize, Default)]
struct WorkloadFilter {
    namespace: Option<String>,
    state: Option<String>,
    q: Option<String>,
}

/// Every workload with its containers' current models, its pods and open incidents.
pub(crate) async fn workload_views(app: &App, only: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let now = store::now_ms();
    let workloads = app.store.workload_rows().await?;
    let counts = app.store.item_counts().await?;
    let open = app.store.open_incidents().await?;
    let pods = app.store.pods(only).await?;
    let mut out = Vec::new();
    for (w, last_seen) in workloads {
        let id = w.id();
        if only.is_some_and(|o| o != id) {
            continue;
        }
        let models = app.store.models_of(&id).await?;
        let mut containers = Vec::new();
        let names: BTreeSet<&str> = models.iter().map(|m| m.container.as_str()).collect();
        for c in names {
            let of: Vec<&ModelRow> = models.iter().filter(|m| m.container == c).collect();
            let Some(cur) = of
                .iter()
                .rev()
                .find(|m| m.lc.state != LcState::Archived)
                .or(of.last())
            else {
                continue;
            };
            let n = counts.get(&cur.id).cloned().unwrap_or_default();
            containers.push(json!({
                "container": c,
                "model_id": cur.id,
                "digest": cur.digest,
                "image": cur.image,
                "state": cur.lc.state.as_str(),
                "mode": cur.lc.mode(),
                "target_mode": cur.lc.target,
                "detail": cur.lc.detail(now),
                "learning_left_ms": cur.lc.learning_left_ms(now),
                "require_approval": cur.lc.require_approval,
                "version": cur.version,
                "items": n.get(store::MODEL).copied().unwrap_or(0),
                "candidates": n.get(store::CANDIDATE).copied().unwrap_or(0),
                "denied": n.get(store::DENIED).copied().unwrap_or(0),
                "images": of.iter().map(|m| json!({"model_id": m.id, "digest": m.digest, "image": m.image, "state": m.lc.state.as_str(), "created": rfc3339(m.created_ms)})).collect::<Vec<_>>(),
            }));
        }
        let my_pods: Vec<Value> = pods
            .iter()
            .filter(|(wid, _)| *wid == id)
            .map(|(_, p)| p.clone())
            .collect();
        let summary = summary_state(&containers);
        out.push(json!({
            "id": id,
            "cluster": w.cluster,
            "namespace": w.namespace,
            "kind": w.kind,
            "name": w.name,
            "last_seen": rfc3339(last_seen),
            "state": summary,
            "containers": containers,
            "pods": my_pods,
            "open_incidents": open.get(&id).copied().unwrap_or(0),
        }));
    }
    Ok(out)
}

/// A workload's state for the overview: the least advanced of its containers.
fn summary_state(containers: &[Value]) -> &'static str {
    let states: Vec<&str> = containers
        .iter()
        .filter_map(|c| c["state"].as_str())
        .collect();
    for s in ["learning", "dry-run", "active", "archived"] {
        if states.contains(&s) {
            return match s {
                "learning" => "learning",
                "dry-run" => "dry-run",
                "active" => "active",
                _ => "archived",
            };
        }
    }
    "archived"
}

async fn workloads(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<WorkloadFilter>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let f = query(q)?;
    if let Some(s) = &f.state {
        s.parse::<LcState>().map_err(bad)?;
    }
    let all = workload_views(&app, None).await?;
    let shown: Vec<Value> = all
        .into_iter()
        .filter(|w| f.namespace.as_deref().is_none_or(|n| w["namespace"] == n))
        .filter(|w| {
            f.state.as_deref().is_none_or(|s| {
                w["containers"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["state"] == s))
            })
        })
        .filter(|w| {
            f.q.as_deref()
                .is_none_or(|q| w["name"].as_str().is_some_and(|n| n.contains(q)))
        })
        .collect();
    let healthy = app.store.ping().await.is_ok();
    ok(json!({
        "workloads": shown,
        "console": {"database": app.store.dialect.as_str(), "healthy": healthy, "time": rfc3339(store::now_ms()), "version": env!("CARGO_PKG_VERSION")},
    }))
}

async fn workload(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let v = workload_views(&app, Some(&id)).await?;
    match v.into_iter().next() {
        Some(w) => ok(w),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no workload {id:?} (ids are CLUSTER:NAMESPACE:KIND:NAME, see GET /api/v1/workloads)"),
        )),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Which {
    pub container: Option<String>,
    pub digest: Option<String>,
    /// For diff: the other model's digest (default: the predecessor).
    pub from: Option<String>,
    /// For export: include hits, first and last seen, pods.
    pub provenance: Option<bool>,
}

async fn pick(app: &App, id: &str, w: &Which) -> Result<ModelRow, ApiError> {
    Ok(app
        .store
        .pick_model(id, w.container.as_deref(), w.digest.as_deref())
        .await?)
}

/// One item as the model view shows it.
fn item_json(
    it: &store::ItemRow,
    pods: Option<&Vec<Value>>,
    predecessor: Option<&BTreeSet<String>>,
) -> Value {
    json!({
        "id": it.id,
        "kind": it.item.kind(),
        "category": it.item.category(),
        "entry": it.item,
        "describe": it.item.describe(),
        "origin": it.origin,
        "status": it.status,
        "inherited": it.inherited,
        "new_in_this_image": predecessor.is_some_and(|p| !p.contains(&store::item_key(&it.item))),
        "hits": it.hits,
        "first_seen": it.first_seen_ms.map(rfc3339),
        "last_seen": it.last_seen_ms.map(rfc3339),
        "added": rfc3339(it.added_ms),
        "added_by": it.added_by,
        "pods": pods.cloned().unwrap_or_default(),
    })
}

async fn model_keys(app: &App, model_id: i64) -> Result<BTreeSet<String>, ApiError> {
    Ok(app
        .store
        .items(model_id)
        .await?
        .iter()
        .filter(|i| i.status == store::MODEL)
        .map(|i| store::item_key(&i.item))
        .collect())
}

async fn model(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<Which>, QueryRejection>,
) -> ApiResult {
    let p = who(&app, &headers).await?;
    if !p.may_read_workload(&id) {
        return Err(forbidden(format!(
            "{} may not read workload {id}",
            p.name()
        )));
    }
    let w = query(q)?;
    ok(model_view(&app, &id, &w).await?)
}

/// The model view's JSON: lifecycle, items by tab with provenance, the diff's counts.
pub(crate) async fn model_view(app: &App, id: &str, w: &Which) -> Result<Value, ApiError> {
    let m = pick(app, id, w).await?;
    let items = app.store.items(m.id).await?;
    let prov = app.store.provenance(m.id).await?;
    let pred = match m.predecessor_id {
        Some(pid) => Some((
            app.store.model_by_id(pid).await?,
            model_keys(app, pid).await?,
        )),
        None => None,
    };
    let mut tabs: BTreeMap<&str, Vec<Value>> = BTreeMap::from([
        ("process", Vec::new()),
        ("network", Vec::new()),
        ("filesystem", Vec::new()),
    ]);
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for it in &items {
        *counts.entry(it.status.clone()).or_default() += 1;
        tabs.entry(it.item.category()).or_default().push(item_json(
            it,
            prov.get(&it.id),
            pred.as_ref().map(|p| &p.1),
        ));
    }
    let now = store::now_ms();
    let mine: BTreeSet<String> = items
        .iter()
        .filter(|i| i.status == store::MODEL)
        .map(|i| store::item_key(&i.item))
        .collect();
    let diff = pred.as_ref().map(|(pm, keys)| {
        json!({
            "predecessor": {"model_id": pm.id, "digest": pm.digest, "image": pm.image},
            "added": mine.difference(keys).count(),
            "removed": keys.difference(&mine).count(),
            "candidates": counts.get(store::CANDIDATE).copied().unwrap_or(0),
        })
    });
    Ok(json!({
        "workload_id": m.workload_id,
        "container": m.container,
        "model_id": m.id,
        "digest": m.digest,
        "image": m.image,
        "lifecycle": {
            "state": m.lc.state.as_str(),
            "mode": m.lc.mode(),
            "target_mode": m.lc.target,
            "detail": m.lc.detail(now),
            "state_since": rfc3339(m.lc.state_since_ms),
            "learning_until": rfc3339(m.lc.learning_until_ms),
            "learning_left_ms": m.lc.learning_left_ms(now),
            "dry_run_period_ms": m.lc.dry_run_period_ms,
            "quiet_period_ms": m.lc.quiet_period_ms,
            "require_approval": m.lc.require_approval,
        },
        "version": m.version,
        "counts": counts,
        "items": tabs,
        "diff": diff,
    }))
}

async fn model_diff(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<Which>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let w = query(q)?;
    let m = pick(&app, &id, &w).await?;
    let other = match &w.from {
        Some(d) => {
            app.store
                .pick_model(&id, Some(&m.container), Some(d))
                .await?
        }
        None => match m.predecessor_id {
            Some(pid) => app.store.model_by_id(pid).await?,
            None => {
                return Err(ApiError(
                    StatusCode::NOT_FOUND,
                    format!("model {} has no predecessor: say from=DIGEST", m.id),
                ))
            }
        },
    };
    let a = yaml::document(&app.store, &other, false).await?;
    let b = yaml::document(&app.store, &m, false).await?;
    let d = yaml::diff(&a, &b);
    let candidates: Vec<Value> = app
        .store
        .items(m.id)
        .await?
        .iter()
        .filter(|i| i.status == store::CANDIDATE)
        .map(
            |i| json!({"id": i.id, "entry": i.item, "describe": i.item.describe(), "hits": i.hits}),
        )
        .collect();
    ok(json!({
        "from": {"model_id": other.id, "digest": other.digest, "image": other.image, "state": other.lc.state.as_str()},
        "to": {"model_id": m.id, "digest": m.digest, "image": m.image, "state": m.lc.state.as_str()},
        "added": d.added, "removed": d.removed,
        "candidates": candidates,
    }))
}

async fn model_export(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<Which>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let w = query(q)?;
    let m = pick(&app, &id, &w).await?;
    let doc = yaml::document(&app.store, &m, w.provenance.unwrap_or(false)).await?;
    let text = serde_yaml::to_string(&doc)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/yaml")], text).into_response())
}

async fn model_import(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    text: String,
) -> ApiResult {
    let p = need(&app, &headers, Role::Operator).await?;
    let doc: yaml::Doc = serde_yaml::from_str(&text)
        .map_err(|e| bad(format!("not an NfguardModel document: {e}")))?;
    doc.check().map_err(bad)?;
    if doc.spec.workload.id() != id {
        return Err(bad(format!(
            "the document is for workload {}, not {id}",
            doc.spec.workload.id()
        )));
    }
    let m = app
        .store
        .pick_model(&id, Some(&doc.spec.container), None)
        .await?;
    let n = yaml::import(&app.store, &m, &doc, p.name()).await?;
    ok(json!({"model_id": m.id, "applied": n}))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ActBody {
    pub container: Option<String>,
    pub digest: Option<String>,
    pub reason: Option<String>,
    /// approve: also take the candidates into the model (default: yes for a new image's model).
    pub include_candidates: Option<bool>,
    /// extend: by how long (`10m`).
    pub by: Option<String>,
}

async fn act(
    app: &App,
    headers: &HeaderMap,
    id: &str,
    b: Option<Result<Json<ActBody>, JsonRejection>>,
    kind: &str,
) -> ApiResult {
    let p = need(app, headers, Role::Operator).await?;
    let b = match b {
        Some(b) => body(b)?,
        None => ActBody::default(),
    };
    ok(act_as(app, &p, id, &b, kind).await?)
}

/// Approve, relearn or extend as `p` (an operator: the caller checked), recorded in the audit log.
pub(crate) async fn act_as(
    app: &App,
    p: &Principal,
    id: &str,
    b: &ActBody,
    kind: &str,
) -> Result<Value, ApiError> {
    if !p.has(Role::Operator) {
        return Err(forbidden(format!(
            "{} may not do this: it needs the operator role",
            p.name()
        )));
    }
    let action = match kind {
        "approve" => Action::Approve,
        "relearn" => Action::Relearn,
        _ => {
            let by =
                b.by.as_deref()
                    .ok_or_else(|| bad("extend needs \"by\": a duration such as 10m"))?;
            let d = nfguard_common::parse_duration(by).map_err(|e| bad(e.to_string()))?;
            Action::Extend {
                by_ms: d.as_millis() as i64,
            }
        }
    };
    let m = app
        .store
        .pick_model(id, b.container.as_deref(), b.digest.as_deref())
        .await?;
    let m = app
        .store
        .act(
            m.id,
            &action,
            b.include_candidates,
            p.name(),
            b.reason.as_deref(),
            store::now_ms(),
        )
        .await?;
    Ok(
        json!({"model_id": m.id, "state": m.lc.state.as_str(), "mode": m.lc.mode(), "detail": m.lc.detail(store::now_ms()), "version": m.version}),
    )
}

/// An empty body is an empty JSON object for the actions.
fn optional_body(
    headers: &HeaderMap,
    b: Result<Json<ActBody>, JsonRejection>,
) -> Option<Result<Json<ActBody>, JsonRejection>> {
    let empty = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "0")
        || (headers.get(header::CONTENT_TYPE).is_none()
            && matches!(&b, Err(JsonRejection::MissingJsonContentType(_))));
    if empty {
        None
    } else {
        Some(b)
    }
}

async fn approve(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> ApiResult {
    let b = optional_body(&headers, b);
    act(&app, &headers, &id, b, "approve").await
}

async fn relearn(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> ApiResult {
    let b = optional_body(&headers, b);
    act(&app, &headers, &id, b, "relearn").await
}

async fn extend(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<ActBody>, JsonRejection>,
) -> ApiResult {
    let b = optional_body(&headers, b);
    act(&app, &headers, &id, b, "extend").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleBody {
    container: Option<String>,
    digest: Option<String>,
    /// allow or deny.
    action: String,
    item: Item,
    reason: Option<String>,
}

async fn add_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<RuleBody>, JsonRejection>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Operator).await?;
    let b = body(b)?;
    let allow = match b.action.as_str() {
        "allow" => true,
        "deny" => false,
        other => return Err(bad(format!("action {other:?}: expected allow or deny"))),
    };
    let m = app
        .store
        .pick_model(&id, b.container.as_deref(), b.digest.as_deref())
        .await?;
    let item_id = app
        .store
        .rule(
            m.id,
            &b.item,
            allow,
            p.name(),
            b.reason.as_deref(),
            store::now_ms(),
        )
        .await?;
    ok(json!({"model_id": m.id, "item_id": item_id}))
}

async fn delete_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, item)): Path<(String, String)>,
    q: Result<Query<Which>, QueryRejection>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Operator).await?;
    let item: i64 = item
        .parse()
        .map_err(|_| bad(format!("item id {item:?} is not a number")))?;
    let w = query(q)?;
    let m = pick(&app, &id, &w).await?;
    app.store
        .delete_item(m.id, item, p.name(), store::now_ms())
        .await?;
    ok(json!({"model_id": m.id, "removed": item}))
}

#[derive(Deserialize, Default)]
struct Limit {
    limit: Option<i64>,
    state: Option<String>,
    workload: Option<String>,
}

async fn workload_audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    q: Result<Query<Limit>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let l = query(q)?;
    ok(
        json!({"audit": app.store.audit_log(Some(&id), l.limit.unwrap_or(200).clamp(1, 10_000)).await?}),
    )
}

async fn audit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<Limit>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let l = query(q)?;
    ok(
        json!({"audit": app.store.audit_log(l.workload.as_deref(), l.limit.unwrap_or(200).clamp(1, 10_000)).await?}),
    )
}

async fn radar_view(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let views = workload_views(&app, None).await?;
    let connects = app.store.connects().await?;
    ok(radar::build(&views, &connects))
}

async fn incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Result<Query<Limit>, QueryRejection>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let l = query(q)?;
    if let Some(s) = &l.state {
        if !crate::incident::STATES.contains(&s.as_str()) {
            return Err(bad(format!(
                "state {s:?}: expected open, acknowledged or resolved"
            )));
        }
    }
    let list = app
        .store
        .incidents(
            l.state.as_deref(),
            l.workload.as_deref(),
            l.limit.unwrap_or(100).clamp(1, 10_000),
        )
        .await?;
    ok(json!({"incidents": list}))
}

async fn incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    need(&app, &headers, Role::Viewer).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("incident id {id:?} is not a number")))?;
    ok(app.store.incident(id).await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: String,
    reason: Option<String>,
}

async fn incident_state(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<StateBody>, JsonRejection>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Operator).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("incident id {id:?} is not a number")))?;
    let b = body(b)?;
    app.store
        .set_incident_state(id, &b.state, p.name(), b.reason.as_deref(), store::now_ms())
        .await?;
    ok(json!({"id": id, "state": b.state}))
}

/// "Add to model" from an event: the candidates the event is about become allow rules.
async fn add_to_model(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Operator).await?;
    let id: i64 = id
        .parse()
        .map_err(|_| bad(format!("event id {id:?} is not a number")))?;
    ok(add_event_to_model(&app, &p, id).await?)
}

/// The candidates event `id` is about become allow rules, recorded as `p`'s.
pub(crate) async fn add_event_to_model(
    app: &App,
    p: &Principal,
    id: i64,
) -> Result<Value, ApiError> {
    if !p.has(Role::Operator) {
        return Err(forbidden(format!(
            "{} may not do this: it needs the operator role",
            p.name()
        )));
    }
    let (model_id, ev) = app.store.event(id).await?;
    let items = app.store.items(model_id).await?;
    let matched: Vec<&store::ItemRow> = items
        .iter()
        .filter(|i| i.status != store::MODEL && event_is_about(&ev, &i.item))
        .collect();
    if matched.is_empty() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("event {id} matches no candidate of model {model_id}: it may be in the model already"),
        ));
    }
    let mut added = Vec::new();
    for i in matched {
        app.store
            .rule(
                model_id,
                &i.item,
                true,
                p.name(),
                Some(&format!("added from event {id}")),
                store::now_ms(),
            )
            .await?;
        added.push(json!({"item_id": i.id, "entry": i.item, "describe": i.item.describe()}));
    }
    Ok(json!({"model_id": model_id, "added": added}))
}

/// Does the sidecar's event describe this item? (exec: the program; network
/// and files: the acting program and the target.)
pub fn event_is_about(ev: &Value, item: &Item) -> bool {
    let s = |k: &str| ev[k].as_str().unwrap_or("");
    match item {
        Item::Process(p) => ev["category"] == "process" && s("path") == p.exe,
        Item::Connect(c) => {
            s("op") == "connect"
                && s("exe") == c.exe
                && s("address") == c.address
                && ev["port"].as_u64() == Some(c.port as u64)
        }
        Item::Listen(l) => {
            matches!(s("op"), "bind" | "listen")
                && s("exe") == l.exe
                && ev["port"].as_u64() == Some(l.port as u64)
        }
        Item::Socket(k) => s("op") == "socket" && s("exe") == k.exe && s("family") == k.family,
        Item::Unix(u) => {
            s("exe") == u.exe && nfguard_sidecar::model::path_matches(&u.path, s("path"))
        }
        Item::File(f) => {
            ev["category"] == "filesystem"
                && s("exe") == f.exe
                && s("op") == f.op
                && nfguard_sidecar::model::path_matches(&f.path, s("path"))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
    /// viewer, operator, admin, or join (a sidecar credential).
    role: String,
    /// For join tokens: `[CLUSTER:]NS/KIND/NAME` with `*` parts.
    scope: Option<String>,
}

async fn tokens(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    need(&app, &headers, Role::Admin).await?;
    ok(json!({"tokens": app.store.tokens().await?}))
}

async fn create_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    b: Result<Json<TokenBody>, JsonRejection>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Admin).await?;
    let b = body(b)?;
    if b.name.is_empty() || b.name.len() > 100 {
        return Err(bad("a token needs a name of 1 to 100 characters"));
    }
    let scope = match (b.role.as_str(), &b.scope) {
        ("join", Some(s)) => Some(crate::auth::Scope::parse(s).map_err(bad)?.to_string()),
        ("join", None) => {
            return Err(bad(
                "a join token needs a scope: NS/KIND/NAME (parts may be *)",
            ))
        }
        (r, None) if Role::parse(r).is_some() => None,
        (r, Some(_)) if Role::parse(r).is_some() => {
            return Err(bad("only join tokens have a scope"))
        }
        (r, _) => {
            return Err(bad(format!(
                "role {r:?}: expected viewer, operator, admin or join"
            )))
        }
    };
    let token = crate::auth::new_token();
    app.store
        .create_token(
            &b.name,
            &crate::auth::hash(&token),
            &b.role,
            scope.as_deref(),
            p.name(),
            store::now_ms(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"name": b.name, "role": b.role, "scope": scope, "token": token})),
    )
        .into_response())
}

async fn delete_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    let p = need(&app, &headers, Role::Admin).await?;
    app.store
        .delete_token(&name, p.name(), store::now_ms())
        .await?;
    ok(json!({"deleted": name}))
}
