//! Isolation proven from the outside: the checks of the Kubernetes multi-tenancy benchmark
//! (kubernetes-sigs/multi-tenancy, `benchmarks/kubectl-mtb/test/benchmarks/*/config.yaml`),
//! run with real kubectl and nothing but the kubeconfig the API issued to an agency, on a
//! platform installed as the chart installs it: kubesim over TLS authenticating tokens and
//! authorizing with RBAC, enforcing Pod Security Admission and the ResourceQuota; the chart's
//! RBAC applied; the operator and the API each under their own ServiceAccount's token.
//!
//! It prints a table check → result and fails on any failure. A deliberately weakened tenant
//! ClusterRole (test-only) makes it fail.

use std::collections::BTreeMap;
use std::time::Duration;

use govcloud_e2e::chart::{apply_all, helm_template, token_of};
use govcloud_e2e::{Kubectl, TestResult, eventually};
use govcloud_tenant::crd::{Phase, Tenant};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use sqlx::PgPool;

const CERT: &[u8] = include_bytes!("../../../api/tests/fixtures/tls.crt");
const KEY: &[u8] = include_bytes!("../../../api/tests/fixtures/tls.key");
const CA: &[u8] = include_bytes!("../../../api/tests/fixtures/ca.crt");

/// The agency under test, its namespace, and another agency's.
const AGENCY: &str = "demo-stttt";
const OWN: &str = "demo-stttt-prod";
const OTHER: &str = "demo-sotc-prod";

/// A platform as the chart installs it, with an agency's kubeconfig issued by the API.
struct Platform {
    sim: kubesim::KubeSim,
    admin: Kubectl,
    agency: Kubectl,
    operator: tokio::task::JoinHandle<()>,
    _api: tokio::task::JoinHandle<()>,
}

async fn platform(db: PgPool) -> TestResult<Platform> {
    let config = kubesim::Config {
        authorization: true,
        pod_security: true,
        tls: Some(kubesim::Tls {
            cert_pem: CERT.to_vec(),
            key_pem: KEY.to_vec(),
            ca_pem: CA.to_vec(),
        }),
        ..kubesim::Config::default()
    };
    let sim = kubesim::KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    let admin_client = sim.client()?;
    Api::<Namespace>::all(admin_client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "govcloud-system"}}))?,
        )
        .await?;
    apply_all(&admin_client, &helm_template(&[])?).await?;

    let operator_client =
        sim.client_with_token(&token_of(&admin_client, "govcloud-operator").await?)?;
    let operator = tokio::spawn(govcloud_operator::controller::run(
        operator_client,
        govcloud_operator::controller::Settings::default(),
        std::sync::Arc::new(govcloud_operator::telemetry::Telemetry::default()),
        std::future::pending(),
    ));
    let api_client = sim.client_with_token(&token_of(&admin_client, "govcloud-api").await?)?;
    let target = govcloud_api::cluster::KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: sim.ca_data(),
        insecure_skip_tls_verify: false,
    };
    let (state, watches) = govcloud_api::serve::state(
        db,
        api_client,
        target,
        None,
        govcloud_api::Settings::default(),
    );
    let api = tokio::spawn(watches);
    let dir = tempfile::tempdir()?;
    let tokens = govcloud_api::dev::seed::seed(&state, &dir.path().join("tokens.json")).await?;
    let tenants = Api::<Tenant>::all(admin_client.clone());
    for name in [AGENCY, "demo-sotc", "demo-ministry-data"] {
        eventually(&format!("{name} Ready"), || async {
            let t = tenants.get(name).await.map_err(|e| e.to_string())?;
            let s = t.status.unwrap_or_default();
            (s.phase == Some(Phase::Ready))
                .then_some(())
                .ok_or(format!("{:?}", s.conditions.first().map(|c| &c.message)))
        })
        .await?;
    }
    // The kubeconfig the agency's admin gets, as they would ask for it.
    let router = govcloud_api::app(state);
    let token = tokens.get("tenant-admin").ok_or("no tenant admin")?.clone();
    let issued: Value = eventually("a kubeconfig issued", || {
        let router = router.clone();
        let token = token.clone();
        async move {
            use tower::ServiceExt;
            let request = axum::http::Request::post(format!("/v1/tenants/{AGENCY}/kubeconfig"))
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    json!({"namespace": "prod"}).to_string(),
                ))
                .map_err(|e| e.to_string())?;
            let response = router.oneshot(request).await.map_err(|e| e.to_string())?;
            let ok = response.status().is_success();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            ok.then_some(v.clone()).ok_or(v.to_string())
        }
    })
    .await?;
    let kubeconfig = issued["kubeconfig"].as_str().ok_or("no kubeconfig")?;
    Ok(Platform {
        admin: Kubectl::new(&sim)?,
        agency: Kubectl::with_kubeconfig(kubeconfig)?,
        sim,
        operator,
        _api: api,
    })
}

