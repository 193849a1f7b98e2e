//! The broker's secrets are readable by its own user only: a new data directory is 0700, the
//! database (signing keys, password hashes) and every key file are 0600, and a
//! data directory, database or key file left readable by others is made private at start-up with
//! a warning. The positive control is the loose mode each file had just before the start.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::BrokerProcess;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_and_loose_ones_are_tightened_at_start() {
    let mut broker = BrokerProcess::start().await;
    let data = broker.data_dir();
    let database = data.join("palisade.redb");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&database), 0o600, "database");
    let key = broker
        .ca_path()
        .parent()
        .expect("certs dir")
        .join("https-1.key");
    assert_eq!(mode(&key), 0o600, "generated key file");

    // Loosen them all while the broker is stopped; the restart makes them private again.
    broker.kill();
    set_mode(&data, 0o755);
    set_mode(&database, 0o644);
    set_mode(&key, 0o644);
    assert_eq!(
        mode(&database),
        0o644,
        "the control: the file really was loose"
    );
    broker.restart().await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&database), 0o600);
    assert_eq!(mode(&key), 0o600);
    let log = broker.log();
    assert!(
        log.contains("changed to 0600") && log.contains("palisade.redb"),
        "the broker says what it changed:\n{log}"
    );
}
