//! Meetings: scheduling, listing, and the join decision.
//!
//! Existence is a secret. For anyone who may not see a meeting (signed out, not
//! invited, or naming an id that does not exist) every endpoint here gives the same
//! answer, [`ApiError::NoSuchMeeting`], after the same work: one rate-limit check and
//! one database query that looks up the meeting and the caller's place in it
//! together. Refusals are counted and written to the audit log once per client per
//! period, not once per probe.
//!
//! Joining is two steps. The client asks for a challenge, then posts its device
//! credential and a signature over the challenge by the device key (proof of
//! possession). The policy engine decides from the meeting's classification; the
//! decision and its reasons go to the audit log, and an admitted participant gets a
//! short-lived join ticket for the signalling layer.

use crate::call::room::Seat;
use crate::call::Admission;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use conclave_identity::{DeviceCredential, TicketClaims};
use conclave_policy::{
    decide, Audience, Decision, JoinRequest, LobbyRule, MeetingFacts, NetworkAssessment, Outcome,
    Reason, Relation, UntrustedNetworkAction,
};
use conclave_types::{Classification, DeviceId, DeviceTrust, MeetingId, Role, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    now, random_id_bytes, random_token, spend_lookup, ApiError, AppState, Auth, ClientAddr,
    ErrorBody, Json, MaybeAuth,
};
use crate::audit_log::Refusal;
use crate::store::{Meeting, MemberRole};

// ---- classifications ------------------------------------------------------

/// What a classification's profile requires.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ClassificationInfo {
    name: String,
    #[schema(value_type = String, example = "invitees")]
    audience: Audience,
    #[schema(value_type = String, example = "none")]
    lobby: LobbyRule,
    #[schema(value_type = String, example = "managed")]
    device_trust: DeviceTrust,
    trusted_networks: Vec<String>,
    #[schema(value_type = String, example = "deny")]
    untrusted_network: UntrustedNetworkAction,
    join_opens_minutes_before_start: Option<u64>,
    join_closes_minutes_after_end: Option<u64>,
    lock_minutes_after_start: Option<u64>,
    max_participants: Option<u32>,
    /// The rules in plain words, one sentence each.
    description: Vec<String>,
}

/// The classifications organisers can choose, with what each requires.
#[utoipa::path(get, path = "/api/classifications", tag = "meetings",
    responses((status = 200, body = [ClassificationInfo]), (status = 401, body = ErrorBody)))]
pub(super) async fn classifications(
    State(state): State<AppState>,
    _auth: Auth,
) -> Json<Vec<ClassificationInfo>> {
    let minutes = |d: Duration| d.as_secs() / 60;
    Json(
        state
            .profiles
            .iter()
            .map(|(name, p)| ClassificationInfo {
                name: name.to_string(),
                audience: p.audience,
                lobby: p.lobby,
                device_trust: p.required_trust,
                trusted_networks: p.trusted_networks.iter().map(|n| n.name.clone()).collect(),
                untrusted_network: p.untrusted_network,
                join_opens_minutes_before_start: p
                    .join_window
                    .map(|w| minutes(w.opens_before_start)),
                join_closes_minutes_after_end: p.join_window.map(|w| minutes(w.closes_after_end)),
                lock_minutes_after_start: p.lock_after_start.map(minutes),
                max_participants: p.max_participants,
                description: p.describe(),
            })
            .collect(),
    )
}

// ---- scheduling -----------------------------------------------------------

/// A person in a meeting.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MemberInfo {
    user_id: String,
    display_name: String,
}

/// A meeting as its hosts and invitees see it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MeetingInfo {
    id: String,
    title: String,
    agenda: String,
    classification: String,
    starts_at: String,
    ends_at: String,
    cancelled: bool,
    locked: bool,
    organiser_id: String,
    /// `host` or `invitee`: the caller's place.
    your_role: String,
    hosts: Vec<MemberInfo>,
    invitees: Vec<MemberInfo>,
}

/// A line of the caller's meeting list.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct MeetingSummary {
    id: String,
    title: String,
    classification: String,
    starts_at: String,
    ends_at: String,
    cancelled: bool,
    your_role: String,
}

fn role_name(role: MemberRole) -> String {
    match role {
        MemberRole::Host => "host",
        MemberRole::Invitee => "invitee",
    }
    .to_string()
}

