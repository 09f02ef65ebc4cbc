//! The `[data]` table of a run config: which dataset, from which folder, and how it is
//! cut (classes, few-shot, permutation, validation split, normalisation, pretext task).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DataSource;

/// Where the data comes from and how it is cut (`[data]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Which dataset.
    pub dataset: DataSource,
    /// Folder holding the dataset files; `None` means `$MENTOR_DATA` or `./data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Fraction of each training class held out for validation (0 for none).
    pub val_fraction: f64,
    /// Keep only these classes, relabelled `0..n` in this order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<usize>>,
    /// Keep at most this many training examples per class (few-shot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_class: Option<usize>,
    /// Permute every image's pixels with the fixed permutation of this seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permutation_seed: Option<u64>,
    /// Normalise each channel to zero mean, unit variance (statistics of the train split).
    pub normalize: bool,
    /// Replace the labels by a self-supervised pretext task (`rotation`); `none` keeps
    /// the dataset's own labels.
    #[serde(skip_serializing_if = "Pretext::is_none")]
    pub pretext: Pretext,
}

/// A pretext task: labels made from the images themselves (self-supervised learning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pretext {
    /// The dataset's labels.
    #[default]
    None,
    /// Rotation prediction (Gidaris et al. 2018, RotNet): every image appears four times,
    /// rotated by 0, 90, 180 and 270 degrees, labelled 0..4 by its rotation.
    Rotation,
}

impl Pretext {
    /// Whether this is [`Pretext::None`] (the dataset's own labels).
    pub fn is_none(&self) -> bool {
        *self == Pretext::None
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DataSource::Digits,
            data_dir: None,
            val_fraction: 0.1,
            classes: None,
            per_class: None,
            permutation_seed: None,
            normalize: true,
            pretext: Pretext::None,
        }
    }
}

impl DataConfig {
    /// The data folder: the config's, else `$MENTOR_DATA`, else `./data`.
    pub fn resolved_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| std::env::var_os("MENTOR_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("data"))
    }
}
