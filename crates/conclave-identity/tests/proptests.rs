//! Property tests: parsers never panic on arbitrary input, and valid claims round-trip.

use conclave_identity::fuzzing::{fuzz_credential, fuzz_ticket};
use conclave_identity::{
    CredentialClaims, DeviceCredential, DeviceKey, JoinTicket, OrganisationKey, TicketClaims,
};
use conclave_types::{DeviceId, DeviceTrust, MeetingId, Timestamp, UserId};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    // At most 32 characters of at most 4 bytes each: never more than 128 bytes.
    "\\PC{1,32}"
}

prop_compose! {
    fn credential_claims()(
        organisation in name(),
        user_id in any::<[u8; 16]>(),
        user_name in name(),
        display_name in name(),
        device_id in any::<[u8; 16]>(),
        device_seed in any::<[u8; 32]>(),
        managed in any::<bool>(),
        issued_at in any::<i64>(),
        expires_at in any::<i64>(),
    ) -> CredentialClaims {
        CredentialClaims {
            organisation,
            user_id: UserId::from_bytes(user_id),
            user_name,
            display_name,
            device_id: DeviceId::from_bytes(device_id),
            device_key: DeviceKey::from_seed(&device_seed).public(),
            trust: if managed { DeviceTrust::Managed } else { DeviceTrust::Personal },
            issued_at: Timestamp::from_unix_millis(issued_at),
            expires_at: Timestamp::from_unix_millis(expires_at),
        }
    }
}

prop_compose! {
    fn ticket_claims()(
        user_id in any::<[u8; 16]>(),
        device_id in any::<[u8; 16]>(),
        meeting_id in any::<[u8; 16]>(),
        issued_at in any::<i64>(),
        expires_at in any::<i64>(),
        nonce in any::<[u8; 16]>(),
    ) -> TicketClaims {
        TicketClaims {
            user_id: UserId::from_bytes(user_id),
            device_id: DeviceId::from_bytes(device_id),
            meeting_id: MeetingId::from_bytes(meeting_id),
            issued_at: Timestamp::from_unix_millis(issued_at),
            expires_at: Timestamp::from_unix_millis(expires_at),
            nonce,
        }
    }
}

fn org() -> OrganisationKey {
    OrganisationKey::from_seed(&[7; 32])
}

proptest! {
    #[test]
    fn credential_parsers_never_panic_on_bytes(data in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let _ = DeviceCredential::from_bytes(&data);
        fuzz_credential(&data);
    }

    #[test]
    fn credential_parsers_never_panic_on_text(text in "\\PC{0,800}") {
        let _ = DeviceCredential::from_base64(&text);
        fuzz_credential(text.as_bytes());
    }

    #[test]
    fn credential_parsers_never_panic_on_base64_alphabet(text in "[A-Za-z0-9_-]{0,800}") {
        let _ = DeviceCredential::from_base64(&text);
        fuzz_credential(text.as_bytes());
    }

    #[test]
    fn ticket_parser_never_panics(text in "\\PC{0,300}") {
        let _ = JoinTicket::decode(&text);
        fuzz_ticket(text.as_bytes());
    }

    #[test]
    fn ticket_parser_never_panics_on_right_length_base64(text in "[A-Za-z0-9_-]{216}") {
        // Mostly fails on the magic; must not panic either way.
        let _ = JoinTicket::decode(&text);
        fuzz_ticket(text.as_bytes());
    }

    #[test]
    fn valid_credentials_round_trip(claims in credential_claims()) {
        let credential = org().issue_credential(claims.clone());
        let bytes = credential.to_bytes();
        prop_assert!(bytes.len() <= 557);
        let decoded = DeviceCredential::from_bytes(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &credential);
        prop_assert_eq!(decoded.to_bytes(), bytes);
        let text = credential.to_base64();
        prop_assert_eq!(DeviceCredential::from_base64(&text).expect("decodes"), credential.clone());
        fuzz_credential(&credential.to_bytes());
        if claims.issued_at < claims.expires_at {
            prop_assert_eq!(decoded.verify(&org().public(), claims.issued_at), Ok(&claims));
        }
    }

    #[test]
    fn mutated_credentials_never_verify(
        claims in credential_claims(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let credential = org().issue_credential(claims.clone());
        let mut bytes = credential.to_bytes();
        for (index, xor) in &edits {
            let i = index.index(bytes.len());
            bytes[i] ^= xor;
        }
        if bytes != credential.to_bytes() {
            if let Ok(edited) = DeviceCredential::from_bytes(&bytes) {
                prop_assert!(edited.verify(&org().public(), claims.issued_at).is_err());
            }
        }
    }

    #[test]
    fn valid_tickets_round_trip(claims in ticket_claims()) {
        let ticket = org().issue_ticket(claims.clone());
        let text = ticket.encode();
        prop_assert_eq!(text.len(), 216);
        let decoded = JoinTicket::decode(&text).expect("decodes");
        prop_assert_eq!(&decoded, &ticket);
        prop_assert_eq!(decoded.encode(), text);
        if claims.issued_at < claims.expires_at {
            prop_assert_eq!(decoded.verify(&org().public(), claims.issued_at), Ok(&claims));
        }
    }
}
