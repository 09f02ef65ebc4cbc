//! Seeded dataset transformations: stratified splits, class subsets, per-class
//! subsampling, fixed pixel permutations and per-channel normalisation. Every random
//! choice draws from ChaCha8 seeded explicitly, so the same seed gives the same result on
//! any machine.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DataError, Dataset};

/// The named RNG that every seeded choice in mentor uses.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Splits off `fraction` of each class (rounded) as the second part; the rest, in the
/// original order, is the first part.
pub fn stratified_split(data: &Dataset, fraction: f64, seed: u64) -> (Dataset, Dataset) {
    let (keep, out) = stratified_indices(&data.labels, data.num_classes, fraction, seed);
    (data.select(&keep), data.select(&out))
}

/// The positions [`stratified_split`] keeps and holds out, ascending, for examples with
/// `labels` in `0..num_classes`.
pub fn stratified_indices(
    labels: &[usize],
    num_classes: usize,
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = rng(seed);
    let mut held = vec![false; labels.len()];
    for class in 0..num_classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        let n = (idx.len() as f64 * fraction).round() as usize;
        for &i in &idx[..n] {
            held[i] = true;
        }
    }
    let keep: Vec<usize> = (0..labels.len()).filter(|&i| !held[i]).collect();
    let out: Vec<usize> = (0..labels.len()).filter(|&i| held[i]).collect();
    (keep, out)
}

/// Keeps only the images of `classes` and relabels them `0..classes.len()` in the given
/// order (so digits 5-9 become classes 0-4).
pub fn class_subset(data: &Dataset, classes: &[usize]) -> Result<Dataset, DataError> {
    let (idx, labels) = class_subset_indices(&data.labels, data.num_classes, classes)?;
    let mut out = data.select(&idx);
    out.labels = labels;
    out.num_classes = classes.len();
    Ok(out)
}

/// The positions [`class_subset`] keeps, ascending, and their new labels, for examples
/// with `labels` in `0..num_classes`.
pub fn class_subset_indices(
    labels: &[usize],
    num_classes: usize,
    classes: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if classes.is_empty() {
        return Err(DataError::Invalid("class subset is empty".into()));
    }
    for (k, &c) in classes.iter().enumerate() {
        if c >= num_classes {
            return Err(DataError::Invalid(format!(
                "class {c} does not exist (the dataset has {num_classes} classes)"
            )));
        }
        if classes[..k].contains(&c) {
            return Err(DataError::Invalid(format!("class {c} is listed twice")));
        }
    }
    let mut kept = Vec::new();
    let mut new_labels = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if let Some(position) = classes.iter().position(|c| c == l) {
            kept.push(i);
            new_labels.push(position);
        }
    }
    Ok((kept, new_labels))
}

/// Keeps at most `per_class` images of each class, chosen at random with `seed`, in the
/// original order.
pub fn per_class_subsample(
    data: &Dataset,
    per_class: usize,
    seed: u64,
) -> Result<Dataset, DataError> {
    if per_class == 0 {
        return Err(DataError::Invalid("per_class must be at least 1".into()));
    }
    Ok(data.select(&per_class_indices(data, per_class, seed)))
}

/// The indices [`per_class_subsample`] keeps, ascending.
pub fn per_class_indices(data: &Dataset, per_class: usize, seed: u64) -> Vec<usize> {
    per_class_label_indices(&data.labels, data.num_classes, per_class, seed)
}

/// [`per_class_indices`] for examples with `labels` in `0..num_classes`.
pub fn per_class_label_indices(
    labels: &[usize],
    num_classes: usize,
    per_class: usize,
    seed: u64,
) -> Vec<usize> {
    let mut rng = rng(seed);
    let mut keep = vec![false; labels.len()];
    for class in 0..num_classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        for &i in idx.iter().take(per_class) {
            keep[i] = true;
        }
    }
    (0..labels.len()).filter(|&i| keep[i]).collect()
}

/// A fixed permutation of an image's pixels, as in Permuted-MNIST.
pub fn pixel_permutation(len: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..len).collect();
    p.shuffle(&mut rng(seed));
    p
}

/// Applies `perm` to every image: new pixel `j` is old pixel `perm[j]`.
pub fn permute_pixels(data: &Dataset, perm: &[usize]) -> Result<Dataset, DataError> {
    let n = data.image_len();
    if perm.len() != n {
        return Err(DataError::Invalid(format!(
            "permutation has {} entries, images have {n} values",
            perm.len()
        )));
    }
    let mut out = data.clone();
    for (dst, src) in out
        .images
        .chunks_exact_mut(n)
        .zip(data.images.chunks_exact(n))
    {
        for (d, &p) in dst.iter_mut().zip(perm) {
            *d = src[p];
        }
    }
    Ok(out)
}

