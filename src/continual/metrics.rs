//! The accuracy matrix of a continual run and the numbers read from it.
//!
//! `A[i][j]` is the test accuracy on task `j` after training task `i` (0-based here, `T`
//! tasks), and `b[j]` the accuracy of the untrained network on task `j`:
//!
//! - average accuracy `ACC = 1/T sum_j A[T-1][j]`;
//! - backward transfer `BWT = 1/(T-1) sum_{j<T-1} (A[T-1][j] - A[j][j])` (negative:
//!   forgetting; Lopez-Paz & Ranzato 2017);
//! - forgetting of task `j < T-1`: `f_j = max_{i<T-1} A[i][j] - A[T-1][j]`, and the mean
//!   forgetting over those tasks (Chaudhry et al. 2018);
//! - forward transfer `FWT = 1/(T-1) sum_{j>0} (A[j-1][j] - b[j])` (Lopez-Paz & Ranzato
//!   2017): how much training on earlier tasks helps a task before it is trained.

use serde::{Deserialize, Serialize};

/// `rows[i][j]`: accuracy on task `j` after training task `i`; `baseline[j]`: accuracy of
/// the initial network on task `j`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AccuracyMatrix {
    /// One row per trained task, one column per task.
    pub rows: Vec<Vec<f64>>,
    /// Accuracy of the untrained network on each task.
    pub baseline: Vec<f64>,
}

impl AccuracyMatrix {
    fn last(&self) -> &[f64] {
        self.rows.last().map_or(&[], |r| r.as_slice())
    }

    /// Average accuracy over all tasks after the last one trained.
    pub fn average_accuracy(&self) -> f64 {
        mean(self.last().iter().copied())
    }

    /// Average accuracy over the tasks trained so far, after each task: `ACC_i = mean_{j<=i}
    /// A[i][j]` (the curve continual-learning papers plot).
    pub fn average_accuracy_curve(&self) -> Vec<f64> {
        self.rows
            .iter()
            .enumerate()
            .map(|(i, r)| mean(r[..=i].iter().copied()))
            .collect()
    }

    /// Backward transfer; 0 with fewer than two rows.
    pub fn backward_transfer(&self) -> f64 {
        let t = self.rows.len();
        mean((0..t.saturating_sub(1)).map(|j| self.rows[t - 1][j] - self.rows[j][j]))
    }

    /// Forgetting of each task but the last.
    pub fn forgetting(&self) -> Vec<f64> {
        let t = self.rows.len();
        (0..t.saturating_sub(1))
            .map(|j| {
                let best = (0..t - 1)
                    .map(|i| self.rows[i][j])
                    .fold(f64::NEG_INFINITY, f64::max);
                best - self.rows[t - 1][j]
            })
            .collect()
    }

    /// Mean forgetting over the tasks but the last.
    pub fn mean_forgetting(&self) -> f64 {
        mean(self.forgetting().into_iter())
    }

    /// Forward transfer; 0 with fewer than two rows or no baseline.
    pub fn forward_transfer(&self) -> f64 {
        if self.baseline.is_empty() {
            return 0.0;
        }
        mean((1..self.rows.len()).map(|j| self.rows[j - 1][j] - self.baseline[j]))
    }

    /// The matrix as CSV: a header `after_task,task_1,...`, one line per trained task,
    /// then the `untrained` baseline line.
    pub fn to_csv(&self) -> String {
        let n = self
            .baseline
            .len()
            .max(self.rows.first().map_or(0, Vec::len));
        let mut s = String::from("after_task");
        for j in 0..n {
            s.push_str(&format!(",task_{}", j + 1));
        }
        s.push('\n');
        for (i, r) in self.rows.iter().enumerate() {
            s.push_str(&(i + 1).to_string());
            for v in r {
                s.push_str(&format!(",{v:.6}"));
            }
            s.push('\n');
        }
        if !self.baseline.is_empty() {
            s.push_str("untrained");
            for v in &self.baseline {
                s.push_str(&format!(",{v:.6}"));
            }
            s.push('\n');
        }
        s
    }
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { 0.0 } else { sum / n as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3-task matrix worked by hand:
    ///   after 1: 0.9  0.1  0.2
    ///   after 2: 0.6  0.8  0.3
    ///   after 3: 0.5  0.7  0.95      baseline: 0.1 0.2 0.3
    /// ACC = (0.5 + 0.7 + 0.95)/3 = 0.716667
    /// BWT = ((0.5-0.9) + (0.7-0.8))/2 = -0.25
    /// forgetting = [max(0.9,0.6)-0.5, 0.8-0.7] = [0.4, 0.1], mean 0.25
    /// FWT = ((0.1-0.2) + (0.3-0.3))/2 = -0.05
    /// ACC curve = [0.9, (0.6+0.8)/2, 0.716667] = [0.9, 0.7, 0.716667]
    #[test]
    fn metrics_match_a_hand_computed_matrix() {
        let m = AccuracyMatrix {
            rows: vec![
                vec![0.9, 0.1, 0.2],
                vec![0.6, 0.8, 0.3],
                vec![0.5, 0.7, 0.95],
            ],
            baseline: vec![0.1, 0.2, 0.3],
        };
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        close(m.average_accuracy(), 2.15 / 3.0);
        close(m.backward_transfer(), -0.25);
        let f = m.forgetting();
        close(f[0], 0.4);
        close(f[1], 0.1);
        close(m.mean_forgetting(), 0.25);
        close(m.forward_transfer(), -0.05);
        let c = m.average_accuracy_curve();
        close(c[0], 0.9);
        close(c[1], 0.7);
        close(c[2], 2.15 / 3.0);
        let csv = m.to_csv();
        assert!(csv.starts_with("after_task,task_1,task_2,task_3\n1,0.900000"));
        assert!(csv.ends_with("untrained,0.100000,0.200000,0.300000\n"));
    }

    #[test]
    fn a_single_row_has_no_transfer_or_forgetting() {
        let m = AccuracyMatrix {
            rows: vec![vec![0.8, 0.1]],
            baseline: vec![],
        };
        assert_eq!(m.backward_transfer(), 0.0);
        assert!(m.forgetting().is_empty());
        assert_eq!(m.forward_transfer(), 0.0);
    }
}
