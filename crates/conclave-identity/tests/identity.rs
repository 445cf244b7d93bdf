//! Behavioural tests of the identity authority: encodings, verification, expiry,
//! tampering and proof of possession.

use conclave_identity::fuzzing::{fuzz_credential, fuzz_ticket};
use conclave_identity::{
    join_challenge_message, CredentialClaims, CredentialError, DeviceCredential, DeviceKey,
    DevicePublicKey, JoinTicket, KeyError, KeyFileError, OrganisationKey, OrganisationPublicKey,
    PossessionError, TicketClaims, TicketError,
};
use conclave_types::{DeviceId, DeviceTrust, MeetingId, Timestamp, UserId};
use rand::SeedableRng;
use serde::de::IntoDeserializer;
use serde::Deserialize;

const ISSUED: i64 = 1_795_426_200_000;
const EXPIRES: i64 = ISSUED + 30 * 24 * 3600 * 1000;

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms)
}

fn org() -> OrganisationKey {
    OrganisationKey::from_seed(&[7; 32])
}

fn device() -> DeviceKey {
    DeviceKey::from_seed(&[9; 32])
}

fn claims(trust: DeviceTrust) -> CredentialClaims {
    CredentialClaims {
        organisation: "Example Ltd".into(),
        user_id: UserId::from_bytes([1; 16]),
        user_name: "alice".into(),
        display_name: "Alice Liddell ✓".into(),
        device_id: DeviceId::from_bytes([2; 16]),
        device_key: device().public(),
        trust,
        issued_at: ts(ISSUED),
        expires_at: ts(EXPIRES),
    }
}

fn credential() -> DeviceCredential {
    org().issue_credential(claims(DeviceTrust::Personal))
}

fn ticket_claims() -> TicketClaims {
    TicketClaims {
        user_id: UserId::from_bytes([1; 16]),
        device_id: DeviceId::from_bytes([2; 16]),
        meeting_id: MeetingId::from_bytes([3; 16]),
        issued_at: ts(ISSUED),
        expires_at: ts(ISSUED + 60_000),
        nonce: [4; 16],
    }
}

fn ticket() -> JoinTicket {
    org().issue_ticket(ticket_claims())
}

// ---------------------------------------------------------------- known answer

/// Pins the wire format the wasm client relies on. If this changes, every issued
/// credential and every client changes with it: bump the magic instead.
const FROZEN_CREDENTIAL: &str = "Y29uY2xhdmUtY3JlZGVudGlhbC12MQALRXhhbXBsZSBMdGQBAQEBAQEBAQEBAQEBAQEBAAVhbGljZQANQWxpY2UgTGlkZGVsbAICAgICAgICAgICAgICAgL9FyQ4WqDHW2T7eM1gL6HZkf3r92sTxY7XAurINen2GAEAAAGiB72pwAAAAaKiPHHA6R_PwvZz-5Yb2ewx-D78aRcCX_wmvapmma_n5FSohsvAiI6lRUzSaFnyT80BsFcOM09p_FtowB4-AnwuxKb2DQ";

#[test]
fn known_answer_credential_encoding_is_frozen() {
    let credential = org().issue_credential(CredentialClaims {
        organisation: "Example Ltd".into(),
        user_id: UserId::from_bytes([1; 16]),
        user_name: "alice".into(),
        display_name: "Alice Liddell".into(),
        device_id: DeviceId::from_bytes([2; 16]),
        device_key: DeviceKey::from_seed(&[9; 32]).public(),
        trust: DeviceTrust::Managed,
        issued_at: ts(1_795_426_200_000),
        expires_at: ts(1_798_018_200_000),
    });
    assert_eq!(credential.to_base64(), FROZEN_CREDENTIAL);
    let decoded = DeviceCredential::from_base64(FROZEN_CREDENTIAL).expect("frozen decodes");
    assert_eq!(decoded, credential);
    decoded
        .verify(&org().public(), ts(1_795_426_200_000))
        .expect("frozen verifies");
}