/// Per-channel mean and standard deviation (computed on a training set, applied to all).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    /// Mean of each channel.
    pub mean: Vec<f32>,
    /// Standard deviation of each channel (never below 1e-6).
    pub std: Vec<f32>,
}

impl Normalization {
    /// Measures each channel's mean and standard deviation over `data`.
    pub fn fit(data: &Dataset) -> Self {
        let [c, h, w] = data.shape;
        let plane = h * w;
        let mut mean = vec![0f64; c];
        let mut sq = vec![0f64; c];
        for img in data.images.chunks_exact(c * plane) {
            for ch in 0..c {
                for &v in &img[ch * plane..(ch + 1) * plane] {
                    mean[ch] += f64::from(v);
                    sq[ch] += f64::from(v) * f64::from(v);
                }
            }
        }
        let n = (data.len() * plane).max(1) as f64;
        let mean: Vec<f64> = mean.iter().map(|m| m / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| ((s / n - m * m).max(0.0).sqrt() as f32).max(1e-6))
            .collect();
        Self {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Undoes [`Normalization::apply`]: `x * std + mean` per channel, in place (back to
    /// the pixel range augmentations expect).
    pub fn invert(&self, data: &mut Dataset) {
        self.per_channel(data, |v, m, s| v * s + m);
    }

    /// Applies `(x - mean) / std` per channel, in place.
    pub fn apply(&self, data: &mut Dataset) {
        self.per_channel(data, |v, m, s| (v - m) / s);
    }

    /// Replaces every pixel `v` of channel `ch` by `f(v, mean[ch], std[ch])`.
    fn per_channel(&self, data: &mut Dataset, f: impl Fn(f32, f32, f32) -> f32) {
        let [c, h, w] = data.shape;
        let plane = h * w;
        for img in data.images.chunks_exact_mut(c * plane) {
            for ch in 0..c {
                let (m, s) = (self.mean[ch], self.std[ch]);
                for v in &mut img[ch * plane..(ch + 1) * plane] {
                    *v = f(*v, m, s);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n_per_class: usize, classes: usize) -> Dataset {
        let n = n_per_class * classes;
        let labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
        let images = (0..n).map(|i| i as f32).collect();
        Dataset::new(images, labels, [1, 1, 1], classes).unwrap()
    }

    #[test]
    fn stratified_split_is_seeded_and_balanced() {
        let d = toy(10, 3);
        let (a, b) = stratified_split(&d, 0.3, 7);
        assert_eq!(b.class_counts(), vec![3, 3, 3]);
        assert_eq!(a.len() + b.len(), d.len());
        assert_eq!(stratified_split(&d, 0.3, 7).1, b);
        assert_ne!(stratified_split(&d, 0.3, 8).1, b);
    }

    #[test]
    fn class_subset_relabels_in_given_order() {
        let d = toy(2, 10);
        let s = class_subset(&d, &[7, 5]).unwrap();
        assert_eq!(s.num_classes, 2);
        assert_eq!(s.class_counts(), vec![2, 2]);
        assert_eq!(s.labels[0], 1); // image 5 (class 5) comes before image 7
        assert!(class_subset(&d, &[10]).is_err());
        assert!(class_subset(&d, &[1, 1]).is_err());
    }

    #[test]
    fn per_class_subsample_caps_each_class() {
        let d = toy(10, 4);
        let s = per_class_subsample(&d, 3, 1).unwrap();
        assert_eq!(s.class_counts(), vec![3, 3, 3, 3]);
        assert_eq!(per_class_subsample(&d, 3, 1).unwrap(), s);
    }

    #[test]
    fn permutation_is_a_bijection_and_applied_per_image() {
        let p = pixel_permutation(6, 3);
        let mut sorted = p.clone();
        sorted.sort();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
        let d = Dataset::new(
            (0..12).map(|v| v as f32).collect(),
            vec![0, 0],
            [1, 2, 3],
            1,
        )
        .unwrap();
        let q = permute_pixels(&d, &p).unwrap();
        for (j, &src) in p.iter().enumerate() {
            assert_eq!(q.image(1)[j], d.image(1)[src]);
        }
    }

    #[test]
    fn normalization_gives_zero_mean_unit_std() {
        let mut d = toy(50, 2);
        let norm = Normalization::fit(&d);
        norm.apply(&mut d);
        let again = Normalization::fit(&d);
        assert!(again.mean[0].abs() < 1e-4);
        assert!((again.std[0] - 1.0).abs() < 1e-4);
    }
}
