//! Fitting a dataset to a network pretrained on other images: bilinear resizing to the
//! network's resolution and grey images replicated to three channels (`[data] resize`,
//! `[data] rgb`).

use super::{DataError, Dataset};

/// `data` with every image resized to `size x size` by bilinear interpolation, sampling
/// as PyTorch's `F.interpolate(mode="bilinear", align_corners=False, antialias=False)`
/// does: output pixel `o` reads the input at `(o + 0.5) * in / out - 0.5`, clamped to
/// the image.
pub fn bilinear(data: &Dataset, size: usize) -> Dataset {
    let [c, h, w] = data.shape;
    if (h, w) == (size, size) {
        return data.clone();
    }
    let rows = taps(h, size);
    let cols = taps(w, size);
    let mut images = Vec::with_capacity(data.len() * c * size * size);
    for plane in data.images.chunks_exact(h * w) {
        for &(y0, y1, fy) in &rows {
            for &(x0, x1, fx) in &cols {
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                images.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Dataset {
        images,
        labels: data.labels.clone(),
        shape: [c, size, size],
        num_classes: data.num_classes,
    }
}

/// For each of `out` output positions along an axis of `len` input pixels: the two
/// input pixels it blends and the weight of the second.
fn taps(len: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = len as f64 / out as f64;
    (0..out)
        .map(|o| {
            let at = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (at.floor() as usize).min(len - 1);
            let i1 = (i0 + 1).min(len - 1);
            (i0, i1, (at - i0 as f64) as f32)
        })
        .collect()
}

/// `data` (grey, one channel) with its channel copied three times, R = G = B.
pub fn grey_to_rgb(data: &Dataset) -> Result<Dataset, DataError> {
    let [c, h, w] = data.shape;
    if c == 3 {
        return Ok(data.clone());
    }
    if c != 1 {
        return Err(DataError::Invalid(format!(
            "data.rgb: replicates one grey channel to three, but the images have {c} channels"
        )));
    }
    let plane = h * w;
    let mut images = Vec::with_capacity(data.images.len() * 3);
    for img in data.images.chunks_exact(plane) {
        for _ in 0..3 {
            images.extend_from_slice(img);
        }
    }
    Ok(Dataset {
        images,
        labels: data.labels.clone(),
        shape: [3, h, w],
        num_classes: data.num_classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(images: Vec<f32>, shape: [usize; 3]) -> Dataset {
        Dataset::new(images, vec![0], shape, 1).unwrap()
    }

    #[test]
    fn doubling_matches_pytorchs_bilinear_sampling() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]),
        // size=4, mode="bilinear", align_corners=False) gives these rows:
        let expected = [
            [0.0, 0.25, 0.75, 1.0],
            [0.5, 0.75, 1.25, 1.5],
            [1.5, 1.75, 2.25, 2.5],
            [2.0, 2.25, 2.75, 3.0],
        ];
        let big = bilinear(&one(vec![0.0, 1.0, 2.0, 3.0], [1, 2, 2]), 4);
        assert_eq!(big.shape, [1, 4, 4]);
        for (got, want) in big.images.iter().zip(expected.iter().flatten()) {
            assert!((got - want).abs() < 1e-6, "{:?}", big.images);
        }
    }

    #[test]
    fn a_non_integer_ratio_matches_pytorch() {
        // F.interpolate(torch.arange(784.).view(1, 1, 28, 28), size=64, mode="bilinear",
        // align_corners=False)[0, 0, 10, :4]
        let big = bilinear(&one((0..784).map(|i| i as f32).collect(), [1, 28, 28]), 64);
        let row: Vec<f32> = big.images[10 * 64..10 * 64 + 4].to_vec();
        for (got, want) in row.iter().zip([114.625, 114.78125, 115.21875, 115.65625]) {
            assert!((got - want).abs() < 1e-4, "{row:?}");
        }
    }

    #[test]
    fn shrinking_by_two_averages_pixel_pairs_and_channels_stay_apart() {
        // Halving samples at the midpoint between pixel pairs: the mean of each 2x2 block.
        let red: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let green = vec![1.0; 16];
        let small = bilinear(&one([red, green].concat(), [2, 4, 4]), 2);
        assert_eq!(small.shape, [2, 2, 2]);
        assert_eq!(&small.images[..4], &[2.5, 4.5, 10.5, 12.5]);
        assert_eq!(&small.images[4..], &[1.0; 4]);
    }

    #[test]
    fn grey_becomes_three_equal_channels_and_other_counts_are_refused() {
        let rgb = grey_to_rgb(&one(vec![0.1, 0.2], [1, 1, 2])).unwrap();
        assert_eq!(rgb.shape, [3, 1, 2]);
        assert_eq!(rgb.images, vec![0.1, 0.2, 0.1, 0.2, 0.1, 0.2]);
        let err = grey_to_rgb(&one(vec![0.0; 4], [2, 1, 2])).unwrap_err();
        assert!(err.to_string().contains("data.rgb"), "{err}");
    }
}
