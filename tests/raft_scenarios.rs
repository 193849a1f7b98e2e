//! Raft scenarios that read as specifications: a script of steps and the full expected trace of
//! messages and states (`from->to term body`, `id apply [...]`, `id Role term commit last ...`).
//! Elections, commit and replication here; membership and snapshots in `raft_scenarios_membership`.

mod raft_common;

use palisade::raft::{Canary, LogIndex, NodeId};
use raft_common::cluster::{assert_text, assert_trace, elect, plain, Cluster};

/// Raft paper figure 8: an entry of an earlier term held by a majority is not committed by
/// counting; only the new leader's own entry commits it.
#[test]
fn figure_8_previous_term_entry_is_not_committed_by_counting() {
    let trace = figure_8(None);
    assert_text(
        &trace,
        r#"
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        1->4 t1 Vote last=0/0
        1->5 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        4->1 t1 VoteResponse granted
        5->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        1->4 t1 Append prev=0/0 [1/1:noop] commit=0
        1->5 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        3->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        4->1 t1 AppendResponse ok index=1
        5->1 t1 AppendResponse ok index=1
        # n1 appends 2/1; only n2 receives it; n1 crashes
        # isolate 3
        # isolate 4
        # isolate 5
        1->2 t1 Append prev=1/1 [2/1:a] commit=1
        2 apply [1/1:noop]
        2->1 t1 AppendResponse ok index=2
        (3 dropped)
        # heal
        # restart 1
        # n5 wins term 2 with n3, n4 and appends 2/2 alone, then crashes
        # isolate 1
        # isolate 2
        1 apply [1/1:noop]
        5->3 t2 Vote last=1/1
        5->4 t2 Vote last=1/1
        3->5 t2 VoteResponse granted
        4->5 t2 VoteResponse granted
        (2 dropped)
        # heal
        # isolate 5
        (4 dropped)
        # restart 5
        # n1 loses term 2 (n3, n4 voted), wins term 3 without n4 and n5
        1->2 t2 Vote last=2/1
        1->3 t2 Vote last=2/1
        1->4 t2 Vote last=2/1
        2->1 t2 VoteResponse granted
        3->1 t2 VoteResponse rejected
        4->1 t2 VoteResponse rejected
        (1 dropped)
        # isolate 4
        1->2 t3 Vote last=2/1
        1->3 t3 Vote last=2/1
        2->1 t3 VoteResponse granted
        3->1 t3 VoteResponse granted
        1->2 t3 Append prev=2/1 [3/3:noop] commit=1
        1->3 t3 Append prev=2/1 [3/3:noop] commit=1
        2->1 t3 AppendResponse ok index=3
        3->1 t3 AppendResponse reject index=2 hint=1/1
        1->3 t3 Append prev=1/1 [2/1:a] commit=1
        3 apply [1/1:noop]
        3->1 t3 AppendResponse ok index=2
        (4 dropped)
        # n1 commit after term-1 entry 2 reached a majority: 1
        # n1 crashes before 3/3 reaches n3; n5 wins term 4 with n3, n4
        # isolate 1
        # heal
        # isolate 1
        (1 dropped)
        5->2 t3 Vote last=2/2
        5->3 t3 Vote last=2/2
        5->4 t3 Vote last=2/2
        2->5 t3 VoteResponse rejected
        3->5 t3 VoteResponse rejected
        4->5 t3 VoteResponse granted
        (1 dropped)
        5->2 t4 Vote last=2/2
        5->3 t4 Vote last=2/2
        5->4 t4 Vote last=2/2
        2->5 t4 VoteResponse rejected
        3->5 t4 VoteResponse granted
        4->5 t4 VoteResponse granted
        5->2 t4 Append prev=2/2 [3/4:noop] commit=0
        5->3 t4 Append prev=2/2 [3/4:noop] commit=0
        5->4 t4 Append prev=2/2 [3/4:noop] commit=0
        2->5 t4 AppendResponse reject index=2 hint=2/1
        3->5 t4 AppendResponse reject index=2 hint=2/1
        4->5 t4 AppendResponse reject index=2 hint=1/1
        5->2 t4 Append prev=1/1 [2/2:noop] commit=0
        5->3 t4 Append prev=1/1 [2/2:noop] commit=0
        5->4 t4 Append prev=1/1 [2/2:noop] commit=0
        2->5 t4 AppendResponse ok index=2
        3->5 t4 AppendResponse ok index=2
        4->5 t4 AppendResponse ok index=2
        5->2 t4 Append prev=2/2 [3/4:noop] commit=0
        5->3 t4 Append prev=2/2 [3/4:noop] commit=0
        5->4 t4 Append prev=2/2 [3/4:noop] commit=0
        2->5 t4 AppendResponse ok index=3
        3->5 t4 AppendResponse ok index=3
        5 apply [1/1:noop 2/2:noop 3/4:noop]
        4->5 t4 AppendResponse ok index=3
        (2 dropped)
        # n5 entry 2 term: 2
        1 Leader t3 commit=1 last=3 voters=[1,2,3,4,5] learners=[]
        2 Follower t4 commit=1 last=3 voters=[1,2,3,4,5] learners=[]
        3 Follower t4 commit=1 last=3 voters=[1,2,3,4,5] learners=[]
        4 Follower t4 commit=0 last=3 voters=[1,2,3,4,5] learners=[]
        5 Leader t4 commit=3 last=3 voters=[1,2,3,4,5] learners=[]
        "#,
    );
    assert!(
        trace.contains("# n1 commit after term-1 entry 2 reached a majority: 1"),
        "{trace}"
    );
}

