//! Pod Security Admission, as the API server's built-in admission plugin enforces the Pod
//! Security Standards (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>,
//! version `latest`) on pods in a namespace labelled `pod-security.kubernetes.io/enforce`.
//! Pure: [`violations`] lists what a pod spec breaks at a level, in the API server's words
//! (`k8s.io/pod-security-admission/policy/check_*.go`).

use serde_json::Value;

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// The level a namespace enforces, from its labels (none: privileged, nothing checked).
pub fn enforced(namespace: &Value) -> Option<Level> {
    namespace
        .pointer("/metadata/labels/pod-security.kubernetes.io~1enforce")
        .and_then(Value::as_str)
        .and_then(Level::parse)
        .filter(|l| *l != Level::Privileged)
}

/// The capabilities baseline lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The sysctls baseline allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// The volume types restricted allows.
const RESTRICTED_VOLUMES: &[&str] = &[
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn containers(spec: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| spec.get(*k).and_then(Value::as_array).into_iter().flatten())
        .collect()
}

fn name(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or_default()
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "container \"a\"" or "containers \"a\", \"b\"".
fn which(names: &[&str]) -> String {
    if names.len() == 1 {
        format!("container {}", quoted(names))
    } else {
        format!("containers {}", quoted(names))
    }
}

fn flag(v: &Value, pointer: &str) -> Option<bool> {
    v.pointer(pointer).and_then(Value::as_bool)
}

/// What `spec` (a pod's, or a pod template's) breaks at `level`, each as the API server words
/// it; empty when it is allowed.
pub fn violations(spec: &Value, level: Level) -> Vec<String> {
    let mut out = Vec::new();
    if level == Level::Privileged {
        return out;
    }
    let all = containers(spec);
    // baseline
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|k| spec.get(**k).and_then(Value::as_bool) == Some(true))
        .map(|k| format!("{k}=true"))
        .collect();
    if !host.is_empty() {
        out.push(format!("host namespaces ({})", host.join(", ")));
    }
    let privileged: Vec<&str> = all
        .iter()
        .filter(|c| flag(c, "/securityContext/privileged") == Some(true))
        .map(|c| name(c))
        .collect();
    if !privileged.is_empty() {
        out.push(format!(
            "privileged ({} must not set securityContext.privileged=true)",
            which(&privileged)
        ));
    }
    let mut added: Vec<String> = Vec::new();
    let mut adders: Vec<&str> = Vec::new();
    for c in &all {
        let caps: Vec<&str> = c
            .pointer("/securityContext/capabilities/add")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|cap| !BASELINE_CAPABILITIES.contains(cap))
            .collect();
        if !caps.is_empty() {
            adders.push(name(c));
            for cap in caps {
                if !added.iter().any(|a| a == cap) {
                    added.push(cap.to_string());
                }
            }
        }
    }
    if !adders.is_empty() {
        let caps: Vec<&str> = added.iter().map(String::as_str).collect();
        out.push(format!(
            "non-default capabilities ({} must not include {} in securityContext.capabilities.add)",
            which(&adders),
            quoted(&caps)
        ));
    }
    let host_path: Vec<&str> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("hostPath").is_some())
        .map(name)
        .collect();
    if !host_path.is_empty() {
        out.push(format!("hostPath volumes (volumes {})", quoted(&host_path)));
    }
    let mut ports: Vec<String> = Vec::new();
    let mut porters: Vec<&str> = Vec::new();
    for c in &all {
        let p: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !p.is_empty() {
            porters.push(name(c));
            ports.extend(p);
        }
    }
    if !porters.is_empty() {
        out.push(format!(
            "hostPort ({} uses hostPorts {})",
            which(&porters),
            ports.join(", ")
        ));
    }
    let proc_mount: Vec<&str> = all
        .iter()
        .filter(|c| {
            c.pointer("/securityContext/procMount")
                .and_then(Value::as_str)
                .is_some_and(|m| m != "Default")
        })
        .map(|c| name(c))
        .collect();
    if !proc_mount.is_empty() {
        out.push(format!(
            "procMount ({} must not set securityContext.procMount to \"Unmasked\")",
            which(&proc_mount)
        ));
    }
    let unconfined = |v: &Value| {
        v.pointer("/securityContext/seccompProfile/type")
            .and_then(Value::as_str)
            == Some("Unconfined")
    };
    if unconfined(spec) || all.iter().any(|c| unconfined(c)) {
        out.push("seccompProfile (pod or containers must not set securityContext.seccompProfile.type to \"Unconfined\")".into());
    }
    let sysctls: Vec<&str> = spec
        .pointer("/securityContext/sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|s| !SAFE_SYSCTLS.contains(s))
        .collect();
    if !sysctls.is_empty() {
        out.push(format!("forbidden sysctls ({})", sysctls.join(", ")));
    }
    let host_process = flag(spec, "/securityContext/windowsOptions/hostProcess") == Some(true)
        || all
            .iter()
            .any(|c| flag(c, "/securityContext/windowsOptions/hostProcess") == Some(true));
    if host_process {
        out.push("hostProcess (pod or containers must not set securityContext.windowsOptions.hostProcess=true)".into());
    }
    if level == Level::Baseline {
        return out;
    }
    // restricted
    let volumes: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let kind = v.as_object()?.keys().find(|k| *k != "name")?.to_string();
            (!RESTRICTED_VOLUMES.contains(&kind.as_str()) && kind != "hostPath")
                .then(|| format!("{:?} uses {kind}", name(v)))
        })
        .collect();
    if !volumes.is_empty() {
        out.push(format!(
            "restricted volume types (volume {})",
            volumes.join(", ")
        ));
    }
    let escalating: Vec<&str> = all
        .iter()
        .filter(|c| flag(c, "/securityContext/allowPrivilegeEscalation") != Some(false))
        .map(|c| name(c))
        .collect();
    if !escalating.is_empty() {
        out.push(format!(
            "allowPrivilegeEscalation != false ({} must set securityContext.allowPrivilegeEscalation=false)",
            which(&escalating)
        ));
    }
    let undropped: Vec<&str> = all
        .iter()
        .filter(|c| {
            !c.pointer("/securityContext/capabilities/drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        })
        .map(|c| name(c))
        .collect();
    let adding: Vec<&str> = all
        .iter()
        .filter(|c| {
            c.pointer("/securityContext/capabilities/add")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|x| x != "NET_BIND_SERVICE"))
        })
        .map(|c| name(c))
        .collect();
    if !undropped.is_empty() || !adding.is_empty() {
        let mut parts = Vec::new();
        if !undropped.is_empty() {
            parts.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                which(&undropped)
            ));
        }
        if !adding.is_empty() {
            parts.push(format!(
                "{} must not include capabilities other than \"NET_BIND_SERVICE\" in securityContext.capabilities.add",
                which(&adding)
            ));
        }
        out.push(format!("unrestricted capabilities ({})", parts.join("; ")));
    }
    let pod_non_root = flag(spec, "/securityContext/runAsNonRoot");
    let root_containers: Vec<&str> = all
        .iter()
        .filter(|c| match flag(c, "/securityContext/runAsNonRoot") {
            Some(v) => !v,
            None => pod_non_root != Some(true),
        })
        .map(|c| name(c))
        .collect();
    if pod_non_root == Some(false) || !root_containers.is_empty() {
        out.push(format!(
            "runAsNonRoot != true (pod or {} must set securityContext.runAsNonRoot=true)",
            which(&root_containers)
        ));
    }
    let uid0 = |v: &Value| {
        v.pointer("/securityContext/runAsUser")
            .and_then(Value::as_i64)
            == Some(0)
    };
    let uid0_containers: Vec<&str> = all.iter().filter(|c| uid0(c)).map(|c| name(c)).collect();
    if uid0(spec) || !uid0_containers.is_empty() {
        out.push("runAsUser=0 (pod and containers must not set runAsUser=0)".into());
    }
    let confined = |v: &Value| {
        v.pointer("/securityContext/seccompProfile/type")
            .and_then(Value::as_str)
            .is_some_and(|t| t == "RuntimeDefault" || t == "Localhost")
    };
    let unset: Vec<&str> = if confined(spec) {
        Vec::new()
    } else {
        all.iter()
            .filter(|c| !confined(c))
            .map(|c| name(c))
            .collect()
    };
    if !unset.is_empty() {
        out.push(format!(
            "seccompProfile (pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
            which(&unset)
        ));
    }
    out
}

