//! The deployment files: the Kustomize base and overlays render offline (`kubectl kustomize`),
//! validate against the schema of a recent Kubernetes (`kubernetes-validate --strict`) and pass
//! the security scan (`checkov`), where every skipped check carries its reason and is one the
//! scan would otherwise report. The rendered DaemonSet has what a node agent needs, its config
//! parses with the daemon's own parser, and the Helm chart's templates only use values that
//! `values.yaml` defines. The tools come from tests/python/requirements-deploy.txt.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value;

const OVERLAYS: [&str; 3] = ["base", "overlays/privileged", "overlays/kubelet-source"];
/// The Kubernetes release whose schema the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.37.0";
const CAPABILITIES: [&str; 6] = ["BPF", "PERFMON", "NET_ADMIN", "SYS_PTRACE", "SYS_RESOURCE", "DAC_READ_SEARCH"];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// A tool installed by pip: from the scripts directory of the `python3` on PATH (pip may not
/// refresh version-manager shims), else from PATH.
fn tool(name: &str) -> Command {
    static SCRIPTS: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let scripts = SCRIPTS.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
            .output()
            .ok()?;
        Some(PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()))
    });
    let path = scripts.as_ref().map(|d| d.join(name)).filter(|p| p.is_file()).unwrap_or_else(|| PathBuf::from(name));
    let mut c = Command::new(path);
    c.env("PIP_ROOT_USER_ACTION", "ignore");
    c
}