#[test]
fn known_answer_layout_matches_the_documentation() {
    let bytes = credential().to_bytes();
    let mut expected = Vec::new();
    expected.extend_from_slice(b"conclave-credential-v1");
    expected.extend_from_slice(&11u16.to_be_bytes());
    expected.extend_from_slice(b"Example Ltd");
    expected.extend_from_slice(&[1; 16]);
    expected.extend_from_slice(&5u16.to_be_bytes());
    expected.extend_from_slice(b"alice");
    let display = "Alice Liddell ✓".as_bytes();
    expected.extend_from_slice(&u16::try_from(display.len()).expect("short").to_be_bytes());
    expected.extend_from_slice(display);
    expected.extend_from_slice(&[2; 16]);
    expected.extend_from_slice(&device().public().to_bytes());
    expected.push(0);
    expected.extend_from_slice(&ISSUED.to_be_bytes());
    expected.extend_from_slice(&EXPIRES.to_be_bytes());
    assert_eq!(&bytes[..bytes.len() - 64], &expected[..]);
    assert_eq!(bytes.len(), expected.len() + 64);

    let signature =
        ed25519_dalek::Signature::from_bytes(bytes[expected.len()..].try_into().expect("64 bytes"));
    org()
        .public()
        .verifying_key()
        .verify_strict(&expected, &signature)
        .expect("signature is over everything before it");
}

#[test]
fn ticket_layout_matches_the_documentation() {
    use base64::Engine as _;
    let text = ticket().encode();
    assert_eq!(text.len(), 216);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&text)
        .expect("base64");
    let mut expected = Vec::new();
    expected.extend_from_slice(b"conclave-ticket-v1");
    expected.extend_from_slice(&[1; 16]);
    expected.extend_from_slice(&[2; 16]);
    expected.extend_from_slice(&[3; 16]);
    expected.extend_from_slice(&ISSUED.to_be_bytes());
    expected.extend_from_slice(&(ISSUED + 60_000).to_be_bytes());
    expected.extend_from_slice(&[4; 16]);
    assert_eq!(&bytes[..expected.len()], &expected[..]);
    assert_eq!(bytes.len(), expected.len() + 64);
}

// ---------------------------------------------------------------- round trips

