//! Network faults between real broker processes, each in its own network namespace (see
//! `netfault_support`): an isolated leader, a one-way cut, a bridge (two brokers cut from each
//! other, both reaching the third), a flapping link and a slow link, each while producers write
//! through every broker. After healing: no acknowledged record is lost, moved or stored twice,
//! no two values were acknowledged at one offset (two leaders acknowledging), and the replicas'
//! redb files agree. The checker is first shown to catch each kind of broken history
//! (`netfault_support::checker_controls`), and a broker built to acknowledge before the commit
//! (a test hook) is caught end to end.
//!
//! Each fault is held for a few seconds; `PALISADE_NETFAULT_SECONDS` holds each one longer.
//! Needs root (namespaces, routes, `tc`).

mod common;
mod netfault_support;

use std::time::{Duration, Instant};

use netfault_support::checker::Violation;
use netfault_support::{
    fault_duration, one_at_a_time, FaultedCluster, BROKERS, FORWARD_TIMEOUT, PARTITIONS,
};

/// Records acknowledged before each fault starts.
const WARM_UP_RECORDS: usize = 300;
/// An isolated leader must have stopped acknowledging this long after the cut: CheckQuorum
/// steps it down after one election timeout (1 to 2 s); this is a deadline, not a measurement.
const ISOLATED_ACK_DEADLINE: Duration = Duration::from_secs(5);

/// How much longer than the brokers' forward timeout a produce may wait for its answer.
const ANSWER_SLACK: Duration = Duration::from_secs(3);

/// What isolating the leader of partition 0 showed.
struct Isolation {
    leader: u64,
    /// The last acknowledgement through the isolated broker after the cut, from the cut.
    last_ack_after_cut: Option<Duration>,
    acks_after_cut: usize,
    /// The last acknowledgement through the isolated broker before the cut, to the cut.
    last_ack_before_cut: Option<Duration>,
    /// Produces through the isolated broker that failed after the cut: (from the cut, error).
    failures_after_cut: Vec<(Duration, String)>,
    /// Per partition, the longest a producer through the isolated broker waited for an answer
    /// (acknowledged or not) while the cut was held, counted from the cut.
    longest_unanswered: Vec<Duration>,
    /// From the cut to the first acknowledgement of partition 0 through the majority.
    majority_resumed: Duration,
}

