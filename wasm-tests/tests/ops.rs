//! Operator artifacts, each checked by a tool rather than by eye: every Envoy config in the
//! repository through `envoy --mode validate` (which loads the filter and parses its
//! configuration), the OCI artifact through skopeo, the Dockerfile through hadolint, the systemd
//! unit through `systemd-analyze`, the Kubernetes manifests through kubernetes-validate and the
//! filter's own config parser, the example alerts against the metrics really exported, and every
//! command block in the docs marked `<!-- doc-test -->`, run.
#![cfg(feature = "e2e")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testkit::{artifacts, repo_root};
use wasm_tests::{KEYS, Stack, filter_config, get};

const EDGE_TOKEN: &str = "e2e-edge-token-0123456789";

fn ops_venv() -> PathBuf {
    artifacts::installed("L402_OPS_TOOLS", "install-ops-tools.sh").unwrap()
}

fn ok(out: &Output, what: &str) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// Every Envoy bootstrap in the repository, rendered where it is a template.
fn envoy_configs(dir: &Path) -> Vec<(String, PathBuf)> {
    let wasm = artifacts::filter_wasm().unwrap();
    let root = repo_root();
    let mut out = Vec::new();
    let mut write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        out.push((name.to_owned(), p));
    };
    let example = std::fs::read_to_string(root.join("envoy-config/envoy.example.yaml")).unwrap();
    assert!(example.contains("/etc/envoy/l402_filter.wasm"));
    write(
        "envoy.example.yaml",
        example.replace("/etc/envoy/l402_filter.wasm", &wasm.display().to_string()),
    );
    let test = std::fs::read_to_string(root.join("envoy-config/envoy.test.yaml.tmpl")).unwrap();
    write(
        "envoy.test.yaml",
        test.replace("{{LISTEN_PORT}}", "10000")
            .replace("{{ADMIN_PORT}}", "10001")
            .replace("{{UPSTREAM_PORT}}", "10002")
            .replace("{{INVOICE_PORT}}", "10003")
            .replace("{{WASM}}", &wasm.display().to_string())
            .replace("{{FILTER_CONFIG}}", &filter_config(2000, &[])),
    );
    let bench = std::fs::read_to_string(root.join("envoy-config/envoy.bench.yaml.tmpl")).unwrap();
    let render = |filters: &str| {
        bench
            .replace("{{LISTEN_PORT}}", "10000")
            .replace("{{ADMIN_PORT}}", "10001")
            .replace("{{INVOICE_PORT}}", "10003")
            .replace("{{HTTP_FILTERS}}", filters)
    };
    write("envoy.bench.plain.yaml", render(""));
    write(
        "envoy.bench.wasm.yaml",
        render(&wasm_tests::bench::wasm_filter(
            &wasm,
            &filter_config(2000, &[]),
        )),
    );
    write(
        "envoy.bench.jwt.yaml",
        render(&wasm_tests::bench::jwt_filter()),
    );
    // Every file in envoy-config/ is one of the above.
    for entry in std::fs::read_dir(root.join("envoy-config")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            [
                "envoy.example.yaml",
                "envoy.test.yaml.tmpl",
                "envoy.bench.yaml.tmpl"
            ]
            .contains(&name.as_str()),
            "envoy-config/{name} is not validated by this test"
        );
    }
    out
}

#[test]
fn every_envoy_config_passes_envoy_validate() {
    let dir = tempfile::tempdir().unwrap();
    let envoy = artifacts::envoy_bin().unwrap();
    for (name, path) in envoy_configs(dir.path()) {
        let out = Command::new(&envoy)
            .args(["--mode", "validate", "--disable-hot-restart", "-c"])
            .arg(&path)
            .env("L402_KEYS", KEYS)
            .env("L402_EDGE_TOKEN", EDGE_TOKEN)
            .env("L402_CONTEXT_KEY", CONTEXT_KEY)
            .output()
            .unwrap();
        let text = ok(&out, &format!("envoy --mode validate {name}"));
        assert!(text.contains("OK"), "{name}: {text}");
    }
    // And validate mode is not a rubber stamp: a bad filter config fails it.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(dir.path().join("envoy.test.yaml"))
        .unwrap()
        .replace("\"timeout_ms\":2000", "\"timeout_ms\":0");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "-c"])
        .arg(&bad)
        .env("L402_KEYS", KEYS)
        .env("L402_EDGE_TOKEN", EDGE_TOKEN)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invoice_service.timeout_ms"));
}

