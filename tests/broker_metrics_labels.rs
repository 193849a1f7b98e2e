//! Made-up HTTP methods cannot grow `/metrics`: the method label comes from a closed set, and
//! every unknown method counts under `OTHER`.

mod common;

use common::{BrokerProcess, RawApi};

/// Distinct made-up methods sent; each would be a new label series without the closed set.
const MADE_UP_METHODS: usize = 50;

async fn metrics_text(api: &RawApi) -> String {
    let response = api
        .http
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.expect("metrics body")
}

#[actix_rt::test]
async fn made_up_methods_share_one_label() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let before = metrics_text(&api).await;
    for n in 0..MADE_UP_METHODS {
        let method = format!("MADEUP{n:03}");
        let reply = api.send(&method, "/v1/topics", &[], None).await;
        assert!(reply.status >= 400, "{method} is refused: {}", reply.status);
    }
    let after = metrics_text(&api).await;
    assert!(!after.contains("MADEUP"), "a made-up method became a label");
    assert!(
        after.contains("method=\"OTHER\""),
        "unknown methods count as OTHER"
    );
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("palisade_http_requests"))
            .count()
    };
    assert!(
        series(&after) > 0,
        "the request counter is exported:\n{after}"
    );
    assert!(
        series(&after) <= series(&before) + 4,
        "{MADE_UP_METHODS} made-up methods added at most a few series: {} -> {}",
        series(&before),
        series(&after)
    );
}