/// The same script with the planted bug commits entry 2 by counting, and a later leader then
/// overwrites it: the scenario shows the exact failure the rule prevents.
#[test]
fn figure_8_with_planted_bug_loses_a_committed_entry() {
    let trace = figure_8(Some(Canary::CommitPreviousTermByCounting));
    assert_text(
        &trace,
        r#"
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        1->4 t1 Vote last=0/0
        1->5 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        4->1 t1 VoteResponse granted
        5->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        1->4 t1 Append prev=0/0 [1/1:noop] commit=0
        1->5 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        3->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        4->1 t1 AppendResponse ok index=1
        5->1 t1 AppendResponse ok index=1
        # n1 appends 2/1; only n2 receives it; n1 crashes
        # isolate 3
        # isolate 4
        # isolate 5
        1->2 t1 Append prev=1/1 [2/1:a] commit=1
        2 apply [1/1:noop]
        2->1 t1 AppendResponse ok index=2
        (3 dropped)
        # heal
        # restart 1
        # n5 wins term 2 with n3, n4 and appends 2/2 alone, then crashes
        # isolate 1
        # isolate 2
        1 apply [1/1:noop]
        5->3 t2 Vote last=1/1
        5->4 t2 Vote last=1/1
        3->5 t2 VoteResponse granted
        4->5 t2 VoteResponse granted
        (2 dropped)
        # heal
        # isolate 5
        (4 dropped)
        # restart 5
        # n1 loses term 2 (n3, n4 voted), wins term 3 without n4 and n5
        1->2 t2 Vote last=2/1
        1->3 t2 Vote last=2/1
        1->4 t2 Vote last=2/1
        2->1 t2 VoteResponse granted
        3->1 t2 VoteResponse rejected
        4->1 t2 VoteResponse rejected
        (1 dropped)
        # isolate 4
        1->2 t3 Vote last=2/1
        1->3 t3 Vote last=2/1
        2->1 t3 VoteResponse granted
        3->1 t3 VoteResponse granted
        1->2 t3 Append prev=2/1 [3/3:noop] commit=1
        1->3 t3 Append prev=2/1 [3/3:noop] commit=1
        2->1 t3 AppendResponse ok index=3
        3->1 t3 AppendResponse reject index=2 hint=1/1
        1->3 t3 Append prev=1/1 [2/1:a] commit=1
        3 apply [1/1:noop]
        3->1 t3 AppendResponse ok index=2
        1 apply [2/1:a]
        (4 dropped)
        # n1 commit after term-1 entry 2 reached a majority: 2
        # n1 crashes before 3/3 reaches n3; n5 wins term 4 with n3, n4
        # isolate 1
        # heal
        # isolate 1
        (1 dropped)
        5->2 t3 Vote last=2/2
        5->3 t3 Vote last=2/2
        5->4 t3 Vote last=2/2
        2->5 t3 VoteResponse rejected
        3->5 t3 VoteResponse rejected
        4->5 t3 VoteResponse granted
        (1 dropped)
        5->2 t4 Vote last=2/2
        5->3 t4 Vote last=2/2
        5->4 t4 Vote last=2/2
        2->5 t4 VoteResponse rejected
        3->5 t4 VoteResponse granted
        4->5 t4 VoteResponse granted
        5->2 t4 Append prev=2/2 [3/4:noop] commit=0
        5->3 t4 Append prev=2/2 [3/4:noop] commit=0
        5->4 t4 Append prev=2/2 [3/4:noop] commit=0
        2->5 t4 AppendResponse reject index=2 hint=2/1
        3->5 t4 AppendResponse reject index=2 hint=2/1
        4->5 t4 AppendResponse reject index=2 hint=1/1
        5->2 t4 Append prev=1/1 [2/2:noop] commit=0
        5->3 t4 Append prev=1/1 [2/2:noop] commit=0
        5->4 t4 Append prev=1/1 [2/2:noop] commit=0
        2->5 t4 AppendResponse ok index=2
        3->5 t4 AppendResponse ok index=2
        5 apply [1/1:noop 2/2:noop]
        4->5 t4 AppendResponse ok index=2
        5->2 t4 Append prev=2/2 [3/4:noop] commit=0
        5->3 t4 Append prev=2/2 [3/4:noop] commit=2
        3 apply [2/2:noop]
        5->4 t4 Append prev=2/2 [3/4:noop] commit=2
        4 apply [1/1:noop 2/2:noop]
        2->5 t4 AppendResponse ok index=3
        3->5 t4 AppendResponse ok index=3
        5 apply [3/4:noop]
        4->5 t4 AppendResponse ok index=3
        (2 dropped)
        # n5 entry 2 term: 2
        1 Leader t3 commit=2 last=3 voters=[1,2,3,4,5] learners=[]
        2 Follower t4 commit=1 last=3 voters=[1,2,3,4,5] learners=[]
        3 Follower t4 commit=2 last=3 voters=[1,2,3,4,5] learners=[]
        4 Follower t4 commit=2 last=3 voters=[1,2,3,4,5] learners=[]
        5 Leader t4 commit=3 last=3 voters=[1,2,3,4,5] learners=[]
        "#,
    );
    assert!(
        trace.contains("# n1 commit after term-1 entry 2 reached a majority: 2"),
        "{trace}"
    );
    assert!(trace.contains("# n5 entry 2 term: 2"), "{trace}");
}

