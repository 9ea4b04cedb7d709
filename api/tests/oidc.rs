//! OIDC bearer JWTs: checked against the issuer's JWKS (found by discovery), RS256 and ES256,
//! issuer, audience and expiry; the subject must be a registered principal.

mod support;

use axum::Router;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use govcloud_api::app::oidc::{Oidc, OidcSettings};
use govcloud_api::cluster::KubeconfigTarget;
use govcloud_api::db::principals::{self, NewPrincipal};
use govcloud_api::domain::principal::{GroupRole, Role};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;

const RSA_KEY: &str = include_str!("fixtures/oidc-rs256.pem");
const EC_KEY: &str = include_str!("fixtures/oidc-es256.pem");
const JWKS: &str = include_str!("fixtures/oidc-jwks.json");
const AUDIENCE: &str = "govcloud";

/// A stand-in identity provider: discovery document and JWKS on loopback.
async fn issuer() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let jwks_uri = format!("{url}/keys");
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let jwks_uri = jwks_uri.clone();
                async move { axum::Json(json!({ "issuer": "unused", "jwks_uri": jwks_uri })) }
            }),
        )
        .route(
            "/keys",
            get(|| async { ([("content-type", "application/json")], JWKS) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn sign(alg: Algorithm, kid: &str, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_KEY.as_bytes()),
        _ => Ok(EncodingKey::from_secret(b"a shared secret")),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, claims, &key).unwrap_or_else(|e| panic!("{e}"))
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn id_tokens_from_the_issuer_authenticate_registered_subjects(db: PgPool) {
    let iss = issuer().await;
    principals::insert(
        &db,
        NewPrincipal {
            name: "nguyen.van.a",
            role: Role::Auditor,
            organization_id: None,
            tenant_id: None,
            oidc_subject: Some("user-123"),
            created_by: "test",
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let sim = kubesim::KubeSim::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let oidc = Oidc::new(OidcSettings::new(iss.clone(), AUDIENCE));
    let target = KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    let client = sim.client().unwrap_or_else(|e| panic!("{e}"));
    let (state, _watches) = govcloud_api::serve::state(
        db,
        client,
        target,
        Some(oidc),
        govcloud_api::Settings::default(),
    );
    let router = govcloud_api::app(state);

    let now = chrono::Utc::now().timestamp();
    let claims = |sub: &str, iss: &str, aud: &str, exp: i64| json!({"sub": sub, "iss": iss, "aud": aud, "exp": exp, "iat": now});
    let good = claims("user-123", &iss, AUDIENCE, now + 300);
    let cases = [
        (
            "RS256",
            sign(Algorithm::RS256, "rsa-1", &good),
            StatusCode::OK,
        ),
        (
            "ES256",
            sign(Algorithm::ES256, "ec-1", &good),
            StatusCode::OK,
        ),
        (
            "another audience",
            sign(
                Algorithm::RS256,
                "rsa-1",
                &claims("user-123", &iss, "someone-else", now + 300),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "another issuer",
            sign(
                Algorithm::RS256,
                "rsa-1",
                &claims("user-123", "https://evil.example", AUDIENCE, now + 300),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            sign(
                Algorithm::RS256,
                "rsa-1",
                &claims("user-123", &iss, AUDIENCE, now - 600),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unregistered subject",
            sign(
                Algorithm::RS256,
                "rsa-1",
                &claims("user-999", &iss, AUDIENCE, now + 300),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown key",
            sign(Algorithm::RS256, "rsa-2", &good),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "EC token under the RSA key id",
            sign(Algorithm::ES256, "rsa-1", &good),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "HS256 (a shared secret)",
            sign(Algorithm::HS256, "rsa-1", &good),
            StatusCode::UNAUTHORIZED,
        ),
    ];
    for (what, token, want) in cases {
        let (status, body) = support::call_with(
            router.clone(),
            Method::GET,
            "/v1/audit-events",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, want, "{what}: {body}");
    }
    // A token whose signature was tampered with.
    let mut forged = sign(Algorithm::RS256, "rsa-1", &good);
    let i = forged.len() - 10;
    let flipped = if &forged[i..=i] == "A" { "B" } else { "A" };
    forged.replace_range(i..=i, flipped);
    let (status, _) =
        support::call_with(router, Method::GET, "/v1/audit-events", Some(&forged), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn group_rules_give_roles_and_a_registered_principal_wins(db: PgPool) {
    let iss = issuer().await;
    let rule = |group: &str, role, org: Option<&str>, tenant: Option<&str>| GroupRole {
        group: group.into(),
        role,
        organization: org.map(String::from),
        tenant: tenant.map(String::from),
    };
    let oidc = Oidc::new(OidcSettings {
        groups_claim: "roles".into(),
        group_roles: vec![
            rule(
                "demo:stttt:admins",
                Role::TenantAdmin,
                None,
                Some("demo-stttt"),
            ),
            rule("demo:it", Role::OrgAdmin, Some("demo-province"), None),
            rule(
                "demo:ghost",
                Role::TenantAdmin,
                None,
                Some("no-such-agency"),
            ),
        ],
        ..OidcSettings::new(iss.clone(), AUDIENCE)
    });
    let api = support::TestApi::with_oidc(db, govcloud_api::Settings::default(), Some(oidc)).await;
    let now = chrono::Utc::now().timestamp();
    let token = |sub: &str, groups: Value| {
        sign(
            Algorithm::RS256,
            "rsa-1",
            &json!({"sub": sub, "iss": iss, "aud": AUDIENCE, "exp": now + 300, "iat": now,
                    "email": format!("{sub}@demo.gov.vn"), "roles": groups}),
        )
    };
    let call = |token: String, method: Method, path: &'static str, body: Option<Value>| {
        let router = api.router();
        async move { support::call_with(router, method, path, Some(&token), body).await }
    };

    // An agency's admin, known only by the group: sees its agency, acts as its tenant admin.
    let lan = token("lan", json!(["staff", "demo:stttt:admins"]));
    let (status, tenants) = call(lan.clone(), Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = tenants["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["demo-stttt"]);
    let (status, _) = call(lan.clone(), Method::GET, "/v1/audit-events", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, request) = call(
        lan,
        Method::POST,
        "/v1/capacity-requests",
        Some(json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"pods": 60}, "reason": "more pods"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(
        request["requestedBy"], "oidc:lan@demo.gov.vn",
        "the audit log names the person"
    );

    // The province's IT staff by group; groups that map to nothing, or to a missing agency: 401.
    let (status, _) = call(
        token("minh", json!("demo:it")),
        Method::GET,
        "/v1/principals",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for groups in [
        json!(["staff"]),
        json!([]),
        json!(["demo:ghost"]),
        json!(["demo:stttt"]),
    ] {
        let (status, _) = call(token("x", groups.clone()), Method::GET, "/v1/tenants", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{groups}");
    }

    // A registered principal wins over the rules: an auditor in the IT group is an auditor.
    let (status, _) = api
        .post(
            "/v1/principals",
            "platform-admin",
            json!({"name": "hoa", "role": "auditor", "oidcSubject": "hoa", "apiToken": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let hoa = token("hoa", json!(["demo:it"]));
    let (status, _) = call(hoa.clone(), Method::GET, "/v1/audit-events", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(
        hoa,
        Method::POST,
        "/v1/tenants/demo-stttt/suspend",
        Some(json!({"reason": "an auditor changes nothing"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
