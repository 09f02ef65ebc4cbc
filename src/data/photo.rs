//! Photos for an ImageNet-pretrained network: an image file of any size and colour type
//! becomes the network's `3 x crop x crop` input, the way the network was evaluated on
//! ImageNet: the shorter side resized to `resize` (Pillow's antialiased bilinear, the
//! longer side `floor(resize * long / short)` as torchvision's `Resize`), the centre
//! `crop x crop` square cut out (offsets rounded half to even, as `CenterCrop`), pixels
//! scaled to `[0, 1]`, then each channel normalised with the mean and standard deviation
//! of the weights' training pipeline (a model card's, `crate::models::ModelCard`; [`PhotoTransform::imagenet`] is
//! torchvision's). The steps are those of [`super::transform`], so
//! `predict` and streamed image folders prepare a photo the same way.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::DataError;
use super::transform::{Size, Step, Transform};
use crate::rules::{self, Rule, Violation};

/// How a photo becomes a network input (resize, centre crop, per-channel normalisation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PhotoTransform {
    /// The shorter side after resizing, in pixels.
    pub resize: usize,
    /// The side of the centre square cut out after resizing (the network's input).
    pub crop: usize,
    /// Per-channel (R, G, B) mean subtracted from pixels in `[0, 1]`.
    pub mean: [f32; 3],
    /// Per-channel standard deviation the centred pixels are divided by.
    pub std: [f32; 3],
}

impl PhotoTransform {
    /// torchvision's ImageNet evaluation: resize 256, crop 224, the ImageNet training
    /// set's channel statistics (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225).
    pub fn imagenet() -> Self {
        Self {
            resize: 256,
            crop: 224,
            mean: [0.485, 0.456, 0.406],
            std: [0.229, 0.224, 0.225],
        }
    }

    /// Checks the rules; on error the [`crate::rules::Violation`] (key and rule).
    pub fn validate(&self) -> Result<(), Violation> {
        if self.crop == 0 || self.resize < self.crop {
            return rules::fail(
                "resize",
                Rule::ResizeBelowCrop {
                    resize: self.resize,
                    crop: self.crop,
                },
            );
        }
        for s in self.std {
            rules::positive(rules::shown(s)).map_err(|r| Violation::new("std", r))?;
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return rules::fail(
                "mean",
                Rule::Finite {
                    got: rules::shown(*m),
                },
            );
        }
        Ok(())
    }

    /// The same preprocessing as the evaluation steps of a streamed image folder, for a
    /// network of `channels` input channels (1: Pillow's grey first, `mean[0]` and
    /// `std[0]`; 3: RGB): `resize`, `center-crop`, `normalize` with torchvision's
    /// arithmetic (the longer side `floor(resize * long / short)`, crop offsets rounded
    /// half to even) and Pillow's antialiased bilinear resampling. Written once, in
    /// [`super::transform`], for predict and streamed data alike.
    pub fn as_transform(&self, channels: usize) -> Result<Transform, DataError> {
        let c = match channels {
            1 | 3 => channels,
            c => {
                return Err(DataError::Invalid(format!(
                    "photos become 1 (grey) or 3 (RGB) channels, not {c}"
                )));
            }
        };
        let mut steps = Vec::new();
        if c == 1 {
            steps.push(Step::ToGrey);
        }
        steps.extend([
            Step::Resize {
                size: Size::Side(self.resize),
            },
            Step::CenterCrop {
                size: Size::Side(self.crop),
            },
            Step::Normalize {
                statistics: None,
                mean: Some(self.mean[..c].to_vec()),
                std: Some(self.std[..c].to_vec()),
            },
        ]);
        Ok(Transform { steps })
    }

