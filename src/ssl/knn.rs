//! Weighted k-nearest-neighbour evaluation of frozen features (Wu et al. 2018, as
//! solo-learn and lightly run it): every test feature votes with its `k` most
//! cosine-similar training features, each neighbour's vote weighted `exp(s / T)`, and
//! the class with the largest total wins. No training, so it measures the features alone.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::engine::cache::ExampleCache;
use crate::losses::l2_normalize;

fn features_tensor(cache: &ExampleCache, device: &Device) -> Tensor<2> {
    let rows = cache.values().len() / cache.width().max(1);
    Tensor::from_data(
        TensorData::new(cache.values().to_vec(), [rows, cache.width()]),
        device,
    )
}

/// Top-1 accuracy of the weighted kNN classifier: `train` features with `train_labels`
/// vote for each of the `test` features; `k` neighbours (at most the training set),
/// temperature `temperature`.
pub fn knn_accuracy(
    train: &ExampleCache,
    train_labels: &[usize],
    test: &ExampleCache,
    test_labels: &[usize],
    classes: usize,
    k: usize,
    temperature: f64,
) -> f64 {
    knn_evaluate(
        train,
        train_labels,
        test,
        test_labels,
        classes,
        k,
        temperature,
    )
    .1
}

/// [`knn_accuracy`] with a loss: `(loss, accuracy)`, the loss being the mean negative log
/// of the true class's share of the votes (floored at 1e-12), so that a kNN probe can
/// stand where a classifier's test loss and accuracy are reported.
pub fn knn_evaluate(
    train: &ExampleCache,
    train_labels: &[usize],
    test: &ExampleCache,
    test_labels: &[usize],
    classes: usize,
    k: usize,
    temperature: f64,
) -> (f64, f64) {
    let device = Device::flex();
    let bank = l2_normalize(features_tensor(train, &device)).transpose(); // [F, Ntr]
    let queries = l2_normalize(features_tensor(test, &device));
    let [n_test, _] = queries.dims();
    let k = k.min(train_labels.len()).max(1);
    let mut correct = 0usize;
    let mut loss = 0.0f64;
    let chunk = 256;
    for start in (0..n_test).step_by(chunk) {
        let end = (start + chunk).min(n_test);
        let [_, f] = queries.dims();
        let sims = queries
            .clone()
            .slice([start..end, 0..f])
            .matmul(bank.clone());
        let (values, indices): (Tensor<2>, Tensor<2, Int>) = sims.topk_with_indices(k, 1);
        let values: Vec<f32> = values
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .unwrap_or_default();
        let indices: Vec<i64> = indices
            .into_data()
            .convert::<i64>()
            .try_into_vec()
            .unwrap_or_default();
        for (row, label) in test_labels[start..end].iter().enumerate() {
            let mut votes = vec![0.0f64; classes];
            for j in 0..k {
                let neighbour = indices[row * k + j] as usize;
                let s = values[row * k + j] as f64;
                votes[train_labels[neighbour]] += (s / temperature).exp();
            }
            let best = votes
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(c, _)| c);
            correct += usize::from(best == *label);
            let total: f64 = votes.iter().sum();
            loss -= (votes[*label] / total.max(f64::MIN_POSITIVE))
                .max(1e-12)
                .ln();
        }
    }
    let n = n_test.max(1) as f64;
    (loss / n, correct as f64 / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(rows: &[[f32; 2]]) -> ExampleCache {
        let data = crate::data::Dataset::new(
            rows.iter().flatten().copied().collect(),
            vec![0; rows.len()],
            [1, 1, 2],
            1,
        )
        .unwrap();
        ExampleCache::compute(&data, &Device::flex(), |x| x.flatten(1, 3))
    }

    #[test]
    fn neighbours_vote_by_cosine_similarity() {
        // Class 0 points right, class 1 points up; lengths do not matter (cosine).
        let train = cache(&[[1.0, 0.0], [5.0, 0.5], [0.0, 1.0], [0.2, 3.0]]);
        let labels = [0, 0, 1, 1];
        let test = cache(&[[2.0, 0.1], [0.1, 9.0], [1.0, 1.2]]);
        let acc = knn_accuracy(&train, &labels, &test, &[0, 1, 1], 2, 2, 0.1);
        assert_eq!(acc, 1.0);
        // k = 1: the single most similar training point decides.
        let acc = knn_accuracy(&train, &labels, &test, &[0, 1, 0], 2, 1, 0.1);
        assert!((acc - 2.0 / 3.0).abs() < 1e-12, "{acc}");
    }

    #[test]
    fn the_loss_is_the_true_class_share_of_the_votes() {
        let train = cache(&[[1.0, 0.0], [5.0, 0.5], [0.0, 1.0], [0.2, 3.0]]);
        let test = cache(&[[1.0, 0.0]]);
        // Cosines with the test point: 1, 5/sqrt(25.25), 0, 0.2/sqrt(9.04); T = 1.
        let v0 = 1f64.exp() + (5.0 / 25.25f64.sqrt()).exp();
        let v1 = 0f64.exp() + (0.2 / 9.04f64.sqrt()).exp();
        let (loss, acc) = knn_evaluate(&train, &[0, 0, 1, 1], &test, &[1], 2, 4, 1.0);
        assert_eq!(acc, 0.0);
        let expected = -(v1 / (v0 + v1)).ln();
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }
}
