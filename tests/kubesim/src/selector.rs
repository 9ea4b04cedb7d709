//! Label selectors (equality- and set-based) and field selectors, parsed and matched as the API
//! server does for `labelSelector=` and `fieldSelector=`.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Exists,
    NotExists,
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    pub fn parse(input: &str) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for part in split_top_level(input) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unable to parse requirement: {part:?} in label selector {input:?}"
                ))
            })?);
        }
        Ok(Self(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`).
    pub fn from_json(v: &Value) -> ApiResult<Self> {
        let mut reqs = Vec::new();
        for (k, val) in v
            .get("matchLabels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let val = val
                .as_str()
                .ok_or_else(|| ApiError::bad_request(format!("matchLabels {k}: not a string")))?;
            reqs.push(Requirement {
                key: k.clone(),
                op: Op::Eq(val.to_string()),
            });
        }
        for e in v
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let op = match e.get("operator").and_then(Value::as_str) {
                Some("In") => Op::In(values),
                Some("NotIn") => Op::NotIn(values),
                Some("Exists") => Op::Exists,
                Some("DoesNotExist") => Op::NotExists,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "matchExpressions {key}: unknown operator {other:?}"
                    )));
                }
            };
            reqs.push(Requirement {
                key: key.to_string(),
                op,
            });
        }
        Ok(Self(reqs))
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.0.iter().all(|r| {
            let v = labels.and_then(|l| l.get(&r.key)).and_then(Value::as_str);
            match &r.op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Eq(want) => v == Some(want.as_str()),
                Op::NotEq(want) => v != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.iter().any(|s| s == v)),
                Op::NotIn(set) => v.is_none_or(|v| !set.iter().any(|s| s == v)),
            }
        })
    }
}

/// Splits on commas that are not inside a `( … )` value set.
fn split_top_level(input: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&input[start..]);
    parts
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_value(v: &str) -> bool {
    v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
    values.iter().all(|v| valid_value(v)).then_some(values)
}

fn parse_requirement(part: &str) -> Option<Requirement> {
    if let Some(key) = part.strip_prefix('!') {
        let key = key.trim();
        return valid_key(key).then(|| Requirement {
            key: key.into(),
            op: Op::NotExists,
        });
    }
    for (token, is_in) in [(" notin ", false), (" in ", true)] {
        if let Some((key, set)) = part.split_once(token) {
            let key = key.trim();
            let set = parse_set(set)?;
            if !valid_key(key) {
                return None;
            }
            let op = if is_in { Op::In(set) } else { Op::NotIn(set) };
            return Some(Requirement {
                key: key.into(),
                op,
            });
        }
    }
    let (key, op) = if let Some((k, v)) = part.split_once("!=") {
        (k, Op::NotEq(v.trim().into()))
    } else if let Some((k, v)) = part.split_once("==") {
        (k, Op::Eq(v.trim().into()))
    } else if let Some((k, v)) = part.split_once('=') {
        (k, Op::Eq(v.trim().into()))
    } else {
        (part, Op::Exists)
    };
    let key = key.trim();
    let value_ok = match &op {
        Op::Eq(v) | Op::NotEq(v) => valid_value(v),
        _ => true,
    };
    (valid_key(key) && value_ok).then(|| Requirement {
        key: key.into(),
        op,
    })
}

/// A parsed field selector: `path=value` / `path!=value` terms, all of which must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a field selector, allowing the field paths `allowed` besides `metadata.name` and
    /// `metadata.namespace` (the API server refuses other fields with 400).
    pub fn parse(input: &str, allowed: &[&str]) -> ApiResult<Self> {
        let mut terms = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{input}'; can't understand '{part}'"
                )));
            };
            let field = field.trim();
            if !(field == "metadata.name"
                || field == "metadata.namespace"
                || allowed.contains(&field))
            {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            terms.push((field.to_string(), eq, value.trim().to_string()));
        }
        Ok(Self(terms))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, want)| {
            let pointer = format!("/{}", field.replace('.', "/"));
            let have = obj.pointer(&pointer).and_then(Value::as_str).unwrap_or("");
            (have == want) == *eq
        })
    }

    /// Whether the selector has no terms (matches everything).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({ "metadata": { "name": "a", "namespace": "ns", "labels": labels } })
    }

    #[test]
    fn label_selectors_match_like_kubernetes() -> ApiResult<()> {
        let o = obj(json!({ "app": "web", "tier": "front" }));
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=db", false),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web, db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app=web,tier in (front,back)", true),
            ("app=web,tier=back", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel)?.matches(&o), want, "{sel}");
        }
        Ok(())
    }

    #[test]
    fn malformed_selectors_are_bad_requests() {
        for bad in ["app in web", "a b=c", "app=(x"] {
            let err = LabelSelector::parse(bad).err();
            assert_eq!(err.map(|e| e.code), Some(400), "{bad}");
        }
        assert_eq!(
            FieldSelector::parse("spec.foo=x", &[])
                .err()
                .map(|e| e.code),
            Some(400)
        );
    }

    #[test]
    fn field_selectors_on_name_and_namespace() -> ApiResult<()> {
        let o = obj(json!({}));
        assert!(FieldSelector::parse("metadata.name=a", &[])?.matches(&o));
        assert!(!FieldSelector::parse("metadata.name=b", &[])?.matches(&o));
        assert!(FieldSelector::parse("metadata.namespace!=other", &[])?.matches(&o));
        Ok(())
    }
}
