//! Unit tests, one rule each, named after the Raft paper section or the pitfall they guard.

use super::*;

fn config(id: u64) -> Config {
    let mut config = Config::new(NodeId(id), GroupId(1));
    config.pre_vote = false;
    config.check_quorum = false;
    config
}

fn node(id: u64, voters: &[u64], learners: &[u64]) -> RawNode<MemStore> {
    let conf = ConfState {
        voters: voters.iter().copied().map(NodeId).collect(),
        learners: learners.iter().copied().map(NodeId).collect(),
    };
    RawNode::new(&config(id), MemStore::new(conf)).expect("fresh store")
}

/// Executes one Ready the way the contract says and returns it.
fn cycle(node: &mut RawNode<MemStore>) -> Ready {
    let ready = node.ready();
    node.store_mut().persist(&ready);
    let copy = ready.clone();
    node.advance(ready);
    copy
}

/// Delivers messages among `nodes` (index = id - 1) until quiet; returns how many were delivered.
fn settle(nodes: &mut [RawNode<MemStore>]) -> usize {
    let mut delivered = 0;
    loop {
        let mut messages = Vec::new();
        for node in nodes.iter_mut() {
            while node.has_ready() {
                messages.extend(cycle(node).messages);
            }
        }
        if messages.is_empty() {
            return delivered;
        }
        for message in messages {
            let to = (message.to.0 - 1) as usize;
            if let Some(node) = nodes.get_mut(to) {
                delivered += 1;
                node.step(message).expect("routed");
            }
        }
    }
}

fn three_with_leader() -> Vec<RawNode<MemStore>> {
    let mut nodes: Vec<_> = (1..=3).map(|id| node(id, &[1, 2, 3], &[])).collect();
    nodes[0].campaign();
    settle(&mut nodes);
    assert_eq!(nodes[0].status().role, Role::Leader);
    nodes
}

fn message(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
    Message {
        group: GroupId(1),
        from: NodeId(from),
        to: NodeId(to),
        term: Term(term),
        body,
    }
}

fn append(from: u64, term: u64, prev: (u64, u64), entries: &[(u64, u64)], commit: u64) -> Message {
    let entries = entries
        .iter()
        .map(|(index, term)| Entry {
            term: Term(*term),
            index: LogIndex(*index),
            payload: EntryPayload::Noop,
        })
        .collect();
    let body = MessageBody::Append {
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        commit: LogIndex(commit),
    };
    message(from, 1, term, body)
}

#[test]
fn single_voter_commits_after_its_own_persist() {
    let mut solo = node(1, &[1], &[]);
    solo.campaign();
    assert_eq!(solo.status().role, Role::Leader);
    cycle(&mut solo);
    while solo.has_ready() {
        cycle(&mut solo);
    }
    let index = solo.propose(b"a".to_vec()).expect("leader");
    let first = cycle(&mut solo);
    assert_eq!(first.entries.len(), 1);
    assert!(first.must_sync && first.committed_entries.is_empty());
    let second = cycle(&mut solo);
    assert_eq!(
        second.committed_entries.last().map(|entry| entry.index),
        Some(index)
    );
    assert!(!second.must_sync, "a commit-only Ready needs no fsync");
    assert!(second.entries.is_empty() && second.hard_state.is_some());
}

#[test]
fn section_5_1_stale_leader_learns_the_higher_term() {
    let conf = ConfState::with_voters(vec![NodeId(1), NodeId(2), NodeId(3)]);
    let mut follower =
        RawNode::new(&Config::new(NodeId(1), GroupId(1)), MemStore::new(conf)).expect("fresh");
    follower
        .step(message(
            2,
            1,
            3,
            MessageBody::Heartbeat {
                commit: LogIndex(0),
            },
        ))
        .expect("step");
    cycle(&mut follower);
    follower
        .step(append(3, 2, (0, 0), &[(1, 2)], 0))
        .expect("step");
    let ready = cycle(&mut follower);
    assert_eq!(
        follower.status().last_index,
        LogIndex(0),
        "stale append must not be accepted"
    );
    let reply = &ready.messages[0];
    assert_eq!((reply.to, reply.term), (NodeId(3), Term(3)));
}

