//! How far two cores can take the MLP step's matrix products on this machine: the `gemm`
//! crate (what Burn's flex and mentor's kernels run) on one thread, then the same
//! product cut into two row halves run at once on rayon's two threads (the most a
//! 2-core split can give). Medians of 50 runs. `cargo run --release --example gemm_scaling`
use std::time::Instant;

use rayon::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `c = a b` for row-major `a` (`m x k`), `b` (`k x n`), `c` (`m x n`), on this thread.
fn product(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    let m = c.len() / n;
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() == m * n);
    // SAFETY: the asserts bound every index the product touches; `c` is borrowed
    // mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    println!("| product (m x k x n) | 1 thread GFLOP/s | 2 halves GFLOP/s | scaling |");
    println!("|---|---|---|---|");
    for (m, k, n) in [(256, 784, 512), (256, 512, 512), (784, 256, 512)] {
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).cos()).collect();
        let mut c = vec![0f32; m * n];
        let (mut one, mut two) = (Vec::new(), Vec::new());
        for _ in 0..50 {
            let t = Instant::now();
            product(&mut c, &a, &b, k, n);
            one.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let half = m / 2;
            c.par_chunks_mut(half * n)
                .enumerate()
                .for_each(|(i, c)| product(c, &a[i * half * k..], &b, k, n));
            two.push(t.elapsed().as_secs_f64());
        }
        let flops = 2.0 * (m * k * n) as f64;
        let (one, two) = (flops / median(one) / 1e9, flops / median(two) / 1e9);
        println!("| {m}x{k}x{n} | {one:.0} | {two:.0} | {:.2}x |", two / one);
    }
}
