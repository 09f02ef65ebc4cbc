//! Seeded image augmentations for self-supervised learning, on `[C, H, W]` images with
//! values in `[0, 1]` (apply them before normalising): random resized crop, horizontal
//! flip, colour jitter (brightness, contrast, saturation, hue), random grayscale,
//! Gaussian blur, rotation by multiples of 90 degrees and patch grids. The composition
//! [`AugmentConfig`] follows SimCLR (Chen et al. 2020): crop -> flip -> jitter (with
//! probability) -> grayscale (with probability) -> blur (with probability).
//!
//! Every random choice comes from a ChaCha8 stream seeded by `(seed, example, view)`, so
//! an augmented batch is a function of those numbers alone (reproducible, resumable).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::split::rng;
use super::{DataError, Dataset};
use crate::rules::{self, Interval, Rule, Violation};

/// The random stream of view `view` of example `index` in a run seeded `seed`.
pub fn view_rng(seed: u64, index: usize, view: usize) -> ChaCha8Rng {
    let h = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((index as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add((view as u64).wrapping_mul(0x1656_67B1_9E37_79F9));
    rng(h)
}

/// One image: `[C, H, W]` values.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Pixel values, channel after channel.
    pub pixels: Vec<f32>,
    /// `[C, H, W]`.
    pub shape: [usize; 3],
}

impl Image {
    /// Image `i` of `data`.
    pub fn of(data: &Dataset, i: usize) -> Self {
        Self {
            pixels: data.image(i).to_vec(),
            shape: data.shape,
        }
    }

    fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        let [_, h, w] = self.shape;
        self.pixels[(c * h + y) * w + x]
    }
}

/// Bilinearly samples the box `top, left, height, width` (in pixels, fractional) of
/// `img` onto an `out_h x out_w` grid (pixel centres aligned).
pub fn resized_crop(
    img: &Image,
    top: f32,
    left: f32,
    height: f32,
    width: f32,
    out: [usize; 2],
) -> Image {
    let [c, h, w] = img.shape;
    let [oh, ow] = out;
    let mut pixels = Vec::with_capacity(c * oh * ow);
    for ch in 0..c {
        for y in 0..oh {
            let fy = (top + (y as f32 + 0.5) * height / oh as f32 - 0.5).clamp(0.0, (h - 1) as f32);
            let (y0, dy) = (fy.floor() as usize, fy - fy.floor());
            let y1 = (y0 + 1).min(h - 1);
            for x in 0..ow {
                let fx =
                    (left + (x as f32 + 0.5) * width / ow as f32 - 0.5).clamp(0.0, (w - 1) as f32);
                let (x0, dx) = (fx.floor() as usize, fx - fx.floor());
                let x1 = (x0 + 1).min(w - 1);
                let top_row = img.at(ch, y0, x0) * (1.0 - dx) + img.at(ch, y0, x1) * dx;
                let bottom = img.at(ch, y1, x0) * (1.0 - dx) + img.at(ch, y1, x1) * dx;
                pixels.push(top_row * (1.0 - dy) + bottom * dy);
            }
        }
    }
    Image {
        pixels,
        shape: [c, oh, ow],
    }
}

/// Random resized crop (Szegedy et al. 2015, as torchvision's `RandomResizedCrop`): a box
/// of `scale` x the area and aspect ratio in `ratio` (log-uniform), resized back to the
/// image's size; after 10 failed draws, the whole image.
pub fn random_resized_crop(
    img: &Image,
    scale: [f64; 2],
    ratio: [f64; 2],
    r: &mut ChaCha8Rng,
) -> Image {
    let [_, h, w] = img.shape;
    let area = (h * w) as f64;
    for _ in 0..10 {
        let target = area * r.random_range(scale[0]..=scale[1]);
        let log_ratio = r.random_range(ratio[0].ln()..=ratio[1].ln());
        let aspect = log_ratio.exp();
        let cw = (target * aspect).sqrt();
        let ch = (target / aspect).sqrt();
        if cw <= w as f64 && ch <= h as f64 && cw >= 1.0 && ch >= 1.0 {
            let top = r.random_range(0.0..=(h as f64 - ch));
            let left = r.random_range(0.0..=(w as f64 - cw));
            return resized_crop(img, top as f32, left as f32, ch as f32, cw as f32, [h, w]);
        }
    }
    img.clone()
}