#[test]
fn section_5_2_one_vote_per_term() {
    let mut voter = node(1, &[1, 2, 3], &[]);
    let vote = |_candidate: u64| MessageBody::Vote {
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        transfer: false,
    };
    voter.step(message(2, 1, 1, vote(2))).expect("step");
    voter.step(message(3, 1, 1, vote(3))).expect("step");
    let ready = cycle(&mut voter);
    let replies: Vec<_> = ready
        .messages
        .iter()
        .map(|m| (m.to, m.body.clone()))
        .collect();
    assert_eq!(
        replies,
        vec![
            (NodeId(2), MessageBody::VoteResponse { reject: false }),
            (NodeId(3), MessageBody::VoteResponse { reject: true })
        ]
    );
}

#[test]
fn pitfall_vote_reply_is_persisted_before_it_is_sent() {
    let mut voter = node(1, &[1, 2, 3], &[]);
    let vote = MessageBody::Vote {
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        transfer: false,
    };
    voter.step(message(2, 1, 4, vote)).expect("step");
    let ready = cycle(&mut voter);
    assert!(ready.must_sync);
    assert_eq!(
        ready.hard_state.map(|hard| (hard.term, hard.vote)),
        Some((Term(4), Some(NodeId(2))))
    );
    assert_eq!(ready.messages.len(), 1);
}

#[test]
fn pitfall_section_5_4_1_logs_compare_by_last_term_before_index() {
    let mut voter = node(1, &[1, 2, 3], &[]);
    voter
        .step(append(2, 2, (0, 0), &[(1, 1), (2, 2)], 0))
        .expect("step");
    cycle(&mut voter);
    // Longer log of an older last term: not up to date.
    let longer = MessageBody::Vote {
        last_log_index: LogIndex(5),
        last_log_term: Term(1),
        transfer: false,
    };
    voter.step(message(3, 1, 3, longer)).expect("step");
    // Shorter log of a newer last term: up to date.
    let newer = MessageBody::Vote {
        last_log_index: LogIndex(1),
        last_log_term: Term(3),
        transfer: false,
    };
    voter.step(message(2, 1, 4, newer)).expect("step");
    let replies: Vec<_> = cycle(&mut voter)
        .messages
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        replies,
        vec![
            MessageBody::VoteResponse { reject: true },
            MessageBody::VoteResponse { reject: false }
        ]
    );
}

#[test]
fn pitfall_etcd_14370_committed_entries_wait_for_the_local_persist() {
    let mut follower = node(1, &[1, 2, 3], &[]);
    follower
        .step(append(2, 1, (0, 0), &[(1, 1), (2, 1)], 2))
        .expect("step");
    let first = cycle(&mut follower);
    assert_eq!(first.entries.len(), 2);
    assert!(
        first.committed_entries.is_empty(),
        "entries in the same Ready are not yet durable"
    );
    let second = cycle(&mut follower);
    assert_eq!(second.committed_entries.len(), 2);
}

#[test]
fn pitfall_entries_at_or_below_commit_are_never_truncated() {
    let mut follower = node(1, &[1, 2, 3], &[]);
    follower
        .step(append(2, 1, (0, 0), &[(1, 1), (2, 1)], 2))
        .expect("step");
    cycle(&mut follower);
    assert_eq!(follower.status().commit, LogIndex(2));
    // A delayed append overlapping the committed prefix must not cut it.
    follower
        .step(append(2, 1, (0, 0), &[(1, 1)], 1))
        .expect("step");
    follower
        .step(append(3, 2, (1, 1), &[(2, 2)], 0))
        .expect("step");
    assert_eq!(follower.status().last_index, LogIndex(2));
    assert_eq!(follower.term_at(LogIndex(2)), Some(Term(1)));
}

#[test]
fn pitfall_learners_are_never_counted() {
    let mut leader = node(1, &[1, 2, 3], &[4]);
    leader.campaign();
    let grant = MessageBody::VoteResponse { reject: false };
    leader.step(message(2, 1, 1, grant)).expect("step");
    cycle(&mut leader);
    let noop = leader.status().last_index;
    let ack = MessageBody::AppendResponse {
        reject: false,
        index: noop,
        hint_index: LogIndex(0),
        hint_term: Term(0),
    };
    leader.step(message(4, 1, 1, ack)).expect("step");
    cycle(&mut leader);
    assert_eq!(
        leader.status().commit,
        LogIndex(0),
        "leader + learner is no majority of 3 voters"
    );
    let ack = MessageBody::AppendResponse {
        reject: false,
        index: noop,
        hint_index: LogIndex(0),
        hint_term: Term(0),
    };
    leader.step(message(2, 1, 1, ack)).expect("step");
    assert_eq!(leader.status().commit, noop);
}

