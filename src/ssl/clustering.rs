//! k-means for DeepCluster-style pseudo-labels (Caron et al. 2018, "Deep Clustering for
//! Unsupervised Learning of Visual Features"): Lloyd's algorithm from k-means++ seeds
//! (Arthur & Vassilvitskii 2007: each next seed drawn with probability proportional to
//! its squared distance from the seeds so far; seeded), with DeepCluster's empty-cluster
//! rule:
//! when a cluster loses all its points, a random non-empty cluster is split, the empty
//! cluster taking that cluster's centroid with a small random perturbation, and the
//! points of the split cluster are reassigned between the two.
//!
//! [`kmeans_from`] runs Lloyd's algorithm from given centroids: DeepCluster
//! ([`super::deep_cluster`]) warm-starts each epoch's clustering from the previous
//! epoch's clusters so that cluster ids, and so the classifier trained on them, persist.

use rand::Rng;

use crate::data::split::rng;

/// The result of [`kmeans`].
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// `k x dim` centroids, row after row.
    pub centroids: Vec<f32>,
    /// The cluster of each point.
    pub assignments: Vec<usize>,
    /// Lloyd iterations run (fewer than asked when the assignments stopped changing).
    pub iterations: usize,
    /// Empty clusters refilled by splitting another, over all iterations.
    pub splits: usize,
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

