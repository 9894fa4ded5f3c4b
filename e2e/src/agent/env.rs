//! A container's environment, as the kubelet builds it: `envFrom`
//! (ConfigMaps and Secrets, with prefixes), then `env` in order, each value
//! `$(VAR)`-expanded against the variables before it; `valueFrom` reads
//! the downward API (`fieldRef`), ConfigMap and Secret keys. The caller
//! fetches the referenced ConfigMaps and Secrets first ([`references`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};

use super::expand::expand;

/// What the environment is built from besides the pod itself.
#[derive(Debug, Default)]
pub struct EnvContext {
    pub pod_ip: Option<IpAddr>,
    pub host_ip: Option<IpAddr>,
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    /// Variables every container gets before its own (KUBERNETES_SERVICE_*,
    /// HOSTNAME, PATH, HOME); the container's own may override them.
    pub base: Vec<(String, String)>,
}

/// ConfigMaps and Secrets (names) the container's environment refers to.
pub fn references(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for from in container.env_from.iter().flatten() {
        if let Some(cm) = &from.config_map_ref {
            config_maps.insert(cm.name.clone());
        }
        if let Some(s) = &from.secret_ref {
            secrets.insert(s.name.clone());
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(from) = &var.value_from {
            if let Some(cm) = &from.config_map_key_ref {
                config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &from.secret_key_ref {
                secrets.insert(s.name.clone());
            }
        }
    }
    (config_maps, secrets)
}

/// The value of a downward API `fieldPath` of `pod`.
pub fn field_ref(pod: &Pod, path: &str, ctx: &EnvContext) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_key = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_prefix("['"))
            .and_then(|r| r.strip_suffix("']"))
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => {
            ctx.host_ip.map(|ip| ip.to_string()).unwrap_or_default()
        }
        _ => {
            if let Some(key) = map_key("metadata.labels") {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(key).cloned())
                    .unwrap_or_default()
            } else if let Some(key) = map_key("metadata.annotations") {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(key).cloned())
                    .unwrap_or_default()
            } else {
                return Err(format!(
                    "fieldRef {path:?} is not supported by the node agent"
                ));
            }
        }
    };
    Ok(value)
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(String::from_utf8_lossy(&v.0).into_owned());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
}

/// Sets `name` to `value`, replacing an earlier definition in place.
fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

