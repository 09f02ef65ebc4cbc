//! A fully connected layer `y = x W + b` (Burn's `Linear`: `W` is `[in, out]`) on a 2-D
//! batch, forward and gradients, with every product split across the cores by rows
//! ([`super::gemm::par_gemm`]): `dX = dY W^T`, `dW = x^T dY`, `db = sum_b dY`.

use super::gemm::{MatRef, par_gemm};

/// The layer's shapes: a batch of `batch` rows of `inputs` features to `outputs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinearGeometry {
    pub batch: usize,
    pub inputs: usize,
    pub outputs: usize,
}

/// `x W + b`, `[batch, outputs]`.
pub(crate) fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &LinearGeometry) -> Vec<f32> {
    let LinearGeometry {
        batch,
        inputs,
        outputs,
    } = *g;
    assert_eq!(x.len(), batch * inputs, "linear input size");
    assert_eq!(w.len(), inputs * outputs, "linear weight size");
    let mut y = match bias {
        Some(b) => {
            assert_eq!(b.len(), outputs, "linear bias size");
            b.repeat(batch)
        }
        None => vec![0.0; batch * outputs],
    };
    let (x, w) = (
        MatRef::row_major(x, batch, inputs),
        MatRef::row_major(w, inputs, outputs),
    );
    par_gemm(&mut y, true, x, w);
    y
}

/// `dY W^T`, the input's gradient `[batch, inputs]`.
pub(crate) fn input_grad(w: &[f32], dy: &[f32], g: &LinearGeometry) -> Vec<f32> {
    let mut dx = vec![0.0; g.batch * g.inputs];
    let w_t = MatRef::row_major(w, g.inputs, g.outputs).t();
    par_gemm(
        &mut dx,
        false,
        MatRef::row_major(dy, g.batch, g.outputs),
        w_t,
    );
    dx
}

/// `(x^T dY, sum_b dY)`: the weight's gradient `[inputs, outputs]` and the bias's.
pub(crate) fn weight_grad(x: &[f32], dy: &[f32], g: &LinearGeometry) -> (Vec<f32>, Vec<f32>) {
    let mut dw = vec![0.0; g.inputs * g.outputs];
    let x_t = MatRef::row_major(x, g.batch, g.inputs).t();
    par_gemm(
        &mut dw,
        false,
        x_t,
        MatRef::row_major(dy, g.batch, g.outputs),
    );
    let mut db = vec![0.0; g.outputs];
    for row in dy.chunks_exact(g.outputs.max(1)) {
        db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
    }
    (dw, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_definition_on_a_small_layer() {
        let g = LinearGeometry {
            batch: 3,
            inputs: 2,
            outputs: 2,
        };
        let x = [1.0, 2.0, 0.0, -1.0, 3.0, 1.0];
        let w = [1.0, 0.5, -1.0, 2.0];
        let y = forward(&x, &w, Some(&[0.1, 0.2]), &g);
        let want = [-0.9, 4.7, 1.1, -1.8, 2.1, 3.7];
        assert!(
            y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6),
            "{y:?}"
        );
        let dy = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        assert_eq!(input_grad(&w, &dy, &g), vec![1.0, -1.0, 0.5, 2.0, 1.5, 1.0]);
        let (dw, db) = weight_grad(&x, &dy, &g);
        assert_eq!(dw, vec![4.0, 3.0, 3.0, 0.0]);
        assert_eq!(db, vec![2.0, 2.0]);
    }
}
