//! The injector end to end: the real HTTPS server, real AdmissionReviews built from real NF
//! manifests, a real registry on loopback, the real binary for `inject` and start-up.

mod support;

use std::time::{Duration, Instant};

use hyper::StatusCode;
use nfguard_injector::Config;
use serde_json::{json, Value};
use support::*;

const SMF_ENTRYPOINT: &[&str] = &["/openair-smf/bin/entrypoint.sh"];
const SMF_CMD: &[&str] = &[
    "/openair-smf/bin/oai_smf",
    "-c",
    "/openair-smf/etc/smf.yaml",
    "-o",
];

fn config() -> Config {
    Config {
        registry_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// The OAI SMF pod (no `command`) with its image moved to the loopback registry.
fn smf_pod(registry: &str) -> Value {
    let text = fixture("oai-smf-pod.yaml").replace("public.ecr.aws", registry);
    serde_yaml::from_str(&text).unwrap()
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_of(c: &Value, name: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
        .map(|e| {
            e.get("value")
                .and_then(Value::as_str)
                .map(String::from)
                .unwrap_or_else(|| {
                    e["valueFrom"]["fieldRef"]["fieldPath"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
        })
}

fn sidecar(pod: &Value) -> &Value {
    let first = &pod["spec"]["initContainers"][0];
    assert_eq!(
        first["name"], "nfguard",
        "sidecar must be the first init container: {pod:#}"
    );
    first
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn launcher(rest: &[&str]) -> Vec<String> {
    let mut v = vec![LAUNCHER.to_string(), "--".to_string()];
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smf_without_command_gets_the_image_entrypoint_from_a_real_registry_and_its_cmd_as_args() {
    let reg = Registry::start().await;
    reg.push_image(
        "d9j1j8i6/oai-smf",
        "latest",
        Some(SMF_ENTRYPOINT),
        Some(SMF_CMD),
    )
    .await;
    let wh = start_webhook(config()).await;
    let pod = smf_pod(&reg.addr);
    let a = wh.admit(&pod).await;
    assert!(a.allowed() && a.patched, "{}", a.response);
    let p = &a.pod;

    // The sidecar: first init container, native sidecar, the contract's env and mounts.
    let s = sidecar(p);
    assert_eq!(s["restartPolicy"], "Always");
    assert_eq!(s["image"], "localhost/nfguard-sidecar:dev");
    assert_eq!(strings(&s["command"]), ["/usr/bin/nfguard", "sidecar"]);
    assert_eq!(
        strings(&s["startupProbe"]["exec"]["command"]),
        ["/usr/bin/nfguard", "health"]
    );
    assert_eq!(s["startupProbe"]["periodSeconds"], 1);
    assert_eq!(s["startupProbe"]["failureThreshold"], 30);
    // A stopped or stuck supervisor is restarted (docs/security.md).
    assert_eq!(
        strings(&s["livenessProbe"]["exec"]["command"]),
        ["/usr/bin/nfguard", "health", "--live"]
    );
    assert_eq!(
        s["volumeMounts"],
        json!([{"name": "nfguard", "mountPath": "/nfguard"}])
    );
    // Default: learn for 10m, then alert (the sidecar switches when the period ends).
    assert_eq!(env_of(s, "NFGUARD_MODE").unwrap(), "learn");
    assert_eq!(env_of(s, "NFGUARD_LEARNING_PERIOD").unwrap(), "10m");
    assert_eq!(env_of(s, "NFGUARD_EXEC_SESSIONS").unwrap(), "alert");
    assert_eq!(env_of(s, "NFGUARD_POD_NAME").unwrap(), "metadata.name");
    assert_eq!(
        env_of(s, "NFGUARD_POD_NAMESPACE").unwrap(),
        "metadata.namespace"
    );
    assert_eq!(env_of(s, "NFGUARD_POD_UID").unwrap(), "metadata.uid");
    assert_eq!(env_of(s, "NFGUARD_NODE_NAME").unwrap(), "spec.nodeName");
    assert_eq!(env_of(s, "NFGUARD_API_ADDR").unwrap(), "127.0.0.1:9901");
    let images: Value =
        serde_json::from_str(&env_of(s, "NFGUARD_CONTAINER_IMAGES").unwrap()).unwrap();
    assert_eq!(
        images,
        json!({"smf": format!("{}/d9j1j8i6/oai-smf:latest", reg.addr)})
    );
    assert_eq!(
        s["resources"],
        json!({"requests": {"cpu": "20m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}})
    );
    let sc = &s["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(
        sc["runAsUser"], 0,
        "the SMF runs as root, so must the supervisor"
    );

    // The NF: the launcher wraps the image's ENTRYPOINT, the image's CMD moves to args.
    let smf = container(p, "smf");
    assert_eq!(strings(&smf["command"]), launcher(SMF_ENTRYPOINT));
    assert_eq!(strings(&smf["args"]), SMF_CMD);
    assert_eq!(env_of(smf, "NFGUARD_CONTAINER").unwrap(), "smf");
    assert_eq!(
        env_of(smf, "NFGUARD_DATAGRAMS").unwrap(),
        "inspect",
        "datagrams are inspected unless nfguard.io/datagrams says off"
    );
    let mounts = smf["volumeMounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 3, "the pod's own mounts are kept");
    assert!(mounts.contains(&json!({"name": "nfguard", "mountPath": "/nfguard", "readOnly": true})));
    assert_eq!(
        smf["readinessProbe"],
        container(&pod, "smf")["readinessProbe"],
        "probes untouched"
    );

    // The pod.
    assert_eq!(p["spec"]["shareProcessNamespace"], true);
    assert!(p["spec"]["volumes"]
        .as_array()
        .unwrap()
        .contains(&json!({"name": "nfguard", "emptyDir": {}})));
    let status: Value = serde_json::from_str(
        p["metadata"]["annotations"]["nfguard.io/status"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["sidecarImage"], "localhost/nfguard-sidecar:dev");
    assert_eq!(status["containers"], json!(["smf"]));

    // Reinvocation (or the pod re-applied): nothing changes.
    let again = wh.admit(&a.pod).await;
    assert!(again.allowed() && !again.patched, "{}", again.response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_registry_with_an_internal_ca_is_read_over_tls() {
    // On loopback (test traffic stays on this machine): a loopback registry that speaks TLS
    // is read over TLS, and one whose certificate is not trusted is never downgraded to HTTP.
    let ca = TestCa::new("registry CA");
    let reg = Registry::start_tls("127.0.0.1", &ca).await;
    reg.push_image(
        "d9j1j8i6/oai-smf",
        "latest",
        Some(SMF_ENTRYPOINT),
        Some(SMF_CMD),
    )
    .await;
    let pod = smf_pod(&reg.addr);

    // Without the CA: the certificate is not trusted, the pod is not injected, and says why.
    let wh = start_webhook(config()).await;
    let a = wh.admit(&pod).await;
    assert!(a.allowed() && !a.patched, "{}", a.response);
    assert!(a.warnings().contains("TLS"), "{}", a.warnings());

    let wh = start_webhook(Config {
        registry_roots: vec![ca.cert.der().clone()],
        ..config()
    })
    .await;
    let a = wh.admit(&pod).await;
    assert!(a.patched, "{}", a.response);
    assert_eq!(
        strings(&container(&a.pod, "smf")["command"]),
        launcher(SMF_ENTRYPOINT)
    );
    assert_eq!(strings(&container(&a.pod, "smf")["args"]), SMF_CMD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_resolves_to_the_linux_amd64_image() {
    let reg = Registry::start().await;
    reg.push_index("d9j1j8i6/oai-smf", "v2.1", SMF_ENTRYPOINT, SMF_CMD)
        .await;
    let wh = start_webhook(config()).await;
    let pod = smf_pod(&reg.addr);
    let mut pod = pod;
    pod["spec"]["containers"][0]["image"] = json!(format!("{}/d9j1j8i6/oai-smf:v2.1", reg.addr));
    let a = wh.admit(&pod).await;
    assert!(a.patched, "{}", a.response);
    assert_eq!(
        strings(&container(&a.pod, "smf")["command"]),
        launcher(SMF_ENTRYPOINT)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_containers_keep_their_exact_command_and_args_and_probes() {
    let reg = Registry::start().await;
    // amf has args but no command: its image's ENTRYPOINT, its own args (the image CMD is
    // replaced by the pod's args, as Kubernetes does).
    reg.push_image(
        "nf/amf",
        "v2",
        Some(&["/usr/bin/amf"]),
        Some(&["--default"]),
    )
    .await;
    let wh = start_webhook(config()).await;
    let pod = fixture_json("nf-multi-container-pod.yaml", &reg.addr);
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    let p = &a.pod;
    let amf = container(p, "amf");
    assert_eq!(strings(&amf["command"]), launcher(&["/usr/bin/amf"]));
    assert_eq!(
        strings(&amf["args"]),
        ["--config", "/etc/amf/amf.yaml", "--log-level", "info"]
    );
    let exp = container(p, "exporter");
    assert_eq!(
        strings(&exp["command"]),
        launcher(&["/usr/bin/exporter", "--listen", ":9100"])
    );
    assert_eq!(
        strings(&exp["args"]),
        ["--target", "http://127.0.0.1:8080/metrics"]
    );
    assert_eq!(
        env_of(exp, "EXPORTER_MODE").unwrap(),
        "amf",
        "existing env kept"
    );
    assert_eq!(env_of(exp, "NFGUARD_CONTAINER").unwrap(), "exporter");
    let log = container(p, "logship");
    assert_eq!(strings(&log["command"]), launcher(&["/bin/logship"]));
    assert!(
        log.get("args").is_none(),
        "no args invented when the pod gives a command"
    );
    for name in ["amf", "exporter", "logship"] {
        let c = container(p, name);
        assert!(c["volumeMounts"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "nfguard", "mountPath": "/nfguard", "readOnly": true})));
        assert_eq!(c["livenessProbe"], container(&pod, name)["livenessProbe"]);
        assert_eq!(c["readinessProbe"], container(&pod, name)["readinessProbe"]);
    }
    assert_eq!(p["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    let s = sidecar(p);
    assert_eq!(s["securityContext"]["runAsUser"], 1001);
    assert_eq!(s["securityContext"]["runAsGroup"], 1001);
    assert_eq!(s["securityContext"]["runAsNonRoot"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_choose_mode_period_containers_entrypoint_and_exec_policy() {
    let wh = start_webhook(config()).await;
    let mut pod = fixture_json("nf-multi-container-pod.yaml", "registry.invalid");
    pod["metadata"]["annotations"] = json!({
        "nfguard.io/mode": "enforce",
        "nfguard.io/learning-period": "1h30m",
        "nfguard.io/containers": "amf, logship",
        "nfguard.io/entrypoint": "{\"amf\": [\"/opt/amf/bin/amf\", \"-v\"]}",
        "nfguard.io/exec-sessions": "deny",
    });
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.allowed() && a.patched, "{}", a.response);
    let p = &a.pod;
    let s = sidecar(p);
    assert_eq!(env_of(s, "NFGUARD_MODE").unwrap(), "enforce");
    assert_eq!(env_of(s, "NFGUARD_LEARNING_PERIOD").unwrap(), "1h30m");
    assert_eq!(env_of(s, "NFGUARD_EXEC_SESSIONS").unwrap(), "deny");
    let images: Value =
        serde_json::from_str(&env_of(s, "NFGUARD_CONTAINER_IMAGES").unwrap()).unwrap();
    assert_eq!(
        images.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["amf", "logship"]
    );
    // The annotated entrypoint is used without asking a registry (registry.invalid).
    assert_eq!(
        strings(&container(p, "amf")["command"]),
        launcher(&["/opt/amf/bin/amf", "-v"])
    );
    assert_eq!(
        strings(&container(p, "amf")["args"]),
        ["--config", "/etc/amf/amf.yaml", "--log-level", "info"]
    );
    assert_eq!(
        container(p, "exporter"),
        container(&pod, "exporter"),
        "not monitored: untouched"
    );
    assert_eq!(
        strings(&container(p, "logship")["command"]),
        launcher(&["/bin/logship"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_annotation_values_are_refused_naming_the_annotation_and_the_choices() {
    let wh = start_webhook(config()).await;
    let cases = [
        ("nfguard.io/mode", "block", "learn, alert, enforce"),
        ("nfguard.io/exec-sessions", "maybe", "alert, deny, allow"),
        ("nfguard.io/learning-period", "forever", "10m"),
        ("nfguard.io/containers", "nope", "no app container named"),
        ("nfguard.io/entrypoint", "/bin/sh -c x", "JSON array"),
    ];
    for (key, value, expected) in cases {
        let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
        pod["metadata"]["annotations"] = json!({ key: value });
        let a = wh.admit_with(&pod, "core5g", false).await;
        assert!(!a.allowed() && !a.patched, "{key}={value}: {}", a.response);
        let m = a.message();
        assert!(m.contains(key) && m.contains(expected), "{key}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_pods_excluded_namespaces_and_wrapped_commands_are_left_alone() {
    let wh = start_webhook(config()).await;
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    pod["metadata"]["labels"] = json!({"nfguard.io/inject": "false"});
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.allowed() && !a.patched, "{}", a.response);

    let pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    for ns in [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "nfguard-system",
    ] {
        let a = wh.admit_with(&pod, ns, false).await;
        assert!(a.allowed() && !a.patched, "{ns}: {}", a.response);
    }

    // A forged record does not skip injection; a foreign container named nfguard is a
    // conflict (refused in enforce mode).
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    pod["metadata"]["annotations"] = json!({"nfguard.io/status": "{\"version\":\"forged\"}"});
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    assert_eq!(sidecar(&a.pod)["image"], "localhost/nfguard-sidecar:dev");
    assert!(a.pod["metadata"]["annotations"]["nfguard.io/status"]
        .as_str()
        .unwrap()
        .contains(env!("CARGO_PKG_VERSION")));
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    pod["spec"]["initContainers"] =
        json!([{"name": "nfguard", "image": "evil/fake-nfguard", "restartPolicy": "Always"}]);
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(
        a.allowed() && !a.patched && a.warnings().contains("did not add"),
        "{}",
        a.response
    );
    pod["metadata"]["annotations"] =
        json!({"nfguard.io/mode": "enforce", "nfguard.io/status": "{}"});
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(!a.allowed(), "{}", a.response);

    // A command that already starts with the launcher is not wrapped twice.
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    pod["spec"]["containers"][0]["command"] = json!([LAUNCHER, "--", "/usr/local/bin/nrf"]);
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched);
    assert_eq!(
        strings(&a.pod["spec"]["containers"][0]["command"]),
        launcher(&["/usr/local/bin/nrf"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_pid_pods_are_refused_injection_and_denied_in_enforce_mode() {
    let wh = start_webhook(config()).await;
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    pod["spec"]["hostPID"] = json!(true);
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.allowed() && !a.patched);
    assert!(a.warnings().contains("hostPID"), "{}", a.response);
    pod["metadata"]["annotations"] = json!({"nfguard.io/mode": "enforce"});
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(!a.allowed());
    assert!(a.message().contains("hostPID"), "{}", a.response);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_entrypoint_admits_uninjected_or_denies_in_enforce_mode() {
    let reg = Registry::start().await; // empty: the image is unknown (404)
    let wh = start_webhook(config()).await;
    let pod = smf_pod(&reg.addr);
    let a = wh.admit(&pod).await;
    assert!(a.allowed() && !a.patched, "{}", a.response);
    assert!(
        a.warnings().contains("nfguard.io/entrypoint"),
        "{}",
        a.response
    );
    let mut pod = pod;
    pod["metadata"]["annotations"] = json!({"nfguard.io/mode": "enforce"});
    let a = wh.admit(&pod).await;
    assert!(!a.allowed(), "{}", a.response);
    assert!(
        a.message().contains("enforce") && a.message().contains("smf"),
        "{}",
        a.message()
    );

    // A registry that does not answer costs the pod its injection, within the bound.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut pod = smf_pod(&silent.local_addr().unwrap().to_string());
    pod["metadata"]["name"] = json!("slow");
    let wh = start_webhook(Config {
        registry_timeout: Duration::from_millis(500),
        ..config()
    })
    .await;
    let started = Instant::now();
    let a = wh.admit(&pod).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        a.allowed() && !a.patched && a.warnings().contains("timed out"),
        "{}",
        a.response
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pod_and_a_restricted_pod_are_injected_and_the_sidecar_stays_restricted() {
    let wh = start_webhook(config()).await;
    let job: Value = serde_yaml::from_str(
        fixture("nf-job.yaml")
            .replace("REGISTRY", "registry.invalid")
            .split("\n---\n")
            .next()
            .unwrap(),
    )
    .unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "subscriber-provision-", "labels": {"job-name": "subscriber-provision"}}, "spec": job["spec"]["template"]["spec"]});
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    assert_eq!(
        sidecar(&a.pod)["restartPolicy"],
        "Always",
        "a native sidecar does not keep the Job running"
    );
    assert_eq!(
        strings(&a.pod["spec"]["containers"][0]["args"]),
        ["--imsi", "001010000000001"]
    );

    let pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    // Pod Security restricted, container by container.
    let all: Vec<&Value> = a.pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(a.pod["spec"]["containers"].as_array().unwrap())
        .collect();
    for c in all {
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{c}");
        assert!(sc.get("privileged").is_none_or(|p| p == false));
        let non_root =
            sc["runAsNonRoot"] == true || a.pod["spec"]["securityContext"]["runAsNonRoot"] == true;
        assert!(non_root, "{c}");
        assert_ne!(sc["runAsUser"], 0);
    }
    assert_eq!(sidecar(&a.pod)["securityContext"]["runAsUser"], 10001);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_sidecar_mode_puts_the_sidecar_first_in_containers() {
    let wh = start_webhook(Config {
        classic_sidecar: true,
        ..config()
    })
    .await;
    let pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    let a = wh.admit_with(&pod, "core5g", false).await;
    let c = &a.pod["spec"]["containers"];
    assert_eq!(c[0]["name"], "nfguard");
    assert!(c[0].get("restartPolicy").is_none());
    assert_eq!(c[1]["name"], "nrf");
    assert_eq!(
        strings(&c[1]["command"]),
        launcher(&["/usr/local/bin/nrf", "-c", "/etc/nrf.yaml"])
    );
    assert!(a.pod["spec"].get("initContainers").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_answers_the_same_patch_and_is_counted_apart() {
    let wh = start_webhook(config()).await;
    let pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    let a = wh.admit_with(&pod, "core5g", true).await;
    assert!(a.patched);
    let m = wh.get("/metrics").await.text();
    assert!(m.contains("nfguard_injector_injections_total 0"), "{m}");
    assert!(
        m.contains("nfguard_injector_dry_run_injections_total 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_reason_never_a_panic() {
    let wh = start_webhook(config()).await;
    let good = serde_json::to_vec(&review(
        &fixture_json("nf-restricted-pod.yaml", "registry.invalid"),
        "core5g",
        false,
    ))
    .unwrap();

    let r = wh
        .post("application/json", good[..good.len() / 2].to_vec())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("not JSON"), "{}", r.text());

    let r = wh.post("text/plain", good.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("application/json"), "{}", r.text());

    let mut v1beta1: Value = serde_json::from_slice(&good).unwrap();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let r = wh
        .post("application/json", serde_json::to_vec(&v1beta1).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("v1beta1"), "{}", r.text());

    let r = wh
        .post(
            "application/json",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("no request"), "{}", r.text());

    let mut no_object: Value = serde_json::from_slice(&good).unwrap();
    no_object["request"]
        .as_object_mut()
        .unwrap()
        .remove("object");
    let r = wh
        .post("application/json", serde_json::to_vec(&no_object).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let v = r.json();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none());
    assert!(v["response"]["warnings"].to_string().contains("no object"));

    // A pod that is not a pod (containers is a string): admitted unchanged, with a warning.
    let mut odd: Value = serde_json::from_slice(&good).unwrap();
    odd["request"]["object"]["spec"]["containers"] = json!("nrf");
    let r = wh
        .post("application/json", serde_json::to_vec(&odd).unwrap())
        .await;
    let v = r.json();
    assert_eq!(v["response"]["allowed"], true);
    assert!(v["response"].get("patch").is_none());
    assert!(
        v["response"]["warnings"]
            .to_string()
            .contains("cannot read"),
        "{v}"
    );

    // 10,000 containers: answered, quickly, with a patch that applies.
    let mut big = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    let c0 = big["spec"]["containers"][0].clone();
    big["spec"]["containers"] = Value::Array(
        (0..10_000)
            .map(|i| {
                let mut c = c0.clone();
                c["name"] = json!(format!("c{i}"));
                c
            })
            .collect(),
    );
    let started = Instant::now();
    let a = wh.admit_with(&big, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(a.pod["spec"]["containers"][9_999]["command"][0], LAUNCHER);

    let m = wh.get("/metrics").await.text();
    assert!(m.contains("nfguard_injector_errors_total 4"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mb_body_is_refused_fast_without_being_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let wh = start_webhook(config()).await;
    // Declared length: refused before the body is read.
    let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(wh.tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let started = Instant::now();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 52428800\r\n\r\n{\"apiVersion\":").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Chunked, no length: cut at the limit while reading.
    let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(wh.tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n").await.unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    let (mut rd, mut wr) = tokio::io::split(tls);
    let writer = tokio::spawn(async move {
        for _ in 0..50 {
            if wr
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
            if wr.write_all(b"\r\n").await.is_err() {
                return;
            }
        }
        let _ = wr.write_all(b"0\r\n\r\n").await;
    });
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
        .await
        .expect("no answer")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    writer.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_answer() {
    let wh = start_webhook(config()).await;
    assert_eq!(wh.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(wh.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(wh.get("/nope").await.status, StatusCode::NOT_FOUND);
    let mut pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    wh.admit_with(&pod, "core5g", false).await;
    pod["metadata"]["labels"] = json!({"nfguard.io/inject": "false"});
    wh.admit_with(&pod, "core5g", false).await;
    let m = wh.get("/metrics").await;
    assert!(m.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let m = m.text();
    for line in [
        "nfguard_injector_requests_total 2",
        "nfguard_injector_injections_total 1",
        "nfguard_injector_skips_total{reason=\"opted_out\"} 1",
        "nfguard_injector_admission_duration_seconds_count 2",
        "# TYPE nfguard_injector_admission_duration_seconds histogram",
    ] {
        assert!(m.contains(line), "missing {line:?} in\n{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_to_new_connections_and_old_ones_keep_working() {
    use http_body_util::{BodyExt, Full};
    let wh = start_webhook(config()).await;
    // An open HTTP/1.1 connection under the first certificate.
    let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(wh.tls.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Full<hyper::body::Bytes>>(
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);

    let ca2 = TestCa::new("rotated CA");
    let (cert, key) = ca2.leaf();
    std::fs::write(&wh.key_path, key).unwrap();
    std::fs::write(&wh.cert_path, cert).unwrap();
    let started = Instant::now();
    loop {
        let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        if tokio_rustls::TlsConnector::from(ca2.client_config())
            .connect(name, tcp)
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "new certificate not served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let req = hyper::Request::get("/healthz")
        .header("host", "localhost")
        .body(Full::default())
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .expect("the open connection was dropped");
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_may_speak_http2() {
    use http_body_util::{BodyExt, Full};
    let wh = start_webhook(config()).await;
    let mut tls = (*wh.tls).clone();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(wh.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let pod = fixture_json("nf-restricted-pod.yaml", "registry.invalid");
    let body = serde_json::to_vec(&review(&pod, "core5g", false)).unwrap();
    let req = hyper::Request::post(format!("https://localhost:{}/mutate", wh.addr.port()))
        .header("content-type", "application/json")
        .body(Full::new(hyper::body::Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(v["response"]["patch"].is_string(), "{v}");
}

#[test]
fn the_webhook_configuration_selects_what_the_injector_expects() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/core/webhook.yaml");
    let v: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let w = &v["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Ignore");
    assert_eq!(w["sideEffects"], "None");
    assert_eq!(w["timeoutSeconds"], 10);
    assert_eq!(w["admissionReviewVersions"], json!(["v1"]));
    assert_eq!(w["reinvocationPolicy"], "IfNeeded");
    assert_eq!(w["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(w["rules"][0]["operations"], json!(["CREATE"]));
    assert_eq!(w["rules"][0]["resources"], json!(["pods"]));
    let ns = w["namespaceSelector"]["matchExpressions"].to_string();
    assert!(ns.contains("nfguard.io/inject") && ns.contains("enabled"));
    for excluded in nfguard_injector::config::EXCLUDED_NAMESPACES {
        assert!(
            ns.contains(excluded),
            "{excluded} not excluded by the namespaceSelector"
        );
    }
    let obj = w["objectSelector"]["matchExpressions"][0].clone();
    assert_eq!(
        obj,
        json!({"key": "nfguard.io/inject", "operator": "NotIn", "values": ["false"]})
    );
    assert_eq!(
        v["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
        "nfguard-system/nfguard-injector"
    );
    // The exec rule: same namespaces, CONNECT on exec and attach, UPDATE on debug containers.
    let e = &v["webhooks"][1];
    assert_eq!(e["failurePolicy"], "Ignore");
    assert_eq!(e["clientConfig"]["service"]["path"], "/mutate");
    assert_eq!(e["rules"][0]["operations"], json!(["CONNECT"]));
    assert_eq!(
        e["rules"][0]["resources"],
        json!(["pods/exec", "pods/attach"])
    );
    assert_eq!(e["rules"][1]["operations"], json!(["UPDATE"]));
    assert_eq!(
        e["rules"][1]["resources"],
        json!(["pods/ephemeralcontainers"])
    );
    assert_eq!(e["namespaceSelector"], w["namespaceSelector"]);
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/core/rbac.yaml");
    let rbac = std::fs::read_to_string(rbac).unwrap();
    let role: Value = serde_yaml::from_str(rbac.split("\n---\n").next().unwrap()).unwrap();
    assert_eq!(
        role["rules"],
        json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    );
}

// ---------- the binary ----------

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_nfguard-injector"))
}

#[test]
fn serve_with_a_missing_certificate_exits_64_with_one_clear_line() {
    let out = bin()
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/tls.crt"), "{err}");
}

fn kinds(yaml: &str) -> Vec<String> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| v["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_f_on_the_fixtures_gives_yaml_of_the_same_kinds_with_the_same_code_path() {
    let reg = Registry::start().await;
    reg.push_image(
        "d9j1j8i6/oai-smf",
        "latest",
        Some(SMF_ENTRYPOINT),
        Some(SMF_CMD),
    )
    .await;
    reg.push_image(
        "d9j1j8i6/oai-spgwu-tiny",
        "latest",
        Some(&["/openair-spgwu-tiny/bin/entrypoint.sh"]),
        Some(&[
            "/openair-spgwu-tiny/bin/oai_spgwu",
            "-c",
            "/openair-spgwu-tiny/etc/spgw_u.conf",
            "-o",
        ]),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut all = String::new();
    for f in [
        "oai-smf-deployment.yaml",
        "oai-spgwu-deployment.yaml",
        "oai-smf-pod.yaml",
        "nf-job.yaml",
    ] {
        all.push_str("---\n");
        all.push_str(
            &fixture(f)
                .replace("public.ecr.aws", &reg.addr)
                .replace("REGISTRY", "registry.invalid"),
        );
        all.push('\n');
    }
    let input = dir.path().join("all.yaml");
    std::fs::write(&input, &all).unwrap();
    let addr = reg.addr.clone();
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["inject", "-f"])
            .arg(&input)
            .args(["--insecure-registry", &addr])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert_eq!(kinds(&yaml), kinds(&all));
    assert_eq!(
        kinds(&yaml),
        [
            "Deployment",
            "Deployment",
            "Pod",
            "Job",
            "CronJob",
            "Service"
        ]
    );
    let docs: Vec<Value> = {
        use serde::Deserialize;
        serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| Value::deserialize(d).unwrap())
            .collect()
    };
    let smf = &docs[0]["spec"]["template"];
    assert_eq!(smf["spec"]["initContainers"][0]["name"], "nfguard");
    assert_eq!(
        strings(&smf["spec"]["containers"][0]["command"]),
        launcher(SMF_ENTRYPOINT)
    );
    assert_eq!(strings(&smf["spec"]["containers"][0]["args"]), SMF_CMD);
    let upf = &docs[1]["spec"]["template"];
    assert_eq!(upf["spec"]["initContainers"][0]["name"], "nfguard");
    assert_eq!(
        upf["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
        docs[1]["spec"]["template"]["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
    );
    assert_eq!(docs[2]["spec"]["initContainers"][0]["name"], "nfguard");
    assert_eq!(
        docs[3]["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "nfguard"
    );
    assert_eq!(
        docs[4]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["name"],
        "nfguard"
    );
    assert!(docs[5]["spec"].get("initContainers").is_none());

    // Same code path: injecting the output again changes nothing.
    let again_in = dir.path().join("again.yaml");
    std::fs::write(&again_in, &yaml).unwrap();
    let addr = reg.addr.clone();
    let again = tokio::task::spawn_blocking(move || {
        bin()
            .args(["inject", "-f"])
            .arg(&again_in)
            .args(["--insecure-registry", &addr])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), yaml);

    // stdin, and a refusal names the document.
    let mut child = bin()
        .args(["inject", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let bad = fixture("nf-restricted-pod.yaml").replace(
            "name: nrf-0",
            "name: nrf-0\n  annotations: {nfguard.io/mode: block}",
        );
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bad.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("document 1") && err.contains("nfguard.io/mode"),
        "{err}"
    );
}

// ---------- exec sessions (pods/exec, pods/attach, pods/ephemeralcontainers) ----------

/// The AMF pod as the injector wrote it and the kubelet runs it: injected through the webhook
/// (entrypoint from the annotation, amf and exporter monitored), then given a name, a
/// namespace and a status with the sidecar `ready`.
async fn running_injected_amf(policy: Option<&str>, sidecar_ready: bool) -> Value {
    let mut pod = fixture_json("nf-multi-container-pod.yaml", "127.0.0.1:1");
    pod["metadata"]["annotations"]["nfguard.io/entrypoint"] = json!(r#"{"amf": ["/usr/bin/amf"]}"#);
    pod["metadata"]["annotations"]["nfguard.io/containers"] = json!("amf,exporter");
    if let Some(p) = policy {
        pod["metadata"]["annotations"]["nfguard.io/exec-sessions"] = json!(p);
    }
    let wh = start_webhook(config()).await;
    let a = wh.admit_with(&pod, "core5g", false).await;
    assert!(a.patched, "{}", a.response);
    let mut pod = a.pod;
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("amf-0");
    pod["metadata"]["namespace"] = json!("core5g");
    let running =
        |name: &str, ready: bool| json!({"name": name, "ready": ready, "state": {"running": {}}});
    pod["status"] = json!({
        "phase": "Running",
        "initContainerStatuses": [running("nfguard", sidecar_ready)],
        "containerStatuses": [running("amf", true), running("exporter", true), running("logship", true)],
    });
    pod
}

fn exec_opts(container: &str, command: &[&str]) -> Value {
    json!({"kind": "PodExecOptions", "apiVersion": "v1", "stdin": true, "stdout": true,
           "stderr": false, "tty": true, "container": container, "command": command})
}

async fn exec_webhook(pods: Vec<Value>) -> (Webhook, PodApi) {
    let api = PodApi::start(pods).await;
    let wh = start_webhook(Config {
        api_server: Some(api.config()),
        ..config()
    })
    .await;
    (wh, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_into_an_injected_pod_runs_under_the_launcher_naming_the_user_and_session() {
    let (wh, api) = exec_webhook(vec![running_injected_amf(None, true).await]).await;
    let uid = "b0a4c1e2-0000-4000-8000-000000000001";
    let review = exec_review(
        uid,
        "core5g",
        "amf-0",
        "alice@example.com",
        exec_opts("amf", &["sh", "-c", "ps -ef"]),
    );
    let (resp, opts) = wh.admit_session(&review).await;
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(
        strings(&opts["command"]),
        [
            LAUNCHER,
            "--container",
            "amf",
            "--session",
            uid,
            "--user",
            "alice@example.com",
            "--",
            "sh",
            "-c",
            "ps -ef"
        ]
    );
    // Nothing else of the session changes (stdin, tty, container).
    assert_eq!(
        (
            opts["stdin"].clone(),
            opts["tty"].clone(),
            opts["container"].clone()
        ),
        (json!(true), json!(true), json!("amf"))
    );
    assert_eq!(
        api.asked.lock().unwrap().as_slice(),
        ["/api/v1/namespaces/core5g/pods/amf-0"]
    );

    // Another request is another session; the second monitored container is wrapped too.
    let uid2 = "b0a4c1e2-0000-4000-8000-000000000002";
    let review = exec_review(
        uid2,
        "core5g",
        "amf-0",
        "system:serviceaccount:ops:debugger",
        exec_opts("exporter", &["cat", "/etc/passwd"]),
    );
    let (_, opts) = wh.admit_session(&review).await;
    assert_eq!(
        strings(&opts["command"]),
        [
            LAUNCHER,
            "--container",
            "exporter",
            "--session",
            uid2,
            "--user",
            "system:serviceaccount:ops:debugger",
            "--",
            "cat",
            "/etc/passwd"
        ]
    );
    // An exec that is already wrapped is not wrapped twice.
    let already: Vec<String> = strings(&opts["command"]);
    let already: Vec<&str> = already.iter().map(String::as_str).collect();
    let (resp, opts2) = wh
        .admit_session(&exec_review(
            "u3",
            "core5g",
            "amf-0",
            "bob",
            exec_opts("exporter", &already),
        ))
        .await;
    assert!(resp.get("patch").is_none(), "{resp}");
    assert_eq!(strings(&opts2["command"]), already);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_into_a_pod_nfguard_does_not_protect_is_left_alone() {
    let mut plain = fixture_json("nf-multi-container-pod.yaml", "127.0.0.1:1");
    plain["metadata"]["name"] = json!("plain-0");
    let (wh, _api) = exec_webhook(vec![plain, running_injected_amf(None, true).await]).await;
    // A pod that was never injected.
    let (resp, opts) = wh
        .admit_session(&exec_review(
            "u1",
            "core5g",
            "plain-0",
            "alice",
            exec_opts("amf", &["sh"]),
        ))
        .await;
    assert_eq!(resp["allowed"], true);
    assert!(
        resp.get("patch").is_none() && resp.get("warnings").is_none(),
        "{resp}"
    );
    assert_eq!(strings(&opts["command"]), ["sh"]);
    // A container of an injected pod that is not monitored, and the sidecar itself.
    for c in ["logship", "nfguard"] {
        let (resp, opts) = wh
            .admit_session(&exec_review(
                "u2",
                "core5g",
                "amf-0",
                "alice",
                exec_opts(c, &["sh"]),
            ))
            .await;
        assert_eq!(resp["allowed"], true);
        assert!(resp.get("patch").is_none(), "{resp}");
        assert!(
            resp["warnings"][0]
                .as_str()
                .unwrap()
                .contains("not monitored"),
            "{resp}"
        );
        assert_eq!(strings(&opts["command"]), ["sh"]);
    }
    // A pod the API server does not know (deleted meanwhile): allowed, unchanged, says why.
    let (resp, _) = wh
        .admit_session(&exec_review(
            "u4",
            "core5g",
            "gone-0",
            "alice",
            exec_opts("amf", &["sh"]),
        ))
        .await;
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none());
    assert!(
        resp["warnings"][0].as_str().unwrap().contains("404"),
        "{resp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_launcher_is_missing_or_whose_sidecar_is_down_is_not_broken() {
    // The record says amf is monitored, but the container does not run the launcher (edited
    // by hand after injection): the launcher may not be in that container at all.
    let mut edited = running_injected_amf(None, true).await;
    edited["metadata"]["name"] = json!("amf-edited");
    for c in edited["spec"]["containers"].as_array_mut().unwrap() {
        if c["name"] == "amf" {
            c["command"] = json!(["/usr/bin/amf"]);
        }
    }
    let mut down = running_injected_amf(None, false).await;
    down["metadata"]["name"] = json!("amf-down");
    let mut down_deny = running_injected_amf(Some("deny"), false).await;
    down_deny["metadata"]["name"] = json!("amf-deny");
    let (wh, _api) = exec_webhook(vec![edited, down, down_deny]).await;
    for (pod, why) in [
        ("amf-edited", "does not run under the launcher"),
        ("amf-down", "not ready"),
    ] {
        let (resp, opts) = wh
            .admit_session(&exec_review(
                "u1",
                "core5g",
                pod,
                "alice",
                exec_opts("amf", &["sh"]),
            ))
            .await;
        assert_eq!(resp["allowed"], true, "{resp}");
        assert!(resp.get("patch").is_none(), "{resp}");
        assert!(
            resp["warnings"][0].as_str().unwrap().contains(why),
            "{resp}"
        );
        assert_eq!(strings(&opts["command"]), ["sh"]);
    }
    // Under exec-sessions=deny an unmonitored session is refused instead.
    let (resp, _) = wh
        .admit_session(&exec_review(
            "u2",
            "core5g",
            "amf-deny",
            "alice",
            exec_opts("amf", &["sh"]),
        ))
        .await;
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403);
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .contains("exec-sessions=deny"),
        "{resp}"
    );

    // No API server configured: every session passes unchanged, with the reason.
    let wh = start_webhook(config()).await;
    let (resp, opts) = wh
        .admit_session(&exec_review(
            "u3",
            "core5g",
            "amf-0",
            "alice",
            exec_opts("amf", &["sh"]),
        ))
        .await;
    assert_eq!(resp["allowed"], true);
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no API server"),
        "{resp}"
    );
    assert_eq!(strings(&opts["command"]), ["sh"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_debug_containers_are_allowed_with_a_warning_or_refused_under_deny() {
    let alert = running_injected_amf(None, true).await;
    let mut deny = running_injected_amf(Some("deny"), true).await;
    deny["metadata"]["name"] = json!("amf-deny");
    let (wh, _api) = exec_webhook(vec![alert.clone(), deny.clone()]).await;
    let attach = json!({"kind": "PodAttachOptions", "apiVersion": "v1", "stdin": true, "stdout": true, "tty": true, "container": "amf"});
    let (resp, _) = wh
        .admit_session(&exec_review(
            "a1",
            "core5g",
            "amf-0",
            "alice",
            attach.clone(),
        ))
        .await;
    assert_eq!(resp["allowed"], true);
    assert!(resp.get("patch").is_none());
    let (resp, _) = wh
        .admit_session(&exec_review("a2", "core5g", "amf-deny", "alice", attach))
        .await;
    assert_eq!(resp["allowed"], false, "{resp}");

    // kubectl debug: UPDATE pods/ephemeralcontainers carries the whole pod.
    let debug = |pod: &Value| {
        let mut new = pod.clone();
        new["spec"]["ephemeralContainers"] =
            json!([{"name": "debugger-x1", "image": "busybox", "targetContainerName": "amf"}]);
        let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
        let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "d1", "kind": gvk, "resource": gvr, "subResource": "ephemeralcontainers",
            "name": "amf-0", "namespace": "core5g", "operation": "UPDATE",
            "userInfo": {"username": "alice"}, "object": new, "oldObject": pod, "dryRun": false}})
    };
    let (resp, _) = wh.admit_session(&debug(&alert)).await;
    assert_eq!(resp["allowed"], true);
    assert!(
        resp["warnings"][0]
            .as_str()
            .unwrap()
            .contains("debugger-x1"),
        "{resp}"
    );
    let (resp, _) = wh.admit_session(&debug(&deny)).await;
    assert_eq!(resp["allowed"], false, "{resp}");
}
