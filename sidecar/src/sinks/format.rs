//! The body each kind of sink receives for an alert.
//!
//! - `webhook`: the alert itself: every field of the event, plus `count`,
//!   `first_seen`, `last_seen` and, for a summary, `repeats_of`.
//! - `falco`: Falco's JSON output, the body falcosidekick decodes into its
//!   `types.FalcoPayload` (`output`, `priority`, `rule`, `time`,
//!   `output_fields`, `source`, `tags`, `hostname`; falcosidekick rejects a
//!   payload whose priority, rule, time or output_fields is empty). Field
//!   names in `output_fields` follow Falco's (`proc.*`, `k8s.*`, `container.*`,
//!   `fd.name`, `evt.type`) so falcosidekick's templates and outputs work
//!   unchanged; nfguard's own go under `nfguard.*`.
//! - `slack`: an incoming-webhook message: `text` (the fallback that
//!   notifications show) and `blocks`.
//! - `kubernetes`: a core/v1 Event whose involvedObject is the pod.

use serde_json::{json, Map, Value};

use super::aggregate::Alert;
use crate::event::{Kind, Verdict};

fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::OutsideModel => "outside-model",
        Kind::Drift => "drift",
        Kind::Unverifiable => "unverifiable",
        Kind::InternalError => "internal-error",
        Kind::Forbidden => "forbidden",
    }
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Alert => "alert",
        Verdict::Deny => "deny",
    }
}

/// What the call acted on, for a person.
fn target(a: &Alert) -> String {
    let e = &a.event;
    match (&e.path, &e.address, e.port) {
        (Some(p), _, _) => p.clone(),
        (None, Some(addr), Some(port)) => crate::model::join_host_port(addr, port),
        (None, Some(addr), None) => addr.clone(),
        _ => String::new(),
    }
}

/// "namespace/pod container" or "container" on a plain host.
fn where_(a: &Alert) -> String {
    let c = &a.event.context;
    match (&c.namespace, &c.pod) {
        (Some(ns), Some(pod)) => format!("{ns}/{pod} container {}", c.container),
        _ => format!("container {}", c.container),
    }
}

fn times(a: &Alert) -> String {
    if a.count == 1 {
        String::new()
    } else if a.repeats_of.is_some() {
        format!(
            " (repeated {} more times from {} to {}, after event {})",
            a.count,
            a.first_seen,
            a.last_seen,
            a.repeats_of.unwrap_or(0)
        )
    } else {
        format!(
            " ({} times from {} to {})",
            a.count, a.first_seen, a.last_seen
        )
    }
}

/// One line saying what happened.
pub fn summary_line(a: &Alert) -> String {
    let e = &a.event;
    format!(
        "nfguard {} ({}): {} in {}, pid {} {} {}, session {}{}",
        verdict_str(e.verdict),
        kind_str(e.kind),
        e.reason,
        where_(a),
        e.pid,
        e.exe,
        e.argv.join(" "),
        e.context.session.as_deref().unwrap_or("-"),
        times(a)
    )
}

pub fn webhook(a: &Alert) -> Value {
    serde_json::to_value(a).unwrap_or_else(|e| json!({ "error": e.to_string() }))
}

/// Falco's priority names (falcosidekick parses them case-insensitively).
fn priority(a: &Alert) -> &'static str {
    match (a.event.verdict, a.event.kind) {
        (_, Kind::Drift) => "Critical",
        (Verdict::Deny, _) => "Critical",
        (_, Kind::InternalError) => "Error",
        (Verdict::Alert, _) => "Warning",
    }
}

fn rule(a: &Alert) -> String {
    let what = match a.event.kind {
        Kind::OutsideModel => "outside the learned model",
        Kind::Drift => "binary not from the image",
        Kind::Unverifiable => "unverifiable call",
        Kind::InternalError => "uninspectable call",
        Kind::Forbidden => "forbidden call",
    };
    let cat = serde_json::to_value(a.event.category)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!("nfguard: {cat} {what}")
}