fn figure_8(canary: Option<Canary>) -> String {
    let mut cluster = Cluster::new(5, 0, 0, |config| {
        plain(config);
        config.append_bytes_max = 1;
        config.inflight_appends_max = 1;
        config.canary = canary;
    });
    elect(&mut cluster, 1);
    cluster.note("n1 appends 2/1; only n2 receives it; n1 crashes");
    for id in 3..=5 {
        cluster.isolate(id);
    }
    cluster.node(1).propose(b"a".to_vec()).expect("leader");
    cluster.run();
    cluster.heal();
    cluster.restart(1);
    cluster.note("n5 wins term 2 with n3, n4 and appends 2/2 alone, then crashes");
    cluster.isolate(1);
    cluster.isolate(2);
    cluster.node(5).campaign();
    cluster.run_until("4->5 t2 VoteResponse granted");
    cluster.heal();
    cluster.isolate(5);
    cluster.run();
    cluster.restart(5);
    cluster.note("n1 loses term 2 (n3, n4 voted), wins term 3 without n4 and n5");
    elect(&mut cluster, 1);
    cluster.isolate(4);
    elect_until(&mut cluster, 1, "3->1 t3 AppendResponse ok index=2");
    let commit = cluster.node(1).status().commit.0;
    cluster.note(&format!(
        "n1 commit after term-1 entry 2 reached a majority: {commit}"
    ));
    cluster.note("n1 crashes before 3/3 reaches n3; n5 wins term 4 with n3, n4");
    cluster.isolate(1);
    cluster.heal();
    cluster.isolate(1);
    cluster.run();
    elect(&mut cluster, 5);
    elect(&mut cluster, 5);
    let term = cluster
        .node(5)
        .term_at(LogIndex(2))
        .map_or(0, |term| term.0);
    cluster.note(&format!("n5 entry 2 term: {term}"));
    cluster.state();
    cluster.take_trace()
}