/// Mirror left-right.
pub fn hflip(img: &Image) -> Image {
    let [c, h, w] = img.shape;
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for ch in 0..c {
        for y in 0..h {
            for x in (0..w).rev() {
                pixels.push(img.at(ch, y, x));
            }
        }
    }
    Image {
        pixels,
        shape: img.shape,
    }
}

/// Rotation by `k * 90` degrees counter-clockwise (square images).
pub fn rotate90(img: &Image, k: usize) -> Image {
    let mut out = img.clone();
    for _ in 0..k % 4 {
        let [c, h, w] = out.shape;
        let mut pixels = Vec::with_capacity(out.pixels.len());
        for ch in 0..c {
            // New pixel (y, x) comes from old (x, w - 1 - y): a 90-degree turn.
            for y in 0..w {
                for x in 0..h {
                    pixels.push(out.at(ch, x, w - 1 - y));
                }
            }
        }
        out = Image {
            pixels,
            shape: [c, w, h],
        };
    }
    out
}

/// Luma of an RGB image (ITU-R 601 weights), or the single channel of a grey one.
fn luma(img: &Image) -> Vec<f32> {
    let [c, h, w] = img.shape;
    let n = h * w;
    if c < 3 {
        return img.pixels[..n].to_vec();
    }
    (0..n)
        .map(|i| 0.299 * img.pixels[i] + 0.587 * img.pixels[n + i] + 0.114 * img.pixels[2 * n + i])
        .collect()
}

/// The image in grey (every channel set to the luma).
pub fn grayscale(img: &Image) -> Image {
    let y = luma(img);
    let mut pixels = Vec::with_capacity(img.pixels.len());
    for _ in 0..img.shape[0] {
        pixels.extend_from_slice(&y);
    }
    Image {
        pixels,
        shape: img.shape,
    }
}

/// Colour jitter with factors drawn uniformly from `[1 - s, 1 + s]` for brightness,
/// contrast and saturation and a hue shift from `[-hue, hue]` (a fraction of a turn,
/// applied as a rotation of the chroma plane in YIQ space), in a random order, clamped
/// to `[0, 1]`. Saturation and hue leave grey images unchanged.
pub fn color_jitter(img: &Image, strength: [f64; 4], r: &mut ChaCha8Rng) -> Image {
    let [b, c, s, hue] = strength;
    let factor = |r: &mut ChaCha8Rng, s: f64| {
        if s > 0.0 {
            r.random_range(1.0 - s..=1.0 + s) as f32
        } else {
            1.0
        }
    };
    let bf = factor(r, b);
    let cf = factor(r, c);
    let sf = factor(r, s);
    let hf = if hue > 0.0 {
        r.random_range(-hue..=hue) as f32
    } else {
        0.0
    };
    let mut order = [0usize, 1, 2, 3];
    rand::seq::SliceRandom::shuffle(&mut order[..], r);
    let mut out = img.clone();
    let rgb = img.shape[0] >= 3;
    for op in order {
        match op {
            0 => out.pixels.iter_mut().for_each(|p| *p *= bf),
            1 => {
                let mean = luma(&out).iter().sum::<f32>() / (out.shape[1] * out.shape[2]) as f32;
                out.pixels
                    .iter_mut()
                    .for_each(|p| *p = (*p - mean) * cf + mean);
            }
            2 if rgb => {
                let grey = grayscale(&out);
                for (p, g) in out.pixels.iter_mut().zip(&grey.pixels) {
                    *p = (*p - g) * sf + g;
                }
            }
            3 if rgb && hf != 0.0 => {
                let n = out.shape[1] * out.shape[2];
                let (cos, sin) = (
                    (hf * std::f32::consts::TAU).cos(),
                    (hf * std::f32::consts::TAU).sin(),
                );
                for i in 0..n {
                    let (rr, gg, bb) = (out.pixels[i], out.pixels[n + i], out.pixels[2 * n + i]);
                    let y = 0.299 * rr + 0.587 * gg + 0.114 * bb;
                    let ii = 0.596 * rr - 0.274 * gg - 0.322 * bb;
                    let q = 0.211 * rr - 0.523 * gg + 0.312 * bb;
                    let (i2, q2) = (ii * cos - q * sin, ii * sin + q * cos);
                    out.pixels[i] = y + 0.956 * i2 + 0.621 * q2;
                    out.pixels[n + i] = y - 0.272 * i2 - 0.647 * q2;
                    out.pixels[2 * n + i] = y - 1.106 * i2 + 1.703 * q2;
                }
            }
            _ => {}
        }
        out.pixels.iter_mut().for_each(|p| *p = p.clamp(0.0, 1.0));
    }
    out
}

