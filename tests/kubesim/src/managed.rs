//! Field ownership for server-side apply: `metadata.managedFields` in the `FieldsV1` format.
//!
//! Maps are owned field by field; lists are owned whole (atomic). Kubernetes treats lists with
//! merge keys (`containers`, `x-kubernetes-list-type: map`) as sets of items instead: here two
//! managers applying different items of one list conflict where Kubernetes would merge them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// A set of owned field paths, shaped like `fieldsV1`: `{"f:data": {"f:key": {}}}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet(BTreeMap<String, FieldSet>);

pub type Path = Vec<String>;

/// Metadata the server owns: never tracked, never taken from an applied configuration.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    /// The leaf fields set in `obj` (server metadata, apiVersion and kind left out).
    pub fn of(obj: &Value) -> Self {
        let mut set = Self::of_map(obj, 0);
        if let Some(meta) = set.0.get_mut("f:metadata") {
            for k in SERVER_METADATA {
                meta.0.remove(&format!("f:{k}"));
            }
            if meta.0.is_empty() {
                set.0.remove("f:metadata");
            }
        }
        set.0.remove("f:apiVersion");
        set.0.remove("f:kind");
        set
    }

    fn of_map(v: &Value, depth: usize) -> Self {
        let mut out = BTreeMap::new();
        if let Some(map) = v.as_object() {
            for (k, child) in map {
                if child.is_null() {
                    continue;
                }
                let sub = match child.as_object() {
                    Some(m) if !m.is_empty() && depth < 64 => {
                        let s = Self::of_map(child, depth + 1);
                        if s.0.is_empty() {
                            continue;
                        }
                        s
                    }
                    _ => Self::default(),
                };
                out.insert(format!("f:{k}"), sub);
            }
        }
        Self(out)
    }

    pub fn from_json(v: &Value) -> Self {
        let mut out = BTreeMap::new();
        if let Some(map) = v.as_object() {
            for (k, child) in map {
                out.insert(k.clone(), Self::from_json(child));
            }
        }
        Self(out)
    }

    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect::<Map<_, _>>(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every owned leaf path, as plain field names.
    pub fn leaves(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        for (k, child) in &self.0 {
            prefix.push(k.trim_start_matches("f:").to_string());
            if child.0.is_empty() {
                out.push(prefix.clone());
            } else {
                child.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// Whether this set owns `path`, an ancestor of it, or anything below it.
    pub fn overlaps(&self, path: &[String]) -> bool {
        let mut node = self;
        for seg in path {
            match node.0.get(&format!("f:{seg}")) {
                Some(child) if child.0.is_empty() => return true,
                Some(child) => node = child,
                None => return false,
            }
        }
        true
    }

    pub fn remove(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let key = format!("f:{first}");
        if rest.is_empty() {
            self.0.remove(&key);
        } else if let Some(child) = self.0.get_mut(&key) {
            child.remove(rest);
            if child.0.is_empty() {
                self.0.remove(&key);
            }
        }
    }

    pub fn insert(&mut self, path: &[String]) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = self.0.entry(format!("f:{first}")).or_default();
        child.insert(rest);
    }
}

pub fn get_path<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, seg| v.get(seg))
}

pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = obj;
    for seg in parents {
        match node.get_mut(seg) {
            Some(n) => node = n,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last);
    }
}

/// Deep-merges `config` into `live`: maps field by field, everything else replaced.
pub fn merge_into(live: &mut Value, config: &Value) {
    match (live.as_object_mut(), config.as_object()) {
        (Some(l), Some(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    continue;
                }
                match l.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_into(existing, v)
                    }
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *live = config.clone(),
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    fn same_slot(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
    }
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|e| Entry {
                    manager: e["manager"].as_str().unwrap_or_default().into(),
                    operation: e["operation"].as_str().unwrap_or("Update").into(),
                    api_version: e["apiVersion"].as_str().unwrap_or_default().into(),
                    time: e["time"].as_str().unwrap_or_default().into(),
                    subresource: e["subresource"].as_str().map(str::to_string),
                    fields: FieldSet::from_json(&e["fieldsV1"]),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": e.fields.to_json(),
            });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A field that another manager owns with a different value.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub manager: String,
    pub path: Path,
}

/// What an apply asks for, besides the configuration itself.
pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub time: &'a str,
    pub subresource: Option<&'a str>,
    pub force: bool,
}