/// What Istio's Wasm image fetcher (istio/istio `pkg/wasm/imagefetcher.go`, `PrepareFetch`;
/// Envoy Gateway vendors the same code) accepts, for a manifest pulled from a registry:
/// - a Docker schema-2 manifest whose *last* layer is
///   `application/vnd.docker.image.rootfs.diff.tar.gzip` (`extractDockerImage`), or an OCI
///   manifest whose last layer is `application/vnd.oci.image.layer.v1.tar+gzip`
///   (`extractOCIStandardImage`): the "compat" variant, a tar.gz holding `plugin.wasm`;
/// - otherwise the "oci" variant: **exactly two** layers, one of them
///   `application/vnd.module.wasm.content.layer.v1+wasm` (`extractOCIArtifactImage`).
///
/// Returns the blob digest that holds the module and whether it is a tar.gz.
fn wasm_fetchers_accept(manifest: &serde_json::Value) -> Result<(String, bool), String> {
    let layers = manifest["layers"].as_array().ok_or("no layers")?;
    let last = layers
        .last()
        .ok_or("number of layers must be greater than zero")?;
    let docker = manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json";
    let compat = if docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    };
    if last["mediaType"] == compat {
        return Ok((last["digest"].as_str().unwrap_or_default().to_owned(), true));
    }
    if docker {
        return Err(format!(
            "invalid media type {} (expect {compat})",
            last["mediaType"]
        ));
    }
    if layers.len() != 2 {
        return Err(format!(
            "not compat (last layer {}), and the oci variant needs 2 layers, not {}",
            last["mediaType"],
            layers.len()
        ));
    }
    layers
        .iter()
        .find(|l| l["mediaType"] == "application/vnd.module.wasm.content.layer.v1+wasm")
        .map(|l| (l["digest"].as_str().unwrap_or_default().to_owned(), false))
        .ok_or_else(|| "no application/vnd.module.wasm.content.layer.v1+wasm layer".into())
}

#[test]
fn oci_artifact_is_pulled_from_a_real_registry_as_istio_reads_it() {
    let _ = ops_venv(); // installs skopeo and docker-registry
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("l402-filter");
    let wasm = artifacts::filter_wasm().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/build-oci.sh"))
        .arg(&layout)
        .arg("0.1.0")
        .env("L402_FILTER_WASM", &wasm)
        .output()
        .unwrap();
    ok(&out, "build-oci.sh");
    // A real OCI registry (the CNCF distribution registry, Debian's docker-registry) on a free
    // loopback port, its storage in the test's folder.
    let port = testkit::free_port();
    let config = dir.path().join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("registry-data").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("docker-registry");
    cmd.arg("serve").arg(&config);
    let registry = testkit::Proc::spawn("docker-registry", cmd, dir.path()).unwrap();
    let base = format!("http://127.0.0.1:{port}/v2/");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while testkit::http().get(&base).send().is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "registry: {}",
            registry.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let remote = format!("docker://127.0.0.1:{port}/l402/l402-filter:0.1.0");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:0.1.0", layout.display()))
        .arg(&remote)
        .output()
        .unwrap();
    ok(&out, "skopeo copy to the registry");
    // Pulled back from the registry, the manifest is one Istio's fetcher reads...
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", &remote])
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&ok(&out, "skopeo inspect")).unwrap();
    let (digest, tar_gz) = wasm_fetchers_accept(&manifest).unwrap();
    assert!(tar_gz, "the compat variant: the most widely read");
    // ...and the layer it reads holds plugin.wasm, byte for byte the built filter.
    let pulled = dir.path().join("pulled");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false", &remote])
        .arg(format!("dir:{}", pulled.display()))
        .output()
        .unwrap();
    ok(&out, "skopeo copy from the registry");
    let layer = pulled.join(digest.trim_start_matches("sha256:"));
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    ok(&out, "tar -xzf the layer");
    let module = std::fs::read(unpacked.join("plugin.wasm")).unwrap();
    assert!(
        module == std::fs::read(&wasm).unwrap(),
        "plugin.wasm differs from the built .wasm"
    );
    // The format this script used to write (one wasm-typed layer) is one the fetchers refuse.
    let old = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "layers": [{"mediaType": "application/vnd.module.wasm.content.layer.v1+wasm", "digest": "sha256:00"}]
    });
    assert!(wasm_fetchers_accept(&old).is_err());
    // Reproducible: building again gives the same manifest digest.
    let again = dir.path().join("again");
    ok(
        &Command::new("bash")
            .arg(repo_root().join("scripts/build-oci.sh"))
            .arg(&again)
            .arg("0.1.0")
            .env("L402_FILTER_WASM", &wasm)
            .output()
            .unwrap(),
        "build-oci.sh again",
    );
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        std::fs::read(again.join("index.json")).unwrap()
    );
}