/// Gaussian blur with standard deviation `sigma` pixels (separable, kernel radius
/// `ceil(3 sigma)`, edges clamped).
pub fn gaussian_blur(img: &Image, sigma: f32) -> Image {
    if sigma <= 0.0 {
        return img.clone();
    }
    let radius = (3.0 * sigma).ceil() as isize;
    let kernel: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let [c, h, w] = img.shape;
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut dst = vec![0.0; src.len()];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let mut acc = 0.0;
                    for (k, d) in kernel.iter().zip(-radius..=radius) {
                        let (yy, xx) = if horizontal {
                            (y as isize, (x as isize + d).clamp(0, w as isize - 1))
                        } else {
                            ((y as isize + d).clamp(0, h as isize - 1), x as isize)
                        };
                        acc += k * src[(ch * h + yy as usize) * w + xx as usize];
                    }
                    dst[(ch * h + y) * w + x] = acc;
                }
            }
        }
        dst
    };
    let pixels = pass(&pass(&img.pixels, true), false);
    Image {
        pixels,
        shape: img.shape,
    }
}

/// Every image of `data` four times, rotated by 0, 90, 180 and 270 degrees and labelled
/// by its rotation (0..4): the rotation pretext task (Gidaris et al. 2018).
pub fn rotation_task(data: &Dataset) -> Result<Dataset, DataError> {
    let [c, h, w] = data.shape;
    if h != w {
        return Err(DataError::Invalid(format!(
            "the rotation pretext task needs square images, got {h}x{w}"
        )));
    }
    let mut pixels = Vec::with_capacity(4 * data.images.len());
    let mut labels = Vec::with_capacity(4 * data.len());
    for i in 0..data.len() {
        let img = Image::of(data, i);
        for k in 0..4 {
            pixels.extend(rotate90(&img, k).pixels);
            labels.push(k);
        }
    }
    Dataset::new(pixels, labels, [c, h, w], 4)
}

/// A 3x3-style grid of `grid x grid` square patches for the relative-position pretext
/// task (Doersch et al. 2015): the image is cut into cells, and in each cell a patch of
/// `patch` pixels is taken at a random offset within the cell's margin (`jitter`), so
/// neighbouring patches are separated by a gap and low-level edge continuity does not
/// give their arrangement away. Returns the patches in row-major cell order.
pub fn patch_grid(
    img: &Image,
    grid: usize,
    patch: usize,
    r: &mut ChaCha8Rng,
) -> Result<Vec<Image>, DataError> {
    let [c, h, w] = img.shape;
    let cell = h.min(w) / grid.max(1);
    if grid == 0 || patch == 0 || patch > cell {
        return Err(DataError::Invalid(format!(
            "a {grid}x{grid} grid of {patch}-pixel patches does not fit a {h}x{w} image"
        )));
    }
    let slack = cell - patch;
    let mut out = Vec::with_capacity(grid * grid);
    for gy in 0..grid {
        for gx in 0..grid {
            let oy = gy * cell + r.random_range(0..=slack);
            let ox = gx * cell + r.random_range(0..=slack);
            let mut pixels = Vec::with_capacity(c * patch * patch);
            for ch in 0..c {
                for y in 0..patch {
                    for x in 0..patch {
                        pixels.push(img.at(ch, oy + y, ox + x));
                    }
                }
            }
            out.push(Image {
                pixels,
                shape: [c, patch, patch],
            });
        }
    }
    Ok(out)
}

