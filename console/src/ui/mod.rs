//! The console's web UI: pages rendered on the server from the same
//! functions the API answers with, served under `/ui/` by the console itself
//! (no CDN, no external font, no script: every page reads without
//! JavaScript, every action is a real form).
//!
//! Everything shown comes from the workloads, and much of it from an
//! attacker: workload and pod names, argv, paths. The pages are built with
//! `maud`, which escapes every interpolated value, and are sent with a strict
//! Content-Security-Policy (`default-src 'none'`, the stylesheet from
//! `'self'` only, no script, `frame-ancestors 'none'`), so even a value that
//! slipped through could not run.
//!
//! Who is asking, as for the API:
//! - **a token**: the login form takes an operator's bearer token and keeps it
//!   in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` when served over
//!   HTTPS). Each request is authenticated again with it, as an API call is,
//!   so a token deleted through the API ends its sessions at once, and no
//!   session state lives outside the database (several consoles can serve one
//!   database);
//! - **an auth proxy** (`--auth-proxy-header X-Forwarded-User` with
//!   `--auth-proxy-secret-file`): the header names the user, who gets
//!   `--auth-proxy-role`, when the request also carries the proxy's secret in
//!   `Nfguard-Proxy-Secret` (the console's port is the sidecars' too: code in
//!   a monitored pod reaches it directly, and without the secret its header
//!   is ignored). The proxy must also strip the user header from clients.
//!
//! CSRF: every POST form carries a token derived from a random per-browser
//! cookie (`nfguard_csrf`, `HttpOnly`, `SameSite=Strict`); a POST whose token
//! does not match the cookie's is refused (403) before anything is done.
//! The role is checked on the server for every action (a viewer's forged
//! approve is a 403), and the pages do not offer a viewer the buttons.

mod pages;
pub mod settings;

pub use settings::{proxy_secret_digest, Settings, PROXY_SECRET};

use axum::extract::{Form, Path, Query, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::api::App;
use crate::auth::{Principal, Role};

const SESSION: &str = "nfguard_session";
/// The longest token the login form takes (a service-account JWT is a few KiB).
const TOKEN_MAX: usize = 8192;

const CSRF: &str = "nfguard_csrf";

/// The security headers of every page.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    r
}

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/radar", get(pages::radar))
        .route("/ui/workloads/{id}", get(pages::model))
        .route("/ui/workloads/{id}/{action}", post(pages::act))
        .route(
            "/ui/workloads/{id}/rules/{item}/delete",
            post(pages::delete_rule),
        )
        .route("/ui/incidents", get(pages::incidents))
        .route("/ui/incidents/{id}", get(pages::incident))
        .route("/ui/incidents/{id}/state", post(pages::incident_state))
        .route("/ui/events/{id}/add-to-model", post(pages::add_to_model))
        .layer(axum::middleware::map_response(headers))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}

