//! CRD tests. They pin three contracts:
//!
//! 1. `crds/` and `charts/rill/crds/` hold exactly what `crdgen` generates
//!    (regenerate with `cargo run -p rill-operator --bin crdgen`);
//! 2. the committed schemas reject what must never be stored: 0 brokers,
//!    0 partitions, a 0 replication factor (OpenAPI bounds, checked by a
//!    small structural validator below);
//! 3. the CEL rules compile and do what their messages say, evaluated with
//!    kube's client-side CEL validator against the committed schemas.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::generate_crds_yaml;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_dir_yaml(dir: &str) -> Vec<(String, String)> {
    let path = repo_root().join(dir);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("read CRD file");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn given_the_rust_types_when_generating_then_crds_and_chart_crds_are_up_to_date() {
    let mut generated: Vec<(String, String)> = generate_crds_yaml()
        .expect("generate")
        .into_iter()
        .map(|f| (f.file_name, f.yaml))
        .collect();
    generated.sort();
    for dir in ["crds", "charts/rill/crds"] {
        let committed = read_dir_yaml(dir);
        let names: Vec<&String> = committed.iter().map(|(n, _)| n).collect();
        let expected: Vec<&String> = generated.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names, expected,
            "{dir}/ holds other files than crdgen writes"
        );
        for ((name, text), (_, want)) in committed.iter().zip(&generated) {
            assert!(
                text == want,
                "{dir}/{name} is out of date: run `cargo run -p rill-operator --bin crdgen` and commit the result"
            );
        }
    }
}

fn crd_json(file: &str) -> Value {
    let text = std::fs::read_to_string(repo_root().join("crds").join(file)).expect("read CRD");
    serde_yaml_ng::from_str(&text).expect("CRD YAML parses")
}

fn schema(crd: &Value) -> Value {
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// The subset of OpenAPI v3 structural validation the API server applies
/// that matters here: types, required, numeric bounds, string lengths,
/// array lengths, enums, nested properties and items.
fn violations(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if value.is_null() {
        return;
    }
    if schema.get("x-kubernetes-int-or-string").is_some()
        || schema.get("x-kubernetes-preserve-unknown-fields").is_some()
    {
        return;
    }
    match schema["type"].as_str() {
        Some("integer") if !value.is_i64() => out.push(format!("{path}: must be an integer")),
        Some("string") if !value.is_string() => out.push(format!("{path}: must be a string")),
        Some("object") if !value.is_object() => out.push(format!("{path}: must be an object")),
        Some("array") if !value.is_array() => out.push(format!("{path}: must be an array")),
        Some("boolean") if !value.is_boolean() => out.push(format!("{path}: must be a boolean")),
        _ => {}
    }
    if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), value.as_f64())
        && v < min
    {
        out.push(format!("{path}: {v} is below the minimum {min}"));
    }
    if let (Some(max), Some(v)) = (schema["maximum"].as_f64(), value.as_f64())
        && v > max
    {
        out.push(format!("{path}: {v} is above the maximum {max}"));
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), value.as_str())
        && (s.chars().count() as u64) < min
    {
        out.push(format!("{path}: shorter than {min}"));
    }
    if let (Some(max), Some(s)) = (schema["maxLength"].as_u64(), value.as_str())
        && (s.chars().count() as u64) > max
    {
        out.push(format!("{path}: longer than {max}"));
    }
    if let (Some(min), Some(a)) = (schema["minItems"].as_u64(), value.as_array())
        && (a.len() as u64) < min
    {
        out.push(format!("{path}: fewer than {min} items"));
    }
    if let (Some(max), Some(a)) = (schema["maxItems"].as_u64(), value.as_array())
        && (a.len() as u64) > max
    {
        out.push(format!("{path}: more than {max} items"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{path}: {value} is not one of {allowed:?}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                out.push(format!("{path}.{key}: required"));
            }
        }
        for (key, child) in object {
            if let Some(child_schema) = schema["properties"].get(key) {
                violations(child_schema, child, &format!("{path}.{key}"), out);
            } else if let Some(additional) =
                schema.get("additionalProperties").filter(|a| a.is_object())
            {
                violations(additional, child, &format!("{path}.{key}"), out);
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            violations(items, item, &format!("{path}[{i}]"), out);
        }
    }
}

