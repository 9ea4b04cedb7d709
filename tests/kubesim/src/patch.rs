//! The three client-computed patch kinds: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and
//! Kubernetes' strategic merge patch for built-in kinds.
//!
//! Strategic merge patch here knows the merge keys of the lists that kubectl and helm patch
//! (containers, env, ports, volumes, volumeMounts, conditions, ownerReferences, …) and the
//! `$patch`, `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList` directives. It does not
//! read Go struct tags, so a list it does not know is replaced, as JSON merge patch would.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Applies a JSON patch as the API server does: atomically, and with one Kubernetes quirk kept —
/// a `test` for `null` passes when the path does not exist (kube-rs' finalizer helper relies on it).
pub fn json_patch(target: &Value, body: &[u8]) -> ApiResult<Value> {
    let ops: Vec<Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    for (i, op) in ops.iter().enumerate() {
        let is_null_test = op.get("op").and_then(Value::as_str) == Some("test")
            && op.get("value").is_some_and(Value::is_null);
        if is_null_test {
            let path = op.get("path").and_then(Value::as_str).unwrap_or_default();
            if doc.pointer(path).is_none_or(Value::is_null) {
                continue;
            }
        }
        let single: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch operation {i}: {e}")))?;
        json_patch::patch(&mut doc, &single).map_err(|e| {
            let mut err = ApiError::internal(format!(
                "the server rejected our request due to an error in our request: operation {i}: {e}"
            ));
            err.code = 422;
            err.reason = "Invalid";
            err
        })?;
    }
    Ok(doc)
}

pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    doc
}

/// The merge key of a list field, as the built-in types declare with `patchMergeKey`.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" | "volumeDevices" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars that merge as sets rather than being replaced.
fn is_primitive_set(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &Value, patch: &Value) -> ApiResult<Value> {
    let mut doc = target.clone();
    merge_value(&mut doc, patch)?;
    Ok(doc)
}

fn merge_value(target: &mut Value, patch: &Value) -> ApiResult<()> {
    let Some(patch_map) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replacement = patch_map.clone();
            replacement.remove("$patch");
            *target = Value::Object(replacement);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown patch type: {other}"
            )));
        }
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(target_map) = target.as_object_mut() else {
        return Ok(());
    };
    if let Some(retain) = patch_map.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        target_map.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (key, value) in patch_map {
        if key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(remove)) = (
                target_map.get_mut(field).and_then(Value::as_array_mut),
                value.as_array(),
            ) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        match value {
            Value::Null => {
                target_map.remove(key);
            }
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                target_map.remove(key);
            }
            Value::Object(_) => {
                let slot = target_map.entry(key.clone()).or_insert(Value::Null);
                merge_value(slot, value)?;
            }
            Value::Array(items) => {
                let merged = match target_map.get(key).and_then(Value::as_array) {
                    Some(existing) => merge_list(key, existing, items)?,
                    None => strip_directives(items),
                };
                target_map.insert(key.clone(), Value::Array(merged));
            }
            scalar => {
                target_map.insert(key.clone(), scalar.clone());
            }
        }
    }
    Ok(())
}

fn strip_directives(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter(|i| i.get("$patch").is_none())
        .cloned()
        .collect()
}

fn merge_list(field: &str, existing: &[Value], items: &[Value]) -> ApiResult<Vec<Value>> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(strip_directives(items));
    }
    if is_primitive_set(field) {
        let mut out = existing.to_vec();
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return Ok(out);
    }
    let Some(key) = merge_key(field, items) else {
        return Ok(items.to_vec());
    };
    let mut out = existing.to_vec();
    for item in items {
        let id = item.get(key);
        let pos = id.and_then(|id| out.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(p), true) => {
                out.remove(p);
            }
            (None, true) => {}
            (Some(p), false) => merge_value(&mut out[p], item)?,
            (None, false) => out.push(item.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() -> ApiResult<()> {
        let live = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}});
        let out = strategic_merge(&live, &patch)?;
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}])
        );
        Ok(())
    }

    #[test]
    fn strategic_merge_directives() -> ApiResult<()> {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
                          "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let patch = json!({
            "metadata": {"labels": {"a": null}, "finalizers": ["y"]},
            "spec": {"containers": [{"name": "a", "$patch": "delete"}], "$setElementOrder/containers": [{"name": "b"}]}
        });
        let out = strategic_merge(&live, &patch)?;
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["spec"]["containers"], json!([{"name": "b"}]));
        let out = strategic_merge(
            &out,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
        )?;
        assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
        Ok(())
    }

    #[test]
    fn json_patch_null_test_passes_on_a_missing_path_like_kubernetes() -> ApiResult<()> {
        let patch = br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                         {"op":"add","path":"/metadata/finalizers","value":[]},
                         {"op":"add","path":"/metadata/finalizers/-","value":"x/y"}]"#;
        let out = json_patch(&json!({"metadata": {"name": "a"}}), patch)?;
        assert_eq!(out["metadata"]["finalizers"], json!(["x/y"]));
        // When the list exists, the null test fails and nothing changes.
        let err = json_patch(&out, patch).err();
        assert_eq!(err.map(|e| e.code), Some(422));
        Ok(())
    }

    #[test]
    fn json_patch_test_failure_is_unprocessable() {
        let err = json_patch(
            &json!({"a": 1}),
            br#"[{"op":"test","path":"/a","value":2}]"#,
        )
        .err();
        assert_eq!(err.map(|e| e.code), Some(422));
    }
}
