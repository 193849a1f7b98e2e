//! `palisade dev`: the README's main command. It writes `cluster.json` in the documented shape, the
//! broker it lists serves the admin it lists, and SIGTERM stops the broker processes it started.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use palisade::client::Client;

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn wait_for_file(path: &Path) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_writes_cluster_json_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut dev = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["dev", "--brokers", "1", "--http-port-base", "0", "--dir"])
        .arg(dir.path())
        .env_remove("PALISADE_ADMIN_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start palisade dev");
    let cluster = wait_for_file(&dir.path().join("cluster.json")).await;
    let broker = &cluster["brokers"][0];
    assert_eq!(broker["id"], 1);
    let url = broker["http"].as_str().expect("http url");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(broker["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    let pid = broker["pid"].as_i64().expect("pid") as i32;
    let ca = cluster["ca_cert"].as_str().expect("ca_cert");
    assert!(Path::new(ca).is_absolute() && Path::new(ca).exists());
    assert_eq!(cluster["admin"]["username"], "admin");
    let password = cluster["admin"]["password"].as_str().expect("password");

    let client = Client::new(url, Some(Path::new(ca))).expect("client");
    let token = client
        .login("admin", password)
        .await
        .expect("the listed admin can log in")
        .access_token;
    let whoami = client.with_token(token).whoami().await.expect("whoami");
    assert_eq!(whoami.principal, "admin");
    assert!(process_alive(pid));

    // SAFETY: kill(2) on the child we started.
    unsafe {
        libc::kill(dev.id() as i32, libc::SIGTERM);
    }
    let status = dev.wait().expect("dev exits");
    assert!(status.success(), "dev exits cleanly on SIGTERM: {status}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while process_alive(pid) {
        // The broker may linger as a zombie only if dev did not reap it; dev waits for it.
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker {pid} still running after dev stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn dev_refuses_more_brokers_than_this_build_runs_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["dev", "--brokers", "3", "--http-port-base", "0", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run palisade dev");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--brokers 3 is not supported yet"),
        "{stderr}"
    );
}
