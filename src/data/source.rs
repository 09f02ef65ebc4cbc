//! Which dataset a run uses and where it comes from: the embedded digits, or a standard
//! format read from a folder that the user names (`--data-dir`, `MENTOR_DATA`, default
//! `./data`). mentor never downloads anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DataError, Dataset, cifar, digits, idx, image_folder};

/// A dataset mentor can load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// UCI digits, 8x8, embedded in the binary (no folder needed).
    Digits,
    /// MNIST IDX files in `<data-dir>/mnist` (or `<data-dir>` itself).
    Mnist,
    /// Fashion-MNIST IDX files in `<data-dir>/fashion-mnist` (or `<data-dir>` itself).
    FashionMnist,
    /// CIFAR-10 binary batches in `<data-dir>/cifar-10-batches-bin` (or `<data-dir>`).
    Cifar10,
    /// CIFAR-100 binary files in `<data-dir>/cifar-100-binary` (or `<data-dir>`).
    Cifar100,
    /// An image folder: `<data-dir>/train/<class>/*.png` and `<data-dir>/test/<class>/...`.
    ImageFolder,
}

impl DataSource {
    /// Every source, for help texts.
    pub const ALL: [DataSource; 6] = [
        DataSource::Digits,
        DataSource::Mnist,
        DataSource::FashionMnist,
        DataSource::Cifar10,
        DataSource::Cifar100,
        DataSource::ImageFolder,
    ];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataSource::Digits => "digits",
            DataSource::Mnist => "mnist",
            DataSource::FashionMnist => "fashion-mnist",
            DataSource::Cifar10 => "cifar10",
            DataSource::Cifar100 => "cifar100",
            DataSource::ImageFolder => "image-folder",
        }
    }

    /// Sub-folder names tried below the data folder before the data folder itself.
    fn subfolders(self) -> &'static [&'static str] {
        match self {
            DataSource::Digits | DataSource::ImageFolder => &[],
            DataSource::Mnist => &["mnist", "MNIST"],
            DataSource::FashionMnist => &["fashion-mnist", "fashion_mnist", "FashionMNIST"],
            DataSource::Cifar10 => &["cifar-10-batches-bin", "cifar10", "cifar-10"],
            DataSource::Cifar100 => &["cifar-100-binary", "cifar100", "cifar-100"],
        }
    }

    fn resolve(self, data_dir: &Path) -> PathBuf {
        self.subfolders()
            .iter()
            .map(|s| data_dir.join(s))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| data_dir.to_path_buf())
    }

    /// Loads the train and test splits.
    pub fn load(self, data_dir: &Path) -> Result<LoadedData, DataError> {
        let dir = self.resolve(data_dir);
        let (train, test, class_names) = match self {
            DataSource::Digits => {
                let (train, test) = digits::fixed_split(&digits::embedded()?);
                (train, test, None)
            }
            DataSource::Mnist | DataSource::FashionMnist => (
                idx::read_split(&dir, true)?,
                idx::read_split(&dir, false)?,
                None,
            ),
            DataSource::Cifar10 => (
                cifar::read_split(&dir, cifar::CifarVariant::Cifar10, true)?,
                cifar::read_split(&dir, cifar::CifarVariant::Cifar10, false)?,
                None,
            ),
            DataSource::Cifar100 => (
                cifar::read_split(&dir, cifar::CifarVariant::Cifar100, true)?,
                cifar::read_split(&dir, cifar::CifarVariant::Cifar100, false)?,
                None,
            ),
            DataSource::ImageFolder => {
                let (train, names) = image_folder::read(&dir.join("train"))?;
                let (test, test_names) = image_folder::read(&dir.join("test"))?;
                if names != test_names {
                    return Err(DataError::format(
                        dir.join("test"),
                        format!("test classes {test_names:?} differ from train classes {names:?}"),
                    ));
                }
                if train.shape != test.shape {
                    return Err(DataError::format(
                        dir.join("test"),
                        "test images differ in size from train images",
                    ));
                }
                (train, test, Some(names))
            }
        };
        if train.shape != test.shape {
            return Err(DataError::format(
                dir,
                format!(
                    "test images are {:?} but train images are {:?} (channels, height, width): both splits must have one size",
                    test.shape, train.shape
                ),
            ));
        }
        if let Some(bad) = test.labels.iter().find(|&&l| l >= train.num_classes) {
            return Err(DataError::format(
                dir,
                format!(
                    "test label {bad} is out of range: the train split has {} classes",
                    train.num_classes
                ),
            ));
        }
        let num_classes = train.num_classes;
        let mut test = test;
        test.num_classes = num_classes;
        let class_names =
            class_names.unwrap_or_else(|| (0..num_classes).map(|c| c.to_string()).collect());
        Ok(LoadedData {
            train,
            test,
            class_names,
        })
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The train and test splits of a dataset, as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedData {
    /// The training split (validation is carved out of it later).
    pub train: Dataset,
    /// The test split.
    pub test: Dataset,
    /// A name per class index.
    pub class_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_load_without_any_folder() {
        let d = DataSource::Digits
            .load(Path::new("/nonexistent/folder"))
            .unwrap();
        assert_eq!(d.train.len() + d.test.len(), 1797);
        assert_eq!(d.train.shape, [1, 8, 8]);
    }

    #[test]
    fn a_missing_mnist_folder_names_the_file() {
        let msg = DataSource::Mnist
            .load(Path::new("/nonexistent/folder"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("/nonexistent/folder/train-images-idx3-ubyte"),
            "{msg}"
        );
    }
}
