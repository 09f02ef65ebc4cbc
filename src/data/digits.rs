//! The UCI Optical Recognition of Handwritten Digits set (Alpaydin & Kaynak 1998, as
//! shipped by scikit-learn; CC BY 4.0), embedded in the binary so that mentor runs with no
//! data folder: 1,797 images of 8x8 pixels with values 0..16, 10 classes.
//!
//! The set has no official test split; mentor holds out a fixed, class-stratified 20%
//! chosen with a constant seed, so every run and machine sees the same test images.

use std::path::Path;

use super::{DataError, Dataset, idx::read_maybe_gz, split};

/// `digits.csv.gz`: 65 comma-separated integers a row, 64 pixels then the label.
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../assets/digits.csv.gz");

/// Seed of the fixed train/test split of the digits set (not the run's seed).
const SPLIT_SEED: u64 = 20_240_601;
/// Fraction of each class held out as the test set.
const TEST_FRACTION: f64 = 0.2;

/// Parses the digits CSV text; pixels are scaled from 0..16 to `[0, 1]`.
pub fn parse_csv(text: &str, origin: &Path) -> Result<Dataset, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (lineno, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 65 {
            return Err(DataError::format(
                origin,
                format!("line {}: {} fields, expected 65", lineno + 1, fields.len()),
            ));
        }
        for (col, f) in fields.iter().enumerate() {
            let v: u8 = f.trim().parse().map_err(|_| {
                DataError::format(
                    origin,
                    format!(
                        "line {}, field {}: {f:?} is not an integer",
                        lineno + 1,
                        col + 1
                    ),
                )
            })?;
            if col < 64 {
                if v > 16 {
                    return Err(DataError::format(
                        origin,
                        format!("line {}: pixel {v} is outside 0..16", lineno + 1),
                    ));
                }
                images.push(f32::from(v) / 16.0);
            } else if v > 9 {
                return Err(DataError::format(
                    origin,
                    format!("line {}: label {v} is outside 0..9", lineno + 1),
                ));
            } else {
                labels.push(v as usize);
            }
        }
    }
    Dataset::new(images, labels, [1, 8, 8], 10)
}

/// The whole embedded set (1,797 images).
pub fn embedded() -> Result<Dataset, DataError> {
    let origin = Path::new("<embedded digits.csv.gz>");
    let mut text = String::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(|e| DataError::format(origin, e.to_string()))?;
    parse_csv(&text, origin)
}

/// Reads a digits CSV (raw or `.gz`) from a file.
pub fn read_file(path: &Path) -> Result<Dataset, DataError> {
    let bytes = read_maybe_gz(path)?;
    let text = String::from_utf8(bytes).map_err(|_| DataError::format(path, "not UTF-8 text"))?;
    parse_csv(&text, path)
}

/// Splits a digits set into its fixed (train, test) parts.
pub fn fixed_split(all: &Dataset) -> (Dataset, Dataset) {
    split::stratified_split(all, TEST_FRACTION, SPLIT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_set_has_the_documented_class_counts() {
        let d = embedded().unwrap();
        assert_eq!(d.len(), 1797);
        assert_eq!(
            d.class_counts(),
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert!(d.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }

    #[test]
    fn fixed_split_is_stratified_and_disjoint_in_size() {
        let d = embedded().unwrap();
        let (train, test) = fixed_split(&d);
        assert_eq!(train.len() + test.len(), 1797);
        for (tr, te) in train.class_counts().iter().zip(test.class_counts()) {
            let frac = te as f64 / (tr + te) as f64;
            assert!((frac - 0.2).abs() < 0.01, "{frac}");
        }
        // The split does not depend on anything but the constant seed.
        assert_eq!(fixed_split(&d).1, test);
    }

    #[test]
    fn bad_rows_name_the_line() {
        let msg = parse_csv("1,2,3\n", Path::new("x.csv"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("x.csv") && msg.contains("line 1"), "{msg}");
    }
}