/// The API server's refusal: `violates PodSecurity "restricted:latest": …`.
pub fn refusal(level: Level, violations: &[String]) -> String {
    format!(
        "violates PodSecurity \"{}:latest\": {}",
        level.as_str(),
        violations.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn restricted_pod() -> Value {
        json!({"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
               "containers": [{"name": "app", "image": "x", "securityContext": {
                   "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]})
    }

    #[test]
    fn a_restricted_pod_passes_every_level() {
        for level in [Level::Baseline, Level::Restricted] {
            assert!(violations(&restricted_pod(), level).is_empty(), "{level:?}");
        }
    }

    #[test]
    fn baseline_refuses_host_access_and_privilege() {
        let pod = json!({"hostNetwork": true, "hostPID": true, "hostIPC": true,
            "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
            "containers": [{"name": "a", "securityContext": {"privileged": true, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}},
                            "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
        let v = violations(&pod, Level::Baseline);
        assert_eq!(
            v,
            [
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
                "privileged (container \"a\" must not set securityContext.privileged=true)",
                "non-default capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                "hostPath volumes (volumes \"root\")",
                "hostPort (container \"a\" uses hostPorts 8080)",
            ]
        );
        // a plain pod is baseline but not restricted
        let plain = json!({"containers": [{"name": "a", "image": "x"}]});
        assert!(violations(&plain, Level::Baseline).is_empty());
        let r = violations(&plain, Level::Restricted);
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!(
            refusal(Level::Restricted, &r[..1]),
            "violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"a\" must set securityContext.allowPrivilegeEscalation=false)"
        );
    }

    #[test]
    fn restricted_refuses_root_escalation_and_other_volumes() {
        let mut pod = restricted_pod();
        pod["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        pod["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_ADMIN"]);
        pod["volumes"] = json!([{"name": "nfs", "nfs": {"server": "x", "path": "/"}}]);
        let v = violations(&pod, Level::Restricted).join("; ");
        assert!(v.contains("runAsUser=0"), "{v}");
        assert!(v.contains("\"NET_BIND_SERVICE\""), "{v}");
        assert!(v.contains("volume \"nfs\" uses nfs"), "{v}");
        let ns =
            json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline"}}});
        assert_eq!(enforced(&ns), Some(Level::Baseline));
        assert_eq!(enforced(&json!({"metadata": {}})), None);
    }
}
