//! The api's layers import in one direction only: `http`, `console` → `app` → `db`, `cluster` →
//! `domain`.
//! The domain is pure (no sqlx, axum or kube), the database layer is only SQL, the cluster layer
//! only Kubernetes, and handlers reach the database and the cluster through the use cases.

use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// Each layer and what its code must never name.
const RULES: &[(&str, &[&str])] = &[
    (
        "domain",
        &[
            "crate::console",
            "crate::db",
            "crate::cluster",
            "crate::app",
            "crate::http",
            "crate::AppState",
            "crate::dev",
            "crate::serve",
            "crate::config",
            "crate::metrics",
            "sqlx",
            "axum",
            "kube::",
            "k8s_openapi",
            "tokio",
            "reqwest",
        ],
    ),
    (
        "db",
        &[
            "crate::console",
            "crate::cluster",
            "crate::app",
            "crate::http",
            "crate::AppState",
            "crate::dev",
            "crate::serve",
            "axum",
            "kube::",
            "k8s_openapi",
        ],
    ),
    (
        "cluster",
        &[
            "crate::console",
            "crate::db",
            "crate::app",
            "crate::http",
            "crate::AppState",
            "crate::dev",
            "crate::serve",
            "sqlx",
            "axum",
        ],
    ),
    (
        "app",
        &[
            "crate::http",
            "crate::console",
            "crate::dev",
            "crate::serve",
            "axum",
        ],
    ),
    (
        "console",
        &[
            "crate::db",
            "crate::cluster",
            "crate::dev",
            "crate::serve",
            "sqlx",
            "kube::",
        ],
    ),
    (
        "http",
        &[
            "crate::db",
            "crate::cluster",
            "crate::dev",
            "crate::serve",
            "sqlx",
            "kube::",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments, so prose may name any layer.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let mut broken = Vec::new();
    for (layer, forbidden) in RULES {
        let mut files = Vec::new();
        rust_files(&Path::new(SRC).join(layer), &mut files);
        assert!(!files.is_empty(), "no files in {layer}/");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
            let code = code(&text);
            for word in *forbidden {
                let hit = code.match_indices(word).any(|(i, _)| {
                    // A whole path segment: `crate::db` but not `crate::dbx`, `sqlx` but not `xsqlx`.
                    let before = code[..i].chars().next_back();
                    let after = code[i + word.len()..].chars().next();
                    let boundary =
                        |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    boundary(before) && (word.ends_with("::") || boundary(after))
                });
                if hit {
                    broken.push(format!(
                        "{} names {word}",
                        file.strip_prefix(SRC).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layering broken:\n{}", broken.join("\n"));
}

#[test]
fn the_rule_catches_a_forbidden_import() {
    let sample = code("use crate::db::tenants; // crate::http in prose is fine\n");
    assert!(sample.contains("crate::db"));
    assert!(!sample.contains("crate::http"));
}
