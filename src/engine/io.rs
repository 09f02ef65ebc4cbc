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