async fn meeting_info(
    state: &AppState,
    m: &Meeting,
    role: MemberRole,
) -> Result<MeetingInfo, ApiError> {
    let members = state.store.members(&m.id).await?;
    let of = |r: MemberRole| {
        members
            .iter()
            .filter(|x| x.role == r)
            .map(|x| MemberInfo {
                user_id: x.user_id.to_string(),
                display_name: x.display_name.expose().clone(),
            })
            .collect()
    };
    Ok(MeetingInfo {
        id: m.id.to_string(),
        title: m.title.clone(),
        agenda: m.agenda.clone(),
        classification: m.classification.to_string(),
        starts_at: m.starts_at.to_rfc3339(),
        ends_at: m.ends_at.to_rfc3339(),
        cancelled: m.cancelled_at.is_some(),
        locked: m.locked,
        organiser_id: m.organiser_id.to_string(),
        your_role: role_name(role),
        hosts: of(MemberRole::Host),
        invitees: of(MemberRole::Invitee),
    })
}

/// A meeting to schedule.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewMeeting {
    /// 1-200 characters.
    title: String,
    /// Up to 10,000 characters.
    #[serde(default)]
    agenda: String,
    /// A classification from `GET /api/classifications`.
    #[schema(value_type = String, example = "secret")]
    classification: Classification,
    #[schema(value_type = String, format = DateTime)]
    starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    ends_at: Timestamp,
    /// Account names of further hosts (the organiser always is one).
    #[serde(default)]
    hosts: Vec<String>,
    /// Account names of invitees.
    #[serde(default)]
    invitees: Vec<String>,
}

/// Changes to a meeting; omitted fields stay as they are. Lists replace the old lists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MeetingUpdate {
    title: Option<String>,
    agenda: Option<String>,
    #[schema(value_type = Option<String>)]
    classification: Option<Classification>,
    #[schema(value_type = Option<String>, format = DateTime)]
    starts_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    ends_at: Option<Timestamp>,
    hosts: Option<Vec<String>>,
    invitees: Option<Vec<String>>,
    /// Hosts lock a room so that newcomers wait in the lobby.
    locked: Option<bool>,
}

const MAX_MEMBERS: usize = 1000;
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

fn check_meeting(state: &AppState, m: &Meeting) -> Result<(), ApiError> {
    let title_len = m.title.chars().count();
    if !(1..=200).contains(&title_len) || m.title.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "title: 1-200 characters without control characters".into(),
        ));
    }
    if m.agenda.chars().count() > 10_000 {
        return Err(ApiError::BadRequest(
            "agenda: at most 10,000 characters".into(),
        ));
    }
    if !state.profiles.contains_key(&m.classification) {
        let known: Vec<String> = state.profiles.keys().map(ToString::to_string).collect();
        return Err(ApiError::BadRequest(format!(
            "classification: `{}` is not configured; choose one of {}",
            m.classification,
            known.join(", ")
        )));
    }
    if m.ends_at <= m.starts_at {
        return Err(ApiError::BadRequest(
            "ends_at must be after starts_at".into(),
        ));
    }
    if m.ends_at > m.starts_at.saturating_add(MAX_DURATION) {
        return Err(ApiError::BadRequest(
            "a meeting lasts at most 7 days".into(),
        ));
    }
    Ok(())
}

/// Resolves host and invitee names into members; the organiser is always a host.
async fn resolve_members(
    state: &AppState,
    organiser: &UserId,
    hosts: &[String],
    invitees: &[String],
) -> Result<Vec<(UserId, MemberRole)>, ApiError> {
    if hosts.len() + invitees.len() > MAX_MEMBERS {
        return Err(ApiError::BadRequest(format!(
            "at most {MAX_MEMBERS} hosts and invitees"
        )));
    }
    let mut members: Vec<(UserId, MemberRole)> = vec![(*organiser, MemberRole::Host)];
    for (names, role) in [(hosts, MemberRole::Host), (invitees, MemberRole::Invitee)] {
        for name in names {
            let (user, _) = state
                .store
                .user_by_name(name)
                .await?
                .ok_or_else(|| ApiError::BadRequest(format!("no account is named `{name}`")))?;
            if !members.iter().any(|(id, _)| *id == user.id) {
                members.push((user.id, role));
            }
        }
    }
    Ok(members)
}

