//! The container and Kubernetes manifests cannot be run here (no container
//! engine, no cluster), so this parses every one of them and checks what a
//! deployment relies on: every part present, the binary each runs, ports that
//! match the parts' defaults, readiness on `/readyz`, secrets from Secrets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value;

/// Each part, the port of its default `<PART>_BIND` (CONTRIBUTING.md), and
/// the arguments that run its server.
const PARTS: [(&str, u16, &[&str]); 5] = [
    ("idp", 9000, &["idp", "serve"]),
    ("gateway", 8080, &["gateway"]),
    ("order", 8081, &["order"]),
    ("payment", 8082, &["payment"]),
    ("inventory", 8083, &["inventory"]),
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every YAML document of a file.
fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path)?.as_str()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn k8s_documents() -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir().join("k8s"))
        .expect("deploy/k8s exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|f| documents(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn find<'a>(docs: &'a [(PathBuf, Value)], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| {
            str_at(d, &["kind"]) == Some(kind) && str_at(d, &["metadata", "name"]) == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s"))
}

/// An env entry: its name, and its value (`None` when it comes from a Secret).
type EnvVar = (String, Option<String>);
/// A `secretKeyRef`: the Secret's name and the key.
type SecretRef = (String, String);

/// Every env entry of a container and every Secret it refers to.
fn env_of(container: &Value) -> (Vec<EnvVar>, Vec<SecretRef>) {
    let mut vars = Vec::new();
    let mut refs = Vec::new();
    for e in container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let name = str_at(e, &["name"]).expect("env name").to_owned();
        if let Some(r) = at(e, &["valueFrom", "secretKeyRef"]) {
            refs.push((
                str_at(r, &["name"]).expect("secret name").to_owned(),
                str_at(r, &["key"]).expect("secret key").to_owned(),
            ));
            vars.push((name, None));
        } else {
            vars.push((name, str_at(e, &["value"]).map(str::to_owned)));
        }
    }
    (vars, refs)
}

fn is_secret_var(name: &str) -> bool {
    name.ends_with("_SECRET") || name.ends_with("_KEY") || name.ends_with("_DATABASE_URL")
}

#[test]
fn kubernetes_runs_every_part_with_probes_ports_and_secrets() {
    let docs = k8s_documents();
    let secret = find(&docs, "Secret", "baton-secrets");
    let secret_keys: BTreeSet<&str> = at(secret, &["stringData"])
        .and_then(Value::as_mapping)
        .expect("stringData")
        .keys()
        .filter_map(Value::as_str)
        .collect();

    for (part, port, args) in PARTS {
        let deployment = find(&docs, "Deployment", part);
        let spec = at(deployment, &["spec", "template", "spec"]).expect("pod spec");
        let containers = spec["containers"].as_sequence().expect("containers");
        assert_eq!(containers.len(), 1, "{part}: one container");
        let c = &containers[0];

        let argv: Vec<&str> = c["args"]
            .as_sequence()
            .expect("args")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(argv, args, "{part} runs its own binary");

        let ports = c["ports"].as_sequence().expect("ports");
        let http = ports
            .iter()
            .find(|p| str_at(p, &["name"]) == Some("http"))
            .expect("a port named http");
        assert_eq!(
            http["containerPort"].as_u64(),
            Some(u64::from(port)),
            "{part} listens on its default port"
        );

        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = at(c, &[probe, "httpGet"]).unwrap_or_else(|| panic!("{part}: {probe}"));
            assert_eq!(str_at(get, &["path"]), Some(path), "{part}: {probe} path");
            assert_eq!(str_at(get, &["port"]), Some("http"), "{part}: {probe} port");
        }

        let (vars, refs) = env_of(c);
        let bind = vars
            .iter()
            .find(|(n, _)| *n == format!("{}_BIND", part.to_uppercase()));
        assert_eq!(
            bind.and_then(|(_, v)| v.as_deref()),
            Some(format!("0.0.0.0:{port}").as_str()),
            "{part} binds all interfaces on its port"
        );
        let db = format!("{}_DATABASE_URL", part.to_uppercase());
        assert!(
            vars.iter().any(|(n, v)| *n == db && v.is_none()),
            "{part}: {db} from the Secret"
        );
        for (name, value) in &vars {
            assert!(
                !(is_secret_var(name) && value.is_some()),
                "{part}: {name} must come from a Secret"
            );
        }
        for (secret, key) in &refs {
            assert_eq!(
                secret, "baton-secrets",
                "{part} refers to the baton-secrets Secret"
            );
            assert!(
                secret_keys.contains(key.as_str()),
                "{part}: key {key} is not in secrets.example.yaml"
            );
        }
        let config_map = at(c, &["envFrom"])
            .and_then(Value::as_sequence)
            .expect("envFrom");
        assert!(
            config_map
                .iter()
                .any(|e| str_at(e, &["configMapRef", "name"]) == Some("baton-config")),
            "{part} reads the shared config"
        );
        assert_eq!(
            at(c, &["securityContext", "readOnlyRootFilesystem"]).and_then(Value::as_bool),
            Some(true)
        );
        assert_eq!(
            at(spec, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool),
            Some(true)
        );

        let service = find(&docs, "Service", part);
        let sport = &at(service, &["spec", "ports"])
            .and_then(Value::as_sequence)
            .expect("service ports")[0];
        assert_eq!(
            sport["port"].as_u64(),
            Some(u64::from(port)),
            "{part} service port"
        );
        assert_eq!(str_at(sport, &["targetPort"]), Some("http"));
        assert_eq!(
            at(service, &["spec", "selector"]),
            at(deployment, &["spec", "selector", "matchLabels"]),
            "{part}: the service selects the deployment's pods"
        );
    }

    let replicas =
        |part| at(find(&docs, "Deployment", part), &["spec", "replicas"]).and_then(Value::as_u64);
    assert!(
        replicas("idp").is_some_and(|n| n >= 2),
        "several IdP replicas"
    );

    let (vars, _) = env_of(
        &at(
            find(&docs, "Deployment", "idp"),
            &["spec", "template", "spec", "containers"],
        )
        .unwrap()[0],
    );
    assert!(
        vars.iter()
            .any(|(n, v)| n == "IDP_KEY_ENCRYPTION_KEY" && v.is_none()),
        "the key-encryption key from the Secret"
    );

    // Every part trusts one issuer, the IdP's own.
    let config = find(&docs, "ConfigMap", "baton-config");
    assert_eq!(
        str_at(config, &["data", "GUARD_ISSUER"]),
        str_at(config, &["data", "IDP_ISSUER"])
    );
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = deploy_dir().join("k8s");
    let kustomization = &documents(&dir.join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.ends_with(".yaml") && n != "kustomization.yaml" && n != "secrets.example.yaml"
        })
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml resources vs files in deploy/k8s"
    );
}

