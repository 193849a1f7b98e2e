//! The broker processes of `palisade dev` and the signals that stop them.
//!
//! Owns the child processes: starting one per broker config, noticing one that exits and
//! starting it again with backoff (the others keep running), and stopping all of them (SIGTERM,
//! then SIGKILL after a grace period) and reaping them. It must
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

/// The first wait before a broker that exited is started again; it doubles with every exit
/// that follows a short run, up to `RESTART_BACKOFF_MAX`.
const RESTART_BACKOFF: Duration = Duration::from_secs(1);
const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A broker that ran this long before it exited starts again after `RESTART_BACKOFF`.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Why a running cluster stopped.
pub(super) enum Stopped {
    Signal,
    /// Restarts are off and every broker has exited.
    AllExited,
}

/// How one broker process is started, kept to start it again.
struct Recipe {
    exe: std::path::PathBuf,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    password: String,
}

/// One broker `dev` looks after: its process while it runs, and when to start it again.
struct Supervised {
    id: u64,
    recipe: Recipe,
    child: Option<Child>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

/// The broker processes `dev` started; `stop` ends and reaps all of them.
#[derive(Default)]
pub(super) struct Brokers {
    children: Vec<Supervised>,
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
        let recipe = Recipe {
            exe: exe.to_path_buf(),
            config: config_path.to_path_buf(),
            log: log_path.to_path_buf(),
            password: password.to_string(),
        };
        let _ = std::fs::remove_file(log_path);
        let child = start(&recipe)?;
        let pid = child.id();
        self.children.push(Supervised {
            id,
            recipe,
            child: Some(child),
            started: Instant::now(),
            backoff: RESTART_BACKOFF,
            restart_at: None,
        });
        Ok(pid)
    }

    /// Describes the first broker process that has exited, if any (during start-up, where an
    /// exit stops `dev`).
    pub(super) fn exited(&mut self) -> Option<String> {
        self.children.iter_mut().find_map(|broker| {
            let id = broker.id;
            let child = broker.child.as_mut()?;
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

    /// Looks after the brokers until SIGINT/SIGTERM: a broker that exits is named and, with
    /// `restart`, started again after its backoff, while the others keep running.
    pub(super) async fn watch(&mut self, signals: &mut Signals, restart: bool) -> Stopped {
        let mut check = tokio::time::interval(EXIT_CHECK_INTERVAL);
        loop {
            tokio::select! {
                () = signals.recv() => return Stopped::Signal,
                _ = check.tick() => {
                    let now = Instant::now();
                    for broker in &mut self.children {
                        broker.check(now, restart);
                    }
                    if !restart && self.children.iter().all(|b| b.child.is_none()) {
                        return Stopped::AllExited;
                    }
                }
            }
        }
    }

    /// SIGTERM every broker, then SIGKILL those still running after `STOP_WAIT`; reaps all.
    pub(super) async fn stop(&mut self) {
        for child in self.children.iter().filter_map(|b| b.child.as_ref()) {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet; no memory is touched.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        for broker in &mut self.children {
            let id = broker.id;
            let Some(child) = broker.child.as_mut() else {
                continue;
            };
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

impl Supervised {
    /// Notices an exit (and schedules the restart) or starts the broker again when it is due.
    fn check(&mut self, now: Instant, restart: bool) {
        let id = self.id;
        if let Some(child) = self.child.as_mut() {
            let pid = child.id();
            let status = match child.try_wait() {
                Ok(Some(status)) => status.to_string(),
                Ok(None) => return,
                Err(error) => format!("cannot be checked: {error}"),
            };
            self.child = None;
            if !restart {
                eprintln!(
                    "dev: broker {id} (pid {pid}) exited ({status}); the others keep running \
                     (--no-restart)"
                );
                return;
            }
            if now.duration_since(self.started) >= STABLE_RUN {
                self.backoff = RESTART_BACKOFF;
            }
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MAX);
            self.restart_at = Some(now + wait);
            eprintln!(
                "dev: broker {id} (pid {pid}) exited ({status}); the others keep running, \
                 restarting it in {} s (its log: {})",
                wait.as_secs(),
                self.recipe.log.display()
            );
            return;
        }
        if self.restart_at.is_some_and(|at| now >= at) {
            match start(&self.recipe) {
                Ok(child) => {
                    eprintln!("dev: broker {id} started again (pid {})", child.id());
                    self.child = Some(child);
                    self.started = now;
                    self.restart_at = None;
                }
                Err(error) => {
                    let wait = self.backoff;
                    self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MAX);
                    self.restart_at = Some(now + wait);
                    eprintln!(
                        "dev: broker {id} cannot be started again: {error:#}; retrying in {} s",
                        wait.as_secs()
                    );
                }
            }
        }
    }
}

/// Starts one broker process, appending to its log.
fn start(recipe: &Recipe) -> anyhow::Result<Child> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&recipe.log)
        .with_context(|| format!("cannot open {}", recipe.log.display()))?;
    let mut command = Command::new(&recipe.exe);
    command
        .arg("serve")
        .arg("--config")
        .arg(&recipe.config)
        .env(ADMIN_PASSWORD_ENV, &recipe.password)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent. It makes the
    // kernel send SIGTERM to the broker should `dev` die without stopping it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command.spawn().context("cannot start a broker process")
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
