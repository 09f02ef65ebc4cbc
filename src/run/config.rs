//! The run config: one TOML file that reproduces a run. It is parsed and validated once,
//! at this boundary, and the resolved version is written into the run directory before
//! training starts. Every key can also be set on the command line as `--set key=value`
//! (dotted keys for nested tables, e.g. `--set model.hidden=[512,512]`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::DataConfig;
use crate::engine::groups::GroupRule;
use crate::engine::optim::OptimizerConfig;
use crate::engine::schedule::ScheduleConfig;
use crate::engine::{CheckpointConfig, EvalConfig, Fingerprint, RunLabel, TrainSpec};
use crate::models::ModelConfig;
use crate::rules::{self, Interval, Rule, Violation};
use crate::run::strategy::StrategyConfig;
use crate::transfer::InitConfig;

/// A config that could not be read or breaks a rule; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The TOML text is not valid TOML.
    #[error("{origin}: {message}")]
    Syntax {
        /// File name or `--set`.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A key is unknown or has a value of the wrong type.
    #[error("config key `{key}`: {message}")]
    Key {
        /// Dotted path of the key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A `--set` argument is not of the form `key=value`.
    #[error("--set {0:?}: expected key=value")]
    SetSyntax(String),
    /// A value breaks a rule: the key and the typed [`Rule`].
    #[error(transparent)]
    Invalid(#[from] Violation),
}

fn invalid(key: impl Into<String>, rule: Rule) -> ConfigError {
    ConfigError::Invalid(Violation::new(key, rule))
}

/// Everything that defines a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Seed of every random choice: initial weights, shuffles, dropout, splits.
    pub seed: u64,
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Examples per training step.
    pub batch_size: usize,
    /// Base learning rate (groups multiply it).
    pub lr: f64,
    /// Data source and cuts.
    pub data: DataConfig,
    /// Network.
    pub model: ModelConfig,
    /// Optimiser.
    pub optim: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Parameter groups, by name pattern.
    pub groups: Vec<GroupRule>,
    /// Starting weights: random, or a pretrained checkpoint (transfer learning).
    pub init: InitConfig,
    /// What the run minimises: plain supervised training, distillation, ...
    pub strategy: StrategyConfig,
    /// When the test split is scored (written only when it differs from every epoch, so
    /// the configs, and resume fingerprints, of earlier runs read the same).
    #[serde(skip_serializing_if = "EvalConfig::is_default")]
    pub eval: EvalConfig,
    /// Checkpoints within an epoch (written only when asked for, so the configs and
    /// resume fingerprints of earlier runs read the same).
    #[serde(skip_serializing_if = "CheckpointConfig::is_default")]
    pub checkpoint: CheckpointConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            data: DataConfig::default(),
            model: ModelConfig::default(),
            optim: OptimizerConfig::default(),
            schedule: ScheduleConfig::default(),
            groups: Vec::new(),
            init: InitConfig::default(),
            strategy: StrategyConfig::default(),
            eval: EvalConfig::default(),
            checkpoint: CheckpointConfig::default(),
        }
    }
}

/// A [`RunConfig`] that passed every rule of [`RunConfig::validate`]. Only
/// [`RunConfig::check`] makes one, so whatever takes it (the run entry point,
/// [`crate::run::run`]) need not check again and cannot be handed an unchecked config
/// (linfa's `ParamGuard` pattern). It reads as the config it wraps.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRunConfig(RunConfig);

impl ValidRunConfig {
    /// The checked config, to change (changing it needs another [`RunConfig::check`]).
    pub fn into_inner(self) -> RunConfig {
        self.0
    }
}

impl std::ops::Deref for ValidRunConfig {
    type Target = RunConfig;

    fn deref(&self) -> &RunConfig {
        &self.0
    }
}

impl TryFrom<RunConfig> for ValidRunConfig {
    type Error = ConfigError;

    fn try_from(config: RunConfig) -> Result<Self, ConfigError> {
        config.check()
    }
}

impl RunConfig {
    /// What the engine reads of this config: how to train the network.
    pub fn spec(&self) -> TrainSpec {
        TrainSpec {
            seed: self.seed,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            optim: self.optim.clone(),
            schedule: self.schedule.clone(),
            groups: self.groups.clone(),
            model: self.model.clone(),
            label: RunLabel {
                model: self.model.kind().into(),
                dataset: self.data.dataset.to_string(),
                strategy: self.strategy.kind().into(),
            },
            eval: self.eval.clone(),
            checkpoint: self.checkpoint.clone(),
        }
    }

