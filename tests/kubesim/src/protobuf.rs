//! Request bodies in Kubernetes' protobuf encoding, turned into JSON.
//!
//! Since client-go 1.32, typed clients send built-in objects as
//! `application/vnd.kubernetes.protobuf` (kubectl's `create configmap|secret|namespace|token|…`,
//! helm's release Secrets). Responses can stay JSON: clients decode by the response's
//! content type. This decoder knows the messages of the kinds those clients write, with the
//! field numbers of Kubernetes' `generated.proto`; any other kind answers 415 so the gap is plain.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bytes,
    Int,
    Bool,
    Time,
    Msg(&'static [F]),
    MapStr,
    MapBytes,
    MapQuantity,
}

#[derive(Clone, Copy)]
struct F {
    tag: u64,
    name: &'static str,
    ty: Ty,
    repeated: bool,
}

const fn f(tag: u64, name: &'static str, ty: Ty) -> F {
    F {
        tag,
        name,
        ty,
        repeated: false,
    }
}

const fn r(tag: u64, name: &'static str, ty: Ty) -> F {
    F {
        tag,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[F] = &[
    f(5, "apiVersion", Ty::Str),
    f(1, "kind", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(6, "controller", Ty::Bool),
    f(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "generateName", Ty::Str),
    f(3, "namespace", Ty::Str),
    f(5, "uid", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "generation", Ty::Int),
    f(8, "creationTimestamp", Ty::Time),
    f(9, "deletionTimestamp", Ty::Time),
    f(10, "deletionGracePeriodSeconds", Ty::Int),
    f(11, "labels", Ty::MapStr),
    f(12, "annotations", Ty::MapStr),
    r(13, "ownerReferences", Ty::Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Ty::Str),
];

const META: F = f(1, "metadata", Ty::Msg(OBJECT_META));

const CONFIG_MAP: &[F] = &[
    META,
    f(4, "immutable", Ty::Bool),
    f(2, "data", Ty::MapStr),
    f(3, "binaryData", Ty::MapBytes),
];
const SECRET: &[F] = &[
    META,
    f(5, "immutable", Ty::Bool),
    f(2, "data", Ty::MapBytes),
    f(4, "stringData", Ty::MapStr),
    f(3, "type", Ty::Str),
];
const NAMESPACE: &[F] = &[
    META,
    f(2, "spec", Ty::Msg(&[r(1, "finalizers", Ty::Str)])),
    f(3, "status", Ty::Msg(&[f(1, "phase", Ty::Str)])),
];
const OBJECT_REFERENCE: &[F] = &[
    f(1, "kind", Ty::Str),
    f(2, "namespace", Ty::Str),
    f(3, "name", Ty::Str),
    f(4, "uid", Ty::Str),
    f(5, "apiVersion", Ty::Str),
    f(6, "resourceVersion", Ty::Str),
    f(7, "fieldPath", Ty::Str),
];
const SERVICE_ACCOUNT: &[F] = &[
    META,
    r(2, "secrets", Ty::Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Ty::Msg(&[f(1, "name", Ty::Str)])),
    f(4, "automountServiceAccountToken", Ty::Bool),
];
const TOKEN_REQUEST: &[F] = &[
    META,
    f(
        2,
        "spec",
        Ty::Msg(&[
            r(1, "audiences", Ty::Str),
            f(4, "expirationSeconds", Ty::Int),
            f(
                3,
                "boundObjectRef",
                Ty::Msg(&[
                    f(1, "kind", Ty::Str),
                    f(2, "apiVersion", Ty::Str),
                    f(3, "name", Ty::Str),
                    f(4, "uid", Ty::Str),
                ]),
            ),
        ]),
    ),
];
// apps/v1 Deployment, as `kubectl create deployment` writes it (the fields it sets, and the
// common ones of a container; others are skipped).
const LABEL_SELECTOR: &[F] = &[
    f(1, "matchLabels", Ty::MapStr),
    r(
        2,
        "matchExpressions",
        Ty::Msg(&[
            f(1, "key", Ty::Str),
            f(2, "operator", Ty::Str),
            r(3, "values", Ty::Str),
        ]),
    ),
];
const CONTAINER_PORT: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "hostPort", Ty::Int),
    f(3, "containerPort", Ty::Int),
    f(4, "protocol", Ty::Str),
];
const RESOURCES: &[F] = &[
    f(1, "limits", Ty::MapQuantity),
    f(2, "requests", Ty::MapQuantity),
];
const CONTAINER: &[F] = &[
    f(1, "name", Ty::Str),
    f(2, "image", Ty::Str),
    r(3, "command", Ty::Str),
    r(4, "args", Ty::Str),
    f(5, "workingDir", Ty::Str),
    r(6, "ports", Ty::Msg(CONTAINER_PORT)),
    f(8, "resources", Ty::Msg(RESOURCES)),
    f(13, "terminationMessagePath", Ty::Str),
    f(14, "imagePullPolicy", Ty::Str),
    f(20, "terminationMessagePolicy", Ty::Str),
];
const POD_SPEC: &[F] = &[
    r(2, "containers", Ty::Msg(CONTAINER)),
    f(3, "restartPolicy", Ty::Str),
    f(4, "terminationGracePeriodSeconds", Ty::Int),
    f(6, "dnsPolicy", Ty::Str),
    f(8, "serviceAccountName", Ty::Str),
    f(19, "schedulerName", Ty::Str),
    r(20, "initContainers", Ty::Msg(CONTAINER)),
];
const DEPLOYMENT: &[F] = &[
    META,
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "replicas", Ty::Int),
            f(2, "selector", Ty::Msg(LABEL_SELECTOR)),
            f(
                3,
                "template",
                Ty::Msg(&[META, f(2, "spec", Ty::Msg(POD_SPEC))]),
            ),
            f(4, "strategy", Ty::Msg(&[f(1, "type", Ty::Str)])),
            f(5, "minReadySeconds", Ty::Int),
            f(6, "revisionHistoryLimit", Ty::Int),
            f(9, "progressDeadlineSeconds", Ty::Int),
        ]),
    ),
];

