//! Devices and their credentials.
//!
//! A signed-in user registers a device by sending its Ed25519 public key; the
//! organisation key signs a credential binding organisation, user, display name,
//! device and trust. New devices are `personal`; they are `managed` only when an
//! admin says so or the registration carries an admin-issued enrolment token.
//! Credentials are short-lived and re-fetched; a revoked device gets none, and the
//! join endpoint refuses a revoked device whatever credential it shows.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use conclave_identity::{CredentialClaims, DevicePublicKey};
use conclave_types::{DeviceId, DeviceTrust, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{now, random_id_bytes, sha256_hex, ApiError, AppState, Auth, ErrorBody, Json};
use crate::store::{Device, StoreError, User};

/// A device as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeviceInfo {
    id: String,
    user_id: String,
    name: String,
    /// Ed25519 public key, unpadded URL-safe base64.
    public_key: String,
    #[schema(value_type = String, example = "personal")]
    trust: DeviceTrust,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<&Device> for DeviceInfo {
    fn from(d: &Device) -> Self {
        Self {
            id: d.id.to_string(),
            user_id: d.user_id.to_string(),
            name: d.name.clone(),
            public_key: d.public_key.clone(),
            trust: d.trust,
            created_at: d.created_at.to_rfc3339(),
            revoked_at: d.revoked_at.map(|t| t.to_rfc3339()),
        }
    }
}

/// A device to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDevice {
    /// The owner's name for it, 1-64 characters.
    name: String,
    /// Ed25519 public key, 32 bytes as unpadded URL-safe base64.
    public_key: String,
    /// An admin-issued enrolment token; makes the device `managed`.
    enrolment_token: Option<String>,
}

/// A device and its current credential.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeviceWithCredential {
    device: DeviceInfo,
    /// The organisation-signed credential, unpadded URL-safe base64.
    credential: String,
    /// When the credential ends; fetch a new one before then.
    credential_expires_at: String,
}

fn issue(state: &AppState, user: &User, device: &Device) -> Result<DeviceWithCredential, ApiError> {
    let device_key: DevicePublicKey = device
        .public_key
        .parse()
        .map_err(|_| ApiError::Internal("stored device key does not parse".into()))?;
    let issued_at = now();
    let lifetime =
        Duration::from_secs(u64::from(state.config.devices.credential_lifetime_days) * 86_400);
    let expires_at = issued_at.saturating_add(lifetime);
    let credential = state
        .org
        .try_issue_credential(CredentialClaims {
            organisation: state.config.organisation.name.clone(),
            user_id: user.id,
            user_name: user.name.expose().clone(),
            display_name: user.display_name.expose().clone(),
            device_id: device.id,
            device_key,
            trust: device.trust,
            issued_at,
            expires_at,
        })
        .map_err(|e| ApiError::Internal(format!("credential for a stored account: {e}")))?;
    Ok(DeviceWithCredential {
        device: DeviceInfo::from(device),
        credential: credential.to_base64(),
        credential_expires_at: expires_at.to_rfc3339(),
    })
}

/// Registers a device and returns its first credential.
#[utoipa::path(post, path = "/api/devices", tag = "devices", request_body = NewDevice,
    responses((status = 201, body = DeviceWithCredential), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn register(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewDevice>,
) -> Result<(StatusCode, Json<DeviceWithCredential>), ApiError> {
    let n = req.name.chars().count();
    if !(1..=64).contains(&n) || req.name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "a device name is 1-64 characters without control characters".into(),
        ));
    }
    let key: DevicePublicKey = req
        .public_key
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("public_key: {e}")))?;
    let token_hash = req
        .enrolment_token
        .as_deref()
        .map(|t| sha256_hex(t.as_bytes()));
    let device = Device {
        id: DeviceId::from_bytes(random_id_bytes()),
        user_id: *auth.user_id(),
        name: req.name,
        public_key: key.to_string(),
        trust: if token_hash.is_some() {
            DeviceTrust::Managed
        } else {
            DeviceTrust::Personal
        },
        created_at: now(),
        revoked_at: None,
    };
    let stored = match state
        .store
        .insert_device(&device, token_hash.as_deref())
        .await
    {
        Ok(stored) => stored,
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict(
                "this public key is already registered".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if !stored {
        state
            .audit
            .note(
                now(),
                auth.actor(),
                "device.register",
                format!("device:{}", device.id),
                "failed",
                vec!["enrolment token unknown, used, expired or for another user".into()],
            )
            .await?;
        return Err(ApiError::Forbidden(
            "the enrolment token is unknown, already used, expired or issued for another user"
                .into(),
        ));
    }
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "device.register",
            format!("device:{}", device.id),
            "ok",
            vec![format!(
                "trust {}{}",
                device.trust,
                if token_hash.is_some() {
                    " (enrolment token)"
                } else {
                    ""
                }
            )],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(issue(&state, &auth.session.user, &device)?),
    ))
}