    /// The resume fingerprint of a run with this config: the resolved config itself,
    /// less `[data.loader]` (how many threads read photos changes no result).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut config = self.clone();
        config.data.loader = crate::data::stream::LoaderConfig::default();
        Fingerprint::from_text(config.to_toml())
    }

    /// Parses TOML text, naming the offending key on error.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let value: toml::Value = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.into(),
            message: syntax_message(text, &e),
        })?;
        Self::from_value(value)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    fn from_value(value: toml::Value) -> Result<Self, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().message().trim().to_string();
            ConfigError::Key {
                key: if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                message,
            }
        })
    }

    /// This config as a TOML table.
    pub fn to_value(&self) -> toml::Value {
        toml::Value::try_from(self).expect("a RunConfig always serialises to TOML")
    }

    /// This config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a RunConfig always serialises to TOML")
    }

    /// Applies `key=value` overrides in order; the value is parsed as TOML (a number,
    /// boolean, array or quoted string), and as a bare string if that fails.
    pub fn with_overrides(&self, sets: &[String]) -> Result<Self, ConfigError> {
        let mut root = self.to_value();
        for set in sets {
            let (key, raw) = set
                .split_once('=')
                .ok_or_else(|| ConfigError::SetSyntax(set.clone()))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(ConfigError::SetSyntax(set.clone()));
            }
            let value = parse_value(raw.trim());
            set_dotted(&mut root, key, value)?;
        }
        Self::from_value(root)
    }

    /// Checks every rule and returns the config as a [`ValidRunConfig`]; the error names
    /// the first key that breaks one.
    pub fn check(self) -> Result<ValidRunConfig, ConfigError> {
        self.validate()?;
        Ok(ValidRunConfig(self))
    }

    /// Checks every rule; the error names the first key that breaks one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        rules::at_least(self.epochs, 1).map_err(|r| invalid("epochs", r))?;
        rules::at_least(self.batch_size, 1).map_err(|r| invalid("batch_size", r))?;
        rules::positive(self.lr).map_err(|r| invalid("lr", r))?;
        let d = &self.data;
        Interval::UNIT_OPEN
            .check(d.val_fraction)
            .map_err(|r| invalid("data.val_fraction", r))?;
        if let Some(n) = d.per_class {
            rules::at_least(n, 1).map_err(|r| invalid("data.per_class", r))?;
        }
        if d.classes.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(invalid("data.classes", Rule::NotEmpty));
        }
        if self.eval.test_every != 1 && d.val_fraction == 0.0 {
            return Err(invalid(
                "eval.test_every",
                Rule::Needs {
                    condition: "a validation split (data.val_fraction > 0): without one the test split selects checkpoints, every epoch",
                },
            ));
        }
        if self.checkpoint.every_steps > 0
            && matches!(
                self.strategy,
                crate::run::strategy::StrategyConfig::Continual(_)
                    | crate::run::strategy::StrategyConfig::Multitask(_)
            )
        {
            return Err(invalid(
                "checkpoint.every_steps",
                Rule::Needs {
                    condition: "a strategy other than \"continual\" and \"multitask\" (they resume at epoch ends: continual task by task, multitask with per-epoch task-loss sums a checkpoint does not keep)",
                },
            ));
        }
        if self.data.transform.is_some()
            && matches!(
                self.strategy,
                crate::run::strategy::StrategyConfig::Continual(_)
                    | crate::run::strategy::StrategyConfig::Multitask(_)
            )
        {
            return Err(invalid(
                "data.transform",
                Rule::Needs {
                    condition: "a strategy that trains on photos streamed from disk: supervised, distill, linear-probe or self-supervised (continual and multitask runs need their data in memory: remove data.transform and give the folder's images one size)",
                },
            ));
        }
        if let (Some(_), crate::run::strategy::StrategyConfig::SelfSupervised(c)) =
            (&self.data.transform, &self.strategy)
        {
            if !c.method.streams() {
                return Err(invalid(
                    "strategy.method",
                    Rule::Needs {
                        condition: "images in memory for relative-position, deep-cluster and cpc (they need every image at once): remove data.transform, or stream photos with simclr, moco or amdim",
                    },
                ));
            }
            if c.augment != crate::data::augment::AugmentConfig::default() {
                return Err(invalid(
                    "strategy.augment",
                    Rule::Needs {
                        condition: "images in memory: the views of streamed photos are data.transform.train applied twice (color-jitter with p, random-grayscale, gaussian-blur), so remove strategy.augment",
                    },
                ));
            }
        }
        if let Some(n) = self.eval.val_examples {
            rules::at_least(n, 1).map_err(|r| invalid("eval.val_examples", r))?;
            if d.val_fraction == 0.0 {
                return Err(invalid(
                    "eval.val_examples",
                    Rule::Needs {
                        condition: "a validation split (data.val_fraction > 0)",
                    },
                ));
            }
        }
        d.validate_fitting()?;
        d.validate_stream()?;
        self.model.validate()?;
        self.optim.validate()?;
        self.schedule.validate(self.epochs)?;
        self.init.validate()?;
        self.strategy.validate()?;
        if let crate::run::strategy::StrategyConfig::SelfSupervised(ssl) = &self.strategy {
            use crate::models::ModelConfig;
            use crate::ssl::SslMethod;
            let fits = match (&self.model, ssl.method) {
                (ModelConfig::Cpc(_), method) => method == SslMethod::Cpc,
                (_, SslMethod::Cpc) => false,
                (ModelConfig::Projected(p), method) => {
                    ssl.projection(p.outputs) == (p.outputs, p.inputs)
                        && (p.local || method != SslMethod::Amdim)
                }
                // A contrastive loss can compare any network's outputs.
                (_, method) => method.contrastive(),
            };
            if !fits && (ssl.method == SslMethod::Cpc || matches!(self.model, ModelConfig::Cpc(_)))
            {
                return Err(invalid("model", Rule::CpcPairing));
            }
            if !fits {
                let (outputs, inputs) = ssl.projection(128);
                return Err(invalid(
                    "model",
                    Rule::SslNetwork {
                        method: format!("{:?}", ssl.method),
                        inputs,
                        outputs,
                        local: ssl.method == SslMethod::Amdim,
                    },
                ));
            }
        }
        if let (
            crate::run::strategy::StrategyConfig::Distill(d),
            crate::models::ModelConfig::Vit(v),
        ) = (&self.strategy, &self.model)
            && v.distillation_token
            && d.hint_weight > 0.0
        {
            return Err(invalid("strategy.hint_weight", Rule::TokenWithHints));
        }
        for (i, g) in self.groups.iter().enumerate() {
            let key = |k: &str| format!("groups[{i}].{k}");
            if g.pattern.is_empty() {
                return Err(invalid(key("pattern"), Rule::NotEmpty));
            }
            if let Some(u) = g.unfreeze_at {
                if !g.frozen {
                    return Err(invalid(
                        key("unfreeze_at"),
                        Rule::Needs {
                            condition: "frozen = true (the group is frozen until then)",
                        },
                    ));
                }
                if u < 2 || u > self.epochs {
                    return Err(invalid(
                        key("unfreeze_at"),
                        Rule::Epoch {
                            first: 2,
                            last: self.epochs,
                            got: u,
                        },
                    ));
                }
            }
            rules::non_negative(g.lr_mult).map_err(|r| invalid(key("lr_mult"), r))?;
        }
        Ok(())
    }
}

