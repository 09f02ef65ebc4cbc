//! The run directory and its resume fingerprint. A run directory holds `config.toml`
//! (the resolved config the run was started with), the metrics files, `checkpoints/`,
//! `summary.json` and `plots/`; a strategy that trains task after task keeps one run
//! directory per task under its own (`task-1/`, `task-2/`, ...).
//!
//! A run directory protects itself: [`RunDir::claim`] takes an OS lock on its `.lock`
//! file for the whole run (a second run into it is refused, naming the holder's pid),
//! refuses to start afresh over a run it holds unless asked to overwrite it, and removes
//! the temporary files a killed write left behind.
//!
//! The fingerprint is what a resumed run must share with the run it continues: the
//! resolved config as a TOML table. It is compared key by key, so a mismatch names the
//! keys that differ instead of "the config differs", and the engine treats it as opaque
//! data: it never reads a key of it.

use std::path::{Path, PathBuf};

use super::io::{IoError, write_atomic, write_json};

/// The name of the resolved config in a run directory.
pub const CONFIG_FILE: &str = "config.toml";

/// Where a run directory keeps the checkpoint a resume continues from.
pub const LAST_CHECKPOINT: &str = "checkpoints/last.ckpt";

/// The lock file of a run directory (it holds the running process's pid).
pub const LOCK_FILE: &str = ".lock";

/// What mentor itself writes into a run directory (besides `task-N/` folders and
/// `plots/`, whose files a new run redraws): all that `--overwrite` removes. Anything
/// else the folder holds is left alone.
const RUN_FILES: &[&str] = &[
    CONFIG_FILE,
    "checkpoints",
    "summary.json",
    "metrics.csv",
    "metrics.jsonl",
    "continual-state.json",
    "ewc.safetensors",
    "task_weights.csv",
];

/// How a command means to use a run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Start a new run; refused if the directory holds one.
    Fresh,
    /// Continue the run it holds.
    Resume,
    /// Start a new run, replacing the one it holds (removed when the new run starts).
    Overwrite,
}

/// The OS lock on a run directory, held until dropped (or the process ends, however it
/// ends: the kernel releases it). Dropped, it removes a directory its claim created when
/// nothing but the lock file was written there (a fresh start that failed early), so a
/// failed run leaves no trace.
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
    /// The directory, when this claim created it.
    created: Option<PathBuf>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let Some(dir) = &self.created else {
            return;
        };
        let only_the_lock = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .all(|e| e.file_name() == LOCK_FILE)
        });
        if only_the_lock {
            // Best effort: a directory that cannot be removed is left as it was.
            let _ = std::fs::remove_file(dir.join(LOCK_FILE));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A run's resume fingerprint: its resolved config, as TOML text and as a table.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    text: String,
    table: toml::Table,
}

impl PartialEq for Fingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.table == other.table
    }
}

impl Fingerprint {
    /// The fingerprint of `text`, TOML as a config file holds it; text that is not a TOML
    /// table is compared as a whole (it becomes the one key `text`).
    pub fn from_text(text: impl Into<String>) -> Self {
        let text = text.into();
        let table = text.parse::<toml::Table>().unwrap_or_else(|_| {
            let mut t = toml::Table::new();
            t.insert("text".into(), toml::Value::String(text.clone()));
            t
        });
        Self { text, table }
    }

    /// The fingerprint of `table` (its text is the table pretty-printed).
    pub fn from_table(table: toml::Table) -> Self {
        let text = toml::to_string_pretty(&table).unwrap_or_else(|_| format!("{table}"));
        Self { text, table }
    }

    /// The TOML text (what `config.toml` holds).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The table.
    pub fn table(&self) -> &toml::Table {
        &self.table
    }

    /// This fingerprint with the top-level key `key` set to `value` (a per-task run of
    /// a strategy that changes the epochs or the model, say).
    pub fn with(&self, key: &str, value: toml::Value) -> Self {
        let mut table = self.table.clone();
        table.insert(key.into(), value);
        Self::from_table(table)
    }