#[test]
fn compose_runs_every_part_from_one_image() {
    let mut compose = documents(&deploy_dir().join("compose.yaml")).remove(0);
    compose.apply_merge().expect("resolve the `<<` merge keys");
    let compose = &compose;
    let services = compose["services"].as_mapping().expect("services");
    assert!(services.contains_key("postgres"), "a PostgreSQL service");
    let seed = &compose["services"]["seed"];
    assert_eq!(
        str_at(seed, &["build", "dockerfile"]),
        Some("deploy/Dockerfile")
    );
    let seed_cmd: Vec<&str> = seed["command"]
        .as_sequence()
        .expect("command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(seed_cmd, ["idp", "seed"]);

    for (part, port, args) in PARTS {
        let service = &compose["services"][part];
        assert!(service.is_mapping(), "compose service {part}");
        let command: Vec<&str> = service["command"]
            .as_sequence()
            .expect("command")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(command, args, "{part} runs its own binary");
        assert_eq!(
            str_at(service, &["image"]),
            Some("baton:latest"),
            "{part} uses the one image"
        );
        let bind = str_at(
            service,
            &["environment", &format!("{}_BIND", part.to_uppercase())],
        );
        assert_eq!(
            bind,
            Some(format!("0.0.0.0:{port}").as_str()),
            "{part} bind"
        );
        let db = str_at(
            service,
            &[
                "environment",
                &format!("{}_DATABASE_URL", part.to_uppercase()),
            ],
        )
        .unwrap_or_else(|| panic!("{part} database url"));
        assert!(
            db.contains("@postgres:5432/") && db.ends_with(&format!("/baton_{part}")),
            "{part}: own database, got {db}"
        );
    }
    for (public, port) in [("gateway", 8080), ("idp", 9000)] {
        let ports: Vec<&str> = compose["services"][public]["ports"]
            .as_sequence()
            .expect("ports")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            ports,
            [format!("{port}:{port}")],
            "{public} is published on its port"
        );
    }
    let order_env = &compose["services"]["order"]["environment"];
    assert_eq!(
        str_at(order_env, &["ORDER_INVENTORY_URL"]),
        Some("http://inventory:8083")
    );
    assert_eq!(
        str_at(order_env, &["ORDER_PAYMENT_URL"]),
        Some("http://payment:8082")
    );
}

#[test]
fn the_dockerfile_builds_every_binary_into_one_image() {
    let dockerfile =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("deploy/Dockerfile");
    let stages = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(stages >= 2, "multi-stage build");
    for (part, _, _) in PARTS {
        assert!(
            dockerfile.contains(&format!("target/release/{part}")),
            "the image carries {part}"
        );
    }
    assert!(
        dockerfile.contains("USER "),
        "the image does not run as root"
    );
}

/// The `${VAR}` names deploy/routes.toml reads its upstreams from.
fn route_upstream_vars() -> BTreeSet<String> {
    let routes =
        std::fs::read_to_string(deploy_dir().join("routes.toml")).expect("deploy/routes.toml");
    routes
        .lines()
        .filter(|l| l.trim_start().starts_with("upstreams"))
        .flat_map(|l| l.split("${"))
        .filter(|piece| !piece.trim_start().starts_with("upstreams"))
        .filter_map(|rest| rest.split([':', '}']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_gateway_finds_every_upstream_in_compose_and_kubernetes() {
    let vars = route_upstream_vars();
    assert!(
        !vars.is_empty(),
        "routes.toml names its upstreams by variable"
    );

    let mut compose = documents(&deploy_dir().join("compose.yaml")).remove(0);
    compose.apply_merge().expect("merge keys");
    let docs = k8s_documents();
    let deployment = find(&docs, "Deployment", "gateway");
    let container =
        &at(deployment, &["spec", "template", "spec", "containers"]).expect("containers")[0];
    let (k8s_env, _) = env_of(container);

    for var in &vars {
        // GATEWAY_ORDER_URL -> the order part on its port.
        let part = var
            .trim_start_matches("GATEWAY_")
            .trim_end_matches("_URL")
            .to_lowercase();
        let (_, port, _) = PARTS
            .iter()
            .find(|(p, _, _)| *p == part)
            .unwrap_or_else(|| panic!("{var} names no part"));
        assert_eq!(
            str_at(&compose["services"]["gateway"]["environment"], &[var]),
            Some(format!("http://{part}:{port}").as_str()),
            "compose: {var}"
        );
        let value = k8s_env
            .iter()
            .find(|(n, _)| n == var)
            .and_then(|(_, v)| v.clone());
        assert_eq!(
            value,
            Some(format!("http://{part}.baton.svc:{port}")),
            "kubernetes: {var}"
        );
    }
}
