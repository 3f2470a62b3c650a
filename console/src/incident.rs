//! Incidents: events grouped the way a responder reads them.
//!
//! An attacker's `ps -ef` is one exec, a socket, a connect to nscd and a few
//! opens: nine events, one incident. Events join an incident when they come
//! from the same model (workload, container, image), the same pod and the same
//! process tree (the supervisor's session: an exec session's id, or the NF's
//! own tree), within the window since the incident's last event. Processes
//! that entered the pod from outside the launcher each get their own session
//! id (`outside-PID`); in one pod they are one intruder's commands, so they
//! group as one `outside` tree.
//!
//! Throttling: an event that repeats one already in the incident (same
//! signature: kind, syscall, program, target) is stored but folded into the
//! first one's count, so a loop of one forbidden connect is one timeline line
//! "x 3,000", not 3,000 lines and not 3,000 notifications.

use serde_json::Value;

/// The incident window when the console is not told otherwise.
pub const DEFAULT_WINDOW_MS: i64 = 10 * 60 * 1000;

/// The process tree an event belongs to, for grouping.
pub fn tree_of(event: &Value) -> String {
    let session = event["session"].as_str().unwrap_or("");
    if session.starts_with("outside-") {
        "outside".to_string()
    } else {
        session.to_string()
    }
}

/// What makes two events "the same" for throttling.
pub fn signature(event: &Value) -> String {
    let s = |k: &str| match &event[k] {
        Value::String(v) => v.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    [
        s("kind"),
        s("verdict"),
        s("syscall"),
        s("exe"),
        s("path"),
        s("op"),
        s("address"),
        s("port"),
    ]
    .join("|")
}

/// How bad: a refused call or a program not from the image is high, an alert medium.
pub fn severity(event: &Value) -> &'static str {
    match (event["verdict"].as_str(), event["kind"].as_str()) {
        (_, Some("drift")) | (Some("deny"), _) => "high",
        (_, Some("internal-error")) => "low",
        _ => "medium",
    }
}

/// The incident's title, from its first event.
pub fn title(event: &Value) -> String {
    let exe = event["path"]
        .as_str()
        .filter(|_| event["category"] == "process")
        .or(event["exe"].as_str())
        .unwrap_or("?");
    let argv: Vec<&str> = event["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let what = if argv.is_empty() {
        exe.to_string()
    } else {
        argv.join(" ")
    };
    let mut what: String = what.chars().take(120).collect();
    if let Some(user) = event["user"].as_str() {
        what = format!("{what} (by {user})");
    }
    format!(
        "{} {}: {}",
        event["verdict"].as_str().unwrap_or("alert"),
        event["kind"].as_str().unwrap_or("outside-model"),
        what
    )
}

/// Does an event at `at_ms` still join an incident whose last event was at `last_ms`?
pub fn within(last_ms: i64, at_ms: i64, window_ms: i64) -> bool {
    at_ms - last_ms <= window_ms
}

/// Parses the event's RFC 3339 time into unix milliseconds.
pub fn time_ms(event: &Value) -> Option<i64> {
    let t = event["time"].as_str()?;
    let t = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Incident states.
pub const STATES: [&str; 3] = ["open", "acknowledged", "resolved"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_intruders_commands_from_outside_are_one_tree_and_repeats_share_a_signature() {
        let a = json!({"session":"outside-2146","kind":"outside-model","verdict":"alert","syscall":"execve","exe":"/usr/bin/dash","path":"/usr/bin/ps","category":"process","argv":["ps","-ef"]});
        let b = json!({"session":"outside-2161","kind":"outside-model","verdict":"alert","syscall":"execve","exe":"/usr/bin/dash","path":"/usr/bin/ps","category":"process","argv":["ps","-ef"]});
        assert_eq!(tree_of(&a), tree_of(&b));
        assert_eq!(tree_of(&json!({"session":"e2e-alert"})), "e2e-alert");
        assert_eq!(signature(&a), signature(&b));
        let c = json!({"kind":"outside-model","verdict":"alert","syscall":"connect","exe":"/usr/bin/ps","address":"10.0.0.1","port":53});
        assert_ne!(signature(&a), signature(&c));
        assert_eq!(title(&a), "alert outside-model: ps -ef");
        assert_eq!(severity(&a), "medium");
        assert_eq!(severity(&json!({"verdict":"deny"})), "high");
        assert!(within(1_000, 5_000, 4_000) && !within(1_000, 5_001, 4_000));
        assert_eq!(
            time_ms(&json!({"time":"2026-11-26T13:14:28.704871483Z"})),
            Some(1_795_698_868_704)
        );
    }
}
