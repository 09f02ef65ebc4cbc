//! CIFAR-10 and CIFAR-100 (Krizhevsky 2009) in their binary versions.
//!
//! CIFAR-10: `data_batch_1.bin` .. `data_batch_5.bin` and `test_batch.bin`, each record
//! one label byte then 3,072 pixel bytes (1,024 red, 1,024 green, 1,024 blue, 32x32).
//! CIFAR-100: `train.bin` and `test.bin`, each record a coarse and a fine label byte then
//! the same 3,072 bytes; mentor uses the fine (100-class) label.

use std::path::Path;

use super::{DataError, Dataset, idx::read_maybe_gz};

const PIXELS: usize = 3 * 32 * 32;

/// Which CIFAR variant a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarVariant {
    /// 10 classes, one label byte per record.
    Cifar10,
    /// 100 fine classes, two label bytes per record (coarse, fine).
    Cifar100,
}

impl CifarVariant {
    fn label_bytes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 1,
            CifarVariant::Cifar100 => 2,
        }
    }

    fn num_classes(self) -> usize {
        match self {
            CifarVariant::Cifar10 => 10,
            CifarVariant::Cifar100 => 100,
        }
    }

    fn files(self, train: bool) -> Vec<String> {
        match (self, train) {
            (CifarVariant::Cifar10, true) => {
                (1..=5).map(|i| format!("data_batch_{i}.bin")).collect()
            }
            (CifarVariant::Cifar10, false) => vec!["test_batch.bin".into()],
            (CifarVariant::Cifar100, true) => vec!["train.bin".into()],
            (CifarVariant::Cifar100, false) => vec!["test.bin".into()],
        }
    }
}

/// Parses one binary batch file's bytes, appending to `images` and `labels`.
pub fn parse_batch(
    bytes: &[u8],
    variant: CifarVariant,
    path: &Path,
    images: &mut Vec<f32>,
    labels: &mut Vec<usize>,
) -> Result<(), DataError> {
    let record = variant.label_bytes() + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::format(
            path,
            format!(
                "truncated or corrupt: {} bytes is not a whole number of {record}-byte records",
                bytes.len()
            ),
        ));
    }
    for rec in bytes.chunks_exact(record) {
        let label = rec[variant.label_bytes() - 1] as usize;
        if label >= variant.num_classes() {
            return Err(DataError::format(
                path,
                format!(
                    "label {label} out of range for {} classes",
                    variant.num_classes()
                ),
            ));
        }
        labels.push(label);
        images.extend(
            rec[variant.label_bytes()..]
                .iter()
                .map(|&p| f32::from(p) / 255.0),
        );
    }
    Ok(())
}

/// Reads the train or test split of a CIFAR folder.
pub fn read_split(dir: &Path, variant: CifarVariant, train: bool) -> Result<Dataset, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for name in variant.files(train) {
        let path = dir.join(&name);
        let path = if path.is_file() {
            path
        } else {
            dir.join(format!("{name}.gz"))
        };
        let bytes = read_maybe_gz(&path)?;
        parse_batch(&bytes, variant, &path, &mut images, &mut labels)?;
    }
    Dataset::new(images, labels, [3, 32, 32], variant.num_classes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_rejects_partial_ones() {
        let mut bytes = vec![3u8];
        bytes.extend(std::iter::repeat_n(255u8, PIXELS));
        let (mut im, mut lb) = (Vec::new(), Vec::new());
        parse_batch(
            &bytes,
            CifarVariant::Cifar10,
            Path::new("b.bin"),
            &mut im,
            &mut lb,
        )
        .unwrap();
        assert_eq!(lb, vec![3]);
        assert_eq!(im.len(), PIXELS);
        assert_eq!(im[0], 1.0);
        bytes.pop();
        let msg = parse_batch(
            &bytes,
            CifarVariant::Cifar10,
            Path::new("b.bin"),
            &mut im,
            &mut lb,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("b.bin") && msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn cifar100_uses_the_fine_label() {
        let mut bytes = vec![2u8, 77u8];
        bytes.extend(std::iter::repeat_n(0u8, PIXELS));
        let (mut im, mut lb) = (Vec::new(), Vec::new());
        parse_batch(
            &bytes,
            CifarVariant::Cifar100,
            Path::new("t"),
            &mut im,
            &mut lb,
        )
        .unwrap();
        assert_eq!(lb, vec![77]);
    }

    /// Seeded random batches (any length, any label byte) for both variants: errors
    /// for partial records and out-of-range labels, never panics.
    #[test]
    fn random_bytes_never_panic() {
        let mut next = crate::damage::xorshift(0x51_7cc1_b727_220a);
        for case in 0..60 {
            let variant = if case % 2 == 0 {
                CifarVariant::Cifar10
            } else {
                CifarVariant::Cifar100
            };
            let record = variant.label_bytes() + PIXELS;
            let len = match case % 3 {
                0 => record * (1 + next() as usize % 2),
                1 => next() as usize % (2 * record),
                _ => record + 1,
            };
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let (mut im, mut lb) = (Vec::new(), Vec::new());
            let r = parse_batch(&bytes, variant, Path::new("b.bin"), &mut im, &mut lb);
            if r.is_ok() {
                assert!(lb.iter().all(|&l| l < variant.num_classes()), "{lb:?}");
            }
        }
    }
}
