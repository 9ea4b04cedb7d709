//! kubesim as kubectl 1.35 sees it, through the `kubesim` binary and the kubeconfig it writes.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{ok, run, stderr, tool};

/// The `kubesim` binary on a free port; stopped when dropped.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let kubeconfig = dir.path().join("kubeconfig");
        let child = Command::new(env!("CARGO_BIN_EXE_kubesim"))
            .args(["--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(&kubeconfig)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start kubesim: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !kubeconfig.exists() {
            assert!(Instant::now() < deadline, "kubesim wrote no kubeconfig");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn home(&self) -> &Path {
        self.dir.path()
    }

    fn kubectl(&self, args: &[&str]) -> std::process::Output {
        run(&tool("kubectl"), &self.kubeconfig(), self.home(), args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap_or_else(|e| panic!("write {name}: {e}"));
    p
}

#[test]
fn kubectl_create_get_apply_label_patch_delete() {
    let s = Server::start();
    let version = ok(s.kubectl(&["version", "-o", "json"]), "kubectl version");
    assert_eq!(json(&version)["serverVersion"]["minor"], "35");

    let file = write(
        s.home(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  region: nghe-an\n",
    );
    let file = file.to_string_lossy().into_owned();
    ok(s.kubectl(&["create", "-f", &file]), "kubectl create -f");
    let got = json(&ok(
        s.kubectl(&["get", "configmap", "settings", "-o", "json"]),
        "kubectl get",
    ));
    assert_eq!(got["data"]["region"], "nghe-an");
    assert!(got["metadata"]["uid"].is_string() && got["metadata"]["resourceVersion"].is_string());

    let again = s.kubectl(&["create", "-f", &file]);
    assert!(
        !again.status.success() && stderr(&again).contains("AlreadyExists"),
        "{}",
        stderr(&again)
    );

    // Typed-client create (sent as protobuf by kubectl) and server-side apply.
    ok(
        s.kubectl(&["create", "namespace", "agency"]),
        "kubectl create namespace",
    );
    ok(
        s.kubectl(&[
            "create",
            "configmap",
            "typed",
            "-n",
            "agency",
            "--from-literal=a=1",
        ]),
        "kubectl create configmap",
    );
    let applied = write(
        s.home(),
        "applied.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: agency\ndata:\n  k: v\n",
    );
    let out = ok(
        s.kubectl(&["apply", "--server-side", "-f", &applied.to_string_lossy()]),
        "kubectl apply --server-side",
    );
    assert!(out.contains("serverside-applied"), "{out}");
    let got = json(&ok(
        s.kubectl(&[
            "get",
            "cm",
            "applied",
            "-n",
            "agency",
            "-o",
            "json",
            "--show-managed-fields",
        ]),
        "get",
    ));
    assert_eq!(got["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(got["metadata"]["managedFields"][0]["operation"], "Apply");

    ok(
        s.kubectl(&["label", "cm", "applied", "-n", "agency", "tier=front"]),
        "kubectl label",
    );
    ok(
        s.kubectl(&[
            "patch",
            "cm",
            "applied",
            "-n",
            "agency",
            "-p",
            r#"{"data":{"k2":"v2"}}"#,
        ]),
        "kubectl patch (strategic)",
    );
    ok(
        s.kubectl(&[
            "patch",
            "cm",
            "applied",
            "-n",
            "agency",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/data/k"}]"#,
        ]),
        "kubectl patch (json)",
    );
    let listed = json(&ok(
        s.kubectl(&[
            "get",
            "cm",
            "-n",
            "agency",
            "-l",
            "tier=front",
            "-o",
            "json",
        ]),
        "get -l",
    ));
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["data"], serde_json::json!({"k2": "v2"}));

    let table = ok(
        s.kubectl(&["get", "cm", "-n", "agency"]),
        "kubectl get (table)",
    );
    assert!(
        table.starts_with("NAME") && table.contains("applied") && table.contains("typed"),
        "{table}"
    );

    ok(
        s.kubectl(&["delete", "cm", "applied", "-n", "agency"]),
        "kubectl delete",
    );
    let missing = s.kubectl(&["get", "cm", "applied", "-n", "agency"]);
    assert!(
        !missing.status.success() && stderr(&missing).contains("NotFound"),
        "{}",
        stderr(&missing)
    );
    ok(
        s.kubectl(&["delete", "namespace", "agency"]),
        "kubectl delete namespace",
    );
    let gone = s.kubectl(&["get", "cm", "typed", "-n", "agency"]);
    assert!(
        !gone.status.success(),
        "the namespace's contents went with it"
    );
}

#[test]
fn kubectl_replace_with_a_stale_resource_version_conflicts() {
    let s = Server::start();
    ok(
        s.kubectl(&["create", "configmap", "doc", "--from-literal=v=1"]),
        "create",
    );
    let old = ok(s.kubectl(&["get", "cm", "doc", "-o", "json"]), "get");
    ok(
        s.kubectl(&[
            "patch",
            "cm",
            "doc",
            "--type=merge",
            "-p",
            r#"{"data":{"v":"2"}}"#,
        ]),
        "patch",
    );
    let mut stale = json(&old);
    stale["data"]["v"] = "3".into();
    let file = write(s.home(), "stale.json", &stale.to_string());
    let out = s.kubectl(&["replace", "-f", &file.to_string_lossy()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the object has been modified"),
        "{}",
        stderr(&out)
    );
    let now = json(&ok(s.kubectl(&["get", "cm", "doc", "-o", "json"]), "get"));
    assert_eq!(now["data"]["v"], "2", "the stale replace changed nothing");
}

#[test]
fn kubectl_get_watch_streams_changes() {
    let s = Server::start();
    ok(
        s.kubectl(&["create", "configmap", "marker"]),
        "create marker",
    );
    let mut watch = Command::new(tool("kubectl"))
        .args([
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ])
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.home())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("kubectl get --watch: {e}"));
    let stdout = watch.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        // One JSON document per event, on one line or spread over several.
        let mut buf = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            buf.push_str(&line);
            buf.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&buf) {
                let _ = tx.send(v);
                buf.clear();
            }
        }
    });
    // Once the marker from kubectl's initial list is printed, kubectl watches from that list's
    // resourceVersion: every later change reaches it as its own event.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "kubectl never listed the marker");
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(200))
            && ev["object"]["metadata"]["name"] == "marker"
        {
            assert_eq!(ev["type"], "ADDED");
            break;
        }
    }
    ok(
        s.kubectl(&["create", "configmap", "watched", "--from-literal=a=1"]),
        "create",
    );
    ok(
        s.kubectl(&[
            "patch",
            "cm",
            "watched",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"2"}}"#,
        ]),
        "patch",
    );
    ok(s.kubectl(&["delete", "cm", "watched"]), "delete");
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while events.len() < 3 && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(200))
            && ev["object"]["metadata"]["name"] == "watched"
        {
            events.push(format!(
                "{} {}",
                ev["type"].as_str().unwrap_or("?"),
                ev["object"]["data"]["a"].as_str().unwrap_or("-")
            ));
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert_eq!(events, ["ADDED 1", "MODIFIED 2", "DELETED 2"]);
}

