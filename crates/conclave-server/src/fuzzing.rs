//! Each function takes arbitrary bytes and must never panic. They return what they
//! accepted so that unit tests can check they are not vacuously rejecting everything.

use std::path::Path;

use crate::config::Config;

/// Feeds `data` to the JSON deserialisation of every request body type the API
/// accepts, as the `Json` extractor would, and returns the names of the types that
/// accepted it.
pub fn request_bodies(data: &[u8]) -> Vec<&'static str> {
    crate::api::parse_request_bodies(data)
        .into_iter()
        .filter_map(|(name, accepted)| accepted.then_some(name))
        .collect()
}

/// Parses `data` (if UTF-8) as `conclave.toml` with [`Config::from_toml`] and, when it
/// parses, resolves its profiles and validates it again. Returns the number of
/// resolved profiles of an accepted configuration, `None` when it was rejected.
///
/// # Panics
///
/// When an accepted configuration then fails [`Config::profiles`] or
/// [`Config::validate`]: that is a bug, since `from_toml` validates.
pub fn config(data: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(data).ok()?;
    let config = Config::from_toml(text, Path::new("fuzz.toml")).ok()?;
    let profiles = config.profiles();
    let valid = config.validate();
    // `from_toml` validated already, and validation resolves the profiles: an
    // accepted configuration that now fails either is a bug.
    assert!(
        valid.is_ok(),
        "accepted configuration fails validation: {valid:?}"
    );
    Some(
        profiles
            .expect("an accepted configuration resolves its profiles")
            .len(),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn request_bodies_never_panic_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            request_bodies(&data);
        }

        #[test]
        fn request_bodies_never_panic_on_json_ish_text(
            text in r#"\{("(name|password|display_name|role|title|starts_at|trust|credential|for_user|hosts)":("[a-z0-9:T+.-]{0,24}"|null|true|[0-9]{1,3}|\[\]|\{\}),?){0,6}\}"#,
        ) {
            request_bodies(text.as_bytes());
        }

        #[test]
        fn config_never_panics_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            config(&data);
        }

        #[test]
        fn config_never_panics_on_toml_ish_text(
            text in r#"(\[(server|tls|organisation|sessions|limits|devices|join|audit|networks|profiles\.[a-z]{1,8})\]\n([a-z_]{1,24} = ("[a-z0-9/:.]{0,20}"|[0-9]{1,6}|true|false|\[("[0-9./:a-f]{0,18}",?){0,3}\])\n){0,4}){0,4}"#,
        ) {
            config(text.as_bytes());
        }
    }

    #[test]
    fn valid_bodies_are_accepted_by_their_types() {
        let cases: &[(&str, &[&str])] = &[
            (
                r#"{"name":"alice","password":"correct horse"}"#,
                &["LoginRequest"],
            ),
            (
                r#"{"current_password":"a","new_password":"b"}"#,
                &["PasswordChange"],
            ),
            (
                r#"{"name":"bob","display_name":"Bob","role":"member"}"#,
                &["NewUser"],
            ),
            (r#"{"role":"admin","disabled":false}"#, &["UserUpdate"]),
            (
                r#"{"name":"laptop","public_key":"AAAA","enrolment_token":null}"#,
                &["NewDevice"],
            ),
            (r#"{"trust":"managed"}"#, &["DeviceUpdate"]),
            (r#"{"for_user":"bob"}"#, &["NewEnrolmentToken"]),
            (
                r#"{"title":"Board","classification":"secret",
                    "starts_at":"2026-11-23T09:30:00Z","ends_at":"2026-11-23T10:30:00+01:00"}"#,
                // Every field of a new meeting may also be changed.
                &["NewMeeting", "MeetingUpdate"],
            ),
            (
                r#"{"title":"Board","classification":"secret","locked":true}"#,
                &["MeetingUpdate"],
            ),
            (
                r#"{"credential":"c","challenge":"d","signature":"e"}"#,
                &["JoinBody"],
            ),
            // Every field optional: an empty object is a valid change of nothing.
            ("{}", &["UserUpdate", "NewEnrolmentToken", "MeetingUpdate"]),
            ("not json", &[]),
            (r#"{"name":"alice","password":"pw","extra":1}"#, &[]),
        ];
        for (body, expected) in cases {
            assert_eq!(request_bodies(body.as_bytes()), *expected, "body {body}");
        }
    }

    #[test]
    fn valid_configs_are_accepted() {
        assert_eq!(
            config(b""),
            Some(4),
            "the defaults: the four built-in profiles"
        );
        let example = include_str!("../../../conclave.example.toml");
        assert!(config(example.as_bytes()).is_some(), "the shipped example");
        assert_eq!(config(b"[server]\nlisten = []\n"), None);
        assert_eq!(config(b"\xff"), None, "not UTF-8");
    }
}