/// Lists the caller's devices (admins: every device).
#[utoipa::path(get, path = "/api/devices", tag = "devices",
    responses((status = 200, body = [DeviceInfo]), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<DeviceInfo>>, ApiError> {
    let owner = (auth.session.user.role != Role::Admin).then_some(auth.user_id());
    let devices = state.store.list_devices(owner).await?;
    Ok(Json(devices.iter().map(DeviceInfo::from).collect()))
}

async fn device_for(state: &AppState, auth: &Auth, id: &str) -> Result<Device, ApiError> {
    let id: DeviceId = id
        .parse()
        .map_err(|_| ApiError::BadRequest("malformed device id".into()))?;
    match state.store.device(&id).await? {
        Some(d) if d.user_id == *auth.user_id() || auth.session.user.role == Role::Admin => Ok(d),
        _ => Err(ApiError::NoSuch("device")),
    }
}

/// A fresh credential for one of the caller's devices, with its current trust.
#[utoipa::path(get, path = "/api/devices/{id}/credential", tag = "devices",
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceWithCredential), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn credential(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<DeviceWithCredential>, ApiError> {
    let device = device_for(&state, &auth, &id).await?;
    if device.user_id != *auth.user_id() {
        return Err(ApiError::NoSuch("device"));
    }
    if device.revoked_at.is_some() {
        return Err(ApiError::Forbidden("this device has been revoked".into()));
    }
    Ok(Json(issue(&state, &auth.session.user, &device)?))
}

/// A change of trust.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceUpdate {
    #[schema(value_type = String, example = "managed")]
    trust: DeviceTrust,
}

/// Sets a device's trust (admins). The owner fetches a new credential to carry it.
#[utoipa::path(patch, path = "/api/devices/{id}", tag = "devices", request_body = DeviceUpdate,
    params(("id" = String, Path, description = "device id")),
    responses((status = 200, body = DeviceInfo), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Json(req): Json<DeviceUpdate>,
) -> Result<Json<DeviceInfo>, ApiError> {
    auth.require(&[Role::Admin], "change device trust")?;
    let device = device_for(&state, &auth, &id).await?;
    if !state.store.set_device_trust(&device.id, req.trust).await? {
        return Err(ApiError::Conflict(
            "a revoked device cannot change trust".into(),
        ));
    }
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "device.set_trust",
            format!("device:{}", device.id),
            "ok",
            vec![format!("trust {} -> {}", device.trust, req.trust)],
        )
        .await?;
    let device = state
        .store
        .device(&device.id)
        .await?
        .ok_or(ApiError::NoSuch("device"))?;
    Ok(Json(DeviceInfo::from(&device)))
}

/// Revokes a device (its owner or an admin). It can no longer get a credential or join.
#[utoipa::path(delete, path = "/api/devices/{id}", tag = "devices",
    params(("id" = String, Path, description = "device id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn revoke(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let device = device_for(&state, &auth, &id).await?;
    if !state.store.revoke_device(&device.id, now()).await? {
        return Err(ApiError::Conflict("the device is already revoked".into()));
    }
    state
        .audit
        .note(
            now(),
            auth.actor(),
            "device.revoke",
            format!("device:{}", device.id),
            "ok",
            vec![],
        )
        .await?;
    state.calls.device_revoked(device.id);
    Ok(StatusCode::NO_CONTENT)
}

/// A request for an enrolment token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEnrolmentToken {
    /// Restrict the token to one user's devices.
    for_user: Option<String>,
}

/// A one-time enrolment token, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct EnrolmentToken {
    token: String,
    expires_at: String,
}

/// Issues a one-time token with which a device registers as `managed` (admins).
#[utoipa::path(post, path = "/api/enrolment-tokens", tag = "devices", request_body = NewEnrolmentToken,
    responses((status = 201, body = EnrolmentToken), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn enrolment_token(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewEnrolmentToken>,
) -> Result<(StatusCode, Json<EnrolmentToken>), ApiError> {
    auth.require(&[Role::Admin], "issue enrolment tokens")?;
    let for_user: Option<UserId> = match req.for_user.as_deref() {
        None => None,
        Some(id) => {
            let id: UserId = id
                .parse()
                .map_err(|_| ApiError::BadRequest("malformed user id".into()))?;
            state
                .store
                .user(&id)
                .await?
                .ok_or(ApiError::NoSuch("user"))?;
            Some(id)
        }
    };
    let lifetime =
        Duration::from_secs(u64::from(state.config.devices.enrolment_token_lifetime_hours) * 3600);
    let (token, expires_at) = crate::accounts::issue_enrolment_token(
        &state.store,
        &state.audit,
        &auth.actor(),
        auth.user_id(),
        for_user.as_ref(),
        lifetime,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrolmentToken {
            token,
            expires_at: expires_at.to_rfc3339(),
        }),
    ))
}
