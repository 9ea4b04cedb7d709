//! The Tenant the operator's unit tests start from: the example of DESIGN.md §3.

use crate::crd::Tenant;

pub const TENANT: &str = r#"
apiVersion: govcloud.io/v1alpha1
kind: Tenant
metadata: { name: nghean-stttt, uid: 6f1c0c4e-0000-4000-8000-000000000001 }
spec:
  displayName: Sở Thông tin và Truyền thông Nghệ An
  organization: nghe-an
  owners: [ { kind: Group, name: "nghean:stttt:admins" } ]
  namespaces:
    - { name: prod,    quota: { cpu: "8", memory: 32Gi, storage: 200Gi, pods: 100, loadBalancers: 1 } }
    - { name: staging, quota: { cpu: 2, memory: 8Gi,  storage: 50Gi,  pods: 30 } }
  limits: { defaultRequest: { cpu: 100m, memory: 128Mi }, default: { cpu: 500m, memory: 512Mi } }
  podSecurity: restricted
  network: { egress: Internet, allowFrom: [ { tenant: nghean-sotc, namespace: prod, ports: [443] } ] }
  billing: { plan: Reserved, costCenter: "NA-STTTT" }
"#;

pub fn tenant(yaml: &str) -> Tenant {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("fixture does not parse: {e}"))
}
