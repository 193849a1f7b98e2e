//! Private files: the data directory, the database and every key file a broker reads are
//! readable by the broker's user only.
//!
//! The database holds the signing keys and the password hashes, so a file another local user
//! can read is a way to mint tokens. New files are created private; an existing directory or
//! file with group or other permission bits is tightened at start-up with a warning, and a
//! broker that cannot tighten it (not its owner, a read-only mount) refuses to start with a
//! message naming the file.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context as _};

/// Mode of the data directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the database and of key files the broker writes.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits that make a file or directory readable or writable by others.
const SHARED_BITS: u32 = 0o077;

/// Creates `dir` (and missing parents) with mode 0700, or tightens an existing one.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    tighten(dir, DIR_MODE)
}

/// Creates `path` empty with mode 0600 when it does not exist (so a database is never briefly
/// readable by others), or tightens an existing one.
pub fn private_file(path: &Path) -> anyhow::Result<()> {
    if !path.exists() {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(path)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot create {}", path.display()))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    tighten(path, FILE_MODE)
}

/// Fsyncs `dir`, so that the entries just created in it survive a power cut.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .with_context(|| format!("cannot fsync the directory {}", dir.display()))
}

/// Refuses to go on with a key file others may read, unless it can be tightened.
pub fn private_key(path: &Path) -> anyhow::Result<()> {
    tighten(path, FILE_MODE)
}

/// Removes group and other bits from `path`'s mode (keeping the owner's), warning when it had
/// any; fails when the mode cannot be changed.
fn tighten(path: &Path, private_mode: u32) -> anyhow::Result<()> {
    let metadata = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & SHARED_BITS == 0 {
        return Ok(());
    }
    let tightened = (mode & !SHARED_BITS) | (private_mode & 0o700);
    if let Err(error) = fs::set_permissions(path, fs::Permissions::from_mode(tightened)) {
        bail!(
            "{} has mode {mode:04o}, readable by other users, and cannot be made private \
             ({error}); set it to {private_mode:04o} (for a Kubernetes secret, defaultMode 0400) \
             and start again",
            path.display()
        );
    }
    tracing::warn!(
        path = %path.display(),
        from = format!("{mode:04o}"),
        to = format!("{tightened:04o}"),
        "tightened the permissions of a file other users could read"
    );
    eprintln!(
        "warning: {} had mode {mode:04o}; changed to {tightened:04o} so other users cannot read it",
        path.display()
    );
    Ok(())
}
