//! Ctrl-C, SIGTERM and SIGHUP: the process stops at once (a checkpoint being written is left whole: writes go
//! through a temporary file and a rename, and the temporary is removed when the run
//! directory is next claimed) and says where the run can be resumed from.

use std::path::PathBuf;
use std::sync::Mutex;

/// The run directory of the run in progress, if any.
static RUN_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// `(rank, ranks)` when this process is a rank of a data-parallel job.
static JOB: Mutex<Option<(usize, usize)>> = Mutex::new(None);

/// Records that this process is rank `rank` of `ranks`: an interrupt then says so, since
/// under mpirun a signal usually means another rank ended the job.
pub fn set_job(rank: usize, ranks: usize) {
    if let Ok(mut slot) = JOB.lock() {
        *slot = Some((rank, ranks));
    }
}

/// Records `dir` as the run directory that an interrupt should name.
pub fn set_run_dir(dir: &std::path::Path) {
    if let Ok(mut slot) = RUN_DIR.lock() {
        *slot = Some(dir.to_path_buf());
    }
}

/// What an interrupt prints for the run in `dir` (`None`: no run started), on rank
/// `job.0` of `job.1` when the process is one of a job's ranks.
pub fn message(dir: Option<&std::path::Path>, job: Option<(usize, usize)>) -> String {
    let what = match dir {
        Some(dir) if dir.join("checkpoints/last.ckpt").is_file() => format!(
            "interrupted: {} keeps the last finished epoch; run the same command with --resume to continue",
            dir.join("checkpoints/last.ckpt").display()
        ),
        Some(dir) => format!(
            "interrupted before the first checkpoint of {}; run the same command with --resume to start it again",
            dir.display()
        ),
        None => "interrupted".to_string(),
    };
    match job {
        Some((rank, ranks)) => format!(
            "rank {rank} of {ranks}: {what} (mpirun stops every rank when one fails or is stopped: the first error above says why)"
        ),
        None => what,
    }
}

/// Installs the handler of Ctrl-C (SIGINT), SIGTERM and SIGHUP: print [`message`] and
/// exit with 130 (128 + SIGINT; the handler is not told which of the three came).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        let dir = RUN_DIR.lock().ok().and_then(|d| d.clone());
        let job = JOB.lock().ok().and_then(|j| *j);
        eprintln!("\n{}", message(dir.as_deref(), job));
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_the_checkpoint_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(message(Some(dir.path()), None).contains("before the first checkpoint"));
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        std::fs::write(dir.path().join("checkpoints/last.ckpt"), b"x").unwrap();
        let m = message(Some(dir.path()), None);
        assert!(m.contains("last.ckpt") && m.contains("--resume"), "{m}");
        assert_eq!(message(None, None), "interrupted");
        let m = message(Some(dir.path()), Some((1, 2)));
        assert!(
            m.starts_with("rank 1 of 2: ") && m.contains("first error"),
            "{m}"
        );
    }
}
