//! OIDC bearer tokens: JWTs signed by the identity provider (RS256 or ES256), checked for
//! issuer, audience and expiry against the provider's JWKS, which is fetched and cached.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::domain::principal::GroupRole;

/// How long fetched keys are trusted before they are fetched again.
const KEYS_TTL: Duration = Duration::from_secs(600);
/// The soonest the keys are fetched again for a token signed by an unknown key.
const REFETCH_MIN_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub audience: String,
    /// Where the keys are; discovered from the issuer's `/.well-known/openid-configuration`
    /// when not given.
    pub jwks_url: Option<String>,
    /// The claim that lists a person's groups (`groups` by default).
    pub groups_claim: String,
    /// Roles given to groups' members who are not registered principals.
    pub group_roles: Vec<GroupRole>,
}

impl OidcSettings {
    /// Settings with no group rules.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            groups_claim: "groups".into(),
            group_roles: Vec::new(),
        }
    }
}

/// Who a verified ID token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// What the audit log calls a person known by a group rule: `email`, else
    /// `preferred_username`, else the subject.
    pub display: String,
    pub groups: Vec<String>,
    /// The `nonce` claim, which the console's sign-in checks against the one it sent.
    pub nonce: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the token is not a JWT: {0}")]
    DecodeHeader(#[source] jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not accepted (RS256 and ES256 are)")]
    Algorithm(Algorithm),
    #[error("no key {kid:?} in the issuer's JWKS")]
    UnknownKey { kid: Option<String> },
    #[error("key {kid:?} cannot verify: {source}")]
    BadKey {
        kid: Option<String>,
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    #[error("the token does not verify: {0}")]
    Verify(#[source] jsonwebtoken::errors::Error),
    #[error("the token has no subject")]
    NoSubject,
    #[error("the token endpoint answered no id_token")]
    NoIdToken,
    #[error("the ID token's nonce is not the one this sign-in sent")]
    Nonce,
    #[error("fetching {url}: {source}")]
    Fetch {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

/// Where the console sends people to sign in, and where it trades the code for tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: Option<String>,
}

/// The console's OIDC client: the audience of the API's ID tokens is its client id.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    /// For a confidential client; a public client relies on PKCE alone.
    pub client_secret: Option<String>,
    /// The console's callback, `https://…/sign-in/callback`, as registered at the issuer.
    pub redirect_uri: String,
}

type Claims = serde_json::Map<String, serde_json::Value>;

struct Cached {
    keys: JwkSet,
    fetched: Instant,
}

pub struct Oidc {
    settings: OidcSettings,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
}

impl Oidc {
    pub fn new(settings: OidcSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            cache: RwLock::new(None),
        }
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, OidcError> {
        let fetch = |source| OidcError::Fetch {
            url: url.to_string(),
            source,
        };
        self.http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fetch)?
            .json()
            .await
            .map_err(fetch)
    }

    async fn fetch_keys(&self) -> Result<JwkSet, OidcError> {
        let url = match &self.settings.jwks_url {
            Some(u) => u.clone(),
            None => {
                let issuer = self.settings.issuer.trim_end_matches('/');
                let d: Discovery = self
                    .get_json(&format!("{issuer}/.well-known/openid-configuration"))
                    .await?;
                d.jwks_uri
            }
        };
        self.get_json(&url).await
    }

    /// The keys, fetched when the cache is empty, stale, or (at most every 30 s) lacks `kid`.
    async fn keys_for(&self, kid: Option<&str>) -> Result<JwkSet, OidcError> {
        {
            let cache = self.cache.read().await;
            if let Some(c) = cache.as_ref() {
                let fresh = c.fetched.elapsed() < KEYS_TTL;
                let has_kid = kid.is_none_or(|k| c.keys.find(k).is_some());
                if fresh && (has_kid || c.fetched.elapsed() < REFETCH_MIN_INTERVAL) {
                    return Ok(c.keys.clone());
                }
            }
        }
        let keys = self.fetch_keys().await?;
        *self.cache.write().await = Some(Cached {
            keys: keys.clone(),
            fetched: Instant::now(),
        });
        Ok(keys)
    }

    /// The issuer's authorization and token endpoints, from its discovery document.
    pub async fn endpoints(&self) -> Result<Endpoints, OidcError> {
        let issuer = self.settings.issuer.trim_end_matches('/');
        self.get_json(&format!("{issuer}/.well-known/openid-configuration"))
            .await
    }

    /// Trades an authorization code (with its PKCE verifier) for an ID token at the token
    /// endpoint, verifies it, and checks its nonce.
    pub async fn exchange(
        &self,
        client: &Client,
        code: &str,
        code_verifier: &str,
        nonce: &str,
    ) -> Result<Identity, OidcError> {
        let endpoints = self.endpoints().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("client_id", client.client_id.as_str()),
            ("code_verifier", code_verifier),
        ];
        if let Some(secret) = &client.client_secret {
            form.push(("client_secret", secret.as_str()));
        }
        let url = endpoints.token_endpoint;
        let fetch = |source| OidcError::Fetch {
            url: url.clone(),
            source,
        };
        let answer: TokenAnswer = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(fetch)?
            .json()
            .await
            .map_err(fetch)?;
        let id_token = answer.id_token.ok_or(OidcError::NoIdToken)?;
        let identity = self.verify(&id_token).await?;
        if identity.nonce.as_deref() != Some(nonce) {
            return Err(OidcError::Nonce);
        }
        Ok(identity)
    }

    pub fn group_roles(&self) -> &[GroupRole] {
        &self.settings.group_roles
    }

    /// Verifies a bearer JWT and answers who it says the caller is.
    pub async fn verify(&self, token: &str) -> Result<Identity, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(OidcError::DecodeHeader)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(OidcError::Algorithm(header.alg));
        }
        let keys = self.keys_for(header.kid.as_deref()).await?;
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys.find(kid),
            None => keys.keys.first(),
        }
        .ok_or_else(|| OidcError::UnknownKey {
            kid: header.kid.clone(),
        })?;
        let key = DecodingKey::from_jwk(jwk).map_err(|source| OidcError::BadKey {
            kid: header.kid.clone(),
            source,
        })?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(OidcError::Verify)?;
        let claims = data.claims;
        let text = |k: &str| claims.get(k).and_then(|v| v.as_str()).map(String::from);
        let subject = text("sub").ok_or(OidcError::NoSubject)?;
        let groups = match claims.get(&self.settings.groups_claim) {
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            display: text("email")
                .or_else(|| text("preferred_username"))
                .unwrap_or_else(|| subject.clone()),
            nonce: text("nonce"),
            subject,
            groups,
        })
    }
}
