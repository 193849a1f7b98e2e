//! Free space on the file system that holds a broker's data: the check that refuses client
//! writes before the disk fills, so a full disk never reaches the storage writer (where a failed
//! commit stops the broker, since the durability of what was queued is unknown).
use std::path::{Path, PathBuf};

/// The free-space floor of one data directory.
#[derive(Clone, Debug)]
pub struct DiskGuard {
    dir: PathBuf,
    /// Client writes are refused while fewer bytes than this are free; 0 turns the check off.
    free_bytes_min: u64,
}

/// Why a write was refused for space.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the broker's disk has {free_bytes} bytes free, below storage.disk_free_bytes_min \
     ({free_bytes_min}); writes resume when space is freed (retention, deleted topics, a \
     larger volume)"
)]
pub struct DiskFull {
    pub free_bytes: u64,
    pub free_bytes_min: u64,
}

impl DiskGuard {
    pub fn new(dir: &Path, free_bytes_min: u64) -> DiskGuard {
        DiskGuard {
            dir: dir.to_path_buf(),
            free_bytes_min,
        }
    }

    /// Refuses when the data directory's file system has less than the floor free (to an
    /// unprivileged process). A failing `statvfs` is logged and lets the write through: the
    /// writer's own error handling still stops the broker on a failed commit.
    pub fn check(&self) -> Result<(), DiskFull> {
        if self.free_bytes_min == 0 {
            return Ok(());
        }
        match free_bytes(&self.dir) {
            Ok(free_bytes) if free_bytes < self.free_bytes_min => Err(DiskFull {
                free_bytes,
                free_bytes_min: self.free_bytes_min,
            }),
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::warn!(%error, dir = %self.dir.display(), "cannot read free disk space");
                Ok(())
            }
        }
    }
}

/// Bytes free to unprivileged writers on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid C string and `stat` points to writable memory of the right size.
    let result = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_floor_above_the_free_space_refuses_and_zero_turns_the_check_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let free = free_bytes(dir.path()).expect("statvfs");
        assert!(free > 0);
        assert!(DiskGuard::new(dir.path(), 0).check().is_ok());
        assert!(DiskGuard::new(dir.path(), 1).check().is_ok());
        let refused = DiskGuard::new(dir.path(), u64::MAX).check();
        assert!(
            matches!(
                refused,
                Err(DiskFull {
                    free_bytes_min: u64::MAX,
                    ..
                })
            ),
            "{refused:?}"
        );
    }
}
