//! The HTTP API: state, errors, extractors and the router.
//!
//! [`app`] builds the whole router from a state, so tests drive it with
//! `tower::ServiceExt::oneshot` and no socket. Every error leaves through
//! [`ApiError`], which never shows internals and has exactly one answer for "no such
//! meeting" that every refusal to reveal a meeting reuses byte for byte.

mod audit;
mod auth;
mod devices;
mod meetings;
mod signal;
mod users;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use conclave_identity::OrganisationKey;
use conclave_policy::Profile;
use conclave_types::{Classification, Timestamp, UserId};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit_log::AuditLog;
use crate::config::Config;
use crate::limits::{Backoff, RateLimit};
use crate::presence::Presence;
use crate::store::{Session, Store, StoreError};

/// The cookie holding the session token. `__Host-` makes browsers insist on
/// Secure, Path=/ and no Domain.
pub const SESSION_COOKIE: &str = "__Host-conclave_session";
/// The header that must echo the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Everything a request handler can reach.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

/// The shared parts of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// Configuration as loaded.
    pub config: Config,
    /// Policy profiles by classification, networks resolved.
    pub profiles: BTreeMap<Classification, Profile>,
    /// The database.
    pub store: Store,
    /// The audit log writer.
    pub audit: AuditLog,
    /// The organisation's identity key.
    pub org: Arc<OrganisationKey>,
    /// Who is in which call (filled by signalling).
    pub presence: Presence,
    /// The running calls and pending admissions.
    pub calls: crate::call::Calls,
    /// The SFU, once `serve` has bound its UDP socket (absent in router tests).
    pub media: std::sync::OnceLock<crate::media::Media>,
    login_by_name: Backoff<String>,
    login_by_client: Backoff<IpAddr>,
    lookups_by_client: RateLimit<IpAddr>,
    lookups_by_user: RateLimit<UserId>,
    /// A real Argon2 hash checked when the account name is unknown, so failed
    /// sign-ins take the same time whether or not the account exists.
    dummy_hash: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state; the audit log must already be open on `store`.
    pub fn new(
        config: Config,
        store: Store,
        audit: AuditLog,
        org: Arc<OrganisationKey>,
    ) -> Result<Self, crate::config::ConfigError> {
        let profiles = config.profiles()?;
        let s = &config.sessions;
        let (free, base, max) = (
            s.free_login_attempts,
            Duration::from_secs(s.login_backoff_base_seconds.into()),
            Duration::from_secs(s.login_backoff_max_seconds.into()),
        );
        let calls = crate::call::Calls::new(&org, crate::call::room::RoomConfig::default());
        Ok(Self(Arc::new(Inner {
            login_by_name: Backoff::new(free, base, max),
            login_by_client: Backoff::new(free, base, max),
            lookups_by_client: RateLimit::new(config.limits.meeting_lookups_per_minute_per_client),
            lookups_by_user: RateLimit::new(config.limits.meeting_lookups_per_minute_per_user),
            dummy_hash: crate::password::hash("conclave-timing-equaliser").unwrap_or_default(),
            profiles,
            config,
            store,
            audit,
            org,
            presence: Presence::default(),
            calls,
            media: std::sync::OnceLock::new(),
        })))
    }
}

/// The wall clock, read only at the edge: the cores get `now` as an argument.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_unix_millis(ms)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conclave",
        description = "Control plane of Conclave, a self-hosted, always end-to-end encrypted \
                       conferencing server: sign-in, devices, meetings, join decisions, audit log."
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "session", description = "Sign in and out"),
        (name = "users", description = "Accounts (admins)"),
        (name = "devices", description = "Device registration and credentials"),
        (name = "meetings", description = "Scheduling and joining"),
        (name = "audit", description = "The tamper-evident audit log (auditors)"),
    )
)]
struct ApiDoc;

/// The whole application: API, OpenAPI description and health check.
pub fn app(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::organisation))
        .routes(routes!(auth::login, auth::whoami, auth::logout))
        .routes(routes!(auth::change_password))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::update))
        .routes(routes!(devices::register, devices::list))
        .routes(routes!(devices::update, devices::revoke))
        .routes(routes!(devices::credential))
        .routes(routes!(devices::enrolment_token))
        .routes(routes!(meetings::classifications))
        .routes(routes!(meetings::list, meetings::create))
        .routes(routes!(meetings::show, meetings::edit, meetings::cancel))
        .routes(routes!(meetings::challenge))
        .routes(routes!(meetings::join))
        .routes(routes!(meetings::preview))
        .routes(routes!(audit::entries))
        .routes(routes!(audit::export))
        .routes(routes!(audit::heads))
        .split_for_parts();
    let api = Arc::new(api);
    let limit = state.config.server.max_body_bytes;
    let web = web_app(&state.config.web.dir);
    router
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/meetings/{id}/signal", get(signal::signal))
        .route(
            "/api/openapi.json",
            get(move || {
                let api = Arc::clone(&api);
                async move { axum::Json(api.as_ref().clone()) }
            }),
        )
        .route(
            "/api/{*rest}",
            any(|| async { ApiError::NoSuch("resource") }),
        )
        .fallback_service(web)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// One log line per request: the route template (never the raw path, which would
