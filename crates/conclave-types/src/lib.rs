//! Domain identifiers and small value types shared by every Conclave crate.
//!
//! Nothing here does I/O or reads a clock: these are the nouns the pure cores
//! (policy, audit, identity) and the server speak in. Identifiers are newtypes so
//! that a meeting id can never be passed where a device id is expected, and user
//! names and network addresses travel in [`Pii`] so that a stray `{:?}` in a log
//! line prints `[redacted]` rather than a person or a place.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that must not appear in logs: a user name, an e-mail address, an IP address.
///
/// `Debug` and `Display` print `[redacted]`; code that really needs the value (the
/// database layer, the policy engine, the audit log) calls [`Pii::expose`] and so says
/// so where it happens.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(pub T);

impl<T> Pii<T> {
    /// The wrapped value, for the places that are allowed to see it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Not 22 characters of unpadded URL-safe base64.
    #[error("an identifier is 22 characters of URL-safe base64")]
    Malformed,
}

macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 128 random bits, written as 22 characters of unpadded URL-safe base64.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// Wraps 16 bytes, which the caller draws from a cryptographic RNG.
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(bytes)
            }

            /// The raw 16 bytes.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 22 {
                    return Err(IdError::Malformed);
                }
                let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| IdError::Malformed)?;
                let bytes: [u8; 16] = bytes.try_into().map_err(|_| IdError::Malformed)?;
                Ok(Self(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// A meeting. Unguessable: knowing it is the only way to address a meeting.
    MeetingId
);
random_id!(
    /// A user account of the organisation.
    UserId
);
random_id!(
    /// A device (a browser profile or a native client) registered by a user.
    DeviceId
);
random_id!(
    /// One seat in one call: a device's presence in a meeting's call, from admission until
    /// it leaves or is removed. A device that rejoins later gets a new one.
    ParticipantId
);

/// A point in wall-clock time, milliseconds since the Unix epoch (UTC).
///
/// The pure crates never read the clock; the server passes `Timestamp::now()`-like
/// values in. Serialised as RFC 3339 text, which is what people and other tools read.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(d)))
    }

    /// `self - d`, saturating at the far past.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_millis(d)))
    }

    /// RFC 3339 text, e.g. `2026-11-23T09:30:00Z` (milliseconds shown when not zero).
    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
            Ok(t) => t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| self.0.to_string()),
            Err(_) => self.0.to_string(),
        }
    }

    /// Parses RFC 3339 text with an explicit offset.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| TimestampError::Malformed)?;
        // Only times that also print as RFC 3339 in UTC, so every parsed value
        // serialises back to text that parses.
        let utc_year = t.checked_to_offset(time::UtcOffset::UTC).map(|u| u.year());
        if !utc_year.is_some_and(|y| (1..=9999).contains(&y)) {
            return Err(TimestampError::Malformed);
        }
        let ms = t.unix_timestamp_nanos().div_euclid(1_000_000);
        i64::try_from(ms)
            .map(Self)
            .map_err(|_| TimestampError::Malformed)
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a string is not a valid timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimestampError {
    /// Not RFC 3339 date-time text with an offset.
    #[error("expected an RFC 3339 date-time such as 2026-11-23T09:30:00Z")]
    Malformed,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// How much the organisation trusts a device.
///
/// Ordered: `Managed` satisfies a requirement of `Personal`, not the other way round.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceTrust {
    /// Registered by its user; nobody vouches for the machine.
    Personal,
    /// Issued or approved by an administrator (or enrolled with an admin-issued token).
    Managed,
}

impl DeviceTrust {
    /// The lower-case name used in configuration, the API and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Managed => "managed",
        }
    }
}

impl FromStr for DeviceTrust {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "personal" => Ok(Self::Personal),
            "managed" => Ok(Self::Managed),
            _ => Err(UnknownName),
        }
    }
}

impl fmt::Display for DeviceTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's role in the organisation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, devices and enrolment; can do what an organiser can.
    Admin,
    /// Schedules meetings.
    Organiser,
    /// Joins meetings they are invited to.
    Member,
    /// Reads and exports the audit log; nothing else.
    Auditor,
}

impl Role {
    /// The lower-case name used in the CLI, the API and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Organiser => "organiser",
            Self::Member => "member",
            Self::Auditor => "auditor",
        }
    }

    /// Whether this role may schedule meetings.
    pub const fn can_organise(self) -> bool {
        matches!(self, Self::Admin | Self::Organiser)
    }
}

impl FromStr for Role {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "organiser" => Ok(Self::Organiser),
            "member" => Ok(Self::Member),
            "auditor" => Ok(Self::Auditor),
            _ => Err(UnknownName),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the allowed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not one of the allowed names")]
pub struct UnknownName;

/// A meeting's classification: the name of the policy profile that governs who may
/// join it, from which devices and from which networks (`open`, `internal`,
/// `confidential`, `secret` by default; organisations may define their own).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct Classification(String);

/// Why a string is not a valid classification name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClassificationError {
    /// Empty, too long, or not made of `a-z`, `0-9`, `-` and `_`.
    #[error("a classification is 1-32 characters of a-z, 0-9, '-' and '_'")]
    Malformed,
}

impl Classification {
    /// Validates a classification name.
    pub fn new(name: impl Into<String>) -> Result<Self, ClassificationError> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(name))
        } else {
            Err(ClassificationError::Malformed)
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Classification {
    type Err = ClassificationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Classification {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_as_22_url_safe_characters() {
        let id = MeetingId::from_bytes([0xfb; 16]);
        let text = id.to_string();
        assert_eq!(text.len(), 22);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(text.parse::<MeetingId>(), Ok(id));
    }

    #[test]
    fn ids_reject_wrong_lengths_and_alphabets() {
        for bad in [
            "",
            "abc",
            "+++++++++++++++++++++w",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            "é",
        ] {
            assert_eq!(bad.parse::<MeetingId>(), Err(IdError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn pii_never_prints_its_value() {
        let name = Pii("alice@example.org".to_string());
        assert_eq!(format!("{name} {name:?}"), "[redacted] [redacted]");
        assert_eq!(name.expose(), "alice@example.org");
    }

    #[test]
    fn timestamps_serialise_as_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-23T09:30:00Z").expect("valid");
        assert_eq!(t.unix_millis(), 1_795_426_200_000);
        assert_eq!(
            serde_json::to_string(&t).expect("json"),
            "\"2026-11-23T09:30:00Z\""
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn every_parsed_timestamp_prints_back_as_text_that_parses() {
        for text in ["0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59"] {
            assert!(
                Timestamp::parse_rfc3339(text).is_err(),
                "{text} is outside 0001-9999 UTC"
            );
        }
        let before_1970 = Timestamp::parse_rfc3339("1969-12-31T23:59:59.9999Z").expect("valid");
        assert_eq!(
            before_1970.unix_millis(),
            -1,
            "rounded down, not towards zero"
        );
        for text in [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            "1969-12-31T23:59:59.9999Z",
        ] {
            let t = Timestamp::parse_rfc3339(text).expect("valid");
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Ok(t), "{text}");
        }
    }

    #[test]
    fn classification_names_are_restricted() {
        assert!(Classification::new("secret").is_ok());
        assert!(Classification::new("nato_restricted-2").is_ok());
        for bad in ["", "Secret", "top secret", &"x".repeat(33)] {
            assert!(Classification::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn managed_outranks_personal() {
        assert!(DeviceTrust::Managed > DeviceTrust::Personal);
    }
}