/// A SimCLR-style augmentation pipeline (`[ssl.augment]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AugmentConfig {
    /// Area fraction range of the random resized crop.
    pub crop_scale: [f64; 2],
    /// Aspect-ratio range of the crop.
    pub crop_ratio: [f64; 2],
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Colour-jitter strengths: brightness, contrast, saturation, hue.
    pub jitter: [f64; 4],
    /// Probability of applying the colour jitter.
    pub jitter_p: f64,
    /// Probability of converting to grey.
    pub grayscale: f64,
    /// Probability of a Gaussian blur.
    pub blur: f64,
    /// Blur standard deviation range, as a fraction of the image side.
    pub blur_sigma: [f64; 2],
}

impl Default for AugmentConfig {
    /// SimCLR's (Chen et al. 2020) settings: crop 0.08-1 of the area, flip 0.5, jitter
    /// (0.4, 0.4, 0.4, 0.1) with probability 0.8, grayscale 0.2, blur 0.5 with sigma
    /// 0.1-2.0 pixels on 224-pixel images (here as fractions of the side).
    fn default() -> Self {
        Self {
            crop_scale: [0.08, 1.0],
            crop_ratio: [3.0 / 4.0, 4.0 / 3.0],
            flip: 0.5,
            jitter: [0.4, 0.4, 0.4, 0.1],
            jitter_p: 0.8,
            grayscale: 0.2,
            blur: 0.5,
            blur_sigma: [0.1 / 224.0, 2.0 / 224.0],
        }
    }
}

