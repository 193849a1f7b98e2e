//! The Kubernetes manifests in deploy/kubernetes: every document parses; the broker pods run
//! as a non-root user with a read-only root file system, no privilege escalation, no
//! capabilities and the runtime's seccomp profile; every PALISADE_* variable they set is a real
//! configuration key (or PALISADE_ADMIN_PASSWORD); each peer Certificate names its broker the
//! way the broker reads it (URI SAN palisade://broker/<ordinal + 1>). Then deploy/check.sh runs
//! the Kubernetes schema validator and the policy linter on them, and on a broken copy
//! (privileged containers), which must fail.

mod common;

use std::path::Path;
use std::process::Command;

use common::manifests::{broker_env, documents, manifests_dir, of_kind, sequence};
use palisade::config::{load_with_env_and_hostname, ENV_PREFIX, KEYS};
use palisade::transport::certs::BROKER_URI_PREFIX;
use serde_yaml::Value;

/// The variable names a config key is set by: `PALISADE_<SECTION>_<KEY>`.
fn config_variables() -> Vec<String> {
    KEYS.iter()
        .map(|(section, key)| format!("{ENV_PREFIX}{section}_{key}").to_ascii_uppercase())
        .collect()
}

fn assert_container_is_locked_down(container: &Value) {
    let name = &container["name"];
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"], false, "{name:?}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{name:?}");
    assert_ne!(security["privileged"], true, "{name:?}");
    assert_ne!(security["runAsNonRoot"], false, "{name:?}");
    let dropped: Vec<&str> = sequence(&security["capabilities"]["drop"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(dropped, ["ALL"], "{name:?}");
    assert!(
        sequence(&security["capabilities"]["add"]).is_empty(),
        "{name:?}"
    );
    for limit in ["cpu", "memory"] {
        assert!(
            !container["resources"]["limits"][limit].is_null(),
            "{name:?} {limit}"
        );
        assert!(
            !container["resources"]["requests"][limit].is_null(),
            "{name:?} {limit}"
        );
    }
}

#[test]
fn the_statefulset_runs_locked_down_brokers_with_real_config_keys() {
    let documents = documents();
    let sets = of_kind(&documents, "StatefulSet");
    assert_eq!(sets.len(), 1);
    let set = sets[0];
    assert_eq!(set["spec"]["replicas"], 3);
    assert_eq!(set["spec"]["podManagementPolicy"], "Parallel");
    assert!(!sequence(&set["spec"]["volumeClaimTemplates"]).is_empty());
    let pod = &set["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let user = pod["securityContext"]["runAsUser"].as_u64().expect("uid");
    assert!(user >= 10_000, "a high numeric uid: {user}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    let containers = sequence(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    for container in containers.iter().chain(sequence(&pod["initContainers"])) {
        assert_container_is_locked_down(container);
    }
    let broker = &containers[0];
    assert_eq!(broker["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(broker["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    assert_eq!(broker["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(broker["livenessProbe"]["httpGet"]["scheme"], "HTTPS");
    let pause = broker["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("preStop pause");

    // Every PALISADE_* variable is a config key; the drain fits in the grace period.
    let known = config_variables();
    let mut variables: Vec<(String, String)> = sequence(&broker["env"])
        .iter()
        .map(|entry| {
            let value = entry["value"].as_str().unwrap_or_default().to_string();
            (entry["name"].as_str().expect("name").to_string(), value)
        })
        .collect();
    let config_maps = of_kind(&documents, "ConfigMap");
    for (name, value) in config_maps[0]["data"].as_mapping().expect("data") {
        let value = value.as_str().expect("string value").to_string();
        variables.push((name.as_str().expect("name").to_string(), value));
    }
    let mut drain_ms = None;
    for (name, value) in &variables {
        if name.starts_with(ENV_PREFIX) && name != "PALISADE_ADMIN_PASSWORD" {
            assert!(known.contains(name), "{name} is no configuration key");
        }
        if name == "PALISADE_CLUSTER_DRAIN_TIMEOUT_MS" {
            drain_ms = Some(value.parse::<u64>().expect("drain timeout"));
        }
    }
    assert!(variables
        .iter()
        .any(|(name, _)| name == "PALISADE_ADMIN_PASSWORD"));
    let drain_s = drain_ms.expect("the drain timeout is set").div_ceil(1000);
    // The pause, the drain, then at most 5 s of requests in flight and 5 s of forwarded ones.
    assert!(
        grace >= pause + drain_s + 10,
        "grace {grace} s < {pause} + {drain_s} + 10 s"
    );
}

/// Loads the configuration pod `pod` gets from the manifests (its host name is the pod name).
fn load_pod(pod: &str) -> palisade::config::Config {
    let hostname = pod.to_string();
    load_with_env_and_hostname(None, broker_env(pod), move || Ok(hostname))
        .unwrap_or_else(|error| panic!("{pod}: {error}"))
}

#[test]
fn one_pod_template_founds_with_the_listed_ordinals_and_joins_with_the_next() {
    for ordinal in 0..3u64 {
        let config = load_pod(&format!("palisade-{ordinal}"));
        assert_eq!(config.broker.id, ordinal + 1);
        assert!(!config.cluster.join, "palisade-{ordinal} founds");
    }
    // `kubectl scale --replicas=4`: the fourth pod, same template, starts as a joiner.
    let fourth = load_pod("palisade-3");
    assert_eq!(fourth.broker.id, 4);
    assert!(fourth.cluster.join, "palisade-3 is not a founder: it joins");
    let advertised = fourth
        .peer
        .as_ref()
        .expect("peer section")
        .advertise
        .to_string();
    assert_eq!(
        advertised,
        "palisade-3.palisade.messaging.svc.cluster.local:9441"
    );
    // Negative control: without the ConfigMap's join_when_unlisted the fourth pod cannot start.
    let mut variables = broker_env("palisade-3");
    variables.retain(|(name, _)| name != "PALISADE_CLUSTER_JOIN_WHEN_UNLISTED");
    let error = load_with_env_and_hostname(None, variables, || Ok("palisade-3".to_string()))
        .expect_err("an unlisted founder");
    assert_eq!(error.key(), Some("cluster.brokers"), "{error}");
}

#[test]
fn services_budget_and_network_policy_match_the_peer_and_client_ports() {
    let documents = documents();
    let services = of_kind(&documents, "Service");
    let headless = services
        .iter()
        .find(|service| service["spec"]["clusterIP"] == "None")
        .expect("a headless service");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    assert_eq!(services.len(), 2, "headless and client services");
    let budgets = of_kind(&documents, "PodDisruptionBudget");
    assert_eq!(budgets[0]["spec"]["maxUnavailable"], 1);
    let policy = of_kind(&documents, "NetworkPolicy")[0];
    let peer_rule = sequence(&policy["spec"]["ingress"])
        .iter()
        .find(|rule| {
            sequence(&rule["ports"])
                .iter()
                .any(|port| port["port"] == 9441)
        })
        .expect("a rule for the peer port");
    let sources = sequence(&peer_rule["from"]);
    assert_eq!(sources.len(), 1, "only broker pods");
    assert_eq!(
        sources[0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "palisade"
    );
}

#[test]
fn each_peer_certificate_names_its_broker_and_pod_and_https_ones_do_not() {
    let documents = documents();
    let certificates = of_kind(&documents, "Certificate");
    let mut peers = 0;
    for certificate in &certificates {
        let name = certificate["metadata"]["name"].as_str().expect("name");
        let spec = &certificate["spec"];
        let usages: Vec<&str> = sequence(&spec["usages"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let uris: Vec<&str> = sequence(&spec["uris"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let dns: Vec<&str> = sequence(&spec["dnsNames"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let Some(pod) = name.strip_suffix("-peer").or(name.strip_suffix("-https")) else {
            assert_eq!(
                spec["isCA"], true,
                "{name}: only CAs besides broker certificates"
            );
            continue;
        };
        let ordinal: u64 = pod
            .strip_prefix("palisade-")
            .expect("pod")
            .parse()
            .expect("ordinal");
        assert!(dns.contains(&format!("{pod}.palisade.messaging.svc.cluster.local").as_str()));
        if name.ends_with("-peer") {
            peers += 1;
            assert_eq!(
                uris,
                [format!("{BROKER_URI_PREFIX}{}", ordinal + 1)],
                "{name}"
            );
            assert!(usages.contains(&"client auth") && usages.contains(&"server auth"));
            assert_eq!(spec["issuerRef"]["name"], "palisade-peer-ca", "{name}");
        } else {
            assert!(
                uris.is_empty(),
                "{name}: an HTTPS certificate names no broker"
            );
            assert_eq!(usages, ["digital signature", "server auth"], "{name}");
            assert_eq!(spec["issuerRef"]["name"], "palisade-https-ca", "{name}");
        }
    }
    assert_eq!(peers, 3);
}

/// `text` without ANSI colour sequences (checkov colours its report even into a pipe).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut characters = text.chars();
    while let Some(character) = characters.next() {
        if character == '\u{1b}' {
            for inner in characters.by_ref() {
                if inner.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(character);
        }
    }
    plain
}

fn check(dir: &Path) -> std::process::Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/check.sh"))
        .arg(dir)
        .output()
        .expect("run deploy/check.sh")
}

#[test]
fn the_schema_validator_and_policy_linter_pass_and_catch_a_privileged_pod() {
    let output = check(&manifests_dir());
    assert!(
        output.status.success(),
        "deploy/check.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Negative control: the same manifests with privileged containers.
    // Not under a hidden directory (such as /tmp/.tmpXXXX): checkov skips those.
    let broken = tempfile::Builder::new()
        .prefix("deploy-check-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tempdir");
    for entry in std::fs::read_dir(manifests_dir()).expect("manifests") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let text = text.replace("privileged: false", "privileged: true");
        std::fs::write(broken.path().join(path.file_name().expect("name")), text).expect("write");
    }
    let output = check(broken.path());
    let report = without_colours(&String::from_utf8_lossy(&output.stdout));
    assert!(
        !output.status.success(),
        "a privileged pod passed:\n{report}"
    );
    assert!(
        report.contains("CKV_K8S_16"),
        "the privileged check failed:\n{report}"
    );
}
