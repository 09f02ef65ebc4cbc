//! Turning a `[data]` config into the train / validation / test sets a run uses.

use super::augment::rotation_task;
use super::config::{DataConfig, Pretext};
use super::examples::{Examples, Splits};
use super::resize;
use super::split::{self, Normalization};
use super::stream::{ImageFiles, ImageStream};
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

/// Loads and cuts the data: class subset, per-class subsampling of the training split,
/// validation split (seeded with `seed`); then each kept image is fitted (grey to RGB,
/// resized, pixels permuted) and normalised with the training split's statistics (or the
/// fixed `mean` and `std`); last, a pretext task replaces the labels.
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
    let mut val = val;
    // Resizing, colour and permutation act on each image alone, so they come after the
    // cuts (which pick images by label): only the images a run keeps are resized.
    let fit = |d: &Dataset| -> Result<Dataset, DataError> {
        let channels = if cfg.rgb { 3 } else { d.shape[0] };
        let [_, h, w] = d.shape;
        let [h, w] = cfg.resize.map_or([h, w], |s| [s, s]);
        super::limits::check_allocation(
            &format!(
                "fitting {} images to {channels}x{h}x{w} (data.resize, data.rgb)",
                d.len()
            ),
            d.len() as u128 * channels as u128 * h as u128 * w as u128 * 4,
        )?;
        let mut d = if cfg.rgb {
            resize::grey_to_rgb(d)?
        } else {
            d.clone()
        };
        if let Some(size) = cfg.resize {
            d = resize::bilinear(&d, size);
        }
        if let Some(pseed) = cfg.permutation_seed {
            d = split::permute_pixels(&d, &split::pixel_permutation(d.image_len(), pseed))?;
        }
        Ok(d)
    };
    train = fit(&train)?;
    test = fit(&test)?;
    val = val.as_ref().map(fit).transpose()?;
    let normalization = match (&cfg.mean, &cfg.std) {
        (Some(mean), Some(std)) if cfg.normalize => {
            if mean.len() != train.shape[0] || std.len() != mean.len() {
                return Err(DataError::Invalid(format!(
                    "data.mean and data.std have {} and {} values but the images have {} channels{}",
                    mean.len(),
                    std.len(),
                    train.shape[0],
                    if train.shape[0] == 1 {
                        " (data.rgb = true makes grey images RGB)"
                    } else {
                        ""
                    }
                )));
            }
            Some(Normalization {
                mean: mean.clone(),
                std: std.clone(),
            })
        }
        _ => cfg.normalize.then(|| Normalization::fit(&train)),
    };
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

/// The splits of a run whose photos are read from disk as it trains.
#[derive(Debug, Clone)]
pub struct StreamedData {
    /// Training photos, through the training transform.
    pub train: ImageStream,
    /// Validation photos (a stratified part of the training folder), through the
    /// evaluation transform.
    pub val: Option<ImageStream>,
    /// Test photos, through the evaluation transform.
    pub test: ImageStream,
    /// A name per class.
    pub class_names: Vec<String>,
}

impl Splits for StreamedData {
    fn train(&self) -> &dyn Examples {
        &self.train
    }

    fn val(&self) -> Option<&dyn Examples> {
        self.val.as_ref().map(|v| v as &dyn Examples)
    }

    fn test(&self) -> &dyn Examples {
        &self.test
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }
}

impl StreamedData {
    /// The files skipped as unreadable so far, over all splits (with
    /// `data.skip_corrupt`).
    pub fn skipped(&self) -> Vec<std::path::PathBuf> {
        let mut all = self.train.skipped();
        if let Some(v) = &self.val {
            all.extend(v.skipped());
        }
        all.extend(self.test.skipped());
        all
    }
}

/// The data of a run: held in memory, or photos streamed from disk.
// One value per run: its size does not matter, and boxing would only add a hop.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum RunData {
    /// Decoded whole into memory ([`prepare_data`]).
    Memory(PreparedData),
    /// Read as the run trains ([`prepare_stream`]).
    Streamed(StreamedData),
}

impl RunData {
    /// Loads `cfg`'s data: streamed when it has a `transform`, else into memory.
    pub fn load(cfg: &DataConfig, seed: u64) -> Result<Self, DataError> {
        Ok(match cfg.transform {
            Some(_) => RunData::Streamed(prepare_stream(cfg, seed)?),
            None => RunData::Memory(prepare_data(cfg, seed)?),
        })
    }

    /// The splits, whichever way they are held.
    pub fn splits(&self) -> &dyn Splits {
        match self {
            RunData::Memory(d) => d,
            RunData::Streamed(d) => d,
        }
    }
}

