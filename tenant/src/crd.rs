//! The `Tenant` custom resource (`govcloud.io/v1alpha1`): one per agency, cluster-scoped.
//!
//! The doc comments on these types become the descriptions in the generated CRD
//! (`govcloud-operator crdgen`), which is what `kubectl explain tenant.spec` shows an operator.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// DNS-1123 label: what Kubernetes accepts as a namespace name, and so as a tenant or namespace name here.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The limits the CRD's schema enforces. [`crate::validate::validate`] checks the same ones, so
/// what the API accepts the cluster accepts too: one source for both.
pub mod limits {
    pub const DISPLAY_NAME: usize = 256;
    pub const ORGANIZATION: usize = 63;
    pub const OWNER_NAME: usize = 256;
    pub const NAMESPACES: usize = 32;
    /// A tenant name and a namespace short name, joined by `-`, fit Kubernetes' 63.
    pub const TENANT_NAME: usize = 63;
    pub const NAMESPACE_SHORT_NAME: usize = 30;
    pub const PODS: i32 = 100_000;
    pub const LOAD_BALANCERS: i32 = 100;
    pub const GRANT_PORTS: usize = 32;
    pub const COST_CENTER: usize = 64;
}

/// A Kubernetes resource quantity, as the API server validates it.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// An agency's slice of the shared cloud: its namespaces, quotas, defaults, network links and
/// billing. The operator makes and keeps the namespaces and everything in them that isolates and
/// bounds the agency.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "govcloud.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    singular = "tenant",
    shortname = "tn",
    category = "govcloud",
    doc = "One agency on the shared government cloud: its isolated namespaces, quotas, network links and billing.",
    status = "TenantStatus",
    printcolumn = r#"{"name":"Organization","type":"string","jsonPath":".spec.organization"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Namespaces","type":"string","jsonPath":".spec.namespaces[*].name"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The agency's name as people write it, e.g. "Sở Thông tin và Truyền thông Nghệ An".
    #[schemars(length(min = 1, max = limits::DISPLAY_NAME))]
    pub display_name: String,

    /// The province or ministry the agency belongs to (a DNS label, e.g. `nghe-an`). Its quota
    /// allotment and bills are kept per organization.
    #[schemars(length(min = 1, max = limits::ORGANIZATION), regex(pattern = DNS_LABEL_PATTERN))]
    pub organization: String,

    /// Who administers the agency's namespaces: bound, in those namespaces only, to the platform's
    /// tenant-admin ClusterRole.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["kind", "name"]))]
    pub owners: Vec<Owner>,

    /// The agency's namespaces. Each becomes the Kubernetes namespace `<tenant>-<name>` with its
    /// own quota. Names are unique within a tenant.
    #[schemars(length(min = 1, max = limits::NAMESPACES))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub namespaces: Vec<TenantNamespace>,

    /// Default requests and limits given to containers that set none (a LimitRange in each namespace).
    #[serde(default)]
    pub limits: Limits,

    /// The Pod Security Admission level enforced, warned and audited in every namespace.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,

    /// Network isolation: what may leave the agency's namespaces, and which other agencies may reach in.
    #[serde(default)]
    pub network: Network,

    /// How the agency is billed.
    pub billing: Billing,

    /// A suspended tenant keeps its data, but its pod quota drops to zero so nothing new runs.
    #[serde(default)]
    pub suspended: bool,
}

/// A person or group who administers the tenant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Owner {
    /// `User` or `Group`, as in an RBAC subject.
    pub kind: OwnerKind,
    /// The user or group name, as the cluster's authenticator reports it (e.g. `nghean:stttt:admins`).
    #[schemars(length(min = 1, max = limits::OWNER_NAME))]
    pub name: String,
}

/// The kind of an owner subject.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OwnerKind {
    User,
    Group,
}

/// One of the tenant's namespaces.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct TenantNamespace {
    /// The short name (a DNS label); the namespace is `<tenant>-<name>`.
    #[schemars(length(min = 1, max = limits::NAMESPACE_SHORT_NAME), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,
    /// What the namespace may reserve.
    pub quota: NamespaceQuota,
}

