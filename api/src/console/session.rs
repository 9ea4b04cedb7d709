//! Who is signed in: the session cookie (HttpOnly, SameSite=Lax, Secure over TLS), the CSRF
//! token every state-changing form carries, the language, one-shot notices after a form, and
//! the sign-in and sign-out pages.

use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use maud::{Markup, html};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::app::{self, AppError};
use crate::console::ui;
use crate::domain::principal::{Caller, Role};
use crate::domain::token;

pub const SESSION_COOKIE: &str = "govcloud_session";
const LANG_COOKIE: &str = "govcloud_lang";
const FLASH_COOKIE: &str = "govcloud_notice";
/// Before signing in, the sign-in form's CSRF token lives in this cookie (double submit).
const SIGN_IN_COOKIE: &str = "govcloud_sign_in";

/// The console's two languages: Vietnamese first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    /// The text in this language.
    pub fn t<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Self::Vi => vi,
            Self::En => en,
        }
    }

    pub fn code(self) -> &'static str {
        self.t("vi", "en")
    }
}

/// A message shown once on the next page, after a form was posted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    pub ok: bool,
    pub text: String,
}

fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookies(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
}

fn lang_of(headers: &HeaderMap) -> Lang {
    match cookie(headers, LANG_COOKIE) {
        Some("en") => Lang::En,
        _ => Lang::Vi,
    }
}

fn notice_of(headers: &HeaderMap) -> Option<Notice> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A `Set-Cookie` value: HttpOnly and SameSite=Lax always, Secure over TLS.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state.settings.console.secure_cookies {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// What every page knows: who is signed in, their CSRF token, the language, the address asked
/// for, and the notice left by the last form.
pub struct Ctx {
    pub state: AppState,
    pub caller: Caller,
    pub csrf: String,
    pub lang: Lang,
    /// The path and query of this request.
    pub here: String,
    pub notice: Option<Notice>,
    cookie: String,
}

/// Why a console request was not answered with its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// Not signed in: go to the sign-in page, and come back here after.
    SignIn {
        return_to: String,
    },
    /// A form without this session's CSRF token: refused, nothing changed.
    Csrf {
        lang: Lang,
    },
    App {
        lang: Lang,
        error: AppError,
    },
}

impl ConsoleError {
    pub fn app(lang: Lang, error: AppError) -> Self {
        Self::App { lang, error }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn { return_to } => {
                let to = format!(
                    "/sign-in?return_to={}",
                    ui::encode_component(&return_to)
                );
                redirect(&to, Vec::new())
            }
            Self::Csrf { lang } => ui::error_page(
                lang,
                StatusCode::FORBIDDEN,
                lang.t(
                    "Biểu mẫu không hợp lệ hoặc đã hết hạn (thiếu mã chống giả mạo CSRF). Không có gì thay đổi: hãy tải lại trang và gửi lại.",
                    "The form is invalid or has expired (its CSRF token is missing or wrong). Nothing was changed: reload the page and send it again.",
                ),
            ),
            Self::App { lang, error } => {
                let status = crate::http::error::ApiError::from(error);
                let code = status.status();
                let text = match &status {
                    crate::http::error::ApiError::App(e) => ui::app_error_text(lang, e),
                    other => other.to_string(),
                };
                ui::error_page(lang, code, &text)
            }
        }
    }
}

/// A 303 to `to` with these cookies set.
pub fn redirect(to: &str, set: Vec<HeaderValue>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    for c in set {
        r.headers_mut().append(SET_COOKIE, c);
    }
    r
}

impl FromRequestParts<AppState> for Ctx {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string());
        let sign_in = || ConsoleError::SignIn {
            return_to: here.clone(),
        };
        let Some(cookie) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_string) else {
            return Err(sign_in());
        };
        let Some(session) = app::sessions::session(state, &cookie)
            .await
            .map_err(|e| ConsoleError::app(lang, e))?
        else {
            return Err(sign_in());
        };
        Ok(Self {
            state: state.clone(),
            caller: session.caller,
            csrf: session.csrf_token,
            lang,
            notice: notice_of(&parts.headers),
            here,
            cookie,
        })
    }
}

impl Ctx {
    /// Maps a use case's error to the page that says it.
    pub fn fail(&self, error: AppError) -> ConsoleError {
        ConsoleError::app(self.lang, error)
    }

    /// The page, in the layout, clearing the notice it shows.
    pub fn page(&self, title: &str, body: Markup) -> Response {
        let mut r =
            axum::response::Html(ui::layout(self, title, body).into_string()).into_response();
        if self.notice.is_some() {
            r.headers_mut().append(
                SET_COOKIE,
                set_cookie(&self.state, FLASH_COOKIE, "", Some(0)),
            );
        }
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }

