//! Where `palisade login` keeps the access token for later commands.
//!
//! The token lives in `$PALISADE_HOME/token`, or `~/.palisade/token` when `PALISADE_HOME` is
//! unset, written with mode 0600 because it is a bearer credential. This module only reads and
//! writes that file; it never sends or interprets the token.
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

const TOKEN_FILE: &str = "token";
const TOKEN_MODE: u32 = 0o600;
const HOME_DIR_MODE: u32 = 0o700;

/// The token file for the given `PALISADE_HOME` and `HOME` values.
pub fn token_path(palisade_home: Option<&Path>, home: Option<&Path>) -> anyhow::Result<PathBuf> {
    match (palisade_home, home) {
        (Some(dir), _) => Ok(dir.join(TOKEN_FILE)),
        (None, Some(home)) => Ok(home.join(".palisade").join(TOKEN_FILE)),
        (None, None) => {
            anyhow::bail!("neither PALISADE_HOME nor HOME is set; cannot store the token")
        }
    }
}

/// The token file for this process's environment.
pub fn default_token_path() -> anyhow::Result<PathBuf> {
    let palisade_home = std::env::var_os("PALISADE_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    token_path(palisade_home.as_deref(), home.as_deref())
}

/// Writes `token` to `path` (mode 0600), creating its directory (mode 0700) if needed.
pub fn save(path: &Path, token: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(HOME_DIR_MODE))
                .with_context(|| format!("restricting {}", dir.display()))?;
        }
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(TOKEN_MODE)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A file left by an older run may have looser permissions; tighten before writing.
    fs::set_permissions(path, fs::Permissions::from_mode(TOKEN_MODE))
        .with_context(|| format!("restricting {}", path.display()))?;
    file.write_all(token.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The stored token, or `None` when no login happened yet.
pub fn load(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) => {
            let token = text.trim();
            Ok((!token.is_empty()).then(|| token.to_string()))
        }
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palisade_home_wins_over_home() {
        let path = token_path(Some(Path::new("/p")), Some(Path::new("/h"))).expect("path");
        assert_eq!(path, PathBuf::from("/p/token"));
        let path = token_path(None, Some(Path::new("/h"))).expect("path");
        assert_eq!(path, PathBuf::from("/h/.palisade/token"));
        assert!(token_path(None, None).is_err());
    }

    #[test]
    fn save_then_load_round_trips_with_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested").join("token");
        assert_eq!(load(&path).expect("missing file is not an error"), None);
        save(&path, "abc.def.ghi").expect("save");
        assert_eq!(load(&path).expect("load").as_deref(), Some("abc.def.ghi"));
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, TOKEN_MODE);
    }

    #[test]
    fn save_tightens_an_existing_loose_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        save(&path, "new").expect("save");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, TOKEN_MODE);
        assert_eq!(load(&path).expect("load").as_deref(), Some("new"));
    }
}