/// The hard limits of a namespace: what the agency rents.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceQuota {
    /// CPU, for requests and for limits (e.g. `"8"` or `"2500m"`).
    pub cpu: Quantity,
    /// Memory, for requests and for limits (e.g. `32Gi`).
    pub memory: Quantity,
    /// Persistent volume storage requested by all claims together (e.g. `200Gi`).
    pub storage: Quantity,
    /// How many pods may exist at once.
    #[schemars(range(min = 0, max = limits::PODS))]
    pub pods: i32,
    /// How many LoadBalancer services may exist at once.
    #[serde(default)]
    #[schemars(range(min = 0, max = limits::LOAD_BALANCERS))]
    pub load_balancers: i32,
}

/// A resource quantity: an integer or a string such as `500m`, `8`, `32Gi`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Str(String),
        }
        Ok(Quantity(match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Str(s) => s,
        }))
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": true
        })
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Quantity {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A Kubernetes quantity: `500m`, `8`, `32Gi`."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Quantity {}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity(s.to_string())
    }
}

/// Container defaults for a tenant's namespaces.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Requests given to a container that sets none.
    pub default_request: Resources,
    /// Limits given to a container that sets none.
    pub default: Resources,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            default_request: Resources {
                cpu: "100m".into(),
                memory: "128Mi".into(),
            },
            default: Resources {
                cpu: "500m".into(),
                memory: "512Mi".into(),
            },
        }
    }
}

/// CPU and memory.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct Resources {
    pub cpu: Quantity,
    pub memory: Quantity,
}

/// Pod Security Admission levels a tenant may have. `privileged` is never offered to tenants.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    #[default]
    Restricted,
    Baseline,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restricted => "restricted",
            Self::Baseline => "baseline",
        }
    }
}

/// Network isolation settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `None` (the default): pods reach only DNS, their own tenant and granted links.
    /// `Internet`: pods may also reach addresses outside the cluster.
    #[serde(default)]
    pub egress: Egress,
    /// Data-sharing links: other tenants' namespaces that may open connections into this
    /// tenant's namespaces, each on the ports listed. Every link is explicit.
    #[serde(default)]
    pub allow_from: Vec<Grant>,
}

/// Where a tenant's pods may send traffic besides DNS, their own tenant and granted links.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Egress {
    #[default]
    None,
    Internet,
}

/// Another tenant's namespace allowed to connect into this tenant.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct Grant {
    /// The other tenant's name.
    #[schemars(length(min = 1, max = limits::TENANT_NAME), regex(pattern = DNS_LABEL_PATTERN))]
    pub tenant: String,
    /// The short name of the other tenant's namespace (as in its spec).
    #[schemars(length(min = 1, max = limits::NAMESPACE_SHORT_NAME), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: String,
    /// The TCP ports it may connect to.
    #[schemars(length(min = 1, max = limits::GRANT_PORTS))]
    pub ports: Vec<Port>,
}

/// A TCP port number.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct Port(#[schemars(range(min = 1, max = 65535))] pub i32);

/// Billing settings.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Billing {
    /// `Reserved` bills the quota held over time (what the agency rents); `Usage` bills
    /// max(requested, used) per metering window.
    pub plan: Plan,
    /// The agency's cost centre, printed on its invoices.
    #[schemars(length(max = limits::COST_CENTER))]
    #[serde(default)]
    pub cost_center: String,
}

/// A billing plan.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Plan {
    Reserved,
    Usage,
}

/// What the operator last observed and did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// `Provisioning`, `Ready`, `Degraded`, `Suspended` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Kubernetes-style conditions; `Ready` says whether everything the spec asks for is in place.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Each namespace: its full name, readiness and quota use.
    #[serde(default)]
    pub namespaces: Vec<NamespaceStatus>,
}

/// A tenant's lifecycle phase.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    Provisioning,
    Ready,
    Degraded,
    Suspended,
    Terminating,
}

/// A condition, as Kubernetes writes them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The aspect this condition describes, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase word saying why, e.g. `InvalidSpec`.
    pub reason: String,
    /// What a person should know, naming the field or object concerned.
    pub message: String,
    /// When the status last changed.
    pub last_transition_time: String,
    /// The generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One namespace of a tenant as observed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct NamespaceStatus {
    /// The Kubernetes namespace name, `<tenant>-<name>`.
    pub name: String,
    /// Whether the namespace and everything the operator keeps in it are in place.
    pub ready: bool,
    /// The quota's hard limits, from the ResourceQuota's status.
    #[serde(default)]
    pub hard: BTreeMap<String, String>,
    /// What is in use against them, from the ResourceQuota's status.
    #[serde(default)]
    pub used: BTreeMap<String, String>,
}