/// Falco's event time: RFC 3339 with nanoseconds, as Go's time.Time expects.
fn go_time(t: &str) -> String {
    crate::event::parse_time(t)
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

pub fn falco(a: &Alert, hostname: &str, extra_tags: &[String]) -> Value {
    let e = &a.event;
    let c = &e.context;
    let mut f = Map::new();
    let mut put = |k: &str, v: Value| {
        if !v.is_null() {
            f.insert(k.to_string(), v);
        }
    };
    put("evt.type", json!(e.syscall));
    put("proc.pid", json!(e.pid));
    put("proc.ppid", json!(e.ppid));
    put("proc.exepath", json!(e.exe));
    put(
        "proc.name",
        json!(e.exe.rsplit('/').next().unwrap_or(&e.exe)),
    );
    put("proc.cmdline", json!(e.argv.join(" ")));
    put("proc.cwd", json!(e.cwd));
    put("user.uid", json!(e.uid));
    if let Some(parent) = e.ancestors.first() {
        put("proc.pexepath", json!(parent.exe));
        put("proc.pcmdline", json!(parent.argv.join(" ")));
    }
    let t = target(a);
    if !t.is_empty() {
        put("fd.name", json!(t));
    }
    put("k8s.ns.name", json!(c.namespace));
    put("k8s.pod.name", json!(c.pod));
    put("container.name", json!(c.container));
    put("container.image.repository", json!(c.image));
    put("nfguard.verdict", json!(verdict_str(e.verdict)));
    put("nfguard.kind", json!(kind_str(e.kind)));
    put("nfguard.mode", json!(e.mode.as_str()));
    put("nfguard.reason", json!(e.reason));
    put("nfguard.session", json!(c.session));
    put("nfguard.user", json!(c.user));
    put("nfguard.event_id", json!(e.id));
    put("nfguard.count", json!(a.count));
    put("nfguard.first_seen", json!(a.first_seen));
    put("nfguard.last_seen", json!(a.last_seen));
    put("nfguard.repeats_of", json!(a.repeats_of));
    let mut tags = vec![
        "nfguard".to_string(),
        kind_str(e.kind).to_string(),
        verdict_str(e.verdict).to_string(),
    ];
    tags.extend(extra_tags.iter().cloned());
    json!({
        "output": summary_line(a),
        "priority": priority(a),
        "rule": rule(a),
        "time": go_time(&a.last_seen),
        "output_fields": f,
        "source": "nfguard",
        "tags": tags,
        "hostname": hostname,
    })
}

/// Slack's mrkdwn needs &, < and > escaped.
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

pub fn slack(a: &Alert) -> Value {
    let e = &a.event;
    let c = &e.context;
    let icon = if e.verdict == Verdict::Deny {
        ":no_entry:"
    } else {
        ":warning:"
    };
    let head = format!("{icon} nfguard {} in {}", verdict_str(e.verdict), where_(a));
    let session = c.session.as_deref().unwrap_or("-");
    let mut fields = vec![
        format!(
            "*Process*\n`{}` pid {} (parent {})",
            mrkdwn(&e.exe),
            e.pid,
            e.ppid
        ),
        format!("*Command*\n`{}`", mrkdwn(&clip(&e.argv.join(" "), 300))),
        format!("*Call*\n{} {}", e.syscall, mrkdwn(&target(a))),
        format!("*Kind*\n{} ({} mode)", kind_str(e.kind), e.mode.as_str()),
        format!(
            "*Session*\n`{}`{}",
            mrkdwn(session),
            c.user
                .as_deref()
                .map(|u| format!(" by {}", mrkdwn(u)))
                .unwrap_or_default()
        ),
        format!("*Time*\n{}", a.last_seen),
    ];
    if a.count > 1 || a.repeats_of.is_some() {
        fields.push(format!(
            "*Count*\n{} (from {} to {})",
            a.count, a.first_seen, a.last_seen
        ));
    }
    if let Some(image) = &c.image {
        fields.push(format!("*Image*\n`{}`", mrkdwn(image)));
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|t| json!({ "type": "mrkdwn", "text": clip(&t, 1900) }))
        .collect();
    json!({
        "text": clip(&summary_line(a), 3000),
        "blocks": [
            { "type": "header", "text": { "type": "plain_text", "text": clip(&head, 150) } },
            { "type": "section", "text": { "type": "mrkdwn", "text": clip(&mrkdwn(&e.reason), 2900) } },
            { "type": "section", "fields": fields },
            { "type": "context", "elements": [ { "type": "mrkdwn",
                "text": format!("event {} · timeline: `GET /timeline?session={}&format=text` on the sidecar", e.id, mrkdwn(session)) } ] }
        ]
    })
}

/// The pod a Kubernetes Event is about.
#[derive(Debug, Clone, Default)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub node: Option<String>,
}

/// Kubernetes timestamps (metav1.Time): RFC 3339 to the second.
fn k8s_time(t: &str) -> String {
    crate::event::parse_time(t)
        .map(|t| {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|| t.to_string())
}

pub fn kubernetes(a: &Alert, pod: &PodRef) -> Value {
    let e = &a.event;
    let reason = match (e.verdict, e.kind) {
        (_, Kind::Drift) => "NfguardDrift",
        (Verdict::Deny, _) => "NfguardDenied",
        (_, Kind::InternalError) => "NfguardInternalError",
        (_, Kind::Unverifiable) => "NfguardUnverifiable",
        (Verdict::Alert, _) => "NfguardOutsideModel",
    };
    let mut involved = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "namespace": pod.namespace,
        "name": pod.name,
        "fieldPath": format!("spec.containers{{{}}}", e.context.container),
    });
    if let Some(uid) = &pod.uid {
        involved["uid"] = json!(uid);
    }
    let message = format!(
        "{} (pid {} {} `{}`, session {}, event {}){}",
        e.reason,
        e.pid,
        e.exe,
        e.argv.join(" "),
        e.context.session.as_deref().unwrap_or("-"),
        e.id,
        times(a)
    );
    let mut source = json!({ "component": "nfguard" });
    if let Some(node) = &pod.node {
        source["host"] = json!(node);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": { "generateName": format!("{}.nfguard-", pod.name), "namespace": pod.namespace },
        "involvedObject": involved,
        "reason": reason,
        "message": clip(&message, 1024),
        "type": "Warning",
        "action": if e.verdict == Verdict::Deny { "Denied" } else { "Alerted" },
        "source": source,
        "reportingComponent": "nfguard.io/sidecar",
        "reportingInstance": pod.name,
        "firstTimestamp": k8s_time(&a.first_seen),
        "lastTimestamp": k8s_time(&a.last_seen),
        "count": a.count,
    })
}
