//! What a newcomer does first: runs `govcloud dev`, starts a pod with kubectl in a demo
//! agency's namespace, and within two metering windows sees its requested CPU in
//! `GET /v1/usage` and in the utilisation report — beside last month's seeded usage; and what
//! a finance officer does first: approves last month's invoice, downloads it as CSV and PDF,
//! and sees the agency's budget alert.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::PgPool;

use support::{Child as Dev, database_url as url};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Option<Value> {
    let r = client.get(url).bearer_auth(token).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

fn requested(usage: &Value) -> i64 {
    usage["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["buckets"].as_array().cloned().unwrap_or_default())
        .filter_map(|b| b["quantity"].as_str()?.parse::<i64>().ok())
        .sum()
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_newcomer_sees_a_pod_they_started_in_usage_within_two_windows(db: PgPool) {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_dev, api, tokens) = start_dev(&db, state.path()).await;
    let client = reqwest::Client::new();
    let admin = tokens["tenant-admin"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let finance = tokens["finance"].as_str().unwrap_or_default().to_string();

    // Last month is there at once, seeded through the ingest endpoint.
    let now = chrono::Utc::now();
    let last_month = govcloud_api::domain::period::month_before(now);
    let report = get(
        &client,
        &format!("{api}/v1/utilisation?organization=demo-province&month={last_month}"),
        &finance,
    )
    .await
    .unwrap_or_else(|| panic!("no utilisation for {last_month}"));
    assert!(
        report.to_string().contains("\"requestedPercent\":\""),
        "last month has numbers: {report}"
    );

    // The newcomer starts a pod of 200m in the agency's (empty) staging namespace.
    let kubeconfig = state.path().join("kubeconfig");
    let manifest = state.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hello, namespace: demo-stttt-staging}\nspec:\n  containers:\n  - name: hello\n    image: registry.example.gov.vn/hello:1.0\n    imagePullPolicy: Always\n    resources:\n      requests: {cpu: 200m, memory: 128Mi}\n      limits: {cpu: 200m, memory: 128Mi}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let applied = wait_for_kubectl(&kubeconfig, &manifest, state.path()).await;
    assert!(applied, "kubectl could not start the pod");
    let started = Instant::now();

    let usage_url = format!(
        "{api}/v1/usage?tenant=demo-stttt&namespace=demo-stttt-staging&metric=cpu.requested&granularity=hour"
    );
    let seen = loop {
        if let Some(u) = get(&client, &usage_url, &admin).await
            && requested(&u) > 0
        {
            break u;
        }
        // two windows of 10 s, and the moment it takes to deliver
        assert!(
            started.elapsed() < Duration::from_secs(35),
            "no requested cpu within two windows"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // 200 millicores over every metered second of it
    let metered: i64 = seen["series"][0]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["meteredSeconds"].as_i64())
        .sum();
    assert!(metered > 0);
    assert!(requested(&seen) <= 200 * metered, "{seen}");

    let month = govcloud_api::domain::period::month_of(now);
    let report = get(
        &client,
        &format!("{api}/v1/utilisation?organization=demo-province&month={month}"),
        &admin,
    )
    .await
    .unwrap_or_else(|| panic!("no utilisation for {month}"));
    let staging = report["tenants"][0]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["namespace"] == "demo-stttt-staging")
        .cloned()
        .unwrap_or_default();
    let requested: i64 = staging["cpu"]["requested"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default();
    assert!(requested > 0, "{staging}");
}

/// Starts `govcloud dev` on `db`; answers the process, its URL and the tokens it wrote.
async fn start_dev(db: &PgPool, state: &Path) -> (Dev, String, Value) {
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let dev = Dev(Command::new(env!("CARGO_BIN_EXE_govcloud"))
        .args([
            "dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--state-dir",
        ])
        .arg(state)
        .env("GOVCLOUD_DEV_DATABASE_URL", url(&db.connect_options()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start govcloud dev: {e}")));
    let tokens_path = state.join("tokens.json");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let tokens: Value = loop {
        assert!(Instant::now() < deadline, "govcloud dev did not start");
        if let Ok(text) = std::fs::read_to_string(&tokens_path)
            && let Ok(v) = serde_json::from_str::<Value>(&text)
            && client
                .get(format!("{api}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    (dev, api, tokens)
}

/// A finance officer's first month on `govcloud dev`: last month's invoice of the demo agency
/// is issued and waiting; they approve it, download its CSV and PDF, whose totals agree with
/// the API to the đồng, and see the agency's budget alert.
#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_finance_officer_does_the_months_work_on_govcloud_dev(db: PgPool) {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (_dev, api, tokens) = start_dev(&db, state.path()).await;
    let finance = tokens["finance"].as_str().unwrap_or_default().to_string();
    let client = reqwest::Client::new();
    let now = chrono::Utc::now();
    let last_month = govcloud_api::domain::period::month_before(now);
    let list = get(
        &client,
        &format!("{api}/v1/invoices?tenant=demo-stttt&month={last_month}&kind=invoice"),
        &finance,
    )
    .await
    .unwrap_or_else(|| panic!("no invoices"));
    let invoice = list["items"][0].clone();
    assert_eq!(invoice["state"], "issued", "{list}");
    let id = invoice["id"].as_str().unwrap_or_default();
    let approved: Value = client
        .post(format!("{api}/v1/invoices/{id}/approve"))
        .bearer_auth(&finance)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(approved["state"], "approved", "{approved}");
    let total = approved["total"].as_str().unwrap_or_default().to_string();
    let download = |path: String| {
        let client = client.clone();
        let finance = finance.clone();
        async move {
            let r = client
                .get(path)
                .bearer_auth(finance)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.unwrap_or_else(|e| panic!("{e}")).to_vec()
        }
    };
    let csv = download(format!("{api}/v1/invoices/{id}/csv")).await;
    let csv = String::from_utf8_lossy(&csv);
    assert!(
        csv.starts_with('\u{feff}'),
        "the CSV has no byte-order mark"
    );
    assert!(csv.contains(&format!("Tổng cộng / Total,{total}")), "{csv}");
    let pdf = download(format!("{api}/v1/invoices/{id}/pdf")).await;
    let file = state.path().join("invoice.pdf");
    std::fs::write(&file, &pdf).unwrap_or_else(|e| panic!("{e}"));
    let text = Command::new("pdftotext")
        .arg(&file)
        .arg("-")
        .output()
        .unwrap_or_else(|e| panic!("pdftotext: {e}"));
    let text = String::from_utf8_lossy(&text.stdout);
    let figure = govcloud_api::domain::money::format_vi(total.parse().unwrap_or_default());
    assert!(
        text.contains(&format!("{figure} ₫")),
        "the PDF's total is not {figure}: {text}"
    );
    assert!(text.contains("Sở Thông tin và Truyền thông"), "{text}");
    let alerts = get(
        &client,
        &format!("{api}/v1/alerts?tenant=demo-stttt"),
        &finance,
    )
    .await
    .unwrap_or_else(|| panic!("no alerts"));
    assert!(
        alerts["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["threshold"] == 100)),
        "no budget alert for the agency: {alerts}"
    );
}

/// Applies the manifest once the agency's namespace exists (the operator makes it).
async fn wait_for_kubectl(kubeconfig: &Path, manifest: &Path, home: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = Command::new(kubectl())
            .arg("apply")
            .arg("-f")
            .arg(manifest)
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", home)
            .output();
        if out.is_ok_and(|o| o.status.success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Stops `govcloud dev` as Ctrl-C does, and waits for it to finish.
fn interrupt(dev: &mut Dev) {
    let pid = dev.0.id().to_string();
    let _ = Command::new("kill").args(["-INT", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if dev.0.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("govcloud dev did not stop within 30 s of Ctrl-C");
}

/// A restart of `govcloud dev` keeps the simulated cluster: its address (so kubeconfigs
/// already issued still point at it), its objects (what an agency deployed) and the tokens of
/// the kubeconfigs issued.
#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_restart_of_govcloud_dev_keeps_the_cluster_and_issued_kubeconfigs(db: PgPool) {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut dev, api, tokens) = start_dev(&db, state.path()).await;
    let client = reqwest::Client::new();
    let admin = tokens["tenant-admin"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let issued: Value = loop {
        let r = client
            .post(format!("{api}/v1/tenants/demo-stttt/kubeconfig"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"namespace": "prod"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        if r.status().is_success() {
            break r.json().await.unwrap_or_else(|e| panic!("{e}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let kubeconfig = state.path().join("agency.kubeconfig");
    std::fs::write(
        &kubeconfig,
        issued["kubeconfig"].as_str().unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let manifest = state.path().join("cm.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: demo-stttt-prod}\ndata: {release: one}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(wait_for_kubectl(&kubeconfig, &manifest, state.path()).await);
    // let the periodic save see it, then stop as Ctrl-C does (which saves again)
    interrupt(&mut dev);
    drop(dev);

    let (_dev, _, _) = start_dev(&db, state.path()).await;
    let out = Command::new(kubectl())
        .args([
            "get",
            "configmap",
            "kept",
            "-n",
            "demo-stttt-prod",
            "-o",
            "jsonpath={.data.release}",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", state.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "the issued kubeconfig no longer works after a restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one");
}
