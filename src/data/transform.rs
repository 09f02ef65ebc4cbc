//! Image transforms with torchvision's semantics and names, composed in TOML
//! (`[data.transform] train = [...]`, `eval = [...]`), for photos of any size read from
//! disk (see [`super::stream`]).
//!
//! A photo is decoded to 8-bit RGB (or grey, with a leading `to-grey` step, as
//! torchvision's `Grayscale`), goes through the geometric steps on its 8-bit pixels
//! (`resize`, `center-crop`, `random-resized-crop`, `horizontal-flip`), becomes `[C, H,
//! W]` floats in `[0, 1]` (torchvision's `ToTensor`) and then goes through the colour
//! steps (`color-jitter`, `normalize`). Resampling is antialiased bilinear convolution,
//! as Pillow's `BILINEAR` that torchvision's transforms use on photos (the
//! `fast_image_resize` crate's `Convolution(Bilinear)`, which follows Pillow's filter).
//!
//! Every random draw comes from the [`ChaCha8Rng`] the caller passes, seeded by run,
//! epoch and example (see [`example_rng`]), so a transformed image depends on those
//! numbers alone, not on which worker thread made it.

use fast_image_resize as fr;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::{Image, color_jitter, grayscale, view_rng};
use crate::rules::{self, Interval, Rule, Violation};

/// The random stream of example `index` in epoch `epoch` of a run seeded `seed`.
pub fn example_rng(seed: u64, epoch: usize, index: usize) -> ChaCha8Rng {
    example_view_rng(seed, epoch, index, 0)
}

/// The random stream of view `view` of example `index` in epoch `epoch` of a run seeded
/// `seed` (view 0 is [`example_rng`]'s).
pub fn example_view_rng(seed: u64, epoch: usize, index: usize, view: usize) -> ChaCha8Rng {
    let epoch_seed = seed ^ (epoch as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    view_rng(epoch_seed, index, view)
}

/// A size: one number (for `resize`, the shorter side, the longer one keeping the aspect
/// ratio; for crops, a square) or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// One side.
    Side(usize),
    /// `[height, width]`.
    HeightWidth([usize; 2]),
}

impl Size {
    fn square_or_exact(self) -> [usize; 2] {
        match self {
            Size::Side(s) => [s, s],
            Size::HeightWidth(hw) => hw,
        }
    }
}

/// Named channel statistics for `normalize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Statistics {
    /// The ImageNet training set's: mean `[0.485, 0.456, 0.406]`, std `[0.229, 0.224,
    /// 0.225]` (torchvision's pretrained weights).
    Imagenet,
    /// Inception-style `[-1, 1]` scaling: mean and std `0.5` (TensorFlow's EfficientNet-
    /// Lite uses 127/255 and 128/255, within 0.4% of it).
    Inception,
}

impl Statistics {
    /// Per-channel (mean, std) for RGB.
    pub fn values(self) -> ([f32; 3], [f32; 3]) {
        match self {
            Statistics::Imagenet => ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            Statistics::Inception => ([0.5; 3], [0.5; 3]),
        }
    }
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

fn half() -> f64 {
    0.5
}

fn one() -> f64 {
    1.0
}

fn tenth() -> f64 {
    0.1
}

fn default_sigma() -> [f64; 2] {
    [0.1, 2.0]
}

/// One step of a transform, named as torchvision names it (kebab-case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Step {
    /// `Grayscale(1)`: decode to one grey channel (Pillow's ITU-R 601-2 luma) instead of
    /// RGB. Must be the first step.
    ToGrey,
    /// Decode to three RGB channels (the default; grey photos are replicated, as
    /// torchvision's loader's `convert("RGB")`). Must be the first step.
    ToRgb,
    /// `Resize(size)`: one number sets the shorter side (the longer one becomes
    /// `floor(size * long / short)`); `[height, width]` sets both.
    Resize {
        /// The size.
        size: Size,
    },
    /// `CenterCrop(size)`: the central box, offsets rounded half to even as Python's
    /// `round`; an image smaller than the box is padded with zeros first.
    CenterCrop {
        /// The box.
        size: Size,
    },
    /// `RandomResizedCrop(size, scale, ratio)` (Szegedy et al. 2015): a box of a random
    /// fraction `scale` of the area and aspect ratio in `ratio` (log-uniform), drawn up to
    /// ten times; else the central box of the nearest allowed ratio. Resized to `size`.
    RandomResizedCrop {
        /// Output size.
        size: Size,
        /// Range of the box's share of the image area.
        #[serde(default = "default_scale")]
        scale: [f64; 2],
        /// Range of the box's width / height.
        #[serde(default = "default_ratio")]
        ratio: [f64; 2],
    },
    /// `RandomHorizontalFlip(p)`: mirror left-right with probability `p`.
    HorizontalFlip {
        /// Probability of the flip.
        #[serde(default = "half")]
        p: f64,
    },
    /// `ColorJitter(brightness, contrast, saturation, hue)`: factors drawn from `[1 - s,
    /// 1 + s]`, a hue shift from `[-hue, hue]` of a turn, applied in a random order (see
    /// [`color_jitter`]: the hue turns the YIQ chroma plane, where torchvision shifts
    /// HSV hue); with `p` below 1, torchvision's `RandomApply([ColorJitter(...)], p)`.
    ColorJitter {
        /// Brightness strength, in `[0, 1]`.
        #[serde(default)]
        brightness: f64,
        /// Contrast strength, in `[0, 1]`.
        #[serde(default)]
        contrast: f64,
        /// Saturation strength, in `[0, 1]`.
        #[serde(default)]
        saturation: f64,
        /// Hue strength, in `[0, 0.5]`.
        #[serde(default)]
        hue: f64,
        /// Probability that the jitter is applied at all (1, the default, always).
        #[serde(default = "one")]
        p: f64,
    },
    /// `RandomGrayscale(p)`: with probability `p`, every channel becomes the luma (ITU-R
    /// 601), so the image keeps its channel count.
    RandomGrayscale {
        /// Probability of the conversion (torchvision's default 0.1).
        #[serde(default = "tenth")]
        p: f64,
    },
    /// `GaussianBlur(kernel_size, sigma)`: a separable Gaussian of `kernel_size` taps with
    /// a standard deviation drawn uniformly from `sigma` (pixels), edges reflected as
    /// torchvision pads them; with `p` below 1, `RandomApply([GaussianBlur(...)], p)` (as
    /// SimCLR's recipe applies it with p 0.5).
    GaussianBlur {
        /// Taps of the kernel (odd).
        kernel_size: usize,
        /// Range of the standard deviation, in pixels (torchvision's default 0.1-2).
        #[serde(default = "default_sigma")]
        sigma: [f64; 2],
        /// Probability that the blur is applied at all (1, the default, always).
        #[serde(default = "one")]
        p: f64,
    },
    /// `Normalize(mean, std)`: `(x - mean) / std` per channel, with named `statistics` or
    /// explicit `mean` and `std` (one value per channel).
    Normalize {
        /// Named statistics (instead of `mean` and `std`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        statistics: Option<Statistics>,
        /// Per-channel means.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mean: Option<Vec<f32>>,
        /// Per-channel standard deviations.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        std: Option<Vec<f32>>,
    },
}

