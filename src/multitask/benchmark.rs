//! The multitask benchmarks: datasets whose every image carries one label per task.
//!
//! - **MultiMNIST** (Sener & Koltun 2018, after Sabour et al. 2017): each image of a
//!   28x28 greyscale set is the *left* digit; a second image of the same split (a seeded
//!   random partner) is the *right* digit. On a 36x36 canvas the left digit sits at the
//!   top-left (rows and columns 0..28), the right one at the bottom-right (6..34), where
//!   they overlap the pixel maximum is kept, and the canvas is resized back to 28x28
//!   (bilinear). Tasks: the left digit's class, the right digit's class.
//! - **Coarse auxiliary task**: the dataset's own classes (main task) plus a coarse
//!   grouping of them (auxiliary task), e.g. Fashion-MNIST's ten classes and four groups
//!   (tops, trousers and dresses, footwear, bags).

use rand::Rng;

use crate::data::split::rng;
use crate::data::{DataError, Dataset};

/// The label of an example that has none for a task (multi-input benchmarks: each task's
/// examples come from its own dataset).
pub const NO_LABEL: usize = usize::MAX;

/// Images with one label per task (or [`NO_LABEL`]); `images.labels` holds each example's
/// first label.
#[derive(Debug, Clone)]
pub struct MultitaskSet {
    /// The images (labels: task 0).
    pub images: Dataset,
    /// `labels[t][i]`: task `t`'s label of image `i`.
    pub labels: Vec<Vec<usize>>,
    /// Number of classes of each task.
    pub classes: Vec<usize>,
}

impl MultitaskSet {
    /// Number of tasks.
    pub fn tasks(&self) -> usize {
        self.labels.len()
    }

    /// The images labelled with task `t`'s labels.
    pub fn task_dataset(&self, t: usize) -> Result<Dataset, DataError> {
        Dataset::new(
            self.images.images.clone(),
            self.labels[t].clone(),
            self.images.shape,
            self.classes[t],
        )
    }
}

/// Bilinear resize of one `h x w` channel to `oh x ow` (pixel centres aligned, as
/// PyTorch's `align_corners=False`).
fn resize_bilinear(src: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0; oh * ow];
    let (sy, sx) = (h as f32 / oh as f32, w as f32 / ow as f32);
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).max(0.0);
        let y0 = (fy.floor() as usize).min(h - 1);
        let y1 = (y0 + 1).min(h - 1);
        let dy = fy - y0 as f32;
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * sx - 0.5).max(0.0);
            let x0 = (fx.floor() as usize).min(w - 1);
            let x1 = (x0 + 1).min(w - 1);
            let dx = fx - x0 as f32;
            let top = src[y0 * w + x0] * (1.0 - dx) + src[y0 * w + x1] * dx;
            let bottom = src[y1 * w + x0] * (1.0 - dx) + src[y1 * w + x1] * dx;
            out[y * ow + x] = top * (1.0 - dy) + bottom * dy;
        }
    }
    out
}

/// MultiMNIST from a single-channel `data` (any square greyscale set: MNIST,
/// Fashion-MNIST, digits), with the right-hand partners drawn with `seed`.
pub fn multi_digits(data: &Dataset, seed: u64) -> Result<MultitaskSet, DataError> {
    let [c, h, w] = data.shape;
    if c != 1 || h != w {
        return Err(DataError::Invalid(format!(
            "MultiMNIST needs square single-channel images, got {:?}",
            data.shape
        )));
    }
    if data.len() < 2 {
        return Err(DataError::Invalid(
            "MultiMNIST needs at least 2 images".into(),
        ));
    }
    // The canvas grows by 8/28 of the side, as 28 -> 36 in Sener & Koltun.
    let shift = (h * 8).div_ceil(28);
    let side = h + shift;
    let mut r = rng(seed ^ 0x3017_1D16);
    let mut images = Vec::with_capacity(data.images.len());
    let mut left = Vec::with_capacity(data.len());
    let mut right = Vec::with_capacity(data.len());
    let mut canvas = vec![0.0f32; side * side];
    for i in 0..data.len() {
        let mut j = r.random_range(0..data.len());
        if j == i {
            j = (j + 1) % data.len();
        }
        canvas.iter_mut().for_each(|v| *v = 0.0);
        let (a, b) = (data.image(i), data.image(j));
        for y in 0..h {
            for x in 0..w {
                canvas[y * side + x] = a[y * w + x];
            }
        }
        for y in 0..h {
            for x in 0..w {
                let at = (y + shift) * side + x + shift;
                canvas[at] = canvas[at].max(b[y * w + x]);
            }
        }
        images.extend(resize_bilinear(&canvas, side, side, h, w));
        left.push(data.labels[i]);
        right.push(data.labels[j]);
    }
    let classes = data.num_classes;
    Ok(MultitaskSet {
        images: Dataset::new(images, left.clone(), data.shape, classes)?,
        labels: vec![left, right],
        classes: vec![classes, classes],
    })
}