/// Schedules a meeting (organisers and admins).
#[utoipa::path(post, path = "/api/meetings", tag = "meetings", request_body = NewMeeting,
    responses((status = 201, body = MeetingInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Json(req): Json<NewMeeting>,
) -> Result<(StatusCode, Json<MeetingInfo>), ApiError> {
    auth.require(&[Role::Admin, Role::Organiser], "schedule meetings")?;
    let t = now();
    let meeting = Meeting {
        id: MeetingId::from_bytes(random_id_bytes()),
        organiser_id: *auth.user_id(),
        title: req.title,
        agenda: req.agenda,
        classification: req.classification,
        starts_at: req.starts_at,
        ends_at: req.ends_at,
        cancelled_at: None,
        locked: false,
        updated_at: t,
    };
    check_meeting(&state, &meeting)?;
    let members = resolve_members(&state, auth.user_id(), &req.hosts, &req.invitees).await?;
    state.store.insert_meeting(&meeting, &members).await?;
    state
        .audit
        .note(
            t,
            auth.actor(),
            "meeting.create",
            format!("meeting:{}", meeting.id),
            "ok",
            vec![
                format!("classification {}", meeting.classification),
                format!("{} members", members.len()),
            ],
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(meeting_info(&state, &meeting, MemberRole::Host).await?),
    ))
}

/// Meetings the caller hosts or is invited to.
#[utoipa::path(get, path = "/api/meetings", tag = "meetings",
    responses((status = 200, body = [MeetingSummary]), (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<MeetingSummary>>, ApiError> {
    let meetings = state.store.meetings_of(auth.user_id()).await?;
    Ok(Json(
        meetings
            .into_iter()
            .map(|(m, role)| MeetingSummary {
                id: m.id.to_string(),
                title: m.title,
                classification: m.classification.to_string(),
                starts_at: m.starts_at.to_rfc3339(),
                ends_at: m.ends_at.to_rfc3339(),
                cancelled: m.cancelled_at.is_some(),
                your_role: role_name(role),
            })
            .collect(),
    ))
}

/// Looks a meeting up for the caller, spending one lookup from their budgets.
/// `None` covers every case that must look like "no such meeting"; the refusal is
/// counted for the audit log by the caller of this function via [`refuse`].
async fn lookup(
    state: &AppState,
    auth: &MaybeAuth,
    client: ClientAddr,
    id: &str,
) -> Result<Option<(Meeting, Option<MemberRole>)>, ApiError> {
    let user = auth.0.as_ref().map(Auth::user_id);
    spend_lookup(state, client.0, user)?;
    let found = state.store.meeting_for(id, user).await?;
    Ok(if auth.0.is_some() { found } else { None })
}

/// The "no such meeting" answer, counted for the aggregated audit entry.
fn refuse(state: &AppState, auth: &MaybeAuth, client: ClientAddr) -> ApiError {
    let actor = match &auth.0 {
        Some(a) => a.actor(),
        None => format!("client:{}", client.0),
    };
    state.audit.note_refusal(Refusal::MeetingLookup, actor);
    ApiError::NoSuchMeeting
}

/// A meeting the caller hosts or is invited to, or the one refusal.
async fn visible(
    state: &AppState,
    auth: &MaybeAuth,
    client: ClientAddr,
    id: &str,
) -> Result<(Auth, Meeting, MemberRole), ApiError> {
    match (lookup(state, auth, client, id).await?, &auth.0) {
        (Some((meeting, Some(role))), Some(a)) => Ok((a.clone(), meeting, role)),
        _ => Err(refuse(state, auth, client)),
    }
}

/// One meeting, for its hosts and invitees.
#[utoipa::path(get, path = "/api/meetings/{id}", tag = "meetings",
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 200, body = MeetingInfo),
              (status = 404, body = ErrorBody, description = "no such meeting, or not yours: the same answer")))]
pub(super) async fn show(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
) -> Result<Json<MeetingInfo>, ApiError> {
    let (_, meeting, role) = visible(&state, &auth, client, &id).await?;
    Ok(Json(meeting_info(&state, &meeting, role).await?))
}