fn cookies(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let pairs = s.as_bytes().chunks(2);
    let bytes: Option<Vec<u8>> = pairs
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok().filter(|p| p.len() == 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The form token that goes with a browser's CSRF cookie.
fn csrf_for(seed: &str) -> String {
    hex(&Sha256::digest(format!("nfguard-ui-csrf:{seed}").as_bytes())[..16])
}

/// Who is asking, and what the page needs to build its forms.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub who: Option<Principal>,
    pub csrf: String,
    /// A fresh CSRF cookie to set (the browser had none).
    set_csrf: Option<String>,
    secure: bool,
}

impl Ctx {
    pub fn may_operate(&self) -> bool {
        self.who.as_ref().is_some_and(|p| p.has(Role::Operator))
    }

    pub fn role(&self) -> &'static str {
        match &self.who {
            Some(Principal::Operator { role, .. }) => role.as_str(),
            _ => "",
        }
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(a) = max_age {
            c.push_str(&format!("; Max-Age={a}"));
        }
        c
    }

    /// The response with the CSRF cookie, when the browser needs one.
    pub fn finish(&self, r: impl IntoResponse) -> Response {
        let mut r = r.into_response();
        if let Some(seed) = &self.set_csrf {
            if let Ok(v) = HeaderValue::from_str(&self.cookie(CSRF, seed, None)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// Authenticates a page's request: the proxy's header if configured and
/// present, else the session cookie's token (checked as an API call's).
pub(crate) async fn ctx(app: &App, headers: &HeaderMap) -> Ctx {
    let jar = cookies(headers);
    let (seed, set_csrf) = match jar.get(CSRF).filter(|s| s.len() == 64) {
        Some(s) => (s.clone(), None),
        None => {
            let s = hex(&rand::random::<[u8; 32]>());
            (s.clone(), Some(s))
        }
    };
    let mut who = None;
    let from_proxy = app.ui.proxy_secret.is_some_and(|want| {
        headers
            .get(PROXY_SECRET)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| proxy_secret_digest(s.trim()) == want)
    });
    if let Some(h) = app.ui.proxy_header.as_ref().filter(|_| from_proxy) {
        if let Some(user) = headers.get(h).and_then(|v| v.to_str().ok()) {
            let user = user.trim();
            if !user.is_empty() {
                who = Some(Principal::Operator {
                    name: user.to_string(),
                    role: app.ui.proxy_role,
                });
            }
        }
    }
    if who.is_none() {
        if let Some(token) = jar.get(SESSION).and_then(|t| unhex(t)) {
            if let Ok(p @ Principal::Operator { .. }) = app
                .auth
                .authenticate(&app.store, Some(&format!("Bearer {token}")))
                .await
            {
                who = Some(p);
            }
        }
    }
    Ctx {
        who,
        csrf: csrf_for(&seed),
        set_csrf,
        secure: app.ui.secure,
    }
}

/// Why a form may not be acted on, as a page: sent from another site's
/// page, or with a CSRF token that is not the one of this browser's cookie.
fn refused_form(c: &Ctx, headers: &HeaderMap, form_csrf: &str) -> Option<Response> {
    if let Some(why) = cross_origin(headers) {
        return Some(pages::error_page(c, StatusCode::FORBIDDEN, why));
    }
    if c.set_csrf.is_some() || form_csrf != c.csrf {
        return Some(pages::error_page(
            c,
            StatusCode::FORBIDDEN,
            "the form's CSRF token does not match this browser's: reload the page and try again",
        ));
    }
    None
}

/// For a POST: the caller, with the form's CSRF token checked against the cookie's.
pub(crate) async fn post_ctx(
    app: &App,
    headers: &HeaderMap,
    form_csrf: &str,
) -> Result<(Ctx, Principal), Response> {
    let c = ctx(app, headers).await;
    if let Some(r) = refused_form(&c, headers, form_csrf) {
        return Err(r);
    }
    match c.who.clone() {
        Some(p) => Ok((c, p)),
        None => Err(Redirect::to("/ui/login").into_response()),
    }
}

/// Why a POST is not from one of the console's own pages, as the browser
/// says it: `Sec-Fetch-Site` other than same-origin (a sibling subdomain or
/// port is same-site, which `SameSite=Strict` lets through, and which could
/// plant a CSRF cookie of its own), or an `Origin` naming another host.
fn cross_origin(headers: &HeaderMap) -> Option<&'static str> {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some("this form was sent from another site's page");
        }
    }
    // `Origin: null` is what a browser sends for a form of a page served
    // with `Referrer-Policy: no-referrer` (ours): it says nothing.
    if let (Some(origin), Some(host)) = (get("origin").filter(|o| *o != "null"), get("host")) {
        let named = origin.split_once("://").map_or(origin, |(_, h)| h);
        if named != host {
            return Some("this form was sent from another origin's page");
        }
    }
    None
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    failed: Option<String>,
}

async fn login_form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    q: Query<LoginQuery>,
) -> Response {
    let c = ctx(&app, &headers).await;
    let proxy = app.ui.proxy_header.as_ref().map(|h| h.as_str().to_string());
    c.finish(axum::response::Html(
        pages::login_page(&c, q.failed.is_some(), proxy.as_deref()).into_string(),
    ))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    csrf: String,
}

async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let c = ctx(&app, &headers).await;
    if let Some(r) = refused_form(&c, &headers, &f.csrf) {
        return r;
    }
    let token = f.token.trim();
    if token.len() > TOKEN_MAX {
        return pages::error_page(&c, StatusCode::BAD_REQUEST, "that token is too long");
    }
    match app
        .auth
        .authenticate(&app.store, Some(&format!("Bearer {token}")))
        .await
    {
        Ok(Principal::Operator { .. }) => {
            let mut r = Redirect::to("/ui/").into_response();
            if let Ok(v) = HeaderValue::from_str(&c.cookie(SESSION, &hex(token.as_bytes()), None)) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        _ => Redirect::to("/ui/login?failed=1").into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    pub csrf: String,
}

async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Response {
    let c = ctx(&app, &headers).await;
    if f.csrf != c.csrf {
        return pages::error_page(&c, StatusCode::FORBIDDEN, "CSRF token mismatch");
    }
    let mut r = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&c.cookie(SESSION, "", Some(0))) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// Path parameters of the pages.
pub(crate) type IdPath = Path<String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_parse_and_tokens_survive_the_hex_round_trip() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; nfguard_session=6869; b=x=y"),
        );
        let j = cookies(&h);
        assert_eq!(j.get("a").map(String::as_str), Some("1"));
        assert_eq!(j.get("b").map(String::as_str), Some("x=y"));
        assert_eq!(unhex("6869").as_deref(), Some("hi"));
        assert_eq!(unhex(&hex(b"tok/+=")).as_deref(), Some("tok/+="));
        assert_eq!(unhex("6"), None);
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert_eq!(csrf_for("a").len(), 32);
    }
}
