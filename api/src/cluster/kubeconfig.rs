//! Kubeconfigs for agencies: where the cluster is and how to trust it, and the document that
//! helm and kubectl use as it is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use govcloud_tenant::names::DEPLOYER;
use serde_json::json;

/// How issued kubeconfigs reach the cluster (agencies may use another address than the API does).
#[derive(Debug, Clone)]
pub struct KubeconfigTarget {
    pub server: String,
    /// Base64 of the PEM bundle that signs the API server's certificate.
    pub certificate_authority_data: Option<String>,
    pub insecure_skip_tls_verify: bool,
}

impl KubeconfigTarget {
    /// The address and trust of the API's own connection.
    pub fn from_config(config: &kube::Config) -> Self {
        let pem: String = config
            .root_cert
            .iter()
            .flatten()
            .map(|der| {
                let body = STANDARD.encode(der);
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .filter_map(|c| std::str::from_utf8(c).ok())
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            })
            .collect();
        Self {
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string(),
            certificate_authority_data: (!pem.is_empty()).then(|| STANDARD.encode(pem)),
            insecure_skip_tls_verify: config.accept_invalid_certs,
        }
    }
}

/// The kubeconfig document: one cluster, one user with the token, one context on the namespace.
pub fn render_kubeconfig(
    target: &KubeconfigTarget,
    tenant: &str,
    namespace: &str,
    token: &str,
) -> Result<String, serde_yaml::Error> {
    let mut cluster = json!({ "server": target.server });
    if let Some(ca) = &target.certificate_authority_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if target.insecure_skip_tls_verify {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let user = format!("{tenant}-{DEPLOYER}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "govcloud", "cluster": cluster }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": namespace, "context": { "cluster": "govcloud", "user": user, "namespace": namespace } }],
        "current-context": namespace,
    });
    serde_yaml::to_string(&doc)
}