/// Edits a meeting (hosts).
#[utoipa::path(patch, path = "/api/meetings/{id}", tag = "meetings", request_body = MeetingUpdate,
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 200, body = MeetingInfo), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn edit(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
    Json(req): Json<MeetingUpdate>,
) -> Result<Json<MeetingInfo>, ApiError> {
    let (auth, mut meeting, role) = visible(&state, &auth, client, &id).await?;
    if role != MemberRole::Host {
        return Err(ApiError::Forbidden(
            "only hosts can change this meeting".into(),
        ));
    }
    if meeting.cancelled_at.is_some() {
        return Err(ApiError::Conflict("this meeting is cancelled".into()));
    }
    let mut changed = Vec::new();
    macro_rules! apply {
        ($($field:ident),*) => {$(
            if let Some(v) = req.$field {
                meeting.$field = v;
                changed.push(stringify!($field).to_string());
            }
        )*};
    }
    apply!(title, agenda, classification, starts_at, ends_at, locked);
    meeting.updated_at = now();
    check_meeting(&state, &meeting)?;
    let members = match (&req.hosts, &req.invitees) {
        (None, None) => None,
        (hosts, invitees) => {
            let current = state.store.members(&meeting.id).await?;
            let names_of = |r: MemberRole| -> Vec<String> {
                current
                    .iter()
                    .filter(|m| m.role == r)
                    .map(|m| m.name.expose().clone())
                    .collect()
            };
            let hosts = hosts.clone().unwrap_or_else(|| names_of(MemberRole::Host));
            let invitees = invitees
                .clone()
                .unwrap_or_else(|| names_of(MemberRole::Invitee));
            changed.push("members".to_string());
            Some(resolve_members(&state, &meeting.organiser_id, &hosts, &invitees).await?)
        }
    };
    state
        .store
        .update_meeting(&meeting, members.as_deref())
        .await?;
    state
        .audit
        .note(
            meeting.updated_at,
            auth.actor(),
            "meeting.edit",
            format!("meeting:{}", meeting.id),
            "ok",
            changed,
        )
        .await?;
    Ok(Json(meeting_info(&state, &meeting, role).await?))
}

/// Cancels a meeting (hosts). It stays listed, marked cancelled, and nobody can join.
#[utoipa::path(delete, path = "/api/meetings/{id}", tag = "meetings",
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn cancel(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (auth, mut meeting, role) = visible(&state, &auth, client, &id).await?;
    if role != MemberRole::Host {
        return Err(ApiError::Forbidden(
            "only hosts can cancel this meeting".into(),
        ));
    }
    if meeting.cancelled_at.is_some() {
        return Err(ApiError::Conflict(
            "this meeting is already cancelled".into(),
        ));
    }
    let t = now();
    meeting.cancelled_at = Some(t);
    meeting.updated_at = t;
    state.store.update_meeting(&meeting, None).await?;
    state
        .audit
        .note(
            t,
            auth.actor(),
            "meeting.cancel",
            format!("meeting:{}", meeting.id),
            "ok",
            vec![],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- joining --------------------------------------------------------------

/// A challenge to sign with the device key.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Challenge {
    /// 32 random bytes, unpadded URL-safe base64. Sign
    /// `"conclave-join-challenge-v1" || meeting id bytes || challenge bytes`.
    challenge: String,
    expires_at: String,
}

/// Issues a one-time challenge for joining. It is bound to the caller and the
/// meeting id, and given for any id: whether the meeting exists is not revealed here.
#[utoipa::path(post, path = "/api/meetings/{id}/challenge", tag = "meetings",
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 200, body = Challenge), (status = 404, body = ErrorBody)))]
pub(super) async fn challenge(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
) -> Result<Json<Challenge>, ApiError> {
    let Some(user) = auth.0.as_ref() else {
        lookup(&state, &auth, client, &id).await?;
        return Err(refuse(&state, &auth, client));
    };
    spend_lookup(&state, client.0, Some(user.user_id()))?;
    let challenge = random_token::<32>();
    let expires_at = now().saturating_add(Duration::from_secs(
        state.config.join.challenge_lifetime_seconds.into(),
    ));
    state
        .store
        .insert_challenge(&challenge, user.user_id(), &id, expires_at)
        .await?;
    Ok(Json(Challenge {
        challenge,
        expires_at: expires_at.to_rfc3339(),
    }))
}

/// A join request: a credential and proof that the device holds its key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    /// The device's current credential (from registration or `/api/devices/{id}/credential`).
    credential: String,
    /// The challenge from `/api/meetings/{id}/challenge`.
    challenge: String,
    /// Ed25519 signature by the device key over the challenge message, unpadded URL-safe base64.
    signature: String,
}

