//! The broker processes of `palisade dev` and the signals that stop them.
//!
//! Owns the child processes: starting one per broker config, noticing one that exits, and
//! stopping all of them (SIGTERM, then SIGKILL after a grace period) and reaping them. It must
//! not decide what a broker runs with: `dev` hands it the config and the admin password.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::Instant;

use crate::app::ADMIN_PASSWORD_ENV;

/// How often a running cluster is checked for a broker that exited.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long brokers get to stop after SIGTERM before SIGKILL.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Why a running cluster stopped.
pub(super) enum Stopped {
    Signal,
    BrokerExited(String),
}

/// The broker processes `dev` started; `stop` ends and reaps all of them.
#[derive(Default)]
pub(super) struct Brokers {
    children: Vec<(u64, Child)>,
}

impl Brokers {
    /// Starts `palisade serve --config config_path`, logging to `log_path`; returns its pid.
    pub(super) fn spawn(
        &mut self,
        id: u64,
        exe: &Path,
        config_path: &Path,
        log_path: &Path,
        password: &str,
    ) -> anyhow::Result<u32> {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--config")
            .arg(config_path)
            .env(ADMIN_PASSWORD_ENV, password)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent. It makes
        // the kernel send SIGTERM to the broker should `dev` die without stopping it.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().context("cannot start a broker process")?;
        let pid = child.id();
        self.children.push((id, child));
        Ok(pid)
    }

    /// Describes the first broker process that has exited, if any.
    pub(super) fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|(id, child)| {
            let pid = child.id();
            match child.try_wait() {
                Ok(Some(status)) => Some(format!("broker {id} (pid {pid}) exited ({status})")),
                Ok(None) => None,
                Err(error) => Some(format!(
                    "broker {id} (pid {pid}) cannot be checked: {error}"
                )),
            }
        })
    }

    /// Waits for SIGINT/SIGTERM or for a broker to exit.
    pub(super) async fn watch(&mut self, signals: &mut Signals) -> Stopped {
        let mut check = tokio::time::interval(EXIT_CHECK_INTERVAL);
        loop {
            tokio::select! {
                () = signals.recv() => return Stopped::Signal,
                _ = check.tick() => {
                    if let Some(exited) = self.exited() {
                        return Stopped::BrokerExited(exited);
                    }
                }
            }
        }
    }

    /// SIGTERM every broker, then SIGKILL those still running after `STOP_WAIT`; reaps all.
    pub(super) async fn stop(&mut self) {
        for (_, child) in &self.children {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet; no memory is touched.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        for (id, child) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("broker {id} did not stop within {STOP_WAIT:?}; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        self.children.clear();
    }
}

/// SIGINT and SIGTERM, listened to from the start so that neither kills `dev` before it has
/// stopped its brokers.
pub(super) struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    pub(super) fn listen() -> anyhow::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    pub(super) async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
