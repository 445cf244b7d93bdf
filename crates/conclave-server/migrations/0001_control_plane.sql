-- Conclave control plane: users, sessions, devices, meetings, join challenges, audit log.
--
-- Portable SQL on purpose (SQLite now, PostgreSQL for multi-node later): identifiers
-- are TEXT, times are BIGINT milliseconds since the Unix epoch (UTC), booleans are
-- BOOLEAN, and nothing relies on SQLite's rowid or type affinity.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'organiser', 'member', 'auditor')),
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    public_key  TEXT NOT NULL UNIQUE,
    trust       TEXT NOT NULL CHECK (trust IN ('personal', 'managed')),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX devices_user ON devices (user_id);

CREATE TABLE enrolment_tokens (
    token_hash  TEXT PRIMARY KEY,
    created_by  TEXT NOT NULL REFERENCES users (id),
    for_user    TEXT REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    used_by     TEXT REFERENCES devices (id)
);

CREATE TABLE meetings (
    id              TEXT PRIMARY KEY,
    organiser_id    TEXT NOT NULL REFERENCES users (id),
    title           TEXT NOT NULL,
    agenda          TEXT NOT NULL,
    classification  TEXT NOT NULL,
    starts_at       BIGINT NOT NULL,
    ends_at         BIGINT NOT NULL,
    cancelled_at    BIGINT,
    locked          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE meeting_members (
    meeting_id  TEXT NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id),
    role        TEXT NOT NULL CHECK (role IN ('host', 'invitee')),
    PRIMARY KEY (meeting_id, user_id)
);
CREATE INDEX meeting_members_user ON meeting_members (user_id);

CREATE TABLE join_challenges (
    challenge   TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    meeting_id  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- Append-only. Entries are hash-chained (see crates/conclave-audit); the triggers
-- only stop accidents, the chain and the signed heads are what detect tampering.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    time       BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    decision   TEXT NOT NULL,
    reasons    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

CREATE TABLE audit_heads (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    signed_at  BIGINT NOT NULL,
    signature  TEXT NOT NULL
);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
