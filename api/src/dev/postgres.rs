//! A private PostgreSQL for `govcloud dev`, from the machine's own binaries, kept in the state
//! directory so that nothing is lost between runs.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "no PostgreSQL binaries (initdb, pg_ctl) on PATH or under /usr/lib/postgresql/*/bin; install PostgreSQL or pass --database-url"
    )]
    NoBinaries,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

pub struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    as_user: Option<String>,
    pub url: String,
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").is_file())
            .collect();
        dirs.sort_by_key(|p| {
            p.parent()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(0)
        });
        dirs.pop()
    })
}

fn output(step: &'static str, cmd: &mut Command) -> Result<String, PostgresError> {
    let out = cmd.output().map_err(|e| PostgresError::Step {
        step,
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(PostgresError::Step {
            step,
            detail: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn is_root() -> bool {
    output("id -u", Command::new("id").arg("-u")).is_ok_and(|u| u == "0")
}

impl PrivatePostgres {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Starts the cluster in `dir` (made on first use) on a free loopback port.
    pub fn start(dir: &Path) -> Result<Self, PostgresError> {
        let bin = find_bin_dir().ok_or(PostgresError::NoBinaries)?;
        std::fs::create_dir_all(dir).map_err(|e| PostgresError::Step {
            step: "creating the data directory",
            detail: e.to_string(),
        })?;
        // initdb refuses to run as root: the cluster then runs as an unprivileged user.
        let as_user = if is_root() {
            let user = if output("id", Command::new("id").args(["-u", "postgres"])).is_ok() {
                "postgres"
            } else {
                "nobody"
            };
            output(
                "handing the data directory to the PostgreSQL user",
                Command::new("chown").args(["-R", user]).arg(dir),
            )?;
            output(
                "checking that the PostgreSQL user can reach the state directory",
                Command::new("runuser").args(["-u", user, "--", "test", "-w"]).arg(dir),
            )
            .map_err(|_| PostgresError::Step {
                step: "checking the state directory",
                detail: format!(
                    "user {user} cannot write {}: choose a --state-dir it can reach (not under /root) or pass --database-url",
                    dir.display()
                ),
            })?;
            Some(user.to_string())
        } else {
            None
        };
        let data = dir.join("data");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| PostgresError::Step {
                step: "finding a free port",
                detail: e.to_string(),
            })?;
        let mut pg = Self {
            bin,
            data,
            as_user,
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        if !pg.data.join("PG_VERSION").exists() {
            output(
                "initdb",
                pg.command("initdb").arg("-D").arg(&pg.data).args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ]),
            )?;
        }
        // A previous run killed without a stop leaves its pid file; pg_ctl deals with a stale one.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.display()
        );
        output(
            "pg_ctl start",
            pg.command("pg_ctl")
                .arg("-D")
                .arg(&pg.data)
                .arg("-l")
                .arg(dir.join("postgres.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]),
        )?;
        pg.url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        Ok(pg)
    }

    /// Stops the cluster; its data stays for the next run.
    pub fn stop(&self) {
        if let Err(e) = output(
            "pg_ctl stop",
            self.command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["-m", "fast", "-w", "stop"]),
        ) {
            tracing::warn!(error = %e, "PostgreSQL did not stop cleanly");
        }
    }
}
