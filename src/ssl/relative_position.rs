//! The relative-position pretext task (Doersch et al. 2015, "Unsupervised Visual
//! Representation Learning by Context Prediction"): cut the image into a 3x3 grid of
//! cells, take a patch at a random offset inside each cell (so neighbouring patches are
//! separated by a gap and jittered, and continuing edges do not give their arrangement
//! away), and predict which of the 8 neighbours of the centre patch a second patch is.
//! Both patches go through the same encoder (a siamese pair); the classifier sees their
//! features side by side (late fusion): a projected network with `inputs = 2` and 8
//! outputs.
//!
//! The encoder was built for whole images, so each patch is resized (bilinearly) to the
//! image size before it is encoded; downstream tasks then see whole images at the same
//! size. The example, its neighbour and the offsets are drawn per (seed, epoch, example).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::{Int, Tensor, TensorData};
use rand::Rng;

use crate::data::augment::{Image, patch_grid, resized_crop, view_rng};
use crate::data::{Batch, Dataset};
use crate::engine::StepOutput;
use crate::models::Network;

use super::{PretextLoss, SelfSupervisedConfig, SslError};

/// Number of classes: the 8 neighbours of the centre cell.
pub const NEIGHBOURS: usize = 8;

/// The grid's cells that neighbour the centre (4), in row-major order: class `c` is cell
/// `NEIGHBOUR_CELLS[c]`.
pub const NEIGHBOUR_CELLS: [usize; NEIGHBOURS] = [0, 1, 2, 3, 5, 6, 7, 8];

/// One example of the task: (centre patch, neighbour patch, neighbour class), both
/// patches resized to the image's size.
pub fn patch_pair(img: &Image, patch: usize, seed: u64, index: usize) -> (Image, Image, usize) {
    let mut r = view_rng(seed, index, 0);
    let [_, h, w] = img.shape;
    let class = r.random_range(0..NEIGHBOURS);
    // The size was checked when the objective was built.
    let cells = patch_grid(img, 3, patch, &mut r).unwrap_or_default();
    let grow = |p: &Image| resized_crop(p, 0.0, 0.0, patch as f32, patch as f32, [h, w]);
    (grow(&cells[4]), grow(&cells[NEIGHBOUR_CELLS[class]]), class)
}

/// The relative-position objective.
pub struct RelativePosition {
    train: Dataset,
    patch: usize,
}

impl RelativePosition {
    /// The task over the training images `train` (labels unused); errors when a 3x3 grid
    /// of `config.patch`-pixel patches does not fit the images.
    pub fn new(config: &SelfSupervisedConfig, train: &Dataset) -> Result<Self, SslError> {
        let [_, h, w] = train.shape;
        if config.patch > h.min(w) / 3 {
            return Err(SslError::Data(format!(
                "strategy.patch = {} does not fit a 3x3 grid on {h}x{w} images (at most {})",
                config.patch,
                h.min(w) / 3
            )));
        }
        Ok(Self {
            train: train.clone(),
            patch: config.patch,
        })
    }
}

impl PretextLoss for RelativePosition {
    fn step(
        &mut self,
        network: &Network,
        batch: &Batch,
        indices: &[usize],
        seed: u64,
    ) -> StepOutput {
        let device = batch.images.device();
        let n = indices.len();
        let mut pixels = [Vec::new(), Vec::new()];
        let mut classes = Vec::with_capacity(n);
        for &i in indices {
            let (centre, neighbour, class) =
                patch_pair(&Image::of(&self.train, i), self.patch, seed, i);
            pixels[0].extend(centre.pixels);
            pixels[1].extend(neighbour.pixels);
            classes.push(class as i64);
        }
        let [c, h, w] = self.train.shape;
        let images: Vec<f32> = pixels.concat();
        let images = Tensor::<4>::from_data(TensorData::new(images, [2 * n, c, h, w]), &device);
        // Both patches of every pair through the encoder in one pass, then side by side.
        let features = network.features(images);
        let pair = Tensor::cat(
            vec![features.clone().narrow(0, 0, n), features.narrow(0, n, n)],
            1,
        );
        let logits = network.head_forward(pair);
        let targets = Tensor::<1, Int>::from_data(TensorData::new(classes, [n]), &device);
        let loss = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), targets.clone());
        StepOutput {
            loss,
            logits,
            targets: Some(targets),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_neighbour_patch_comes_from_its_cell() {
        // Pixel value = its cell index, so a patch's values name the cell it came from.
        let (h, w) = (27, 27);
        let pixels = (0..h * w)
            .map(|i| ((i / w) / 9 * 3 + (i % w) / 9) as f32)
            .collect();
        let img = Image {
            pixels,
            shape: [1, h, w],
        };
        let mut seen = [false; NEIGHBOURS];
        for index in 0..200 {
            let (centre, neighbour, class) = patch_pair(&img, 7, 3, index);
            assert_eq!(centre.shape, [1, h, w]);
            assert!(centre.pixels.iter().all(|&v| v == 4.0));
            let cell = NEIGHBOUR_CELLS[class] as f32;
            assert!(neighbour.pixels.iter().all(|&v| v == cell), "class {class}");
            seen[class] = true;
        }
        assert!(seen.iter().all(|&s| s), "every neighbour is drawn");
    }

    #[test]
    fn a_patch_larger_than_a_cell_is_an_error() {
        let data = Dataset::new(vec![0.0; 28 * 28], vec![0], [1, 28, 28], 1).unwrap();
        let cfg = SelfSupervisedConfig {
            patch: 10,
            ..SelfSupervisedConfig::default()
        };
        let err = RelativePosition::new(&cfg, &data).err().unwrap();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
