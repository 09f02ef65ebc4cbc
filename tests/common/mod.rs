//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use mentor::engine::{LogFormat, TrainOptions};
use mentor::models::{Network, param_infos};
use mentor::run::config::RunConfig;

/// The default run config with `key=value` overrides, validated.
pub fn config<S: AsRef<str>>(sets: &[S]) -> RunConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.as_ref().to_string()).collect();
    let c = RunConfig::default().with_overrides(&sets).unwrap();
    c.validate().unwrap();
    c
}

/// Options for a run in `out` without progress output.
pub fn quiet(out: &std::path::Path) -> TrainOptions {
    TrainOptions {
        log: LogFormat::Quiet,
        ..TrainOptions::new(out)
    }
}

/// Every float parameter's values as raw bits, in module order.
pub fn weights(n: &Network) -> Vec<Vec<u32>> {
    struct Bits(Vec<Vec<u32>>);
    impl ModuleVisitor for Bits {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v: Vec<f32> = p.val().into_data().convert::<f32>().try_to_vec().unwrap();
            self.0.push(v.iter().map(|x| x.to_bits()).collect());
        }
    }
    let mut b = Bits(Vec::new());
    n.visit(&mut b);
    b.0
}

/// [`weights`] paired with the parameter names.
pub fn weights_by_name(n: &Network) -> Vec<(String, Vec<u32>)> {
    param_infos(n)
        .into_iter()
        .map(|p| p.name)
        .zip(weights(n))
        .collect()
}

/// A run directory's summary.json.
pub fn summary(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

/// A continual run of `config` (whose strategy is `continual`) as `mentor train` makes
/// it: the engine's spec and fingerprint of the config, its `[init]` as starting weights.
pub fn run_continual(
    config: &RunConfig,
    continual: &mentor::continual::ContinualConfig,
    options: &TrainOptions,
    stop: Option<mentor::continual::StopPoint>,
) -> Result<(mentor::continual::ContinualSummary, Network), mentor::continual::ContinualError> {
    let start = mentor::run::InitWeights::new(&config.init, &options.device, options.log);
    let options = TrainOptions {
        fingerprint: config.fingerprint(),
        ..options.clone()
    };
    let (summary, network) = mentor::continual::run_continual(
        &config.spec(),
        &config.data,
        continual,
        &options,
        &start,
        stop,
    )?;
    // What run::run then writes: the tagged report.
    mentor::run::Report::Continual(summary.clone())
        .write(&options.out)
        .expect("summary.json written");
    Ok((summary, network))
}

/// A multitask run of `config` (whose strategy is `multitask`) as `mentor train` makes
/// it (see [`run_continual`]).
pub fn run_multitask(
    config: &RunConfig,
    multitask: &mentor::multitask::MultitaskConfig,
    options: &TrainOptions,
    baselines: &[std::path::PathBuf],
) -> Result<(mentor::multitask::MultitaskSummary, Network), mentor::multitask::MultitaskError> {
    let start = mentor::run::InitWeights::new(&config.init, &options.device, options.log);
    let options = TrainOptions {
        fingerprint: config.fingerprint(),
        ..options.clone()
    };
    let (summary, network) = mentor::multitask::run_multitask(
        &config.spec(),
        &config.data,
        multitask,
        &options,
        &start,
        baselines,
    )?;
    // What run::run then writes: the tagged report.
    mentor::run::Report::Multitask(summary.clone())
        .write(&options.out)
        .expect("summary.json written");
    Ok((summary, network))
}

/// Every `.rs` file below `dir` (appended to `out`), for the tests that read the sources.
pub fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Runs an ONNX model in tract (a runtime independent of Burn) on `inputs` of `shape`
/// (`[N, C, H, W]`) and returns its first output, flattened.
pub fn tract_logits(file: &[u8], shape: [usize; 4], inputs: &[f32]) -> Vec<f32> {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx()
        .model_for_read(&mut &file[..])
        .expect("tract reads the file")
        .with_input_fact(0, f32::fact(shape).into())
        .expect("the input takes this shape")
        .into_optimized()
        .expect("tract optimises the graph")
        .into_runnable()
        .expect("tract plans the graph");
    let input: Tensor = tract_ndarray::Array4::from_shape_vec(
        (shape[0], shape[1], shape[2], shape[3]),
        inputs.to_vec(),
    )
    .unwrap()
    .into();
    let outputs = model
        .run(tvec!(input.into()))
        .expect("tract runs the graph");
    outputs[0]
        .to_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// The largest absolute difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// The largest absolute difference over the largest reference magnitude (at least 1).
pub fn relative_error(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    max_abs_diff(got, want) / scale
}

/// `len` seeded values in [-2, 2): wide enough that ReLU6 and the hard sigmoid saturate.
pub fn seeded_inputs(len: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| r.random_range(-2.0f32..2.0)).collect()
}

/// [`seeded_inputs`] with every value moved by up to 5 millionths of itself, differently
/// for each `point` (not at all at point 0): points a rounding error apart.
pub fn seeded_inputs_at(len: usize, seed: u64, point: usize) -> Vec<f32> {
    let values = seeded_inputs(len, seed);
    if point == 0 {
        return values;
    }
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| v * (1.0 + 1e-6 * (((i + point) * 37 % 11) as f32 - 5.0)))
        .collect()
}

/// Checks an input gradient that is not a continuous function of the input at rounding
/// scale (a training-mode network with a ReLU/ReLU6 input within rounding of a bound:
/// moving the input by a millionth flips it, and batch statistics spread the flip over
/// the image), so that two implementations that round differently cannot be compared at
/// one point. At points 1..=5 near the seeded input (`seeded_inputs_at`), `candidate`'s
/// gradient is compared with `reference`'s at the same point; the median of those
/// differences must be below the median change of `reference`'s own gradient from point
/// 0 to each point. A wrong backward (a flipped sign, a dropped tap) is far outside it.
pub fn agrees_within_rounding_spread(
    name: &str,
    candidate: impl Fn(usize) -> Vec<f32>,
    reference: impl Fn(usize) -> Vec<f32>,
) {
    let at_zero = reference(0);
    let (mut differences, mut spread) = (Vec::new(), Vec::new());
    for point in 1..=5 {
        let want = reference(point);
        differences.push(relative_error(&candidate(point), &want));
        spread.push(relative_error(&want, &at_zero));
    }
    let (difference, spread) = (median(&mut differences), median(&mut spread));
    println!(
        "{name}: input gradient: {difference:.2e} from the reference, whose own spread is {spread:.2e}"
    );
    assert!(
        difference < spread,
        "{name}: the input gradient differs from the reference by {difference:e}, more than its own spread {spread:e}"
    );
}

/// The median of `values` (which it sorts).
pub fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    values[values.len() / 2]
}

/// Fixed weights `[batch, classes]` in [-1, 1] for a loss `sum(logits * w)` whose input
/// gradient exercises every class.
pub fn loss_weights(batch: usize, classes: usize, device: &burn::tensor::Device) -> Tensor<2> {
    let values = (0..batch * classes)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    Tensor::from_data(
        burn::tensor::TensorData::new(values, [batch, classes]),
        device,
    )
}

/// A tensor's values as f32.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}