#[test]
fn pitfall_learner_never_campaigns() {
    let mut learner = node(4, &[1, 2, 3], &[4]);
    for _ in 0..100 {
        learner.tick();
    }
    assert_eq!(learner.status().role, Role::Learner);
    assert!(!learner.has_ready());
}

#[test]
fn membership_changes_wait_for_a_commit_in_term_and_go_one_at_a_time() {
    let mut nodes: Vec<_> = (1..=3).map(|id| node(id, &[1, 2, 3], &[])).collect();
    nodes[0].campaign();
    let vote_requests = cycle(&mut nodes[0]).messages;
    for request in vote_requests.into_iter().filter(|m| m.to == NodeId(2)) {
        nodes[1].step(request).expect("step");
    }
    for response in cycle(&mut nodes[1]).messages {
        nodes[0].step(response).expect("step");
    }
    assert_eq!(nodes[0].status().role, Role::Leader);
    let early = nodes[0].propose_conf_change(ConfChange::AddLearner(NodeId(4)));
    assert!(matches!(
        early,
        Err(ProposeError::NoCommitInTerm) | Err(ProposeError::ConfChangePending)
    ));
    settle(&mut nodes);
    nodes[0]
        .propose_conf_change(ConfChange::AddLearner(NodeId(4)))
        .expect("first change");
    let second = nodes[0].propose_conf_change(ConfChange::AddLearner(NodeId(5)));
    assert_eq!(second, Err(ProposeError::ConfChangePending));
    assert_eq!(
        nodes[0].status().conf_state.learners,
        vec![NodeId(4)],
        "effective when appended"
    );
}

#[test]
fn conf_change_is_undone_when_its_entry_is_truncated() {
    let mut follower = node(1, &[1, 2, 3], &[]);
    let mut change = append(2, 1, (0, 0), &[(1, 1)], 0);
    if let MessageBody::Append { entries, .. } = &mut change.body {
        entries.push(Entry {
            term: Term(1),
            index: LogIndex(2),
            payload: EntryPayload::ConfChange(ConfChange::AddLearner(NodeId(9))),
        });
    }
    follower.step(change).expect("step");
    assert_eq!(follower.status().conf_state.learners, vec![NodeId(9)]);
    cycle(&mut follower);
    follower
        .step(append(3, 2, (1, 1), &[(2, 2)], 0))
        .expect("step");
    assert!(follower.status().conf_state.learners.is_empty());
    cycle(&mut follower);
    let restarted = RawNode::new(&config(1), follower.store().clone()).expect("restart");
    assert!(restarted.status().conf_state.learners.is_empty());
}

#[test]
fn restart_rebuilds_membership_from_the_persisted_log() {
    let mut nodes = three_with_leader();
    nodes[0]
        .propose_conf_change(ConfChange::AddLearner(NodeId(4)))
        .expect("change");
    settle(&mut nodes);
    let restarted = RawNode::new(&config(2), nodes[1].store().clone()).expect("restart");
    assert_eq!(restarted.status().conf_state.learners, vec![NodeId(4)]);
}

#[test]
fn pitfall_heartbeats_stay_small_while_appends_are_in_flight() {
    let mut nodes = three_with_leader();
    for _ in 0..4 {
        nodes[0].propose(vec![7; 64 * 1024]).expect("leader");
    }
    cycle(&mut nodes[0]);
    nodes[0].tick();
    nodes[0].tick();
    let ready = cycle(&mut nodes[0]);
    let heartbeats: Vec<_> = ready
        .messages
        .iter()
        .filter(|m| m.body.kind() == "Heartbeat")
        .collect();
    assert_eq!(heartbeats.len(), 2);
    for heartbeat in heartbeats {
        let bytes = postcard::to_stdvec(heartbeat).expect("serializable");
        assert!(bytes.len() < 32, "heartbeat of {} bytes", bytes.len());
    }
}