impl AugmentConfig {
    /// Checks the ranges; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        let range = |k: &str, v: [f64; 2], interval: Interval| {
            if v[0] > v[1] || !interval.contains(v[0]) || !interval.contains(v[1]) {
                rules::fail(k, Rule::IncreasingRange { interval, got: v })
            } else {
                Ok(())
            }
        };
        range(
            "augment.crop_scale",
            self.crop_scale,
            Interval::closed(1e-3, 1.0),
        )?;
        range(
            "augment.crop_ratio",
            self.crop_ratio,
            Interval::closed(1e-2, 1e2),
        )?;
        range("augment.blur_sigma", self.blur_sigma, Interval::PROBABILITY)?;
        for (k, p) in [
            ("augment.flip", self.flip),
            ("augment.jitter_p", self.jitter_p),
            ("augment.grayscale", self.grayscale),
            ("augment.blur", self.blur),
        ] {
            Interval::PROBABILITY
                .check(p)
                .map_err(|r| Violation::new(k, r))?;
        }
        Ok(())
    }

    /// One augmented view of `img`, drawing from `r`.
    pub fn apply(&self, img: &Image, r: &mut ChaCha8Rng) -> Image {
        let mut out = random_resized_crop(img, self.crop_scale, self.crop_ratio, r);
        if r.random_bool(self.flip) {
            out = hflip(&out);
        }
        if r.random_bool(self.jitter_p) {
            out = color_jitter(&out, self.jitter, r);
        }
        if r.random_bool(self.grayscale) {
            out = grayscale(&out);
        }
        if r.random_bool(self.blur) {
            let side = img.shape[1].min(img.shape[2]) as f64;
            let sigma = r.random_range(self.blur_sigma[0]..=self.blur_sigma[1]) * side;
            out = gaussian_blur(&out, sigma as f32);
        }
        out
    }

    /// View `view` of every example at `indices`, as a dataset (labels kept), seeded by
    /// `(seed, index, view)`.
    pub fn views(&self, data: &Dataset, indices: &[usize], view: usize, seed: u64) -> Dataset {
        let mut pixels = Vec::with_capacity(indices.len() * data.image_len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let mut r = view_rng(seed, i, view);
            pixels.extend(self.apply(&Image::of(data, i), &mut r).pixels);
            labels.push(data.labels[i]);
        }
        Dataset {
            images: pixels,
            labels,
            shape: data.shape,
            num_classes: data.num_classes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(c: usize, h: usize, w: usize) -> Image {
        Image {
            pixels: (0..c * h * w)
                .map(|v| v as f32 / (c * h * w) as f32)
                .collect(),
            shape: [c, h, w],
        }
    }

    #[test]
    fn flips_and_rotations_compose_to_identity() {
        let img = ramp(3, 5, 5);
        assert_eq!(hflip(&hflip(&img)), img);
        assert_eq!(rotate90(&img, 4), img);
        assert_ne!(rotate90(&img, 1), img);
        assert_eq!(rotate90(&rotate90(&img, 1), 3), img);
        // A 90-degree turn moves the top-right corner to the top-left.
        let r = rotate90(&img, 1);
        assert_eq!(r.at(0, 0, 0), img.at(0, 0, 4));
    }

    #[test]
    fn the_full_crop_is_the_image() {
        let img = ramp(1, 6, 6);
        let same = resized_crop(&img, 0.0, 0.0, 6.0, 6.0, [6, 6]);
        for (a, b) in same.pixels.iter().zip(&img.pixels) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn grayscale_uses_luma_and_blur_preserves_constants() {
        let img = Image {
            pixels: vec![1.0, 0.0, 0.0],
            shape: [3, 1, 1],
        };
        assert!(
            grayscale(&img)
                .pixels
                .iter()
                .all(|&p| (p - 0.299).abs() < 1e-6)
        );
        let flat = Image {
            pixels: vec![0.3; 49],
            shape: [1, 7, 7],
        };
        assert!(
            gaussian_blur(&flat, 1.2)
                .pixels
                .iter()
                .all(|p| (p - 0.3).abs() < 1e-5)
        );
        // Blur spreads a point: the centre drops, its neighbour rises, the sum stays.
        let mut dot = vec![0.0; 49];
        dot[24] = 1.0;
        let b = gaussian_blur(
            &Image {
                pixels: dot,
                shape: [1, 7, 7],
            },
            1.0,
        );
        assert!(b.pixels[24] < 1.0 && b.pixels[25] > 0.0);
        assert!((b.pixels.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    #[test]
    fn jitter_stays_in_range_and_hue_keeps_grey_grey() {
        let mut r = rng(3);
        let img = ramp(3, 4, 4);
        let j = color_jitter(&img, [0.8, 0.8, 0.8, 0.5], &mut r);
        assert!(j.pixels.iter().all(|p| (0.0..=1.0).contains(p)));
        let grey = Image {
            pixels: vec![0.5; 3 * 4],
            shape: [3, 2, 2],
        };
        let g = color_jitter(&grey, [0.0, 0.0, 0.0, 0.5], &mut r);
        assert!(
            g.pixels.iter().all(|p| (p - 0.5).abs() < 1e-4),
            "{:?}",
            g.pixels
        );
    }

    #[test]
    fn views_are_seeded_per_example_and_view() {
        let data = Dataset::new(
            (0..4 * 64).map(|v| (v % 17) as f32 / 17.0).collect(),
            vec![0, 1, 2, 3],
            [1, 8, 8],
            4,
        )
        .unwrap();
        let aug = AugmentConfig::default();
        let a = aug.views(&data, &[0, 2], 0, 7);
        assert_eq!(a, aug.views(&data, &[0, 2], 0, 7));
        assert_ne!(a, aug.views(&data, &[0, 2], 1, 7));
        // Example 2's view does not depend on which other examples are in the batch.
        let alone = aug.views(&data, &[2], 0, 7);
        assert_eq!(alone.image(0), a.image(1));
        assert_eq!(a.labels, vec![0, 2]);
    }

    #[test]
    fn rotation_task_has_four_labelled_turns_per_image() {
        let data = Dataset::new(
            (0..2 * 9).map(|v| v as f32).collect(),
            vec![7, 3],
            [1, 3, 3],
            10,
        )
        .unwrap();
        let r = rotation_task(&data).unwrap();
        assert_eq!(r.len(), 8);
        assert_eq!(r.num_classes, 4);
        assert_eq!(r.labels, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(r.image(0), data.image(0));
        assert_eq!(
            r.image(6),
            rotate90(&Image::of(&data, 1), 2).pixels.as_slice()
        );
        let wide = Dataset::new(vec![0.0; 6], vec![0], [1, 2, 3], 1).unwrap();
        assert!(rotation_task(&wide).is_err());
    }

    #[test]
    fn patch_grid_cuts_cells_with_gaps() {
        let img = ramp(1, 9, 9);
        let mut r = rng(1);
        let patches = patch_grid(&img, 3, 2, &mut r).unwrap();
        assert_eq!(patches.len(), 9);
        assert!(patches.iter().all(|p| p.shape == [1, 2, 2]));
        assert!(patch_grid(&img, 3, 4, &mut r).is_err());
    }
}
