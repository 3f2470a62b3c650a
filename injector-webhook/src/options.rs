//! The per-pod choices an operator makes through annotations, parsed and checked up front so
//! that an unknown value is refused with a message naming the annotation and what it accepts,
//! instead of silently running a pod under a policy nobody asked for.

use std::collections::BTreeMap;

use nfguard_common::{annotations, parse_duration, DatagramsAnnotation, ExecSessions, Mode};

use crate::config::DEFAULT_LEARNING_PERIOD;

/// An annotation whose value the injector does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}={value:?} is not valid: {reason}")]
pub struct BadAnnotation {
    pub annotation: &'static str,
    pub value: String,
    pub reason: String,
}

/// The entrypoint given by `nfguard.io/entrypoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrypointOverride {
    /// `["/usr/bin/nf", "-c", "x"]`: for every monitored container that has no `command`.
    All(Vec<String>),
    /// `{"smf": ["/usr/bin/nf"]}`: per container.
    PerContainer(BTreeMap<String, Vec<String>>),
}

impl EntrypointOverride {
    pub fn for_container(&self, name: &str) -> Option<&[String]> {
        match self {
            EntrypointOverride::All(v) => Some(v),
            EntrypointOverride::PerContainer(m) => m.get(name).map(Vec::as_slice),
        }
    }
}

/// What the pod's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodOptions {
    /// `None`: the default (learn for the learning period, then alert).
    pub mode: Option<Mode>,
    /// The annotation text (already checked to be a valid duration), or the default.
    pub learning_period: String,
    /// Whether `nfguard.io/learning-period` was given.
    pub learning_period_set: bool,
    /// `None`: every app container.
    pub containers: Option<Vec<String>>,
    pub entrypoint: Option<EntrypointOverride>,
    pub exec_sessions: ExecSessions,
    /// `nfguard.io/sinks`, checked to be a JSON object (the sidecar checks the rest).
    pub sinks: Option<String>,
    /// `nfguard.io/datagrams`: which seccomp program each monitored
    /// container's launcher installs (`NFGUARD_DATAGRAMS`).
    pub datagrams: DatagramsAnnotation,
}

impl PodOptions {
    /// True when the operator asked for enforcement: failures to inject then deny the pod.
    pub fn enforce(&self) -> bool {
        self.mode == Some(Mode::Enforce)
    }

    /// Parses the annotations; `container_names` are the pod's app containers.
    pub fn parse(
        annots: &BTreeMap<String, String>,
        container_names: &[&str],
    ) -> Result<Self, BadAnnotation> {
        let bad = |annotation: &'static str, value: &str, reason: String| BadAnnotation {
            annotation,
            value: value.to_string(),
            reason,
        };
        let mode = match annots.get(annotations::MODE) {
            None => None,
            Some(v) => Some(v.trim().parse::<Mode>().map_err(|e| {
                bad(
                    annotations::MODE,
                    v,
                    format!("expected one of {}", e.allowed),
                )
            })?),
        };
        let learning_period = match annots.get(annotations::LEARNING_PERIOD) {
            None => DEFAULT_LEARNING_PERIOD.to_string(),
            Some(v) => {
                parse_duration(v)
                    .map_err(|e| bad(annotations::LEARNING_PERIOD, v, e.to_string()))?;
                v.trim().to_string()
            }
        };
        let learning_period_set = annots.contains_key(annotations::LEARNING_PERIOD);
        let exec_sessions = match annots.get(annotations::EXEC_SESSIONS) {
            None => ExecSessions::default(),
            Some(v) => v.trim().parse::<ExecSessions>().map_err(|e| {
                bad(
                    annotations::EXEC_SESSIONS,
                    v,
                    format!("expected one of {}", e.allowed),
                )
            })?,
        };
        let containers = match annots.get(annotations::CONTAINERS) {
            None => None,
            Some(v) => {
                let names: Vec<String> = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if names.is_empty() {
                    return Err(bad(
                        annotations::CONTAINERS,
                        v,
                        "expected a comma-separated list of container names".into(),
                    ));
                }
                for n in &names {
                    if !container_names.contains(&n.as_str()) {
                        return Err(bad(
                            annotations::CONTAINERS,
                            v,
                            format!(
                                "no app container named {n:?} (containers: {})",
                                container_names.join(", ")
                            ),
                        ));
                    }
                }
                Some(names)
            }
        };
        let entrypoint = match annots.get(annotations::ENTRYPOINT) {
            None => None,
            Some(v) => Some(parse_entrypoint(v).map_err(|r| bad(annotations::ENTRYPOINT, v, r))?),
        };
        let sinks = match annots.get(annotations::SINKS) {
            None => None,
            Some(v) => match serde_json::from_str::<serde_json::Value>(v) {
                Ok(j) if j.is_object() => Some(j.to_string()),
                _ => {
                    return Err(bad(
                        annotations::SINKS,
                        v,
                        "expected a JSON object of sinks (see docs/alerts.md)".into(),
                    ))
                }
            },
        };
        let datagrams = match annots.get(annotations::DATAGRAMS) {
            None => DatagramsAnnotation::default(),
            Some(v) => {
                let d = v.parse::<DatagramsAnnotation>().map_err(|e| {
                    bad(annotations::DATAGRAMS, v, format!("expected {}", e.allowed))
                })?;
                for (n, _) in &d.per_container {
                    if !container_names.contains(&n.as_str()) {
                        return Err(bad(
                            annotations::DATAGRAMS,
                            v,
                            format!(
                                "no app container named {n:?} (containers: {})",
                                container_names.join(", ")
                            ),
                        ));
                    }
                }
                d
            }
        };
        Ok(PodOptions {
            mode,
            learning_period,
            learning_period_set,
            containers,
            entrypoint,
            exec_sessions,
            sinks,
            datagrams,
        })
    }
}