impl Step {
    /// The name in configs.
    pub fn name(&self) -> &'static str {
        match self {
            Step::ToGrey => "to-grey",
            Step::ToRgb => "to-rgb",
            Step::Resize { .. } => "resize",
            Step::CenterCrop { .. } => "center-crop",
            Step::RandomResizedCrop { .. } => "random-resized-crop",
            Step::HorizontalFlip { .. } => "horizontal-flip",
            Step::ColorJitter { .. } => "color-jitter",
            Step::RandomGrayscale { .. } => "random-grayscale",
            Step::GaussianBlur { .. } => "gaussian-blur",
            Step::Normalize { .. } => "normalize",
        }
    }

    fn is_geometric(&self) -> bool {
        matches!(
            self,
            Step::Resize { .. }
                | Step::CenterCrop { .. }
                | Step::RandomResizedCrop { .. }
                | Step::HorizontalFlip { .. }
        )
    }
}

/// A transform: its steps in order. Checked with [`Transform::check`] before use.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Transform {
    /// The steps.
    pub steps: Vec<Step>,
}

/// The checked facts of a transform: what it makes of any photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Output {
    /// `[C, H, W]` of every transformed image.
    pub shape: [usize; 3],
    /// Whether a step normalises.
    pub normalizes: bool,
    /// Whether a step draws random numbers (an augmentation).
    pub random: bool,
}

impl Transform {
    /// torchvision's ImageNet training transform: `random-resized-crop` to `size`,
    /// `horizontal-flip`, ImageNet `normalize`.
    pub fn imagenet_train(size: usize) -> Self {
        Self {
            steps: vec![
                Step::RandomResizedCrop {
                    size: Size::Side(size),
                    scale: default_scale(),
                    ratio: default_ratio(),
                },
                Step::HorizontalFlip { p: 0.5 },
                imagenet_normalize(),
            ],
        }
    }

    /// torchvision's ImageNet evaluation transform: `resize` the shorter side to
    /// `size * 8 / 7` (256 for 224), `center-crop` `size`, ImageNet `normalize`.
    pub fn imagenet_eval(size: usize) -> Self {
        Self {
            steps: vec![
                Step::Resize {
                    size: Size::Side(size * 8 / 7),
                },
                Step::CenterCrop {
                    size: Size::Side(size),
                },
                imagenet_normalize(),
            ],
        }
    }

