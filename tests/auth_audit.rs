//! The audit hash chain through the public API: a sealed chain verifies, and each kind of
//! tampering (edit, delete, insert, reorder) is found at the right position.

use palisade::audit::{
    actions, verify_chain, verify_chain_from, AuditChain, AuditDecision, AuditEvent, ChainBreak,
    ChainError, UnsealedEvent, GENESIS_HASH,
};

fn unsealed(index: u64) -> UnsealedEvent {
    UnsealedEvent {
        time_ms: 1_764_400_000_000 + index,
        broker: 1,
        request_id: format!("req-{index}"),
        principal: if index % 3 == 0 {
            None
        } else {
            Some("alice".to_string())
        },
        source: "127.0.0.1".to_string(),
        action: actions::LOGIN.to_string(),
        resource: "user/alice".to_string(),
        decision: if index % 2 == 0 {
            AuditDecision::Success
        } else {
            AuditDecision::Failure
        },
        status: if index % 2 == 0 { 200 } else { 401 },
        detail: None,
    }
}

fn sealed_chain(count: u64) -> Vec<AuditEvent> {
    let mut chain = AuditChain::new();
    (0..count)
        .map(|index| chain.seal(unsealed(index)))
        .collect()
}

fn position_and_kind(result: Result<usize, ChainError>) -> (usize, &'static str) {
    match result {
        Ok(count) => panic!("tampering not detected; {count} events verified"),
        Err(ChainError { position, reason }) => (
            position,
            match reason {
                ChainBreak::HashMismatch { .. } => "hash",
                ChainBreak::BrokenLink { .. } => "link",
            },
        ),
    }
}

#[test]
fn an_untouched_chain_verifies() {
    let events = sealed_chain(10);
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    assert_eq!(events[0].prev_hash.len(), 64);
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(verify_chain(&events), Ok(10));
    assert_eq!(verify_chain(&[]), Ok(0));
}

#[test]
fn events_round_trip_through_json_and_still_verify() {
    let events = sealed_chain(5);
    let json = serde_json::to_string(&events).unwrap();
    assert!(json.contains(r#""decision":"failure""#), "{json}");
    let back: Vec<AuditEvent> = serde_json::from_str(&json).unwrap();
    assert_eq!(verify_chain(&back), Ok(5));
}

#[test]
fn an_edited_event_is_detected_at_its_position() {
    let mut events = sealed_chain(10);
    assert_eq!(events[4].decision, AuditDecision::Success);
    events[4].status = 401;
    events[4].decision = AuditDecision::Failure;
    assert_eq!(position_and_kind(verify_chain(&events)), (4, "hash"));

    let mut events = sealed_chain(10);
    events[6].principal = Some("mallory".to_string());
    assert_eq!(position_and_kind(verify_chain(&events)), (6, "hash"));
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let mut events = sealed_chain(10);
    events[3].detail = Some("rewritten".to_string());
    events[3].hash = events[3].expected_hash();
    assert_eq!(position_and_kind(verify_chain(&events)), (4, "link"));
}

#[test]
fn a_deleted_event_is_detected() {
    let mut events = sealed_chain(10);
    events.remove(5);
    assert_eq!(position_and_kind(verify_chain(&events)), (5, "link"));
    let mut events = sealed_chain(10);
    events.remove(0);
    assert_eq!(position_and_kind(verify_chain(&events)), (0, "link"));
}

#[test]
fn an_inserted_event_is_detected() {
    let mut events = sealed_chain(10);
    // A forged event correctly sealed after event 2 still breaks event 3's link.
    let forged = AuditChain::resume(&events[2].hash).seal(unsealed(99));
    events.insert(3, forged);
    assert_eq!(position_and_kind(verify_chain(&events)), (4, "link"));
}

#[test]
fn reordered_events_are_detected() {
    let mut events = sealed_chain(10);
    events.swap(2, 7);
    assert_eq!(position_and_kind(verify_chain(&events)), (2, "link"));
}

#[test]
fn a_resumed_chain_continues_and_segments_verify_from_their_anchor() {
    let mut events = sealed_chain(4);
    let mut resumed = AuditChain::resume(&events[3].hash);
    events.push(resumed.seal(unsealed(4)));
    assert_eq!(resumed.last_hash(), events[4].hash);
    assert_eq!(verify_chain(&events), Ok(5));
    assert_eq!(verify_chain_from(&events[1].hash, &events[2..]), Ok(3));
    assert_eq!(
        position_and_kind(verify_chain_from(&events[0].hash, &events[2..])),
        (0, "link")
    );
}

#[test]
fn field_boundaries_are_unambiguous() {
    // Moving characters between adjacent fields must change the hash.
    let mut first = unsealed(1);
    first.source = "ab".to_string();
    first.action = "c".to_string();
    let mut second = unsealed(1);
    second.source = "a".to_string();
    second.action = "bc".to_string();
    let mut chain = AuditChain::new();
    let hash_first = chain.seal(first).hash;
    let hash_second = AuditChain::new().seal(second).hash;
    assert_ne!(hash_first, hash_second);
    let mut absent = unsealed(1);
    absent.detail = None;
    let mut empty = unsealed(1);
    empty.detail = Some(String::new());
    assert_ne!(
        AuditChain::new().seal(absent).hash,
        AuditChain::new().seal(empty).hash
    );
}
