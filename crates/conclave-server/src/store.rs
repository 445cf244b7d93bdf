//! Storage: one SQLite file through `sqlx`, migrations embedded in the binary.
//!
//! Every query is written in SQL that PostgreSQL also runs (`$n` placeholders, no
//! rowids, `RETURNING` instead of `last_insert_rowid`), so that multi-node
//! deployments can move to PostgreSQL without rewriting this module. Rows come back as
//! domain types; a row that does not parse is reported as [`StoreError::Corrupt`]
//! rather than trusted.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use conclave_audit::{Entry, Hash, HeadSignature, SignedHead};
use conclave_types::{
    Classification, DeviceId, DeviceTrust, MeetingId, Pii, Role, Timestamp, UserId,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The embedded migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse: the file was edited or is damaged.
    #[error("the database holds an invalid {0}")]
    Corrupt(&'static str),
    /// A unique value (user name, device key) is already taken.
    #[error("already exists")]
    Conflict,
}

type Result<T> = std::result::Result<T, StoreError>;

/// A user account.
#[derive(Debug, Clone)]
pub struct User {
    /// Identifier.
    pub id: UserId,
    /// Login name.
    pub name: Pii<String>,
    /// Shown to other participants.
    pub display_name: Pii<String>,
    /// Organisation role.
    pub role: Role,
    /// Disabled accounts cannot sign in and lose their sessions.
    pub disabled: bool,
    /// When the account was made.
    pub created_at: Timestamp,
}

/// A registered device.
#[derive(Debug, Clone)]
pub struct Device {
    /// Identifier.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// The owner's name for it ("work laptop").
    pub name: String,
    /// Ed25519 public key, URL-safe base64.
    pub public_key: String,
    /// Trust level.
    pub trust: DeviceTrust,
    /// Registration time.
    pub created_at: Timestamp,
    /// Set once revoked; revoked devices get no credential and cannot join.
    pub revoked_at: Option<Timestamp>,
}

/// A scheduled meeting.
#[derive(Debug, Clone)]
pub struct Meeting {
    /// Identifier.
    pub id: MeetingId,
    /// Who scheduled it (always a host).
    pub organiser_id: UserId,
    /// Title.
    pub title: String,
    /// Agenda.
    pub agenda: String,
    /// Names the policy profile.
    pub classification: Classification,
    /// Scheduled start.
    pub starts_at: Timestamp,
    /// Scheduled end.
    pub ends_at: Timestamp,
    /// Set when cancelled.
    pub cancelled_at: Option<Timestamp>,
    /// Locked by a host.
    pub locked: bool,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A person's place in a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    /// May edit, admit and remove.
    Host,
    /// Invited.
    Invitee,
}

impl MemberRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Invitee => "invitee",
        }
    }
}

/// A meeting member with the fields lists show.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their account name.
    pub name: Pii<String>,
    /// Their display name.
    pub display_name: Pii<String>,
    /// Host or invitee.
    pub role: MemberRole,
}

/// A signed-in session joined with its user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The signed-in user.
    pub user: User,
    /// The token state-changing requests must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// End of the session.
    pub expires_at: Timestamp,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn parse<T: FromStr>(s: &str, what: &'static str) -> Result<T> {
    s.parse().map_err(|_| StoreError::Corrupt(what))
}

fn conflict_on_unique(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => StoreError::Db(e),
    }
}

const USER_COLUMNS: &str = "id, name, display_name, role, disabled, created_at";
const DEVICE_COLUMNS: &str = "id, user_id, name, public_key, trust, created_at, revoked_at";
const MEETING_COLUMNS: &str = "m.id, m.organiser_id, m.title, m.agenda, m.classification, \
     m.starts_at, m.ends_at, m.cancelled_at, m.locked, m.updated_at";

fn user_from(row: &sqlx::sqlite::SqliteRow) -> Result<User> {
    Ok(User {
        id: parse(row.try_get("id")?, "user id")?,
        name: Pii(row.try_get("name")?),
        display_name: Pii(row.try_get("display_name")?),
        role: parse(row.try_get("role")?, "user role")?,
        disabled: row.try_get("disabled")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
    })
}