fn elect_until(cluster: &mut Cluster, id: u64, last_line: &str) {
    cluster.node(id).campaign();
    cluster.run_until(last_line);
}

/// PreVote: a node cut off from the group campaigns without raising its term, so it rejoins
/// without deposing the leader.
#[test]
fn pre_vote_partitioned_node_rejoins_without_disrupting() {
    let mut cluster = Cluster::new(3, 0, 0, |config| config.election_timeout_ticks = 3);
    elect(&mut cluster, 1);
    cluster.isolate(3);
    cluster.tick(3, 12);
    cluster.run();
    cluster.state();
    cluster.heal();
    cluster.tick(3, 6);
    cluster.run();
    cluster.tick(1, 2);
    cluster.run();
    cluster.state();
    assert_trace(
        &mut cluster,
        r#"
        1->2 t1 PreVote last=0/0
        1->3 t1 PreVote last=0/0
        2->1 t1 PreVoteResponse granted
        3->1 t1 PreVoteResponse granted
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        3->1 t1 AppendResponse ok index=1
        # isolate 3
        (6 dropped)
        1 Leader t1 commit=1 last=1 voters=[1,2,3] learners=[]
        2 Follower t1 commit=0 last=1 voters=[1,2,3] learners=[]
        3 PreCandidate t1 commit=0 last=1 voters=[1,2,3] learners=[]
        # heal
        3->1 t2 PreVote last=1/1
        3->2 t2 PreVote last=1/1
        1->2 t1 Heartbeat commit=1
        2 apply [1/1:noop]
        1->3 t1 Heartbeat commit=1
        3 apply [1/1:noop]
        2->1 t1 HeartbeatResponse
        3->1 t1 HeartbeatResponse
        1 Leader t1 commit=1 last=1 voters=[1,2,3] learners=[]
        2 Follower t1 commit=1 last=1 voters=[1,2,3] learners=[]
        3 Follower t1 commit=1 last=1 voters=[1,2,3] learners=[]
        "#,
    );
}

/// CheckQuorum: a leader that hears from no majority for an election timeout steps down.
#[test]
fn check_quorum_leader_steps_down_when_cut_off() {
    let mut cluster = Cluster::new(3, 0, 0, |config| config.election_timeout_ticks = 3);
    elect(&mut cluster, 1);
    cluster.isolate(1);
    cluster.tick(1, 3);
    cluster.state();
    cluster.tick(1, 3);
    cluster.run();
    cluster.state();
    assert_trace(
        &mut cluster,
        r#"
        1->2 t1 PreVote last=0/0
        1->3 t1 PreVote last=0/0
        2->1 t1 PreVoteResponse granted
        3->1 t1 PreVoteResponse granted
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        3->1 t1 AppendResponse ok index=1
        # isolate 1
        1 Leader t1 commit=1 last=1 voters=[1,2,3] learners=[]
        2 Follower t1 commit=0 last=1 voters=[1,2,3] learners=[]
        3 Follower t1 commit=0 last=1 voters=[1,2,3] learners=[]
        (4 dropped)
        1 Follower t1 commit=1 last=1 voters=[1,2,3] learners=[]
        2 Follower t1 commit=0 last=1 voters=[1,2,3] learners=[]
        3 Follower t1 commit=0 last=1 voters=[1,2,3] learners=[]
        "#,
    );
}

