//! Metering through outages, end to end: the real operator (controller and metering) against
//! the simulated cluster, posting over HTTP to the real API on PostgreSQL. The API restarts,
//! PostgreSQL goes away for a while (its connections cut, new ones refused), the operator
//! crashes and comes back. Afterwards no window is counted twice, every window the operator
//! observed while the API or the database was down is delivered late, and the windows it
//! could not observe show as unmetered time.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use support::TestApi;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WINDOW: u64 = 10;
const NS: &str = "demo-stttt-prod";

/// A TCP proxy in front of PostgreSQL that can be taken down: open connections are cut and
/// new ones refused, as when the database stops.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (u, l) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let upstream = upstream.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                l.lock().unwrap_or_else(|e| e.into_inner()).push(link);
            }
        });
        Self { addr, up, links }
    }

    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            for link in self
                .links
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
            {
                link.abort();
            }
        }
    }
}

/// The API served on a fixed port; restartable.
async fn serve(state: govcloud_api::AppState, addr: SocketAddr) -> JoinHandle<()> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
    socket.set_reuseaddr(true).unwrap_or_else(|e| panic!("{e}"));
    socket.bind(addr).unwrap_or_else(|e| panic!("{e}"));
    let listener = socket.listen(64).unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, govcloud_api::app(state)).await;
    })
}

fn operator(api: &TestApi, url: &str, token: &str) -> JoinHandle<()> {
    let metering = govcloud_operator::metering::Settings {
        target: govcloud_operator::metering::deliver::Target {
            url: url.to_string(),
            token: token.to_string(),
            client: reqwest::Client::new(),
        },
        window: Duration::from_secs(WINDOW),
        buffer: Duration::from_secs(600),
    };
    tokio::spawn(govcloud_operator::controller::run(
        api.kube(),
        govcloud_operator::controller::Settings {
            metering: Some(metering),
            ..govcloud_operator::controller::Settings::default()
        },
        Arc::new(govcloud_operator::telemetry::Telemetry::default()),
        std::future::pending(),
    ))
}

/// The stored windows of the namespace: (start, cpu requested).
async fn windows(db: &PgPool) -> Vec<(DateTime<Utc>, Option<i64>)> {
    sqlx::query_as(
        "select u.window_start, u.cpu_requested from usage_window u
         join metered_namespace m using (metered_namespace_id)
         where m.kube_name = $1 order by u.window_start",
    )
    .bind(NS)
    .fetch_all(db)
    .await
    .unwrap_or_default()
}