/// Server-side apply of `config` onto `live`: returns the merged object with updated
/// managedFields, or the conflicts when another manager owns a field with another value.
pub fn apply(live: &Value, config: &Value, req: &ApplyRequest<'_>) -> Result<Value, Vec<Conflict>> {
    let applied = FieldSet::of(config);
    let mut entries = read_entries(live);
    let mut conflicts = Vec::new();
    for e in entries
        .iter()
        .filter(|e| !e.same_slot(req.manager, "Apply", req.subresource))
    {
        for path in applied.leaves() {
            if e.fields.overlaps(&path) && get_path(live, &path) != get_path(config, &path) {
                conflicts.push(Conflict {
                    manager: e.manager.clone(),
                    path,
                });
            }
        }
    }
    if !conflicts.is_empty() && !req.force {
        return Err(conflicts);
    }
    for c in &conflicts {
        for e in entries.iter_mut().filter(|e| e.manager == c.manager) {
            e.fields.remove(&c.path);
        }
    }
    let mut merged = live.clone();
    let previous = entries
        .iter()
        .find(|e| e.same_slot(req.manager, "Apply", req.subresource))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    for path in previous.leaves() {
        let still_applied = applied.overlaps(&path);
        let owned_by_others = entries
            .iter()
            .filter(|e| !e.same_slot(req.manager, "Apply", req.subresource))
            .any(|e| e.fields.overlaps(&path));
        if !still_applied && !owned_by_others {
            remove_path(&mut merged, &path);
        }
    }
    merge_into(&mut merged, config);
    entries.retain(|e| !e.same_slot(req.manager, "Apply", req.subresource));
    entries.push(Entry {
        manager: req.manager.into(),
        operation: "Apply".into(),
        api_version: req.api_version.into(),
        time: req.time.into(),
        subresource: req.subresource.map(str::to_string),
        fields: applied,
    });
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// Records an update (create, replace, patch) by `manager`: it takes ownership of the fields it
/// changed, and nobody owns the fields it removed.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    api_version: &str,
    time: &str,
    subresource: Option<&str>,
) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let null = Value::Null;
    let old_obj = old.unwrap_or(&null);
    let changed: Vec<Path> = FieldSet::of(new)
        .leaves()
        .into_iter()
        .filter(|p| get_path(old_obj, p) != get_path(new, p))
        .collect();
    let removed: Vec<Path> = FieldSet::of(old_obj)
        .leaves()
        .into_iter()
        .filter(|p| get_path(new, p).is_none())
        .collect();
    if changed.is_empty() && removed.is_empty() {
        write_entries(new, &entries);
        return;
    }
    for e in entries.iter_mut() {
        for p in changed.iter().chain(&removed) {
            e.fields.remove(p);
        }
    }
    let pos = entries
        .iter()
        .position(|e| e.same_slot(manager, "Update", subresource));
    let entry = match pos {
        Some(p) => &mut entries[p],
        None => {
            entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: time.into(),
                subresource: subresource.map(str::to_string),
                fields: FieldSet::default(),
            });
            let last = entries.len() - 1;
            &mut entries[last]
        }
    };
    entry.time = time.into();
    entry.api_version = api_version.into();
    for p in &changed {
        entry.fields.insert(p);
    }
    write_entries(new, &entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest {
            manager,
            api_version: "v1",
            time: "2026-01-01T00:00:00Z",
            subresource: None,
            force,
        }
    }

    #[test]
    fn apply_records_owned_fields_and_drops_what_is_no_longer_applied() -> Result<(), Vec<Conflict>>
    {
        let live = json!({"metadata": {"name": "c"}});
        let first = apply(
            &live,
            &json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}),
            &req("op", false),
        )?;
        assert_eq!(
            first["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
        let second = apply(&first, &json!({"data": {"a": "1"}}), &req("op", false))?;
        assert_eq!(second["data"], json!({"a": "1"}));
        Ok(())
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() -> Result<(), Vec<Conflict>> {
        let mut live = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(None, &mut live, "kubectl-edit", "v1", "t", None);
        let err = apply(&live, &json!({"data": {"a": "2"}}), &req("op", false))
            .err()
            .unwrap_or_default();
        assert_eq!(
            err,
            vec![Conflict {
                manager: "kubectl-edit".into(),
                path: vec!["data".into(), "a".into()]
            }]
        );
        // The same value is shared ownership, not a conflict.
        assert!(apply(&live, &json!({"data": {"a": "1"}}), &req("op", false)).is_ok());
        let forced = apply(&live, &json!({"data": {"a": "2"}}), &req("op", true))?;
        assert_eq!(forced["data"]["a"], "2");
        assert_eq!(
            read_entries(&forced).len(),
            1,
            "the loser no longer owns anything"
        );
        Ok(())
    }
}