    /// Reads the image file at `path` (PNG or JPEG; see
    /// [`super::image_file::read_image_file`] for what is refused) and transforms it for
    /// a network of `channels` input channels ([`PhotoTransform::as_transform`]):
    /// `channels * crop * crop` values in CHW order.
    pub fn load(&self, path: &Path, channels: usize) -> Result<Vec<f32>, DataError> {
        if let Err(v) = self.validate() {
            return Err(DataError::Invalid(format!(
                "photo transform {}: {}",
                v.key, v.rule
            )));
        }
        let transform = self.as_transform(channels)?;
        let bytes = super::image_file::read_image_file(path)?;
        let mut out = vec![0f32; channels * self.crop * self.crop];
        // No step draws a random number; the stream is only the signature's.
        let mut unused = super::transform::example_rng(0, 0, 0);
        transform
            .apply(&bytes, &mut unused, &mut out)
            .map_err(|reason| DataError::format(path, reason))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(dir: &Path, name: &str, image: image::RgbImage) -> std::path::PathBuf {
        let path = dir.join(name);
        image.save(&path).unwrap();
        path
    }

    #[test]
    fn a_photo_is_cropped_at_its_centre_and_normalised_per_channel() {
        // A 40x20 image: red on the left quarter, blue on the right quarter, green in
        // the middle half. Resize 10 (to 20x10) and crop 10 keep only the green middle.
        let dir = tempfile::tempdir().unwrap();
        let path = save(
            dir.path(),
            "bands.png",
            image::RgbImage::from_fn(40, 20, |x, _| match x {
                0..10 => image::Rgb([255, 0, 0]),
                30..40 => image::Rgb([0, 0, 255]),
                _ => image::Rgb([0, 255, 0]),
            }),
        );
        let t = PhotoTransform {
            resize: 10,
            crop: 10,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
        };
        let x = t.load(&path, 3).unwrap();
        assert_eq!(x.len(), 300);
        let (r, g, b) = (&x[..100], &x[100..200], &x[200..]);
        // Interior pixels of the crop see only green: (0-0.5)/0.5, (1-0.25)/0.25, 0/2.
        for i in [2, 7, 45, 92] {
            let (ri, gi, bi) = (r[i], g[i], b[i]);
            assert!((ri + 1.0).abs() < 0.02, "red {ri} at {i}");
            assert!((gi - 3.0).abs() < 0.05, "green {gi} at {i}");
            assert!(bi.abs() < 0.01, "blue {bi} at {i}");
        }
    }

    #[test]
    fn the_geometry_is_torchvisions_resize_and_center_crop() {
        // A 451x300 (h x w) photo: Resize(256) makes it 384x256 (floor(256 * 451 / 300)
        // = 384, where rounding would give 385), CenterCrop(224) starts at row
        // round((384 - 224) / 2) = 80. A photo whose row y is y: the crop's first row
        // shows row (80 + 0.5) * 451 / 384 - 0.5 of the original, about 93.5.
        let dir = tempfile::tempdir().unwrap();
        let path = save(
            dir.path(),
            "rows.png",
            image::RgbImage::from_fn(300, 451, |_, y| {
                let v = (y * 255 / 450) as u8;
                image::Rgb([v, v, v])
            }),
        );
        let t = PhotoTransform {
            resize: 256,
            crop: 224,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let x = t.load(&path, 1).unwrap();
        let first_row = x[0] * 450.0;
        assert!(
            (first_row - 93.5).abs() < 1.0,
            "first row shows {first_row}"
        );
        let steps = t.as_transform(3).unwrap().check().unwrap();
        assert_eq!(steps.shape, [3, 224, 224]);
        assert_eq!(
            super::super::transform::resized_size(Size::Side(256), 451, 300),
            [384, 256]
        );
    }

    #[test]
    fn unreadable_files_and_bad_settings_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-an-image.png");
        std::fs::write(&path, b"hello").unwrap();
        let err = PhotoTransform::imagenet()
            .load(&path, 3)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not-an-image.png") && err.contains("not a PNG"),
            "{err}"
        );
        let grey = dir.path().join("grey.png");
        image::GrayImage::from_pixel(9, 7, image::Luma([51]))
            .save(&grey)
            .unwrap();
        let t = PhotoTransform {
            resize: 5,
            crop: 5,
            mean: [0.1, 0.0, 0.0],
            std: [0.5, 1.0, 1.0],
        };
        let x = t.load(&grey, 1).unwrap();
        assert_eq!(x.len(), 25);
        assert!(x.iter().all(|v| (v - 0.2).abs() < 1e-5), "{x:?}"); // (0.2 - 0.1) / 0.5
        assert_eq!(t.load(&grey, 3).unwrap().len(), 75);
        assert!(t.load(&grey, 2).is_err());
        let bad = PhotoTransform { crop: 300, ..t };
        let err = bad.load(&grey, 1).unwrap_err().to_string();
        assert!(err.contains("resize"), "{err}");
        let mut t = PhotoTransform::imagenet();
        t.resize = 100;
        assert_eq!(t.validate().unwrap_err().key, "resize");
        t = PhotoTransform::imagenet();
        t.std[1] = 0.0;
        assert_eq!(t.validate().unwrap_err().key, "std");
        assert!(PhotoTransform::imagenet().validate().is_ok());
    }
}
