//! Raft membership and snapshot scenarios as full traces (see `raft_scenarios.rs` for the format).

mod raft_common;

use palisade::raft::{ConfChange, LogIndex, NodeId};
use raft_common::cluster::{assert_trace, elect, plain, Cluster};

#[test]
fn learner_catches_up_and_is_promoted() {
    let mut cluster = Cluster::new(3, 0, 1, plain);
    elect(&mut cluster, 1);
    cluster.node(1).propose(b"x".to_vec()).expect("leader");
    cluster.run();
    cluster
        .node(1)
        .propose_conf_change(ConfChange::AddLearner(NodeId(4)))
        .expect("leader");
    cluster.run();
    cluster.state();
    cluster
        .node(1)
        .propose_conf_change(ConfChange::PromoteLearner(NodeId(4)))
        .expect("leader");
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
        1->2 t1 Append prev=1/1 [2/1:x] commit=1
        2 apply [1/1:noop]
        1->3 t1 Append prev=1/1 [2/1:x] commit=1
        3 apply [1/1:noop]
        2->1 t1 AppendResponse ok index=2
        1 apply [2/1:x]
        3->1 t1 AppendResponse ok index=2
        1->2 t1 Append prev=2/1 [3/1:+learner4] commit=2
        2 apply [2/1:x]
        1->3 t1 Append prev=2/1 [3/1:+learner4] commit=2
        3 apply [2/1:x]
        1->4 t1 Append prev=2/1 [3/1:+learner4] commit=2
        2->1 t1 AppendResponse ok index=3
        1 apply [3/1:+learner4]
        3->1 t1 AppendResponse ok index=3
        4->1 t1 AppendResponse reject index=2 hint=0/0
        1->4 t1 Append prev=0/0 [1/1:noop 2/1:x 3/1:+learner4] commit=3
        4->1 t1 AppendResponse reject index=0 hint=0/0
        1->4 t1 Snapshot 0/0 voters=[1,2,3] learners=[]
        4 install snapshot 0/0
        4->1 t1 AppendResponse ok index=0
        1->4 t1 Append prev=0/0 [1/1:noop 2/1:x 3/1:+learner4] commit=3
        4 apply [1/1:noop 2/1:x 3/1:+learner4]
        4->1 t1 AppendResponse ok index=3
        1 Leader t1 commit=3 last=3 voters=[1,2,3] learners=[4]
        2 Follower t1 commit=2 last=3 voters=[1,2,3] learners=[4]
        3 Follower t1 commit=2 last=3 voters=[1,2,3] learners=[4]
        4 Learner t1 commit=3 last=3 voters=[1,2,3] learners=[4]
        1->2 t1 Append prev=3/1 [4/1:promote4] commit=3
        2 apply [3/1:+learner4]
        1->3 t1 Append prev=3/1 [4/1:promote4] commit=3
        3 apply [3/1:+learner4]
        1->4 t1 Append prev=3/1 [4/1:promote4] commit=3
        2->1 t1 AppendResponse ok index=4
        3->1 t1 AppendResponse ok index=4
        1 apply [4/1:promote4]
        4->1 t1 AppendResponse ok index=4
        1 Leader t1 commit=4 last=4 voters=[1,2,3,4] learners=[]
        2 Follower t1 commit=3 last=4 voters=[1,2,3,4] learners=[]
        3 Follower t1 commit=3 last=4 voters=[1,2,3,4] learners=[]
        4 Follower t1 commit=3 last=4 voters=[1,2,3,4] learners=[]
        "#,
    );
}

#[test]
fn removing_the_leader_hands_over() {
    let mut cluster = Cluster::new(3, 0, 0, plain);
    elect(&mut cluster, 1);
    cluster
        .node(1)
        .propose_conf_change(ConfChange::RemoveNode(NodeId(1)))
        .expect("leader");
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
        1->2 t1 Append prev=1/1 [2/1:-node1] commit=1
        2 apply [1/1:noop]
        1->3 t1 Append prev=1/1 [2/1:-node1] commit=1
        3 apply [1/1:noop]
        2->1 t1 AppendResponse ok index=2
        3->1 t1 AppendResponse ok index=2
        1 apply [2/1:-node1]
        1->2 t1 TimeoutNow
        2->3 t2 Vote last=2/1 transfer
        3->2 t2 VoteResponse granted
        2->3 t2 Append prev=2/1 [3/2:noop] commit=1
        3->2 t2 AppendResponse ok index=3
        2 apply [2/1:-node1 3/2:noop]
        1 Follower t1 commit=2 last=2 voters=[2,3] learners=[]
        2 Leader t2 commit=3 last=3 voters=[2,3] learners=[]
        3 Follower t2 commit=1 last=3 voters=[2,3] learners=[]
        "#,
    );
}

#[test]
fn snapshot_to_lagging_follower() {
    let mut cluster = Cluster::new(3, 0, 0, plain);
    elect(&mut cluster, 1);
    cluster.isolate(3);
    cluster.node(1).propose(b"x".to_vec()).expect("leader");
    cluster.node(1).propose(b"y".to_vec()).expect("leader");
    cluster.run();
    let leader = cluster.node(1);
    leader
        .store_mut()
        .compact(LogIndex(3), b"state@3".to_vec())
        .expect("applied");
    cluster.note("n1 compacted through 3");
    cluster.heal();
    cluster.node(1).propose(b"z".to_vec()).expect("leader");
    cluster.run();
    cluster.tick(1, 2);
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
        # isolate 3
        1->2 t1 Append prev=1/1 [2/1:x 3/1:y] commit=1
        2 apply [1/1:noop]
        2->1 t1 AppendResponse ok index=3
        1 apply [2/1:x 3/1:y]
        (1 dropped)
        # n1 compacted through 3
        # heal
        1->2 t1 Append prev=3/1 [4/1:z] commit=3
        2 apply [2/1:x 3/1:y]
        1->3 t1 Append prev=3/1 [4/1:z] commit=3
        2->1 t1 AppendResponse ok index=4
        1 apply [4/1:z]
        3->1 t1 AppendResponse reject index=3 hint=1/1
        1->3 t1 Snapshot 3/1 voters=[1,2,3] learners=[]
        3 install snapshot 3/1
        3->1 t1 AppendResponse ok index=3
        1->3 t1 Append prev=3/1 [4/1:z] commit=4
        3 apply [4/1:z]
        3->1 t1 AppendResponse ok index=4
        1->2 t1 Heartbeat commit=4
        2 apply [4/1:z]
        1->3 t1 Heartbeat commit=4
        2->1 t1 HeartbeatResponse
        3->1 t1 HeartbeatResponse
        1 Leader t1 commit=4 last=4 voters=[1,2,3] learners=[]
        2 Follower t1 commit=4 last=4 voters=[1,2,3] learners=[]
        3 Follower t1 commit=4 last=4 voters=[1,2,3] learners=[]
        "#,
    );
}
