//! The pages: overview, radar, model view, incidents and an incident with its
//! forensic timeline; and the forms' handlers, which call what the API calls
//! (so each action is checked and audited the same way).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use serde_json::Value;

use super::{ctx, post_ctx, Ctx, IdPath};
use crate::api::{self, ActBody, ApiError, App, Which};
use crate::auth::Principal;
use crate::store;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A value for display: strings as they are, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn enc(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn model_url(id: &str) -> String {
    format!("/ui/workloads/{}", enc(id))
}

/// The page frame: navigation, the user and the logout form.
fn layout(c: &Ctx, title: &str, nav: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · nfguard console" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "nfguard" }
                    nav aria-label="Main" {
                        @for (href, name) in [("/ui/", "Overview"), ("/ui/radar", "Radar"), ("/ui/incidents", "Incidents")] {
                            a href=(href) aria-current=[(nav == name).then_some("page")] { (name) }
                        }
                    }
                    @if let Some(p) = &c.who {
                        span.who { (p.name()) " (" (c.role()) ")" }
                        form.inline method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn page(c: &Ctx, status: StatusCode, title: &str, nav: &str, body: Markup) -> Response {
    c.finish((
        status,
        axum::response::Html(layout(c, title, nav, body).into_string()),
    ))
}

pub(crate) fn error_page(c: &Ctx, status: StatusCode, msg: &str) -> Response {
    page(
        c,
        status,
        status.canonical_reason().unwrap_or("error"),
        "",
        html! {
            h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("")) }
            p.error role="alert" { (msg) }
            p { a href="/ui/" { "Back to the overview" } }
        },
    )
}

fn api_error(c: &Ctx, e: ApiError) -> Response {
    error_page(c, e.0, &e.1)
}

pub(crate) fn login_page(c: &Ctx, failed: bool, proxy: Option<&str>) -> Markup {
    layout(
        c,
        "Log in",
        "",
        html! {
            h1 { "Log in" }
            @if failed { p.error role="alert" { "That token is not valid for the console." } }
            @if proxy.is_some() {
                p.note { "This console also accepts users named by its auth proxy." }
            }
            form.login method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(c.csrf);
                label for="token" { "Token (viewer, operator or admin)" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        },
    )
}

/// The caller, or the way to the login form.
async fn viewer(app: &App, headers: &HeaderMap) -> Result<Ctx, Response> {
    let c = ctx(app, headers).await;
    if c.who.is_none() {
        return Err(c.finish(Redirect::to("/ui/login")));
    }
    Ok(c)
}

fn badge(state: &str) -> Markup {
    html! { span class={"badge s-" (state)} { (state) } }
}

// ---- overview ----

#[derive(Deserialize, Default)]
pub(crate) struct OverviewQuery {
    namespace: Option<String>,
    state: Option<String>,
    nf: Option<String>,
}

pub(crate) async fn overview(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<OverviewQuery>,
) -> Response {
    let c = match viewer(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let all = match api::workload_views(&app, None).await {
        Ok(v) => v,
        Err(e) => return api_error(&c, e),
    };
    let open = app
        .store
        .incidents(Some("open"), None, 10)
        .await
        .unwrap_or_default();
    let healthy = app.store.ping().await.is_ok();
    let namespaces: BTreeSet<String> = all.iter().map(|w| text(&w["namespace"])).collect();
    let pick = |v: &Option<String>| v.as_deref().filter(|v| !v.is_empty()).map(str::to_string);
    let (ns, st, nf) = (pick(&q.namespace), pick(&q.state), pick(&q.nf));
    let shown: Vec<&Value> = all
        .iter()
        .filter(|w| ns.as_deref().is_none_or(|n| w["namespace"] == n))
        .filter(|w| {
            st.as_deref().is_none_or(|s| {
                w["containers"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["state"] == s))
            })
        })
        .filter(|w| nf.as_deref().is_none_or(|q| s(&w["name"]).contains(q)))
        .collect();
    let body = html! {
        h1 { "Workloads" }
        section.health aria-label="Console health" {
            @if healthy { span.badge.s-active { "healthy" } } @else { span.badge.s-bad { "database not answering" } }
            " " (app.store.dialect.as_str()) " database · console " (env!("CARGO_PKG_VERSION"))
            " · " (store::rfc3339(store::now_ms()))
            " · " a href="/ui/incidents?state=open" { (open.len()) " open incident" @if open.len() != 1 { "s" } }
        }
        form.filters method="get" action="/ui/" {
            label { "Namespace "
                select name="namespace" {
                    option value="" { "all" }
                    @for n in &namespaces { option value=(n) selected[ns.as_deref() == Some(n.as_str())] { (n) } }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "all" }
                    @for x in ["learning", "dry-run", "active", "archived"] { option value=(x) selected[st.as_deref() == Some(x)] { (x) } }
                }
            }
            label { "NF " input type="search" name="nf" value=[nf.as_deref()] placeholder="name contains"; }
            button type="submit" { "Filter" }
        }
        table.list {
            thead { tr { th { "Workload" } th { "Namespace" } th { "Container: state" } th { "Items" } th { "Pods" } th { "Open incidents" } } }
            tbody {
                @for w in &shown {
                    tr {
                        td { a href=(model_url(s(&w["id"]))) { (text(&w["name"])) } br; small { (text(&w["kind"])) } }
                        td { (text(&w["namespace"])) }
                        td {
                            @for ct in w["containers"].as_array().into_iter().flatten() {
                                div {
                                    (text(&ct["container"])) ": " (badge(s(&ct["state"])))
                                    @if ct["state"] == "active" { " in " strong { (text(&ct["mode"])) } }
                                    " " small { (text(&ct["detail"])) }
                                }
                            }
                        }
                        td { @for ct in w["containers"].as_array().into_iter().flatten() { div { (text(&ct["items"])) " + " (text(&ct["candidates"])) " candidates" } } }
                        td { (w["pods"].as_array().map(|p| p.len()).unwrap_or(0)) }
                        td {
                            @let n = w["open_incidents"].as_i64().unwrap_or(0);
                            @if n > 0 { a.alarm href={"/ui/incidents?state=open&workload=" (enc(s(&w["id"])))} { (n) " open" } } @else { "none" }
                        }
                    }
                }
                @if shown.is_empty() { tr { td colspan="6" { "No workload matches." } } }
            }
        }
        @if !open.is_empty() {
            h2 { "Open incidents" }
            ul.incidents { @for i in &open { li { (badge(s(&i["severity"]))) " " a href={"/ui/incidents/" (text(&i["id"]))} { (text(&i["title"])) } " · " (text(&i["workload_id"])) " · " (text(&i["last"])) } } }
        }
    };
    page(&c, StatusCode::OK, "Overview", "Overview", body)
}

// ---- radar ----

/// The radar as inline SVG: workloads, then external peers, each sorted by id,
/// on one circle, so the layout is the same from one load to the next.
fn radar_svg(r: &Value) -> Markup {
    let nodes = r["nodes"].as_array().cloned().unwrap_or_default();
    let edges = r["edges"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> = nodes.iter().map(|n| text(&n["id"])).collect();
    ids.sort();
    let externals: BTreeSet<String> = edges
        .iter()
        .filter(|e| e["external"] == true)
        .map(|e| format!("external:{}", s(&e["address"])))
        .collect();
    ids.extend(externals);
    let (w, h, cx, cy) = (1000.0f64, 560.0f64, 500.0f64, 270.0f64);
    let rad = if ids.len() <= 1 { 0.0 } else { 220.0 };
    let pos: BTreeMap<String, (f64, f64)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let a = -std::f64::consts::FRAC_PI_2
                + 2.0 * std::f64::consts::PI * i as f64 / ids.len().max(1) as f64;
            (id.clone(), (cx + rad * a.cos(), cy + rad * a.sin()))
        })
        .collect();
    let by_id: BTreeMap<String, &Value> = nodes.iter().map(|n| (text(&n["id"]), n)).collect();
    let mut pair_count: BTreeMap<(String, String), usize> = BTreeMap::new();
    html! {
        svg.radar viewBox=(format!("0 0 {w} {h}")) role="img" aria-labelledby="radar-title" {
            title #radar-title { "Map of the NF workloads and the peers their models talk to" }
            @for e in &edges {
                @let from = text(&e["from"]);
                @let to = if e["external"] == true { format!("external:{}", s(&e["address"])) } else { text(&e["to"]) };
                @if let (Some(a), Some(b)) = (pos.get(&from), pos.get(&to)) {
                    @let k = pair_count.entry((from.clone(), to.clone())).or_insert(0);
                    @let nth = { *k += 1; *k - 1 };
                    @let label = match e["interface"].as_str() { Some(i) => format!("{i} · {}/{}", s(&e["protocol"]), text(&e["port"])), None => format!("{}/{}", s(&e["protocol"]), text(&e["port"])) };
                    g.edge data-from=(from) data-to=(to) {
                        line x1=(fmt(a.0)) y1=(fmt(a.1)) x2=(fmt(b.0)) y2=(fmt(b.1)) {}
                        text x=(fmt((a.0 + b.0) / 2.0)) y=(fmt((a.1 + b.1) / 2.0 - 6.0 + 14.0 * nth as f64)) { (label) }
                    }
                }
            }
            @for id in &ids {
                @let (x, y) = pos[id];
                @if let Some(n) = by_id.get(id) {
                    @let open = n["open_incidents"].as_i64().unwrap_or(0);
                    a href=(model_url(id)) {
                        g class={"node s-" (s(&n["state"])) @if open > 0 { " incident" }} data-id=(id) {
                            circle cx=(fmt(x)) cy=(fmt(y)) r="26" {}
                            @if open > 0 { text.mark x=(fmt(x)) y=(fmt(y + 6.0)) { "!" } }
                            text.name x=(fmt(x)) y=(fmt(y + 44.0)) { (text(&n["name"])) }
                            text.sub x=(fmt(x)) y=(fmt(y + 58.0)) { (text(&n["namespace"])) " · " (text(&n["state"])) @if open > 0 { " · " (open) " open" } }
                        }
                    }
                } @else {
                    g.node.external data-id=(id) {
                        circle cx=(fmt(x)) cy=(fmt(y)) r="18" {}
                        text.name x=(fmt(x)) y=(fmt(y + 36.0)) { (id.trim_start_matches("external:")) }
                        text.sub x=(fmt(x)) y=(fmt(y + 50.0)) { "external" }
                    }
                }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

pub(crate) async fn radar(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let c = match viewer(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let views = match api::workload_views(&app, None).await {
        Ok(v) => v,
        Err(e) => return api_error(&c, e),
    };
    let learned = match app.store.connects().await {
        Ok(v) => v,
        Err(e) => return api_error(&c, e.into()),
    };
    let r = crate::radar::build(&views, &learned);
    let body = html! {
        h1 { "Radar" }
        p.legend {
            "Node colour: " (badge("learning")) " " (badge("dry-run")) " " (badge("active")) " " (badge("archived"))
            " · a red ring and " strong { "!" } ": an open incident · edges from the learned network models"
        }
        (radar_svg(&r))
        h2 { "Edges" }
        table.list.edges {
            thead { tr { th { "From" } th { "To" } th { "Protocol" } th { "Interface" } } }
            tbody {
                @for e in r["edges"].as_array().into_iter().flatten() {
                    tr {
                        td { a href=(model_url(s(&e["from"]))) { (s(&e["from"])) } }
                        td { @if e["external"] == true { (s(&e["address"])) " (external)" } @else { a href=(model_url(s(&e["to"]))) { (s(&e["to"])) } } }
                        td { (s(&e["protocol"])) " " (text(&e["port"])) }
                        td { (text(&e["interface"])) }
                    }
                }
            }
        }
    };
    page(&c, StatusCode::OK, "Radar", "Radar", body)
}

// ---- model view ----

#[derive(Deserialize, Default)]
pub(crate) struct ModelQuery {
    container: Option<String>,
    digest: Option<String>,
    tab: Option<String>,
}

pub(crate) async fn model(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): IdPath,
    Query(q): Query<ModelQuery>,
) -> Response {
    let c = match viewer(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let which = Which {
        container: q.container.clone().filter(|v| !v.is_empty()),
        digest: q.digest.clone().filter(|v| !v.is_empty()),
        ..Default::default()
    };
    let w = match api::workload_views(&app, Some(&id)).await {
        Ok(v) => v.into_iter().next(),
        Err(e) => return api_error(&c, e),
    };
    let Some(w) = w else {
        return error_page(&c, StatusCode::NOT_FOUND, &format!("no workload {id}"));
    };
    let m = match api::model_view(&app, &id, &which).await {
        Ok(m) => m,
        Err(e) => return api_error(&c, e),
    };
    let diff = model_diff(&app, &m).await;
    let tab = match q.tab.as_deref() {
        Some(t @ ("process" | "network" | "filesystem")) => t.to_string(),
        _ => "process".to_string(),
    };
    let container = text(&m["container"]);
    let digest = text(&m["digest"]);
    let here = format!(
        "{}?container={}&digest={}&tab={}",
        model_url(&id),
        enc(&container),
        enc(&digest),
        tab
    );
    let cur = w["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|x| x["container"] == container.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    let lc = &m["lifecycle"];
    let hidden = |c: &Ctx| {
        html! {
            input type="hidden" name="csrf" value=(c.csrf);
            input type="hidden" name="container" value=(container);
            input type="hidden" name="digest" value=(digest);
            input type="hidden" name="back" value=(here);
        }
    };
    let body = html! {
        h1 { (text(&w["name"])) small { " " (text(&w["kind"])) " in " (text(&w["namespace"])) " · " (text(&w["cluster"])) } }
        nav.containers aria-label="Containers and images" {
            @for ct in w["containers"].as_array().into_iter().flatten() {
                @for im in ct["images"].as_array().into_iter().flatten() {
                    @let on = ct["container"] == container.as_str() && im["digest"] == digest.as_str();
                    a href={(model_url(&id)) "?container=" (enc(s(&ct["container"]))) "&digest=" (enc(s(&im["digest"])))} aria-current=[on.then_some("page")] {
                        (s(&ct["container"])) " @ " (short(s(&im["digest"]))) " " (badge(s(&im["state"])))
                    }
                }
            }
        }
        section.lifecycle aria-label="Lifecycle" {
            p { "State " (badge(s(&lc["state"]))) " · sidecars run in " strong { (text(&lc["mode"])) } " · once active: " (text(&lc["target_mode"]))
                " · " (text(&lc["detail"])) " · since " (text(&lc["state_since"])) }
            p { small { "Image " (text(&m["image"])) " · model " (text(&m["model_id"])) " version " (text(&m["version"])) " · " (text(&cur["items"])) " items, " (text(&cur["candidates"])) " candidates" } }
            @if c.may_operate() {
                div.actions {
                    form method="post" action={(model_url(&id)) "/approve"} {
                        (hidden(&c))
                        input type="text" name="reason" placeholder="reason" aria-label="Reason for approving";
                        button type="submit" name="do" value="approve" { "Approve" }
                    }
                    form method="post" action={(model_url(&id)) "/relearn"} {
                        (hidden(&c))
                        input type="text" name="reason" placeholder="reason" aria-label="Reason for relearning";
                        button type="submit" { "Relearn" }
                    }
                    form method="post" action={(model_url(&id)) "/extend"} {
                        (hidden(&c))
                        input type="text" name="by" value="10m" size="5" aria-label="Extend learning by";
                        input type="text" name="reason" placeholder="reason" aria-label="Reason for extending";
                        button type="submit" { "Extend learning" }
                    }
                    p.note { "Recorded in the audit log as " strong { (c.who.as_ref().map(Principal::name).unwrap_or("")) } "." }
                }
            }
        }
        @if let Some(d) = &diff {
            section.diff aria-label="Difference from the previous image" {
                h2 { "Against the previous image " small { (short(&d.0)) } }
                @if d.1.is_empty() && d.2.is_empty() { p { "No difference in the model." } }
                ul {
                    @for i in &d.1 { li.added { "+ " (i) } }
                    @for i in &d.2 { li.removed { "− " (i) } }
                }
            }
        }
        nav.tabs aria-label="Model tabs" {
            @for t in ["process", "network", "filesystem"] {
                @let n = m["items"][t].as_array().map(|a| a.len()).unwrap_or(0);
                a href={(model_url(&id)) "?container=" (enc(&container)) "&digest=" (enc(&digest)) "&tab=" (t)} aria-current=[(t == tab).then_some("page")] {
                    (cap(t)) " (" (n) ")"
                }
            }
        }
        table.list.items #items {
            thead { tr { th { "Item" } th { "Origin" } th { "Status" } th { "Hits" } th { "First seen" } th { "Last seen" } th { "Seen by" } @if c.may_operate() { th { span.vh { "Actions" } } } } }
            tbody {
                @for it in m["items"][tab.as_str()].as_array().into_iter().flatten() {
                    tr data-kind=(s(&it["kind"])) {
                        td { (s(&it["describe"])) @if it["inherited"] == true { " " span.tag { "inherited" } } @if it["new_in_this_image"] == true { " " span.tag.new { "new in this image" } } }
                        td { span class={"origin o-" (s(&it["origin"]))} { (s(&it["origin"])) } @if let Some(by) = it["added_by"].as_str() { br; small { "by " (by) } } }
                        td { (s(&it["status"])) }
                        td.num { (text(&it["hits"])) }
                        td { (when(&it["first_seen"])) }
                        td { (when(&it["last_seen"])) }
                        td { @for p in it["pods"].as_array().into_iter().flatten() { div { small { (s(&p["pod"])) " ×" (text(&p["hits"])) " " } (when(&p["first_seen"])) small { " – " } (when(&p["last_seen"])) } } }
                        @if c.may_operate() {
                            td { form method="post" action={(model_url(&id)) "/rules/" (text(&it["id"])) "/delete"} { (hidden(&c)) button type="submit" aria-label={"Remove " (s(&it["describe"]))} { "Remove" } } }
                        }
                    }
                }
            }
        }
        @if c.may_operate() {
            section.rule aria-label="Add a manual rule" {
                h2 { "Add a manual rule" }
                form method="post" action={(model_url(&id)) "/rules"} {
                    (hidden(&c))
                    label { "Action " select name="action" { option value="allow" { "allow" } option value="deny" { "deny" } } }
                    label { "Item " input type="text" name="item" size="60" required placeholder="{kind: process, exe: /usr/bin/ps, parent: /usr/bin/dash}"; }
                    input type="text" name="reason" placeholder="reason" aria-label="Reason for the rule";
                    button type="submit" { "Add rule" }
                }
                p.note { "The item as in an NfguardModel document (docs/console.md): kind process, listen, connect, socket, unix or file with its fields." }
            }
        }
        h2 { "Audit" }
        ul.audit {
            @for a in app.store.audit_log(Some(&id), 20).await.unwrap_or_default() {
                li { small { (text(&a["time"])) } " " strong { (text(&a["actor"])) } " " (text(&a["action"])) " " small { (text(&a["detail"])) } }
            }
        }
    };
    page(&c, StatusCode::OK, &text(&w["name"]), "", body)
}

/// An RFC 3339 time, short (month-day and time of day), the whole of it in the element.
fn when(v: &Value) -> Markup {
    let t = text(v);
    let short = match (t.get(5..10), t.get(11..19)) {
        (Some(d), Some(h)) => format!("{d} {h}"),
        _ => t.clone(),
    };
    html! { time datetime=(t) title=(t) { small { (short) } } }
}

fn cap(t: &str) -> String {
    let mut c = t.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn short(digest: &str) -> &str {
    let d = digest.strip_prefix("sha256:").unwrap_or(digest);
    d.get(..12).unwrap_or(d)
}

/// The model's difference from its predecessor: (its digest, added, removed).
async fn model_diff(app: &App, m: &Value) -> Option<(String, Vec<String>, Vec<String>)> {
    let pred = m["diff"]["predecessor"]["model_id"].as_i64()?;
    let cur = app.store.model_by_id(m["model_id"].as_i64()?).await.ok()?;
    let other = app.store.model_by_id(pred).await.ok()?;
    let a = crate::yaml::document(&app.store, &other, false)
        .await
        .ok()?;
    let b = crate::yaml::document(&app.store, &cur, false).await.ok()?;
    let d = crate::yaml::diff(&a, &b);
    Some((
        other.digest,
        d.added.iter().map(|i| i.describe()).collect(),
        d.removed.iter().map(|i| i.describe()).collect(),
    ))
}

#[derive(Deserialize)]
pub(crate) struct ActForm {
    csrf: String,
    container: Option<String>,
    digest: Option<String>,
    reason: Option<String>,
    by: Option<String>,
    action: Option<String>,
    item: Option<String>,
    back: Option<String>,
}

/// Where to go after a form: back to the page it came from, if it is one of ours.
fn back(b: &Option<String>, default: String) -> Redirect {
    match b {
        Some(b) if b.starts_with("/ui/") && !b.starts_with("//") => Redirect::to(b),
        _ => Redirect::to(&default),
    }
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// For a POST only an operator may make: the caller, or the page saying why not.
async fn operator_ctx(
    app: &App,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(Ctx, Principal), Response> {
    let (c, p) = post_ctx(app, headers, csrf).await?;
    if !p.has(crate::auth::Role::Operator) {
        return Err(error_page(
            &c,
            StatusCode::FORBIDDEN,
            &format!("{} may not do this: it needs the operator role", p.name()),
        ));
    }
    Ok((c, p))
}

pub(crate) async fn act(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActForm>,
) -> Response {
    let (c, p) = match post_ctx(&app, &headers, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let r = match action.as_str() {
        "approve" | "relearn" | "extend" => {
            let b = ActBody {
                container: nonempty(&f.container),
                digest: nonempty(&f.digest),
                reason: nonempty(&f.reason),
                include_candidates: None,
                by: nonempty(&f.by),
            };
            api::act_as(&app, &p, &id, &b, &action).await.map(|_| ())
        }
        "rules" => add_rule(&app, &p, &id, &f).await,
        _ => return error_page(&c, StatusCode::NOT_FOUND, "no such action"),
    };
    match r {
        Ok(()) => back(&f.back, model_url(&id)).into_response(),
        Err(e) => api_error(&c, e),
    }
}

async fn add_rule(app: &App, p: &Principal, id: &str, f: &ActForm) -> Result<(), ApiError> {
    if !p.has(crate::auth::Role::Operator) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{} may not do this: it needs the operator role", p.name()),
        ));
    }
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let allow = match f.action.as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(bad("action: expected allow or deny".into())),
    };
    let item: nfguard_sidecar::console_link::wire::Item =
        serde_yaml::from_str(f.item.as_deref().unwrap_or(""))
            .map_err(|e| bad(format!("not an item: {e}")))?;
    let m = app
        .store
        .pick_model(
            id,
            nonempty(&f.container).as_deref(),
            nonempty(&f.digest).as_deref(),
        )
        .await?;
    app.store
        .rule(
            m.id,
            &item,
            allow,
            p.name(),
            nonempty(&f.reason).as_deref(),
            store::now_ms(),
        )
        .await?;
    Ok(())
}

pub(crate) async fn delete_rule(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path((id, item)): Path<(String, String)>,
    Form(f): Form<ActForm>,
) -> Response {
    let (c, p) = match operator_ctx(&app, &headers, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(item) = item.parse::<i64>() else {
        return error_page(&c, StatusCode::BAD_REQUEST, "the item id is not a number");
    };
    let r = async {
        let m = app
            .store
            .pick_model(
                &id,
                nonempty(&f.container).as_deref(),
                nonempty(&f.digest).as_deref(),
            )
            .await?;
        app.store
            .delete_item(m.id, item, p.name(), store::now_ms())
            .await?;
        Ok::<(), ApiError>(())
    }
    .await;
    match r {
        Ok(()) => back(&f.back, model_url(&id)).into_response(),
        Err(e) => api_error(&c, e),
    }
}

// ---- incidents ----

#[derive(Deserialize, Default)]
pub(crate) struct IncidentsQuery {
    state: Option<String>,
    workload: Option<String>,
}

pub(crate) async fn incidents(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<IncidentsQuery>,
) -> Response {
    let c = match viewer(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let state = nonempty(&q.state).filter(|s| crate::incident::STATES.contains(&s.as_str()));
    let workload = nonempty(&q.workload);
    let list = match app
        .store
        .incidents(state.as_deref(), workload.as_deref(), 500)
        .await
    {
        Ok(l) => l,
        Err(e) => return api_error(&c, e.into()),
    };
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
    let mut events = 0;
    for i in &list {
        *by_state.entry(text(&i["state"])).or_default() += 1;
        *by_severity.entry(text(&i["severity"])).or_default() += 1;
        events += i["events"].as_i64().unwrap_or(0);
    }
    let body = html! {
        h1 { "Incidents" }
        p.counts {
            (list.len()) " incidents, " (events) " events"
            @for (k, n) in &by_state { " · " (n) " " (k) }
            @for (k, n) in &by_severity { " · " (n) " " (k) }
        }
        nav.tabs aria-label="Incident state" {
            a href="/ui/incidents" aria-current=[state.is_none().then_some("page")] { "all" }
            @for x in crate::incident::STATES {
                a href={"/ui/incidents?state=" (x)} aria-current=[(state.as_deref() == Some(x)).then_some("page")] { (x) }
            }
        }
        table.list.incidents {
            thead { tr { th { "#" } th { "Incident" } th { "Severity" } th { "State" } th { "Workload" } th { "Pod / container" } th { "Events" } th { "Opened" } th { "Last" } } }
            tbody {
                @for i in &list {
                    tr {
                        td.num { (text(&i["id"])) }
                        td { a href={"/ui/incidents/" (text(&i["id"]))} { (text(&i["title"])) } }
                        td { (badge(s(&i["severity"]))) }
                        td { (s(&i["state"])) }
                        td { a href=(model_url(s(&i["workload_id"]))) { (s(&i["workload_id"])) } }
                        td { (s(&i["pod"])) " / " (s(&i["container"])) }
                        td.num { (text(&i["events"])) }
                        td { small { (text(&i["opened"])) } }
                        td { small { (text(&i["last"])) } }
                    }
                }
                @if list.is_empty() { tr { td colspan="9" { "No incident." } } }
            }
        }
    };
    page(&c, StatusCode::OK, "Incidents", "Incidents", body)
}

/// The incident's processes as a tree (by parent pid), roots first.
fn process_tree(procs: &[Value]) -> Markup {
    let pids: BTreeSet<i64> = procs.iter().filter_map(|p| p["pid"].as_i64()).collect();
    let children = |ppid: Option<i64>| -> Vec<&Value> {
        procs
            .iter()
            .filter(|p| match ppid {
                Some(pp) => p["ppid"].as_i64() == Some(pp),
                None => p["ppid"].as_i64().is_none_or(|pp| !pids.contains(&pp)),
            })
            .collect()
    };
    fn node<'a>(
        p: &'a Value,
        children: &dyn Fn(Option<i64>) -> Vec<&'a Value>,
        depth: usize,
    ) -> Markup {
        html! {
            li {
                code { "pid " (text(&p["pid"])) } " " (text(&p["exe"])) " · uid " (text(&p["uid"]))
                br; code.argv { (argv(&p["argv"])) }
                @let kids = if depth < 32 { children(p["pid"].as_i64()) } else { Vec::new() };
                @if !kids.is_empty() { ul { @for k in kids { (node(k, children, depth + 1)) } } }
            }
        }
    }
    html! { ul.tree { @for r in children(None) { (node(r, &children, 0)) } } }
}

fn argv(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn target(ev: &Value) -> String {
    if let Some(p) = ev["path"].as_str() {
        return p.to_string();
    }
    match (ev["address"].as_str(), &ev["port"]) {
        (Some(a), Value::Number(p)) => format!("{} {a}:{p}", s(&ev["protocol"])),
        (Some(a), _) => a.to_string(),
        _ => String::new(),
    }
}

pub(crate) async fn incident(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): IdPath,
) -> Response {
    let c = match viewer(&app, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(n) = id.parse::<i64>() else {
        return error_page(
            &c,
            StatusCode::BAD_REQUEST,
            "the incident id is not a number",
        );
    };
    let i = match app.store.incident(n).await {
        Ok(i) => i,
        Err(e) => return api_error(&c, e.into()),
    };
    let timeline = i["timeline"].as_array().cloned().unwrap_or_default();
    let first = timeline
        .first()
        .map(|t| t["event"].clone())
        .unwrap_or(Value::Null);
    let t_ms = |t: &Value| crate::incident::time_ms(&serde_json::json!({"time": t})).unwrap_or(0);
    let t0 = timeline.first().map(|t| t_ms(&t["time"])).unwrap_or(0);
    let t1 = timeline.last().map(|t| t_ms(&t["time"])).unwrap_or(t0);
    let span = (t1 - t0).max(1) as f64;
    let here = format!("/ui/incidents/{n}");
    let field = |k: &str, v: String| html! { dt { (k) } dd { @if v.is_empty() { span.none { "—" } } @else { (v) } } };
    let body = html! {
        h1 { "Incident " (n) ": " (text(&i["title"])) }
        p { (badge(s(&i["severity"]))) " " (badge(s(&i["state"]))) @if let Some(by) = i["state_by"].as_str() { " by " (by) } }
        @if c.may_operate() {
            div.actions {
                @for st in crate::incident::STATES {
                    @if i["state"] != st {
                        form method="post" action={(here) "/state"} {
                            input type="hidden" name="csrf" value=(c.csrf);
                            input type="hidden" name="state" value=(st);
                            button type="submit" { "Mark " (st) }
                        }
                    }
                }
            }
        }
        div.cols {
            dl.fields {
                (field("Cluster", text(&i["cluster"])))
                (field("Namespace", text(&i["namespace"])))
                (field("Workload", s(&i["workload_id"]).to_string()))
                (field("Pod", text(&i["pod"])))
                (field("Container", text(&i["container"])))
                (field("Image", text(&i["image"])))
                (field("Digest", text(&i["digest"])))
                (field("Process tree (session)", text(&i["tree"])))
                (field("Command line", argv(&first["argv"])))
                (field("Program", text(&first["exe"])))
                (field("User (uid)", text(&first["uid"])))
                (field("API user of the exec session", text(&first["user"])))
                (field("Opened", text(&i["opened"])))
                (field("Last event", text(&i["last"])))
                (field("Events", text(&i["events"])))
                (field("Why", text(&first["reason"])))
            }
            section aria-label="Process tree" {
                h2 { "Processes" }
                (process_tree(i["processes"].as_array().map(Vec::as_slice).unwrap_or(&[])))
                @if let Some(anc) = first["ancestors"].as_array() {
                    h3 { "Ancestors of the first" }
                    ol.ancestors { @for a in anc { li { code { "pid " (text(&a["pid"])) } " " (text(&a["exe"])) " " code.argv { (argv(&a["argv"])) } } } }
                }
            }
        }
        h2 { "Forensic timeline" }
        svg.axis viewBox="0 0 1000 40" role="img" aria-label="The events on a time axis" {
            line x1="10" y1="20" x2="990" y2="20" {}
            @for (k, t) in timeline.iter().enumerate() {
                @let x = 10.0 + 980.0 * (t_ms(&t["time"]) - t0) as f64 / span;
                circle cx=(fmt(x)) cy="20" r="5" { title { (k + 1) ": " (argv(&t["event"]["argv"])) } }
                text x=(fmt(x)) y="38" { (k + 1) }
            }
            text x="10" y="12" { (text(&i["opened"])) }
            text.end x="990" y="12" { "+" (t1 - t0) " ms" }
        }
        ol.timeline {
            @for t in &timeline {
                @let ev = &t["event"];
                li data-event=(text(&t["event_id"])) {
                    span.when { "+" (t_ms(&t["time"]) - t0) " ms" } " "
                    (badge(s(&ev["verdict"]))) " " span.kind { (s(&ev["kind"])) } " "
                    code { (s(&ev["syscall"])) } " "
                    span.cmd { (argv(&ev["argv"])) } " → " span.target { (target(ev)) }
                    @if t["repeats"].as_i64().unwrap_or(1) > 1 { " " span.tag { "×" (text(&t["repeats"])) " until " (text(&t["last"])) } }
                    br;
                    small { "pid " (text(&ev["pid"])) " (parent " (text(&ev["ppid"])) ") " (s(&ev["exe"])) " · uid " (text(&ev["uid"])) " · " (s(&ev["reason"])) }
                    @if c.may_operate() {
                        form.inline method="post" action={"/ui/events/" (text(&t["event_id"])) "/add-to-model"} {
                            input type="hidden" name="csrf" value=(c.csrf);
                            input type="hidden" name="back" value=(here);
                            button type="submit" { "Add to model" }
                        }
                    }
                }
            }
        }
    };
    page(
        &c,
        StatusCode::OK,
        &format!("Incident {n}"),
        "Incidents",
        body,
    )
}

#[derive(Deserialize)]
pub(crate) struct StateForm {
    csrf: String,
    state: String,
}

pub(crate) async fn incident_state(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): IdPath,
    Form(f): Form<StateForm>,
) -> Response {
    let (c, p) = match operator_ctx(&app, &headers, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(n) = id.parse::<i64>() else {
        return error_page(
            &c,
            StatusCode::BAD_REQUEST,
            "the incident id is not a number",
        );
    };
    match app
        .store
        .set_incident_state(
            n,
            &f.state,
            p.name(),
            Some("from the web UI"),
            store::now_ms(),
        )
        .await
    {
        Ok(()) => Redirect::to(&format!("/ui/incidents/{n}")).into_response(),
        Err(e) => api_error(&c, e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct BackForm {
    csrf: String,
    back: Option<String>,
}

pub(crate) async fn add_to_model(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): IdPath,
    Form(f): Form<BackForm>,
) -> Response {
    let (c, p) = match post_ctx(&app, &headers, &f.csrf).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Ok(n) = id.parse::<i64>() else {
        return error_page(&c, StatusCode::BAD_REQUEST, "the event id is not a number");
    };
    match api::add_event_to_model(&app, &p, n).await {
        Ok(_) => back(&f.back, "/ui/incidents".into()).into_response(),
        Err(e) => api_error(&c, e),
    }
}