    /// Checks the steps' rules and works out the output; on error the
    /// [`crate::rules::Violation`] keyed by the step's position and name (`[2] resize`).
    pub fn check(&self) -> Result<Output, Violation> {
        let at = |i: usize, s: &Step| format!("[{i}] {}", s.name());
        let mut channels = 3;
        let mut size: Option<[usize; 2]> = None;
        let mut normalizes = false;
        let mut random = false;
        let mut colour_seen: Option<&'static str> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let fail = |rule: Rule| rules::fail(at(i, step), rule);
            let parameter = |parameter: &'static str, rule: Rule| {
                fail(Rule::StepParameter {
                    parameter,
                    rule: Box::new(rule),
                })
            };
            if step.is_geometric()
                && let Some(colour) = colour_seen
            {
                return fail(Rule::GeometryAfterColour { colour });
            }
            let range = |v: [f64; 2], interval: Interval| {
                if v[0] <= v[1] && interval.contains(v[0]) && interval.contains(v[1]) {
                    Ok(())
                } else {
                    Err(Rule::IncreasingRange { interval, got: v })
                }
            };
            match step {
                Step::ToGrey | Step::ToRgb => {
                    if i != 0 {
                        return fail(Rule::DecodeFirst);
                    }
                    channels = if *step == Step::ToGrey { 1 } else { 3 };
                }
                Step::Resize { size: s } => {
                    if let Err(r) = rules::every_at_least_one(&s.square_or_exact()) {
                        return parameter("size", r);
                    }
                    size = match s {
                        Size::Side(_) => None,
                        Size::HeightWidth(hw) => Some(*hw),
                    };
                }
                Step::CenterCrop { size: s } => {
                    if let Err(r) = rules::every_at_least_one(&s.square_or_exact()) {
                        return parameter("size", r);
                    }
                    size = Some(s.square_or_exact());
                }
                Step::RandomResizedCrop {
                    size: s,
                    scale,
                    ratio,
                } => {
                    if let Err(r) = rules::every_at_least_one(&s.square_or_exact()) {
                        return parameter("size", r);
                    }
                    if let Err(r) = range(*scale, Interval::open_closed(0.0, 1.0)) {
                        return parameter("scale", r);
                    }
                    if let Err(r) = range(*ratio, Interval::closed(1e-3, 1e3)) {
                        return parameter("ratio", r);
                    }
                    size = Some(s.square_or_exact());
                    random = true;
                }
                Step::HorizontalFlip { p } => {
                    if let Err(r) = Interval::PROBABILITY.check(*p) {
                        return parameter("p", r);
                    }
                    random |= *p > 0.0;
                }
                Step::ColorJitter {
                    brightness,
                    contrast,
                    saturation,
                    hue,
                    p,
                } => {
                    if let Err(r) = Interval::PROBABILITY.check(*p) {
                        return parameter("p", r);
                    }
                    for (key, v, hi) in [
                        ("brightness", brightness, 1.0),
                        ("contrast", contrast, 1.0),
                        ("saturation", saturation, 1.0),
                        ("hue", hue, 0.5),
                    ] {
                        if let Err(r) = Interval::closed(0.0, hi).check(*v) {
                            return parameter(key, r);
                        }
                    }
                    random = true;
                    colour_seen = Some("color-jitter");
                }
                Step::RandomGrayscale { p } => {
                    if let Err(r) = Interval::PROBABILITY.check(*p) {
                        return parameter("p", r);
                    }
                    random |= *p > 0.0;
                    colour_seen = Some("random-grayscale");
                }
                Step::GaussianBlur {
                    kernel_size,
                    sigma,
                    p,
                } => {
                    if kernel_size % 2 == 0 {
                        return parameter(
                            "kernel_size",
                            Rule::Odd {
                                got: *kernel_size as u64,
                            },
                        );
                    }
                    if let Err(r) = range(*sigma, Interval::open_closed(0.0, 1e3)) {
                        return parameter("sigma", r);
                    }
                    if let Err(r) = Interval::PROBABILITY.check(*p) {
                        return parameter("p", r);
                    }
                    random = true;
                    colour_seen = Some("gaussian-blur");
                }
                Step::Normalize {
                    statistics,
                    mean,
                    std,
                } => {
                    let (m, s) = match (statistics, mean, std) {
                        (Some(st), None, None) => {
                            let (m, s) = st.values();
                            (m[..channels].to_vec(), s[..channels].to_vec())
                        }
                        (None, Some(m), Some(s)) => (m.clone(), s.clone()),
                        _ => {
                            return fail(Rule::NormalizeStatistics);
                        }
                    };
                    if m.len() != channels || s.len() != channels {
                        return fail(Rule::StatisticsPerChannel {
                            channels,
                            mean: m.len(),
                            std: s.len(),
                        });
                    }
                    for v in &s {
                        if let Err(r) = rules::positive(rules::shown(*v)) {
                            return parameter("std", r);
                        }
                    }
                    if let Some(v) = m.iter().find(|v| !v.is_finite()) {
                        return parameter(
                            "mean",
                            Rule::Finite {
                                got: rules::shown(*v),
                            },
                        );
                    }
                    normalizes = true;
                    colour_seen = Some("normalize");
                }
            }
        }
        let Some([h, w]) = size else {
            return rules::fail("", Rule::NoFixedSize);
        };
        Ok(Output {
            shape: [channels, h, w],
            normalizes,
            random,
        })
    }

    /// Decodes `bytes` (PNG or JPEG) and transforms the photo into `out` (the checked
    /// output's `C * H * W` floats, CHW), drawing from `r`. The error says why the bytes
    /// are not a usable image.
    pub fn apply(&self, bytes: &[u8], r: &mut ChaCha8Rng, out: &mut [f32]) -> Result<(), String> {
        self.apply_views(bytes, std::slice::from_mut(r), out)
    }

    /// [`Transform::apply`] once per random stream of `rngs` on one decoding of `bytes`:
    /// the views a contrastive method compares, one after the other in `out`
    /// (`rngs.len() * C * H * W` floats).
    pub fn apply_views(
        &self,
        bytes: &[u8],
        rngs: &mut [ChaCha8Rng],
        out: &mut [f32],
    ) -> Result<(), String> {
        let image =
            image::load_from_memory(bytes).map_err(|e| format!("not a PNG or JPEG image ({e})"))?;
        if image.width() == 0 || image.height() == 0 {
            return Err("the image has no pixels".into());
        }
        let grey = self.steps.first() == Some(&Step::ToGrey);
        let (width, height) = (image.width() as usize, image.height() as usize);
        let rgb = image.into_rgb8().into_raw();
        let decoded = Pixels {
            data: if grey { pil_luma(&rgb) } else { rgb },
            width,
            height,
            channels: if grey { 1 } else { 3 },
        };
        let per = out.len() / rngs.len().max(1);
        if per * rngs.len() != out.len() {
            return Err(format!(
                "{} values do not split into {} views (unchecked transform)",
                out.len(),
                rngs.len()
            ));
        }
        let last = rngs.len().saturating_sub(1);
        let mut decoded = Some(decoded);
        for (v, (r, out)) in rngs.iter_mut().zip(out.chunks_mut(per.max(1))).enumerate() {
            // The last view takes the decoded photo itself, the others a copy.
            let pixels = match v == last {
                true => decoded.take(),
                false => decoded.clone(),
            };
            let Some(pixels) = pixels else {
                unreachable!("the photo is taken by the last view only")
            };
            self.transform_decoded(pixels, r, out)?;
        }
        Ok(())
    }

    /// The steps on one decoded photo, into `out`.
    fn transform_decoded(
        &self,
        mut pixels: Pixels,
        r: &mut ChaCha8Rng,
        out: &mut [f32],
    ) -> Result<(), String> {
        let mut tensor: Option<Image> = None;
        for step in &self.steps {
            match step {
                Step::ToGrey | Step::ToRgb => {}
                Step::Resize { size } => {
                    let [h, w] = resized_size(*size, pixels.height, pixels.width);
                    let whole = [0.0, 0.0, pixels.height as f64, pixels.width as f64];
                    pixels = pixels.resample(whole, [h, w])?;
                }
                Step::CenterCrop { size } => {
                    let [h, w] = size.square_or_exact();
                    pixels = pixels.center_crop(h, w)?;
                }
                Step::RandomResizedCrop { size, scale, ratio } => {
                    let [top, left, h, w] =
                        random_resized_box(pixels.height, pixels.width, *scale, *ratio, r);
                    let box_ = [top as f64, left as f64, h as f64, w as f64];
                    pixels = pixels.resample(box_, size.square_or_exact())?;
                }
                Step::HorizontalFlip { p } => {
                    if r.random_bool(*p) {
                        pixels.flip_horizontal();
                    }
                }
                Step::ColorJitter {
                    brightness,
                    contrast,
                    saturation,
                    hue,
                    p,
                } => {
                    let img = tensor.take().unwrap_or_else(|| pixels.to_unit_floats());
                    // p = 1 draws nothing, so a plain jitter's stream is what it was.
                    tensor = Some(if *p >= 1.0 || r.random_bool(*p) {
                        color_jitter(&img, [*brightness, *contrast, *saturation, *hue], r)
                    } else {
                        img
                    });
                }
                Step::RandomGrayscale { p } => {
                    let img = tensor.take().unwrap_or_else(|| pixels.to_unit_floats());
                    tensor = Some(if r.random_bool(*p) {
                        grayscale(&img)
                    } else {
                        img
                    });
                }
                Step::GaussianBlur {
                    kernel_size,
                    sigma,
                    p,
                } => {
                    let img = tensor.take().unwrap_or_else(|| pixels.to_unit_floats());
                    tensor = Some(if *p >= 1.0 || r.random_bool(*p) {
                        let s = r.random_range(sigma[0]..=sigma[1]);
                        gaussian_blur_reflect(&img, *kernel_size, s as f32)
                    } else {
                        img
                    });
                }
                Step::Normalize {
                    statistics,
                    mean,
                    std,
                } => {
                    let mut img = tensor.take().unwrap_or_else(|| pixels.to_unit_floats());
                    let (m, s) = match (statistics, mean, std) {
                        (Some(st), _, _) => {
                            let (m, s) = st.values();
                            (m.to_vec(), s.to_vec())
                        }
                        (None, Some(m), Some(s)) => (m.clone(), s.clone()),
                        _ => return Err("normalize has no statistics (unchecked transform)".into()),
                    };
                    let plane = img.shape[1] * img.shape[2];
                    for (c, values) in img.pixels.chunks_mut(plane).enumerate() {
                        let (mc, sc) = (m[c], s[c]);
                        values.iter_mut().for_each(|v| *v = (*v - mc) / sc);
                    }
                    tensor = Some(img);
                }
            }
        }
        let img = tensor.unwrap_or_else(|| pixels.to_unit_floats());
        if img.pixels.len() != out.len() {
            return Err(format!(
                "the transform made {:?} values, not the {} expected (unchecked transform)",
                img.shape,
                out.len()
            ));
        }
        out.copy_from_slice(&img.pixels);
        Ok(())
    }
}

