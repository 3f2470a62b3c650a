//! Offline injection (`nfguard-injector inject -f FILE`), like `istioctl kube-inject`: the
//! same decision and the same patch as the webhook, applied to the pod template of each
//! workload in a YAML stream, so that what a user reviews is what the cluster would run.

use serde::Deserialize;
use serde_json::Value;

use crate::mutate::Outcome;
use crate::review::Injector;

/// Why a YAML stream could not be injected.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("document {doc}: not valid YAML: {source}")]
    Yaml {
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {doc} ({kind} {name}): refused: {message}")]
    Denied {
        doc: usize,
        kind: String,
        name: String,
        message: String,
    },
    #[error("document {doc} ({kind} {name}): patch does not apply: {source}")]
    Patch {
        doc: usize,
        kind: String,
        name: String,
        #[source]
        source: json_patch::PatchError,
    },
    #[error("document {doc}: cannot write YAML: {source}")]
    Write {
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
}

/// Where the pod template sits in each workload kind (JSON pointer; "" is the object itself).
pub fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job"
        | "ReplicationController" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The result of injecting a YAML stream.
#[derive(Debug, Default)]
pub struct Injected {
    pub yaml: String,
    /// One line per document not injected or injected with a caveat.
    pub warnings: Vec<String>,
}

impl Injector {
    /// Injects one object in place (recursing into `List` items).
    async fn inject_object(
        &self,
        obj: &mut Value,
        doc: usize,
        warnings: &mut Vec<String>,
    ) -> Result<(), InjectError> {
        let kind = obj["kind"].as_str().unwrap_or("").to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .or(obj["metadata"]["generateName"].as_str())
            .unwrap_or("")
            .to_string();
        if kind == "List" {
            if let Some(items) = obj.get_mut("items").and_then(Value::as_array_mut) {
                for item in items {
                    Box::pin(self.inject_object(item, doc, warnings)).await?;
                }
            }
            return Ok(());
        }
        let Some(pointer) = template_pointer(&kind) else {
            return Ok(());
        };
        let namespace = obj["metadata"]["namespace"].as_str().map(String::from);
        let Some(target) = obj.pointer_mut(pointer) else {
            warnings.push(format!(
                "document {doc} ({kind} {name}): no pod template at {pointer}"
            ));
            return Ok(());
        };
        match self.decide(target, namespace.as_deref()).await {
            Outcome::Inject {
                patch, warnings: w, ..
            } => {
                json_patch::patch(target, &patch.0).map_err(|source| InjectError::Patch {
                    doc,
                    kind: kind.clone(),
                    name: name.clone(),
                    source,
                })?;
                warnings.extend(
                    w.into_iter()
                        .map(|w| format!("document {doc} ({kind} {name}): {w}")),
                );
            }
            Outcome::Skip {
                reason,
                warnings: w,
            } => {
                warnings.push(format!(
                    "document {doc} ({kind} {name}): not injected ({})",
                    reason.as_str()
                ));
                warnings.extend(
                    w.into_iter()
                        .map(|w| format!("document {doc} ({kind} {name}): {w}")),
                );
            }
            Outcome::Deny { message } => {
                return Err(InjectError::Denied {
                    doc,
                    kind,
                    name,
                    message,
                });
            }
        }
        Ok(())
    }

    /// Injects every workload of a multi-document YAML stream; other kinds pass unchanged.
    pub async fn inject_yaml(&self, input: &str) -> Result<Injected, InjectError> {
        let mut out = Injected::default();
        let mut docs = Vec::new();
        for (i, de) in serde_yaml::Deserializer::from_str(input).enumerate() {
            let doc = i + 1;
            let mut value =
                Value::deserialize(de).map_err(|source| InjectError::Yaml { doc, source })?;
            if value.is_null() {
                continue;
            }
            self.inject_object(&mut value, doc, &mut out.warnings)
                .await?;
            docs.push(
                serde_yaml::to_string(&value)
                    .map_err(|source| InjectError::Write { doc, source })?,
            );
        }
        out.yaml = docs.join("---\n");
        Ok(out)
    }
}