fn check(schema: &Value, object: &Value) -> Vec<String> {
    let mut out = Vec::new();
    violations(schema, object, "", &mut out);
    out
}

fn stream_cluster(spec: Value) -> Value {
    json!({"apiVersion": "rill.dev/v1alpha1", "kind": "StreamCluster", "metadata": {"name": "events", "namespace": "data"}, "spec": spec})
}

fn topic(spec: Value) -> Value {
    json!({"apiVersion": "rill.dev/v1alpha1", "kind": "Topic", "metadata": {"name": "orders", "namespace": "data"}, "spec": spec})
}

fn topic_spec() -> Value {
    json!({"clusterRef": {"name": "events"}, "partitions": 6, "replicationFactor": 3})
}

#[test]
fn given_the_streamcluster_schema_when_brokers_is_zero_then_it_is_rejected() {
    let schema = schema(&crd_json("streamclusters.rill.dev.yaml"));
    assert_eq!(
        check(&schema, &stream_cluster(json!({"brokers": 3}))),
        Vec::<String>::new()
    );
    assert_eq!(
        check(&schema, &stream_cluster(json!({"brokers": 0}))),
        vec![".spec.brokers: 0 is below the minimum 1".to_owned()]
    );
    assert!(
        !check(&schema, &stream_cluster(json!({}))).is_empty(),
        "brokers is required"
    );
    assert!(
        !check(
            &schema,
            &stream_cluster(json!({"brokers": 3, "ports": {"kafka": 70000}}))
        )
        .is_empty()
    );
    assert!(
        !check(
            &schema,
            &stream_cluster(json!({"brokers": 3, "imagePullPolicy": "Sometimes"}))
        )
        .is_empty()
    );
}

#[test]
fn given_the_topic_schema_when_partitions_or_rf_is_zero_then_it_is_rejected() {
    let schema = schema(&crd_json("topics.rill.dev.yaml"));
    assert_eq!(check(&schema, &topic(topic_spec())), Vec::<String>::new());
    let mut zero_partitions = topic_spec();
    zero_partitions["partitions"] = json!(0);
    assert_eq!(
        check(&schema, &topic(zero_partitions)),
        vec![".spec.partitions: 0 is below the minimum 1".to_owned()]
    );
    let mut zero_rf = topic_spec();
    zero_rf["replicationFactor"] = json!(0);
    assert_eq!(
        check(&schema, &topic(zero_rf)),
        vec![".spec.replicationFactor: 0 is below the minimum 1".to_owned()]
    );
    let mut bad_policy = topic_spec();
    bad_policy["config"] = json!({"cleanupPolicy": "shred"});
    assert!(!check(&schema, &topic(bad_policy)).is_empty());
}

fn cel(schema: &Value, object: &Value, old: Option<&Value>) -> Result<(), String> {
    kube::core::cel::Validator::new()
        .validate(schema, object, old)
        .map_err(|errors| {
            errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })
}

#[test]
fn given_streamcluster_cel_rules_when_evaluated_then_they_enforce_ports_storage_and_name() {
    let schema = schema(&crd_json("streamclusters.rill.dev.yaml"));
    let valid = stream_cluster(json!({"brokers": 3, "storage": {"size": "10Gi"}}));
    assert_eq!(cel(&schema, &valid, None), Ok(()));

    let clash = stream_cluster(
        json!({"brokers": 3, "ports": {"kafka": 9092, "client": 9092, "replication": 9094, "http": 9644}}),
    );
    assert_eq!(
        cel(&schema, &clash, None),
        Err("broker ports must all differ".to_owned())
    );

    let grown = stream_cluster(json!({"brokers": 3, "storage": {"size": "20Gi"}}));
    assert_eq!(cel(&schema, &grown, Some(&valid)), Ok(()));
    let shrunk = stream_cluster(json!({"brokers": 3, "storage": {"size": "9Gi"}}));
    let err = cel(&schema, &shrunk, Some(&valid)).expect_err("storage cannot shrink");
    assert!(err.contains("cannot shrink"), "{err}");
    let reclassed = stream_cluster(
        json!({"brokers": 3, "storage": {"size": "10Gi", "storageClassName": "fast"}}),
    );
    let err = cel(&schema, &reclassed, Some(&valid)).expect_err("class is fixed");
    assert!(err.contains("storageClassName cannot change"), "{err}");
    let scaled = stream_cluster(json!({"brokers": 5, "storage": {"size": "10Gi"}}));
    assert_eq!(cel(&schema, &scaled, Some(&valid)), Ok(()));

    let mut long_name = valid.clone();
    long_name["metadata"]["name"] = json!("a".repeat(53));
    let err = cel(&schema, &long_name, None).expect_err("name too long");
    assert!(err.contains("at most 52 characters"), "{err}");
    let mut digit_name = valid;
    digit_name["metadata"]["name"] = json!("1events");
    assert!(cel(&schema, &digit_name, None).is_err());
}

