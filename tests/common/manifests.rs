//! The environment Kubernetes gives a broker pod of `deploy/kubernetes/`: the ConfigMap's
//! variables (`envFrom`) and then the broker container's `env` entries, with `$(POD_NAME)` and
//! `$(POD_NAMESPACE)` expanded as the kubelet does. Entries filled from the cluster at run time
//! (`valueFrom`: the pod's name and namespace, the admin Secret) are given by the caller.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// The Kubernetes namespace the manifests deploy into.
pub const NAMESPACE: &str = "messaging";
/// The StatefulSet's headless service: pods are `<pod>.<SERVICE>.<namespace>.svc.cluster.local`.
pub const SERVICE: &str = "palisade";

pub fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of every manifest, with the file it came from.
pub fn documents() -> Vec<(String, Value)> {
    let mut found = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(manifests_dir())
        .expect("deploy/kubernetes")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no manifests");
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = serde::Deserialize::deserialize(document)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            found.push((path.display().to_string(), value));
        }
    }
    found
}

pub fn of_kind<'a>(documents: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    documents
        .iter()
        .map(|(_, value)| value)
        .filter(|value| value["kind"] == kind)
        .collect()
}

pub fn sequence(value: &Value) -> &[Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or(&[])
}

/// The pod's full DNS name under the headless service, as the StatefulSet advertises it.
pub fn pod_domain_name(pod: &str) -> String {
    format!("{pod}.{SERVICE}.{NAMESPACE}.svc.cluster.local")
}

/// The broker container's environment in pod `pod`: ConfigMap first, then `env` (a later entry
/// wins, as in Kubernetes). `valueFrom` entries other than the pod's name and namespace are
/// left out.
pub fn broker_env(pod: &str) -> Vec<(String, String)> {
    let documents = documents();
    let mut variables: Vec<(String, String)> = Vec::new();
    for config_map in of_kind(&documents, "ConfigMap") {
        for (name, value) in config_map["data"].as_mapping().expect("ConfigMap data") {
            let name = name.as_str().expect("variable name").to_string();
            let value = value.as_str().expect("string value").to_string();
            variables.push((name, value));
        }
    }
    let sets = of_kind(&documents, "StatefulSet");
    let containers = sequence(&sets[0]["spec"]["template"]["spec"]["containers"]);
    let broker = containers
        .iter()
        .find(|container| container["name"] == "broker")
        .expect("the broker container");
    for entry in sequence(&broker["env"]) {
        let name = entry["name"].as_str().expect("name").to_string();
        let value = match (entry["value"].as_str(), name.as_str()) {
            (Some(value), _) => expand(value, pod, &variables),
            (None, "POD_NAME") => pod.to_string(),
            (None, "POD_NAMESPACE") => NAMESPACE.to_string(),
            (None, _) => continue,
        };
        variables.retain(|(known, _)| *known != name);
        variables.push((name, value));
    }
    variables
}

/// `$(NAME)` references to variables defined earlier, as Kubernetes expands them.
fn expand(value: &str, pod: &str, defined: &[(String, String)]) -> String {
    let mut text = value.to_string();
    for (name, replacement) in defined
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain([("POD_NAME", pod), ("POD_NAMESPACE", NAMESPACE)])
    {
        text = text.replace(&format!("$({name})"), replacement);
    }
    assert!(!text.contains("$("), "unexpanded reference in {value:?}");
    text
}
