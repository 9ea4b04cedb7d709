//! What the API's benches start from: a private PostgreSQL from the machine's binaries in a
//! temporary directory, migrated; the simulated cluster with the Tenant CRD; the API's state,
//! seeded with the demo data of `govcloud dev` and its tokens.
#![allow(dead_code)] // each bench uses part of it

use std::collections::BTreeMap;

use govcloud_api::AppState;
use govcloud_api::cluster::KubeconfigTarget;
use govcloud_api::dev::postgres::PrivatePostgres;
use sqlx::PgPool;

pub struct Bench {
    pub db: PgPool,
    pub state: AppState,
    pub tokens: BTreeMap<String, String>,
    /// PostgreSQL's URL, for the figures' header.
    pub pg_url: String,
    _dir: tempfile::TempDir,
    pg: PrivatePostgres,
    _sim: kubesim::KubeSim,
}

impl Bench {
    /// Stops PostgreSQL (the temporary directory goes with the value).
    pub fn stop(&self) {
        self.pg.stop();
    }
}

pub async fn start(max_connections: u32) -> Bench {
    let dir = tempfile::Builder::new()
        .prefix("govcloud-bench")
        .tempdir_in("/tmp")
        .unwrap_or_else(|e| panic!("{e}"));
    let pg = PrivatePostgres::start(&dir.path().join("pg")).unwrap_or_else(|e| panic!("{e}"));
    // The API's pool as `govcloud serve` makes it.
    let db = govcloud_api::serve::connect_database(&govcloud_api::config::DatabaseArgs {
        database_url: pg.url.clone(),
        db_max_connections: max_connections,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    govcloud_api::serve::migrate(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let sim = kubesim::KubeSim::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = sim.client().unwrap_or_else(|e| panic!("{e}"));
    kube::Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client.clone())
        .create(&Default::default(), &<govcloud_tenant::crd::Tenant as kube::CustomResourceExt>::crd())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let target = KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    let (state, watches) = govcloud_api::serve::state(
        db.clone(),
        client,
        target,
        None,
        govcloud_api::Settings::default(),
    );
    tokio::spawn(watches);
    let tokens = govcloud_api::dev::seed::seed(&state, &dir.path().join("tokens.json"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Bench {
        db,
        state,
        tokens,
        pg_url: pg.url.clone(),
        _dir: dir,
        pg,
        _sim: sim,
    }
}