fn parse_entrypoint(text: &str) -> Result<EntrypointOverride, String> {
    const EXPECTED: &str = "expected a JSON array of strings such as [\"/usr/bin/nf\", \"-c\", \"/etc/nf.conf\"], or an object of such arrays by container name";
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("{EXPECTED} ({e})"))?;
    let strings = |v: &serde_json::Value| -> Result<Vec<String>, String> {
        let arr = v.as_array().ok_or_else(|| EXPECTED.to_string())?;
        let out: Option<Vec<String>> = arr.iter().map(|s| s.as_str().map(String::from)).collect();
        match out {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(EXPECTED.to_string()),
        }
    };
    match &value {
        serde_json::Value::Array(_) => Ok(EntrypointOverride::All(strings(&value)?)),
        serde_json::Value::Object(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                out.insert(k.clone(), strings(v)?);
            }
            Ok(EntrypointOverride::PerContainer(out))
        }
        _ => Err(EXPECTED.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annots(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_when_nothing_is_annotated() {
        let o = PodOptions::parse(&BTreeMap::new(), &["a"]).unwrap();
        assert_eq!(o.mode, None);
        assert_eq!(o.learning_period, "10m");
        assert_eq!(o.exec_sessions, ExecSessions::Alert);
        assert!(o.containers.is_none() && o.entrypoint.is_none());
    }

    #[test]
    fn datagram_inspection_is_on_unless_the_pod_turns_it_off_per_container() {
        use nfguard_common::Datagrams;
        let o = PodOptions::parse(&BTreeMap::new(), &["smf"]).unwrap();
        assert_eq!(o.datagrams.of("smf"), Datagrams::Inspect);
        let a = annots(&[("nfguard.io/datagrams", "upf-u=off")]);
        let o = PodOptions::parse(&a, &["upf-c", "upf-u"]).unwrap();
        assert_eq!(o.datagrams.of("upf-u"), Datagrams::Off);
        assert_eq!(o.datagrams.of("upf-c"), Datagrams::Inspect);
        let e = PodOptions::parse(&a, &["upf"]).unwrap_err().to_string();
        assert!(e.contains("no app container named \"upf-u\""), "{e}");
        let e = PodOptions::parse(&annots(&[("nfguard.io/datagrams", "on")]), &["a"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nfguard.io/datagrams") && e.contains("inspect, off"),
            "{e}"
        );
    }

    #[test]
    fn unknown_values_name_the_annotation_and_the_choices() {
        let e = PodOptions::parse(&annots(&[("nfguard.io/mode", "block")]), &["a"]).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("nfguard.io/mode") && s.contains("learn, alert, enforce"),
            "{s}"
        );
        let e =
            PodOptions::parse(&annots(&[("nfguard.io/exec-sessions", "x")]), &["a"]).unwrap_err();
        assert!(e.to_string().contains("alert, deny, allow"));
        let e = PodOptions::parse(&annots(&[("nfguard.io/learning-period", "ten")]), &["a"])
            .unwrap_err();
        assert!(e.to_string().contains("nfguard.io/learning-period"));
        let e = PodOptions::parse(&annots(&[("nfguard.io/containers", "b")]), &["a"]).unwrap_err();
        assert!(e.to_string().contains("no app container named \"b\""));
        let e = PodOptions::parse(&annots(&[("nfguard.io/entrypoint", "/bin/nf")]), &["a"])
            .unwrap_err();
        assert!(e.to_string().contains("JSON array"));
    }

    #[test]
    fn entrypoint_is_an_array_or_a_map_by_container() {
        let o = PodOptions::parse(
            &annots(&[("nfguard.io/entrypoint", r#"["/nf","-c"]"#)]),
            &["a"],
        )
        .unwrap();
        assert_eq!(
            o.entrypoint.unwrap().for_container("a").unwrap(),
            ["/nf", "-c"]
        );
        let o = PodOptions::parse(
            &annots(&[("nfguard.io/entrypoint", r#"{"a":["/nf"]}"#)]),
            &["a", "b"],
        )
        .unwrap();
        let e = o.entrypoint.unwrap();
        assert_eq!(e.for_container("a").unwrap(), ["/nf"]);
        assert!(e.for_container("b").is_none());
    }

    #[test]
    fn a_sinks_annotation_that_is_not_a_json_object_is_refused_by_name() {
        let annots = BTreeMap::from([(annotations::SINKS.to_string(), "[1,2]".to_string())]);
        let e = PodOptions::parse(&annots, &["a"]).unwrap_err().to_string();
        assert!(
            e.contains(annotations::SINKS) && e.contains("JSON object"),
            "{e}"
        );
    }
}