/// torchvision's `gaussian_blur`: a normalised kernel of `size` taps `exp(-x^2 / 2
/// sigma^2)` at `x = -(size - 1) / 2 ..= (size - 1) / 2`, along rows then columns, with
/// reflected edges (`reflect` padding: the edge pixel is not repeated).
fn gaussian_blur_reflect(img: &Image, size: usize, sigma: f32) -> Image {
    let half = (size / 2) as isize;
    let kernel: Vec<f32> = (-half..=half)
        .map(|x| (-0.5 * (x as f32 / sigma).powi(2)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    let reflect = |i: isize, n: usize| -> usize {
        if n == 1 {
            return 0;
        }
        let period = 2 * (n as isize - 1);
        let i = i.rem_euclid(period);
        (if i < n as isize { i } else { period - i }) as usize
    };
    let [c, h, w] = img.shape;
    let mut across = vec![0f32; img.pixels.len()];
    for (src, dst) in img.pixels.chunks(w).zip(across.chunks_mut(w)) {
        for (x, d) in dst.iter_mut().enumerate() {
            *d = (kernel.iter().zip(-half..=half))
                .map(|(k, o)| k * src[reflect(x as isize + o, w)])
                .sum();
        }
    }
    let mut out = vec![0f32; img.pixels.len()];
    for ch in 0..c {
        let plane = &across[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                out[(ch * h + y) * w + x] = (kernel.iter().zip(-half..=half))
                    .map(|(k, o)| k * plane[reflect(y as isize + o, h) * w + x])
                    .sum();
            }
        }
    }
    Image {
        pixels: out,
        shape: img.shape,
    }
}

fn imagenet_normalize() -> Step {
    Step::Normalize {
        statistics: Some(Statistics::Imagenet),
        mean: None,
        std: None,
    }
}

/// torchvision's `Resize` output `[height, width]` for an image `h x w`: one side sets
/// the shorter side and the longer follows as `floor(side * long / short)`.
pub fn resized_size(size: Size, h: usize, w: usize) -> [usize; 2] {
    match size {
        Size::HeightWidth(hw) => hw,
        Size::Side(s) if h <= w => [s, (s * w / h).max(1)],
        Size::Side(s) => [(s * h / w).max(1), s],
    }
}

/// torchvision's `RandomResizedCrop.get_params`: `[top, left, height, width]` of the
/// box, in whole pixels.
pub fn random_resized_box(
    h: usize,
    w: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    r: &mut ChaCha8Rng,
) -> [usize; 4] {
    let area = (h * w) as f64;
    let (log_lo, log_hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * r.random_range(scale[0]..=scale[1]);
        let aspect = r.random_range(log_lo..=log_hi).exp();
        let cw = (target * aspect).sqrt().round_ties_even() as usize;
        let ch = (target / aspect).sqrt().round_ties_even() as usize;
        if 0 < cw && cw <= w && 0 < ch && ch <= h {
            let top = r.random_range(0..=h - ch);
            let left = r.random_range(0..=w - cw);
            return [top, left, ch, cw];
        }
    }
    // The fallback: the central box of the allowed ratio nearest the image's.
    let in_ratio = w as f64 / h as f64;
    let (ch, cw) = if in_ratio < ratio[0] {
        (
            ((w as f64 / ratio[0]).round_ties_even() as usize).clamp(1, h),
            w,
        )
    } else if in_ratio > ratio[1] {
        (
            h,
            ((h as f64 * ratio[1]).round_ties_even() as usize).clamp(1, w),
        )
    } else {
        (h, w)
    };
    [(h - ch) / 2, (w - cw) / 2, ch, cw]
}

/// Pillow's `convert("L")` of interleaved RGB: ITU-R 601-2 luma `(19595 R + 38470 G +
/// 7471 B + 2^15) >> 16` (a grey photo keeps its values exactly).
fn pil_luma(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let l = 19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]);
            ((l + 0x8000) >> 16) as u8
        })
        .collect()
}