fn device_from(row: &sqlx::sqlite::SqliteRow) -> Result<Device> {
    Ok(Device {
        id: parse(row.try_get("id")?, "device id")?,
        user_id: parse(row.try_get("user_id")?, "device owner")?,
        name: row.try_get("name")?,
        public_key: row.try_get("public_key")?,
        trust: parse(row.try_get("trust")?, "device trust")?,
        created_at: Timestamp::from_unix_millis(row.try_get("created_at")?),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(Timestamp::from_unix_millis),
    })
}

fn meeting_from(row: &sqlx::sqlite::SqliteRow) -> Result<Meeting> {
    Ok(Meeting {
        id: parse(row.try_get("id")?, "meeting id")?,
        organiser_id: parse(row.try_get("organiser_id")?, "meeting organiser")?,
        title: row.try_get("title")?,
        agenda: row.try_get("agenda")?,
        classification: parse(row.try_get("classification")?, "classification")?,
        starts_at: Timestamp::from_unix_millis(row.try_get("starts_at")?),
        ends_at: Timestamp::from_unix_millis(row.try_get("ends_at")?),
        cancelled_at: row
            .try_get::<Option<i64>, _>("cancelled_at")?
            .map(Timestamp::from_unix_millis),
        locked: row.try_get("locked")?,
        updated_at: Timestamp::from_unix_millis(row.try_get("updated_at")?),
    })
}

fn member_role(s: Option<String>) -> Result<Option<MemberRole>> {
    match s.as_deref() {
        None => Ok(None),
        Some("host") => Ok(Some(MemberRole::Host)),
        Some("invitee") => Ok(Some(MemberRole::Invitee)),
        Some(_) => Err(StoreError::Corrupt("meeting member role")),
    }
}

fn audit_from(row: &sqlx::sqlite::SqliteRow) -> Result<Entry> {
    let seq: i64 = row.try_get("seq")?;
    let reasons: String = row.try_get("reasons")?;
    Ok(Entry {
        seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit sequence number"))?,
        time: Timestamp::from_unix_millis(row.try_get("time")?),
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        decision: row.try_get("decision")?,
        reasons: serde_json::from_str(&reasons)
            .map_err(|_| StoreError::Corrupt("audit reasons"))?,
        prev_hash: parse(row.try_get("prev_hash")?, "audit hash")?,
        hash: parse(row.try_get("hash")?, "audit hash")?,
    })
}

fn seq_i64(seq: u64) -> Result<i64> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt("audit sequence number"))
}

impl Store {
    /// Opens (creating if asked) the database file and applies pending migrations.
    pub async fn open(path: &Path, create: bool) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the pool, flushing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---- users -------------------------------------------------------------