/// What a pre-join check needs: the device the caller would join with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PreviewBody {
    /// The device's current credential (from registration or `/api/devices/{id}/credential`).
    credential: String,
}

/// One reason, for people and programs.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ReasonInfo {
    /// Stable code, e.g. `untrusted_network_denied`.
    code: &'static str,
    /// Plain words for the person joining.
    message: String,
}

/// The network the request came from, as the policy sees it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct NetworkInfo {
    trusted: bool,
    /// The trusted network's name, when trusted.
    name: Option<String>,
}

/// The policy's decision.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct JoinDecision {
    /// `admit`, `lobby` or `deny`.
    outcome: &'static str,
    reasons: Vec<ReasonInfo>,
    network: NetworkInfo,
    #[schema(value_type = String, example = "managed")]
    device_trust: DeviceTrust,
    /// For `admit` and `lobby`: present to signalling before `ticket_expires_at` (a lobby
    /// ticket seats the participant in the lobby until a host admits them).
    ticket: Option<String>,
    ticket_expires_at: Option<String>,
}

/// Asks to join: the policy engine admits, sends to the lobby, or denies, with reasons.
///
/// Invitees who are denied get the reasons in plain words (403). People outside the
/// meeting's audience get the same answer as for a meeting that does not exist.
#[utoipa::path(post, path = "/api/meetings/{id}/join", tag = "meetings", request_body = JoinBody,
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 200, body = JoinDecision, description = "admitted, with a join ticket"),
              (status = 202, body = JoinDecision, description = "waiting in the lobby for a host"),
              (status = 403, body = JoinDecision, description = "denied, with reasons"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn join(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
    Json(req): Json<JoinBody>,
) -> Result<Response, ApiError> {
    let Some(user) = auth.0.clone() else {
        lookup(&state, &auth, client, &id).await?;
        return Err(refuse(&state, &auth, client));
    };
    let t = now();
    spend_lookup(&state, client.0, Some(user.user_id()))?;
    if !state
        .store
        .take_challenge(&req.challenge, user.user_id(), &id, t)
        .await?
    {
        return Err(ApiError::BadRequest(
            "the challenge is unknown, already used, expired or for another meeting; request a new one".into(),
        ));
    }
    let (device_id, trust) = check_device(&state, &user, &id, &req, t).await?;

    let judged = judge(&state, &user, client, &id, trust, t).await?;
    let Some((meeting, relation, decision)) = judged else {
        // Written now, like the decision on a real meeting below, so that both
        // answers cost the same.
        state
            .audit
            .note(
                t,
                user.actor(),
                "meeting.join",
                format!("meeting:{id}"),
                "deny",
                vec![
                    "no_such_meeting".into(),
                    format!("client {}", client.0),
                    format!("device {device_id} ({trust})"),
                ],
            )
            .await?;
        return Err(ApiError::NoSuchMeeting);
    };

    let network = match &decision.network {
        NetworkAssessment::Trusted { name } => format!("network {name} (trusted)"),
        NetworkAssessment::Untrusted => "network untrusted".to_string(),
    };
    let mut reasons: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| r.code().to_string())
        .collect();
    reasons.push(format!("client {}", client.0));
    reasons.push(network);
    reasons.push(format!("device {device_id} ({trust})"));
    reasons.push(format!("relation {relation:?}").to_lowercase());
    state
        .audit
        .note(
            t,
            user.actor(),
            "meeting.join",
            format!("meeting:{}", meeting.id),
            decision.outcome.as_str(),
            reasons,
        )
        .await?;

    if decision.reasons.contains(&Reason::NotInAudience) {
        return Err(ApiError::NoSuchMeeting);
    }
    let explained: Vec<String> = decision
        .reasons
        .iter()
        .map(|r| r.explain(&meeting.classification))
        .collect();
    let account = &user.session.user;
    if decision.outcome == Outcome::Deny {
        state.calls.alert(
            &meeting.id,
            conclave_protocol::Alert {
                at: t,
                kind: "join_refused".into(),
                who: Some(account.display_name.0.clone()),
                text: format!("was refused: {}", explained.join("; ")),
            },
        );
    }
    let ticket = match decision.outcome {
        // Admitted, or waiting for a host: either way the ticket opens the call's WebSocket
        // (the lobby is a seat that is not in the call yet).
        Outcome::Admit | Outcome::Lobby => {
            let expires_at = t.saturating_add(Duration::from_secs(
                state.config.join.ticket_lifetime_seconds.into(),
            ));
            let nonce = random_id_bytes();
            let ticket = state.org.issue_ticket(TicketClaims {
                user_id: *user.user_id(),
                device_id,
                meeting_id: meeting.id,
                issued_at: t,
                expires_at,
                nonce,
            });
            let (trusted, network_name) = match &decision.network {
                NetworkAssessment::Trusted { name } => (true, Some(name.clone())),
                NetworkAssessment::Untrusted => (false, None),
            };
            state.calls.admit(
                nonce,
                Admission {
                    seat: Seat {
                        user_id: account.id,
                        user_name: account.name.0.clone(),
                        display_name: account.display_name.0.clone(),
                        device_id,
                        trust,
                        network: conclave_protocol::Network {
                            trusted,
                            name: network_name,
                            address: Some(client.0.to_string()),
                        },
                        host: relation == Relation::Host,
                    },
                    client: client.0,
                    expires_at,
                    lobby: (decision.outcome == Outcome::Lobby).then(|| explained.clone()),
                },
            );
            Some((ticket.encode(), expires_at.to_rfc3339()))
        }
        Outcome::Deny => None,
    };
    let status = match decision.outcome {
        Outcome::Admit => StatusCode::OK,
        Outcome::Lobby => StatusCode::ACCEPTED,
        Outcome::Deny => StatusCode::FORBIDDEN,
    };
    let body = JoinDecision::new(&meeting, decision, trust, ticket);
    Ok((status, Json(body)).into_response())
}

