//! Photos for an ImageNet-pretrained network: an image file of any size and colour type
//! becomes the network's `3 x crop x crop` input, the way the network was evaluated on
//! ImageNet: the shorter side resized to `resize` (bilinear, antialiased when
//! shrinking), the centre `crop x crop` square cut out, pixels scaled to `[0, 1]`, then
//! each channel normalised with the mean and standard deviation of the weights' training
//! pipeline (see [`PhotoTransform::imagenet`] and [`PhotoTransform::inception`]).

use std::path::Path;

use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

use super::DataError;

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

    /// TensorFlow's EfficientNet-Lite preprocessing: resize 256, crop 224, and every
    /// channel mapped to about `[-1, 1]` by `(p - 127) / 128` on 8-bit pixels (the
    /// `MEAN_RGB = 127`, `STDDEV_RGB = 128` of `efficientnet_lite_builder.py`).
    pub fn inception() -> Self {
        Self {
            resize: 256,
            crop: 224,
            mean: [127.0 / 255.0; 3],
            std: [128.0 / 255.0; 3],
        }
    }

    /// Checks the rules; on error (key, rule).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.crop == 0 || self.resize < self.crop {
            return Err((
                "resize".into(),
                format!(
                    "must be >= crop >= 1, got resize {} and crop {}",
                    self.resize, self.crop
                ),
            ));
        }
        if let Some(s) = self.std.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(("std".into(), format!("must be finite and > 0, got {s}")));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(("mean".into(), format!("must be finite, got {m}")));
        }
        Ok(())
    }

    /// Reads the image file at `path` (PNG or JPEG) and transforms it for a network of
    /// `channels` input channels: 3 as RGB, 1 as luma (Rec. 709, the `image` crate's
    /// conversion; `mean[0]`, `std[0]`). `channels * crop * crop` values in CHW order.
    pub fn load(&self, path: &Path, channels: usize) -> Result<Vec<f32>, DataError> {
        let bytes = super::image_file::read_image_file(path)?;
        if let Err((key, rule)) = self.validate() {
            return Err(DataError::Invalid(format!("photo transform {key}: {rule}")));
        }
        let image = image::load_from_memory(&bytes)
            .map_err(|e| DataError::format(path, format!("not a PNG or JPEG image ({e})")))?;
        if image.width() == 0 || image.height() == 0 {
            return Err(DataError::format(path, "the image has no pixels"));
        }
        let (w, h) = (image.width() as usize, image.height() as usize);
        let (rw, rh) = resized_size(w, h, self.resize);
        // The resampler's f32 RGBA intermediate (new width x old height), then the
        // resized 8-bit image.
        let needed = 16 * rw as u128 * h as u128 + 4 * rw as u128 * rh as u128;
        super::limits::check_allocation(
            &format!("resizing {} ({w}x{h}) to {rw}x{rh}", path.display()),
            needed,
        )?;
        match channels {
            3 => Ok(self.apply(&image.to_rgb8())),
            1 => Ok(self.apply(&image.to_luma8())),
            c => Err(DataError::Invalid(format!(
                "photos become 1 (grey) or 3 (RGB) channels, not {c}"
            ))),
        }
    }

    /// Transforms an 8-bit image (RGB or grey) of at least one pixel with a validated
    /// transform (as [`PhotoTransform::load`] checks): `channels * crop * crop` values
    /// in CHW order.
    fn apply<P>(&self, image: &image::ImageBuffer<P, Vec<u8>>) -> Vec<f32>
    where
        P: image::Pixel<Subpixel = u8> + 'static,
    {
        let channels = usize::from(P::CHANNEL_COUNT).min(3);
        let (w, h) = (image.width() as usize, image.height() as usize);
        let (rw, rh) = resized_size(w, h, self.resize);
        let resized = image::imageops::resize(image, rw as u32, rh as u32, FilterType::Triangle);
        let (left, top) = ((rw - self.crop) / 2, (rh - self.crop) / 2);
        let c = self.crop;
        let mut out = vec![0f32; channels * c * c];
        for y in 0..c {
            for x in 0..c {
                let pixel = resized.get_pixel((left + x) as u32, (top + y) as u32);
                for (ch, &p) in pixel.channels().iter().take(channels).enumerate() {
                    let v = f32::from(p) / 255.0;
                    out[ch * c * c + y * c + x] = (v - self.mean[ch]) / self.std[ch];
                }
            }
        }
        out
    }
}

/// The size of a `w x h` image whose shorter side is resized to `short` (the longer side
/// scaled by the same factor, rounded; at least `short`).
fn resized_size(w: usize, h: usize, short: usize) -> (usize, usize) {
    let long =
        |l: usize, s: usize| ((l as f64 * short as f64 / s as f64).round() as usize).max(short);
    if w <= h {
        (short, long(h, w))
    } else {
        (long(w, h), short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_side_is_resized_and_the_aspect_kept() {
        assert_eq!(resized_size(512, 384, 256), (341, 256));
        assert_eq!(resized_size(300, 451, 256), (256, 385));
        assert_eq!(resized_size(10, 10, 256), (256, 256));
    }

    #[test]
    fn a_photo_is_cropped_at_its_centre_and_normalised_per_channel() {
        // A 40x20 image: red on the left quarter, blue on the right quarter, green in
        // the middle half. Resize 10 (to 20x10) and crop 10 keep only the green middle.
        let image = image::RgbImage::from_fn(40, 20, |x, _| match x {
            0..10 => image::Rgb([255, 0, 0]),
            30..40 => image::Rgb([0, 0, 255]),
            _ => image::Rgb([0, 255, 0]),
        });
        let t = PhotoTransform {
            resize: 10,
            crop: 10,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 2.0],
        };
        let x = t.apply(&image);
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
        assert_eq!(t.validate().unwrap_err().0, "resize");
        t = PhotoTransform::inception();
        t.std[1] = 0.0;
        assert_eq!(t.validate().unwrap_err().0, "std");
        assert!(PhotoTransform::imagenet().validate().is_ok());
    }
}
