//! Without a quorum, a request waits for a leader up to the forwarding deadline and then gets a
//! precise 503 with `Retry-After`; once the brokers are back, the same request succeeds.

mod common;

use common::cluster::TestCluster;
use common::{raw_client, RawApi};
use palisade::wire::CreateTopic;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_quorum_gives_503_with_retry_after_and_recovers() {
    let mut cluster = TestCluster::start_with(3, "forward_timeout_ms = 1500\n").await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: "quorum".into(),
            partitions: Some(1),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let token = admin.token().expect("token").to_string();
    let api = RawApi {
        http: raw_client(&cluster.ca),
        url: cluster.node(1).url.clone(),
    };
    let produce = json!({"records": [{"value": "needs a majority", "partition": 0}]});
    let reply = api
        .call(
            "POST",
            "/v1/topics/quorum/messages",
            Some(&token),
            Some(&produce),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    cluster.kill(2);
    cluster.kill(3);
    let reply = api
        .call(
            "POST",
            "/v1/topics/quorum/messages",
            Some(&token),
            Some(&produce),
        )
        .await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.retry_after.as_deref(), Some("1"));
    assert!(reply.content_type.starts_with("application/problem+json"));
    let fetch = "/v1/topics/quorum/partitions/0/messages?offset=0";
    let reply = api.call("GET", fetch, Some(&token), None).await;
    assert_eq!(
        reply.status, 503,
        "a fetch needs the leader too: {}",
        reply.body
    );

    cluster.restart(2).await;
    cluster.restart(3).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let reply = api
            .call(
                "POST",
                "/v1/topics/quorum/messages",
                Some(&token),
                Some(&produce),
            )
            .await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "writes never came back"
        );
    }
    let reply = api.call("GET", fetch, Some(&token), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let values: Vec<&str> = reply.body["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["value"].as_str())
        .collect();
    assert_eq!(values.first(), Some(&"needs a majority"));
}