fn parse_value(raw: &str) -> toml::Value {
    // Parse `v = <raw>` so that any TOML value (including arrays and inline tables) works.
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_dotted(root: &mut toml::Value, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let table = node.as_table_mut().ok_or_else(|| ConfigError::Key {
            key: parts[..i].join("."),
            message: "is not a table, so it has no sub-keys".into(),
        })?;
        if i + 1 == parts.len() {
            // Changing a tagged enum's `type` resets its other fields to that type's
            // defaults, since they may not exist in the new type.
            if *part == "type" {
                table.retain(|k, _| k == "type");
            }
            table.insert((*part).to_string(), value);
            return Ok(());
        }
        node = table
            .entry((*part).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

/// A TOML parse error as one line: where (line and column) and what is there (a
/// duplicate key names the key), then the parser's message.
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span().filter(|s| s.start <= text.len()) else {
        return message;
    };
    let before = &text[..span.start];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1;
    let found: String = text
        .get(span.clone())
        .unwrap_or("")
        .trim()
        .chars()
        .take(40)
        .collect();
    if found.is_empty() || found.contains('\n') {
        format!("line {line}, column {column}: {message}")
    } else {
        format!("line {line}, column {column}: {message} `{found}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_config_that_keeps_every_rule_becomes_valid() {
        let bad = RunConfig {
            epochs: 0,
            ..RunConfig::default()
        };
        let e = bad.check().unwrap_err();
        assert!(e.to_string().contains("`epochs`"), "{e}");
        let good = RunConfig::default().check().unwrap();
        assert_eq!(good.epochs, RunConfig::default().epochs);
        assert_eq!(good.into_inner(), RunConfig::default());
    }

    #[test]
    fn checkpoints_within_epochs_are_written_to_the_config_only_when_asked_for() {
        assert!(!RunConfig::default().to_toml().contains("[checkpoint]"));
        let c = RunConfig::from_toml("[checkpoint]\nevery_steps = 50", "t").unwrap();
        assert!(c.to_toml().contains("every_steps = 50"));
        c.validate().unwrap();
        let continual = RunConfig::from_toml(
            "[checkpoint]\nevery_steps = 50\n[strategy]\ntype = \"continual\"",
            "t",
        )
        .unwrap();
        let e = continual.validate().unwrap_err().to_string();
        assert!(e.contains("checkpoint.every_steps"), "{e}");
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let c = RunConfig::default();
        let back = RunConfig::from_toml(&c.to_toml(), "t").unwrap();
        assert_eq!(c, back);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = RunConfig::from_toml("epochz = 3", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochz"), "{e}");
        // The supervised strategy has no keys of its own, and refuses any.
        let e = RunConfig::from_toml(
            "[strategy]\ntype = \"supervised\"\ntemperature = 4",
            "run.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("temperature"), "{e}");
        let ok = RunConfig::from_toml("[strategy]\ntype = \"supervised\"", "run.toml").unwrap();
        assert_eq!(ok.strategy, StrategyConfig::Supervised {});
        let e = RunConfig::from_toml("[model]\ntype = \"mlp\"\nwidth = 3", "run.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("width"), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = RunConfig::default()
            .with_overrides(&["epochs=\"many\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("epochs"), "{e}");
    }

    #[test]
    fn overrides_set_nested_keys_and_switch_types() {
        let c = RunConfig::default()
            .with_overrides(&[
                "lr=0.5".into(),
                "model.type=cnn".into(),
                "model.hidden=64".into(),
                "data.dataset=mnist".into(),
                "optim.type=sgd".into(),
                "optim.momentum=0.8".into(),
            ])
            .unwrap();
        assert_eq!(c.lr, 0.5);
        assert_eq!(c.data.dataset, crate::data::DataSource::Mnist);
        match c.model {
            ModelConfig::Cnn(m) => assert_eq!(m.hidden, 64),
            other => panic!("{other:?}"),
        }
        match c.optim {
            OptimizerConfig::Sgd(s) => assert_eq!(s.momentum, 0.8),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rules_name_key_and_value() {
        let c = RunConfig::default()
            .with_overrides(&["lr=-1".into()])
            .unwrap();
        let e = c.validate().unwrap_err();
        assert!(
            matches!(&e, ConfigError::Invalid(v) if v.key == "lr" && v.rule == Rule::Positive { got: -1.0 }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "config key `lr`: must be finite and > 0, got -1"
        );
        let c = RunConfig::default()
            .with_overrides(&["data.val_fraction=1.5".into()])
            .unwrap();
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "config key `data.val_fraction`: must be in [0, 1), got 1.5"
        );
        // Every group rule names the group's index.
        let c = RunConfig::default()
            .with_overrides(&["groups=[{ pattern = \"a.*\", unfreeze_at = 2 }]".into()])
            .unwrap();
        assert!(matches!(c.validate(), Err(ConfigError::Invalid(v))
                if v.key == "groups[0].unfreeze_at" && matches!(v.rule, Rule::Needs { .. })),);
        assert!(
            RunConfig::default()
                .with_overrides(&["novalue".into()])
                .is_err()
        );
    }

    #[test]
    fn a_duplicate_key_names_the_key_and_its_line() {
        let e = RunConfig::from_toml("epochs = 2\nlr = 0.1\nepochs = 3\n", "f.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.toml") && e.contains("line 3") && e.contains("`epochs`"),
            "{e}"
        );
    }
}