fn nearest(point: &[f32], centroids: &[f32], dim: usize) -> usize {
    centroids
        .chunks(dim)
        .enumerate()
        .map(|(c, centroid)| (c, squared_distance(point, centroid)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(c, _)| c)
}

/// Clusters the `n x dim` rows of `points` into `k` clusters (at most `iterations` Lloyd
/// steps). Errors when there are fewer points than clusters or the sizes do not fit.
/// Clusters emptied by an update are refilled before the next assignment; only points
/// that coincide can leave a cluster empty at the end.
pub fn kmeans(
    points: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    seed: u64,
) -> Result<KMeans, String> {
    if dim == 0 || k == 0 || !points.len().is_multiple_of(dim) {
        return Err(format!(
            "k-means needs k >= 1 and rows of dim >= 1 ({} values, dim {dim}, k {k})",
            points.len()
        ));
    }
    let n = points.len() / dim;
    if n < k {
        return Err(format!(
            "k-means with k = {k} needs at least {k} points, got {n}"
        ));
    }
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut r = rng(seed);
    let first = r.random_range(0..n);
    let mut centroids: Vec<f32> = row(first).to_vec();
    let mut d2: Vec<f64> = (0..n)
        .map(|i| squared_distance(row(i), row(first)) as f64)
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let mut target = r.random_range(0.0..total);
            d2.iter()
                .position(|&d| {
                    target -= d;
                    target < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            r.random_range(0..n)
        };
        centroids.extend_from_slice(row(pick));
        for (i, d) in d2.iter_mut().enumerate() {
            *d = d.min(squared_distance(row(i), row(pick)) as f64);
        }
    }
    lloyd(points, dim, centroids, iterations, &mut r)
}

/// Lloyd's algorithm on the `n x dim` rows of `points` from the `k x dim` `centroids`
/// (at most `iterations` steps, empty clusters split as in [`kmeans`]; the splits draw
/// from `seed`). Errors when the sizes do not fit or there are fewer points than
/// centroids.
pub fn kmeans_from(
    points: &[f32],
    dim: usize,
    centroids: Vec<f32>,
    iterations: usize,
    seed: u64,
) -> Result<KMeans, String> {
    if dim == 0
        || centroids.is_empty()
        || !points.len().is_multiple_of(dim)
        || !centroids.len().is_multiple_of(dim)
    {
        return Err(format!(
            "k-means needs centroids and rows of dim >= 1 ({} values, {} centroid values, dim {dim})",
            points.len(),
            centroids.len()
        ));
    }
    let (n, k) = (points.len() / dim, centroids.len() / dim);
    if n < k {
        return Err(format!(
            "k-means with k = {k} needs at least {k} points, got {n}"
        ));
    }
    lloyd(points, dim, centroids, iterations, &mut rng(seed))
}

fn lloyd(
    points: &[f32],
    dim: usize,
    mut centroids: Vec<f32>,
    iterations: usize,
    r: &mut impl Rng,
) -> Result<KMeans, String> {
    let (n, k) = (points.len() / dim, centroids.len() / dim);
    let row = |i: usize| &points[i * dim..(i + 1) * dim];
    let mut assignments: Vec<usize> = (0..n).map(|i| nearest(row(i), &centroids, dim)).collect();
    let mut splits = 0;
    let mut done = 0;
    for it in 0..iterations {
        done = it + 1;
        // Update: each centroid moves to the mean of its points.
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (i, &c) in assignments.iter().enumerate() {
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                *s += v as f64;
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..dim {
                    centroids[c * dim + j] = (sums[c * dim + j] / counts[c] as f64) as f32;
                }
            }
        }
        // Empty clusters: split a random non-empty cluster with more than one point.
        for empty in 0..k {
            if counts[empty] > 0 {
                continue;
            }
            let donors: Vec<usize> = (0..k).filter(|&c| counts[c] > 1).collect();
            let Some(&donor) = donors.get(r.random_range(0..donors.len().max(1))) else {
                break;
            };
            for j in 0..dim {
                let v = centroids[donor * dim + j];
                let eps = 1e-4 * (1.0 + v.abs());
                centroids[empty * dim + j] = v + eps;
                centroids[donor * dim + j] = v - eps;
            }
            // The donor's points go to whichever of the two is nearer; if all stay, the
            // farthest point from the donor's centroid moves, so neither is empty.
            let members: Vec<usize> = (0..n).filter(|&i| assignments[i] == donor).collect();
            let mut moved = 0;
            for &i in &members {
                let to_empty = squared_distance(row(i), &centroids[empty * dim..(empty + 1) * dim])
                    < squared_distance(row(i), &centroids[donor * dim..(donor + 1) * dim]);
                if to_empty {
                    assignments[i] = empty;
                    moved += 1;
                }
            }
            if moved == 0 || moved == members.len() {
                let keep = if moved == 0 { donor } else { empty };
                let other = if moved == 0 { empty } else { donor };
                let far = members
                    .iter()
                    .copied()
                    .max_by(|&a, &b| {
                        let ca = &centroids[keep * dim..(keep + 1) * dim];
                        squared_distance(row(a), ca).total_cmp(&squared_distance(row(b), ca))
                    })
                    .unwrap_or(members[0]);
                assignments[far] = other;
                moved = if moved == 0 { 1 } else { moved - 1 };
            }
            counts[empty] = moved;
            counts[donor] = members.len() - moved;
            splits += 1;
        }
        // Assignment: each point to its nearest centroid.
        let next: Vec<usize> = (0..n).map(|i| nearest(row(i), &centroids, dim)).collect();
        let changed = next != assignments;
        assignments = next;
        if !changed {
            break;
        }
    }
    Ok(KMeans {
        centroids,
        assignments,
        iterations: done,
        splits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per` points around each of `centres` (2-D), jittered by at most 0.1.
    fn blobs(centres: &[[f32; 2]], per: usize) -> (Vec<f32>, Vec<usize>) {
        let mut r = rng(3);
        let mut points = Vec::new();
        let mut truth = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..per {
                points.push(centre[0] + r.random_range(-0.1..0.1));
                points.push(centre[1] + r.random_range(-0.1..0.1));
                truth.push(c);
            }
        }
        (points, truth)
    }

    #[test]
    fn separated_blobs_are_recovered_up_to_renaming() {
        let (points, truth) = blobs(&[[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]], 30);
        for seed in 0..5 {
            let km = kmeans(&points, 2, 3, 50, seed).unwrap();
            // Same cluster in the truth <=> same cluster found.
            for i in 0..truth.len() {
                for j in 0..truth.len() {
                    assert_eq!(
                        truth[i] == truth[j],
                        km.assignments[i] == km.assignments[j],
                        "seed {seed}: points {i} and {j}"
                    );
                }
            }
            assert!(km.iterations < 50);
        }
        assert_eq!(
            kmeans(&points, 2, 3, 50, 7).unwrap(),
            kmeans(&points, 2, 3, 50, 7).unwrap()
        );
    }

    #[test]
    fn empty_clusters_are_refilled_by_splitting() {
        // More clusters than blobs: no cluster ends empty.
        let (points, _) = blobs(&[[0.0, 0.0], [10.0, 0.0]], 20);
        for seed in 0..20 {
            let km = kmeans(&points, 2, 4, 30, seed).unwrap();
            let mut counts = [0usize; 4];
            km.assignments.iter().for_each(|&c| counts[c] += 1);
            assert!(counts.iter().all(|&c| c > 0), "seed {seed}: {counts:?}");
        }
        // Identical points force the rule: every centroid starts on the same spot, the
        // first assignment takes all points to one cluster, and the others are refilled.
        let same = vec![1.0f32; 2 * 6];
        let km = kmeans(&same, 2, 3, 1, 1).unwrap();
        assert_eq!(km.splits, 2);
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(kmeans(&[0.0; 6], 2, 4, 10, 1).is_err());
        assert!(kmeans(&[0.0; 5], 2, 1, 10, 1).is_err());
        assert!(kmeans(&[0.0; 4], 0, 1, 10, 1).is_err());
    }
}
