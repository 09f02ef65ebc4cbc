//! What an image folder holds, before training on it (`mentor data inspect`): classes and
//! counts per split, the images' sizes, the files that cannot be read, the memory an
//! in-memory load would take, and how fast the streaming pipeline reads it here.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::DataError;
use super::image_file::read_image_file;
use super::stream::ImageFiles;
use super::transform::{Transform, example_rng};

/// The shorter-side buckets of the size histogram: `[lower, upper)` in pixels.
pub const SIZE_BUCKETS: [(usize, usize); 6] = [
    (0, 64),
    (64, 128),
    (128, 256),
    (256, 512),
    (512, 1024),
    (1024, usize::MAX),
];

/// One split (`train/`, `test/`, or the folder itself) of an image folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitReport {
    /// The split's name (`train`, `test`, or `.` for the folder itself).
    pub name: String,
    /// Its folder.
    pub dir: PathBuf,
    /// `(class, images)` in class order.
    pub classes: Vec<(String, usize)>,
    /// Images read (all of them, or the first `limit` of each split).
    pub inspected: usize,
    /// Images per shorter-side bucket of [`SIZE_BUCKETS`].
    pub shorter_side: [usize; 6],
    /// The distinct `(width, height)` sizes, most frequent first, at most 5, with counts.
    pub common_sizes: Vec<((usize, usize), usize)>,
    /// How many distinct sizes there are.
    pub distinct_sizes: usize,
    /// Images with one channel (grey), three (RGB), four (RGBA) and other counts.
    pub channels: [usize; 4],
    /// Files that cannot be used, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
    /// Bytes the inspected images take decoded as f32 at their own size (how mentor's
    /// in-memory image folders load them).
    pub f32_bytes_full_size: u64,
}

/// An image folder's report, with the pipeline's measured speed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FolderReport {
    /// The folder.
    pub root: PathBuf,
    /// Its splits.
    pub splits: Vec<SplitReport>,
    /// The side of the training transform timed (RandomResizedCrop, flip, normalise).
    pub size: usize,
    /// Bytes of every inspected image as f32 at `3 x size x size`.
    pub f32_bytes_at_size: u64,
    /// Images per second of one thread reading, decoding and transforming them.
    pub images_per_second: f64,
}

/// The splits of `root`: `train/` and `test/` where they exist, else the folder itself.
fn split_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let named: Vec<(String, PathBuf)> = ["train", "test"]
        .iter()
        .map(|n| (n.to_string(), root.join(n)))
        .filter(|(_, d)| d.is_dir())
        .collect();
    if named.is_empty() {
        vec![(".".into(), root.to_path_buf())]
    } else {
        named
    }
}

/// The bucket of [`SIZE_BUCKETS`] a shorter side falls in.
fn bucket(side: usize) -> usize {
    SIZE_BUCKETS
        .iter()
        .position(|(lo, hi)| (*lo..*hi).contains(&side))
        .unwrap_or(SIZE_BUCKETS.len() - 1)
}

