//! Accounts, for admins. The same operations exist on the command line
//! (`conclave user ...`) for when no admin can sign in.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_types::{Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::UserInfo;
use super::{now, ApiError, AppState, Auth, ErrorBody, Json};
use crate::accounts::{self, AccountError};

/// Lists every account.
#[utoipa::path(get, path = "/api/users", tag = "users",
    responses((status = 200, body = [UserInfo]), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<UserInfo>>, ApiError> {
    auth.require(&[Role::Admin], "list accounts")?;
    let users = state.store.list_users().await?;
    Ok(Json(users.iter().map(UserInfo::from).collect()))
}

/// A new account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    /// Account name: 1-64 characters of a-z, 0-9, '.', '-', '_' and '@'.
    name: String,
    /// Shown to other participants; 1-128 bytes.
    display_name: String,
    #[schema(value_type = String, example = "member")]
    role: Role,
    /// At least 12 characters; omit to have one generated and returned once.
    password: Option<String>,
}

/// The new account and, if generated, its password (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CreatedUser {
    user: UserInfo,
    generated_password: Option<String>,
}

/// Creates an account.
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewUser>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    auth.require(&[Role::Admin], "create accounts")?;
    let (user, generated_password) = accounts::create(
        &state.store,
        &state.audit,
        &auth.actor(),
        &req.name,
        &req.display_name,
        req.role,
        req.password,
    )
    .await
    .map_err(|e| match e {
        AccountError::Taken(_) => ApiError::Conflict(e.to_string()),
        AccountError::Store(e) => e.into(),
        e => ApiError::BadRequest(e.to_string()),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser {
            user: UserInfo::from(&user),
            generated_password,
        }),
    ))
}

/// Changes to an account; omitted fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserUpdate {
    #[schema(value_type = Option<String>, example = "organiser")]
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes an account's role or disables it (which ends its sessions).
#[utoipa::path(patch, path = "/api/users/{id}", tag = "users", request_body = UserUpdate,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = UserInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<UserUpdate>,
) -> Result<Json<UserInfo>, ApiError> {
    auth.require(&[Role::Admin], "change accounts")?;
    let id: UserId = id
        .parse()
        .map_err(|_| ApiError::BadRequest("malformed user id".into()))?;
    if id == *auth.user_id()
        && (req.disabled == Some(true) || req.role.is_some_and(|r| r != Role::Admin))
    {
        return Err(ApiError::Conflict(
            "admins cannot disable or demote themselves".into(),
        ));
    }
    if state.store.user(&id).await?.is_none() {
        return Err(ApiError::NoSuch("user"));
    }
    let mut changes = Vec::new();
    if let Some(role) = req.role {
        state.store.set_user_role(&id, role).await?;
        changes.push(format!("role {role}"));
    }
    if let Some(disabled) = req.disabled {
        state.store.set_user_disabled(&id, disabled).await?;
        changes.push(if disabled { "disabled" } else { "enabled" }.to_string());
    }
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "user.update",
            format!("user:{id}"),
            "ok",
            changes,
        )
        .await?;
    let user = state
        .store
        .user(&id)
        .await?
        .ok_or(ApiError::NoSuch("user"))?;
    Ok(Json(UserInfo::from(&user)))
}
