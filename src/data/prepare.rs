//! Turning a `[data]` config into the train / validation / test sets a run uses.

use super::augment::rotation_task;
use super::config::{DataConfig, Pretext};
use super::split::{self, Normalization};
use super::{DataError, Dataset};

/// The datasets of one run, cut and normalised.
#[derive(Debug, Clone)]
pub struct PreparedData {
    /// Training examples.
    pub train: Dataset,
    /// Validation examples (a stratified part of the training split), if any.
    pub val: Option<Dataset>,
    /// Test examples.
    pub test: Dataset,
    /// A name per class.
    pub class_names: Vec<String>,
    /// The normalisation applied (fitted on `train`), if any.
    pub normalization: Option<Normalization>,
}

/// Loads and cuts the data: class subset, pixel permutation, per-class subsampling of the
/// training split, validation split (seeded with `seed`), then normalisation with the
/// training split's statistics; last, a pretext task replaces the labels.
pub fn prepare_data(cfg: &DataConfig, seed: u64) -> Result<PreparedData, DataError> {
    let loaded = cfg.dataset.load(&cfg.resolved_dir())?;
    let (mut train, mut test, mut names) = (loaded.train, loaded.test, loaded.class_names);
    if let Some(classes) = &cfg.classes {
        train = split::class_subset(&train, classes)?;
        test = split::class_subset(&test, classes)?;
        names = classes
            .iter()
            .map(|&c| names.get(c).cloned().unwrap_or_else(|| c.to_string()))
            .collect();
    }
    if let Some(pseed) = cfg.permutation_seed {
        let perm = split::pixel_permutation(train.image_len(), pseed);
        train = split::permute_pixels(&train, &perm)?;
        test = split::permute_pixels(&test, &perm)?;
    }
    if let Some(k) = cfg.per_class {
        train = split::per_class_subsample(&train, k, seed ^ 0x5EED_0001)?;
    }
    let val = if cfg.val_fraction > 0.0 {
        let (t, v) = split::stratified_split(&train, cfg.val_fraction, seed ^ 0x5EED_0002);
        train = t;
        (!v.is_empty()).then_some(v)
    } else {
        None
    };
    if train.is_empty() {
        return Err(DataError::Invalid(
            "the training split is empty after the data cuts".into(),
        ));
    }
    let normalization = cfg.normalize.then(|| Normalization::fit(&train));
    let mut val = val;
    if let Some(norm) = &normalization {
        norm.apply(&mut train);
        norm.apply(&mut test);
        if let Some(v) = val.as_mut() {
            norm.apply(v);
        }
    }
    if cfg.pretext == Pretext::Rotation {
        train = rotation_task(&train)?;
        test = rotation_task(&test)?;
        val = val.as_ref().map(rotation_task).transpose()?;
        names = ["0", "90", "180", "270"].map(String::from).to_vec();
    }
    Ok(PreparedData {
        train,
        val,
        test,
        class_names: names,
        normalization,
    })
}
