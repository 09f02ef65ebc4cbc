//! The run directory and its resume fingerprint. A run directory holds `config.toml`
//! (the resolved config the run was started with), the metrics files, `checkpoints/`,
//! `summary.json` and `plots/`; a strategy that trains task after task keeps one run
//! directory per task under its own (`task-1/`, `task-2/`, ...).
//!
//! The fingerprint is what a resumed run must share with the run it continues: the
//! resolved config as a TOML table. It is compared key by key, so a mismatch names the
//! keys that differ instead of "the config differs", and the engine treats it as opaque
//! data: it never reads a key of it.

use std::path::{Path, PathBuf};

use super::io::{IoError, write_atomic, write_json};

/// The name of the resolved config in a run directory.
pub const CONFIG_FILE: &str = "config.toml";

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
        let mut out = Vec::new();
        diff_tables("", &self.table, &other.table, &mut out);
        out
    }
}

fn diff_tables(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
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
            (x, y) if x != y => out.push(key),
            _ => {}
        }
    }
}

/// A run directory that cannot be used as asked.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
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
        keys_in_words(.keys)
    )]
    ConfigMismatch {
        /// The file holding the run's own config.
        path: PathBuf,
        /// The dotted keys that differ.
        keys: Vec<String>,
    },
}

fn keys_in_words(keys: &[String]) -> String {
    let shown: Vec<String> = keys.iter().take(8).map(|k| format!("`{k}`")).collect();
    let more = keys.len().saturating_sub(shown.len());
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

    /// The run directory of the 0-based task `t` of a strategy that trains task after
    /// task (`task-1` for the first).
    pub fn task(&self, t: usize) -> RunDir {
        RunDir::new(self.root.join(format!("task-{}", t + 1)))
    }

    /// Starts a fresh run: creates the folder and writes `config.toml` from `fingerprint`.
    pub fn start(&self, fingerprint: &Fingerprint) -> Result<(), RunDirError> {
        std::fs::create_dir_all(&self.root).map_err(|source| IoError {
            path: self.root.clone(),
            source,
        })?;
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

    /// Checks that `given` is the fingerprint `saved` (read from `path`) of the run being
    /// resumed, naming the keys that differ.
    pub fn check_resume(
        path: &Path,
        saved: &Fingerprint,
        given: &Fingerprint,
    ) -> Result<(), RunDirError> {
        let keys = saved.differences(given);
        if keys.is_empty() {
            Ok(())
        } else {
            Err(RunDirError::ConfigMismatch {
                path: path.into(),
                keys,
            })
        }
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
            e.contains("key `epochs`") && e.contains("run/config.toml"),
            "{e}"
        );
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
}