/// carry meeting ids), status, duration and the redacted client address.
async fn log_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| p.as_str().to_string());
    let client = conclave_types::Pii(
        request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| {
                request
                    .extensions()
                    .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                    .map(|c| c.0)
            })
            .map(|a| a.ip()),
    );
    let response = next.run(request).await;
    tracing::info!(
        %method,
        %route,
        status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        %client,
        "request"
    );
    response
}

/// The browser app: files of `dir`, and its `index.html` for every other path (the app routes
/// in the browser). Without the directory (the app not built), a plain 404.
fn web_app(
    dir: &std::path::Path,
) -> tower_http::services::ServeDir<tower_http::services::ServeFile> {
    tower_http::services::ServeDir::new(dir)
        .append_index_html_on_directories(true)
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")))
}

/// What the browser may load and run: only this origin's files and connections, WebAssembly
/// compiled from them, workers from them or from blobs; no inline script or style, no
/// framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; \
     worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

async fn security_headers(uri: axum::http::Uri, mut response: Response) -> Response {
    let h = response.headers_mut();
    // Vite names built assets by their content hash: they never change under one name.
    let cache = if uri.path().starts_with("/assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-store"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Cross-origin isolation: no other site's window shares a process or a reference with
    // the app, and nothing cross-origin is embedded. (It also gives the media worker a
    // clock fine enough to measure per-frame encryption cost.)
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-embedder-policy"),
        HeaderValue::from_static("require-corp"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

// ---- errors ---------------------------------------------------------------

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub error: &'static str,
    /// What went wrong, in words.
    pub message: String,
}

/// Every way a request can fail, as the client sees it.
#[derive(Debug)]
pub enum ApiError {
    /// The request is malformed; the message says how.
    BadRequest(String),
    /// The body is not acceptable JSON; status and message from the parser.
    BadBody(StatusCode, String),
    /// No valid session.
    Unauthenticated,
    /// Signed in, but this is not allowed; the message says why.
    Forbidden(String),
    /// The CSRF token is missing or wrong.
    Csrf,
    /// The one answer for a meeting that does not exist or is not the caller's.
    NoSuchMeeting,
    /// A non-meeting resource that does not exist.
    NoSuch(&'static str),
    /// The path exists, the method does not.
    MethodNotAllowed,
    /// Conflicts with existing state.
    Conflict(String),
    /// Over a rate limit or in login backoff.
    TooManyRequests(Duration),
    /// A bug or an outage; logged, never shown.
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::BadBody(r.status(), r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message) = match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            Self::BadBody(status, m) => (status, "bad_body", m),
            Self::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "sign in first".to_string(),
            ),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "csrf",
                format!("state-changing requests must carry the session's {CSRF_HEADER} header"),
            ),
            Self::NoSuchMeeting => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no such meeting".to_string(),
            ),
            Self::NoSuch(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {what}"),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this method is not allowed here".to_string(),
            ),
            Self::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            Self::TooManyRequests(wait) => {
                let secs = wait.as_secs().max(1);
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(ErrorBody {
                        error: "too_many_requests",
                        message: format!("too many requests; try again in {secs} s"),
                    }),
                )
                    .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                return r;
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the server log has details".to_string(),
                )
            }
        };
        (status, axum::Json(ErrorBody { error, message })).into_response()
    }
}

/// `Json` whose rejections are [`ApiError`]s with JSON bodies.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

// ---- extractors -----------------------------------------------------------

/// The client's address: the TCP peer, or the address a trusted proxy reports.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // The extractor, not the raw extension, so that `MockConnectInfo` works in tests.
        let peer = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map(|c| c.0.ip())
            .map_err(|_| ApiError::Internal("no peer address on the connection".into()))?;
        Ok(Self(client_addr(&state.config, peer, &parts.headers)))
    }
}

/// Walks `X-Forwarded-For` from the right while the hop is a trusted proxy: the first
/// address not ours is the client. Without a trusted peer the header is ignored.
fn client_addr(config: &Config, peer: IpAddr, headers: &axum::http::HeaderMap) -> IpAddr {
    let peer = canonical(peer);
    if !config.is_trusted_proxy(peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|h| h.trim().parse::<IpAddr>().ok())
        .collect();
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|hop| !config.is_trusted_proxy(*hop))
        .unwrap_or(peer)
}

