//! Atomic file writes for everything a run directory holds: a temporary file in the same
//! folder, written, flushed and synced, then renamed over the old one. A crash at any
//! moment leaves either the old file or the new one, never a torn file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct IoError {
    /// The file (or the temporary file or folder on the way to it).
    pub path: PathBuf,
    /// The underlying error.
    pub source: std::io::Error,
}

fn at(path: &Path) -> impl FnOnce(std::io::Error) -> IoError + '_ {
    move |source| IoError {
        path: path.into(),
        source,
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename; creates the
/// folder if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(at(dir))?;
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(at(&tmp))?;
        f.write_all(bytes).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(at(path))
    })();
    if written.is_err() {
        // A full disk must not stay full because of our half-written copy.
        let _ = std::fs::remove_file(&tmp);
    } else {
        remove_stale_temporaries(dir, &name);
    }
    written
}

/// Whether `name` is a temporary file of [`write_atomic`] (`.NAME.tmp-PID`).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        && name
            .rsplit_once(".tmp-")
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `name` is a temporary file of [`write_atomic`] whose writer is gone, so that
/// no write of it will ever finish: its pid names no running process (on Linux; other
/// systems keep every temporary, not knowing).
pub fn is_stale_temporary(name: &str) -> bool {
    if !is_temporary(name) {
        return false;
    }
    let Some((_, pid)) = name.rsplit_once(".tmp-") else {
        return false;
    };
    cfg!(target_os = "linux")
        && pid.parse::<u32>().is_ok_and(|p| p != std::process::id())
        && !Path::new("/proc").join(pid).exists()
}

/// Removes the stale temporaries of `name` in `dir` ([`is_stale_temporary`]): what
/// killed writes of that file left behind.
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(&prefix) && is_stale_temporary(&file) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// [`write_atomic`] of `value` as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), IoError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| IoError {
        path: path.into(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_the_file_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.json");
        write_atomic(&path, b"one").unwrap();
        write_json(&path, &serde_json::json!({"k": 2})).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("\"k\": 2"));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn a_write_removes_what_killed_writes_of_the_file_left_but_not_a_live_writers() {
        let dir = tempfile::tempdir().unwrap();
        // 999999999 is above Linux's pid limit: no process; pid 1 always runs.
        let dead = dir.path().join(".out.json.tmp-999999999");
        let live = dir.path().join(".out.json.tmp-1");
        let other = dir.path().join(".other.json.tmp-999999999");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"half").unwrap();
        }
        write_atomic(&dir.path().join("out.json"), b"{}").unwrap();
        if cfg!(target_os = "linux") {
            assert!(!dead.exists(), "a dead writer's temporary stayed");
        }
        assert!(live.exists() && other.exists());
        assert!(!is_stale_temporary("out.json") && !is_stale_temporary(".out.json.tmp-1"));
    }

    #[test]
    fn an_unwritable_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = write_atomic(&file.join("under-a-file"), b"y").unwrap_err();
        assert!(
            e.to_string().contains("under-a-file") || e.to_string().contains("/f"),
            "{e}"
        );
    }
}