/// The environment of `container` in `pod`, in definition order. `Err` is
/// the message of a CreateContainerConfigError.
pub fn container_env(
    pod: &Pod,
    container: &Container,
    ctx: &EnvContext,
) -> Result<Vec<(String, String)>, String> {
    let mut vars: Vec<(String, String)> = ctx.base.clone();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match ctx.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut vars, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match ctx.secrets.get(&r.name) {
                Some(s) => {
                    let keys: BTreeSet<&String> = s
                        .data
                        .iter()
                        .flat_map(|d| d.keys())
                        .chain(s.string_data.iter().flat_map(|d| d.keys()))
                        .collect();
                    for k in keys {
                        if let Some(v) = secret_value(s, k) {
                            set(&mut vars, format!("{prefix}{k}"), v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(pod, &f.field_path, ctx)?
            } else if let Some(r) = &from.config_map_key_ref {
                let value = ctx
                    .config_maps
                    .get(&r.name)
                    .and_then(|cm| cm.data.as_ref())
                    .and_then(|d| d.get(&r.key))
                    .cloned();
                match value {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!(
                            "couldn't find key {} in ConfigMap {}",
                            r.key, r.name
                        ));
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                match ctx
                    .secrets
                    .get(&r.name)
                    .and_then(|s| secret_value(s, &r.key))
                {
                    Some(v) => v,
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(format!("couldn't find key {} in Secret {}", r.key, r.name));
                    }
                }
            } else {
                return Err(format!(
                    "env {}: resourceFieldRef and fileKeyRef are not supported by the node agent",
                    var.name
                ));
            }
        } else {
            let raw = var.value.clone().unwrap_or_default();
            let defined = vars.clone();
            expand(&raw, |name| {
                defined
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

/// `command` and `args` of `container` expanded against its environment.
pub fn command_line(container: &Container, env: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let lookup = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let expand_all = |v: &Option<Vec<String>>| {
        v.iter()
            .flatten()
            .map(|s| expand(s, lookup))
            .collect::<Vec<_>>()
    };
    (expand_all(&container.command), expand_all(&container.args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "events-0", "namespace": "data", "uid": "u-1",
                         "labels": {"topology.kubernetes.io/zone": "a"},
                         "annotations": {"note": "x"}},
            "spec": {"nodeName": "rill-local", "serviceAccountName": "default", "containers": []},
        }))
        .expect("pod")
    }

    fn ctx() -> EnvContext {
        EnvContext {
            pod_ip: Some("127.0.16.4".parse().expect("ip")),
            host_ip: Some("127.0.0.1".parse().expect("ip")),
            config_maps: BTreeMap::from([(
                "settings".to_owned(),
                serde_json::from_value(json!({"data": {"level": "debug", "mode": "fast"}}))
                    .expect("cm"),
            )]),
            secrets: BTreeMap::from([(
                "creds".to_owned(),
                serde_json::from_value(json!({"data": {"password": "czNjcjN0"}})).expect("secret"),
            )]),
            base: vec![("PATH".into(), "/bin".into())],
        }
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    #[test]
    fn given_downward_api_refs_when_building_env_then_pod_fields_are_read() {
        let c = container(json!({"name": "c", "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "ZONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['topology.kubernetes.io/zone']"}}},
            {"name": "MISSING", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['nope']"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "ADDR", "value": "$(IP):9092"},
            {"name": "HOST", "value": "$(POD).events-brokers.$(NS).svc"},
            {"name": "LATER", "value": "$(DEFINED_AFTER)"},
            {"name": "DEFINED_AFTER", "value": "x"},
        ]}));
        let env: BTreeMap<String, String> = container_env(&pod(), &c, &ctx())
            .expect("env")
            .into_iter()
            .collect();
        assert_eq!(env["POD"], "events-0");
        assert_eq!(env["NS"], "data");
        assert_eq!(env["IP"], "127.0.16.4");
        assert_eq!(env["NODE"], "rill-local");
        assert_eq!(env["ZONE"], "a");
        assert_eq!(env["MISSING"], "");
        assert_eq!(env["NOTE"], "x");
        assert_eq!(env["ADDR"], "127.0.16.4:9092");
        assert_eq!(env["HOST"], "events-0.events-brokers.data.svc");
        assert_eq!(
            env["LATER"], "$(DEFINED_AFTER)",
            "only earlier variables expand"
        );
        assert_eq!(env["PATH"], "/bin");
    }

    #[test]
    fn given_config_map_and_secret_refs_when_building_env_then_values_and_prefixes_apply() {
        let c = container(json!({"name": "c",
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"},
                    {"secretRef": {"name": "creds"}}],
        "env": [
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "level"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k", "optional": true}}},
            {"name": "PATH", "value": "/opt/bin:$(PATH)"},
        ]}));
        let (cms, secrets) = references(&c);
        assert_eq!(
            cms.into_iter().collect::<Vec<_>>(),
            vec!["absent".to_owned(), "settings".to_owned()]
        );
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            vec!["creds".to_owned()]
        );
        let env: BTreeMap<String, String> = container_env(&pod(), &c, &ctx())
            .expect("env")
            .into_iter()
            .collect();
        assert_eq!(env["APP_level"], "debug");
        assert_eq!(env["APP_mode"], "fast");
        assert_eq!(env["password"], "s3cr3t");
        assert_eq!(env["LEVEL"], "debug");
        assert_eq!(env["PW"], "s3cr3t");
        assert!(!env.contains_key("OPT"));
        assert_eq!(env["PATH"], "/opt/bin:/bin");
    }

    #[test]
    fn given_missing_refs_when_building_env_then_the_error_names_them() {
        let c = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "nope"}}}]}));
        let err = container_env(&pod(), &c, &ctx()).unwrap_err();
        assert!(err.contains("nope") && err.contains("settings"), "{err}");
        let c = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]}));
        assert!(
            container_env(&pod(), &c, &ctx())
                .unwrap_err()
                .contains("gone")
        );
        let c = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]}));
        assert!(
            container_env(&pod(), &c, &ctx())
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn given_command_and_args_when_expanding_then_env_references_resolve() {
        let c = container(json!({"name": "c", "command": ["rill-operator"],
            "args": ["--http-addr", "$(POD_IP):8080", "$$(POD_IP)", "$(UNSET)"]}));
        let env = vec![("POD_IP".to_owned(), "127.0.16.9".to_owned())];
        let (command, args) = command_line(&c, &env);
        assert_eq!(command, vec!["rill-operator"]);
        assert_eq!(
            args,
            vec!["--http-addr", "127.0.16.9:8080", "$(POD_IP)", "$(UNSET)"]
        );
    }
}
