//! The `govcloud` binary: `migrate`, `principal`, and `serve` over HTTPS with a configured
//! certificate, as an operator of the platform runs them.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use govcloud_api::db::principals;
use govcloud_api::domain::token as tokens;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;

const BIN: &str = env!("CARGO_BIN_EXE_govcloud");

use support::Child as Server;

fn url(opts: &PgConnectOptions) -> String {
    support::database_url(opts)
}

#[sqlx::test(migrations = false)]
async fn migrate_then_register_a_principal_with_a_token(db: PgPool) {
    let url = url(&db.connect_options());
    let out = Command::new(BIN)
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = Command::new(BIN)
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.status.success(), "migrating twice is harmless");

    let out = Command::new(BIN)
        .args([
            "principal",
            "--database-url",
            &url,
            "--name",
            "platform-team",
            "--role",
            "platform-admin",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(tokens::looks_like_token(&token), "{token}");
    let caller = principals::by_token_hash(&db, &tokens::hash(&token))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        caller.map(|(c, _)| c.name).as_deref(),
        Some("platform-team")
    );

    // An org admin needs an organization; the error says so and nothing is registered.
    let out = Command::new(BIN)
        .args([
            "principal",
            "--database-url",
            &url,
            "--name",
            "it",
            "--role",
            "org-admin",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("org-admin and finance need --organization")
    );
    assert!(
        principals::id_by_name(&db, "it")
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_none()
    );
}

#[sqlx::test(migrations = false)]
async fn serve_speaks_https_with_the_configured_certificate_and_stops_on_sigterm(db: PgPool) {
    let url = url(&db.connect_options());
    let sim = kubesim::KubeSim::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut server = Server(
        Command::new(BIN)
            .args([
                "serve",
                "--migrate",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                &url,
            ])
            .args([
                "--tls-cert",
                &format!("{fixtures}/tls.crt"),
                "--tls-key",
                &format!("{fixtures}/tls.key"),
            ])
            .env("KUBECONFIG", &kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let child = &mut server.0;
    let ca = reqwest::Certificate::from_pem(include_bytes!("fixtures/ca.crt"))
        .unwrap_or_else(|e| panic!("{e}"));
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let ready = govcloud_testing::eventually("the HTTPS server to answer", || async {
        https
            .get(format!("https://localhost:{port}/readyz"))
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| format!("{e:?}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready, reqwest::StatusCode::OK);
    let r = https
        .get(format!("https://localhost:{port}/v1/tenants"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Plain HTTP is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 30 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exited.success(), "a graceful stop exits 0: {exited}");
}

#[test]
fn bad_group_rules_stop_serve_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rules = dir.path().join("groups.yaml");
    let cases = [
        (
            "- {group: 'nghean:it', role: org-admin}\n",
            "org-admin and finance take an organization",
        ),
        ("- {group: g, role: root}\n", "unknown variant `root`"),
    ];
    for (yaml, said) in cases {
        std::fs::write(&rules, yaml).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(BIN)
            .args([
                "serve",
                "--database-url",
                "postgres://nobody@127.0.0.1:1/none",
            ])
            .args([
                "--oidc-issuer",
                "https://id.example",
                "--oidc-audience",
                "govcloud",
            ])
            .arg("--oidc-group-roles")
            .arg(&rules)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            stderr.contains("the OIDC group rules in") && stderr.contains(said),
            "{stderr}"
        );
    }
}

#[sqlx::test(migrations = false)]
async fn serve_refuses_a_database_behind_its_schema_unless_told_to_migrate(db: PgPool) {
    let url = url(&db.connect_options());
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("migrations pending") && stderr.contains("govcloud migrate"),
        "{stderr}"
    );
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.tables where table_name = 'tenant'",
    )
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tables, 0, "serve changed nothing");
}