#[test]
fn replication_window_and_byte_limit_bound_what_is_in_flight() {
    let mut leader_config = config(1);
    leader_config.inflight_appends_max = 2;
    leader_config.append_bytes_max = 100;
    let store = MemStore::new(ConfState::with_voters(vec![NodeId(1), NodeId(2)]));
    let mut leader = RawNode::new(&leader_config, store).expect("fresh");
    let mut follower = node(2, &[1, 2], &[]);
    leader.campaign();
    let mut nodes = vec![leader, follower];
    settle(&mut nodes);
    for _ in 0..10 {
        nodes[0].propose(vec![1; 40]).expect("leader");
    }
    let appends: Vec<_> = cycle(&mut nodes[0]).messages;
    assert_eq!(appends.len(), 2, "window of two appends");
    for append in &appends {
        if let MessageBody::Append { entries, .. } = &append.body {
            assert_eq!(entries.len(), 1, "64 bytes per entry, 100 bytes per append");
        }
    }
    follower = nodes.pop().expect("two nodes");
    assert_eq!(follower.status().last_index, LogIndex(1));
}

#[test]
fn election_timeouts_are_seeded_and_randomized_in_t_to_2t() {
    let ticks_until_campaign = |seed: u64| {
        let mut node_config = config(1);
        node_config.seed = seed;
        let mut node = RawNode::new(
            &node_config,
            MemStore::new(ConfState::with_voters(vec![NodeId(1), NodeId(2)])),
        )
        .expect("fresh");
        (1..100).find(|_| {
            node.tick();
            node.status().role == Role::Candidate
        })
    };
    let observed: Vec<_> = (0..20).map(ticks_until_campaign).collect();
    assert_eq!(
        observed,
        (0..20).map(ticks_until_campaign).collect::<Vec<_>>()
    );
    assert!(
        observed.iter().all(|ticks| matches!(ticks, Some(10..=19))),
        "{observed:?}"
    );
    assert!(
        observed.iter().any(|ticks| *ticks != observed[0]),
        "{observed:?}"
    );
}

#[test]
fn transfer_to_a_non_voter_is_refused() {
    let mut nodes = three_with_leader();
    assert_eq!(
        nodes[0].transfer_leader(NodeId(9)),
        Err(ProposeError::InvalidTransferTarget { target: NodeId(9) })
    );
    assert_eq!(
        nodes[1].propose(b"x".to_vec()),
        Err(ProposeError::NotLeader {
            leader_hint: Some(NodeId(1))
        })
    );
}

#[test]
fn applied_index_from_the_caller_is_not_applied_again() {
    let nodes = {
        let mut nodes = three_with_leader();
        nodes[0].propose(b"a".to_vec()).expect("leader");
        settle(&mut nodes);
        nodes
    };
    let mut restart_config = config(1);
    restart_config.applied = LogIndex(1);
    let mut restarted = RawNode::new(&restart_config, nodes[0].store().clone()).expect("restart");
    let committed = restarted.ready().committed_entries;
    assert_eq!(
        committed.first().map(|entry| entry.index),
        Some(LogIndex(2))
    );
}

#[test]
fn messages_round_trip_through_postcard() {
    let original = append(2, 3, (4, 2), &[(5, 3)], 4);
    let bytes = postcard::to_stdvec(&original).expect("serialize");
    let decoded: Message = postcard::from_bytes(&bytes).expect("deserialize");
    assert_eq!(decoded, original);
}

#[test]
fn messages_for_another_group_or_node_are_refused() {
    let mut follower = node(1, &[1, 2, 3], &[]);
    let mut wrong_group = append(2, 1, (0, 0), &[], 0);
    wrong_group.group = GroupId(2);
    assert!(matches!(
        follower.step(wrong_group),
        Err(StepError::WrongGroup { .. })
    ));
    let mut wrong_node = append(2, 1, (0, 0), &[], 0);
    wrong_node.to = NodeId(3);
    assert!(matches!(
        follower.step(wrong_node),
        Err(StepError::WrongRecipient { .. })
    ));
}