/// Tells before joining what the policy would decide for this device from where the
/// caller is now: the pre-join page shows it ("this meeting is secret: join from a managed
/// device on a trusted network"). Nothing is granted (no ticket), nobody is alerted and
/// nothing is audited; what it says can change until the real join (the room may lock,
/// the join window open or close). As for joining, people outside the meeting's audience
/// get the answer a meeting that does not exist gets.
#[utoipa::path(post, path = "/api/meetings/{id}/preview", tag = "meetings",
    request_body = PreviewBody,
    params(("id" = String, Path, description = "meeting id")),
    responses((status = 200, body = JoinDecision, description = "what joining would decide now"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn preview(
    State(state): State<AppState>,
    auth: MaybeAuth,
    client: ClientAddr,
    Path(id): Path<String>,
    Json(req): Json<PreviewBody>,
) -> Result<Json<JoinDecision>, ApiError> {
    let Some(user) = auth.0.clone() else {
        lookup(&state, &auth, client, &id).await?;
        return Err(refuse(&state, &auth, client));
    };
    let t = now();
    spend_lookup(&state, client.0, Some(user.user_id()))?;
    let (device, _) = check_credential(&state, &user, &req.credential, t).await?;
    let judged = judge(&state, &user, client, &id, device.trust, t).await?;
    let Some((meeting, _, decision)) = judged else {
        return Err(ApiError::NoSuchMeeting);
    };
    if decision.reasons.contains(&Reason::NotInAudience) {
        return Err(ApiError::NoSuchMeeting);
    }
    Ok(Json(JoinDecision::new(
        &meeting,
        decision,
        device.trust,
        None,
    )))
}

/// The policy's decision on the caller joining meeting `id` with a device of `trust` from
/// `client` at `t`, with the meeting and the caller's relation to it; `None` if the caller
/// may not see such a meeting (or there is none).
async fn judge(
    state: &AppState,
    user: &Auth,
    client: ClientAddr,
    id: &str,
    trust: DeviceTrust,
    t: Timestamp,
) -> Result<Option<(Meeting, Relation, Decision)>, ApiError> {
    let Some((meeting, role)) = state.store.meeting_for(id, Some(user.user_id())).await? else {
        return Ok(None);
    };
    let relation = match role {
        Some(MemberRole::Host) => Relation::Host,
        Some(MemberRole::Invitee) => Relation::Invitee,
        None => Relation::Colleague,
    };
    let Some(profile) = state.profiles.get(&meeting.classification) else {
        return Err(ApiError::Internal(format!(
            "meeting classification `{}` has no profile",
            meeting.classification
        )));
    };
    let facts = MeetingFacts {
        starts_at: meeting.starts_at,
        ends_at: meeting.ends_at,
        cancelled: meeting.cancelled_at.is_some(),
        locked: meeting.locked,
        participants: state.presence.participants(&meeting.id),
    };
    let request = JoinRequest {
        relation,
        device_trust: trust,
        client_addr: client.0,
    };
    let decision = decide(&meeting.classification, profile, &facts, &request, t);
    Ok(Some((meeting, relation, decision)))
}

impl JoinDecision {
    fn new(
        meeting: &Meeting,
        decision: Decision,
        device_trust: DeviceTrust,
        ticket: Option<(String, String)>,
    ) -> Self {
        let (ticket, ticket_expires_at) = ticket.unzip();
        JoinDecision {
            outcome: decision.outcome.as_str(),
            reasons: decision
                .reasons
                .iter()
                .map(|r| ReasonInfo {
                    code: r.code(),
                    message: r.explain(&meeting.classification),
                })
                .collect(),
            network: match decision.network {
                NetworkAssessment::Trusted { name } => NetworkInfo {
                    trusted: true,
                    name: Some(name),
                },
                NetworkAssessment::Untrusted => NetworkInfo {
                    trusted: false,
                    name: None,
                },
            },
            device_trust,
            ticket,
            ticket_expires_at,
        }
    }
}

/// Verifies the credential and the proof of possession; returns the device and its
/// trust. These checks depend only on the caller's device, never on the meeting, so
/// their failures reveal nothing about whether the meeting exists.
async fn check_device(
    state: &AppState,
    user: &Auth,
    meeting_id: &str,
    req: &JoinBody,
    t: Timestamp,
) -> Result<(DeviceId, DeviceTrust), ApiError> {
    use base64::Engine as _;

    let (device, device_key) = check_credential(state, user, &req.credential, t).await?;
    let challenge: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&req.challenge)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::BadRequest("challenge: not 32 bytes of URL-safe base64".into()))?;
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&req.signature)
        .map_err(|_| ApiError::BadRequest("signature: not URL-safe base64".into()))?;
    // A malformed meeting id names no meeting; the signature cannot be over it.
    let meeting = meeting_id
        .parse::<MeetingId>()
        .unwrap_or(MeetingId::from_bytes([0; 16]));
    if let Err(e) = device_key.verify_join_challenge(&meeting, &challenge, &signature) {
        state
            .audit
            .note(
                t,
                user.actor(),
                "meeting.join",
                format!("device:{}", device.id),
                "failed",
                vec![format!("proof of possession: {e}")],
            )
            .await?;
        return Err(ApiError::Forbidden(format!(
            "proof of possession failed: {e}"
        )));
    }
    Ok((device.id, device.trust))
}

