//! A new topic's partitions are led by their preferred replicas (the first of each assignment,
//! which placement rotates across brokers) from their first election, not only after the
//! balancer's next pass. The balancer is kept out of the way (an hour between passes), so only
//! the first elections decide where the leaders are.

mod common;

use std::collections::BTreeMap;

use common::cluster::{wait_for, TestCluster};

const PARTITIONS: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topic_is_led_by_its_preferred_replicas_from_the_first_election() {
    let cluster = TestCluster::start_with(3, "balance_interval_ms = 3600000").await;
    let admin = cluster.admin(1).await;
    for round in 0..2 {
        let topic = format!("fresh-{round}");
        common::create_topic(&admin, &topic, PARTITIONS, 3).await;
        let partitions = wait_for("every partition of the new topic led", 60, || async {
            let view = admin.cluster().await.ok()?;
            let partitions: Vec<_> = (view.partitions.into_iter())
                .filter(|p| p.topic == topic)
                .collect();
            (partitions.len() == PARTITIONS as usize
                && partitions.iter().all(|p| p.leader.is_some()))
            .then_some(partitions)
        })
        .await;
        let not_preferred: Vec<_> = partitions
            .iter()
            .filter(|p| p.leader != p.replicas.first().copied())
            .map(|p| (p.partition, p.leader, p.replicas.clone()))
            .collect();
        let mut leads: BTreeMap<u64, usize> = BTreeMap::new();
        for partition in &partitions {
            *leads.entry(partition.leader.expect("led")).or_default() += 1;
        }
        if !not_preferred.is_empty() {
            eprintln!("{}", cluster.node(1).log());
        }
        assert!(
            not_preferred.is_empty(),
            "topic {topic}: partitions led by another than their preferred replica \
             (partition, leader, replicas): {not_preferred:?}; leaders per broker: {leads:?}"
        );
        assert_eq!(
            leads.values().copied().collect::<Vec<_>>(),
            vec![4, 4, 4],
            "topic {topic}: leaders per broker {leads:?}"
        );
    }
}
