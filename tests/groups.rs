//! Consumer groups on one real broker: sharing partitions, handing them over on leave and on
//! session expiry without skipping a record, stale-generation commits, durable offsets, and the
//! precise errors of bad calls.

mod common;
mod groups_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{BrokerProcess, RawApi};
use groups_support::*;
use palisade::wire::OffsetCommit;

const PARTITIONS: u32 = 6;
const PER_PARTITION: u32 = 50;

fn ends(topic: &str) -> BTreeMap<(String, u32), u64> {
    (0..PARTITIONS)
        .map(|p| ((topic.to_string(), p), u64::from(PER_PARTITION)))
        .collect()
}

/// Polls and commits a few records at a time until `member` got nothing for one long poll.
async fn drain(member: &mut TestMember, consumed: &mut Consumed) {
    loop {
        let poll = member.poll(40, 300).await.expect("poll");
        if poll.records.is_empty() {
            return;
        }
        consumed.extend(record_positions(&poll));
        member.commit(poll.next_offsets).await.expect("commit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_partitions_and_a_leaver_hands_over_at_its_committed_offsets() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("orders", PARTITIONS, 1))
        .await
        .expect("topic");
    produce_numbered(&admin, "orders", PARTITIONS, PER_PARTITION).await;

    let mut a = TestMember::join(&admin, "billing", &["orders"], 30_000).await;
    assert_eq!(
        a.member.assignments.len(),
        6,
        "a lone member holds every partition"
    );
    let first_generation = a.member.generation;
    let mut b = TestMember::join(&admin, "billing", &["orders"], 30_000).await;
    assert_eq!(b.member.assignments.len(), 3);
    assert!(b.member.generation > first_generation);

    // a still believes in its old generation: its commit is refused and nothing is stored.
    let stale = a
        .commit(vec![OffsetCommit {
            topic: "orders".into(),
            partition: 0,
            offset: 5,
        }])
        .await
        .expect_err("stale generation");
    assert_eq!(stale.status(), Some(409), "{stale}");
    assert!(stale.to_string().contains("stale"), "{stale}");
    let described = admin.describe_group("billing").await.expect("describe");
    assert!(described
        .offsets
        .iter()
        .all(|o| o.committed_offset.is_none()));

    a.heartbeat().await.expect("heartbeat");
    assert_eq!(
        a.member.assignments.len(),
        3,
        "the heartbeat shows the rebalance"
    );
    assert!(a
        .member
        .assignments
        .iter()
        .all(|tp| !b.member.assignments.contains(tp)));
    // A partition of b is not a's to commit.
    let foreign = b.member.assignments[0].clone();
    let refused = a
        .commit(vec![OffsetCommit {
            topic: foreign.topic,
            partition: foreign.partition,
            offset: 1,
        }])
        .await
        .expect_err("not assigned");
    assert_eq!(refused.status(), Some(409), "{refused}");

    // a consumes part of its partitions and commits, then leaves.
    let mut consumed = Consumed::new();
    let poll = a.poll(60, 0).await.expect("poll");
    assert!(!poll.records.is_empty());
    assert!(poll.records.iter().all(|r| a
        .member
        .assignments
        .iter()
        .any(|tp| tp.partition == r.partition)));
    consumed.extend(record_positions(&poll));
    a.commit(poll.next_offsets.clone()).await.expect("commit");
    let committed_by_a: BTreeMap<u32, u64> = poll
        .next_offsets
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    // Records a fetched after its last commit are not committed: someone must see them again.
    let uncommitted = a.poll(30, 0).await.expect("poll");
    assert_eq!(
        uncommitted.records.first().map(|r| r.record.offset),
        Some(committed_by_a[&uncommitted.records[0].partition]),
        "a poll starts at the committed offset"
    );
    admin.leave_group("billing", a.id()).await.expect("leave");
    let gone = a.heartbeat().await.expect_err("left");
    assert_eq!(gone.status(), Some(404));

    b.heartbeat().await.expect("heartbeat");
    assert_eq!(
        b.member.assignments.len(),
        6,
        "b takes over every partition"
    );
    // b's first record of each of a's partitions is exactly a's committed offset.
    let mut first_seen: BTreeMap<u32, u64> = BTreeMap::new();
    let mut b_consumed = Consumed::new();
    drain(&mut b, &mut b_consumed).await;
    for (_, partition, offset) in &b_consumed {
        first_seen.entry(*partition).or_insert(*offset);
    }
    for (partition, offset) in &committed_by_a {
        assert_eq!(
            first_seen.get(partition),
            Some(offset),
            "partition {partition} resumes at a's commit"
        );
    }
    consumed.extend(b_consumed);
    check_at_least_once(&ends("orders"), &consumed).expect("no record skipped");

    for (action, count) in [("group.join", 2), ("group.leave", 1)] {
        let filters = palisade::wire::AuditFilters {
            action: Some(action.into()),
            ..Default::default()
        };
        let events = admin.audit(&filters).await.expect("audit");
        let here: Vec<_> = events
            .iter()
            .filter(|e| e.event.resource.starts_with("group:billing/"))
            .collect();
        assert_eq!(here.len(), count, "{action} events: {events:?}");
    }
    let described = admin.describe_group("billing").await.expect("describe");
    assert_eq!(described.members.len(), 1);
    for offset in &described.offsets {
        assert_eq!(offset.committed_offset, Some(u64::from(PER_PARTITION)));
        assert_eq!(offset.lag, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_expires_and_the_other_resumes_its_partitions() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("events", PARTITIONS, 1))
        .await
        .expect("topic");
    produce_numbered(&admin, "events", PARTITIONS, PER_PARTITION).await;
    let mut a = TestMember::join(&admin, "audit-readers", &["events"], 1_000).await;
    let mut b = TestMember::join(&admin, "audit-readers", &["events"], 30_000).await;
    a.heartbeat().await.expect("heartbeat");
    let mut consumed = Consumed::new();
    let poll = a.poll(45, 0).await.expect("poll");
    consumed.extend(record_positions(&poll));
    a.commit(poll.next_offsets).await.expect("commit");
    let a_partitions = a.member.assignments.clone();
    // a goes silent now.
    let silent_since = Instant::now();
    b.heartbeat_until(Duration::from_secs(20), |m| m.assignments.len() == 6)
        .await;
    let reassigned = silent_since.elapsed();
    let mut b_consumed = Consumed::new();
    drain(&mut b, &mut b_consumed).await;
    println!(
        "member expiry: session timeout 1000 ms; b held a's partitions {} ms after a's last call",
        reassigned.as_millis()
    );
    assert!(b_consumed
        .iter()
        .any(|(_, p, _)| a_partitions.iter().any(|tp| tp.partition == *p)));
    consumed.extend(b_consumed);
    check_at_least_once(&ends("events"), &consumed).expect("no record skipped");
    let expired = a.heartbeat().await.expect_err("expired");
    assert_eq!(expired.status(), Some(404));
    let events = admin
        .audit(&palisade::wire::AuditFilters {
            action: Some("group.expire".into()),
            ..Default::default()
        })
        .await
        .expect("audit");
    assert!(
        events
            .iter()
            .any(|e| e.event.resource == "group:audit-readers"),
        "expiry is audited: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_restart() {
    let mut broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("ledger", 2, 1))
        .await
        .expect("topic");
    produce_numbered(&admin, "ledger", 2, 20).await;
    let mut member = TestMember::join(&admin, "books", &["ledger"], 30_000).await;
    let poll = member.poll(20, 0).await.expect("poll");
    let committed: BTreeMap<u32, u64> = poll
        .next_offsets
        .iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    member.commit(poll.next_offsets).await.expect("commit");
    broker.terminate();
    broker.restart().await;
    let admin = broker.admin().await;
    let described = admin.describe_group("books").await.expect("describe");
    for offset in &described.offsets {
        assert_eq!(
            offset.committed_offset,
            committed.get(&offset.partition).copied(),
            "{offset:?}"
        );
    }
    // The member survived the restart too (its session clock started afresh); it leaves so the
    // new member holds every partition.
    assert_eq!(described.members.len(), 1);
    admin
        .leave_group("books", member.id())
        .await
        .expect("leave");
    let mut again = TestMember::join(&admin, "books", &["ledger"], 30_000).await;
    let poll = again.poll(1000, 0).await.expect("poll");
    for (partition, offset) in &committed {
        let first = poll
            .records
            .iter()
            .find(|r| r.partition == *partition)
            .map(|r| r.record.offset);
        assert_eq!(
            first,
            Some(*offset),
            "partition {partition} resumes at its committed offset"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reads_from_its_own_positions_while_its_commits_lag() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin
        .create_topic(&topic("pos", 2, 1))
        .await
        .expect("topic");
    produce_numbered(&admin, "pos", 2, 20).await;
    let mut member = TestMember::join(&admin, "readers", &["pos"], 30_000).await;
    let first = member.poll(10, 0).await.expect("poll");
    assert_eq!(first.records.len(), 10, "{first:?}");
    // Nothing is committed: a poll from the positions reads on, one without them reads the
    // same records again.
    let on = admin
        .poll_group_from(
            "readers",
            member.id(),
            Some(10),
            Some(0),
            &first.next_offsets,
        )
        .await
        .expect("poll from positions");
    for record in &on.records {
        let position = first
            .next_offsets
            .iter()
            .find(|o| o.partition == record.partition)
            .map_or(0, |o| o.offset);
        assert!(
            record.record.offset >= position,
            "a poll from the positions goes on past them: {record:?} before {position}"
        );
    }
    assert!(
        !on.records.is_empty(),
        "records are left after the positions"
    );
    let again = member.poll(10, 0).await.expect("poll");
    assert_eq!(
        record_positions(&again),
        record_positions(&first),
        "without positions the poll reads from the committed offsets"
    );

    let api = RawApi::new(&broker);
    let token = api.token("admin", common::ADMIN_PASSWORD).await;
    let poll = |from: &str| {
        let api = api.clone();
        let token = token.clone();
        let path = format!(
            "/v1/groups/readers/members/{}/records?from={from}",
            member.id()
        );
        async move { api.call("GET", &path, Some(token.as_str()), None).await }
    };
    poll("pos:0")
        .await
        .assert_problem(400, "topic:partition:offset", "two parts");
    poll("pos:x:1")
        .await
        .assert_problem(400, "partition", "partition not a number");
    poll("pos:0:1,pos:0:2")
        .await
        .assert_problem(400, "twice", "a partition twice");
    poll("pos:7:0")
        .await
        .assert_problem(409, "not assigned", "not the member's partition");
    poll("other:0:0")
        .await
        .assert_problem(409, "not assigned", "another topic");
    poll("pos:0:21")
        .await
        .assert_problem(416, "out of range", "past the end");
    let described = admin.describe_group("readers").await.expect("describe");
    for offset in &described.offsets {
        assert_eq!(
            offset.committed_offset, None,
            "no poll committed: {offset:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_calls_get_precise_errors_and_change_nothing() {
    let broker = BrokerProcess::start().await;
    let admin = broker.admin().await;
    admin.create_topic(&topic("t", 2, 1)).await.expect("topic");
    let api = RawApi::new(&broker);
    let token = api.token("admin", common::ADMIN_PASSWORD).await;
    let token = Some(token.as_str());
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let api = api.clone();
        async move { api.call(method, &path, token, body.as_ref()).await }
    };
    let join = |body: serde_json::Value| call("POST", "/v1/groups/g/members".into(), Some(body));
    join(serde_json::json!({"topics": []}))
        .await
        .assert_problem(400, "topics", "no topics");
    join(serde_json::json!({"topics": ["nope"]}))
        .await
        .assert_problem(404, "nope", "unknown topic");
    join(serde_json::json!({"topics": ["t"], "session_timeout_ms": 10}))
        .await
        .assert_problem(400, "session_timeout_ms", "timeout too short");
    join(serde_json::json!({"topics": ["t"], "extra": 1}))
        .await
        .assert_problem(400, "extra", "unknown field");
    join(serde_json::json!({"topics": ["t"], "auto_offset_reset": "sometimes"}))
        .await
        .assert_problem(400, "sometimes", "bad reset");
    call(
        "POST",
        "/v1/groups/bad%20name/members".into(),
        Some(serde_json::json!({"topics": ["t"]})),
    )
    .await
    .assert_problem(400, "name", "bad group name");
    let groups = call("GET", "/v1/groups".into(), None).await;
    assert_eq!(
        groups.body["groups"],
        serde_json::json!([]),
        "no failed join created a group"
    );

    let joined = join(serde_json::json!({"topics": ["t"]})).await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    let member = joined.body["member_id"]
        .as_str()
        .expect("member id")
        .to_string();
    let generation = joined.body["generation"].as_u64().expect("generation");
    call(
        "POST",
        "/v1/groups/g/members/m-unknown/heartbeat".into(),
        None,
    )
    .await
    .assert_problem(404, "m-unknown", "unknown member");
    call("GET", "/v1/groups/g/members/m-unknown/records".into(), None)
        .await
        .assert_problem(404, "m-unknown", "poll of an unknown member");
    let commit = |offsets: serde_json::Value| {
        call(
            "POST",
            "/v1/groups/g/offsets".into(),
            Some(serde_json::json!({
                "member_id": member, "generation": generation, "offsets": offsets
            })),
        )
    };
    commit(serde_json::json!([{"topic": "t", "partition": 0, "offset": 5}]))
        .await
        .assert_problem(409, "high watermark", "offset past the end");
    commit(serde_json::json!([{"topic": "t", "partition": 9, "offset": 0}]))
        .await
        .assert_problem(404, "partition 9", "no such partition");
    commit(serde_json::json!([]))
        .await
        .assert_problem(400, "empty", "nothing to commit");
    commit(serde_json::json!([{"topic": "t", "partition": 0, "offset": 0}, {"topic": "t", "partition": 0, "offset": 0}]))
        .await
        .assert_problem(400, "more than once", "duplicate partition");
    call(
        "POST",
        "/v1/groups/g/offsets".into(),
        Some(serde_json::json!({"member_id": member})),
    )
    .await
    .assert_problem(400, "generation", "missing field");
    let described = call("GET", "/v1/groups/g".into(), None).await;
    assert_eq!(described.status, 200);
    for offset in described.body["offsets"].as_array().expect("offsets") {
        assert!(
            offset["committed_offset"].is_null(),
            "nothing was committed: {offset}"
        );
    }
    call("GET", "/v1/groups/none".into(), None)
        .await
        .assert_problem(404, "none", "unknown group");
    call("DELETE", format!("/v1/groups/g/members/{member}"), None).await;
    call("DELETE", format!("/v1/groups/g/members/{member}"), None)
        .await
        .assert_problem(404, "not in consumer group", "second leave");
}
