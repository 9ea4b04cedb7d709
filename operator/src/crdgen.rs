//! The CRDs govcloud installs, as the YAML checked in under `crds/`.

use kube::CustomResourceExt;

use govcloud_tenant::crd::Tenant;

/// `(file name, YAML)` for every CRD, in the order they are written.
pub fn crds() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    Ok(vec![(
        "tenants.govcloud.io.yaml",
        serde_yaml::to_string(&Tenant::crd())?,
    )])
}
