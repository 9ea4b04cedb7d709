//! Validation, defaulting and pruning of custom resources against their CRD's structural
//! OpenAPI v3 schema, as the API server does before it stores them.
//!
//! Covered: `type` (with `nullable`, `x-kubernetes-int-or-string`), `properties`,
//! `additionalProperties`, `required`, `enum`, `pattern`, `minLength`/`maxLength`,
//! `minimum`/`maximum`, `minItems`/`maxItems`, `x-kubernetes-list-type` `set` and `map` (with
//! `x-kubernetes-list-map-keys`), `default`, `anyOf`, and `x-kubernetes-preserve-unknown-fields`.
//! Unknown fields are pruned, or refused when the request asks for strict field validation.
//! Not covered: CEL rules (`x-kubernetes-validations`), `oneOf`/`allOf`/`not`, formats.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

/// One invalid field, in the API server's words: `spec.podSecurity: Unsupported value: …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

impl Cause {
    fn new(field: &str, reason: &'static str, message: String) -> Self {
        Self {
            field: field.to_string(),
            reason,
            message,
        }
    }

    pub fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// What checking one object found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub invalid: Vec<Cause>,
    /// Paths of fields the schema does not know (pruned unless validation is strict).
    pub unknown: Vec<String>,
}

fn regex(pattern: &str) -> Option<regex::Regex> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<regex::Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(pattern.to_string())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Validates, defaults and prunes `value` (at `path`) in place.
pub fn check(value: &mut Value, schema: &Value, path: &str, out: &mut Outcome) {
    if value.is_null() {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(value);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            out.invalid.push(Cause::new(
                path,
                "FieldValueTypeInvalid",
                format!(
                    "Invalid value: {:?}: {path} in body must be of type {want}: {have:?}",
                    type_name(value)
                ),
            ));
            return;
        }
    } else if int_or_string && !matches!(type_name(value), "integer" | "string") {
        out.invalid.push(Cause::new(
            path,
            "FieldValueTypeInvalid",
            format!(
                "Invalid value: {}: must be an integer or a string",
                quoted(value)
            ),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        let supported = options.iter().map(quoted).collect::<Vec<_>>().join(", ");
        out.invalid.push(Cause::new(
            path,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {}: supported values: {supported}",
                quoted(value)
            ),
        ));
    }
    if let Some(branches) = schema.get("anyOf").and_then(Value::as_array) {
        let fits = branches.iter().any(|b| {
            let mut probe = Outcome::default();
            let mut copy = value.clone();
            check(&mut copy, b, path, &mut probe);
            probe.invalid.is_empty()
        });
        if !fits && !int_or_string {
            out.invalid.push(Cause::new(
                path,
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: does not match any of the allowed schemas",
                    quoted(value)
                ),
            ));
        }
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueTooLong",
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
            if let Some(min) = schema
                .get("minLength")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {s:?}: {path} in body should be at least {min} chars long"
                    ),
                ));
            }
            if let Some(p) = schema.get("pattern").and_then(Value::as_str)
                && regex(p).is_some_and(|re| !re.is_match(s))
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueInvalid",
                    format!("Invalid value: {s:?}: {path} in body should match '{p}'"),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(max) = schema
                .get("maximum")
                .and_then(Value::as_f64)
                .filter(|m| x > *m)
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ),
                ));
            }
            if let Some(min) = schema
                .get("minimum")
                .and_then(Value::as_f64)
                .filter(|m| x < *m)
            {
                out.invalid.push(Cause::new(path, "FieldValueInvalid", format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}")));
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(max) = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueTooMany",
                    format!("Too many: {len}: must have at most {max} items"),
                ));
            }
            if let Some(min) = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                out.invalid.push(Cause::new(
                    path,
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {len}: {path} in body should have at least {min} items"
                    ),
                ));
            }
            match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            out.invalid.push(Cause::new(
                                &format!("{path}[{i}]"),
                                "FieldValueDuplicate",
                                format!("Duplicate value: {}", quoted(item)),
                            ));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = schema
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of = |item: &Value| -> Map<String, Value> {
                        keys.iter()
                            .filter_map(|k| item.get(*k).map(|v| (k.to_string(), v.clone())))
                            .collect()
                    };
                    for i in 0..items.len() {
                        let k = key_of(&items[i]);
                        if items[..i].iter().any(|prev| key_of(prev) == k) {
                            out.invalid.push(Cause::new(
                                &format!("{path}[{i}]"),
                                "FieldValueDuplicate",
                                format!("Duplicate value: {}", Value::Object(k)),
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    check(item, item_schema, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => check_object(map, schema, path, out),
        _ => {}
    }
}

fn check_object(map: &mut Map<String, Value>, schema: &Value, path: &str, out: &mut Outcome) {
    let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    // Defaults for absent fields, then the fields themselves.
    if let Some(props) = properties {
        for (k, sub) in props {
            if !map.contains_key(k)
                && let Some(d) = sub.get("default")
            {
                map.insert(k.clone(), d.clone());
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for r in required.iter().filter_map(Value::as_str) {
            if map.get(r).is_none_or(Value::is_null) {
                out.invalid.push(Cause::new(
                    &join(path, r),
                    "FieldValueRequired",
                    "Required value".to_string(),
                ));
            }
        }
    }
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let sub = properties.and_then(|p| p.get(&k)).or(additional);
        match sub {
            Some(sub) => {
                if let Some(v) = map.get_mut(&k) {
                    check(v, sub, &join(path, &k), out);
                }
            }
            None if preserve
                || (properties.is_none()
                    && additional.is_none()
                    && schema.get("type").is_none()) => {}
            None => {
                out.unknown.push(join(path, &k));
                map.remove(&k);
            }
        }
    }
}

/// Checks a whole custom resource against its version's `openAPIV3Schema`. `metadata` is the
/// API server's business, not the schema's, except that it is never pruned.
pub fn check_resource(obj: &mut Value, schema: &Value) -> Outcome {
    let mut out = Outcome::default();
    if let Some(map) = obj.as_object_mut() {
        let metadata = map.remove("metadata");
        let api_version = map.remove("apiVersion");
        let kind = map.remove("kind");
        check_object(map, schema, "", &mut out);
        for (k, v) in [
            ("metadata", metadata),
            ("apiVersion", api_version),
            ("kind", kind),
        ] {
            if let Some(v) = v {
                map.insert(k.into(), v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5},
            "level": {"type": "string", "enum": ["restricted", "baseline"], "default": "restricted"},
            "count": {"type": "integer", "minimum": 0},
            "size": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": true, "pattern": "^[0-9]+(Gi)?$"},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                      "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}}})
    }

    #[test]
    fn valid_objects_get_defaults_and_lose_unknown_fields() {
        let mut o = json!({"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "a"},
            "spec": {"name": "abc", "size": 5, "extra": 1, "free": {"anything": true}}});
        let out = check_resource(&mut o, &schema());
        assert!(out.invalid.is_empty(), "{:?}", out.invalid);
        assert_eq!(out.unknown, ["spec.extra"]);
        assert_eq!(
            o["spec"],
            json!({"name": "abc", "level": "restricted", "size": 5, "free": {"anything": true}})
        );
        assert_eq!(o["metadata"]["name"], "a");
    }

    #[test]
    fn each_violation_names_its_field() {
        let mut o = json!({"spec": {"name": "ABCDEFG", "level": "privileged", "count": -1, "size": "lots",
            "items": [{"name": "a"}, {"name": "a"}]}});
        let out = check_resource(&mut o, &schema());
        let fields: Vec<(&str, &str)> = out
            .invalid
            .iter()
            .map(|c| (c.field.as_str(), c.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("spec.count", "FieldValueInvalid"),
                ("spec.items[1]", "FieldValueDuplicate"),
                ("spec.level", "FieldValueNotSupported"),
                ("spec.name", "FieldValueTooLong"),
                ("spec.name", "FieldValueInvalid"),
                ("spec.size", "FieldValueInvalid"),
            ]
        );
        assert_eq!(
            out.invalid[2].text(),
            "spec.level: Unsupported value: \"privileged\": supported values: \"restricted\", \"baseline\""
        );
        let mut missing = json!({"spec": {}});
        let out = check_resource(&mut missing, &schema());
        assert_eq!(out.invalid[0].text(), "spec.name: Required value");
    }
}