/// Inspects the image folder `root`: each split's files are read (the first `limit` of
/// each split, or all), decoded and put through torchvision's ImageNet training
/// transform at `size` on this thread, timed. A file that cannot be read is listed with
/// its reason, never an error; a folder that is not an image folder is.
pub fn inspect_folder(
    root: &Path,
    size: usize,
    limit: Option<usize>,
) -> Result<FolderReport, DataError> {
    let transform = Transform::imagenet_train(size);
    let shape = transform
        .check()
        .map_err(|v| DataError::format(root, v.to_string()))?
        .shape;
    let per_image = shape.iter().product::<usize>();
    let mut out = vec![0f32; per_image];
    let mut splits = Vec::new();
    let (mut timed, mut seconds) = (0usize, 0f64);
    for (name, dir) in split_dirs(root) {
        let files = ImageFiles::scan(&dir)?;
        let mut classes: Vec<(String, usize)> =
            files.class_names.iter().map(|c| (c.clone(), 0)).collect();
        for &label in &files.labels {
            classes[label].1 += 1;
        }
        let mut report = SplitReport {
            name,
            dir: dir.clone(),
            classes,
            inspected: 0,
            shorter_side: [0; 6],
            common_sizes: Vec::new(),
            distinct_sizes: 0,
            channels: [0; 4],
            unreadable: Vec::new(),
            f32_bytes_full_size: 0,
        };
        let mut sizes: std::collections::BTreeMap<(usize, usize), usize> = Default::default();
        let count = limit.map_or(files.len(), |n| n.min(files.len()));
        for (i, path) in files.paths.iter().take(count).enumerate() {
            report.inspected += 1;
            let started = Instant::now();
            let bytes = match read_image_file(path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    report.unreadable.push((path.clone(), e.to_string()));
                    continue;
                }
            };
            let header = image::ImageReader::new(std::io::Cursor::new(&bytes))
                .with_guessed_format()
                .map_err(|e| e.to_string())
                .and_then(|r| r.into_decoder().map_err(|e| e.to_string()));
            let (w, h, c) = match header {
                Ok(decoder) => {
                    use image::ImageDecoder;
                    let (w, h) = decoder.dimensions();
                    (w as usize, h as usize, decoder.color_type().channel_count())
                }
                Err(reason) => {
                    report.unreadable.push((path.clone(), reason));
                    continue;
                }
            };
            let mut rng = example_rng(0, 0, i);
            if let Err(reason) = transform.apply(&bytes, &mut rng, &mut out) {
                report.unreadable.push((path.clone(), reason));
                continue;
            }
            seconds += started.elapsed().as_secs_f64();
            timed += 1;
            *sizes.entry((w, h)).or_default() += 1;
            report.shorter_side[bucket(w.min(h))] += 1;
            report.channels[match c {
                1 => 0,
                3 => 1,
                4 => 2,
                _ => 3,
            }] += 1;
            report.f32_bytes_full_size += (w * h * usize::from(c.clamp(1, 3)) * 4) as u64;
        }
        report.distinct_sizes = sizes.len();
        let mut common: Vec<((usize, usize), usize)> = sizes.into_iter().collect();
        common.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        common.truncate(5);
        report.common_sizes = common;
        splits.push(report);
    }
    let inspected: usize = splits.iter().map(|s| s.inspected).sum();
    Ok(FolderReport {
        root: root.to_path_buf(),
        splits,
        size,
        f32_bytes_at_size: (inspected * per_image * 4) as u64,
        images_per_second: timed as f64 / seconds.max(1e-9),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn a_folder_is_counted_sized_and_its_bad_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        png(&root.join("train/cat/a.png"), 40, 30);
        png(&root.join("train/cat/b.png"), 300, 200);
        png(&root.join("train/dog/deep/c.png"), 40, 30);
        std::fs::write(root.join("train/dog/broken.png"), b"not a png").unwrap();
        png(&root.join("test/cat/d.png"), 80, 80);
        png(&root.join("test/dog/e.png"), 80, 80);
        let report = inspect_folder(root, 32, None).unwrap();
        let train = &report.splits[0];
        assert_eq!(train.name, "train");
        assert_eq!(train.classes, [("cat".into(), 2), ("dog".into(), 2)]);
        assert_eq!(train.inspected, 4);
        assert_eq!(train.unreadable.len(), 1);
        assert!(train.unreadable[0].0.ends_with("broken.png"));
        // Shorter sides 30, 200, 30: two under 64, one in [128, 256).
        assert_eq!(train.shorter_side, [2, 0, 1, 0, 0, 0]);
        assert_eq!(train.common_sizes[0], ((40, 30), 2));
        assert_eq!(train.distinct_sizes, 2);
        assert_eq!(train.channels, [0, 3, 0, 0]);
        assert_eq!(train.f32_bytes_full_size, (2 * 40 * 30 + 300 * 200) * 3 * 4);
        let test = &report.splits[1];
        assert_eq!((test.inspected, test.distinct_sizes), (2, 1));
        assert_eq!(report.f32_bytes_at_size, 6 * 3 * 32 * 32 * 4);
        assert!(report.images_per_second > 0.0);
        // A limit reads the first images of each split only.
        let first = inspect_folder(root, 32, Some(1)).unwrap();
        assert_eq!(first.splits[0].inspected, 1);
        assert_eq!(first.splits[1].inspected, 1);
        // A folder without class folders is an error naming it.
        let empty = tempfile::tempdir().unwrap();
        let e = inspect_folder(empty.path(), 32, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no class sub-folders"), "{e}");
    }
}