    /// The dotted keys whose values differ between `self` and `other`, in order (a key
    /// present in only one of them counts).
    pub fn differences(&self, other: &Fingerprint) -> Vec<String> {
        self.changes(other).into_iter().map(|c| c.key).collect()
    }

    /// The values that differ between `self` (saved) and `other` (given), key by key.
    pub fn changes(&self, other: &Fingerprint) -> Vec<Change> {
        let mut out = Vec::new();
        diff_tables("", &self.table, &other.table, &mut out);
        out
    }
}

/// One key whose value differs between a saved and a given fingerprint.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The dotted key.
    pub key: String,
    /// Its saved value (`None`: the saved config lacks it).
    pub saved: Option<toml::Value>,
    /// Its given value (`None`: the given config lacks it).
    pub given: Option<toml::Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<toml::Value>| match v {
            Some(toml::Value::Table(_)) => "a table".to_string(),
            Some(v) => v.to_string(),
            None => "absent".to_string(),
        };
        write!(
            f,
            "`{}` (saved {}, given {})",
            self.key,
            show(&self.saved),
            show(&self.given)
        )
    }
}

fn diff_tables(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<Change>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (a.get(k), b.get(k)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff_tables(&key, x, y, out)
            }
            (x, y) if x != y => out.push(Change {
                key,
                saved: x.cloned(),
                given: y.cloned(),
            }),
            _ => {}
        }
    }
}

/// A run directory that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// Another process holds the run directory's lock.
    #[error(
        "{} is in use by another mentor run ({holder}); wait for it to finish or choose another --out",
        .path.display()
    )]
    Locked {
        /// The run directory.
        path: PathBuf,
        /// Who holds it, as its lock file says (`pid N`).
        holder: String,
    },
    /// A fresh run was asked for in a directory that holds a run.
    #[error(
        "{} already holds a run ({what}); add --resume to continue it, --overwrite to replace it, or choose another --out",
        .path.display()
    )]
    HoldsRun {
        /// The run directory.
        path: PathBuf,
        /// What it holds.
        what: String,
    },
    /// A file of it could not be written.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A file of it could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `--resume` was asked for but the run has nothing saved to resume from.
    #[error("cannot resume: {0} does not exist")]
    NothingToResume(PathBuf),
    /// The config of a resumed run differs from the one it started with.
    #[error(
        "cannot resume: the config differs from the one saved in {path} in {}; resume with the same config (or start a new --out)",
        changes_in_words(.changes)
    )]
    ConfigMismatch {
        /// The file holding the run's own config.
        path: PathBuf,
        /// The keys that differ, with both values.
        changes: Vec<Change>,
    },
}

/// Removes the temporary files that killed writes left (see
/// [`super::io::is_stale_temporary`]: their writer is gone) in `dir` and in the folders
/// mentor writes below it (`checkpoints/`, `plots/`, `task-N/`), never in a user's
/// other folders and never a live process's temporary.
fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            if name == "checkpoints" || name == "plots" || is_task_dir(&name) {
                remove_temporaries(&path);
            }
        } else if super::io::is_stale_temporary(&name) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// `task-N`, a task's run directory.