#[test]
fn given_listener_cel_rules_when_evaluated_then_names_ports_and_mtls_are_checked() {
    let schema = schema(&crd_json("streamclusters.rill.dev.yaml"));
    let with = |listeners: Value| stream_cluster(json!({"brokers": 3, "listeners": listeners}));
    let plain = json!({"name": "plain", "port": 9092, "tls": false, "authentication": "none"});
    let tls = json!({"name": "tls", "port": 9093, "tls": true, "authentication": "scram"});
    assert_eq!(
        cel(&schema, &with(json!([plain.clone(), tls.clone()])), None),
        Ok(())
    );
    assert!(check(&schema, &with(json!([plain.clone(), tls.clone()]))).is_empty());

    let twice = json!({"name": "plain", "port": 9095, "tls": false});
    assert_eq!(
        cel(&schema, &with(json!([plain.clone(), twice])), None),
        Err("spec.listeners names must be unique".to_owned())
    );
    let same_port = json!({"name": "other", "port": 9092, "tls": true});
    assert_eq!(
        cel(&schema, &with(json!([plain.clone(), same_port])), None),
        Err("spec.listeners ports must be unique".to_owned())
    );
    let mtls_plain = json!({"name": "certs", "port": 9095, "tls": false, "authentication": "mtls"});
    assert_eq!(
        cel(&schema, &with(json!([mtls_plain])), None),
        Err("a listener with authentication mtls needs tls: true".to_owned())
    );
    let taken = json!({"name": "http", "port": 9095});
    assert_eq!(
        cel(&schema, &with(json!([taken])), None),
        Err(
            "listener names client, replication and http are taken by other broker ports"
                .to_owned()
        )
    );
    let on_client = stream_cluster(json!({
        "brokers": 3,
        "ports": {"client": 9091, "replication": 9094, "http": 9644},
        "listeners": [{"name": "x", "port": 9091}]
    }));
    assert_eq!(
        cel(&schema, &on_client, None),
        Err("spec.listeners ports must differ from spec.ports.client, spec.ports.replication and spec.ports.http".to_owned())
    );
    let both = stream_cluster(json!({
        "brokers": 3,
        "ports": {"kafka": 9092, "client": 9091, "replication": 9094, "http": 9644},
        "listeners": [tls]
    }));
    let err = cel(&schema, &both, None).expect_err("kafka port with listeners");
    assert!(
        err.starts_with("spec.ports.kafka is the port of the default listener only"),
        "{err}"
    );
    // Without listeners, spec.ports.kafka moves the default listener.
    let legacy = stream_cluster(json!({
        "brokers": 3,
        "ports": {"kafka": 9092, "client": 9093, "replication": 9094, "http": 9644}
    }));
    assert_eq!(cel(&schema, &legacy, None), Ok(()));

    let renewal = stream_cluster(json!({
        "brokers": 3,
        "certificates": {"clusterCa": {"validityDays": 30, "renewBeforeDays": 30}}
    }));
    assert_eq!(
        cel(&schema, &renewal, None),
        Err("renewBeforeDays must be less than validityDays".to_owned())
    );
}