#[test]
fn kubectl_custom_resources_are_validated_against_their_schema() {
    let s = Server::start();
    let crd = write(
        s.home(),
        "crd.yaml",
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: string, enum: [small, large]}
"#,
    );
    ok(
        s.kubectl(&["apply", "--server-side", "-f", &crd.to_string_lossy()]),
        "apply CRD",
    );
    let good = write(
        s.home(),
        "good.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: small}\n",
    );
    ok(
        s.kubectl(&["apply", "-f", &good.to_string_lossy()]),
        "apply a valid widget",
    );
    let unknown = write(
        s.home(),
        "unknown.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\nspec: {size: small, colour: red}\n",
    );
    let out = s.kubectl(&["create", "-f", &unknown.to_string_lossy()]);
    assert!(
        !out.status.success() && stderr(&out).contains("unknown field \"spec.colour\""),
        "{}",
        stderr(&out)
    );
    let bad = write(
        s.home(),
        "bad.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: b}\nspec: {size: huge}\n",
    );
    let out = s.kubectl(&["create", "-f", &bad.to_string_lossy()]);
    assert!(
        !out.status.success() && stderr(&out).contains("spec.size: Unsupported value: \"huge\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kubectl_explain_reads_a_custom_resources_schema() {
    let s = Server::start();
    let crd = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/tenants.govcloud.io.yaml"
    );
    ok(
        s.kubectl(&["apply", "--server-side", "-f", crd]),
        "apply CRD",
    );
    let out = std::time::Instant::now();
    let explained = loop {
        let o = s.kubectl(&["explain", "tenant.spec.billing"]);
        if o.status.success() || out.elapsed() > std::time::Duration::from_secs(10) {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let text = ok(explained, "kubectl explain tenant.spec.billing");
    assert!(text.contains("KIND:       Tenant"), "{text}");
    assert!(text.contains("plan"), "{text}");
    assert!(text.contains("costCenter"), "{text}");
}

#[test]
fn kubectl_create_deployment_sends_protobuf_that_is_understood() {
    let s = Server::start();
    ok(
        s.kubectl(&[
            "create",
            "deployment",
            "web",
            "--image=registry.example.gov.vn/web:1.0",
            "--replicas=2",
            "--port=8080",
        ]),
        "kubectl create deployment",
    );
    let d = json(&ok(
        s.kubectl(&["get", "deployment", "web", "-o", "json"]),
        "get",
    ));
    assert_eq!(d["spec"]["replicas"], 2, "{d}");
    assert_eq!(d["spec"]["selector"]["matchLabels"]["app"], "web", "{d}");
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["app"], "web",
        "{d}"
    );
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["name"], "web", "{d}");
    assert_eq!(c["image"], "registry.example.gov.vn/web:1.0", "{d}");
    assert_eq!(c["ports"][0]["containerPort"], 8080, "{d}");
}

#[test]
fn pod_security_refuses_pods_and_warns_on_templates() {
    let s = Server::start_with(&["--pod-security"]);
    ok(
        s.kubectl(&["create", "namespace", "agency"]),
        "create namespace",
    );
    ok(
        s.kubectl(&[
            "label",
            "namespace",
            "agency",
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        ]),
        "label",
    );
    let created = s.kubectl(&[
        "-n",
        "agency",
        "create",
        "deployment",
        "web",
        "--image=registry.example.gov.vn/web:1.0",
    ]);
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(created.status.success(), "{stderr}");
    assert!(
        stderr.contains("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{stderr}"
    );
    let refused = s.kubectl(&[
        "-n",
        "agency",
        "run",
        "root",
        "--image=registry.example.gov.vn/web:1.0",
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success());
    assert!(
        stderr.contains("violates PodSecurity \"restricted:latest\""),
        "{stderr}"
    );
}