fn is_task_dir(name: &str) -> bool {
    name.strip_prefix("task-")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The files mentor writes into `checkpoints/`.
const CHECKPOINT_FILES: &[&str] = &["last.ckpt", "best.ckpt"];

fn changes_in_words(changes: &[Change]) -> String {
    let shown: Vec<String> = changes.iter().take(8).map(Change::to_string).collect();
    let more = changes.len().saturating_sub(shown.len());
    match (shown.len(), more) {
        (1, _) => format!("key {}", shown[0]),
        (_, 0) => format!("keys {}", shown.join(", ")),
        _ => format!("keys {} and {more} more", shown.join(", ")),
    }
}

/// One run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root` (nothing is created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The path of `name` inside it.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.root.join(name)
    }

    /// The checkpoint a resume continues from ([`LAST_CHECKPOINT`]).
    pub fn last_checkpoint(&self) -> PathBuf {
        self.join(LAST_CHECKPOINT)
    }

    /// The run directory of the 0-based task `t` of a strategy that trains task after
    /// task (`task-1` for the first).
    pub fn task(&self, t: usize) -> RunDir {
        RunDir::new(self.root.join(format!("task-{}", t + 1)))
    }

    /// Claims the directory for this process as `claim` says: creates it, locks it for
    /// as long as the returned lock lives, refuses a [`Claim::Fresh`] start over a run
    /// it holds, and removes temporary files that killed writes left in it.
    pub fn claim(&self, claim: Claim) -> Result<RunLock, RunDirError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RunDirError::Io(IoError { path, source })
        };
        let created = (!self.root.exists()).then(|| self.root.clone());
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let lock_path = self.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "pid unknown".into());
                return Err(RunDirError::Locked {
                    path: self.root.clone(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        use std::io::Write;
        file.set_len(0)
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(io(&lock_path))?;
        if claim == Claim::Fresh
            && let Some(what) = self.holds_run()
        {
            return Err(RunDirError::HoldsRun {
                path: self.root.clone(),
                what,
            });
        }
        remove_temporaries(&self.root);
        Ok(RunLock {
            _file: file,
            created,
        })
    }

    /// What run the directory holds, in words (`None` if it holds none): its last
    /// checkpoint's epoch or summary when there is one.
    pub fn holds_run(&self) -> Option<String> {
        let files = [
            LAST_CHECKPOINT,
            "task-1/checkpoints/last.ckpt",
            "summary.json",
            CONFIG_FILE,
        ];
        files
            .iter()
            .find(|f| self.join(f).exists())
            .map(|f| match *f {
                "summary.json" => "a finished run: summary.json".to_string(),
                f => f.to_string(),
            })
    }

    /// Removes what mentor wrote into the directory (an `--overwrite`): its config,
    /// checkpoints, metrics, summary and `task-N/` runs; other files stay, inside
    /// `checkpoints/` and `task-N/` too (a folder is removed only once it is empty).
    pub fn clear(&self) -> Result<(), RunDirError> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        let remove = |path: PathBuf| -> Result<(), RunDirError> {
            match std::fs::remove_file(&path) {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    Err(RunDirError::Io(IoError { path, source }))
                }
                _ => Ok(()),
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if is_task_dir(&name) && path.is_dir() {
                RunDir::new(&path).clear()?;
                let _ = std::fs::remove_file(path.join(LOCK_FILE));
                let _ = std::fs::remove_dir(&path);
            } else if name == "checkpoints" && path.is_dir() {
                for file in CHECKPOINT_FILES {
                    remove(path.join(file))?;
                }
                remove_temporaries(&path);
                let _ = std::fs::remove_dir(&path);
            } else if RUN_FILES.contains(&name.as_str()) && !path.is_dir() {
                remove(path)?;
            }
        }
        Ok(())
    }

    /// Starts a fresh run: creates the folder, removes what an earlier run left in it
    /// (see [`RunDir::clear`]; a fresh start over a run was refused unless asked for)
    /// and writes `config.toml` from `fingerprint`.
    pub fn start(&self, fingerprint: &Fingerprint) -> Result<(), RunDirError> {
        std::fs::create_dir_all(&self.root).map_err(|source| IoError {
            path: self.root.clone(),
            source,
        })?;
        self.clear()?;
        write_atomic(&self.join(CONFIG_FILE), fingerprint.text().as_bytes())?;
        Ok(())
    }

    /// The fingerprint saved in `config.toml`.
    pub fn saved_fingerprint(&self) -> Result<Fingerprint, RunDirError> {
        let path = self.join(CONFIG_FILE);
        if !path.is_file() {
            return Err(RunDirError::NothingToResume(path));
        }
        let text =
            std::fs::read_to_string(&path).map_err(|source| RunDirError::Read { path, source })?;
        Ok(Fingerprint::from_text(text))
    }

    /// The fingerprint saved in `config.toml`, or `None` when the run has none yet: it
    /// was stopped before its first write, so `--resume` starts it.
    pub fn saved_fingerprint_if_any(&self) -> Result<Option<Fingerprint>, RunDirError> {
        if !self.join(CONFIG_FILE).exists() {
            return Ok(None);
        }
        self.saved_fingerprint().map(Some)
    }

    /// Checks that `given` is the fingerprint `saved` (read from `path`) of the run being
    /// resumed, naming the keys that differ.
    pub fn check_resume(
        path: &Path,
        saved: &Fingerprint,
        given: &Fingerprint,
    ) -> Result<(), RunDirError> {
        let changes = saved.changes(given);
        if changes.is_empty() {
            Ok(())
        } else {
            Err(RunDirError::ConfigMismatch {
                path: path.into(),
                changes,
            })
        }
    }

    /// [`RunDir::check_resume`], except that a larger top-level `epochs` (at least
    /// `epochs_done`) is allowed: the run is extended. Returns whether it is.
    pub fn check_resume_or_extend(
        path: &Path,
        saved: &Fingerprint,
        given: &Fingerprint,
        epochs_done: usize,
    ) -> Result<bool, RunDirError> {
        let changes = saved.changes(given);
        let extends = |c: &Change| {
            c.key == "epochs"
                && matches!(
                    (&c.saved, &c.given),
                    (Some(toml::Value::Integer(_)), Some(toml::Value::Integer(n)))
                        if usize::try_from(*n).is_ok_and(|n| n >= epochs_done)
                )
        };
        if !changes.is_empty() && changes.iter().all(extends) {
            return Ok(true);
        }
        Self::check_resume(path, saved, given).map(|()| false)
    }

    /// Writes `value` as pretty JSON to `name` inside the run directory, atomically.
    pub fn write_json<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), IoError> {
        write_json(&self.join(name), value)
    }

    /// Writes `bytes` to `name` inside the run directory, atomically.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), IoError> {
        write_atomic(&self.join(name), bytes)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_claim_that_wrote_nothing_leaves_no_directory_behind() {
        let tmp = tempfile::tempdir().unwrap();
        // Created by the claim, nothing written: gone with the lock.
        let fresh = super::RunDir::new(tmp.path().join("runs/a"));
        drop(fresh.claim(super::Claim::Fresh).unwrap());
        assert!(!fresh.path().exists());
        assert!(
            tmp.path().join("runs").is_dir(),
            "only the run's own directory goes"
        );
        // Created by the claim, then written to: kept, with its lock file.
        let used = super::RunDir::new(tmp.path().join("b"));
        let lock = used.claim(super::Claim::Fresh).unwrap();
        used.write("config.toml", b"x").unwrap();
        drop(lock);
        assert!(used.join("config.toml").is_file() && used.join(super::LOCK_FILE).is_file());
        // There before the claim: kept even when empty.
        let existing = super::RunDir::new(tmp.path().join("c"));
        std::fs::create_dir(existing.path()).unwrap();
        drop(existing.claim(super::Claim::Fresh).unwrap());
        assert!(existing.path().is_dir());
    }

    use super::*;

    #[test]
    fn differences_name_nested_keys_and_ignore_order() {
        let a =
            Fingerprint::from_text("lr = 0.1\nepochs = 3\n[model]\ntype = \"mlp\"\nhidden = 8\n");
        let b =
            Fingerprint::from_text("epochs = 3\nlr = 0.1\n[model]\nhidden = 8\ntype = \"mlp\"\n");
        assert_eq!(a, b);
        assert!(a.differences(&b).is_empty());
        let c = Fingerprint::from_text("epochs = 4\nlr = 0.1\n[model]\ntype = \"cnn\"\n");
        assert_eq!(a.differences(&c), ["epochs", "model.hidden", "model.type"]);
    }

    #[test]
    fn a_mismatch_names_the_keys_and_the_file() {
        let a = Fingerprint::from_text("epochs = 3");
        let b = a.with("epochs", toml::Value::Integer(5));
        let e = RunDir::check_resume(Path::new("run/config.toml"), &a, &b)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("key `epochs` (saved 3, given 5)") && e.contains("run/config.toml"),
            "{e}"
        );
    }

    #[test]
    fn more_epochs_extend_a_run_and_fewer_than_done_are_refused() {
        let p = Path::new("c");
        let saved = Fingerprint::from_text("epochs = 3\nlr = 0.1\n");
        let more = saved.with("epochs", toml::Value::Integer(5));
        assert!(RunDir::check_resume_or_extend(p, &saved, &more, 3).unwrap());
        assert!(!RunDir::check_resume_or_extend(p, &saved, &saved, 3).unwrap());
        let fewer = saved.with("epochs", toml::Value::Integer(2));
        assert!(RunDir::check_resume_or_extend(p, &saved, &fewer, 3).is_err());
        let other = more.with("lr", toml::Value::Float(0.2));
        let e = RunDir::check_resume_or_extend(p, &saved, &other, 3).unwrap_err();
        assert!(e.to_string().contains("`lr` (saved 0.1, given 0.2)"), "{e}");
    }

    #[test]
    fn start_writes_the_config_and_tasks_nest() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        let f = Fingerprint::from_text("seed = 1\n");
        run.start(&f).unwrap();
        assert_eq!(run.saved_fingerprint().unwrap(), f);
        assert_eq!(run.task(0).path(), dir.path().join("r/task-1"));
        assert!(matches!(
            run.task(0).saved_fingerprint(),
            Err(RunDirError::NothingToResume(_))
        ));
    }

    #[test]
    fn a_claimed_directory_refuses_a_second_claim_naming_the_pid() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("r"));
        let lock = run.claim(Claim::Fresh).unwrap();
        let e = run.claim(Claim::Resume).unwrap_err().to_string();
        assert!(
            e.contains(&format!("pid {}", std::process::id())) && e.contains("in use"),
            "{e}"
        );
        drop(lock);
        run.claim(Claim::Resume).unwrap();
    }

    #[test]
    fn a_fresh_claim_over_a_run_is_refused_and_overwrite_clears_only_mentors_files() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        run.start(&Fingerprint::from_text("seed = 1\n")).unwrap();
        run.write("checkpoints/last.ckpt", b"x").unwrap();
        run.write("task-2/summary.json", b"{}").unwrap();
        run.write("notes.txt", b"mine").unwrap();
        run.write("checkpoints/my-notes.txt", b"mine").unwrap();
        run.write("task-2/checkpoints/best.ckpt", b"x").unwrap();
        run.write("task-3/my-plot.png", b"mine").unwrap();
        // A temporary of a process that no longer exists (above Linux's pid limit).
        let stale = run.join("checkpoints/.last.ckpt.tmp-999999999");
        let live = run.join(format!("checkpoints/.best.ckpt.tmp-{}", std::process::id()));
        std::fs::write(&live, b"being written").unwrap();
        std::fs::write(&stale, b"half").unwrap();
        let e = run.claim(Claim::Fresh).unwrap_err().to_string();
        assert!(e.contains("last.ckpt") && e.contains("--overwrite"), "{e}");
        assert!(
            run.join("checkpoints/last.ckpt").is_file(),
            "refusal removed files"
        );
        let _lock = run.claim(Claim::Overwrite).unwrap();
        assert!(!stale.exists(), "stale temporary kept");
        assert!(live.exists(), "a live process's temporary removed");
        std::fs::remove_file(&live).unwrap();
        run.start(&Fingerprint::from_text("seed = 2\n")).unwrap();
        assert!(!run.join("checkpoints/last.ckpt").exists() && !run.join("task-2").exists());
        for mine in [
            "notes.txt",
            "checkpoints/my-notes.txt",
            "task-3/my-plot.png",
        ] {
            assert_eq!(std::fs::read(run.join(mine)).unwrap(), b"mine", "{mine}");
        }
        assert_eq!(
            run.saved_fingerprint().unwrap(),
            Fingerprint::from_text("seed = 2")
        );
    }
}