// authorization/v1: what `kubectl auth can-i` asks.
const SELF_SUBJECT_ACCESS_REVIEW: &[F] = &[
    META,
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(
                1,
                "resourceAttributes",
                Ty::Msg(&[
                    f(1, "namespace", Ty::Str),
                    f(2, "verb", Ty::Str),
                    f(3, "group", Ty::Str),
                    f(4, "version", Ty::Str),
                    f(5, "resource", Ty::Str),
                    f(6, "subresource", Ty::Str),
                    f(7, "name", Ty::Str),
                ]),
            ),
            f(
                2,
                "nonResourceAttributes",
                Ty::Msg(&[f(1, "path", Ty::Str), f(2, "verb", Ty::Str)]),
            ),
        ]),
    ),
];
const SELF_SUBJECT_RULES_REVIEW: &[F] =
    &[META, f(2, "spec", Ty::Msg(&[f(1, "namespace", Ty::Str)]))];
const DELETE_OPTIONS: &[F] = &[
    f(1, "gracePeriodSeconds", Ty::Int),
    f(
        2,
        "preconditions",
        Ty::Msg(&[f(1, "uid", Ty::Str), f(2, "resourceVersion", Ty::Str)]),
    ),
    f(3, "orphanDependents", Ty::Bool),
    f(4, "propagationPolicy", Ty::Str),
    r(5, "dryRun", Ty::Str),
];
const LEASE: &[F] = &[
    META,
    f(
        2,
        "spec",
        Ty::Msg(&[
            f(1, "holderIdentity", Ty::Str),
            f(2, "leaseDurationSeconds", Ty::Int),
            f(3, "acquireTime", Ty::Time),
            f(4, "renewTime", Ty::Time),
            f(5, "leaseTransitions", Ty::Int),
            f(6, "strategy", Ty::Str),
            f(7, "preferredHolder", Ty::Str),
        ]),
    ),
];
const RESOURCE_QUOTA: &[F] = &[
    META,
    f(
        2,
        "spec",
        Ty::Msg(&[f(1, "hard", Ty::MapQuantity), r(2, "scopes", Ty::Str)]),
    ),
];
const POLICY_RULE: &[F] = &[
    r(1, "verbs", Ty::Str),
    r(2, "apiGroups", Ty::Str),
    r(3, "resources", Ty::Str),
    r(4, "resourceNames", Ty::Str),
    r(5, "nonResourceURLs", Ty::Str),
];
const ROLE: &[F] = &[META, r(2, "rules", Ty::Msg(POLICY_RULE))];
const BINDING: &[F] = &[
    META,
    r(
        2,
        "subjects",
        Ty::Msg(&[
            f(1, "kind", Ty::Str),
            f(2, "apiGroup", Ty::Str),
            f(3, "name", Ty::Str),
            f(4, "namespace", Ty::Str),
        ]),
    ),
    f(
        3,
        "roleRef",
        Ty::Msg(&[
            f(1, "apiGroup", Ty::Str),
            f(2, "kind", Ty::Str),
            f(3, "name", Ty::Str),
        ]),
    ),
];

