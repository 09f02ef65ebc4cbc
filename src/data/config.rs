//! The `[data]` table of a run config: which dataset, from which folder, and how it is
//! cut (classes, few-shot, permutation, validation split, normalisation, pretext task).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::DataSource;
use super::stream::LoaderConfig;
use super::transform::Transform;
use crate::rules::{self, Rule, Violation};

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
    /// Resize every image to `resize x resize` (bilinear), for a network pretrained at
    /// another resolution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resize: Option<usize>,
    /// Replicate grey images to three equal channels, for a network pretrained on colour
    /// photos.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rgb: bool,
    /// Normalise each channel to zero mean, unit variance (statistics of the train split,
    /// or `mean` and `std` when given).
    pub normalize: bool,
    /// Fixed per-channel means (of pixels in `[0, 1]`) to normalise with instead of the
    /// train split's: the statistics a pretrained network was trained with, e.g.
    /// ImageNet's `[0.485, 0.456, 0.406]`. Needs `std`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// Fixed per-channel standard deviations, with `mean` (ImageNet's: `[0.229, 0.224,
    /// 0.225]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// Replace the labels by a self-supervised pretext task (`rotation`); `none` keeps
    /// the dataset's own labels.
    #[serde(skip_serializing_if = "Pretext::is_none")]
    pub pretext: Pretext,
    /// Photos of any size read from disk while training runs, through these transforms
    /// (`[data.transform]`, image folders only); without it an image folder is read whole
    /// into memory and its images must share one size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformConfig>,
    /// How streamed photos are read (`[data.loader]`); not part of the resume
    /// fingerprint, since it changes no result.
    #[serde(skip_serializing_if = "is_default_loader")]
    pub loader: LoaderConfig,
    /// Leave photos that cannot be read or decoded out of their batch (counted in the
    /// log and `summary.json`) instead of stopping with an error naming the file.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_corrupt: bool,
}

fn is_default_loader(loader: &LoaderConfig) -> bool {
    *loader == LoaderConfig::default()
}

/// The transforms of streamed photos (`[data.transform]`), torchvision's training and
/// evaluation pipelines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Applied to training photos (with augmentations, seeded per run, epoch and image).
    pub train: Transform,
    /// Applied to validation and test photos.
    pub eval: Transform,
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
            resize: None,
            rgb: false,
            normalize: true,
            mean: None,
            std: None,
            pretext: Pretext::None,
            transform: None,
            loader: LoaderConfig::default(),
            skip_corrupt: false,
        }
    }
}

impl DataConfig {
    /// Checks the rules of the image-fitting keys; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate_fitting(&self) -> Result<(), Violation> {
        if let Some(n) = self.resize {
            rules::at_least(n, 1).map_err(|r| Violation::new("data.resize", r))?;
        }
        match (&self.mean, &self.std) {
            (None, None) => {}
            (Some(m), Some(s)) => {
                if m.is_empty() {
                    return rules::fail("data.mean", Rule::NotEmpty);
                }
                if m.len() != s.len() {
                    return rules::fail(
                        "data.std",
                        Rule::SameChannels {
                            other: "data.mean",
                            expected: m.len(),
                            got: s.len(),
                        },
                    );
                }
                for v in s {
                    rules::positive(rules::shown(*v)).map_err(|r| Violation::new("data.std", r))?;
                }
                if let Some(v) = m.iter().find(|v| !v.is_finite()) {
                    return rules::fail(
                        "data.mean",
                        Rule::Finite {
                            got: rules::shown(*v),
                        },
                    );
                }
                if !self.normalize {
                    return rules::fail(
                        "data.mean",
                        Rule::Needs {
                            condition: "data.normalize = true (fixed statistics normalise)",
                        },
                    );
                }
            }
            (Some(_), None) => {
                return rules::fail(
                    "data.std",
                    Rule::Needs {
                        condition: "data.mean beside it",
                    },
                );
            }
            (None, Some(_)) => {
                return rules::fail(
                    "data.mean",
                    Rule::Needs {
                        condition: "data.std beside it",
                    },
                );
            }
        }
        Ok(())
    }

    /// Checks the rules of streamed photos (`data.transform`, `data.loader`,
    /// `data.skip_corrupt`); on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate_stream(&self) -> Result<(), Violation> {
        self.loader.validate()?;
        let Some(t) = &self.transform else {
            if self.skip_corrupt {
                return rules::fail(
                    "data.skip_corrupt",
                    Rule::Needs {
                        condition: "data.transform (it applies to photos streamed from disk)",
                    },
                );
            }
            return Ok(());
        };
        if self.dataset != DataSource::ImageFolder {
            return rules::fail(
                "data.transform",
                Rule::TransformNeedsImageFolder {
                    dataset: self.dataset.to_string(),
                },
            );
        }
        let memory_only = [
            ("data.resize", self.resize.is_some()),
            ("data.rgb", self.rgb),
            ("data.mean", self.mean.is_some()),
            ("data.std", self.std.is_some()),
            ("data.permutation_seed", self.permutation_seed.is_some()),
            ("data.pretext", !self.pretext.is_none()),
        ];
        if let Some((key, _)) = memory_only.iter().find(|(_, set)| *set) {
            return rules::fail(*key, Rule::InMemoryOnly);
        }
        let mut shapes = Vec::new();
        for (name, transform) in [("train", &t.train), ("eval", &t.eval)] {
            let out = transform
                .check()
                .map_err(|v| v.under(&format!("data.transform.{name}")))?;
            if out.normalizes != self.normalize {
                return rules::fail(
                    format!("data.transform.{name}"),
                    Rule::NormalizeMismatch {
                        normalize: self.normalize,
                    },
                );
            }
            shapes.push(out.shape);
        }
        if shapes[0] != shapes[1] {
            return rules::fail(
                "data.transform.eval",
                Rule::TransformShapes {
                    train: shapes[0],
                    eval: shapes[1],
                },
            );
        }
        Ok(())
    }

    /// The data folder: the config's, else `$MENTOR_DATA`, else `./data`.
    pub fn resolved_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| std::env::var_os("MENTOR_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("data"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_keys_name_the_broken_rule() {
        let key = |c: DataConfig| c.validate_fitting().unwrap_err().key;
        let base = DataConfig::default();
        assert!(base.validate_fitting().is_ok());
        assert_eq!(
            key(DataConfig {
                resize: Some(0),
                ..base.clone()
            }),
            "data.resize"
        );
        assert_eq!(
            key(DataConfig {
                mean: Some(vec![0.5]),
                ..base.clone()
            }),
            "data.std"
        );
        let fixed = DataConfig {
            mean: Some(vec![0.5, 0.5]),
            std: Some(vec![0.5, 0.0]),
            ..base.clone()
        };
        assert_eq!(
            fixed.validate_fitting().unwrap_err(),
            Violation::new("data.std", Rule::Positive { got: 0.0 })
        );
        let unnormalised = DataConfig {
            std: Some(vec![0.5, 0.5]),
            normalize: false,
            ..fixed
        };
        assert_eq!(key(unnormalised), "data.mean");
    }
}
