//! The web console's sign-in and sessions, through the router as a browser would call it:
//! OIDC authorization code with PKCE against a stand-in identity provider (state single use,
//! the code bound to its verifier, the nonce checked, no open redirect), cookies HttpOnly,
//! SameSite and Secure, sessions that end on sign-out and when the person is removed, the
//! seeded-person sign-in only in `govcloud dev`, and another agency's pages answering 404.
//! The pages themselves are tried in a real browser by tests/console.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use govcloud_api::app::oidc::{Client, Oidc, OidcSettings};
use govcloud_api::db::principals::{self, NewPrincipal};
use govcloud_api::domain::principal::Role;
use govcloud_api::{Console, Settings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use support::TestApi;
use tower::ServiceExt;

const RSA_KEY: &str = include_str!("fixtures/oidc-rs256.pem");
const JWKS: &str = include_str!("fixtures/oidc-jwks.json");
const CLIENT_ID: &str = "govcloud-console";
const REDIRECT: &str = "https://cloud.example.gov.vn/sign-in/callback";

/// What the stand-in provider remembers of an authorization: the PKCE challenge and nonce.
#[derive(Clone)]
struct Grant {
    challenge: String,
    method: String,
    nonce: String,
    redirect_uri: String,
}

#[derive(Clone, Default)]
struct Provider {
    url: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// Answers ID tokens with another nonce than asked (a replayed token).
    wrong_nonce: Arc<Mutex<bool>>,
}

async fn authorize(
    State(p): State<Provider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let code = format!("code-{}", p.grants.lock().map(|g| g.len()).unwrap_or(0));
    let grant = Grant {
        challenge: q.get("code_challenge").cloned().unwrap_or_default(),
        method: q.get("code_challenge_method").cloned().unwrap_or_default(),
        nonce: q.get("nonce").cloned().unwrap_or_default(),
        redirect_uri: q.get("redirect_uri").cloned().unwrap_or_default(),
    };
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
    let to = format!(
        "{}?code={code}&state={}",
        grant.redirect_uri,
        q.get("state").cloned().unwrap_or_default()
    );
    p.grants
        .lock()
        .unwrap_or_else(|e| panic!("{e}"))
        .insert(code, grant);
    Redirect::to(&to).into_response()
}

/// The token endpoint: the code once, with the verifier whose S256 challenge it was given.
async fn token(State(p): State<Provider>, Form(f): Form<HashMap<String, String>>) -> Response {
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    let Some(grant) = f.get("code").and_then(|c| p.grants.lock().ok()?.remove(c)) else {
        return refuse("unknown or used code");
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if grant.method != "S256"
        || URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge
    {
        return refuse("PKCE verification failed");
    }
    if f.get("redirect_uri") != Some(&grant.redirect_uri)
        || f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return refuse("redirect_uri or client_id differ");
    }
    let nonce = if *p.wrong_nonce.lock().unwrap_or_else(|e| panic!("{e}")) {
        "another-nonce".to_string()
    } else {
        grant.nonce
    };
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"sub": "oidc-finance-1", "iss": p.url, "aud": CLIENT_ID, "exp": now + 300,
        "iat": now, "nonce": nonce, "email": "tai.chinh@demo.gov.vn"});
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let key = EncodingKey::from_rsa_pem(RSA_KEY.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap_or_else(|e| panic!("{e}"));
    axum::Json(json!({"access_token": "unused", "token_type": "Bearer", "id_token": id_token}))
        .into_response()
}

async fn provider() -> Provider {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    let p = Provider {
        url: url.clone(),
        ..Provider::default()
    };
    let discovery = json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/keys"),
    });
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let d = discovery.clone();
                async move { axum::Json(d) }
            }),
        )
        .route(
            "/keys",
            get(|| async { ([("content-type", "application/json")], JWKS) }),
        )
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    p
}