async fn wait_for_window_after(db: &PgPool, t: DateTime<Utc>, what: &str) {
    govcloud_testing::eventually(what, || async {
        windows(db).await.iter().any(|(w, _)| *w > t).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn no_window_is_counted_twice_and_missed_windows_are_unmetered(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    // The API reaches PostgreSQL through the proxy.
    let opts = db.connect_options();
    let proxy = Proxy::start(format!("{}:{}", opts.get_host(), opts.get_port())).await;
    let proxied = PgPoolOptions::new()
        .max_connections(5)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with((*opts).clone().host("127.0.0.1").port(proxy.addr.port()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let state = govcloud_api::AppState {
        db: proxied,
        ..api.state.clone()
    };
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}"))
    };
    let url = format!("http://{addr}");
    let mut server = serve(state.clone(), addr).await;
    let token = api.token("metering").to_string();
    let mut op = operator(&api, &url, &token);

    // A pod of 300m runs in the agency's namespace.
    govcloud_testing::eventually("the namespace", || async {
        Api::<k8s_openapi::api::core::v1::Namespace>::all(api.kube())
            .get_opt(NS)
            .await
            .ok()
            .flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "nginx",
            "resources": {"requests": {"cpu": "300m", "memory": "64Mi"},
                          "limits": {"cpu": "300m", "memory": "64Mi"}}}]}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Pod>::namespaced(api.kube(), NS)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Utc::now();
    wait_for_window_after(&db, started, "a window with the pod").await;

    // The API goes away for longer than a window, then comes back on the same address.
    server.abort();
    let api_down = Utc::now();
    tokio::time::sleep(Duration::from_secs(WINDOW + 5)).await;
    server = serve(state.clone(), addr).await;
    let api_up = Utc::now();
    wait_for_window_after(&db, api_up, "windows after the API's restart").await;

    // PostgreSQL goes away for longer than a window.
    proxy.set_up(false);
    let db_down = Utc::now();
    tokio::time::sleep(Duration::from_secs(WINDOW + 5)).await;
    proxy.set_up(true);
    let db_up = Utc::now();
    wait_for_window_after(
        &db,
        db_up + chrono::Duration::seconds(1),
        "windows after the database's return",
    )
    .await;

    // The operator crashes (its buffer lost) and comes back a window and a half later.
    op.abort();
    let op_down = Utc::now();
    tokio::time::sleep(Duration::from_secs(WINDOW * 3 / 2 + 1)).await;
    op = operator(&api, &url, &token);
    let op_up = Utc::now();
    wait_for_window_after(
        &db,
        op_up + chrono::Duration::seconds(i64::try_from(WINDOW).unwrap_or(10)),
        "windows after the operator's restart",
    )
    .await;
    op.abort();
    server.abort();

    let stored = windows(&db).await;
    let w = chrono::Duration::seconds(i64::try_from(WINDOW).unwrap_or(10));
    // Every window the pod ran through whole counts exactly its requests: 300m × 10 s.
    for (start, cpu) in &stored {
        if *start > started + w {
            assert_eq!(*cpu, Some(300 * 10), "window {start}: {stored:?}");
        }
    }
    let has = |from: DateTime<Utc>, to: DateTime<Utc>| {
        let mut t = from;
        let mut all = true;
        while t + w <= to {
            let ws = govcloud_tenant::usage::window_start(t, 10);
            all &= stored.iter().any(|(s, _)| *s == ws);
            t += w;
        }
        all
    };
    // Windows observed while the API or the database was down were delivered afterwards.
    assert!(has(api_down + w, api_up), "API outage: {stored:?}");
    assert!(has(db_down + w, db_up), "database outage: {stored:?}");
    // The operator's absence left windows out, and they are unmetered.
    let missing = {
        let first = govcloud_tenant::usage::window_start(op_down, 10) + w;
        !stored.iter().any(|(s, _)| *s == first)
    };
    assert!(
        missing,
        "a window the operator was not running for was reported: {stored:?}"
    );

    // The API says the same: quantity is exactly rate × metered time from the pod's first
    // whole window, and metered + unmetered is the namespace's lifetime.
    let hour = started
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap_or_default();
    let path = format!(
        "/v1/usage?tenant=demo-stttt&namespace={NS}&metric=cpu.requested&granularity=hour&from={}&to={}",
        hour.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (hour + chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    let (_, usage) = api.get(&path, "tenant-admin").await;
    let buckets = usage["series"][0]["buckets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let quantity: i64 = buckets
        .iter()
        .filter_map(|b| b["quantity"].as_str()?.parse::<i64>().ok())
        .sum();
    let metered: i64 = buckets
        .iter()
        .filter_map(|b| b["meteredSeconds"].as_i64())
        .sum();
    let unmetered: i64 = buckets
        .iter()
        .filter_map(|b| b["unmeteredSeconds"].as_i64())
        .sum();
    let stored_sum: i64 = stored.iter().filter_map(|(_, c)| *c).sum();
    assert_eq!(quantity, stored_sum, "{usage}");
    assert_eq!(
        metered,
        i64::try_from(stored.len()).unwrap_or_default() * 10,
        "{usage}"
    );
    assert!(
        unmetered >= 10,
        "the operator's absence is unmetered: {usage}"
    );
}
