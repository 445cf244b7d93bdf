//! Signing in and out.
//!
//! Sessions are random 256-bit tokens in an HttpOnly, Secure, SameSite=Strict cookie;
//! the database stores only their SHA-256. Each session also has a CSRF token that
//! the client reads from the sign-in answer (or `GET /api/session`) and echoes in
//! `X-CSRF-Token` on every state-changing request. Failed sign-ins back off per
//! account name and per client address, and every failure is audited.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use conclave_types::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    now, random_token, sha256_hex, ApiError, AppState, Auth, ClientAddr, ErrorBody, Json,
    SESSION_COOKIE,
};
use crate::audit_log::Refusal;
use crate::store::User;

/// The organisation, for clients that verify credentials against its key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrganisationInfo {
    /// Organisation name.
    name: String,
    /// The identity authority's Ed25519 public key (unpadded URL-safe base64).
    public_key: String,
    /// The server's MLS external-sender key (Ed25519, standard base64), which the first
    /// participant of a call puts into the group it creates.
    mls_external_sender_key: String,
    /// The identity in the server's MLS external-sender credential (standard base64).
    mls_external_sender_identity: String,
}

/// The organisation's name and identity key.
#[utoipa::path(get, path = "/api/organisation", tag = "session",
    responses((status = 200, body = OrganisationInfo)))]
pub(super) async fn organisation(State(state): State<AppState>) -> Json<OrganisationInfo> {
    Json(OrganisationInfo {
        name: state.config.organisation.name.clone(),
        public_key: state.org.public().to_string(),
        mls_external_sender_key: {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(state.calls.external_sender().signature_key)
        },
        mls_external_sender_identity: {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(state.calls.external_sender().identity)
        },
    })
}

/// Credentials for signing in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginRequest {
    /// Account name.
    name: String,
    /// Password.
    password: String,
}

/// The signed-in user and the session's CSRF token.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct SessionInfo {
    user: UserInfo,
    /// Echo in `X-CSRF-Token` on every POST, PATCH and DELETE.
    csrf_token: String,
    /// When the session ends (RFC 3339).
    expires_at: String,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct UserInfo {
    id: String,
    name: String,
    display_name: String,
    #[schema(value_type = String, example = "member")]
    role: Role,
    disabled: bool,
}

impl From<&User> for UserInfo {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            name: u.name.expose().clone(),
            display_name: u.display_name.expose().clone(),
            role: u.role,
            disabled: u.disabled,
        }
    }
}

/// Signs in; sets the session cookie.
///
/// Sign-in requests must be `application/json`, which a cross-site HTML form cannot
/// send, so sign-in itself cannot be forged from another site.
#[utoipa::path(post, path = "/api/session", tag = "session", request_body = LoginRequest,
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody, description = "backing off after failures")))]
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Json(req): Json<LoginRequest>,
) -> Result<Response, ApiError> {
    let t = Instant::now();
    let name_key = req.name.to_lowercase();
    let actor = format!("client:{client}");
    let blocked = state
        .login_by_name
        .blocked(&name_key, t)
        .max(state.login_by_client.blocked(&client, t));
    if let Some(wait) = blocked {
        // Counted, not written one by one: the failures that started the backoff were
        // audited, and a client hammering during it must not flood the log.
        state.audit.note_refusal(Refusal::LoginThrottled, actor);
        return Err(ApiError::TooManyRequests(wait));
    }

    let found = state.store.user_by_name(&req.name).await?;
    let (stored_hash, user) = match &found {
        Some((user, hash)) => (hash.clone(), Some(user.clone())),
        None => (state.dummy_hash.clone(), None),
    };
    let password = req.password;
    let matches =
        tokio::task::spawn_blocking(move || crate::password::verify(&password, &stored_hash))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;

    let user = match user {
        Some(user) if matches && !user.disabled => user,
        other => {
            let reason = match other {
                None => "no such account",
                Some(u) if u.disabled => "account disabled",
                Some(_) => "wrong password",
            };
            state.login_by_name.fail(&name_key, t);
            state.login_by_client.fail(&client, t);
            state
                .audit
                .note(
                    now(),
                    actor,
                    "auth.login",
                    format!("account:{}", req.name),
                    "failed",
                    vec![reason.to_string()],
                )
                .await?;
            return Err(ApiError::Unauthenticated);
        }
    };
    state.login_by_name.clear(&name_key);

    let token = random_token::<32>();
    let csrf = random_token::<32>();
    let issued = now();
    let expires_at = issued.saturating_add(state.config.session_lifetime());
    state
        .store
        .insert_session(
            &sha256_hex(token.as_bytes()),
            &user.id,
            &csrf,
            issued,
            expires_at,
        )
        .await?;
    state
        .audit
        .note(
            issued,
            format!("user:{}", user.id),
            "auth.login",
            format!("client:{client}"),
            "ok",
            vec![],
        )
        .await?;

    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        state.config.session_lifetime().as_secs()
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    let body = SessionInfo {
        user: UserInfo::from(&user),
        csrf_token: csrf,
        expires_at: expires_at.to_rfc3339(),
    };
    Ok((headers, Json(body)).into_response())
}

/// The current session.
#[utoipa::path(get, path = "/api/session", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)))]
pub(super) async fn whoami(auth: Auth) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: UserInfo::from(&auth.session.user),
        csrf_token: auth.session.csrf_token.clone(),
        expires_at: auth.session.expires_at.to_rfc3339(),
    })
}

/// Signs out; clears the cookie.
#[utoipa::path(delete, path = "/api/session", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn logout(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Response, ApiError> {
    state.store.delete_session(&auth.token_hash).await?;
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "auth.logout",
            auth.actor(),
            "ok",
            vec![],
        )
        .await?;
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    let mut headers = HeaderMap::new();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordChange {
    current_password: String,
    /// At least 12 characters.
    new_password: String,
}

/// Changes the caller's password; every other session of theirs ends.
#[utoipa::path(post, path = "/api/session/password", tag = "session", request_body = PasswordChange,
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let stored = state
        .store
        .password_hash(auth.user_id())
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    let (current, new) = (req.current_password, req.new_password);
    let hashed = tokio::task::spawn_blocking(move || {
        if crate::password::verify(&current, &stored) {
            Some(crate::password::hash_new(&new))
        } else {
            None
        }
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(hashed) = hashed else {
        state
            .audit
            .note(
                now(),
                auth.actor(),
                "auth.change_password",
                auth.actor(),
                "failed",
                vec!["wrong current password".into()],
            )
            .await?;
        return Err(ApiError::Forbidden("the current password is wrong".into()));
    };
    let hash = hashed.map_err(|e| ApiError::BadRequest(e.to_string()))?;
    state
        .store
        .set_password_hash(auth.user_id(), &hash, Some(&auth.token_hash))
        .await?;
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "auth.change_password",
            auth.actor(),
            "ok",
            vec![],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