#[test]
fn given_topic_cel_rules_when_evaluated_then_name_and_cluster_are_immutable_and_min_isr_bounded() {
    let schema = schema(&crd_json("topics.rill.dev.yaml"));
    let valid = topic(topic_spec());
    assert_eq!(cel(&schema, &valid, None), Ok(()));
    assert_eq!(cel(&schema, &valid, Some(&valid)), Ok(()));

    let mut named = topic_spec();
    named["topicName"] = json!("Orders");
    let named = topic(named);
    assert_eq!(cel(&schema, &named, None), Ok(()));
    assert_eq!(
        cel(&schema, &named, Some(&valid)),
        Err("topicName is immutable".to_owned())
    );
    assert_eq!(
        cel(&schema, &valid, Some(&named)),
        Err("topicName is immutable".to_owned())
    );
    let mut renamed = named.clone();
    renamed["spec"]["topicName"] = json!("Orders2");
    assert_eq!(
        cel(&schema, &renamed, Some(&named)),
        Err("topicName is immutable".to_owned())
    );

    let mut moved = valid.clone();
    moved["spec"]["clusterRef"]["name"] = json!("other");
    assert_eq!(
        cel(&schema, &moved, Some(&valid)),
        Err("clusterRef is immutable".to_owned())
    );

    let mut grown = valid.clone();
    grown["spec"]["partitions"] = json!(12);
    assert_eq!(cel(&schema, &grown, Some(&valid)), Ok(()));

    let mut min_isr = topic_spec();
    min_isr["config"] = json!({"minInsyncReplicas": 4});
    assert_eq!(
        cel(&schema, &topic(min_isr), None),
        Err("config.minInsyncReplicas must not exceed replicationFactor".to_owned())
    );

    let mut duplicate = topic_spec();
    duplicate["config"] = json!({"other": {"retention.ms": "1"}});
    let err = cel(&schema, &topic(duplicate), None).expect_err("typed key in other");
    assert!(
        err.starts_with("config.other may not repeat a typed field"),
        "{err}"
    );
}

#[test]
fn given_the_crds_when_reading_names_then_short_names_do_not_collide_and_subresources_exist() {
    // Short names and names of built-in kinds that kubectl resolves.
    const BUILT_IN: [&str; 30] = [
        "sc", "cm", "svc", "po", "deploy", "sts", "pdb", "ns", "no", "pv", "pvc", "ep", "ev", "ds",
        "rs", "rc", "sa", "hpa", "ing", "netpol", "csr", "crd", "crds", "limits", "quota", "cs",
        "pc", "cj", "ingclass", "eps",
    ];
    let sc = crd_json("streamclusters.rill.dev.yaml");
    let topic = crd_json("topics.rill.dev.yaml");
    let user = crd_json("users.rill.dev.yaml");
    for (crd, short) in [(&sc, "rsc"), (&topic, "rtopic"), (&user, "ruser")] {
        let names = &crd["spec"]["names"];
        assert_eq!(names["shortNames"], json!([short]));
        assert_eq!(names["categories"], json!(["rill"]));
        for short_name in names["shortNames"].as_array().expect("short names") {
            assert!(!BUILT_IN.contains(&short_name.as_str().unwrap_or_default()));
        }
        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"]["status"], json!({}));
    }
    assert_eq!(
        sc["spec"]["versions"][0]["subresources"]["scale"],
        json!({"specReplicasPath": ".spec.brokers", "statusReplicasPath": ".status.brokers", "labelSelectorPath": ".status.selector"})
    );
    let columns = |crd: &Value| -> Vec<String> {
        crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        columns(&sc),
        [
            "Brokers",
            "Ready Brokers",
            "Updated",
            "Ready",
            "Reason",
            "Bootstrap",
            "Age"
        ]
    );
    assert_eq!(
        columns(&topic),
        [
            "Cluster",
            "Topic",
            "Partitions",
            "RF",
            "Ready",
            "Reason",
            "Age"
        ]
    );
    assert_eq!(
        columns(&user),
        [
            "Cluster",
            "Authentication",
            "Username",
            "Secret",
            "Ready",
            "Reason",
            "Age"
        ]
    );
}

fn user(spec: Value) -> Value {
    json!({"apiVersion": "rill.dev/v1alpha1", "kind": "User", "metadata": {"name": "app", "namespace": "shop"}, "spec": spec})
}