/// Delivers messages among `nodes` (ids `first_id`, `first_id + 1`, ...) until quiet; messages
/// to any other node are lost.
fn settle_among(nodes: &mut [RawNode<MemStore>], first_id: u64) {
    loop {
        let mut messages = Vec::new();
        for node in nodes.iter_mut() {
            while node.has_ready() {
                messages.extend(cycle(node).messages);
            }
        }
        let to = |message: &Message| message.to.0.checked_sub(first_id).map(|i| i as usize);
        messages.retain(|message| to(message).is_some_and(|i| i < nodes.len()));
        if messages.is_empty() {
            return;
        }
        for message in messages {
            let position = to(&message).expect("kept above");
            nodes[position].step(message).expect("routed");
        }
    }
}

fn quiescing_three() -> Vec<RawNode<MemStore>> {
    let mut nodes: Vec<_> = (1..=3)
        .map(|id| {
            let mut config = config(id);
            config.quiesce = true;
            config.pre_vote = true;
            config.check_quorum = true;
            let conf = ConfState::with_voters(vec![NodeId(1), NodeId(2), NodeId(3)]);
            RawNode::new(&config, MemStore::new(conf)).expect("fresh store")
        })
        .collect();
    nodes[0].campaign();
    settle(&mut nodes);
    assert_eq!(nodes[0].role(), Role::Leader);
    nodes
}

/// Ticks every node once and delivers everything; returns the messages delivered.
fn tick_all(nodes: &mut [RawNode<MemStore>]) -> usize {
    for node in nodes.iter_mut() {
        node.tick();
    }
    settle(nodes)
}

#[test]
fn quiesce_an_idle_group_stops_its_heartbeats_and_a_proposal_restarts_them() {
    let mut nodes = quiescing_three();
    for _ in 0..4 {
        tick_all(&mut nodes);
    }
    assert!(
        nodes.iter().all(RawNode::is_quiesced),
        "all three are quiet once the leader's log is everywhere"
    );
    let commit = nodes[0].commit();
    // Many election timeouts pass: nobody sends anything, nobody campaigns.
    for _ in 0..100 {
        assert_eq!(tick_all(&mut nodes), 0, "a quiesced group sends nothing");
    }
    assert_eq!(nodes[0].role(), Role::Leader);
    assert_eq!(nodes[1].leader(), Some(NodeId(1)));
    // A proposal wakes the leader; its append wakes the followers; it commits.
    let index = nodes[0].propose(b"x".to_vec()).expect("leader");
    assert!(!nodes[0].is_quiesced());
    settle(&mut nodes);
    assert!(nodes[0].commit() >= index && index > commit);
    assert!(!nodes[1].is_quiesced() && !nodes[2].is_quiesced());
    for _ in 0..4 {
        tick_all(&mut nodes);
    }
    assert!(nodes.iter().all(RawNode::is_quiesced), "quiet again");
    assert_eq!(nodes[1].commit(), index, "the Quiesce carried the commit");
}

#[test]
fn quiesce_a_group_with_a_lagging_member_stays_awake() {
    let mut nodes = quiescing_three();
    nodes.pop().expect("three");
    nodes[0].propose(b"x".to_vec()).expect("leader");
    for _ in 0..10 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        // Node 3 is down: messages to it are lost.
        settle_among(&mut nodes, 1);
    }
    assert!(
        !nodes[0].is_quiesced(),
        "a member is behind: the leader keeps heartbeating"
    );
}

#[test]
fn quiesce_a_follower_woken_for_a_lost_leader_campaigns_within_one_timeout() {
    let mut nodes = quiescing_three();
    for _ in 0..4 {
        tick_all(&mut nodes);
    }
    assert!(nodes[1].is_quiesced());
    // The leader's broker is gone; node 2's broker reports it.
    let mut followers: Vec<_> = nodes.drain(1..).collect();
    followers[0].wake(Wake::MemberDown);
    followers[1].wake(Wake::MemberDown);
    let timeout = Config::new(NodeId(2), GroupId(1)).election_timeout_ticks;
    let mut elected_after = None;
    for tick in 1..=timeout {
        for node in followers.iter_mut() {
            node.tick();
        }
        // Routed among nodes 2 and 3 only.
        settle_among(&mut followers, 2);
        if followers.iter().any(|node| node.role() == Role::Leader) {
            elected_after = Some(tick);
            break;
        }
    }
    assert!(
        elected_after.is_some(),
        "a new leader within one base election timeout of the wake"
    );
}

