//! The audit log, for auditors (and admins): read it page by page, export it whole as
//! JSON lines, and fetch the signed heads to verify an export elsewhere.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use conclave_audit::{Entry, SignedHead};
use conclave_types::Role;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{now, ApiError, AppState, Auth, ErrorBody, Json};

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

/// Paging through the log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    /// Entries with a sequence number greater than this (default 0).
    after: Option<u64>,
    /// At most this many entries (default 100, at most 1000).
    limit: Option<u32>,
}

/// One audit entry.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub(super) struct EntrySchema {
    seq: u64,
    time: String,
    actor: String,
    action: String,
    target: String,
    decision: String,
    reasons: Vec<String>,
    prev_hash: String,
    hash: String,
}

/// A signed head.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = AuditHead)]
pub(super) struct HeadSchema {
    seq: u64,
    hash: String,
    signed_at: String,
    signature: String,
}

/// Entries in sequence order.
#[utoipa::path(get, path = "/api/audit", tag = "audit", params(Page),
    responses((status = 200, body = [EntrySchema]), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn entries(
    State(state): State<AppState>,
    auth: Auth,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<Entry>>, ApiError> {
    auth.require(READERS, "read the audit log")?;
    let Query(page) = page.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("limit must be 1 to 1000".into()));
    }
    Ok(Json(
        state
            .store
            .audit_entries(page.after.unwrap_or(0), limit)
            .await?,
    ))
}

/// The whole log as JSON lines (`application/x-ndjson`), one entry per line.
#[utoipa::path(get, path = "/api/audit/export", tag = "audit",
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403, body = ErrorBody)))]
pub(super) async fn export(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Response, ApiError> {
    auth.require(READERS, "export the audit log")?;
    state
        .audit
        .note(now(), auth.actor(), "audit.export", "audit", "ok", vec![])
        .await?;
    let store = state.store.clone();
    let stream = async_stream(store);
    let mut response = Body::from_stream(stream).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

/// Pages through the log so an export of any length streams in constant memory.
fn async_stream(
    store: crate::store::Store,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    futures_util::stream::try_unfold(Some(0u64), move |after| {
        let store = store.clone();
        async move {
            let Some(after) = after else { return Ok(None) };
            let page = store
                .audit_entries(after, 1000)
                .await
                .map_err(std::io::Error::other)?;
            let Some(last) = page.last().map(|e| e.seq) else {
                return Ok(None);
            };
            let mut text = String::new();
            for entry in &page {
                text.push_str(&serde_json::to_string(entry).map_err(std::io::Error::other)?);
                text.push('\n');
            }
            let next = (page.len() == 1000).then_some(last);
            Ok(Some((text, next)))
        }
    })
}

/// Every signed head.
#[utoipa::path(get, path = "/api/audit/heads", tag = "audit",
    responses((status = 200, body = [HeadSchema]), (status = 403, body = ErrorBody)))]
pub(super) async fn heads(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<SignedHead>>, ApiError> {
    auth.require(READERS, "read the audit log")?;
    Ok(Json(state.store.audit_heads().await?))
}
