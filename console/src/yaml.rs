//! Models as code: a workload's model as a Kubernetes-style YAML document
//! (`kind: NfguardModel`) to review and keep in Git, applied back with
//! `model import` (as manual rules: an imported model is an approved one) and
//! compared with `model diff`.
//!
//! The document lists what is allowed and what is denied, sorted, one entry per
//! item, each with its origin. Provenance (hits, first and last seen, pods)
//! changes with every sync, so it is left out unless asked for: a document kept
//! in Git then changes only when the model does.
//!
//! ```yaml
//! apiVersion: nfguard.io/v1alpha1
//! kind: NfguardModel
//! metadata: {name: smf.main, namespace: core}
//! spec:
//!   workload: {cluster: local, namespace: core, kind: Deployment, name: smf}
//!   container: main
//!   image: registry/smf@sha256:...
//!   allow:
//!   - {kind: process, exe: /usr/bin/smf, parent: (launcher), origin: static}
//!   deny:
//!   - {kind: process, exe: /usr/bin/ps, parent: /usr/bin/dash, origin: manual}
//! ```

use std::collections::BTreeSet;

use nfguard_sidecar::console_link::wire::{Item, WorkloadIdentity};
use serde::{Deserialize, Serialize};

use crate::store::{self, ModelRow, Store, StoreError};

pub const API_VERSION: &str = "nfguard.io/v1alpha1";
pub const KIND: &str = "NfguardModel";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Doc {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: Spec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub workload: WorkloadIdentity,
    pub container: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub allow: Vec<Entry>,
    #[serde(default)]
    pub deny: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    #[serde(flatten)]
    pub item: Item,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hits: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen_by: Vec<String>,
}

impl Doc {
    pub fn check(&self) -> Result<(), String> {
        if self.kind != KIND {
            return Err(format!("kind is {:?}, expected {KIND}", self.kind));
        }
        if self.api_version != API_VERSION {
            return Err(format!(
                "apiVersion is {:?}, this console reads {API_VERSION}",
                self.api_version
            ));
        }
        self.spec.workload.check()
    }
}