/// Ticks `followers` (ids from 2) until one leads; returns after how many ticks, or `None` after
/// `max_ticks`.
fn ticks_to_a_leader(followers: &mut [RawNode<MemStore>], max_ticks: u32) -> Option<u32> {
    for tick in 1..=max_ticks {
        for node in followers.iter_mut() {
            node.tick();
        }
        settle_among(followers, 2);
        if followers.iter().any(|node| node.role() == Role::Leader) {
            return Some(tick);
        }
    }
    None
}

#[test]
fn followers_told_their_leader_is_lost_elect_the_first_of_them_within_a_tick_or_two() {
    let mut nodes = three_with_leader();
    let term = nodes[0].term();
    let mut followers: Vec<_> = nodes.drain(1..).collect();
    for follower in followers.iter_mut() {
        follower.leader_lost(NodeId(1));
    }
    let timeout = Config::new(NodeId(2), GroupId(1)).election_timeout_ticks;
    let elected = ticks_to_a_leader(&mut followers, 2 * timeout);
    assert!(
        elected.is_some_and(|ticks| ticks < timeout / 3),
        "a new leader after {elected:?} ticks; without the notice it takes at least {timeout}"
    );
    assert_eq!(
        followers[0].role(),
        Role::Leader,
        "the first voter after the lost leader"
    );
    assert_eq!(
        followers[0].term(),
        Term(term.0 + 1),
        "one election, no split vote"
    );
}

#[test]
fn without_a_notice_a_lost_leader_is_replaced_only_after_an_election_timeout() {
    let mut nodes = three_with_leader();
    let mut followers: Vec<_> = nodes.drain(1..).collect();
    let timeout = Config::new(NodeId(2), GroupId(1)).election_timeout_ticks;
    let elected = ticks_to_a_leader(&mut followers, 3 * timeout);
    assert!(
        elected.is_some_and(|ticks| ticks >= timeout),
        "a new leader after {elected:?} ticks"
    );
}

#[test]
fn a_follower_whose_link_to_a_live_leader_broke_does_not_depose_it() {
    let mut nodes = three_with_leader();
    let term = nodes[0].term();
    // Only node 2 lost its link to the leader; node 3 still hears from it.
    nodes[1].leader_lost(NodeId(1));
    for _ in 0..3 {
        for node in nodes.iter_mut() {
            node.tick();
        }
        // Messages between 1 and 2 are lost; everything else is delivered.
        loop {
            let mut messages = Vec::new();
            for node in nodes.iter_mut() {
                while node.has_ready() {
                    messages.extend(cycle(node).messages);
                }
            }
            messages.retain(|m| !matches!((m.from.0, m.to.0), (1, 2) | (2, 1)));
            if messages.is_empty() {
                break;
            }
            for message in messages {
                let to = (message.to.0 - 1) as usize;
                nodes[to].step(message).expect("routed");
            }
        }
    }
    assert_eq!(nodes[0].role(), Role::Leader);
    assert_eq!(nodes[0].term(), term, "node 3 refused node 2's PreVote");
}

#[test]
fn quiesced_followers_told_their_leader_is_lost_elect_the_first_of_them_without_a_split() {
    let mut nodes = quiescing_three();
    for _ in 0..4 {
        tick_all(&mut nodes);
    }
    assert!(nodes[1].is_quiesced() && nodes[2].is_quiesced());
    let term = nodes[0].term();
    let mut followers: Vec<_> = nodes.drain(1..).collect();
    for follower in followers.iter_mut() {
        follower.leader_lost(NodeId(1));
    }
    let timeout = Config::new(NodeId(2), GroupId(1)).election_timeout_ticks;
    let elected = ticks_to_a_leader(&mut followers, 2 * timeout);
    assert!(
        elected.is_some_and(|ticks| ticks < timeout / 3),
        "a new leader after {elected:?} ticks"
    );
    assert_eq!(
        followers[0].term(),
        Term(term.0 + 1),
        "one election, no split vote"
    );
}