fn user_spec() -> Value {
    json!({
        "cluster": {"name": "events", "namespace": "streaming"},
        "authentication": {"type": "scram-sha-512"},
        "authorization": {"acls": [
            {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Read", "Describe"]},
            {"resource": {"type": "group", "name": "g", "patternType": "prefixed"}, "operations": ["Read"], "type": "deny", "host": "10.0.0.1"},
            {"resource": {"type": "cluster"}, "operations": ["IdempotentWrite"]},
        ]},
    })
}

#[test]
fn given_the_user_schema_when_values_are_out_of_range_then_they_are_rejected() {
    let schema = schema(&crd_json("users.rill.dev.yaml"));
    assert_eq!(check(&schema, &user(user_spec())), Vec::<String>::new());
    let mut bad_type = user_spec();
    bad_type["authentication"]["type"] = json!("scram-sha-256");
    assert_eq!(check(&schema, &user(bad_type)).len(), 1);
    let mut bad_op = user_spec();
    bad_op["authorization"]["acls"][0]["operations"] = json!(["Fly"]);
    assert_eq!(check(&schema, &user(bad_op)).len(), 1);
    let mut no_ops = user_spec();
    no_ops["authorization"]["acls"][0]["operations"] = json!([]);
    assert!(
        !check(&schema, &user(no_ops)).is_empty(),
        "at least one operation"
    );
    let mut bad_resource = user_spec();
    bad_resource["authorization"]["acls"][0]["resource"]["type"] = json!("delegationToken");
    assert_eq!(check(&schema, &user(bad_resource)).len(), 1);
    assert!(
        !check(&schema, &user(json!({"cluster": {"name": "events"}}))).is_empty(),
        "authentication is required"
    );
}

#[test]
fn given_user_cel_rules_when_evaluated_then_cluster_is_immutable_and_fields_fit_their_types() {
    let schema = schema(&crd_json("users.rill.dev.yaml"));
    let valid = user(user_spec());
    assert_eq!(cel(&schema, &valid, None), Ok(()));
    assert_eq!(cel(&schema, &valid, Some(&valid)), Ok(()));

    let mut moved = valid.clone();
    moved["spec"]["cluster"]["name"] = json!("other");
    assert_eq!(
        cel(&schema, &moved, Some(&valid)),
        Err("cluster is immutable".to_owned())
    );

    let mut tls_password = user_spec();
    tls_password["authentication"] = json!({"type": "tls", "password": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}});
    assert_eq!(
        cel(&schema, &user(tls_password), None),
        Err("authentication.password only applies to type scram-sha-512".to_owned())
    );
    let mut provided = user_spec();
    provided["authentication"]["password"] =
        json!({"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}});
    assert_eq!(cel(&schema, &user(provided), None), Ok(()));

    let mut unnamed = user_spec();
    unnamed["authorization"]["acls"][0]["resource"] = json!({"type": "topic"});
    assert_eq!(
        cel(&schema, &user(unnamed), None),
        Err("name is required for topic, group and transactionalId resources".to_owned())
    );
    let mut cluster_name = user_spec();
    cluster_name["authorization"]["acls"][2]["resource"]["name"] = json!("events");
    assert_eq!(
        cel(&schema, &user(cluster_name), None),
        Err("the cluster resource is named kafka-cluster (or leave name out)".to_owned())
    );
}

#[test]
fn given_the_streamcluster_schema_when_users_are_admitted_then_the_list_is_accepted() {
    let schema = schema(&crd_json("streamclusters.rill.dev.yaml"));
    let admitted =
        stream_cluster(json!({"brokers": 3, "users": {"allowedNamespaces": ["shop", "*"]}}));
    assert_eq!(check(&schema, &admitted), Vec::<String>::new());
    assert_eq!(cel(&schema, &admitted, None), Ok(()));
    assert!(
        !check(
            &schema,
            &stream_cluster(json!({"brokers": 3, "users": {"allowedNamespaces": "shop"}}))
        )
        .is_empty()
    );
}

/// Every property in a schema has a description, so `kubectl explain`
/// documents every field.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(properties) = schema["properties"].as_object() {
        for (key, child) in properties {
            let child_path = format!("{path}.{key}");
            if child
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
                && !["apiVersion", "kind", "metadata"].contains(&key.as_str())
            {
                out.push(child_path.clone());
            }
            undocumented(child, &child_path, out);
        }
    }
    for nested in ["items", "additionalProperties"] {
        if let Some(child) = schema.get(nested).filter(|c| c.is_object()) {
            undocumented(child, path, out);
        }
    }
}

#[test]
fn given_the_crds_when_walking_the_schema_then_every_field_has_a_description() {
    for file in [
        "streamclusters.rill.dev.yaml",
        "topics.rill.dev.yaml",
        "users.rill.dev.yaml",
    ] {
        let mut missing = Vec::new();
        undocumented(&schema(&crd_json(file)), "", &mut missing);
        assert!(
            missing.is_empty(),
            "{file}: fields without description: {missing:?}"
        );
    }
}
