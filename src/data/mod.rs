//! Datasets held in memory as `f32` images in NCHW order, plus the readers for the
//! standard formats (IDX, CIFAR binary, image folders, the embedded UCI digits) and the
//! seeded transformations that every experiment uses (splits, class subsets, few-shot
//! subsampling, pixel permutations, normalisation, batching).

pub mod augment;
pub mod batch;
pub mod cifar;
pub mod config;
pub mod digits;
pub mod examples;
pub mod idx;
pub mod image_file;
pub mod image_folder;
pub mod inspect;
pub mod limits;
pub mod photo;
pub mod prepare;
pub mod resize;
pub mod source;
pub mod split;
pub mod stream;
pub mod transform;

use std::path::PathBuf;

pub use batch::{Batch, BatchOrder};
pub use config::{DataConfig, Pretext, TransformConfig};
pub use examples::{Examples, HostBatch, Splits};
pub use prepare::{PreparedData, RunData, StreamedData, prepare_data, prepare_stream};
pub use source::{DataSource, LoadedData};

/// Why a dataset could not be read or transformed. Every variant names the file or the
/// rule, so the message alone tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file was read but its contents are not what the format requires.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// A requested transformation does not fit the data (an empty class subset, say).
    #[error("{0}")]
    Invalid(String),
    /// The input asks for more memory than [`limits::memory_limit`] allows.
    #[error("{0}")]
    TooLarge(String),
    /// A config value breaks a rule.
    #[error(transparent)]
    Rule(#[from] crate::rules::Violation),
}

impl DataError {
    pub(crate) fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// An in-memory labelled image dataset: `images` holds `len() * C * H * W` floats in
/// NCHW order, `labels` one class index per image.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Pixel values, image after image, each in `[C, H, W]` order.
    pub images: Vec<f32>,
    /// Class index of each image, `< num_classes`.
    pub labels: Vec<usize>,
    /// `[channels, height, width]` of one image.
    pub shape: [usize; 3],
    /// Number of classes the labels range over (labels may not use them all).
    pub num_classes: usize,
}

impl Dataset {
    /// Builds a dataset, checking that images and labels agree in count and range.
    pub fn new(
        images: Vec<f32>,
        labels: Vec<usize>,
        shape: [usize; 3],
        num_classes: usize,
    ) -> Result<Self, DataError> {
        let per_image = shape.iter().product::<usize>();
        if per_image == 0 {
            return Err(DataError::Invalid(format!(
                "image shape {shape:?} has a zero dimension"
            )));
        }
        if images.len() != labels.len() * per_image {
            return Err(DataError::Invalid(format!(
                "{} pixel values do not make {} images of shape {shape:?}",
                images.len(),
                labels.len()
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= num_classes) {
            return Err(DataError::Invalid(format!(
                "label {bad} is out of range for {num_classes} classes"
            )));
        }
        Ok(Self {
            images,
            labels,
            shape,
            num_classes,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Floats in one image (`C * H * W`).
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A new dataset made of the images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let n = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            images,
            labels,
            shape: self.shape,
            num_classes: self.num_classes,
        }
    }

    /// The datasets of `parts` one after the other; they must share the image shape
    /// (the result has the largest class count of the parts).
    pub fn concat(parts: &[&Dataset]) -> Result<Dataset, DataError> {
        let Some(first) = parts.first() else {
            return Err(DataError::Invalid("nothing to concatenate".into()));
        };
        let mut images = Vec::new();
        let mut labels = Vec::new();
        for p in parts {
            if p.shape != first.shape {
                return Err(DataError::Invalid(format!(
                    "cannot concatenate images of shape {:?} and {:?}",
                    first.shape, p.shape
                )));
            }
            images.extend_from_slice(&p.images);
            labels.extend_from_slice(&p.labels);
        }
        let num_classes = parts.iter().map(|p| p.num_classes).max().unwrap_or(0);
        Dataset::new(images, labels, first.shape, num_classes)
    }

    /// How many images each class has, indexed by class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_count_and_range_mismatches() {
        assert!(Dataset::new(vec![0.0; 8], vec![0, 1], [1, 2, 2], 2).is_ok());
        assert!(Dataset::new(vec![0.0; 7], vec![0, 1], [1, 2, 2], 2).is_err());
        assert!(Dataset::new(vec![0.0; 8], vec![0, 2], [1, 2, 2], 2).is_err());
    }

    #[test]
    fn select_keeps_pixels_with_their_labels() {
        let d = Dataset::new(vec![0.0, 1.0, 2.0], vec![0, 1, 2], [1, 1, 1], 3).unwrap();
        let s = d.select(&[2, 0]);
        assert_eq!(s.images, vec![2.0, 0.0]);
        assert_eq!(s.labels, vec![2, 0]);
        assert_eq!(d.class_counts(), vec![1, 1, 1]);
    }
}