#[test]
fn credential_round_trips_as_bytes_and_base64() {
    let credential = credential();
    let bytes = credential.to_bytes();
    assert_eq!(DeviceCredential::from_bytes(&bytes), Ok(credential.clone()));
    let text = credential.to_base64();
    assert!(text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(DeviceCredential::from_base64(&text), Ok(credential.clone()));
    assert_eq!(
        credential.verify(&org().public(), ts(ISSUED)),
        Ok(&claims(DeviceTrust::Personal))
    );
}

#[test]
fn credential_serde_uses_base64() {
    let credential = credential();
    let text = credential.to_base64();
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        text.as_str().into_deserializer();
    assert_eq!(DeviceCredential::deserialize(de), Ok(credential));
}

#[test]
fn ticket_round_trips() {
    let ticket = ticket();
    let text = ticket.encode();
    assert_eq!(JoinTicket::decode(&text), Ok(ticket.clone()));
    assert_eq!(ticket.claims(), &ticket_claims());
    assert_eq!(
        ticket.verify(&org().public(), ts(ISSUED)),
        Ok(&ticket_claims())
    );
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        text.as_str().into_deserializer();
    assert_eq!(JoinTicket::deserialize(de), Ok(ticket));
}

#[test]
fn key_file_round_trips() {
    let key = OrganisationKey::generate(&mut rand::rngs::StdRng::seed_from_u64(1));
    let text = key.to_file_text();
    assert!(text.starts_with("conclave-organisation-key-v1\n"));
    assert!(text.ends_with('\n'));
    assert_eq!(text.lines().count(), 2);
    let back = OrganisationKey::from_file_text(&text).expect("round trip");
    assert_eq!(back.public(), key.public());
    assert_eq!(back.signing_key().to_bytes(), key.signing_key().to_bytes());
}

#[test]
fn key_file_known_text() {
    let text = OrganisationKey::from_seed(&[0; 32]).to_file_text();
    assert_eq!(
        text.as_str(),
        "conclave-organisation-key-v1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    );
}

#[test]
fn key_file_tolerates_trailing_whitespace_and_crlf() {
    let key = org();
    let text = key.to_file_text();
    let body = text.trim_end();
    for variant in [
        body.to_string(),
        format!("{body}\n\n  \t\n"),
        text.replace('\n', "\r\n"),
    ] {
        let back = OrganisationKey::from_file_text(&variant).expect("tolerated");
        assert_eq!(back.public(), key.public(), "{variant:?}");
    }
}

#[test]
fn key_file_errors_are_precise() {
    let seed_b64 = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let good = format!("conclave-organisation-key-v1\n{seed_b64}\n");
    assert_eq!(
        OrganisationKey::from_file_text(&good)
            .expect("good")
            .public(),
        org().public()
    );
    let cases: [(&str, KeyFileError); 8] = [
        ("", KeyFileError::MissingHeader),
        (seed_b64, KeyFileError::MissingHeader),
        (
            "conclave-organisation-key-v2\nAAAA\n",
            KeyFileError::MissingHeader,
        ),
        (
            " conclave-organisation-key-v1\nAAAA\n",
            KeyFileError::MissingHeader,
        ),
        (
            "conclave-organisation-key-v1\n!!!!\n",
            KeyFileError::BadEncoding,
        ),
        // URL-safe or unpadded base64 is not the file format.
        (
            "conclave-organisation-key-v1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\n",
            KeyFileError::BadEncoding,
        ),
        (
            "conclave-organisation-key-v1\nAAAA\n",
            KeyFileError::WrongLength,
        ),
        (
            "conclave-organisation-key-v1\n\n",
            KeyFileError::WrongLength,
        ),
    ];
    for (text, error) in cases {
        assert_eq!(
            OrganisationKey::from_file_text(text).map(|k| k.public()),
            Err(error),
            "{text:?}"
        );
    }
}

#[test]
fn public_keys_round_trip_as_text() {
    let org_public = org().public();
    let text = org_public.to_string();
    assert_eq!(text.len(), 43);
    assert_eq!(text.parse::<OrganisationPublicKey>(), Ok(org_public));
    assert_eq!(
        OrganisationPublicKey::from_bytes(&org_public.to_bytes()),
        Ok(org_public)
    );

    let device_public = device().public();
    let text = device_public.to_string();
    assert_eq!(text.parse::<DevicePublicKey>(), Ok(device_public));
    let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
        text.as_str().into_deserializer();
    assert_eq!(DevicePublicKey::deserialize(de), Ok(device_public));

    assert_eq!("".parse::<DevicePublicKey>(), Err(KeyError::WrongLength));
    assert_eq!(
        "AAAA".parse::<DevicePublicKey>(),
        Err(KeyError::WrongLength)
    );
    assert_eq!(
        format!("{text}=").parse::<DevicePublicKey>(),
        Err(KeyError::BadEncoding)
    );
    assert_eq!(
        text.replace(|c: char| c.is_ascii_alphanumeric(), "+")
            .parse::<DevicePublicKey>(),
        Err(KeyError::BadEncoding)
    );
}

// ---------------------------------------------------------------- secrets stay secret

#[test]
fn debug_never_prints_secret_keys_or_names() {
    let org = org();
    let org_debug = format!("{org:?}");
    assert!(org_debug.contains(&org.public().to_string()), "{org_debug}");
    let seed_text = org.to_file_text();
    let seed_line = seed_text.lines().nth(1).expect("two lines");
    assert!(!org_debug.contains(seed_line.trim_end_matches('=')));
    assert!(!org_debug.contains("7, 7, 7"));

    let device = device();
    let device_debug = format!("{device:?}");
    assert!(device_debug.contains(&device.public().to_string()));
    assert!(!device_debug.contains("9, 9, 9"));

    let credential_debug = format!("{:?}", credential());
    assert!(!credential_debug.contains("alice"), "{credential_debug}");
    assert!(!credential_debug.contains("Liddell"), "{credential_debug}");
    assert!(credential_debug.contains("Example Ltd"));
}

// ---------------------------------------------------------------- verification

#[test]
fn another_organisation_cannot_vouch() {
    let other = OrganisationKey::from_seed(&[8; 32]).public();
    assert_eq!(
        credential().verify(&other, ts(ISSUED)),
        Err(CredentialError::BadSignature)
    );
    assert_eq!(
        ticket().verify(&other, ts(ISSUED)),
        Err(TicketError::BadSignature)
    );
}

#[test]
fn credential_validity_window_is_half_open() {
    let c = credential();
    let org = org().public();
    assert!(c.verify(&org, ts(ISSUED)).is_ok());
    assert!(c.verify(&org, ts(EXPIRES - 1)).is_ok());
    assert_eq!(c.verify(&org, ts(EXPIRES)), Err(CredentialError::Expired));
    assert_eq!(c.verify(&org, ts(i64::MAX)), Err(CredentialError::Expired));
    assert_eq!(
        c.verify(&org, ts(ISSUED - 1)),
        Err(CredentialError::NotYetValid)
    );
    assert_eq!(
        c.verify(&org, ts(i64::MIN)),
        Err(CredentialError::NotYetValid)
    );
}

#[test]
fn ticket_validity_window_is_half_open() {
    let t = ticket();
    let org = org().public();
    assert!(t.verify(&org, ts(ISSUED)).is_ok());
    assert!(t.verify(&org, ts(ISSUED + 59_999)).is_ok());
    assert_eq!(
        t.verify(&org, ts(ISSUED + 60_000)),
        Err(TicketError::Expired)
    );
    assert_eq!(
        t.verify(&org, ts(ISSUED - 1)),
        Err(TicketError::NotYetValid)
    );
}

#[test]
fn signature_is_checked_before_time() {
    let other = OrganisationKey::from_seed(&[8; 32]).public();
    assert_eq!(
        credential().verify(&other, ts(i64::MAX)),
        Err(CredentialError::BadSignature)
    );
}

#[test]
fn every_bit_flip_of_a_credential_is_rejected() {
    let org = org().public();
    let bytes = credential().to_bytes();
    let mut malformed = 0;
    let mut bad_signature = 0;
    for i in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        match DeviceCredential::from_bytes(&flipped) {
            Err(CredentialError::Malformed(_)) => malformed += 1,
            Err(e) => panic!("bit {i}: unexpected {e:?}"),
            Ok(c) => {
                assert_eq!(
                    c.verify(&org, ts(ISSUED)),
                    Err(CredentialError::BadSignature),
                    "bit {i}"
                );
                bad_signature += 1;
            }
        }
    }
    assert!(malformed > 0 && bad_signature > 0);
}

#[test]
fn every_bit_flip_of_a_credential_text_is_rejected() {
    let org = org().public();
    let text = credential().to_base64().into_bytes();
    for i in 0..text.len() * 8 {
        let mut flipped = text.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        let Ok(flipped) = std::str::from_utf8(&flipped) else {
            continue;
        };
        if let Ok(c) = DeviceCredential::from_base64(flipped) {
            assert_eq!(
                c.verify(&org, ts(ISSUED)),
                Err(CredentialError::BadSignature),
                "bit {i}"
            );
        }
    }
}

#[test]
fn every_bit_flip_of_a_ticket_is_rejected() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let org = org().public();
    let bytes = URL_SAFE_NO_PAD.decode(ticket().encode()).expect("base64");
    for i in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        match JoinTicket::decode(&URL_SAFE_NO_PAD.encode(&flipped)) {
            Err(TicketError::Malformed(_)) => assert!(i < 18 * 8, "bit {i}"),
            Err(e) => panic!("bit {i}: unexpected {e:?}"),
            Ok(t) => assert_eq!(
                t.verify(&org, ts(ISSUED)),
                Err(TicketError::BadSignature),
                "bit {i}"
            ),
        }
    }
    let text = ticket().encode().into_bytes();
    for i in 0..text.len() * 8 {
        let mut flipped = text.clone();
        flipped[i / 8] ^= 1 << (i % 8);
        let Ok(flipped) = std::str::from_utf8(&flipped) else {
            continue;
        };
        if let Ok(t) = JoinTicket::decode(flipped) {
            assert_eq!(
                t.verify(&org, ts(ISSUED)),
                Err(TicketError::BadSignature),
                "bit {i}"
            );
        }
    }
}