/// A pod that the `restricted` level admits, pulling Always; each check breaks one thing.
fn pod(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": OWN},
        "spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "registry.example.gov.vn/app:1.0", "imagePullPolicy": "Always",
                "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}})
}

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Every review is allowed to every authenticated user by Kubernetes' bootstrap roles
/// (system:basic-user): asking what you may do is not access to the cluster.
const SELF_REVIEWS: [&str; 2] = [
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
];

struct Outcome {
    check: &'static str,
    passed: bool,
    detail: String,
}

impl Platform {
    async fn can_i(&self, args: &[&str]) -> TestResult<bool> {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let (_, out, err) = self.agency.run(&all, None).await?;
        match out.trim() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("kubectl auth can-i {}: {other} {err}", args.join(" ")).into()),
        }
    }

    /// Creates `object` as the agency; answers (created, what kubectl said).
    async fn create(&self, object: &Value) -> TestResult<(bool, String)> {
        let (ok, out, err) = self
            .agency
            .run(&["create", "-f", "-"], Some(&object.to_string()))
            .await?;
        Ok((ok, format!("{out}{err}").trim().to_string()))
    }

    /// Creation must be refused, and for `because`.
    async fn refused(&self, object: &Value, because: &str) -> TestResult<(bool, String)> {
        let (created, said) = self.create(object).await?;
        Ok((!created && said.contains(because), said))
    }

    /// What `resource` may not have any of `verbs` in `namespace` (None: cluster-wide).
    async fn none_of(
        &self,
        resources: &[String],
        verbs: &[&str],
        namespace: Option<&str>,
    ) -> TestResult<Vec<String>> {
        let mut allowed = Vec::new();
        for r in resources {
            for v in verbs {
                let mut args = vec![*v, r.as_str()];
                match namespace {
                    Some(ns) => args.extend(["-n", ns]),
                    None => args.push("-A"),
                }
                if self.can_i(&args).await? {
                    allowed.push(format!("{v} {r}"));
                }
            }
        }
        Ok(allowed)
    }

    /// The simulated network's answer, once both pods run.
    async fn reach(&self, from: (&str, &str), to: (&str, &str), port: i64) -> TestResult<bool> {
        Ok(
            eventually(&format!("{from:?} and {to:?} running"), || async {
                self.sim.can_reach(from, to, port).ok_or("not running yet")
            })
            .await?,
        )
    }

    async fn resources(&self, namespaced: bool) -> TestResult<Vec<String>> {
        let out = self
            .admin
            .ok(
                &[
                    "api-resources",
                    &format!("--namespaced={namespaced}"),
                    "-o",
                    "name",
                ],
                None,
            )
            .await?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !SELF_REVIEWS.contains(l))
            .map(String::from)
            .collect())
    }

    async fn quota_hard(&self) -> TestResult<BTreeMap<String, String>> {
        let out = self
            .agency
            .ok(&["get", "resourcequota", "-n", OWN, "-o", "json"], None)
            .await?;
        let v: Value = serde_json::from_str(&out)?;
        let mut hard = BTreeMap::new();
        for q in v["items"].as_array().into_iter().flatten() {
            for (k, val) in q["spec"]["hard"].as_object().into_iter().flatten() {
                hard.insert(k.clone(), val.as_str().unwrap_or_default().to_string());
            }
        }
        Ok(hard)
    }

    /// The benchmark's checks, each with whether it passed and why.
    async fn checks(&self) -> TestResult<Vec<Outcome>> {
        let mut out = Vec::new();
        let mut push = |check: &'static str, passed: bool, detail: String| {
            out.push(Outcome {
                check,
                passed,
                detail,
            });
        };

        // MTB-PL1-CC-CPI-1: every cluster-scoped resource × every verb.
        let cluster = self.resources(false).await?;
        let allowed = self.none_of(&cluster, &VERBS, None).await?;
        push(
            "block access to cluster resources",
            allowed.is_empty() && cluster.len() > 10,
            format!(
                "{} resources × {} verbs; allowed: {allowed:?}",
                cluster.len(),
                VERBS.len()
            ),
        );

        // MTB-PL1-CC-TI-2 (and NI-1's Kubernetes side): every namespaced resource × every verb
        // in another agency's namespace, in the platform's, and in kube-system.
        let namespaced = self.resources(true).await?;
        let mut leaks: Vec<String> = self
            .none_of(&namespaced, &VERBS, Some(OTHER))
            .await?
            .into_iter()
            .map(|a| format!("{a} in {OTHER}"))
            .collect();
        push(
            "block access to other tenant resources",
            leaks.is_empty() && namespaced.len() > 20,
            format!(
                "{} resources × {} verbs in {OTHER}; allowed: {leaks:?}",
                namespaced.len(),
                VERBS.len()
            ),
        );
        // What the agency may do anywhere else, as the API server lists it: nothing but the
        // reviews every authenticated user may ask.
        leaks.clear();
        for ns in [
            OTHER,
            "demo-ministry-data-prod",
            "govcloud-system",
            "kube-system",
            "default",
        ] {
            let (_, list, _) = self
                .agency
                .run(&["auth", "can-i", "--list", "-n", ns], None)
                .await?;
            for line in list.lines().skip(1) {
                let resource = line.split_whitespace().next().unwrap_or_default();
                let bootstrap = SELF_REVIEWS.contains(&resource)
                    || resource == "selfsubjectreviews.authentication.k8s.io"
                    || line.starts_with(' ');
                if !bootstrap {
                    leaks.push(format!("{ns}: {}", line.trim()));
                }
            }
        }
        push(
            "can-i --list outside its namespaces shows nothing",
            leaks.is_empty(),
            format!("{leaks:?}"),
        );

        // MTB-PL1-CC-TI-1: the platform's objects in the agency's own namespace.
        let mt = self
            .none_of(
                &[
                    "networkpolicies.networking.k8s.io".into(),
                    "resourcequotas".into(),
                    "limitranges".into(),
                ],
                &["create", "update", "patch", "delete", "deletecollection"],
                Some(OWN),
            )
            .await?;
        let (relabelled, said) = {
            let (ok, o, e) = self
                .agency
                .run(
                    &[
                        "label",
                        "namespace",
                        OWN,
                        "govcloud.io/tenant=demo-sotc",
                        "--overwrite",
                    ],
                    None,
                )
                .await?;
            (ok, format!("{o}{e}"))
        };
        let (unbound, said_rb) = {
            let (ok, o, e) = self
                .agency
                .run(
                    &["delete", "rolebinding", "govcloud-owners", "-n", OWN],
                    None,
                )
                .await?;
            (ok, format!("{o}{e}"))
        };
        push(
            "block multi-tenancy resources",
            mt.is_empty() && !relabelled && !unbound,
            format!(
                "allowed: {mt:?}; relabel: {}; delete govcloud-owners: {}",
                said.trim(),
                said_rb.trim()
            ),
        );
        let quota = self
            .none_of(
                &["resourcequotas".into()],
                &["create", "update", "patch", "delete"],
                Some(OWN),
            )
            .await?;
        push(
            "block modification of resource quotas",
            quota.is_empty(),
            format!("allowed: {quota:?}"),
        );

        // Pod Security: each pod is otherwise admissible; it must be refused for its one fault.
        let mut p = pod("add-caps");
        p["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"]);
        let (ok, said) = self.refused(&p, "capabilities").await?;
        push("block add capabilities", ok, said);
        let mut p = pod("root");
        p["spec"]["securityContext"]
            .as_object_mut()
            .map(|s| s.remove("runAsNonRoot"));
        let (ok, said) = self.refused(&p, "runAsNonRoot").await?;
        push("require run as non-root user", ok, said);
        let mut p = pod("privileged");
        p["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
        let (ok, said) = self.refused(&p, "privileged").await?;
        push("block privileged containers", ok, said);
        let mut p = pod("escalate");
        p["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        let (ok, said) = self.refused(&p, "allowPrivilegeEscalation").await?;
        push("block privilege escalation", ok, said);
        let mut p = pod("host-path");
        p["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
        let (ok, said) = self.refused(&p, "hostPath").await?;
        push("block use of host path volumes", ok, said);
        let mut p = pod("host-net");
        p["spec"]["hostNetwork"] = json!(true);
        let (net, said_net) = self.refused(&p, "hostNetwork").await?;
        let mut p = pod("host-port");
        p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 8080, "hostPort": 8080}]);
        let (port, said_port) = self.refused(&p, "hostPort").await?;
        push(
            "block use of host networking and ports",
            net && port,
            format!("{said_net} / {said_port}"),
        );
        let mut p = pod("host-pid");
        p["spec"]["hostPID"] = json!(true);
        let (ok, said) = self.refused(&p, "hostPID").await?;
        push("block use of host PID", ok, said);
        let mut p = pod("host-ipc");
        p["spec"]["hostIPC"] = json!(true);
        let (ok, said) = self.refused(&p, "hostIPC").await?;
        push("block use of host IPC", ok, said);
        let mut p = pod("if-not-present");
        p["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        let (ok, said) = self.refused(&p, "imagePullPolicy").await?;
        push("require always imagePullPolicy", ok, said);

        // NodePort services are refused by the quota (services.nodeports = 0).
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np", "namespace": OWN},
            "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        let (ok, said) = self.refused(&svc, "services.nodeports").await?;
        push("block use of NodePort services", ok, said);

        // Quotas configured.
        let hard = self.quota_hard().await?;
        let has = |k: &str| hard.get(k).is_some_and(|v| !v.is_empty());
        push(
            "configure namespace resource quotas",
            [
                "requests.cpu",
                "limits.cpu",
                "requests.memory",
                "limits.memory",
                "requests.storage",
            ]
            .iter()
            .all(|k| has(k)),
            format!("{hard:?}"),
        );
        push(
            "configure namespace object limits",
            [
                "pods",
                "persistentvolumeclaims",
                "services.loadbalancers",
                "services.nodeports",
            ]
            .iter()
            .all(|k| has(k)),
            format!("{hard:?}"),
        );

        // Self-service: a Role and a RoleBinding of its own, within what it holds; never more.
        let role = self
            .agency
            .run(
                &[
                    "create",
                    "role",
                    "reader",
                    "--verb=get,list",
                    "--resource=pods",
                    "-n",
                    OWN,
                ],
                None,
            )
            .await?;
        let binding = self
            .agency
            .run(
                &[
                    "create",
                    "rolebinding",
                    "reader",
                    "--role=reader",
                    &format!("--serviceaccount={OWN}:deployer"),
                    "-n",
                    OWN,
                ],
                None,
            )
            .await?;
        let escalate = self
            .agency
            .run(
                &[
                    "create",
                    "rolebinding",
                    "admin",
                    "--clusterrole=cluster-admin",
                    &format!("--serviceaccount={OWN}:deployer"),
                    "-n",
                    OWN,
                ],
                None,
            )
            .await?;
        push(
            "create role bindings",
            role.0 && binding.0 && !escalate.0,
            format!(
                "role: {}{}; binding: {}{}; binding cluster-admin: {}",
                role.1.trim(),
                role.2.trim(),
                binding.1.trim(),
                binding.2.trim(),
                escalate.2.trim()
            ),
        );

        // MTB's "create network policies": govcloud's deliberate choice is the opposite.
        // Agencies do not write NetworkPolicies; a link between agencies is asked for through
        // the API and written into the Tenant by the platform (docs/platform/security.md).
        let np = json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "open", "namespace": OWN},
            "spec": {"podSelector": {}, "ingress": [{}], "policyTypes": ["Ingress"]}});
        let (created, said) = self.create(&np).await?;
        push(
            "agencies do not write network policies (govcloud's choice over MTB's)",
            !created
                && !self
                    .can_i(&["create", "networkpolicies", "-n", OWN])
                    .await?,
            said,
        );

        // NI-1, which MTB dropped: another agency's pods reach the agency's only over the link
        // the agency approved (demo-sotc's prod → demo-stttt, port 443), in that direction only.
        let admin = self.sim.client()?;
        let mut web = pod("web");
        web["spec"]["containers"][0]["ports"] =
            json!([{"name": "https", "containerPort": 443}, {"name": "http", "containerPort": 80}]);
        let (made, said) = self.create(&web).await?;
        let mut peers = Vec::new();
        for (ns, name) in [
            ("demo-stttt-staging", "peer"),
            (OTHER, "client"),
            ("demo-ministry-data-prod", "intruder"),
        ] {
            let mut p = pod(name);
            p["metadata"]["namespace"] = json!(ns);
            p["spec"]["containers"][0]["ports"] = json!([{"name": "https", "containerPort": 443}]);
            let p: k8s_openapi::api::core::v1::Pod = serde_json::from_value(p)?;
            Api::<k8s_openapi::api::core::v1::Pod>::namespaced(admin.clone(), ns)
                .create(&PostParams::default(), &p)
                .await?;
            peers.push((ns, name));
        }
        let cases = [
            (
                "the linked agency, on the granted port",
                (OTHER, "client"),
                (OWN, "web"),
                443,
                true,
            ),
            (
                "the linked agency, on another port",
                (OTHER, "client"),
                (OWN, "web"),
                80,
                false,
            ),
            (
                "the linked agency, into its other namespace",
                (OTHER, "client"),
                ("demo-stttt-staging", "peer"),
                443,
                true,
            ),
            (
                "the agency towards the linked one (not granted)",
                (OWN, "web"),
                (OTHER, "client"),
                443,
                false,
            ),
            (
                "another organization's agency",
                ("demo-ministry-data-prod", "intruder"),
                (OWN, "web"),
                443,
                false,
            ),
            (
                "the agency's own other namespace",
                ("demo-stttt-staging", "peer"),
                (OWN, "web"),
                80,
                true,
            ),
        ];
        let mut wrong = Vec::new();
        for (what, from, to, port, want) in cases {
            let got = self.reach(from, to, port).await?;
            if got != want {
                wrong.push(format!(
                    "{what}: {from:?} → {to:?}:{port} {}",
                    if got { "reached" } else { "blocked" }
                ));
            }
        }
        push(
            "agencies reach each other only over granted links (NI-1)",
            made && wrong.is_empty(),
            format!("{said}; {wrong:?}"),
        );

        // Ordinary work keeps working.
        let mut work = Vec::new();
        let ok_pod = pod("ok");
        work.push(("pod", self.create(&ok_pod).await?));
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": OWN}, "data": {"a": "1"}});
        work.push(("configmap", self.create(&cm).await?));
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": OWN}, "stringData": {"p": "x"}});
        work.push(("secret", self.create(&secret).await?));
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": OWN},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}});
        work.push(("service", self.create(&svc).await?));
        let pvc = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": OWN},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        work.push(("pvc", self.create(&pvc).await?));
        let mut deploy_pod = ok_pod.clone();
        deploy_pod["metadata"] = json!({"labels": {"app": "web"}});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": OWN},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": deploy_pod}});
        work.push(("deployment", self.create(&deploy).await?));
        let listed = self
            .agency
            .run(
                &[
                    "get",
                    "deployments,services,configmaps,secrets,pvc",
                    "-n",
                    OWN,
                ],
                None,
            )
            .await?;
        let updated = self
            .agency
            .run(
                &["label", "configmap", "settings", "-n", OWN, "tier=web"],
                None,
            )
            .await?;
        let deleted = self
            .agency
            .run(&["delete", "configmap", "settings", "-n", OWN], None)
            .await?;
        let helm = std::env::var_os("HELM").unwrap_or_else(|| "helm".into());
        let chart = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/examples/hello-chart"
        );
        let kubeconfig = self.agency.kubeconfig_path();
        let installed = tokio::task::spawn_blocking(move || {
            std::process::Command::new(helm)
                .args([
                    "install",
                    "hello",
                    chart,
                    "-n",
                    OWN,
                    "--wait=false",
                    "--kubeconfig",
                ])
                .arg(&kubeconfig)
                .env("HELM_CACHE_HOME", kubeconfig.with_file_name("helm-cache"))
                .env("HELM_CONFIG_HOME", kubeconfig.with_file_name("helm-config"))
                .env("HELM_DATA_HOME", kubeconfig.with_file_name("helm-data"))
                .output()
        })
        .await??;
        let helm_said = String::from_utf8_lossy(&installed.stderr).into_owned();
        let failed: Vec<String> = work
            .iter()
            .filter(|(_, (ok, _))| !ok)
            .map(|(what, (_, said))| format!("{what}: {said}"))
            .chain((!listed.0).then(|| format!("list: {}", listed.2)))
            .chain((!updated.0).then(|| format!("update: {}", updated.2)))
            .chain((!deleted.0).then(|| format!("delete: {}", deleted.2)))
            .chain((!installed.status.success()).then(|| format!("helm install: {helm_said}")))
            .collect();
        push(
            "ordinary work in its own namespace, helm install included",
            failed.is_empty(),
            format!("{failed:?}"),
        );
        Ok(out)
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let width = outcomes.iter().map(|o| o.check.len()).max().unwrap_or(0);
    let mut t = format!("{:width$}  result\n", "check");
    for o in outcomes {
        let result = if o.passed { "pass" } else { "FAIL" };
        t.push_str(&format!("{:width$}  {result}", o.check));
        if !o.passed {
            t.push_str(&format!("  ({})", o.detail));
        }
        t.push('\n');
    }
    t
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_agencys_kubeconfig_passes_the_multi_tenancy_benchmark(db: PgPool) -> TestResult {
    let p = platform(db).await?;
    let outcomes = p.checks().await?;
    let table = table(&outcomes);
    println!("{table}");
    assert!(outcomes.iter().all(|o| o.passed), "\n{table}");
    assert!(outcomes.len() >= 19);
    p.operator.abort();
    drop(p.sim);
    Ok(())
}