fn schema_for(api_version: &str, kind: &str) -> Option<&'static [F]> {
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "ResourceQuota") => RESOURCE_QUOTA,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SELF_SUBJECT_ACCESS_REVIEW,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => SELF_SUBJECT_RULES_REVIEW,
        ("v1" | "meta.k8s.io/v1", "DeleteOptions") => DELETE_OPTIONS,
        ("coordination.k8s.io/v1", "Lease") => LEASE,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("rbac.authorization.k8s.io/v1", "Role" | "ClusterRole") => ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => BINDING,
        _ => return None,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed() -> ApiError {
    ApiError::bad_request("malformed protobuf body")
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> ApiResult<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or_else(malformed)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(malformed())
    }

    fn bytes(&mut self) -> ApiResult<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed())?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(malformed)?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn skip(&mut self, wire: u64) -> ApiResult<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(malformed()),
        }
    }

    fn advance(&mut self, n: usize) -> ApiResult<()> {
        if self.pos + n > self.buf.len() {
            return Err(malformed());
        }
        self.pos += n;
        Ok(())
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

fn text(b: &[u8]) -> ApiResult<String> {
    String::from_utf8(b.to_vec()).map_err(|_| malformed())
}

fn map_entry(b: &[u8], value_ty: Ty) -> ApiResult<(String, Value)> {
    let mut rd = Reader { buf: b, pos: 0 };
    let (mut k, mut v) = (
        String::new(),
        match value_ty {
            Ty::MapQuantity => json!("0"),
            _ => json!(""),
        },
    );
    while !rd.done() {
        let key = rd.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => k = text(rd.bytes()?)?,
            (2, 2) => {
                let raw = rd.bytes()?;
                v = match value_ty {
                    Ty::MapBytes => json!(base64::engine::general_purpose::STANDARD.encode(raw)),
                    Ty::MapQuantity => decode_message(raw, &[f(1, "string", Ty::Str)])?
                        .get("string")
                        .cloned()
                        .unwrap_or(json!("0")),
                    _ => json!(text(raw)?),
                };
            }
            (_, wire) => rd.skip(wire)?,
        }
    }
    Ok((k, v))
}

fn decode_message(buf: &[u8], schema: &[F]) -> ApiResult<Value> {
    let mut out = Map::new();
    let mut rd = Reader { buf, pos: 0 };
    while !rd.done() {
        let key = rd.varint()?;
        let (tag, wire) = (key >> 3, key & 7);
        let Some(field) = schema.iter().find(|f| f.tag == tag) else {
            rd.skip(wire)?;
            continue;
        };
        let value = match (field.ty, wire) {
            (Ty::Str, 2) => json!(text(rd.bytes()?)?),
            (Ty::Bytes, 2) => json!(base64::engine::general_purpose::STANDARD.encode(rd.bytes()?)),
            (Ty::Int, 0) => json!(rd.varint()? as i64),
            (Ty::Bool, 0) => json!(rd.varint()? != 0),
            (Ty::Time, 2) => {
                let t = decode_message(rd.bytes()?, &[f(1, "seconds", Ty::Int)])?;
                let secs = t["seconds"].as_i64().unwrap_or(0);
                let ts = jiff::Timestamp::from_second(secs).map_err(|_| malformed())?;
                json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            }
            (Ty::Msg(inner), 2) => decode_message(rd.bytes()?, inner)?,
            (ty @ (Ty::MapStr | Ty::MapBytes | Ty::MapQuantity), 2) => {
                let (k, v) = map_entry(rd.bytes()?, ty)?;
                let slot = out.entry(field.name).or_insert_with(|| json!({}));
                slot[k] = v;
                continue;
            }
            (_, wire) => {
                rd.skip(wire)?;
                continue;
            }
        };
        // Go marshals non-pointer zero values; their JSON form omits them.
        let zero = match &value {
            Value::String(s) => {
                s.is_empty()
                    || (matches!(field.ty, Ty::Time) && s.starts_with("1970-01-01T00:00:00"))
            }
            Value::Number(n) => n.as_i64() == Some(0),
            Value::Bool(b) => !b,
            _ => false,
        };
        if zero && !field.repeated {
            continue;
        }
        if field.repeated {
            let slot = out.entry(field.name).or_insert_with(|| json!([]));
            if let Some(list) = slot.as_array_mut() {
                list.push(value);
            }
        } else {
            out.insert(field.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

const MAGIC: &[u8] = b"k8s\x00";
const UNKNOWN: &[F] = &[
    f(
        1,
        "typeMeta",
        Ty::Msg(&[f(1, "apiVersion", Ty::Str), f(2, "kind", Ty::Str)]),
    ),
    f(2, "raw", Ty::Bytes),
];

/// Decodes a `k8s\0`-prefixed `runtime.Unknown` envelope into the JSON object it carries.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| ApiError::bad_request("protobuf body without the k8s magic prefix"))?;
    let unknown = decode_message(envelope, UNKNOWN)?;
    let api_version = unknown
        .pointer("/typeMeta/apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kind = unknown
        .pointer("/typeMeta/kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let raw = unknown["raw"].as_str().unwrap_or_default();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| malformed())?;
    let schema = schema_for(&api_version, &kind).ok_or_else(|| {
        let mut e = ApiError::unsupported_media_type("application/vnd.kubernetes.protobuf");
        e.message = format!("kubesim cannot decode {kind} ({api_version}) from protobuf; send it as application/json");
        e
    })?;
    let mut obj = decode_message(&raw, schema)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(tag: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((tag << 3) | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_a_config_map_envelope() -> ApiResult<()> {
        let meta = [
            field(1, b"demo"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let cm = [
            field(1, &meta),
            field(2, &[field(1, b"a"), field(2, b"1")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &cm)].concat();
        let obj = decode(&body)?;
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "demo", "labels": {"app": "web"}}, "data": {"a": "1"}})
        );
        Ok(())
    }

    #[test]
    fn unknown_kinds_are_refused_plainly() {
        let type_meta = [field(1, b"apps/v1"), field(2, b"StatefulSet")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, b"")].concat();
        assert_eq!(decode(&body).err().map(|e| e.code), Some(415));
    }
}