    /// After a form: back to `to`, with a notice.
    pub fn done(&self, to: &str, ok: bool, text: impl Into<String>) -> Response {
        let notice = Notice {
            ok,
            text: text.into(),
        };
        let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&notice).unwrap_or_default());
        redirect(
            &app::sessions::safe_return_to(to),
            vec![set_cookie(&self.state, FLASH_COOKIE, &value, Some(120))],
        )
    }

    /// After a form whose use case refused: back with the reason, unless the object is not
    /// the caller's to see (then 404, as the API answers).
    pub fn refused(&self, to: &str, error: AppError) -> Result<Response, ConsoleError> {
        match error {
            AppError::NotFound { .. } | AppError::Database(_) | AppError::Internal(_) => {
                Err(self.fail(error))
            }
            e => Ok(self.done(to, false, ui::app_error_text(self.lang, &e))),
        }
    }

    /// The value of a query parameter of this request.
    pub fn query(&self, name: &str) -> Option<String> {
        let (_, q) = self.here.split_once('?')?;
        url_pairs(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    pub fn t<'a>(&self, vi: &'a str, en: &'a str) -> &'a str {
        self.lang.t(vi, en)
    }

    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.caller.role)
    }
}

/// The pairs of a query string or form body, decoded.
pub fn url_pairs(q: &[u8]) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(q).into_owned()
}

/// A posted form: the session, and the fields, accepted only with this session's CSRF token
/// (the `csrf` field). Without it the request is refused before anything is read or changed.
pub struct Posted<T> {
    pub ctx: Ctx,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Posted<T> {
    type Rejection = ConsoleError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let ctx = Ctx::from_request_parts(&mut parts, state).await?;
        let lang = ctx.lang;
        let bytes = axum::body::to_bytes(body, 1024 * 1024).await.map_err(|e| {
            ConsoleError::app(lang, AppError::invalid("form", format!("unreadable: {e}")))
        })?;
        // The token is checked before the form's shape: a forged post learns nothing.
        let token = url_pairs(&bytes)
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v)
            .unwrap_or_default();
        if !token::same_secret(&token, &ctx.csrf) {
            tracing::warn!(caller = %ctx.caller.name, path = %ctx.here, "a console form without its CSRF token was refused");
            return Err(ConsoleError::Csrf { lang });
        }
        // The forms' structs ignore fields they do not name, `csrf` among them.
        let form = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| ConsoleError::app(lang, AppError::invalid("form", e.to_string())))?;
        Ok(Self { ctx, form })
    }
}

/// `/`: each person's own starting page.
pub async fn home(ctx: Ctx) -> Result<Response, ConsoleError> {
    let to = match ctx.caller.role {
        Role::PlatformAdmin | Role::Auditor => "/organizations".to_string(),
        Role::Finance => "/invoices".to_string(),
        Role::OrgAdmin => match app::organizations::list(&ctx.state, &ctx.caller, None, 2)
            .await
            .map_err(|e| ctx.fail(e))?
            .first()
        {
            Some(o) => format!("/organizations/{}", o.row.name),
            None => "/requests".to_string(),
        },
        Role::TenantAdmin => match app::tenants::list(&ctx.state, &ctx.caller, None, None, 1)
            .await
            .map_err(|e| ctx.fail(e))?
            .first()
        {
            Some(t) => format!("/tenants/{}", t.row.name),
            None => "/requests".to_string(),
        },
        Role::Metering => "/sign-in".to_string(),
    };
    Ok(redirect(&to, Vec::new()))
}

#[derive(Deserialize)]
pub struct ReturnTo {
    return_to: Option<String>,
    error: Option<String>,
}