/// The suite can fail: a tenant ClusterRole that also writes quotas, and NetworkPolicies that
/// open the agency to another organization's (all test-only), are caught.
#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_weakened_tenant_role_fails_the_benchmark(db: PgPool) -> TestResult {
    let p = platform(db).await?;
    // The operator would put its ClusterRole back: stop it first.
    p.operator.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while !p.operator.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let roles = Api::<ClusterRole>::all(p.sim.client()?);
    let mut weak = roles.get("govcloud-tenant-admin").await?;
    let rules = weak.rules.get_or_insert_with(Vec::new);
    rules.push(serde_json::from_value(
        json!({"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}),
    )?);
    rules.push(serde_json::from_value(
        json!({"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["update", "patch"]}),
    )?);
    weak.metadata.managed_fields = None;
    roles
        .patch(
            "govcloud-tenant-admin",
            &PatchParams::apply("weaken").force(),
            &Patch::Apply(&weak),
        )
        .await?;
    // and NetworkPolicies (test-only, as an administrator) that open the agency to everyone and
    // let another organization's agency out: isolation needs both ends, so both are opened
    let nps = Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced;
    for (ns, kind, rule) in [
        (
            OWN,
            "Ingress",
            json!({"ingress": [{"from": [{"namespaceSelector": {}}]}]}),
        ),
        ("demo-ministry-data-prod", "Egress", json!({"egress": [{}]})),
    ] {
        let mut spec = json!({"podSelector": {}, "policyTypes": [kind]});
        if let (Some(s), Some(r)) = (spec.as_object_mut(), rule.as_object()) {
            s.extend(r.clone());
        }
        let open: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(
            json!({"metadata": {"name": "open-to-all", "namespace": ns}, "spec": spec}),
        )?;
        nps(p.sim.client()?, ns)
            .create(&PostParams::default(), &open)
            .await?;
    }
    let outcomes = p.checks().await?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.check)
        .collect();
    println!("{}", table(&outcomes));
    assert!(
        failed.contains(&"block modification of resource quotas"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"block multi-tenancy resources"),
        "{failed:?}"
    );
    assert!(
        failed.contains(&"agencies reach each other only over granted links (NI-1)"),
        "{failed:?}"
    );
    Ok(())
}