/// Scans an image folder (`<data-dir>/train/<class>/...`, `<data-dir>/test/<class>/...`)
/// and cuts it as [`prepare_data`] does (class subset, per-class subsample, stratified
/// validation split, with the same seeds), without reading a photo: the photos are read
/// and transformed (`cfg.transform`) batch by batch as the run trains.
pub fn prepare_stream(cfg: &DataConfig, seed: u64) -> Result<StreamedData, DataError> {
    let Some(transforms) = &cfg.transform else {
        return Err(DataError::Invalid(
            "photos are streamed only through data.transform".into(),
        ));
    };
    let check = |name: &str, t: &super::transform::Transform| {
        t.check()
            .map(|o| o.shape)
            .map_err(|v| DataError::Rule(v.under(&format!("data.transform.{name}"))))
    };
    let shape = check("train", &transforms.train)?;
    if check("eval", &transforms.eval)? != shape {
        return Err(DataError::Invalid(
            "data.transform.eval makes another image size than data.transform.train".into(),
        ));
    }
    let dir = cfg.resolved_dir();
    let mut train = ImageFiles::scan(&dir.join("train"))?;
    let mut test = ImageFiles::scan(&dir.join("test"))?;
    if train.class_names != test.class_names {
        return Err(DataError::format(
            dir.join("test"),
            format!(
                "test classes {:?} differ from train classes {:?}",
                test.class_names, train.class_names
            ),
        ));
    }
    let mut names = train.class_names.clone();
    if let Some(classes) = &cfg.classes {
        let cut = |files: &ImageFiles| -> Result<ImageFiles, DataError> {
            let (idx, labels) = split::class_subset_indices(&files.labels, names.len(), classes)?;
            let mut kept = files.select(&idx);
            kept.labels = labels;
            Ok(kept)
        };
        train = cut(&train)?;
        test = cut(&test)?;
        names = classes.iter().map(|&c| names[c].clone()).collect();
    }
    let num_classes = names.len();
    if let Some(k) = cfg.per_class {
        if k == 0 {
            return Err(DataError::Invalid("per_class must be at least 1".into()));
        }
        train = train.select(&split::per_class_label_indices(
            &train.labels,
            num_classes,
            k,
            seed ^ 0x5EED_0001,
        ));
    }
    let val = if cfg.val_fraction > 0.0 {
        let (keep, held) = split::stratified_indices(
            &train.labels,
            num_classes,
            cfg.val_fraction,
            seed ^ 0x5EED_0002,
        );
        let val = train.select(&held);
        train = train.select(&keep);
        (!val.is_empty()).then_some(val)
    } else {
        None
    };
    if train.is_empty() {
        return Err(DataError::Invalid(
            "the training split is empty after the data cuts".into(),
        ));
    }
    let stream = |files: ImageFiles, t: &super::transform::Transform| {
        ImageStream::new(
            files,
            num_classes,
            t.clone(),
            shape,
            seed,
            cfg.loader,
            cfg.skip_corrupt,
        )
    };
    Ok(StreamedData {
        train: stream(train, &transforms.train),
        val: val.map(|v| stream(v, &transforms.eval)),
        test: stream(test, &transforms.eval),
        class_names: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_digits_become_resized_rgb_normalised_with_fixed_statistics() {
        let plain = DataConfig {
            normalize: false,
            ..DataConfig::default()
        };
        let fitted = DataConfig {
            rgb: true,
            resize: Some(16),
            mean: Some(vec![0.5, 0.4, 0.3]),
            std: Some(vec![0.25, 0.5, 1.0]),
            ..DataConfig::default()
        };
        let raw = prepare_data(&plain, 7).unwrap();
        let d = prepare_data(&fitted, 7).unwrap();
        assert_eq!(raw.train.shape, [1, 8, 8]);
        assert_eq!(d.train.shape, [3, 16, 16]);
        assert_eq!(d.train.labels, raw.train.labels);
        assert_eq!(d.test.len(), raw.test.len());
        let big = resize::bilinear(&raw.train, 16);
        let (x, y) = (&big.images[..256], &d.train.images[..768]);
        for (ch, (m, s)) in [(0.5f32, 0.25f32), (0.4, 0.5), (0.3, 1.0)]
            .iter()
            .enumerate()
        {
            for i in [0, 77, 255] {
                let want = (x[i] - m) / s;
                assert!(
                    (y[ch * 256 + i] - want).abs() < 1e-5,
                    "channel {ch} pixel {i}"
                );
            }
        }
        let three = DataConfig {
            mean: Some(vec![0.5; 3]),
            std: Some(vec![0.5; 3]),
            ..DataConfig::default()
        };
        let err = prepare_data(&three, 7).unwrap_err().to_string();
        assert!(
            err.contains("data.mean") && err.contains("data.rgb"),
            "{err}"
        );
    }
}