/// The document of a stored model.
pub async fn document(store: &Store, m: &ModelRow, provenance: bool) -> Result<Doc, StoreError> {
    let items = store.items(m.id).await?;
    let prov = if provenance {
        store.provenance(m.id).await?
    } else {
        Default::default()
    };
    let parts: Vec<&str> = m.workload_id.splitn(4, ':').collect();
    let kind = parts
        .get(2)
        .and_then(|k| nfguard_sidecar::console_link::wire::canonical_kind(k))
        .unwrap_or_default();
    let workload = WorkloadIdentity {
        cluster: parts.first().unwrap_or(&"").to_string(),
        namespace: parts.get(1).unwrap_or(&"").to_string(),
        kind,
        name: parts.get(3).unwrap_or(&"").to_string(),
    };
    let entry = |it: &store::ItemRow| Entry {
        item: it.item.clone(),
        origin: Some(it.origin.clone()),
        hits: provenance.then_some(it.hits),
        first_seen: it.first_seen_ms.filter(|_| provenance).map(store::rfc3339),
        last_seen: it.last_seen_ms.filter(|_| provenance).map(store::rfc3339),
        seen_by: prov
            .get(&it.id)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p["pod"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut allow: Vec<Entry> = items
        .iter()
        .filter(|i| i.status == store::MODEL)
        .map(entry)
        .collect();
    let mut deny: Vec<Entry> = items
        .iter()
        .filter(|i| i.status == store::DENIED)
        .map(entry)
        .collect();
    allow.sort_by(|a, b| a.item.cmp(&b.item));
    deny.sort_by(|a, b| a.item.cmp(&b.item));
    let mut annotations = std::collections::BTreeMap::new();
    annotations.insert("nfguard.io/state".into(), m.lc.state.as_str().into());
    annotations.insert("nfguard.io/target-mode".into(), m.lc.target.as_str().into());
    if !m.digest.is_empty() {
        annotations.insert("nfguard.io/digest".into(), m.digest.clone());
    }
    Ok(Doc {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        metadata: Metadata {
            name: format!("{}.{}", workload.name, m.container),
            namespace: Some(workload.namespace.clone()),
            annotations,
        },
        spec: Spec {
            workload,
            container: m.container.clone(),
            image: m.image.clone(),
            allow,
            deny,
        },
    })
}

/// Applies a document to a model as manual rules; returns how many changed it.
pub async fn import(
    store: &Store,
    m: &ModelRow,
    doc: &Doc,
    actor: &str,
) -> Result<usize, StoreError> {
    let items = store.items(m.id).await?;
    let have = |status: &str, it: &Item| items.iter().any(|i| i.status == status && i.item == *it);
    let mut n = 0;
    let now = store::now_ms();
    for e in &doc.spec.allow {
        if !have(store::MODEL, &e.item) {
            store
                .rule(m.id, &e.item, true, actor, Some("imported"), now)
                .await?;
            n += 1;
        }
    }
    for e in &doc.spec.deny {
        if !have(store::DENIED, &e.item) {
            store
                .rule(m.id, &e.item, false, actor, Some("imported"), now)
                .await?;
            n += 1;
        }
    }
    Ok(n)
}

/// What `b` allows that `a` does not, and the reverse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    pub added: Vec<Item>,
    pub removed: Vec<Item>,
}

pub fn diff(a: &Doc, b: &Doc) -> Diff {
    let sa: BTreeSet<&Item> = a.spec.allow.iter().map(|e| &e.item).collect();
    let sb: BTreeSet<&Item> = b.spec.allow.iter().map(|e| &e.item).collect();
    Diff {
        added: sb.difference(&sa).map(|i| (*i).clone()).collect(),
        removed: sa.difference(&sb).map(|i| (*i).clone()).collect(),
    }
}

/// The diff for a person: `+ ` and `- ` lines, like diff(1).
pub fn render_diff(d: &Diff) -> String {
    let mut out = String::new();
    for i in &d.removed {
        out.push_str(&format!("- {:<8} {}\n", i.kind(), i.describe()));
    }
    for i in &d.added {
        out.push_str(&format!("+ {:<8} {}\n", i.kind(), i.describe()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nfguard_sidecar::model::ProcessEntry;

    fn doc(exes: &[&str]) -> Doc {
        Doc {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: Metadata {
                name: "smf.main".into(),
                namespace: Some("core".into()),
                annotations: Default::default(),
            },
            spec: Spec {
                workload: WorkloadIdentity::parse("core/Deployment/smf", "local").unwrap(),
                container: "main".into(),
                image: String::new(),
                allow: exes
                    .iter()
                    .map(|e| Entry {
                        item: Item::Process(ProcessEntry {
                            exe: e.to_string(),
                            parent: "(launcher)".into(),
                        }),
                        origin: Some("learned".into()),
                        hits: None,
                        first_seen: None,
                        last_seen: None,
                        seen_by: vec![],
                    })
                    .collect(),
                deny: vec![],
            },
        }
    }

    #[test]
    fn a_document_round_trips_through_yaml_and_diffs_name_each_change() {
        let a = doc(&["/usr/bin/smf", "/usr/bin/old"]);
        let text = serde_yaml::to_string(&a).unwrap();
        assert!(text.contains("kind: NfguardModel"), "{text}");
        assert!(
            text.contains("- kind: process\n    exe: /usr/bin/smf"),
            "{text}"
        );
        let back: Doc = serde_yaml::from_str(&text).unwrap();
        assert_eq!(back, a);
        back.check().unwrap();
        let b = doc(&["/usr/bin/smf", "/usr/bin/new"]);
        let d = diff(&a, &b);
        assert_eq!(
            render_diff(&d),
            "- process  (launcher) runs /usr/bin/old\n+ process  (launcher) runs /usr/bin/new\n"
        );
        let mut wrong = a.clone();
        wrong.kind = "Deployment".into();
        assert!(wrong.check().unwrap_err().contains("expected NfguardModel"));
    }
}