/// Two datasets as two tasks on one input space (multi-input multitask learning): the
/// images of `first` then of `second`, each labelled for its own task only.
pub fn paired_datasets(first: &Dataset, second: &Dataset) -> Result<MultitaskSet, DataError> {
    if first.shape != second.shape {
        return Err(DataError::Invalid(format!(
            "the two tasks' images must share a shape, got {:?} and {:?}",
            first.shape, second.shape
        )));
    }
    let (n1, n2) = (first.len(), second.len());
    let mut a = first.labels.clone();
    a.extend(std::iter::repeat_n(NO_LABEL, n2));
    let mut b = vec![NO_LABEL; n1];
    b.extend_from_slice(&second.labels);
    let mut own = first.labels.clone();
    own.extend_from_slice(&second.labels);
    let mut pixels = first.images.clone();
    pixels.extend_from_slice(&second.images);
    let classes = first.num_classes.max(second.num_classes);
    Ok(MultitaskSet {
        images: Dataset::new(pixels, own, first.shape, classes)?,
        labels: vec![a, b],
        classes: vec![first.num_classes, second.num_classes],
    })
}

/// Fashion-MNIST's coarse groups: 0 tops (T-shirt, pullover, coat, shirt), 1 trousers
/// and dresses, 2 footwear (sandal, sneaker, ankle boot), 3 bags.
pub const FASHION_COARSE: [usize; 10] = [0, 1, 0, 1, 0, 2, 0, 2, 3, 2];

/// The main task (the dataset's classes) plus the auxiliary task `groups[class]`.
pub fn with_coarse_task(data: &Dataset, groups: &[usize]) -> Result<MultitaskSet, DataError> {
    if groups.len() != data.num_classes {
        return Err(DataError::Invalid(format!(
            "the coarse grouping has {} entries, the dataset {} classes",
            groups.len(),
            data.num_classes
        )));
    }
    let coarse_classes = groups.iter().max().map_or(0, |m| m + 1);
    let coarse = data.labels.iter().map(|&l| groups[l]).collect();
    Ok(MultitaskSet {
        images: data.clone(),
        labels: vec![data.labels.clone(), coarse],
        classes: vec![data.num_classes, coarse_classes],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bilinear_resize_keeps_constants_and_averages_neighbours() {
        let flat = vec![0.5; 36 * 36];
        assert!(
            resize_bilinear(&flat, 36, 36, 28, 28)
                .iter()
                .all(|v| (v - 0.5).abs() < 1e-6)
        );
        // 2x2 -> 1x1 samples the centre: the mean of the four.
        assert_eq!(
            resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 1, 1),
            vec![1.5]
        );
    }

    #[test]
    fn multi_digits_overlays_left_top_and_right_bottom_deterministically() {
        // Image 0 lights the top-left pixel, image 1 the bottom-right one.
        let (h, w) = (28, 28);
        let mut images = vec![0.0; 2 * h * w];
        images[0] = 1.0;
        images[h * w + h * w - 1] = 1.0;
        let d = Dataset::new(images, vec![3, 7], [1, h, w], 10).unwrap();
        let m = multi_digits(&d, 1).unwrap();
        assert_eq!(m.labels, vec![vec![3, 7], vec![7, 3]]);
        assert_eq!(m.classes, vec![10, 10]);
        let first = m.images.image(0);
        // Left digit's corner pixel lands top-left, the partner's bottom-right.
        assert!(first[0] > 0.2, "{}", first[0]);
        assert!(first[h * w - 1] > 0.2, "{}", first[h * w - 1]);
        assert!(first[h * w / 2 + w / 2] == 0.0);
        let again = multi_digits(&d, 1).unwrap();
        assert_eq!(again.images, m.images);
    }

    #[test]
    fn paired_datasets_label_each_example_for_its_own_task() {
        let a = Dataset::new(vec![0.0; 2], vec![1, 0], [1, 1, 1], 2).unwrap();
        let b = Dataset::new(vec![1.0; 3], vec![2, 0, 1], [1, 1, 1], 3).unwrap();
        let m = paired_datasets(&a, &b).unwrap();
        assert_eq!(m.labels[0], vec![1, 0, NO_LABEL, NO_LABEL, NO_LABEL]);
        assert_eq!(m.labels[1], vec![NO_LABEL, NO_LABEL, 2, 0, 1]);
        assert_eq!(m.classes, vec![2, 3]);
        assert_eq!(m.images.len(), 5);
    }

    #[test]
    fn coarse_task_maps_classes_to_groups() {
        let d = Dataset::new(vec![0.0; 10], (0..10).collect(), [1, 1, 1], 10).unwrap();
        let m = with_coarse_task(&d, &FASHION_COARSE).unwrap();
        assert_eq!(m.classes, vec![10, 4]);
        assert_eq!(m.labels[1], FASHION_COARSE.to_vec());
        assert!(with_coarse_task(&d, &[0, 1]).is_err());
    }
}