/// IPv4-mapped IPv6 peers (dual-stack sockets) as the IPv4 address they are.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// A signed-in user. Rejects with 401 without a live session, and with 403 on a
/// state-changing method whose CSRF header does not match the session.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The session and its user.
    pub session: Session,
    /// SHA-256 of the session token, the session's key in the database.
    pub token_hash: String,
}

impl Auth {
    /// The signed-in user's id.
    pub fn user_id(&self) -> &UserId {
        &self.session.user.id
    }

    /// The audit actor for this user.
    pub fn actor(&self) -> String {
        format!("user:{}", self.session.user.id)
    }

    /// Refuses unless the user has one of `roles`.
    pub fn require(&self, roles: &[conclave_types::Role], what: &str) -> Result<(), ApiError> {
        if roles.contains(&self.session.user.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "only {} may {what}",
                roles
                    .iter()
                    .map(|r| format!("{r}s"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            )))
        }
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let token_hash = sha256_hex(token.as_bytes());
        let session = state
            .store
            .session(&token_hash, now())
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), session.csrf_token.as_bytes()) {
                return Err(ApiError::Csrf);
            }
        }
        Ok(Self {
            session,
            token_hash,
        })
    }
}

/// For meeting routes: a missing or dead session is not an error of its own, because
/// the answer must then be the same as for a meeting that does not exist.
#[derive(Debug, Clone)]
pub struct MaybeAuth(pub Option<Auth>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Auth::from_request_parts(parts, state).await {
            Ok(auth) => Ok(Self(Some(auth))),
            Err(ApiError::Unauthenticated) => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// Lower-case hex SHA-256: how tokens are stored, so a database dump holds no usable token.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes as unpadded URL-safe base64: tokens, challenges.
pub fn random_token<const N: usize>() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// 16 random bytes for a new identifier.
pub fn random_id_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    bytes
}

/// Spends one meeting lookup from the client's and the user's budgets.
pub fn spend_lookup(
    state: &AppState,
    client: IpAddr,
    user: Option<&UserId>,
) -> Result<(), ApiError> {
    let t = Instant::now();
    state
        .lookups_by_client
        .check(&client, t)
        .map_err(ApiError::TooManyRequests)?;
    if let Some(user) = user {
        state
            .lookups_by_user
            .check(user, t)
            .map_err(ApiError::TooManyRequests)?;
    }
    Ok(())
}

/// Every JSON request body type, by name, paired with whether `data` deserialises
/// into it the way the [`Json`] extractor would. For the fuzz targets in
/// [`crate::fuzzing`]; the body types themselves stay private to their modules.
#[doc(hidden)]
pub(crate) fn parse_request_bodies(data: &[u8]) -> [(&'static str, bool); 10] {
    fn ok<T: serde::de::DeserializeOwned>(data: &[u8]) -> bool {
        serde_json::from_slice::<T>(data).is_ok()
    }
    [
        ("LoginRequest", ok::<auth::LoginRequest>(data)),
        ("PasswordChange", ok::<auth::PasswordChange>(data)),
        ("NewUser", ok::<users::NewUser>(data)),
        ("UserUpdate", ok::<users::UserUpdate>(data)),
        ("NewDevice", ok::<devices::NewDevice>(data)),
        ("DeviceUpdate", ok::<devices::DeviceUpdate>(data)),
        ("NewEnrolmentToken", ok::<devices::NewEnrolmentToken>(data)),
        ("NewMeeting", ok::<meetings::NewMeeting>(data)),
        ("MeetingUpdate", ok::<meetings::MeetingUpdate>(data)),
        ("JoinBody", ok::<meetings::JoinBody>(data)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut config = Config::default();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.9.9.9, 127.0.0.2"),
        );
        let peer: IpAddr = "127.0.0.3".parse().expect("literal");
        assert_eq!(
            client_addr(&config, peer, &headers),
            peer,
            "no proxy configured"
        );
        config.server.trusted_proxies = vec!["127.0.0.2/31".parse().expect("literal")];
        assert_eq!(
            client_addr(&config, peer, &headers),
            "10.9.9.9".parse::<IpAddr>().expect("literal"),
            "both 127.0.0.3 and 127.0.0.2 are proxies"
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("garbage"));
        assert_eq!(client_addr(&config, peer, &headers), peer);
    }

    #[test]
    fn mapped_ipv6_peers_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("literal");
        assert_eq!(
            canonical(mapped),
            "127.0.0.1".parse::<IpAddr>().expect("literal")
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; __Host-conclave_session=tok; c=d"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
    }
}
