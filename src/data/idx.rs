//! IDX files (LeCun et al.), the format of MNIST and Fashion-MNIST, gzipped or raw.
//!
//! An IDX file starts with a 4-byte magic number (two zero bytes, a type code, and the
//! number of dimensions), then one big-endian `u32` per dimension, then the data. Images
//! are `u8` with magic `0x00000803`, labels `u8` with magic `0x00000801`.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{DataError, Dataset};

/// The magic number of an unsigned-byte IDX file with three dimensions (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// The magic number of an unsigned-byte IDX file with one dimension (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads a whole file, decompressing it when its name ends in `.gz`.
pub(crate) fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("not a valid gzip stream ({e})")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Parses an IDX buffer, checking its magic number and that its length matches its
/// header. Returns the dimensions and the data bytes.
pub fn parse_idx<'a>(
    bytes: &'a [u8],
    expected_magic: u32,
    path: &Path,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes, too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != expected_magic {
        return Err(DataError::format(
            path,
            format!("wrong magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"),
        ));
    }
    let ndims = (magic & 0xff) as usize;
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(DataError::format(
            path,
            format!(
                "truncated: header needs {header} bytes, file has {}",
                bytes.len()
            ),
        ));
    }
    let dims: Vec<usize> = (0..ndims)
        .map(|d| {
            let o = 4 + 4 * d;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let expected = dims.iter().product::<usize>();
    let data = &bytes[header..];
    if data.len() != expected {
        let what = if data.len() < expected {
            "truncated"
        } else {
            "too long"
        };
        return Err(DataError::format(
            path,
            format!(
                "{what}: dimensions {dims:?} need {expected} data bytes, file has {}",
                data.len()
            ),
        ));
    }
    Ok((dims, data))
}

/// Finds `name` or `name.gz` in `dir`.
fn locate(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    for candidate in [dir.join(name), dir.join(format!("{name}.gz"))] {
        if candidate.is_file() {
            return Ok(candidate);
        }
        if candidate.is_dir() {
            return Err(DataError::format(
                candidate,
                "is a folder; the IDX file of this name must be a file",
            ));
        }
    }
    Err(DataError::Io {
        path: dir.join(format!("{name}[.gz]")),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    })
}

/// The classes of MNIST and Fashion-MNIST: every label of their IDX files is below it.
pub const CLASSES: usize = 10;

/// Reads an images file and a labels file into a dataset with pixels scaled to `[0, 1]`;
/// every label must be below `num_classes` (an error names the file, the record and
/// the label otherwise).
pub fn read_pair(
    images_path: &Path,
    labels_path: &Path,
    num_classes: usize,
) -> Result<Dataset, DataError> {
    let image_bytes = read_maybe_gz(images_path)?;
    let (dims, pixels) = parse_idx(&image_bytes, IMAGES_MAGIC, images_path)?;
    let label_bytes = read_maybe_gz(labels_path)?;
    let (ldims, labels) = parse_idx(&label_bytes, LABELS_MAGIC, labels_path)?;
    if dims[0] != ldims[0] {
        return Err(DataError::format(
            labels_path,
            format!(
                "{} labels, but {} has {} images",
                ldims[0],
                images_path.display(),
                dims[0]
            ),
        ));
    }
    let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
    if let Some((at, bad)) = labels.iter().enumerate().find(|&(_, &l)| l >= num_classes) {
        return Err(DataError::format(
            labels_path,
            format!(
                "label {bad} of record {at} is out of range: labels are 0 to {}",
                num_classes - 1
            ),
        ));
    }
    let images = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Dataset::new(images, labels, [1, dims[1], dims[2]], num_classes)
        .map_err(|e| DataError::format(images_path, e.to_string()))
}

/// Reads the standard MNIST-style split (`train-*` or `t10k-*`) from `dir`, accepting
/// raw or gzipped files.
pub fn read_split(dir: &Path, train: bool) -> Result<Dataset, DataError> {
    let prefix = if train { "train" } else { "t10k" };
    let images = locate(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels = locate(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    read_pair(&images, &labels, CLASSES)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a tiny IDX pair (2 images of 2x3) to `dir`.
    pub(crate) fn write_tiny(dir: &Path) {
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
        img.extend(0..12u8);
        std::fs::write(dir.join("train-images-idx3-ubyte"), &img).unwrap();
        let lab = vec![0, 0, 8, 1, 0, 0, 0, 2, 7, 3];
        std::fs::write(dir.join("train-labels-idx1-ubyte"), &lab).unwrap();
    }

    #[test]
    fn reads_a_valid_pair() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        let d = read_split(dir.path(), true).unwrap();
        assert_eq!(d.shape, [1, 2, 3]);
        assert_eq!(d.labels, vec![7, 3]);
        assert_eq!(d.image(1)[0], 6.0 / 255.0);
    }

    #[test]
    fn truncated_file_names_file_and_problem() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        let p = dir.path().join("train-images-idx3-ubyte");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        let msg = read_split(dir.path(), true).unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn wrong_magic_and_count_mismatch_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        let p = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&p, [0, 0, 8, 3, 0, 0, 0, 2, 7, 3]).unwrap();
        let msg = read_split(dir.path(), true).unwrap_err().to_string();
        assert!(msg.contains("wrong magic"), "{msg}");
        std::fs::write(&p, [0, 0, 8, 1, 0, 0, 0, 3, 7, 3, 1]).unwrap();
        let msg = read_split(dir.path(), true).unwrap_err().to_string();
        assert!(msg.contains("3 labels, but"), "{msg}");
    }

    #[test]
    fn missing_file_is_an_io_error_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let msg = read_split(dir.path(), false).unwrap_err().to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
    }

    #[test]
    fn gzipped_files_are_read() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        for name in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"] {
            let raw = std::fs::read(dir.path().join(name)).unwrap();
            std::fs::remove_file(dir.path().join(name)).unwrap();
            let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
            enc.write_all(&raw).unwrap();
            std::fs::write(dir.path().join(format!("{name}.gz")), enc.finish().unwrap()).unwrap();
        }
        assert_eq!(read_split(dir.path(), true).unwrap().labels, vec![7, 3]);
    }

    #[test]
    fn a_label_outside_the_ten_classes_names_file_record_and_label() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        let p = dir.path().join("train-labels-idx1-ubyte");
        std::fs::write(&p, [0, 0, 8, 1, 0, 0, 0, 2, 7, 200]).unwrap();
        let msg = read_split(dir.path(), true).unwrap_err().to_string();
        assert!(
            msg.contains("train-labels-idx1-ubyte") && msg.contains("label 200 of record 1"),
            "{msg}"
        );
    }

    #[test]
    fn a_folder_in_place_of_a_file_is_called_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("train-images-idx3-ubyte")).unwrap();
        let msg = read_split(dir.path(), true).unwrap_err().to_string();
        assert!(msg.contains("is a folder"), "{msg}");
    }

    /// Seeded random bytes, cuts and byte flips of a valid pair: errors, never panics.
    #[test]
    fn random_and_damaged_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path());
        let names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"];
        let good: Vec<Vec<u8>> = names
            .iter()
            .map(|n| std::fs::read(dir.path().join(n)).unwrap())
            .collect();
        for which in 0..2 {
            for bytes in crate::damage::damaged_copies(&good[which], 200, 16, 7 + which as u64) {
                std::fs::write(dir.path().join(names[which]), &bytes).unwrap();
                let _ = read_split(dir.path(), true);
            }
            std::fs::write(dir.path().join(names[which]), &good[which]).unwrap();
        }
    }
}