/// A decoded 8-bit image, interleaved (`H x W x C`).
#[derive(Clone)]
struct Pixels {
    data: Vec<u8>,
    width: usize,
    height: usize,
    channels: usize,
}

impl Pixels {
    fn pixel_type(&self) -> fr::PixelType {
        if self.channels == 1 {
            fr::PixelType::U8
        } else {
            fr::PixelType::U8x3
        }
    }

    /// The box `[top, left, height, width]` resampled to `out` (`[height, width]`) with
    /// antialiased bilinear convolution.
    fn resample(self, box_: [f64; 4], out: [usize; 2]) -> Result<Pixels, String> {
        let [top, left, bh, bw] = box_;
        let [oh, ow] = out;
        // The resized image, and the resampler's intermediate (new width x old height,
        // 32-bit per channel), checked against the memory limit before either exists.
        let bytes = self.channels as u128
            * (oh as u128 * ow as u128 + 4 * ow as u128 * self.height as u128);
        super::limits::check_allocation(
            &format!(
                "resizing a {}x{} photo to {ow}x{oh}",
                self.width, self.height
            ),
            bytes,
        )
        .map_err(|e| e.to_string())?;
        let pixel_type = self.pixel_type();
        let src = fr::images::Image::from_vec_u8(
            self.width as u32,
            self.height as u32,
            self.data,
            pixel_type,
        )
        .map_err(|e| format!("resize: {e}"))?;
        let mut dst = fr::images::Image::new(ow as u32, oh as u32, pixel_type);
        let options = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Bilinear))
            .crop(left, top, bw, bh);
        fr::Resizer::new()
            .resize(&src, &mut dst, &options)
            .map_err(|e| format!("resize: {e}"))?;
        Ok(Pixels {
            data: dst.into_vec(),
            width: ow,
            height: oh,
            channels: self.channels,
        })
    }

    /// torchvision's `center_crop`: pad with zeros to at least `h x w` (the extra on the
    /// right and bottom when odd), then cut the box at offsets `round((H - h) / 2)`
    /// (half to even).
    fn center_crop(self, h: usize, w: usize) -> Result<Pixels, String> {
        let c = self.channels;
        let pad_h = h.saturating_sub(self.height);
        let pad_w = w.saturating_sub(self.width);
        let (ph, pw) = (self.height + pad_h, self.width + pad_w);
        let (pt, pl) = (pad_h / 2, pad_w / 2);
        let top = ((ph - h) as f64 / 2.0).round_ties_even() as usize;
        let left = ((pw - w) as f64 / 2.0).round_ties_even() as usize;
        let mut data = vec![0u8; h * w * c];
        for y in 0..h {
            // Row `y` of the box is row `top + y` of the padded image.
            let Some(sy) = (top + y).checked_sub(pt).filter(|&sy| sy < self.height) else {
                continue;
            };
            for x in 0..w {
                let Some(sx) = (left + x).checked_sub(pl).filter(|&sx| sx < self.width) else {
                    continue;
                };
                let s = (sy * self.width + sx) * c;
                data[(y * w + x) * c..][..c].copy_from_slice(&self.data[s..s + c]);
            }
        }
        Ok(Pixels {
            data,
            width: w,
            height: h,
            channels: c,
        })
    }

    fn flip_horizontal(&mut self) {
        let (w, c) = (self.width, self.channels);
        for row in self.data.chunks_exact_mut(w * c) {
            for x in 0..w / 2 {
                for k in 0..c {
                    row.swap(x * c + k, (w - 1 - x) * c + k);
                }
            }
        }
    }

    /// `[C, H, W]` floats in `[0, 1]` (torchvision's `ToTensor`).
    fn to_unit_floats(&self) -> Image {
        let (h, w, c) = (self.height, self.width, self.channels);
        let mut out = vec![0f32; c * h * w];
        for (i, px) in self.data.chunks_exact(c).enumerate() {
            for (k, &v) in px.iter().enumerate() {
                out[k * h * w + i] = f32::from(v) / 255.0;
            }
        }
        Image {
            pixels: out,
            shape: [c, h, w],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::rng;

    fn png(img: image::RgbImage) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    fn parse(text: &str) -> Result<Transform, String> {
        #[derive(Deserialize)]
        struct T {
            t: Transform,
        }
        toml::from_str::<T>(text)
            .map(|t| t.t)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn steps_parse_from_toml_with_torchvision_defaults() {
        let t = parse(
            r#"t = [
                { op = "random-resized-crop", size = 224 },
                { op = "horizontal-flip" },
                { op = "normalize", statistics = "imagenet" },
            ]"#,
        )
        .unwrap();
        assert_eq!(t, Transform::imagenet_train(224));
        let out = t.check().unwrap();
        assert_eq!(out.shape, [3, 224, 224]);
        assert!(out.normalizes && out.random);
        let e = Transform::imagenet_eval(224);
        assert_eq!(
            e.steps[0],
            Step::Resize {
                size: Size::Side(256)
            }
        );
        assert!(!e.check().unwrap().random);
        let err = parse(r#"t = [{ op = "resize", size = 3, colour = 1 }]"#).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = parse(r#"t = [{ op = "rotate" }]"#).unwrap_err();
        assert!(err.contains("rotate"), "{err}");
    }

    #[test]
    fn check_names_the_step_and_rule() {
        let bad = |steps: Vec<Step>| Transform { steps }.check().unwrap_err();
        let crop = Step::CenterCrop {
            size: Size::Side(4),
        };
        let v = bad(vec![Step::Resize {
            size: Size::Side(8),
        }]);
        assert!(v.key.is_empty() && v.rule == Rule::NoFixedSize, "{v}");
        let v = bad(vec![crop.clone(), Step::ToGrey]);
        assert_eq!((v.key.as_str(), v.rule), ("[1] to-grey", Rule::DecodeFirst));
        let norm = Step::Normalize {
            statistics: Some(Statistics::Imagenet),
            mean: None,
            std: None,
        };
        let v = bad(vec![norm.clone(), crop.clone()]);
        assert_eq!(v.key, "[1] center-crop");
        assert_eq!(
            v.rule,
            Rule::GeometryAfterColour {
                colour: "normalize"
            }
        );
        let v = bad(vec![crop.clone(), Step::HorizontalFlip { p: 1.5 }]);
        assert_eq!(v.key, "[1] horizontal-flip");
        assert!(
            matches!(&v.rule, Rule::StepParameter { parameter: "p", rule }
                if matches!(**rule, Rule::Within { got, .. } if got == 1.5)),
            "{v}"
        );
        let grey_norm = Step::Normalize {
            statistics: None,
            mean: Some(vec![0.5, 0.5, 0.5]),
            std: Some(vec![0.5, 0.5, 0.5]),
        };
        let v = bad(vec![Step::ToGrey, crop.clone(), grey_norm]);
        assert_eq!(v.key, "[2] normalize");
        assert_eq!(
            v.rule,
            Rule::StatisticsPerChannel {
                channels: 1,
                mean: 3,
                std: 3
            }
        );
        let out = Transform {
            steps: vec![Step::ToGrey, crop, norm],
        }
        .check()
        .unwrap();
        assert_eq!(out.shape, [1, 4, 4]);
    }

    #[test]
    fn resize_follows_torchvision_shorter_side_rule() {
        // torchvision: Resize(256) of 451x300 (w x h) is 384x256.
        assert_eq!(resized_size(Size::Side(256), 300, 451), [256, 384]);
        assert_eq!(resized_size(Size::Side(256), 451, 300), [384, 256]);
        assert_eq!(resized_size(Size::Side(10), 7, 7), [10, 10]);
        assert_eq!(resized_size(Size::HeightWidth([5, 9]), 100, 100), [5, 9]);
    }

    #[test]
    fn center_crop_rounds_offsets_half_to_even_and_pads() {
        // A 1x5 ramp: a 2-wide crop starts at round(1.5) = 2, a 4-wide at round(0.5) = 0.
        let ramp = |w: usize| Pixels {
            data: (0..w as u8).collect(),
            width: w,
            height: 1,
            channels: 1,
        };
        assert_eq!(ramp(5).center_crop(1, 2).unwrap().data, vec![2, 3]);
        assert_eq!(ramp(5).center_crop(1, 4).unwrap().data, vec![0, 1, 2, 3]);
        // Padding: a 1x2 image in a 1x5 box sits at columns 1-2 (pad 1 left, 2 right).
        assert_eq!(ramp(2).center_crop(1, 5).unwrap().data, vec![0, 0, 1, 0, 0]);
    }

    #[test]
    fn random_box_fits_and_falls_back_to_the_centre() {
        let mut r = rng(3);
        for _ in 0..200 {
            let [t, l, h, w] = random_resized_box(300, 451, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut r);
            assert!(h >= 1 && w >= 1 && t + h <= 300 && l + w <= 451);
            let share = (h * w) as f64 / (300.0 * 451.0);
            assert!((0.07..=1.0).contains(&share), "{share}");
        }
        // A 1x100 strip cannot hold a box of ratio <= 4/3 with 50% of the area: the
        // fallback is the central 1x1 box (round(1 * 4/3) = 1).
        let b = random_resized_box(1, 100, [0.5, 1.0], [0.75, 4.0 / 3.0], &mut r);
        assert_eq!(b, [0, 49, 1, 1]);
    }

    #[test]
    fn apply_crops_flips_and_normalises_in_chw() {
        // 6x4 (w x h) photo whose red channel is the column and green the row.
        let photo =
            image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 9]));
        let bytes = png(photo);
        let t = Transform {
            steps: vec![
                Step::CenterCrop {
                    size: Size::HeightWidth([2, 4]),
                },
                Step::HorizontalFlip { p: 1.0 },
                Step::Normalize {
                    statistics: None,
                    mean: Some(vec![0.0, 0.0, 0.0]),
                    std: Some(vec![1.0, 1.0, 0.5]),
                },
            ],
        };
        assert_eq!(t.check().unwrap().shape, [3, 2, 4]);
        let mut out = vec![0f32; 24];
        t.apply(&bytes, &mut rng(0), &mut out).unwrap();
        // Columns 1..5 flipped: red 200, 160, 120, 80 on each row; green rows 1, 2.
        let red: Vec<f32> = out[..4].iter().map(|v| v * 255.0).collect();
        assert_eq!(
            red.iter().map(|v| v.round()).collect::<Vec<_>>(),
            [160.0, 120.0, 80.0, 40.0]
        );
        assert!((out[8] * 255.0 - 60.0).abs() < 1e-3 && (out[12] * 255.0 - 120.0).abs() < 1e-3);
        assert!((out[16] - 2.0 * 9.0 / 255.0).abs() < 1e-6);
        let err = t.apply(b"not an image", &mut rng(0), &mut out).unwrap_err();
        assert!(err.contains("PNG or JPEG"), "{err}");
    }

    #[test]
    fn simclr_colour_steps_parse_check_and_apply() {
        let t = parse(
            r#"t = [
                { op = "center-crop", size = 6 },
                { op = "color-jitter", brightness = 0.4, p = 0.8 },
                { op = "random-grayscale", p = 1.0 },
                { op = "gaussian-blur", kernel_size = 3 },
            ]"#,
        )
        .unwrap();
        assert_eq!(
            t.steps[3],
            Step::GaussianBlur {
                kernel_size: 3,
                sigma: [0.1, 2.0],
                p: 1.0
            }
        );
        assert_eq!(
            parse(r#"t = [{ op = "random-grayscale" }]"#).unwrap().steps[0],
            Step::RandomGrayscale { p: 0.1 }
        );
        assert_eq!(t.check().unwrap().shape, [3, 6, 6]);
        // Grey with three equal channels, colours mixed into the luma.
        let photo = image::RgbImage::from_fn(6, 6, |x, _| image::Rgb([x as u8 * 40, 90, 30]));
        let mut out = vec![0f32; 108];
        t.apply(&png(photo), &mut rng(4), &mut out).unwrap();
        assert!(out[..36].iter().zip(&out[36..72]).all(|(a, b)| a == b));
        assert!(out[..36].iter().zip(&out[72..]).all(|(a, b)| a == b));
        assert!(out[0] != out[5], "blur flattened the ramp");
        // A jitter applied with p 0 leaves the image; with p 1 it draws what p-less did.
        let jitter = |p: f64| Transform {
            steps: vec![
                Step::CenterCrop {
                    size: Size::Side(4),
                },
                Step::ColorJitter {
                    brightness: 0.9,
                    contrast: 0.0,
                    saturation: 0.0,
                    hue: 0.0,
                    p,
                },
            ],
        };
        let bytes = png(image::RgbImage::from_pixel(
            4,
            4,
            image::Rgb([100, 100, 100]),
        ));
        let mut a = vec![0f32; 48];
        jitter(0.0).apply(&bytes, &mut rng(1), &mut a).unwrap();
        assert!(a.iter().all(|v| (v * 255.0 - 100.0).abs() < 1e-3));
        jitter(1.0).apply(&bytes, &mut rng(1), &mut a).unwrap();
        assert!(a.iter().all(|v| (v * 255.0 - 100.0).abs() > 1e-3));
        // Rules: an even kernel, sigma out of range, p above 1.
        let blur = |kernel_size: usize, sigma: [f64; 2], p: f64| Transform {
            steps: vec![
                Step::CenterCrop {
                    size: Size::Side(4),
                },
                Step::GaussianBlur {
                    kernel_size,
                    sigma,
                    p,
                },
            ],
        };
        let v = blur(4, [0.1, 2.0], 1.0).check().unwrap_err();
        assert_eq!(v.key, "[1] gaussian-blur");
        assert!(
            v.to_string().contains("kernel_size") && v.to_string().contains("odd"),
            "{v}"
        );
        let v = blur(3, [2.0, 0.1], 1.0).check().unwrap_err();
        assert!(v.to_string().contains("sigma"), "{v}");
        let v = blur(3, [0.1, 2.0], 1.5).check().unwrap_err();
        assert!(v.to_string().contains("p"), "{v}");
        // Geometry after a blur is refused (the blur works on floats).
        let mut late = blur(3, [0.1, 2.0], 1.0);
        late.steps.push(Step::HorizontalFlip { p: 0.5 });
        assert!(late.check().is_err());
    }

    #[test]
    fn gaussian_blur_matches_torchvision_weights_with_reflected_edges() {
        // torchvision 0.29: F.gaussian_blur(x, [3, 3], [1.0, 1.0]) of this 1x3x3 image
        // (reflect padding: the first column sees column 1 on its left).
        let img = Image {
            pixels: vec![0.0, 3.0, 0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 4.0],
            shape: [1, 3, 3],
        };
        let want = [
            0.990_731_2,
            1.063_221_5,
            1.238_414,
            0.654_861_6,
            1.043_502_8,
            1.354_407_2,
            0.247_682_8,
            0.946_047_3,
            1.312_085_4,
        ];
        let out = gaussian_blur_reflect(&img, 3, 1.0);
        for (a, b) in out.pixels.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{:?} vs {want:?}", out.pixels);
        }
        // A constant stays constant; a kernel wider than the image still reflects.
        let flat = Image {
            pixels: vec![0.25; 2 * 2 * 3],
            shape: [3, 2, 2],
        };
        let out = gaussian_blur_reflect(&flat, 9, 2.0);
        assert!(out.pixels.iter().all(|v| (v - 0.25).abs() < 1e-6));
    }

    #[test]
    fn resizing_a_flat_image_keeps_it_flat_and_is_seeded() {
        let bytes = png(image::RgbImage::from_pixel(
            37,
            23,
            image::Rgb([51, 102, 204]),
        ));
        let t = Transform::imagenet_train(16);
        let mut a = vec![0f32; 3 * 16 * 16];
        let mut b = a.clone();
        t.apply(&bytes, &mut example_rng(1, 0, 5), &mut a).unwrap();
        t.apply(&bytes, &mut example_rng(1, 0, 5), &mut b).unwrap();
        assert_eq!(a, b);
        let (m, s) = Statistics::Imagenet.values();
        for c in 0..3 {
            let want = ([51.0, 102.0, 204.0][c] / 255.0 - m[c]) / s[c];
            assert!(
                a[c * 256..(c + 1) * 256]
                    .iter()
                    .all(|v| (v - want).abs() < 1e-5)
            );
        }
    }
}