#[test]
fn dockerfile_passes_hadolint_and_runs_unprivileged_with_a_health_check() {
    let venv = ops_venv();
    let path = repo_root().join("deploy/docker/Dockerfile");
    let out = Command::new(venv.join("bin/hadolint"))
        .arg(&path)
        .output()
        .unwrap();
    ok(&out, "hadolint");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.matches("\nFROM ").count() >= 2, "multi-stage");
    assert!(text.contains("\nUSER 10402:10402"));
    assert!(text.contains("HEALTHCHECK") && text.contains("\"probe\""));
    assert!(text.contains("-p invoice-service"));
    // The health check's command exists and fails when nothing listens.
    let bin = artifacts::invoice_service_bin().unwrap();
    let out = Command::new(bin)
        .args([
            "probe",
            &format!("http://127.0.0.1:{}/healthz", testkit::free_port()),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn systemd_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let bin = artifacts::invoice_service_bin().unwrap();
    let unit = std::fs::read_to_string(repo_root().join("deploy/systemd/invoice-service.service"))
        .unwrap()
        .replace("/usr/local/bin/invoice-service", &bin.display().to_string());
    let path = dir.path().join("invoice-service.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let text = ok(&out, "systemd-analyze verify");
    assert!(!text.contains("Unknown key"), "{text}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&path)
        .output()
        .unwrap();
    let text = ok(&out, "systemd-analyze security");
    let level: f64 = text
        .lines()
        .find_map(|l| l.split("invoice-service.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .expect("an exposure level");
    assert!(level <= 2.0, "exposure {level}:\n{text}");
}

/// `DynamicUser=yes` runs the service as a user that owns nothing: it cannot read a config
/// installed `0600 root` (or `0640 root`). The unit must hand it its files through
/// `LoadCredential=`, and the service must start reading them as an unprivileged user would
/// (`setpriv` to `nobody`, the files owned by it in a private directory, as systemd lays out
/// `/run/credentials/<unit>/`). Systemd itself is not PID 1 here, so the layout is reproduced.
#[test]
fn systemd_unit_hands_the_dynamic_user_its_config() {
    let text = std::fs::read_to_string(repo_root().join("deploy/systemd/invoice-service.service"))
        .unwrap();
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let config_arg = exec
        .split("--config ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let cred = config_arg
        .strip_prefix("%d/")
        .unwrap_or_else(|| panic!("ExecStart reads {config_arg}, not a credential (%d/...)"));
    let source = text
        .lines()
        .filter_map(|l| l.strip_prefix("LoadCredential="))
        .find_map(|l| l.strip_prefix(&format!("{cred}:")))
        .unwrap_or_else(|| panic!("no LoadCredential={cred}:..."));
    assert!(source.starts_with("/etc/l402/"), "{source}");
    assert!(text.contains("\nDynamicUser=yes"));
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("ExecStart=") && l.contains("/etc/l402")),
        "ExecStart must not read /etc/l402 directly"
    );

    let dir = tempfile::tempdir().unwrap();
    let run = |config: &Path| {
        let port = testkit::free_port();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(artifacts::invoice_service_bin().unwrap())
            .args(["serve", "--config"])
            .arg(config)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("L402_KEYS", KEYS)
            .env("L402_EDGE_TOKENS", EDGE_TOKEN);
        let mut proc = testkit::Proc::spawn("invoice-service-nobody", cmd, dir.path()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if testkit::http()
                .get(format!("http://127.0.0.1:{port}/healthz"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            if !proc.is_running() || std::time::Instant::now() > deadline {
                return Err(proc.logs());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    let config = "[server]\nlisten = \"127.0.0.1:0\"\n[backend]\nkind = \"dev\"\n[[services]]\nname = \"weather\"\nprice_sat = 10\n";
    use std::os::unix::fs::{PermissionsExt, chown};
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    // The credentials directory systemd makes: owned by the service's user, 0500; files 0400.
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join(cred), config).unwrap();
    std::fs::set_permissions(creds.join(cred), std::fs::Permissions::from_mode(0o400)).unwrap();
    chown(creds.join(cred), Some(65534), Some(65534)).unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o500)).unwrap();
    chown(&creds, Some(65534), Some(65534)).unwrap();
    run(&creds.join(cred)).expect("the service starts from its credentials directory");
    // The file where the install steps put it, root's, is out of the dynamic user's reach:
    // reading it directly (the old unit) fails.
    let etc = dir.path().join("etc-l402");
    std::fs::create_dir(&etc).unwrap();
    std::fs::set_permissions(&etc, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(etc.join("config.toml"), config).unwrap();
    std::fs::set_permissions(
        etc.join("config.toml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let logs = run(&etc.join("config.toml")).expect_err("nobody read a 0640 root file");
    assert!(logs.to_lowercase().contains("permission denied"), "{logs}");
}

/// The YAML documents of a file, as JSON (PyYAML from the ops venv).
fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let out = Command::new(ops_venv().join("bin/python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(path)
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out, "yaml")).unwrap()
}

/// A context key for the configs that sign `x-l402-context` (test-only).
const CONTEXT_KEY: &str = "6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d6d";

fn filter_env(name: &str) -> Option<String> {
    match name {
        "L402_KEYS" => Some(KEYS.to_owned()),
        "L402_EDGE_TOKEN" => Some(EDGE_TOKEN.to_owned()),
        "L402_CONTEXT_KEY" => Some(CONTEXT_KEY.to_owned()),
        _ => None,
    }
}

#[test]
fn kubernetes_manifests_validate() {
    let venv = ops_venv();
    let k8s = repo_root().join("deploy/k8s");
    let out = Command::new(venv.join("bin/kubernetes-validate"))
        .args(["-k", "1.33.0", "--strict"])
        .arg(k8s.join("invoice-service.yaml"))
        .output()
        .unwrap();
    ok(&out, "kubernetes-validate");
    // The ConfigMap's config is one the service accepts.
    let docs = yaml_docs(&k8s.join("invoice-service.yaml"));
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let env: HashMap<&str, &str> = HashMap::from([
        ("L402_KEYS", KEYS),
        ("L402_EDGE_TOKENS", EDGE_TOKEN),
        ("L402_LNBITS_INVOICE_KEY", "k"),
        ("L402_REDIS_URL", "redis://:secret@redis.l402.svc:6379"),
    ]);
    let cfg =
        invoice_service::config::Config::parse(cm["data"]["config.toml"].as_str().unwrap(), &env)
            .unwrap();
    // Two replicas: one spent-set they share.
    assert!(matches!(
        cfg.spent_set,
        invoice_service::config::SpentSetConfig::Redis { .. }
    ));
    // The CRDs' plugin configurations are ones the filter accepts (kubernetes-validate has no
    // schemas for Istio's and Envoy Gateway's resources).
    let wp = &yaml_docs(&k8s.join("istio-wasmplugin.yaml"))[0];
    assert_eq!(wp["kind"], "WasmPlugin");
    assert!(wp["spec"]["url"].as_str().unwrap().starts_with("oci://"));
    assert_eq!(wp["spec"]["failStrategy"], "FAIL_CLOSE");
    let cfg = wp["spec"]["pluginConfig"].to_string();
    let parsed = l402_filter::FilterConfig::parse(cfg.as_bytes(), &filter_env).unwrap();
    assert!(
        parsed
            .edge
            .settings()
            .routes
            .route_for("/weather/today")
            .is_some()
    );
    let eg = &yaml_docs(&k8s.join("envoy-gateway.yaml"))[0];
    assert_eq!(eg["kind"], "EnvoyExtensionPolicy");
    let wasm = &eg["spec"]["wasm"][0];
    assert_eq!(wasm["failOpen"], false);
    let cfg = wasm["config"].to_string();
    l402_filter::FilterConfig::parse(cfg.as_bytes(), &filter_env).unwrap();
    // The cluster the Envoy Gateway policy names exists: an HTTPRoute of that name references
    // the invoice-service, and the Service's namespace grants the cross-namespace reference.
    let docs = yaml_docs(&k8s.join("envoy-gateway.yaml"));
    let cluster = eg["spec"]["wasm"][0]["config"]["invoice_service"]["cluster"]
        .as_str()
        .unwrap()
        .to_owned();
    let route = docs
        .iter()
        .find(|d| d["kind"] == "HTTPRoute")
        .expect("envoy-gateway.yaml ships the invoice-service's HTTPRoute");
    let ns = route["metadata"]["namespace"].as_str().unwrap();
    let name = route["metadata"]["name"].as_str().unwrap();
    assert_eq!(cluster, format!("httproute/{ns}/{name}/rule/0"));
    let backend = &route["spec"]["rules"][0]["backendRefs"][0];
    let service = yaml_docs(&k8s.join("invoice-service.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Service")
        .unwrap();
    assert_eq!(backend["name"], service["metadata"]["name"]);
    assert_eq!(backend["namespace"], service["metadata"]["namespace"]);
    assert_eq!(backend["port"], service["spec"]["ports"][0]["port"]);
    if backend["namespace"].as_str() != Some(ns) {
        let grant = docs
            .iter()
            .find(|d| d["kind"] == "ReferenceGrant")
            .expect("a cross-namespace backendRef needs a ReferenceGrant");
        assert_eq!(grant["metadata"]["namespace"], backend["namespace"]);
        assert_eq!(grant["spec"]["from"][0]["kind"], "HTTPRoute");
        assert_eq!(grant["spec"]["from"][0]["namespace"], ns);
        assert_eq!(grant["spec"]["to"][0]["kind"], "Service");
        assert_eq!(grant["spec"]["to"][0]["name"], backend["name"]);
    }
    // And each ships the boundary settings beside the plugin (docs/ENVOY.md).
    let ctp = docs
        .iter()
        .find(|d| d["kind"] == "ClientTrafficPolicy")
        .unwrap();
    assert_eq!(ctp["kind"], "ClientTrafficPolicy");
    assert_eq!(ctp["spec"]["path"]["escapedSlashesAction"], "RejectRequest");
    assert_eq!(ctp["spec"]["path"]["disableMergeSlashes"], false);
    assert_eq!(
        ctp["spec"]["headers"]["withUnderscoresAction"],
        "RejectRequest"
    );
    assert_eq!(
        ctp["spec"]["clientIPDetection"]["xForwardedFor"]["numTrustedHops"],
        0
    );
    let ef = &yaml_docs(&k8s.join("istio-wasmplugin.yaml"))[1];
    assert_eq!(ef["kind"], "EnvoyFilter");
    let hcm = &ef["spec"]["configPatches"][0]["patch"]["value"]["typed_config"];
    assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
    assert_eq!(
        hcm["common_http_protocol_options"]["headers_with_underscores_action"],
        "REJECT_REQUEST"
    );
    assert_eq!(hcm["use_remote_address"], true);
}

/// The documented bootstrap routes on the path the origin will read, and the end-to-end tests
/// (the boundary matrix) run with the very same settings.
#[test]
fn the_example_bootstrap_sets_the_boundary() {
    let root = testkit::repo_root();
    let hcm = |doc: &serde_json::Value| {
        doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            .clone()
    };
    let example = hcm(&yaml_docs(&root.join("envoy-config/envoy.example.yaml"))[0]);
    for (k, v) in [
        ("normalize_path", serde_json::json!(true)),
        ("merge_slashes", serde_json::json!(true)),
        (
            "path_with_escaped_slashes_action",
            serde_json::json!("REJECT_REQUEST"),
        ),
        ("use_remote_address", serde_json::json!(true)),
    ] {
        assert_eq!(example[k], v, "envoy.example.yaml: {k}");
    }
    assert_eq!(
        example["common_http_protocol_options"]["headers_with_underscores_action"],
        "REJECT_REQUEST"
    );
    let routes = &example["route_config"]["virtual_hosts"][0]["routes"];
    assert_eq!(routes[0]["match"]["path_separated_prefix"], "/weather");
    let dir = tempfile::tempdir().unwrap();
    let mut test = std::fs::read_to_string(root.join("envoy-config/envoy.test.yaml.tmpl"))
        .unwrap()
        .replace("#{{NORMALIZE}}", "");
    for p in [
        "LISTEN_PORT",
        "ADMIN_PORT",
        "UPSTREAM_PORT",
        "INVOICE_PORT",
        "WASM",
        "FILTER_CONFIG",
    ] {
        test = test.replace(&format!("{{{{{p}}}}}"), "1");
    }
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, test).unwrap();
    let t = hcm(&yaml_docs(&path)[0]);
    for k in [
        "normalize_path",
        "merge_slashes",
        "path_with_escaped_slashes_action",
        "common_http_protocol_options",
        "use_remote_address",
    ] {
        assert_eq!(
            t[k], example[k],
            "the test bootstrap differs from the example in {k}"
        );
    }
}

/// The alerts load in Prometheus's own rule engine, the scrape config that names their jobs is
/// valid, and their unit tests pass: "service down" fires when the only replica is down *and*
/// when the target disappears (`up == 0` alone is silent then), not when one of two is.
#[test]
fn alerts_pass_promtool_and_their_unit_tests() {
    let promtool = ops_venv().join("bin/promtool");
    let dir = repo_root().join("deploy/prometheus");
    // Debian builds Prometheus without Kubernetes service discovery: the scrape config is
    // checked with its `kubernetes_sd_configs` swapped for static targets (everything else --
    // job names, relabeling, rule files -- as shipped).
    let tmp = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(dir.join("prometheus.yaml")).unwrap();
    let swapped = shipped.replace(
        "  kubernetes_sd_configs:\n  - role: pod\n    namespaces: { names: [l402] }\n",
        "  static_configs:\n  - targets: [\"10.0.0.7:8402\"]\n",
    );
    assert_ne!(
        swapped, shipped,
        "the kubernetes_sd_configs block moved: update this test"
    );
    std::fs::write(tmp.path().join("prometheus.yaml"), swapped).unwrap();
    std::fs::copy(dir.join("alerts.yaml"), tmp.path().join("alerts.yaml")).unwrap();
    let syntax = tmp.path().join("prometheus.yaml").display().to_string();
    for args in [
        vec!["check", "rules", "alerts.yaml"],
        vec!["check", "config", "--syntax-only", syntax.as_str()],
        vec!["test", "rules", "alerts.test.yaml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        ok(&out, &format!("promtool {}", args.join(" ")));
    }
    // The job the alerts select is one the shipped scrape config defines.
    let config = &yaml_docs(&dir.join("prometheus.yaml"))[0];
    let jobs: Vec<&str> = config["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    let alerts = std::fs::read_to_string(dir.join("alerts.yaml")).unwrap();
    for part in alerts.split("job=\"").skip(1) {
        let job = part.split('"').next().unwrap();
        assert!(
            jobs.contains(&job),
            "alerts select job {job}, which no scrape config defines"
        );
    }
}

#[test]
fn example_alerts_name_metrics_that_exist() {
    let logs = tempfile::tempdir().unwrap();
    let stack = Stack::start(logs.path(), &filter_config(2000, &[]), 1).unwrap();
    assert_eq!(
        get(&stack.envoy.url("/weather"), None).unwrap().status(),
        402
    );
    let envoy_stats = testkit::http()
        .get(format!(
            "http://127.0.0.1:{}/stats/prometheus",
            stack.envoy.admin
        ))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let service_metrics = testkit::http()
        .get(format!("{}/metrics", stack.service.url()))
        .send()
        .unwrap()
        .text()
        .unwrap();
    if std::env::var_os("L402_PRINT_STATS").is_some() {
        println!("{envoy_stats}");
    }
    let alerts = &yaml_docs(&repo_root().join("deploy/prometheus/alerts.yaml"))[0];
    let mut checked = 0;
    for rule in alerts["groups"][0]["rules"].as_array().unwrap() {
        let expr = rule["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("l402_") || word.starts_with("wasmcustom_l402_") {
                let exported = |text: &str| {
                    text.lines()
                        .any(|l| !l.starts_with('#') && l.starts_with(word))
                        || text.contains(&format!("# TYPE {word} "))
                };
                // Labelled families appear in a scrape only once observed: the service's
                // registered names count too.
                use invoice_service::metrics as m;
                let registered = [
                    m::CHALLENGES,
                    m::BACKEND_LATENCY,
                    m::BACKEND_ERRORS,
                    m::POOL_DEPTH,
                    m::POOL_HITS,
                    m::POOL_MISSES,
                    m::POOL_DROPPED,
                ]
                .contains(&word);
                assert!(
                    exported(&envoy_stats) || exported(&service_metrics) || registered,
                    "alert {} names {word}, which nothing exports",
                    rule["alert"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 7, "{checked}");
}

/// Blocks after a `<!-- doc-test -->` line, from README.md and docs/*.md.
fn doc_tests() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut rest = text.as_str();
        // The marker on a line of its own, the block right after it.
        while let Some(i) = rest.find("\n<!-- doc-test -->\n```sh\n") {
            rest = &rest[i..];
            let start = rest.find("```sh\n").unwrap() + "```sh\n".len();
            let end = rest[start..].find("```").unwrap() + start;
            out.push((
                format!("{}", f.strip_prefix(&root).unwrap().display()),
                rest[start..end].to_owned(),
            ));
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_tested_doc_block_runs() {
    let _ = ops_venv();
    let bin = artifacts::invoice_service_bin().unwrap();
    let envoy = artifacts::envoy_bin().unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.parent().unwrap().display(),
        envoy.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let blocks = doc_tests();
    assert!(blocks.len() >= 6, "{} doc-test blocks", blocks.len());
    for (file, block) in blocks {
        // From the repository root, as the docs say; blocks write only to temporary folders.
        let scratch = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &block])
            .current_dir(repo_root())
            .env("PATH", &path)
            .env("TMPDIR", scratch.path())
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .output()
            .unwrap();
        ok(&out, &format!("{file}: doc block\n{block}"));
    }
}