/// The sign-in page: the identity provider's button, and in `govcloud dev` the seeded people.
pub async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Response {
    let lang = lang_of(&headers);
    let form_token = cookie(&headers, SIGN_IN_COOKIE)
        .filter(|t| t.len() == 43)
        .map_or_else(token::secret, str::to_string);
    let people = if state.settings.console.dev_sign_in {
        app::sessions::dev_people(&state).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let oidc = state.oidc.is_some() && state.settings.console.oidc_client.is_some();
    let return_to = app::sessions::safe_return_to(q.return_to.as_deref().unwrap_or("/"));
    let body = html! {
        h1 { (lang.t("Đăng nhập", "Sign in")) }
        @if let Some(e) = &q.error {
            p.notice.bad role="alert" { (e) }
        }
        @if oidc {
            p { (lang.t("Đăng nhập bằng tài khoản của tỉnh (OIDC).", "Sign in with your province account (OIDC).")) }
            p { a.button href={ "/sign-in/oidc?return_to=" (ui::encode_component(&return_to)) } { (lang.t("Đăng nhập", "Sign in")) } }
        }
        @if !people.is_empty() {
            section {
                h2 { (lang.t("Môi trường thử (govcloud dev): chọn một người dùng mẫu", "Demo (govcloud dev): choose a seeded person")) }
                form method="post" action="/sign-in/dev" {
                    input type="hidden" name="csrf" value=(form_token);
                    fieldset {
                        legend { (lang.t("Người dùng", "Person")) }
                        @for (i, p) in people.iter().enumerate() {
                            div.choice {
                                input type="radio" name="principal" id={ "p" (i) } value=(p.principal_id) required checked[i == 0];
                                label for={ "p" (i) } {
                                    strong { (p.name) } " — " (ui::role_name(lang, p.role))
                                    @if let Some(s) = &p.scope_name { " (" (s) ")" }
                                }
                            }
                        }
                    }
                    button type="submit" { (lang.t("Đăng nhập", "Sign in")) }
                }
            }
        }
        @if !oidc && people.is_empty() {
            p.notice.bad { (lang.t("Chưa cấu hình đăng nhập: cần --oidc-issuer, --oidc-audience và --public-url.", "Sign-in is not configured: it needs --oidc-issuer, --oidc-audience and --public-url.")) }
        }
    };
    let mut r = axum::response::Html(
        ui::bare_page(lang, lang.t("Đăng nhập", "Sign in"), body).into_string(),
    )
    .into_response();
    r.headers_mut().append(
        SET_COOKIE,
        set_cookie(&state, SIGN_IN_COOKIE, &form_token, Some(3600)),
    );
    r
}

#[derive(Deserialize)]
pub struct DevSignIn {
    #[serde(default)]
    csrf: String,
    principal: Option<String>,
}

fn session_cookie(state: &AppState, opened: &app::sessions::Opened) -> HeaderValue {
    let ttl = i64::try_from(state.settings.console.session_ttl.as_secs()).unwrap_or(28_800);
    set_cookie(state, SESSION_COOKIE, &opened.cookie, Some(ttl))
}

/// `govcloud dev`: signs in as the chosen seeded person.
pub async fn sign_in_dev(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<DevSignIn>,
) -> Result<Response, ConsoleError> {
    let lang = lang_of(&headers);
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !token::same_secret(&form.csrf, expected) {
        return Err(ConsoleError::Csrf { lang });
    }
    let id = form
        .principal
        .as_deref()
        .and_then(|p| Uuid::parse_str(p).ok())
        .ok_or_else(|| {
            ConsoleError::app(lang, AppError::invalid("principal", "choose a person"))
        })?;
    let opened = app::sessions::sign_in_dev(&state, id)
        .await
        .map_err(|e| ConsoleError::app(lang, e))?;
    Ok(redirect(
        &opened.return_to,
        vec![
            session_cookie(&state, &opened),
            set_cookie(&state, SIGN_IN_COOKIE, "", Some(0)),
        ],
    ))
}

/// Sends the browser to the identity provider.
pub async fn sign_in_oidc(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Result<Response, ConsoleError> {
    let lang = lang_of(&headers);
    let url = app::sessions::begin_oidc(&state, q.return_to.as_deref().unwrap_or("/"))
        .await
        .map_err(|e| ConsoleError::app(lang, e))?;
    Ok(redirect(&url, Vec::new()))
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Where the identity provider sends the browser back.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, ConsoleError> {
    let lang = lang_of(&headers);
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or(e);
        let text = format!(
            "{}: {why}",
            lang.t(
                "Nhà cung cấp định danh từ chối",
                "The identity provider refused"
            )
        );
        return Ok(redirect(
            &format!("/sign-in?error={}", ui::encode_component(&text)),
            Vec::new(),
        ));
    }
    let (Some(code), Some(st)) = (q.code, q.state) else {
        return Err(ConsoleError::app(
            lang,
            AppError::invalid("code", "the callback has no code or state"),
        ));
    };
    let opened = app::sessions::finish_oidc(&state, &code, &st)
        .await
        .map_err(|e| ConsoleError::app(lang, e))?;
    Ok(redirect(
        &opened.return_to,
        vec![session_cookie(&state, &opened)],
    ))
}

#[derive(Deserialize)]
pub struct Nothing {}

/// Ends the session.
pub async fn sign_out(p: Posted<Nothing>) -> Result<Response, ConsoleError> {
    let ctx = p.ctx;
    app::sessions::sign_out(&ctx.state, &ctx.cookie, &ctx.caller)
        .await
        .map_err(|e| ctx.fail(e))?;
    Ok(redirect(
        "/sign-in",
        vec![set_cookie(&ctx.state, SESSION_COOKIE, "", Some(0))],
    ))
}

#[derive(Deserialize)]
pub struct LanguageForm {
    lang: String,
    back: Option<String>,
}

/// Switches the language (a preference kept in a cookie).
pub async fn language(p: Posted<LanguageForm>) -> Response {
    let value = if p.form.lang == "en" { "en" } else { "vi" };
    redirect(
        &app::sessions::safe_return_to(p.form.back.as_deref().unwrap_or("/")),
        vec![set_cookie(
            &p.ctx.state,
            LANG_COOKIE,
            value,
            Some(31_536_000),
        )],
    )
}

/// A file download.
pub fn download(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    let mut r = bytes.into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut()
            .insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