/// Verifies a device credential of the caller: signed by the organisation, valid now, for
/// a device of this account that is not revoked and whose key and trust it still states.
/// Returns the device and the key the credential binds.
async fn check_credential(
    state: &AppState,
    user: &Auth,
    credential: &str,
    t: Timestamp,
) -> Result<(crate::store::Device, conclave_identity::DevicePublicKey), ApiError> {
    let credential = DeviceCredential::from_base64(credential)
        .map_err(|e| ApiError::BadRequest(format!("credential: {e}")))?;
    let claims = match credential.verify(&state.org.public(), t) {
        Ok(claims) => claims,
        Err(e) => {
            state
                .audit
                .note(
                    t,
                    user.actor(),
                    "meeting.join",
                    "credential",
                    "failed",
                    vec![e.to_string()],
                )
                .await?;
            return Err(ApiError::Forbidden(format!("credential: {e}")));
        }
    };
    if claims.user_id != *user.user_id() {
        return Err(ApiError::Forbidden(
            "the credential belongs to another user".into(),
        ));
    }
    let device = state
        .store
        .device(&claims.device_id)
        .await?
        .filter(|d| d.user_id == *user.user_id())
        .ok_or_else(|| {
            ApiError::Forbidden("the credential names a device this account does not have".into())
        })?;
    if device.revoked_at.is_some() {
        state
            .audit
            .note(
                t,
                user.actor(),
                "meeting.join",
                format!("device:{}", device.id),
                "deny",
                vec!["device revoked".into()],
            )
            .await?;
        return Err(ApiError::Forbidden("this device has been revoked".into()));
    }
    if device.public_key != claims.device_key.to_string() || device.trust != claims.trust {
        return Err(ApiError::Conflict(
            "the credential is out of date; fetch a new one from /api/devices/{id}/credential"
                .into(),
        ));
    }
    Ok((device, claims.device_key))
}