/// Leadership transfer: the target catches up, receives TimeoutNow and wins at once, even
/// though the other voters still hear from the old leader.
#[test]
fn leader_transfer_hands_over_after_catch_up() {
    let mut cluster = Cluster::new(3, 0, 0, |_| {});
    elect(&mut cluster, 1);
    cluster.isolate(2);
    cluster.node(1).propose(b"x".to_vec()).expect("leader");
    cluster.run();
    cluster.heal();
    cluster.node(1).transfer_leader(NodeId(2)).expect("leader");
    cluster.run();
    cluster.state();
    assert_trace(
        &mut cluster,
        r#"
        1->2 t1 PreVote last=0/0
        1->3 t1 PreVote last=0/0
        2->1 t1 PreVoteResponse granted
        3->1 t1 PreVoteResponse granted
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        3->1 t1 AppendResponse ok index=1
        # isolate 2
        1->3 t1 Append prev=1/1 [2/1:x] commit=1
        3 apply [1/1:noop]
        3->1 t1 AppendResponse ok index=2
        1 apply [2/1:x]
        (1 dropped)
        # heal
        1->2 t1 Append prev=2/1 [] commit=2
        2->1 t1 AppendResponse reject index=2 hint=1/1
        1->2 t1 Append prev=1/1 [2/1:x] commit=2
        2 apply [1/1:noop]
        2 apply [2/1:x]
        2->1 t1 AppendResponse ok index=2
        1->2 t1 TimeoutNow
        2->1 t2 Vote last=2/1 transfer
        2->3 t2 Vote last=2/1 transfer
        1->2 t2 VoteResponse granted
        3->2 t2 VoteResponse granted
        2->1 t2 Append prev=2/1 [3/2:noop] commit=2
        2->3 t2 Append prev=2/1 [3/2:noop] commit=2
        3 apply [2/1:x]
        1->2 t2 AppendResponse ok index=3
        2 apply [3/2:noop]
        3->2 t2 AppendResponse ok index=3
        1 Follower t2 commit=2 last=3 voters=[1,2,3] learners=[]
        2 Leader t2 commit=3 last=3 voters=[1,2,3] learners=[]
        3 Follower t2 commit=2 last=3 voters=[1,2,3] learners=[]
        "#,
    );
}

/// Learner: a new replica without membership joins through a snapshot, catches up without
/// being counted, then is promoted to voter.
/// Removing the leader: it leads until its removal commits, then steps down and hands over.
/// Snapshot: a follower behind the leader's compacted prefix receives the snapshot and then
/// continues with appends.
/// A deposed leader's uncommitted tail conflicts with the new leader's log and is replaced,
/// found in one round trip through the conflict hint.
#[test]
fn conflicting_uncommitted_tail_is_replaced() {
    let mut cluster = Cluster::new(3, 0, 0, plain);
    elect(&mut cluster, 1);
    cluster.isolate(1);
    cluster.node(1).propose(b"x".to_vec()).expect("leader");
    cluster.node(1).propose(b"y".to_vec()).expect("leader");
    cluster.run();
    elect(&mut cluster, 2);
    cluster.node(2).propose(b"z".to_vec()).expect("leader");
    cluster.run();
    cluster.heal();
    cluster.tick(2, 2);
    cluster.run();
    cluster.state();
    assert_trace(
        &mut cluster,
        r#"
        1->2 t1 Vote last=0/0
        1->3 t1 Vote last=0/0
        2->1 t1 VoteResponse granted
        3->1 t1 VoteResponse granted
        1->2 t1 Append prev=0/0 [1/1:noop] commit=0
        1->3 t1 Append prev=0/0 [1/1:noop] commit=0
        2->1 t1 AppendResponse ok index=1
        1 apply [1/1:noop]
        3->1 t1 AppendResponse ok index=1
        # isolate 1
        (2 dropped)
        2->3 t2 Vote last=1/1
        3->2 t2 VoteResponse granted
        2->3 t2 Append prev=1/1 [2/2:noop] commit=0
        3->2 t2 AppendResponse ok index=2
        2 apply [1/1:noop 2/2:noop]
        (2 dropped)
        2->3 t2 Append prev=2/2 [3/2:z] commit=2
        3 apply [1/1:noop 2/2:noop]
        3->2 t2 AppendResponse ok index=3
        2 apply [3/2:z]
        # heal
        2->1 t2 Heartbeat commit=0
        2->3 t2 Heartbeat commit=3
        3 apply [3/2:z]
        1->2 t2 HeartbeatResponse
        3->2 t2 HeartbeatResponse
        2->1 t2 Append prev=1/1 [2/2:noop 3/2:z] commit=3
        1 apply [2/2:noop 3/2:z]
        1->2 t2 AppendResponse ok index=3
        1 Follower t2 commit=3 last=3 voters=[1,2,3] learners=[]
        2 Leader t2 commit=3 last=3 voters=[1,2,3] learners=[]
        3 Follower t2 commit=3 last=3 voters=[1,2,3] learners=[]
        "#,
    );
}