/// One request through the router; answers the status, headers and body as text.
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    let req = match form {
        Some(f) => b
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let r = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, headers) = (r.status(), r.headers().clone());
    let bytes = axum::body::to_bytes(r.into_body(), 16 << 20)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn location(h: &HeaderMap) -> String {
    h.get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The `Set-Cookie` of `name`, whole.
fn set_cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn cookie_pair(set: &str) -> String {
    set.split(';').next().unwrap_or_default().to_string()
}

/// Follows the browser's way: the console → the provider → back to the callback.
async fn through_provider(router: &Router, return_to: &str) -> (StatusCode, HeaderMap, String) {
    let (status, headers, _) = send(
        router,
        Method::GET,
        &format!("/sign-in/oidc?return_to={return_to}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let at_provider = location(&headers);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let back = http
        .get(&at_provider)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = back.headers()[header::LOCATION.as_str()]
        .to_str()
        .unwrap_or_default()
        .to_string();
    let callback = back
        .strip_prefix("https://cloud.example.gov.vn")
        .unwrap_or_else(|| panic!("{back}"));
    send(router, Method::GET, callback, None, None).await
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn oidc_sign_in_is_an_authorization_code_flow_with_pkce(db: PgPool) {
    let p = provider().await;
    let settings = Settings {
        console: Console {
            secure_cookies: true,
            oidc_client: Some(Client {
                client_id: CLIENT_ID.into(),
                client_secret: None,
                redirect_uri: REDIRECT.into(),
            }),
            ..Console::default()
        },
        ..Settings::default()
    };
    let api = TestApi::with_oidc(
        db.clone(),
        settings,
        Some(Oidc::new(OidcSettings::new(p.url.clone(), CLIENT_ID))),
    )
    .await;
    let org = govcloud_api::db::organizations::by_name(&db, "demo-province")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("the demo province"));
    principals::insert(
        &db,
        NewPrincipal {
            name: "tai.chinh@demo.gov.vn",
            role: Role::Finance,
            organization_id: Some(org.organization_id),
            tenant_id: None,
            oidc_subject: Some("oidc-finance-1"),
            created_by: "test",
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let router = api.router();

    // The redirect to the provider asks for a code with an S256 challenge, a state and a nonce.
    let (status, headers, _) = send(
        &router,
        Method::GET,
        "/sign-in/oidc?return_to=%2Finvoices",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let to = reqwest::Url::parse(&location(&headers)).unwrap_or_else(|e| panic!("{e}"));
    let q: HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(to.path(), "/authorize");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert!(q["state"].len() >= 43 && q["nonce"].len() >= 43);
    assert!(
        !q.contains_key("code_verifier"),
        "the verifier never leaves the API"
    );

    // Through the provider and back: a session, and back where the person was going.
    let (status, headers, _) = through_provider(&router, "%2Finvoices").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/invoices");
    let set =
        set_cookie(&headers, "govcloud_session").unwrap_or_else(|| panic!("no session cookie"));
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    let session = cookie_pair(&set);
    let (status, _, page) = send(&router, Method::GET, "/invoices", Some(&session), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("tai.chinh@demo.gov.vn"),
        "the page names who signed in"
    );

    // A callback is good once: its state is spent.
    let (_, headers, _) = send(
        &router,
        Method::GET,
        "/sign-in/oidc?return_to=%2F",
        None,
        None,
    )
    .await;
    let state = reqwest::Url::parse(&location(&headers))
        .unwrap_or_else(|e| panic!("{e}"))
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (status, _, _) = send(
        &router,
        Method::GET,
        "/sign-in/callback?code=made-up&state=not-ours",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a state this API never sent");
    // A code for another sign-in, redeemed with this one's state: the verifier does not match
    // the challenge the code was given with, and the provider refuses it.
    let (_, headers, _) = send(&router, Method::GET, "/sign-in/oidc", None, None).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let back = http
        .get(location(&headers))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let other = reqwest::Url::parse(
        back.headers()[header::LOCATION.as_str()]
            .to_str()
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let code = other
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let (status, headers, page) = send(
        &router,
        Method::GET,
        &format!("/sign-in/callback?code={code}&state={state}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(set_cookie(&headers, "govcloud_session").is_none());
    let (status, _, _) = send(
        &router,
        Method::GET,
        &format!("/sign-in/callback?code={code}&state={state}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the state was spent by the refused attempt"
    );

    // An ID token with another nonce is refused.
    *p.wrong_nonce.lock().unwrap_or_else(|e| panic!("{e}")) = true;
    let (status, headers, _) = through_provider(&router, "%2F").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&headers, "govcloud_session").is_none());
    *p.wrong_nonce.lock().unwrap_or_else(|e| panic!("{e}")) = false;

    // No open redirect: another site as return_to lands on the console's start.
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let (status, headers, _) = through_provider(&router, evil).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location(&headers), "/", "return_to {evil}");
    }

    // The seeded-person sign-in does not exist outside govcloud dev.
    let (status, _, page) = send(&router, Method::GET, "/sign-in", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("/sign-in/dev"));
    let (status, _, _) = send(
        &router,
        Method::POST,
        "/sign-in/dev",
        Some("govcloud_sign_in=abc"),
        Some("csrf=abc&principal=00000000-0000-0000-0000-000000000000"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Signs in through the seeded-person form; answers the session cookie and its CSRF token.
async fn dev_sign_in(router: &Router, name: &str) -> (String, String) {
    let (_, headers, page) = send(router, Method::GET, "/sign-in", None, None).await;
    let form_cookie = cookie_pair(
        &set_cookie(&headers, "govcloud_sign_in").unwrap_or_else(|| panic!("no form cookie")),
    );
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    // The radio button before the person's name carries their id.
    let at = page
        .find(&format!("<strong>{name}</strong>"))
        .unwrap_or_else(|| panic!("{name} is not on the sign-in page"));
    let value = page[..at]
        .rfind("value=\"")
        .unwrap_or_else(|| panic!("no id before {name}"));
    let id = &page[value + 7..value + 43];
    // Without the form's cookie (another site posting it), the sign-in is refused.
    let form = format!("csrf={csrf}&principal={id}");
    let (status, _, _) = send(router, Method::POST, "/sign-in/dev", None, Some(&form)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers, _) = send(
        router,
        Method::POST,
        "/sign-in/dev",
        Some(&form_cookie),
        Some(&form),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = cookie_pair(
        &set_cookie(&headers, "govcloud_session").unwrap_or_else(|| panic!("no session")),
    );
    let (_, _, home) = send(router, Method::GET, "/requests", Some(&session), None).await;
    let token = home
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(token.len(), 43);
    (session, token)
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn sessions_see_what_the_api_lets_them_and_end_on_sign_out_or_removal(db: PgPool) {
    let settings = Settings {
        console: Console {
            dev_sign_in: true,
            ..Console::default()
        },
        ..Settings::default()
    };
    let api = TestApi::with_settings(db, settings).await;
    let router = api.router();
    let (session, csrf) = dev_sign_in(&router, "demo-stttt-admin").await;

    // The agency admin's own agency, not the other one, nor the other organization's pages.
    let (status, _, _) = send(
        &router,
        Method::GET,
        "/tenants/demo-stttt",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/tenants/demo-sotc",
        "/tenants/demo-sotc/namespaces/prod",
        "/tenants/demo-sotc?csv=namespaces",
    ] {
        let (status, _, _) = send(&router, Method::GET, path, Some(&session), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Suspending is IT's: the agency is told so, and nothing changes.
    let (status, headers, _) = send(
        &router,
        Method::POST,
        "/tenants/demo-stttt/suspend",
        Some(&session),
        Some(&format!("csrf={csrf}&reason=thu")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&headers, "govcloud_notice").is_some());
    let (_, t) = api.get("/v1/tenants/demo-stttt", "platform-admin").await;
    assert_eq!(t["suspended"], false);
    // Without the token, refused before anything is read.
    let (status, _, _) = send(
        &router,
        Method::POST,
        "/tenants/demo-stttt/suspend",
        Some(&session),
        Some("reason=thu"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Signing out ends the session: its cookie opens nothing any more.
    let (status, headers, _) = send(
        &router,
        Method::POST,
        "/sign-out",
        Some(&session),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&headers, "govcloud_session").is_some_and(|c| c.contains("Max-Age=0")));
    let (status, headers, _) = send(
        &router,
        Method::GET,
        "/tenants/demo-stttt",
        Some(&session),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location(&headers).starts_with("/sign-in?return_to="));

    // Removing a person ends their sessions at once.
    let (session, _) = dev_sign_in(&router, "demo-province-it").await;
    let (status, _, _) = send(&router, Method::GET, "/requests", Some(&session), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, people) = api
        .get("/v1/principals?role=org-admin", "platform-admin")
        .await;
    let id = people["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/principals/{id}"),
            Some("platform-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(&router, Method::GET, "/requests", Some(&session), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// Every scoped page and action of the console, for every person who can sign in, on their own
/// agency, a sibling agency of the same organization and an agency of another organization:
/// what the API would let them see answers the page, the rest 404, exactly as in the API.
#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn each_role_sees_its_own_scope_and_nothing_else(db: PgPool) {
    let settings = Settings {
        console: Console {
            dev_sign_in: true,
            ..Console::default()
        },
        ..Settings::default()
    };
    let api = TestApi::with_settings(db, settings).await;
    support::seed_billing(&api).await;
    let router = api.router();
    let month = support::last_month();
    let agencies = [
        ("own", "demo-stttt"),
        ("sibling", "demo-sotc"),
        ("foreign", "demo-ministry-data"),
    ];
    let mut invoices = Vec::new();
    for (scope, tenant) in agencies {
        let id = support::invoice_of(&api, tenant, &month, "platform-admin").await;
        assert!(!id.is_empty(), "{tenant} has last month's invoice");
        invoices.push((scope, tenant, id));
    }
    // Which scopes each person may see (the API's rule, Caller::sees).
    let people: [(&str, &[&str]); 5] = [
        ("demo-platform-admin", &["own", "sibling", "foreign"]),
        ("demo-auditor", &["own", "sibling", "foreign"]),
        ("demo-province-it", &["own", "sibling"]),
        ("demo-province-finance", &["own", "sibling"]),
        ("demo-stttt-admin", &["own"]),
    ];
    let mut cases = 0;
    for (person, visible) in people {
        let (session, csrf) = dev_sign_in(&router, person).await;
        for (scope, tenant, id) in &invoices {
            let expected = if visible.contains(scope) {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            for path in [
                format!("/tenants/{tenant}"),
                format!("/tenants/{tenant}?csv=namespaces"),
                format!("/invoices/{id}"),
                format!("/invoices/{id}?csv=lines"),
                format!("/invoices/{id}/statement.csv"),
            ] {
                let (status, _, _) = send(&router, Method::GET, &path, Some(&session), None).await;
                assert_eq!(status, expected, "{person} GET {path} ({scope})");
                cases += 1;
            }
            // Acting on what one may not see answers 404 and changes nothing; on what one may
            // see but not do, the page says why (a notice) and nothing changes either.
            for path in [
                format!("/tenants/{tenant}/suspend"),
                format!("/invoices/{id}/dispute"),
            ] {
                let form = format!("csrf={csrf}&reason=th%E1%BB%AD");
                let (status, _, _) =
                    send(&router, Method::POST, &path, Some(&session), Some(&form)).await;
                if visible.contains(scope) {
                    assert_eq!(
                        status,
                        StatusCode::SEE_OTHER,
                        "{person} POST {path} ({scope})"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::NOT_FOUND,
                        "{person} POST {path} ({scope})"
                    );
                }
                cases += 1;
            }
        }
        let (status, _, _) = send(
            &router,
            Method::GET,
            "/organizations/demo-ministry",
            Some(&session),
            None,
        )
        .await;
        let sees_ministry = visible.contains(&"foreign");
        assert_eq!(
            status,
            if sees_ministry {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            },
            "{person} GET /organizations/demo-ministry"
        );
    }
    assert_eq!(cases, 5 * 3 * 7);
    // Only finance may dispute, and only within its organization: the one that it could reach
    // (own and sibling) is now disputed, the foreign one is untouched.
    for (scope, _, id) in &invoices {
        let (_, v) = api
            .get(&format!("/v1/invoices/{id}"), "platform-admin")
            .await;
        let expected = if *scope == "foreign" {
            "issued"
        } else {
            "disputed"
        };
        assert_eq!(v["state"], expected, "{scope} invoice");
    }
}