fn output(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{what}: cannot start {cmd:?} ({e}); `cargo xtask setup` installs tests/python/requirements-deploy.txt")
    });
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn render(overlay: &str) -> String {
    let dir = deploy_dir().join("kubernetes").join(overlay);
    output(tool("kubectl").arg("kustomize").arg(&dir), &format!("kubectl kustomize {overlay}"))
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `checkov.io/skipN: "CKV_…=reason"` annotations of a rendered file: check id → reason.
fn skips(docs: &[Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in docs {
        let Some(ann) = d["metadata"]["annotations"].as_mapping() else { continue };
        for (k, v) in ann {
            if k.as_str().is_some_and(|k| k.starts_with("checkov.io/skip")) {
                let (id, reason) = v.as_str().unwrap().split_once('=').expect("skip annotations read ID=reason");
                out.insert(id.to_owned(), reason.to_owned());
            }
        }
    }
    out
}

#[test]
fn kustomize_renders_validate_and_pass_the_security_scan() {
    let dir = scratch("scan");
    let mut expected_skips = BTreeMap::new();
    for overlay in OVERLAYS {
        let text = render(overlay);
        let name = overlay.rsplit('/').next().unwrap();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &text).unwrap();
        let out = output(
            tool("kubernetes-validate").args(["--strict", "--quiet", "-k", KUBERNETES_VERSION]).arg(&file),
            &format!("kubernetes-validate {overlay}"),
        );
        assert!(!out.contains("ERROR"), "{overlay}: {out}");
        let docs = documents(&text);
        assert_eq!(docs.len(), 7, "{overlay}: namespace, service account, role, binding, config, service, daemonset");
        let s = skips(&docs);
        for (id, reason) in &s {
            assert!(reason.len() >= 20, "{overlay}: skip of {id} needs a real reason: {reason:?}");
        }
        // The same manifests without skip annotations: the scan must report exactly the skipped
        // checks, so no skip hides nothing and no finding is left unexplained.
        let bare: Vec<String> = docs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                if let Some(ann) = d["metadata"].get_mut("annotations").and_then(Value::as_mapping_mut) {
                    ann.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("checkov.io/skip")));
                }
                serde_yaml::to_string(&d).unwrap()
            })
            .collect();
        std::fs::write(dir.join(format!("{name}-unskipped.yaml")), bare.join("---\n")).unwrap();
        expected_skips.insert(name.to_owned(), s);
    }
    // One checkov run per file (a run over a directory merges resources of the same name),
    // all started at once.
    let runs: Vec<(String, std::process::Child)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|file| {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            let child = tool("checkov")
                .args(["--framework", "kubernetes", "--skip-download", "--quiet", "--compact", "-o", "json", "-f"])
                .arg(&file)
                .env("BC_SKIP_MAPPING", "TRUE")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("starting checkov ({e}); `cargo xtask setup` installs it"));
            (name, child)
        })
        .collect();
    let mut failed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, child) in runs {
        let out = child.wait_with_output().unwrap();
        let json = String::from_utf8_lossy(&out.stdout);
        let report: Json =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("checkov JSON of {name}: {e}: {json}"));
        assert!(report["summary"]["resource_count"].as_u64().unwrap_or(0) >= 7, "{name}: checkov scanned {report}");
        let ids = report["results"]["failed_checks"].as_array().into_iter().flatten();
        failed.entry(name).or_default().extend(ids.map(|c| c["check_id"].as_str().unwrap().to_owned()));
    }
    for (name, s) in &expected_skips {
        assert_eq!(failed[name], BTreeSet::new(), "{name}: checkov findings not addressed");
        let unskipped = failed.get(&format!("{name}-unskipped")).cloned().unwrap_or_default();
        let skipped: BTreeSet<String> = s.keys().cloned().collect();
        assert_eq!(unskipped, skipped, "{name}: the skip annotations must be exactly the findings without them");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_daemonset_is_a_least_privilege_node_agent() {
    let docs = documents(&render("base"));
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(pod["tolerations"][0]["operator"], "Exists");
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    let added: BTreeSet<&str> =
        sc["capabilities"]["add"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(added, CAPABILITIES.into_iter().collect());
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    for k in ["requests", "limits"] {
        assert!(c["resources"][k]["cpu"].is_string() && c["resources"][k]["memory"].is_string(), "resources.{k}");
    }
    let env: BTreeMap<&str, &Value> =
        c["env"].as_sequence().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e)).collect();
    assert_eq!(env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");
    // The agent's listeners bind the node address (the daemon's default is loopback), which
    // Kubernetes fills in from the downward API.
    assert_eq!(env["NODE_IP"]["valueFrom"]["fieldRef"]["fieldPath"], "status.hostIP");
    let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for (flag, port) in [
        ("--agent-compact-addr", 6831),
        ("--agent-binary-addr", 6832),
        ("--sampling-addr", 5778),
        ("--otlp-grpc-addr", 4317),
        ("--otlp-http-addr", 4318),
        ("--zipkin-addr", 9411),
    ] {
        assert!(args.contains(&format!("{flag}=$(NODE_IP):{port}").as_str()), "{flag} in {args:?}");
    }
    let argv =
        std::iter::once("tracer-daemon".to_owned()).chain(args.iter().map(|a| a.replace("$(NODE_IP)", "10.0.0.5")));
    let cli = <tracer_daemon::daemon::Cli as clap::Parser>::try_parse_from(argv).unwrap();
    assert_eq!(cli.export.sampling_addr, "10.0.0.5:5778", "the arguments parse with the daemon's parser");
    let host_paths: BTreeSet<&str> =
        pod["volumes"].as_sequence().unwrap().iter().filter_map(|v| v["hostPath"]["path"].as_str()).collect();
    for p in ["/sys/fs/bpf", "/sys/kernel/tracing", "/sys/fs/cgroup", "/proc"] {
        assert!(host_paths.contains(p), "hostPath {p} in {host_paths:?}");
    }
    // The privileged overlay is the only one with full privilege.
    let priv_docs = documents(&render("overlays/privileged"));
    assert_eq!(
        of_kind(&priv_docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"],
        true
    );
}

#[test]
fn the_rendered_configs_parse_with_the_daemons_parser() {
    for overlay in OVERLAYS {
        let docs = documents(&render(overlay));
        let text = of_kind(&docs, "ConfigMap")["data"]["config.yaml"].as_str().unwrap().to_owned();
        let cfg = tracer_daemon::config::Config::from_yaml(&text, Path::new(overlay))
            .unwrap_or_else(|e| panic!("{overlay}: {e}"));
        assert_eq!(cfg.kubernetes.proc_root, Path::new("/host/proc"), "{overlay}");
        assert_eq!(cfg.export.collector.len(), 1, "{overlay}");
        let rules = &of_kind(&docs, "ClusterRole")["rules"][0];
        let want = if overlay.ends_with("kubelet-source") { "nodes/proxy" } else { "pods" };
        assert_eq!(rules["resources"][0], want, "{overlay}");
    }
}

/// Every `.Values.a.b…` path used by a template.
fn value_paths(template: &str) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(i) = rest.find(".Values.") {
        rest = &rest[i + ".Values.".len()..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_')).unwrap_or(rest.len());
        out.insert(rest[..end].trim_end_matches('.').split('.').map(str::to_owned).collect());
    }
    out
}

/// No Helm renderer can be installed from the project's package sources, so the chart is
/// checked as far as it can be without one: metadata, values, and template structure.
#[test]
fn the_helm_chart_uses_only_defined_values_and_well_formed_templates() {
    let chart = deploy_dir().join("helm/tracer");
    let meta: Value = serde_yaml::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"), "appVersion follows the workspace version");
    let values: Value = serde_yaml::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let caps: BTreeSet<&str> =
        values["capabilities"].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(caps, CAPABILITIES.into_iter().collect());
    assert_eq!(values["privileged"], false);
    // The daemon settings the chart passes through must be ones the daemon knows.
    let extra = serde_yaml::to_string(&values["extraConfig"]).unwrap();
    tracer_daemon::config::Config::from_yaml(&extra, Path::new("values.yaml extraConfig")).unwrap();

    let mut used = BTreeSet::new();
    for entry in std::fs::read_dir(chart.join("templates")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(text.matches("{{").count(), text.matches("}}").count(), "{name}: unbalanced actions");
        let actions: Vec<&str> = text
            .split("{{")
            .skip(1)
            .map(|a| a.split("}}").next().unwrap().trim_matches(|c: char| c == '-' || c.is_whitespace()))
            .collect();
        let opens =
            actions.iter().filter(|a| ["if ", "with ", "range ", "define "].iter().any(|k| a.starts_with(k))).count();
        let ends = actions.iter().filter(|a| **a == "end").count();
        assert_eq!(opens, ends, "{name}: every if/with/range/define has its end");
        used.extend(value_paths(&text));
    }
    assert!(used.len() > 10, "{used:?}");
    for path in used {
        let mut v = &values;
        for key in &path {
            assert!(
                v.get(key.as_str()).is_some(),
                "templates use .Values.{} which values.yaml does not define",
                path.join(".")
            );
            v = &v[key.as_str()];
        }
    }
}