/// Cuts the leader of partition 0 off from both followers (the clients still reach it) for
/// `hold`, while writes go through every broker.
async fn isolate_the_leader(faulted: &mut FaultedCluster, hold: Duration) -> Isolation {
    let leader = faulted.leader(0, 1).await.expect("partition 0 is led");
    let others: Vec<u64> = (1..=BROKERS).filter(|id| *id != leader).collect();
    faulted.start_load();
    faulted
        .wait_acked(WARM_UP_RECORDS, "writes before the cut")
        .await;
    faulted.network.isolate(leader);
    let cut = Instant::now();
    let observer = others[0];
    common::cluster::wait_for("a leader on the majority side", 60, || async {
        faulted.leader(0, observer).await.filter(|id| *id != leader)
    })
    .await;
    faulted
        .wait_acked_via(observer, 0, cut, "a write acknowledged by the majority")
        .await;
    let majority_resumed = *faulted
        .ack_times(observer, 0)
        .iter()
        .find(|t| **t > cut)
        .expect("just waited for it")
        - cut;
    tokio::time::sleep_until((cut + hold).into()).await;
    let through_leader: Vec<Instant> = (0..PARTITIONS)
        .flat_map(|partition| faulted.ack_times(leader, partition))
        .collect();
    let after_cut: Vec<Instant> = through_leader
        .iter()
        .copied()
        .filter(|t| *t > cut)
        .collect();
    let before_cut = through_leader.iter().filter(|t| **t <= cut).max();
    let failures_after_cut = faulted
        .failures(leader)
        .into_iter()
        .filter(|(at, _)| *at > cut)
        .map(|(at, error)| (at - cut, error))
        .collect();
    let end = cut + hold;
    let longest_unanswered = (0..PARTITIONS)
        .map(|partition| {
            let mut marks = vec![cut];
            marks.extend(
                faulted
                    .answer_times(leader, partition)
                    .into_iter()
                    .filter(|t| *t > cut && *t < end),
            );
            marks.push(end);
            marks
                .windows(2)
                .map(|pair| pair[1] - pair[0])
                .max()
                .expect("two marks")
        })
        .collect();
    Isolation {
        leader,
        longest_unanswered,
        last_ack_after_cut: after_cut.iter().max().map(|t| *t - cut),
        acks_after_cut: after_cut.len(),
        last_ack_before_cut: before_cut.map(|t| cut - *t),
        failures_after_cut,
        majority_resumed,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_stops_acknowledging_and_the_majority_takes_over() {
    let _alone = one_at_a_time().await;
    let hold = fault_duration(8)
        .max(ISOLATED_ACK_DEADLINE * 2)
        .max((FORWARD_TIMEOUT + ANSWER_SLACK) * 2);
    let mut faulted = FaultedCluster::start(&[]).await;
    let isolation = isolate_the_leader(&mut faulted, hold).await;
    eprintln!(
        "isolated leader {}: last acknowledgement through it {:?} before the cut; {} after it, \
         the last {:?} after the cut; the majority acknowledged {:?} after the cut",
        isolation.leader,
        isolation.last_ack_before_cut,
        isolation.acks_after_cut,
        isolation.last_ack_after_cut,
        isolation.majority_resumed
    );
    for (after, error) in isolation.failures_after_cut.iter().take(6) {
        eprintln!(
            "  produce through {} failed {after:?} after the cut: {error}",
            isolation.leader
        );
    }
    eprintln!(
        "  {} produces through it failed during the cut",
        isolation.failures_after_cut.len()
    );
    eprintln!(
        "  longest wait for an answer through it during the cut, per partition: {:?}",
        isolation.longest_unanswered
    );
    for (partition, waited) in isolation.longest_unanswered.iter().enumerate() {
        assert!(
            *waited < FORWARD_TIMEOUT + ANSWER_SLACK,
            "a produce to partition {partition} through isolated broker {} waited {waited:?} \
             without an answer (forward timeout {FORWARD_TIMEOUT:?}, cut held {hold:?})",
            isolation.leader
        );
    }
    if let Some(last) = isolation.last_ack_after_cut {
        assert!(
            last < ISOLATED_ACK_DEADLINE,
            "the isolated leader still acknowledged {last:?} after the cut (held {hold:?})"
        );
    }
    faulted.finish().await.assert_safe("isolated leader");
}

/// With a forwarding deadline far longer than the cut, the writes waiting on the isolated leader's
/// own partition are answered when it steps down (CheckQuorum), not when the partition heals:
/// "may or may not have been applied", while the cut is still held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_answers_its_waiting_writes_when_it_steps_down() {
    let _alone = one_at_a_time().await;
    let hold = fault_duration(12).max(Duration::from_secs(12));
    let long_forwarding = Duration::from_secs(120);
    let mut faulted = FaultedCluster::start_forwarding(&[], long_forwarding).await;
    let isolation = isolate_the_leader(&mut faulted, hold).await;
    let first_step_down = isolation
        .failures_after_cut
        .iter()
        .find(|(_, error)| error.contains("stepped down before the write was applied"))
        .map(|(after, _)| *after);
    eprintln!(
        "isolated leader {}: the writes waiting on it were answered {first_step_down:?} after the \
         cut (cut held {hold:?}, forwarding deadline {long_forwarding:?})",
        isolation.leader
    );
    let answered = first_step_down.unwrap_or_else(|| {
        panic!(
            "no write through the isolated leader was answered as stepped down: {:?}",
            isolation.failures_after_cut
        )
    });
    assert!(
        answered < hold / 2,
        "the waiting writes were answered {answered:?} after the cut, not while it was held ({hold:?})"
    );
    faulted
        .finish()
        .await
        .assert_safe("isolated leader stepping down");
}

/// Positive control of the whole chain: brokers that acknowledge a produce before it is
/// committed (the `test-hooks` switch) let the isolated leader acknowledge records the
/// majority never had; the checker must report them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_catches_an_isolated_leader_that_acknowledges_before_commit() {
    let _alone = one_at_a_time().await;
    let env = [(palisade::app::UNSAFE_ACK_ENV, "1")];
    let mut faulted = FaultedCluster::start(&env).await;
    let isolation = isolate_the_leader(&mut faulted, fault_duration(4)).await;
    let finished = faulted.finish().await;
    let violations = finished.violations();
    let lost_from_leader = violations
        .iter()
        .filter(|v| matches!(v, Violation::Lost(ack) if ack.via == isolation.leader))
        .count();
    let conflicts = violations
        .iter()
        .filter(|v| matches!(v, Violation::ConflictingAcks { .. }))
        .count();
    eprintln!(
        "acknowledging before commit: {} violations, {lost_from_leader} records acknowledged by \
         isolated leader {} lost, {conflicts} offsets acknowledged with two values",
        violations.len(),
        isolation.leader
    );
    assert!(
        lost_from_leader > 0 && conflicts > 0,
        "the checker missed an isolated leader acknowledging uncommitted records: {violations:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_cut_between_leader_and_follower_in_each_direction() {
    let _alone = one_at_a_time().await;
    let hold = fault_duration(6);
    let mut faulted = FaultedCluster::start(&[]).await;
    let leader = faulted.leader(0, 1).await.expect("partition 0 is led");
    let follower = (1..=BROKERS).find(|id| *id != leader).expect("a follower");
    let third = (1..=BROKERS)
        .find(|id| *id != leader && *id != follower)
        .expect("a third broker");
    faulted.start_load();
    faulted
        .wait_acked(WARM_UP_RECORDS, "writes before the cut")
        .await;
    for (from, to) in [(leader, follower), (follower, leader)] {
        faulted.network.cut(from, to);
        let cut = Instant::now();
        for partition in 0..PARTITIONS {
            let what = format!(
                "partition {partition} written through {third} while {from} cannot send to {to}"
            );
            faulted.wait_acked_via(third, partition, cut, &what).await;
        }
        tokio::time::sleep_until((cut + hold / 2).into()).await;
        faulted.network.heal(from, to);
    }
    faulted.finish().await.assert_safe("one-way cuts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_broker_between_two_that_cannot_reach_each_other() {
    let _alone = one_at_a_time().await;
    let hold = fault_duration(8);
    let mut faulted = FaultedCluster::start(&[]).await;
    let leader = faulted.leader(0, 1).await.expect("partition 0 is led");
    let others: Vec<u64> = (1..=BROKERS).filter(|id| *id != leader).collect();
    let (bridge, far) = (others[0], others[1]);
    faulted.start_load();
    faulted
        .wait_acked(WARM_UP_RECORDS, "writes before the cut")
        .await;
    faulted.network.cut_both(leader, far);
    let cut = Instant::now();
    for partition in 0..PARTITIONS {
        let what = format!(
            "partition {partition} written through bridge {bridge} while {leader} and {far} are cut"
        );
        faulted.wait_acked_via(bridge, partition, cut, &what).await;
    }
    tokio::time::sleep_until((cut + hold).into()).await;
    let views = faulted
        .partitions(bridge)
        .await
        .expect("the bridge answers");
    eprintln!(
        "bridge {bridge} between {leader} and {far}: leaders {:?}, terms {:?}",
        views.iter().map(|p| p.leader).collect::<Vec<_>>(),
        views.iter().map(|p| p.term).collect::<Vec<_>>()
    );
    faulted.finish().await.assert_safe("bridge");
}

/// A small deterministic generator for the flapping schedule (xorshift64*).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_link_to_the_leader() {
    let _alone = one_at_a_time().await;
    let duration = fault_duration(10);
    let seed = std::env::var("PALISADE_NETFAULT_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()) | 1);
    eprintln!("flapping schedule seed {seed} (PALISADE_NETFAULT_SEED)");
    let mut faulted = FaultedCluster::start(&[]).await;
    let leader = faulted.leader(0, 1).await.expect("partition 0 is led");
    faulted.start_load();
    faulted
        .wait_acked(WARM_UP_RECORDS, "writes before flapping")
        .await;
    let (start, mut state, mut flips) = (Instant::now(), seed, 0u32);
    let acked_before = faulted.acked();
    while start.elapsed() < duration {
        // Cut the current leader of partition 0 (as broker 1 last saw it) from both others
        // for 0.2 to 1.7 s, then let it be whole for as long.
        let target = faulted.leader(0, 1).await.unwrap_or(leader);
        faulted.network.isolate(target);
        tokio::time::sleep(Duration::from_millis(200 + next(&mut state) % 1500)).await;
        faulted.network.heal_all();
        tokio::time::sleep(Duration::from_millis(200 + next(&mut state) % 1500)).await;
        flips += 1;
    }
    let acked_during = faulted.acked() - acked_before;
    eprintln!("{flips} cut-and-heal cycles in {duration:?}; {acked_during} records acknowledged");
    faulted.finish().await.assert_safe("flapping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_link_to_the_leader() {
    let _alone = one_at_a_time().await;
    let hold = fault_duration(8);
    let mut faulted = FaultedCluster::start(&[]).await;
    let leader = faulted.leader(0, 1).await.expect("partition 0 is led");
    let other = (1..=BROKERS)
        .find(|id| *id != leader)
        .expect("another broker");
    faulted.start_load();
    faulted
        .wait_acked(WARM_UP_RECORDS, "writes before the slowdown")
        .await;
    let before = round_trip(&faulted, leader).await;
    faulted.network.slow_down(leader, "256kbit");
    let slowed = Instant::now();
    for partition in 0..PARTITIONS {
        let what = format!("partition {partition} written through {other} on a slow link");
        faulted
            .wait_acked_via(other, partition, slowed, &what)
            .await;
    }
    let during = round_trip(&faulted, leader).await;
    tokio::time::sleep_until((slowed + hold).into()).await;
    eprintln!("slow link on broker {leader}: /healthz round trip {before} before, {during} slowed");
    faulted.finish().await.assert_safe("slow link");
}

/// The median of five `/healthz` round trips to broker `id`, for the report. Only reported: on a
/// link slowed to 256 kbit/s under load a TLS handshake can outlast the broker's handshake
/// timeout, so a failed trip is counted, not fatal.
async fn round_trip(faulted: &FaultedCluster, id: u64) -> String {
    let client = faulted.cluster.client(id);
    let mut times = Vec::new();
    let mut failed = 0;
    for _ in 0..5 {
        let start = Instant::now();
        match client.health().await {
            Ok(_) => times.push(start.elapsed()),
            Err(_) => failed += 1,
        }
    }
    times.sort();
    match times.get(times.len() / 2) {
        Some(median) => format!("{median:?} (median of {}, {failed} failed)", times.len()),
        None => format!("none answered ({failed} failed)"),
    }
}

/// Positive control of the harness: each fault drops what it says and nothing else, the
/// clients in the root namespace always reach every broker, and nothing is left behind.
#[test]
fn the_network_cuts_exactly_what_it_is_told() {
    let mut network = netfault_support::network::Network::create(BROKERS);
    let names = network.namespaces();
    let matrix = |network: &netfault_support::network::Network| -> Vec<(u64, u64)> {
        let mut cut = Vec::new();
        for to in 1..=BROKERS {
            assert!(network.delivers(None, to), "the clients lost broker {to}");
            for from in (1..=BROKERS).filter(|from| *from != to) {
                if !network.delivers(Some(from), to) {
                    cut.push((from, to));
                }
            }
        }
        cut
    };
    assert_eq!(matrix(&network), Vec::new());
    network.cut(1, 2);
    assert_eq!(matrix(&network), vec![(1, 2)], "a one-way cut");
    network.cut_both(2, 3);
    assert_eq!(matrix(&network), vec![(1, 2), (3, 2), (2, 3)]);
    network.heal_all();
    network.isolate(1);
    assert_eq!(matrix(&network), vec![(2, 1), (3, 1), (1, 2), (1, 3)]);
    network.heal_all();
    network.slow_down(3, "256kbit");
    assert_eq!(matrix(&network), Vec::new(), "a slow link still delivers");
    drop(network);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let left = String::from_utf8_lossy(&left.stdout);
    for name in names {
        assert!(!left.contains(&name), "namespace {name} left behind");
    }
}