    /// Adds a user; [`StoreError::Conflict`] when the name is taken.
    pub async fn insert_user(&self, user: &User, password_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (id, name, display_name, role, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.to_string())
        .bind(user.name.expose())
        .bind(user.display_name.expose())
        .bind(user.role.as_str())
        .bind(password_hash)
        .bind(user.disabled)
        .bind(user.created_at.unix_millis())
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique)?;
        Ok(())
    }

    /// A user and their password hash, by login name.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    /// A user by id.
    pub async fn user(&self, id: &UserId) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    /// Users by login names; unknown names are left out.
    pub async fn users_by_names(&self, names: &[String]) -> Result<Vec<User>> {
        let mut users = Vec::with_capacity(names.len());
        for name in names {
            if let Some((user, _)) = self.user_by_name(name).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from).collect()
    }

    /// Enables or disables an account; disabling ends its sessions. False if no such user.
    pub async fn set_user_disabled(&self, id: &UserId, disabled: bool) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET disabled = $1 WHERE id = $2")
            .bind(disabled)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if disabled {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Changes a role. False if no such user.
    pub async fn set_user_role(&self, id: &UserId, role: Role) -> Result<bool> {
        let done = sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(done == 1)
    }

    /// Replaces a password hash and ends the user's sessions except `keep` (the session
    /// that made the change, if any). False if no such user.
    pub async fn set_password_hash(
        &self,
        id: &UserId,
        hash: &str,
        keep: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(id.to_string())
            .bind(keep.unwrap_or(""))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// The stored password hash of a user.
    pub async fn password_hash(&self, id: &UserId) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok(r.try_get("password_hash")?)).transpose()
    }

    /// Number of accounts (zero before the first admin exists).
    pub async fn count_users(&self) -> Result<i64> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?)
    }

    // ---- sessions ----------------------------------------------------------

    /// Records a session by the SHA-256 of its token.
    pub async fn insert_session(
        &self,
        token_hash: &str,
        user: &UserId,
        csrf_token: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(csrf_token)
        .bind(now.unix_millis())
        .bind(expires_at.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live session of an enabled user.
    pub async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT u.id, u.name, u.display_name, u.role, u.disabled, u.created_at, \
                    s.csrf_token, s.expires_at AS session_expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = FALSE",
        )
        .bind(token_hash)
        .bind(now.unix_millis())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Session {
                user: user_from(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: Timestamp::from_unix_millis(r.try_get("session_expires_at")?),
            })
        })
        .transpose()
    }

    /// Ends a session.
    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes expired sessions and join challenges.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await?;
        sqlx::query("DELETE FROM join_challenges WHERE expires_at <= $1")
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- devices -----------------------------------------------------------

    /// Registers a device; when `enrolment_token_hash` is given the token is consumed
    /// in the same transaction and must be unused, unexpired and (if bound) for this
    /// user, else nothing is stored and `Ok(false)` is returned.
    pub async fn insert_device(
        &self,
        device: &Device,
        enrolment_token_hash: Option<&str>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(device.id.to_string())
        .bind(device.user_id.to_string())
        .bind(&device.name)
        .bind(&device.public_key)
        .bind(device.trust.as_str())
        .bind(device.created_at.unix_millis())
        .bind(device.revoked_at.map(Timestamp::unix_millis))
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique)?;
        if let Some(hash) = enrolment_token_hash {
            let used = sqlx::query(
                "UPDATE enrolment_tokens SET used_at = $1, used_by = $2 \
                 WHERE token_hash = $3 AND used_at IS NULL AND expires_at > $1 \
                   AND (for_user IS NULL OR for_user = $4)",
            )
            .bind(device.created_at.unix_millis())
            .bind(device.id.to_string())
            .bind(hash)
            .bind(device.user_id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if used != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A device by id.
    pub async fn device(&self, id: &DeviceId) -> Result<Option<Device>> {
        let row = sqlx::query(&format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device_from).transpose()
    }

    /// Devices of one user, or of everyone.
    pub async fn list_devices(&self, user: Option<&UserId>) -> Result<Vec<Device>> {
        let rows = match user {
            Some(u) => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY created_at"
                ))
                .bind(u.to_string())
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {DEVICE_COLUMNS} FROM devices ORDER BY user_id, created_at"
                ))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(device_from).collect()
    }

    /// Sets a device's trust. False if no such (unrevoked) device.
    pub async fn set_device_trust(&self, id: &DeviceId, trust: DeviceTrust) -> Result<bool> {
        let n = sqlx::query("UPDATE devices SET trust = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(trust.as_str())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Revokes a device. False if no such device or already revoked.
    pub async fn revoke_device(&self, id: &DeviceId, now: Timestamp) -> Result<bool> {
        let n =
            sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.unix_millis())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Devices revoked at or after `since`, by whoever revoked them (the API, or the
    /// `conclave device revoke` command in another process).
    pub async fn devices_revoked_since(&self, since: Timestamp) -> Result<Vec<DeviceId>> {
        let rows = sqlx::query("SELECT id FROM devices WHERE revoked_at >= $1")
            .bind(since.unix_millis())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                id.parse()
                    .map_err(|e| sqlx::Error::Decode(format!("device id {id}: {e}").into()).into())
            })
            .collect()
    }

    /// Stores an enrolment token by its hash.
    pub async fn insert_enrolment_token(
        &self,
        token_hash: &str,
        created_by: &UserId,
        for_user: Option<&UserId>,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO enrolment_tokens (token_hash, created_by, for_user, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(created_by.to_string())
        .bind(for_user.map(ToString::to_string))
        .bind(now.unix_millis())
        .bind(expires_at.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- meetings ----------------------------------------------------------

    /// Stores a new meeting with its members.
    pub async fn insert_meeting(
        &self,
        m: &Meeting,
        members: &[(UserId, MemberRole)],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO meetings (id, organiser_id, title, agenda, classification, starts_at, \
             ends_at, cancelled_at, locked, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(m.id.to_string())
        .bind(m.organiser_id.to_string())
        .bind(&m.title)
        .bind(&m.agenda)
        .bind(m.classification.as_str())
        .bind(m.starts_at.unix_millis())
        .bind(m.ends_at.unix_millis())
        .bind(m.cancelled_at.map(Timestamp::unix_millis))
        .bind(m.locked)
        .bind(m.updated_at.unix_millis())
        .execute(&mut *tx)
        .await?;
        Self::write_members(&mut tx, &m.id, members).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_members(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        id: &MeetingId,
        members: &[(UserId, MemberRole)],
    ) -> Result<()> {
        sqlx::query("DELETE FROM meeting_members WHERE meeting_id = $1")
            .bind(id.to_string())
            .execute(&mut **tx)
            .await?;
        for (user, role) in members {
            sqlx::query(
                "INSERT INTO meeting_members (meeting_id, user_id, role) VALUES ($1, $2, $3)",
            )
            .bind(id.to_string())
            .bind(user.to_string())
            .bind(role.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// Rewrites a meeting's fields and, when given, its members.
    pub async fn update_meeting(
        &self,
        m: &Meeting,
        members: Option<&[(UserId, MemberRole)]>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE meetings SET title = $1, agenda = $2, classification = $3, starts_at = $4, \
             ends_at = $5, cancelled_at = $6, locked = $7, updated_at = $8 WHERE id = $9",
        )
        .bind(&m.title)
        .bind(&m.agenda)
        .bind(m.classification.as_str())
        .bind(m.starts_at.unix_millis())
        .bind(m.ends_at.unix_millis())
        .bind(m.cancelled_at.map(Timestamp::unix_millis))
        .bind(m.locked)
        .bind(m.updated_at.unix_millis())
        .bind(m.id.to_string())
        .execute(&mut *tx)
        .await?;
        if let Some(members) = members {
            Self::write_members(&mut tx, &m.id, members).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Locks or unlocks a meeting (a host did, in the call).
    pub async fn set_locked(&self, id: &MeetingId, locked: bool, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE meetings SET locked = $1, updated_at = $2 WHERE id = $3")
            .bind(locked)
            .bind(now.unix_millis())
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A meeting and the user's place in it, in one query whatever the answer, so
    /// that "no such meeting" and "not yours" take the same path and time.
    pub async fn meeting_for(
        &self,
        id: &str,
        user: Option<&UserId>,
    ) -> Result<Option<(Meeting, Option<MemberRole>)>> {
        let row = sqlx::query(&format!(
            "SELECT {MEETING_COLUMNS}, mm.role AS member_role FROM meetings m \
             LEFT JOIN meeting_members mm ON mm.meeting_id = m.id AND mm.user_id = $2 \
             WHERE m.id = $1"
        ))
        .bind(id)
        .bind(user.map(ToString::to_string).unwrap_or_default())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((meeting_from(&r)?, member_role(r.try_get("member_role")?)?)))
            .transpose()
    }

    /// Meetings the user hosts or is invited to, soonest first.
    pub async fn meetings_of(&self, user: &UserId) -> Result<Vec<(Meeting, MemberRole)>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEETING_COLUMNS}, mm.role AS member_role FROM meetings m \
             JOIN meeting_members mm ON mm.meeting_id = m.id \
             WHERE mm.user_id = $1 ORDER BY m.starts_at, m.id"
        ))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let role = member_role(r.try_get("member_role")?)?
                    .ok_or(StoreError::Corrupt("meeting member role"))?;
                Ok((meeting_from(r)?, role))
            })
            .collect()
    }

    /// A meeting's hosts and invitees.
    pub async fn members(&self, id: &MeetingId) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT mm.user_id, mm.role, u.name, u.display_name FROM meeting_members mm \
             JOIN users u ON u.id = mm.user_id WHERE mm.meeting_id = $1 \
             ORDER BY mm.role, u.display_name",
        )
        .bind(id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user_id: parse(r.try_get("user_id")?, "meeting member")?,
                    name: Pii(r.try_get("name")?),
                    display_name: Pii(r.try_get("display_name")?),
                    role: member_role(r.try_get("role")?)?
                        .ok_or(StoreError::Corrupt("meeting member role"))?,
                })
            })
            .collect()
    }

    // ---- join challenges ---------------------------------------------------

    /// Stores a fresh join challenge.
    pub async fn insert_challenge(
        &self,
        challenge: &str,
        user: &UserId,
        meeting: &str,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO join_challenges (challenge, user_id, meeting_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(challenge)
        .bind(user.to_string())
        .bind(meeting)
        .bind(expires_at.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Consumes a challenge: true if it existed for this user and meeting and was live.
    /// A challenge can be used once, whatever the outcome.
    pub async fn take_challenge(
        &self,
        challenge: &str,
        user: &UserId,
        meeting: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let row = sqlx::query(
            "DELETE FROM join_challenges WHERE challenge = $1 RETURNING user_id, meeting_id, expires_at",
        )
        .bind(challenge)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let owner: String = row.try_get("user_id")?;
        let for_meeting: String = row.try_get("meeting_id")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        Ok(owner == user.to_string() && for_meeting == meeting && expires_at > now.unix_millis())
    }

    // ---- audit log ---------------------------------------------------------

    /// Appends one entry (the caller has chained it).
    pub async fn append_audit(&self, e: &Entry) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_log (seq, time, actor, action, target, decision, reasons, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(seq_i64(e.seq)?)
        .bind(e.time.unix_millis())
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.decision)
        .bind(serde_json::to_string(&e.reasons).map_err(|_| StoreError::Corrupt("audit reasons"))?)
        .bind(e.prev_hash.to_string())
        .bind(e.hash.to_string())
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique)?;
        Ok(())
    }

    /// The newest entry.
    pub async fn last_audit_entry(&self) -> Result<Option<Entry>> {
        let row = sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(audit_from).transpose()
    }

    /// Up to `limit` entries with `seq > after`, ascending.
    pub async fn audit_entries(&self, after: u64, limit: u32) -> Result<Vec<Entry>> {
        let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(seq_i64(after)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from).collect()
    }

    /// Stores a signed head.
    pub async fn insert_audit_head(&self, head: &SignedHead) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_heads (seq, hash, signed_at, signature) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (seq) DO NOTHING",
        )
        .bind(seq_i64(head.seq)?)
        .bind(head.hash.to_string())
        .bind(head.signed_at.unix_millis())
        .bind(hex(&head.signature.0))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest signed head.
    pub async fn last_audit_head(&self) -> Result<Option<SignedHead>> {
        Ok(self
            .audit_heads_query("SELECT * FROM audit_heads ORDER BY seq DESC LIMIT 1")
            .await?
            .pop())
    }

    /// Every signed head, ascending.
    pub async fn audit_heads(&self) -> Result<Vec<SignedHead>> {
        self.audit_heads_query("SELECT * FROM audit_heads ORDER BY seq")
            .await
    }

    async fn audit_heads_query(&self, sql: &str) -> Result<Vec<SignedHead>> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get("seq")?;
                let signature: String = r.try_get("signature")?;
                Ok(SignedHead {
                    seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt("audit head"))?,
                    hash: parse::<Hash>(r.try_get("hash")?, "audit head")?,
                    signed_at: Timestamp::from_unix_millis(r.try_get("signed_at")?),
                    signature: HeadSignature(
                        unhex::<64>(&signature)
                            .ok_or(StoreError::Corrupt("audit head signature"))?,
                    ),
                })
            })
            .collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}
