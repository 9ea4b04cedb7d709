//! Running the real kubectl and helm binaries against a simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A client binary: `$KUBECTL`/`$HELM` when set, else the first on PATH. The test command
/// (`scripts/test`) installs kubectl 1.35 and helm 4 and puts them first on PATH.
pub fn tool(name: &str) -> PathBuf {
    let var = name.to_uppercase();
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/test (it installs it) or set ${var}")
        })
}

/// Runs a client with the simulator's kubeconfig and a private HOME (its discovery cache).
pub fn run(bin: &Path, kubeconfig: &Path, home: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .env("HELM_CACHE_HOME", home.join("helm-cache"))
        .env("HELM_CONFIG_HOME", home.join("helm-config"))
        .env("HELM_DATA_HOME", home.join("helm-data"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a command succeeded and returns its standard output.
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}