#[test]
fn truncated_credentials_are_malformed_at_every_length() {
    let bytes = credential().to_bytes();
    for len in 0..bytes.len() {
        assert!(
            matches!(
                DeviceCredential::from_bytes(&bytes[..len]),
                Err(CredentialError::Malformed(_))
            ),
            "length {len}"
        );
    }
    let text = credential().to_base64();
    for len in 0..text.len() {
        assert!(
            matches!(
                DeviceCredential::from_base64(&text[..len]),
                Err(CredentialError::Malformed(_))
            ),
            "length {len}"
        );
    }
}

#[test]
fn truncated_tickets_are_malformed_at_every_length() {
    let text = ticket().encode();
    for len in 0..text.len() {
        assert_eq!(
            JoinTicket::decode(&text[..len]),
            Err(TicketError::Malformed("length")),
            "length {len}"
        );
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = credential().to_bytes();
    bytes.push(0);
    assert_eq!(
        DeviceCredential::from_bytes(&bytes),
        Err(CredentialError::Malformed("trailing bytes"))
    );
    let text = ticket().encode();
    assert_eq!(
        JoinTicket::decode(&format!("{text}A")),
        Err(TicketError::Malformed("length"))
    );
    assert_eq!(
        JoinTicket::decode(&format!("{text}AAAA")),
        Err(TicketError::Malformed("length"))
    );
}

#[test]
fn non_canonical_base64_is_rejected() {
    let text = credential().to_base64();
    assert!(DeviceCredential::from_base64(&format!("{text}=")).is_err());
    let standard = text.replace('-', "+").replace('_', "/");
    if standard != text {
        assert!(DeviceCredential::from_base64(&standard).is_err());
    }
}

#[test]
fn oversized_credentials_are_refused_before_parsing() {
    assert_eq!(
        DeviceCredential::from_bytes(&[0; 1025]),
        Err(CredentialError::TooLarge)
    );
    assert_eq!(
        DeviceCredential::from_base64(&"A".repeat(5000)),
        Err(CredentialError::TooLarge)
    );
    assert!(matches!(
        DeviceCredential::from_bytes(&[0; 1024]),
        Err(CredentialError::Malformed("magic"))
    ));
}

#[test]
fn personal_credential_cannot_be_promoted_to_managed() {
    let personal = credential();
    let mut bytes = personal.to_bytes();
    let trust_at = bytes.len() - 64 - 16 - 1;
    assert_eq!(bytes[trust_at], 0);
    bytes[trust_at] = 1;
    let edited = DeviceCredential::from_bytes(&bytes).expect("still well-formed");
    assert_eq!(edited.claims().trust, DeviceTrust::Managed);
    assert_eq!(
        edited.verify(&org().public(), ts(ISSUED)),
        Err(CredentialError::BadSignature)
    );
    for unknown in [2u8, 0x80, 0xff] {
        bytes[trust_at] = unknown;
        assert_eq!(
            DeviceCredential::from_bytes(&bytes),
            Err(CredentialError::Malformed("trust"))
        );
    }
}

#[test]
fn managed_credentials_round_trip() {
    let managed = org().issue_credential(claims(DeviceTrust::Managed));
    let back = DeviceCredential::from_bytes(&managed.to_bytes()).expect("decodes");
    assert_eq!(
        back.verify(&org().public(), ts(ISSUED))
            .expect("valid")
            .trust,
        DeviceTrust::Managed
    );
}

#[test]
fn name_limits_are_enforced_when_issuing_and_parsing() {
    let org = org();
    for (field, edit) in [
        ("organisation", 0usize),
        ("user_name", 1),
        ("display_name", 2),
    ] {
        for bad in [String::new(), "x".repeat(129)] {
            let mut c = claims(DeviceTrust::Personal);
            match edit {
                0 => c.organisation = bad.clone(),
                1 => c.user_name = bad.clone(),
                _ => c.display_name = bad.clone(),
            }
            assert_eq!(c.check(), Err(CredentialError::Malformed(field)));
            assert_eq!(
                org.try_issue_credential(c),
                Err(CredentialError::Malformed(field))
            );
        }
    }
    let mut longest = claims(DeviceTrust::Personal);
    longest.organisation = "é".repeat(64);
    longest.user_name = "u".repeat(128);
    longest.display_name = "d".repeat(128);
    let c = org.issue_credential(longest);
    assert_eq!(c.to_bytes().len(), 557);
    assert_eq!(DeviceCredential::from_bytes(&c.to_bytes()), Ok(c));
}

#[test]
#[should_panic(expected = "1..=128-byte")]
fn issue_credential_panics_on_claims_that_cannot_be_encoded() {
    let mut c = claims(DeviceTrust::Personal);
    c.user_name.clear();
    let _ = org().issue_credential(c);
}

#[test]
fn invalid_utf8_names_are_malformed() {
    let mut bytes = credential().to_bytes();
    let org_name_at = b"conclave-credential-v1".len() + 2;
    bytes[org_name_at] = 0xff;
    assert_eq!(
        DeviceCredential::from_bytes(&bytes),
        Err(CredentialError::Malformed("organisation"))
    );
}

#[test]
fn weak_device_keys_in_credentials_are_malformed() {
    let mut bytes = credential().to_bytes();
    let key_at = bytes.len() - 64 - 16 - 1 - 32;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    bytes[key_at..key_at + 32].copy_from_slice(&identity);
    assert_eq!(
        DeviceCredential::from_bytes(&bytes),
        Err(CredentialError::Malformed("device_key"))
    );
}

// ---------------------------------------------------------------- device keys

#[test]
fn small_order_device_keys_are_rejected() {
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(
        DevicePublicKey::from_bytes(&identity),
        Err(KeyError::WeakKey)
    );
    // The point of order 2, (0, -1).
    let mut minus_one = [0xff_u8; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    assert_eq!(
        DevicePublicKey::from_bytes(&minus_one),
        Err(KeyError::WeakKey)
    );
    assert_eq!(
        OrganisationPublicKey::from_bytes(&identity),
        Err(KeyError::WeakKey)
    );
}

#[test]
fn device_key_length_and_point_are_checked() {
    assert_eq!(DevicePublicKey::from_bytes(&[]), Err(KeyError::WrongLength));
    assert_eq!(
        DevicePublicKey::from_bytes(&[5; 31]),
        Err(KeyError::WrongLength)
    );
    assert_eq!(
        DevicePublicKey::from_bytes(&[5; 33]),
        Err(KeyError::WrongLength)
    );
    // y = p + 1 is a non-canonical encoding of y = 1.
    let mut non_canonical = [0xff_u8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert_eq!(
        DevicePublicKey::from_bytes(&non_canonical),
        Err(KeyError::InvalidPoint)
    );
    // Some small y values are not on the curve at all.
    let off_curve = (2u8..64).any(|y| {
        let mut bytes = [0u8; 32];
        bytes[0] = y;
        DevicePublicKey::from_bytes(&bytes) == Err(KeyError::InvalidPoint)
    });
    assert!(off_curve);
    let public = device().public();
    assert_eq!(DevicePublicKey::from_bytes(&public.to_bytes()), Ok(public));
}

#[test]
fn generated_keys_differ_and_round_trip() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let a = DeviceKey::generate(&mut rng);
    let b = DeviceKey::generate(&mut rng);
    assert_ne!(a.public(), b.public());
    assert_eq!(
        DevicePublicKey::from_bytes(&a.public().to_bytes()),
        Ok(a.public())
    );
}

// ---------------------------------------------------------------- proof of possession

#[test]
fn join_challenge_message_layout() {
    let meeting = MeetingId::from_bytes([3; 16]);
    let message = join_challenge_message(&meeting, &[5; 32]);
    assert_eq!(message.len(), 26 + 16 + 32);
    assert!(message.starts_with(b"conclave-join-challenge-v1"));
    assert_eq!(&message[26..42], &[3; 16]);
    assert_eq!(&message[42..], &[5; 32]);
}

#[test]
fn proof_of_possession() {
    let device = device();
    let public = device.public();
    let meeting = MeetingId::from_bytes([3; 16]);
    let challenge = [5u8; 32];
    let signature = device.sign_join_challenge(&meeting, &challenge);

    assert_eq!(
        public.verify_join_challenge(&meeting, &challenge, &signature),
        Ok(())
    );
    assert_eq!(
        public.verify_join_challenge(&MeetingId::from_bytes([4; 16]), &challenge, &signature),
        Err(PossessionError::BadSignature)
    );
    assert_eq!(
        public.verify_join_challenge(&meeting, &[6; 32], &signature),
        Err(PossessionError::BadSignature)
    );
    let other = DeviceKey::from_seed(&[10; 32]).public();
    assert_eq!(
        other.verify_join_challenge(&meeting, &challenge, &signature),
        Err(PossessionError::BadSignature)
    );
    assert_eq!(
        public.verify_join_challenge(&meeting, &challenge, &signature[..63]),
        Err(PossessionError::MalformedSignature)
    );
    let mut longer = signature.to_vec();
    longer.push(0);
    assert_eq!(
        public.verify_join_challenge(&meeting, &challenge, &longer),
        Err(PossessionError::MalformedSignature)
    );
    assert_eq!(
        public.verify_join_challenge(&meeting, &challenge, &[]),
        Err(PossessionError::MalformedSignature)
    );
    for i in 0..64 * 8 {
        let mut flipped = signature;
        flipped[i / 8] ^= 1 << (i % 8);
        assert_eq!(
            public.verify_join_challenge(&meeting, &challenge, &flipped),
            Err(PossessionError::BadSignature),
            "bit {i}"
        );
    }
}

#[test]
fn organisation_signatures_are_not_proofs_of_possession() {
    // A credential or ticket signature must never double as a join-challenge answer:
    // the domain-separation prefixes differ.
    let org = org();
    let org_as_device = DevicePublicKey::from_bytes(&org.public().to_bytes()).expect("valid");
    let bytes = credential().to_bytes();
    let signature = &bytes[bytes.len() - 64..];
    let meeting = MeetingId::from_bytes([3; 16]);
    assert_eq!(
        org_as_device.verify_join_challenge(&meeting, &[0; 32], signature),
        Err(PossessionError::BadSignature)
    );
}

// ---------------------------------------------------------------- fuzz entry points

#[test]
fn fuzz_entry_points_accept_valid_and_junk_input() {
    fuzz_credential(&credential().to_bytes());
    fuzz_credential(credential().to_base64().as_bytes());
    fuzz_ticket(ticket().encode().as_bytes());
    for junk in [&b""[..], b"\xff\xfe", b"conclave-credential-v1", &[0; 2000]] {
        fuzz_credential(junk);
        fuzz_ticket(junk);
    }
}
