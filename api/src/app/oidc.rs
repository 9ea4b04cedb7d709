//! OIDC bearer tokens: JWTs signed by the identity provider (RS256 or ES256), checked for
//! issuer, audience and expiry against the provider's JWKS, which is fetched and cached.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

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

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

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

    /// Verifies a bearer JWT and answers its subject.
    pub async fn verify(&self, token: &str) -> Result<String, OidcError> {
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
        Ok(data.claims.sub)
    }
}
