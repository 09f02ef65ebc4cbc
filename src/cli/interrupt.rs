//! Ctrl-C, SIGTERM and SIGHUP: the process stops at once (a checkpoint being written is left whole: writes go
//! through a temporary file and a rename, and the temporary is removed when the run
//! directory is next claimed) and says where the run can be resumed from.

use std::path::PathBuf;
use std::sync::Mutex;

/// The run directory of the run in progress, if any.
static RUN_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Records `dir` as the run directory that an interrupt should name.
pub fn set_run_dir(dir: &std::path::Path) {
    if let Ok(mut slot) = RUN_DIR.lock() {
        *slot = Some(dir.to_path_buf());
    }
}

/// What an interrupt prints for the run in `dir` (`None`: no run started).
pub fn message(dir: Option<&std::path::Path>) -> String {
    match dir {
        Some(dir) if dir.join("checkpoints/last.ckpt").is_file() => format!(
            "interrupted: {} keeps the last finished epoch; run the same command with --resume to continue",
            dir.join("checkpoints/last.ckpt").display()
        ),
        Some(dir) => format!(
            "interrupted before the first checkpoint of {}; run the same command with --resume to start it again",
            dir.display()
        ),
        None => "interrupted".to_string(),
    }
}

/// Installs the handler of Ctrl-C (SIGINT), SIGTERM and SIGHUP: print [`message`] and
/// exit with 130 (128 + SIGINT; the handler is not told which of the three came).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        let dir = RUN_DIR.lock().ok().and_then(|d| d.clone());
        eprintln!("\n{}", message(dir.as_deref()));
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_checkpoint_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(message(Some(dir.path())).contains("before the first checkpoint"));
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        std::fs::write(dir.path().join("checkpoints/last.ckpt"), b"x").unwrap();
        let m = message(Some(dir.path()));
        assert!(m.contains("last.ckpt") && m.contains("--resume"), "{m}");
        assert_eq!(message(None), "interrupted");
    }
}
