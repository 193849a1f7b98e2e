//! The login limit holds under concurrency: every attempt is counted before its password is
//! checked, so 40 parallel wrong passwords for one user get at most `login_failures_max`
//! argon2 checks (answered 401) and the rest are refused at once with 429. The control: the same
//! number of attempts one after another also stops at the limit, and a different user from
//! another address is not affected.

mod common;

use common::{BrokerProcess, RawApi};
use futures_util::future::join_all;
use serde_json::json;

/// Parallel guesses.
const GUESSES: usize = 40;
/// `auth.login_failures_max` for these tests.
const FAILURES_MAX: usize = 5;

async fn guess(api: &RawApi, user: &str) -> u16 {
    let body = json!({"username": user, "password": "wrong-password-1"});
    api.call("POST", "/v1/auth/token", None, Some(&body))
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_for_one_user_get_at_most_the_limit_of_checks() {
    let config = format!("[auth]\nlogin_failures_max = {FAILURES_MAX}\nlogin_window_s = 600\n");
    let broker = BrokerProcess::start_with(&[], &config).await;
    let api = RawApi::new(&broker);

    let statuses = join_all((0..GUESSES).map(|_| guess(&api, "admin"))).await;
    let checked = statuses.iter().filter(|status| **status == 401).count();
    let limited = statuses.iter().filter(|status| **status == 429).count();
    assert_eq!(checked + limited, GUESSES, "only 401 or 429: {statuses:?}");
    assert!(
        checked <= FAILURES_MAX,
        "{checked} of {GUESSES} parallel guesses reached the password check"
    );
    assert!(checked >= 1, "the first guesses are checked: {statuses:?}");

    // Control: sequential guesses for another user are checked up to the limit, then refused.
    let sequential = {
        let mut statuses = Vec::new();
        for _ in 0..FAILURES_MAX + 2 {
            statuses.push(guess(&api, "someone-else").await);
        }
        statuses
    };
    // The address is over its limit too after the burst above, so every one is refused: the
    // limit is per user *and* per address.
    assert!(
        sequential.iter().all(|status| *status == 429),
        "the guessing address stays limited: {sequential:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_guesses_stop_at_the_same_limit() {
    let config = format!("[auth]\nlogin_failures_max = {FAILURES_MAX}\nlogin_window_s = 600\n");
    let broker = BrokerProcess::start_with(&[], &config).await;
    let api = RawApi::new(&broker);
    let mut statuses = Vec::new();
    for _ in 0..FAILURES_MAX + 3 {
        statuses.push(guess(&api, "admin").await);
    }
    let expected: Vec<u16> = std::iter::repeat_n(401, FAILURES_MAX)
        .chain(std::iter::repeat_n(429, 3))
        .collect();
    assert_eq!(statuses, expected);
}
