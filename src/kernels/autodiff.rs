//! The kernels as Burn operations: on a flex tensor they run directly; on an
//! `Autodiff<Flex>` tensor they also record a node whose backward runs the kernels'
//! gradients (the pattern of burn-autodiff's own `conv2d`, with our kernels inside).
//! The layers with a weight and an optional bias (convolution, convolution + pooling,
//! fully connected) share one glue, [`Weighted`]; max pooling has its own.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Tensor, TensorData};

use super::batch_norm::{self, Activation, Layout, Normalised};
use super::conv::{self, ConvGeometry};
use super::conv_pool;
use super::depthwise;
use super::linear::{self, LinearGeometry};
use super::pool::{self, PoolGeometry};
use super::quadratic;

/// Flex under Burn's autodiff, as `Device::flex().autodiff()` builds it.
type Ad = Autodiff<Flex, NoCheckpointing>;

fn on_autodiff<const D: usize>(tensor: &Tensor<D>) -> Option<FloatTensor<Ad>> {
    tensor.clone().try_into_primitive::<Ad>().ok()
}

/// Whether `tensor` is a flex tensor, with or without autodiff: one the kernels serve.
pub(super) fn served<const D: usize>(tensor: &Tensor<D>) -> bool {
    on_autodiff(tensor).is_some() || on_flex(tensor).is_some()
}

pub(super) fn on_flex<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    tensor.clone().try_into_primitive::<Flex>().ok()
}

pub(super) fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    if tensor.is_contiguous() {
        tensor.clone()
    } else {
        tensor.to_contiguous()
    }
}

pub(super) fn values(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("the kernels take contiguous f32 tensors (dtype checked before dispatch)")
}

/// Contiguous CPU copies (views where possible) of `tensors`, when every one is an f32
/// tensor on the CPU: what the fused optimisers read as flat slices.
pub(super) fn f32_on_flex<const D: usize>(tensors: &[&Tensor<D>]) -> Option<Vec<FlexTensor>> {
    tensors
        .iter()
        .map(|t| {
            let flex = on_flex(t).filter(|_| t.dtype() == burn::tensor::DType::F32)?;
            Some(contiguous(&flex))
        })
        .collect()
}

/// A tensor of `shape` holding `values`, built on the CPU and moved to `device`.
pub(super) fn tensor_on<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &burn::tensor::Device,
) -> Tensor<D> {
    Tensor::<D>::from_primitive::<Flex>(flex_tensor(values, shape)).to_device(device)
}

pub(super) fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// A layer with a weight and an optional bias, run by one of mentor's kernels.
trait Weighted: Debug + Clone + Send + Sync + 'static {
    /// The shapes the kernel runs at.
    type Geometry: Debug + Clone + Send + Sync + 'static;
    /// What the backward keeps from the forward besides the input and the weight.
    type Kept: Debug + Clone + Send + Sync + 'static;

    /// The output, and what the backward keeps.
    fn forward(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        g: &Self::Geometry,
    ) -> (FlexTensor, Self::Kept);

    /// Registers the gradients of the input, weight and bias nodes that want one.
    fn backward(
        state: &Saved<Self>,
        grad: &FlexTensor,
        nodes: [Option<NodeId>; 3],
        grads: &mut Gradients,
    );
}

/// What a weighted layer's backward needs (tensors shared, not copied).
#[derive(Debug, Clone)]
struct Saved<K: Weighted> {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: K::Geometry,
    kept: K::Kept,
}

/// The backward node of a layer with a bias (three parents) ...
#[derive(Debug)]
struct WithBias<K>(PhantomData<K>);

/// ... and without one (two parents).
#[derive(Debug)]
struct NoBias<K>(PhantomData<K>);

impl<K: Weighted> Backward<Flex, 3> for WithBias<K> {
    type State = Saved<K>;

    fn backward(self, ops: Ops<Saved<K>, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let nodes = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        K::backward(&ops.state, &grad, nodes, grads);
    }
}

impl<K: Weighted> Backward<Flex, 2> for NoBias<K> {
    type State = Saved<K>;

    fn backward(self, ops: Ops<Saved<K>, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        K::backward(&ops.state, &grad, [x, w, None], grads);
    }
}

/// Runs kernel `K`: with autodiff when the input and weight are autodiff flex tensors
/// (recording its backward), directly when they are flex tensors; `None` otherwise (or
/// when the bias is elsewhere), for the caller to run Burn's layer instead.
fn run<K: Weighted, const D: usize, const E: usize, const O: usize>(
    input: &Tensor<D>,
    weight: &Tensor<E>,
    bias: Option<&Tensor<1>>,
    geometry: K::Geometry,
) -> Option<Tensor<O>> {
    run_keeping::<K, D, E, O>(input, weight, bias, geometry).map(|(out, _)| out)
}

/// [`run`], also returning what the kernel kept for its backward.
fn run_keeping<K: Weighted, const D: usize, const E: usize, const O: usize>(
    input: &Tensor<D>,
    weight: &Tensor<E>,
    bias: Option<&Tensor<1>>,
    geometry: K::Geometry,
) -> Option<(Tensor<O>, K::Kept)> {
    if let (Some(x), Some(w)) = (on_autodiff(input), on_autodiff(weight)) {
        let b = match bias {
            Some(b) => Some(on_autodiff(b)?),
            None => None,
        };
        let (out, kept) = tracked::<K>(x, w, b, geometry);
        return Some((Tensor::from_primitive::<Ad>(out), kept));
    }
    let (x, w) = (on_flex(input)?, on_flex(weight)?);
    let b = match bias {
        Some(b) => Some(on_flex(b)?),
        None => None,
    };
    let (out, kept) = K::forward(&x, &w, b.as_ref(), &geometry);
    Some((Tensor::from_primitive::<Flex>(out), kept))
}

fn tracked<K: Weighted>(
    x: FloatTensor<Ad>,
    weight: FloatTensor<Ad>,
    bias: Option<FloatTensor<Ad>>,
    geometry: K::Geometry,
) -> (FloatTensor<Ad>, K::Kept) {
    let (out, kept) = K::forward(
        x.primitive(),
        weight.primitive(),
        bias.as_ref().map(|b| b.primitive()),
        &geometry,
    );
    let state = || Saved::<K> {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        geometry,
        kept: kept.clone(),
    };
    let out = match &bias {
        Some(b) => match WithBias::<K>(PhantomData)
            .prepare::<NoCheckpointing>([x.node(), weight.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
        None => match NoBias::<K>(PhantomData)
            .prepare::<NoCheckpointing>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
    };
    (out, kept)
}

/// The convolution through the kernels: `None` when the tensors are not all on flex
/// (or all on autodiff flex), for the caller to run Burn's layer instead.
pub(super) fn conv2d(
    input: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<4>> {
    run::<Convolution<Dense>, 4, 4, 4>(input, weight, bias, geometry)
}

/// Convolution then max pooling (windows `window`) through the fused kernel: `None` as
/// for [`conv2d`].
pub(super) fn conv2d_max_pool2d(
    input: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    geometry: ConvGeometry,
    window: [usize; 2],
) -> Option<Tensor<4>> {
    run::<ConvPool, 4, 4, 4>(input, weight, bias, (geometry, window))
}

/// The fully connected layer through the kernel: `None` as for [`conv2d`].
pub(super) fn linear(
    input: &Tensor<2>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    geometry: LinearGeometry,
) -> Option<Tensor<2>> {
    run::<Linear, 2, 2, 2>(input, weight, bias, geometry)
}

/// A depthwise convolution (groups = channels) through its kernel: `None` as for
/// [`conv2d`].
pub(super) fn depthwise_conv2d(
    input: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<4>> {
    run::<Convolution<Depthwise>, 4, 4, 4>(input, weight, bias, geometry)
}

/// The contiguous input, weight and bias of a forward pass.
fn operands(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
) -> (FlexTensor, FlexTensor, Option<FlexTensor>) {
    (contiguous(x), contiguous(weight), bias.map(contiguous))
}

/// The three functions of a convolution kernel (forward, input gradient, weight and bias
/// gradients); [`Convolution`] makes one a [`Weighted`] layer.
trait ConvKernel: Debug + Clone + Send + Sync + 'static {
    fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32>;
    fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32>;
    fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>);
    /// The input channels each filter reads (the weight's second dimension).
    fn filter_channels(g: &ConvGeometry) -> usize;
}

/// A dense convolution: im2col + gemm (`conv`).
#[derive(Debug, Clone)]
struct Dense;

impl ConvKernel for Dense {
    fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
        conv::forward(x, w, bias, g)
    }
    fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
        conv::input_grad(w, dy, g)
    }
    fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
        conv::weight_grad(x, dy, g)
    }
    fn filter_channels(g: &ConvGeometry) -> usize {
        g.in_channels
    }
}

/// A depthwise convolution: one filter per channel (`depthwise`).
#[derive(Debug, Clone)]
struct Depthwise;

impl ConvKernel for Depthwise {
    fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &ConvGeometry) -> Vec<f32> {
        depthwise::forward(x, w, bias, g)
    }
    fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
        depthwise::input_grad(w, dy, g)
    }
    fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> (Vec<f32>, Vec<f32>) {
        depthwise::weight_grad(x, dy, g)
    }
    fn filter_channels(_: &ConvGeometry) -> usize {
        1
    }
}

/// A convolution layer run by kernel `K`.
#[derive(Debug, Clone)]
struct Convolution<K>(PhantomData<K>);

impl<K: ConvKernel> Weighted for Convolution<K> {
    type Geometry = ConvGeometry;
    type Kept = ();

    fn forward(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        g: &ConvGeometry,
    ) -> (FlexTensor, ()) {
        let (x, weight, bias) = operands(x, weight, bias);
        let out = K::forward(values(&x), values(&weight), bias.as_ref().map(values), g);
        let [oh, ow] = g
            .output_size()
            .expect("the geometry was checked before dispatch");
        (flex_tensor(out, [g.batch, g.out_channels, oh, ow]), ())
    }

    fn backward(
        state: &Saved<Self>,
        grad: &FlexTensor,
        [x_node, weight_node, bias_node]: [Option<NodeId>; 3],
        grads: &mut Gradients,
    ) {
        let g = &state.geometry;
        let grad = contiguous(grad);
        if let Some(node) = x_node {
            let weight = contiguous(&state.weight);
            let dx = K::input_grad(values(&weight), values(&grad), g);
            let shape = [g.batch, g.in_channels, g.height, g.width];
            grads.register::<Flex>(node, flex_tensor(dx, shape));
        }
        if weight_node.is_some() || bias_node.is_some() {
            let x = contiguous(&state.x);
            let (dw, db) = K::weight_grad(values(&x), values(&grad), g);
            let filter = K::filter_channels(g);
            register_conv_weight(g, filter, weight_node, bias_node, dw, db, grads);
        }
    }
}

/// Registers a convolution's weight (`filter` input channels a filter) and bias
/// gradients where their nodes want them.
fn register_conv_weight(
    g: &ConvGeometry,
    filter: usize,
    weight_node: Option<NodeId>,
    bias_node: Option<NodeId>,
    dw: Vec<f32>,
    db: Vec<f32>,
    grads: &mut Gradients,
) {
    if let Some(node) = weight_node {
        let [kh, kw] = g.kernel;
        let shape = [g.out_channels, filter, kh, kw];
        grads.register::<Flex>(node, flex_tensor(dw, shape));
    }
    if let Some(node) = bias_node {
        grads.register::<Flex>(node, flex_tensor(db, [g.out_channels]));
    }
}

/// Convolution + max pooling; the backward keeps each window's argmax.
#[derive(Debug, Clone)]
struct ConvPool;

impl Weighted for ConvPool {
    type Geometry = (ConvGeometry, [usize; 2]);
    type Kept = Arc<Vec<u8>>;

    fn forward(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        (g, window): &(ConvGeometry, [usize; 2]),
    ) -> (FlexTensor, Arc<Vec<u8>>) {
        let (x, weight, bias) = operands(x, weight, bias);
        let (out, argmax) = conv_pool::forward(
            values(&x),
            values(&weight),
            bias.as_ref().map(values),
            g,
            *window,
        );
        let [oh, ow] = g
            .output_size()
            .expect("the geometry was checked before dispatch");
        let shape = [g.batch, g.out_channels, oh / window[0], ow / window[1]];
        (flex_tensor(out, shape), Arc::new(argmax))
    }

    fn backward(
        state: &Saved<Self>,
        grad: &FlexTensor,
        [x_node, weight_node, bias_node]: [Option<NodeId>; 3],
        grads: &mut Gradients,
    ) {
        let (g, window) = &state.geometry;
        let want_weight = weight_node.is_some() || bias_node.is_some();
        if x_node.is_none() && !want_weight {
            return;
        }
        let (grad, x, weight) = (
            contiguous(grad),
            contiguous(&state.x),
            contiguous(&state.weight),
        );
        let result = conv_pool::backward(
            values(&x),
            values(&weight),
            values(&grad),
            &state.kept,
            g,
            *window,
            [x_node.is_some(), want_weight],
        );
        if let (Some(node), Some(dx)) = (x_node, result.input) {
            let shape = [g.batch, g.in_channels, g.height, g.width];
            grads.register::<Flex>(node, flex_tensor(dx, shape));
        }
        if let Some((dw, db)) = result.weight_bias {
            register_conv_weight(g, g.in_channels, weight_node, bias_node, dw, db, grads);
        }
    }
}

#[derive(Debug, Clone)]
struct Linear;

impl Weighted for Linear {
    type Geometry = LinearGeometry;
    type Kept = ();

    fn forward(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        g: &LinearGeometry,
    ) -> (FlexTensor, ()) {
        let (x, weight, bias) = operands(x, weight, bias);
        let y = linear::forward(values(&x), values(&weight), bias.as_ref().map(values), g);
        (flex_tensor(y, [g.batch, g.outputs]), ())
    }

    fn backward(
        state: &Saved<Self>,
        grad: &FlexTensor,
        [x_node, weight_node, bias_node]: [Option<NodeId>; 3],
        grads: &mut Gradients,
    ) {
        let g = &state.geometry;
        let grad = contiguous(grad);
        if let Some(node) = x_node {
            let weight = contiguous(&state.weight);
            let dx = linear::input_grad(values(&weight), values(&grad), g);
            grads.register::<Flex>(node, flex_tensor(dx, [g.batch, g.inputs]));
        }
        if weight_node.is_some() || bias_node.is_some() {
            let x = contiguous(&state.x);
            let (dw, db) = linear::weight_grad(values(&x), values(&grad), g);
            if let Some(node) = weight_node {
                grads.register::<Flex>(node, flex_tensor(dw, [g.inputs, g.outputs]));
            }
            if let Some(node) = bias_node {
                grads.register::<Flex>(node, flex_tensor(db, [g.outputs]));
            }
        }
    }
}

/// A batch norm (its `gamma` the weight, its `beta` the bias) with the activation after
/// it, through `batch_norm`: `None` as for [`conv2d`]. Returns the statistics it
/// normalised with (the batch's when `geometry.running` is `None`).
pub(super) fn batch_norm(
    input: &Tensor<4>,
    gamma: &Tensor<1>,
    beta: &Tensor<1>,
    geometry: BatchNormGeometry,
) -> Option<(Tensor<4>, Arc<Normalised>)> {
    run_keeping::<BatchNorm, 4, 1, 4>(input, gamma, Some(beta), geometry)
        .map(|(out, kept)| (out, kept.normalised))
}

/// How a batch norm runs: its layout, epsilon and activation, and the running
/// statistics when it does not normalise with the batch's own.
#[derive(Debug, Clone)]
pub(super) struct BatchNormGeometry {
    /// The input's `[N, C, H, W]`.
    pub dims: [usize; 4],
    pub epsilon: f64,
    pub activation: Activation,
    /// `(mean, variance)` to normalise with; `None` in training.
    pub running: Option<Arc<(Vec<f32>, Vec<f32>)>>,
}

impl BatchNormGeometry {
    fn layout(&self) -> Layout {
        let [batch, channels, height, width] = self.dims;
        Layout {
            batch,
            channels,
            plane: height * width,
        }
    }
}

/// What a batch norm's backward keeps: its statistics and `beta` (for the activation's
/// mask).
#[derive(Debug, Clone)]
struct BatchNormKept {
    normalised: Arc<Normalised>,
    beta: Arc<Vec<f32>>,
}

#[derive(Debug, Clone)]
struct BatchNorm;

impl Weighted for BatchNorm {
    type Geometry = BatchNormGeometry;
    type Kept = BatchNormKept;

    fn forward(
        x: &FlexTensor,
        gamma: &FlexTensor,
        beta: Option<&FlexTensor>,
        g: &BatchNormGeometry,
    ) -> (FlexTensor, BatchNormKept) {
        let (x, gamma, beta) = operands(x, gamma, beta);
        let beta = beta.expect("a batch norm has a beta");
        let x = values(&x);
        let normalised = match &g.running {
            None => Normalised::of_batch(x, g.layout(), g.epsilon),
            Some(running) => {
                Normalised::of_running(running.0.clone(), running.1.clone(), g.epsilon)
            }
        };
        let (gamma, beta) = (values(&gamma), values(&beta).to_vec());
        let y = batch_norm::normalise(x, g.layout(), gamma, &beta, &normalised, g.activation);
        let kept = BatchNormKept {
            normalised: Arc::new(normalised),
            beta: Arc::new(beta),
        };
        (flex_tensor(y, g.dims), kept)
    }

    fn backward(
        state: &Saved<Self>,
        grad: &FlexTensor,
        [x_node, gamma_node, beta_node]: [Option<NodeId>; 3],
        grads: &mut Gradients,
    ) {
        let g = &state.geometry;
        let want = [
            x_node.is_some(),
            gamma_node.is_some() || beta_node.is_some(),
        ];
        if want == [false, false] {
            return;
        }
        let (grad, x, gamma) = (
            contiguous(grad),
            contiguous(&state.x),
            contiguous(&state.weight),
        );
        let result = batch_norm::backward(
            values(&x),
            values(&grad),
            g.layout(),
            values(&gamma),
            &state.kept.beta,
            &state.kept.normalised,
            g.activation,
            want,
        );
        let channels = g.dims[1];
        if let (Some(node), Some(dx)) = (x_node, result.input) {
            grads.register::<Flex>(node, flex_tensor(dx, g.dims));
        }
        if let Some((dgamma, dbeta)) = result.affine {
            if let Some(node) = gamma_node {
                grads.register::<Flex>(node, flex_tensor(dgamma, [channels]));
            }
            if let Some(node) = beta_node {
                grads.register::<Flex>(node, flex_tensor(dbeta, [channels]));
            }
        }
    }
}

/// Max pooling through the kernel: `None` when the input is not on flex.
pub(super) fn max_pool2d(input: &Tensor<4>, geometry: PoolGeometry) -> Option<Tensor<4>> {
    let shape = input.dims();
    if let Some(x) = on_autodiff(input) {
        return Some(Tensor::from_primitive::<Ad>(tracked_max_pool2d(
            x, shape, geometry,
        )));
    }
    let x = on_flex(input)?;
    Some(Tensor::from_primitive::<Flex>(pool_output(
        &x, shape, &geometry,
    )))
}

fn pool_output(x: &FlexTensor, shape: [usize; 4], g: &PoolGeometry) -> FlexTensor {
    let x = contiguous(x);
    let out = pool::forward(values(&x), g);
    let [oh, ow] = g
        .output_size()
        .expect("the geometry was checked before dispatch");
    flex_tensor(out, [shape[0], shape[1], oh, ow])
}

/// What max pooling's backward needs: its input and output (shared, not copied).
#[derive(Debug, Clone)]
struct PoolState {
    x: FlexTensor,
    y: FlexTensor,
    shape: [usize; 4],
    geometry: PoolGeometry,
}

#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = PoolState;

    fn backward(self, ops: Ops<PoolState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        if let Some(node) = x_node {
            let state = &ops.state;
            let (x, y) = (contiguous(&state.x), contiguous(&state.y));
            let dx = pool::backward(values(&x), values(&y), values(&grad), &state.geometry);
            grads.register::<Flex>(node, flex_tensor(dx, state.shape));
        }
    }
}

fn tracked_max_pool2d(
    x: FloatTensor<Ad>,
    shape: [usize; 4],
    geometry: PoolGeometry,
) -> FloatTensor<Ad> {
    let out = pool_output(x.primitive(), shape, &geometry);
    match MaxPoolBackward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = PoolState {
                x: x.primitive().clone(),
                y: out.clone(),
                shape,
                geometry,
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// ReLU6 through the kernel: `None` when the input is not on flex.
pub(super) fn relu6<const D: usize>(input: &Tensor<D>) -> Option<Tensor<D>> {
    let shape = input.dims();
    if let Some(x) = on_autodiff(input) {
        return Some(Tensor::from_primitive::<Ad>(tracked_relu6(x, shape)));
    }
    let x = on_flex(input)?;
    Some(Tensor::from_primitive::<Flex>(relu6_output(&x, shape)))
}

fn relu6_output<const D: usize>(x: &FlexTensor, shape: [usize; D]) -> FlexTensor {
    let x = contiguous(x);
    flex_tensor(super::relu6::forward(values(&x)), shape)
}

/// What ReLU6's backward needs: its output (shared, not copied) and shape.
#[derive(Debug, Clone)]
struct Relu6State {
    y: FlexTensor,
    shape: Vec<usize>,
}

#[derive(Debug)]
struct Relu6Backward;

impl Backward<Flex, 1> for Relu6Backward {
    type State = Relu6State;

    fn backward(self, ops: Ops<Relu6State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = contiguous(&grads.consume::<Flex>(&ops.node));
        if let Some(node) = x_node {
            let y = contiguous(&ops.state.y);
            let dx = super::relu6::backward(values(&y), values(&grad));
            let dx = FlexTensor::from_data(TensorData::new(dx, ops.state.shape.clone()));
            grads.register::<Flex>(node, dx);
        }
    }
}

fn tracked_relu6<const D: usize>(x: FloatTensor<Ad>, shape: [usize; D]) -> FloatTensor<Ad> {
    let out = relu6_output(x.primitive(), shape);
    match Relu6Backward
        .prepare::<NoCheckpointing>([x.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let state = Relu6State {
                y: out.clone(),
                shape: shape.to_vec(),
            };
            prep.finish(state, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// What the weighted squared distance's backward needs: the parameter, the weights and
/// the anchor (tensors shared, not copied).
#[derive(Debug, Clone)]
struct QuadraticState {
    p: FlexTensor,
    f: FlexTensor,
    a: FlexTensor,
}

/// The backward node of [`weighted_squared_distance`] (one parent: the parameter).
#[derive(Debug)]
struct Quadratic;

impl Backward<Flex, 1> for Quadratic {
    type State = QuadraticState;

    fn backward(self, ops: Ops<QuadraticState, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node else { return };
        let scale = values(&contiguous(&grad))[0];
        let s = &ops.state;
        let (p, f, a) = (contiguous(&s.p), contiguous(&s.f), contiguous(&s.a));
        let g = quadratic::gradient(values(&p), values(&f), values(&a), scale);
        let len = g.len();
        grads.register::<Flex>(node, flex_tensor(g, [len]));
    }
}

/// `sum_k f_k (p_k - a_k)^2` as a one-element tensor, with its gradient to `p` when `p`
/// is tracked (`f` and `a` are constants): `None` when the three are not f32 flex
/// tensors (with or without autodiff), for the caller to use tensor operations.
pub(super) fn weighted_squared_distance(
    p: &Tensor<1>,
    f: &Tensor<1>,
    a: &Tensor<1>,
) -> Option<Tensor<1>> {
    // The weights and the anchor are constants: their values, on autodiff or not.
    let f32_flex = |t: &Tensor<1>| {
        on_flex(t)
            .or_else(|| on_autodiff(t).map(|x| x.primitive().clone()))
            .filter(|_| t.dtype() == burn::tensor::DType::F32)
            .map(|t| contiguous(&t))
    };
    let (f, a) = (f32_flex(f)?, f32_flex(a)?);
    if p.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    let sum = |p: &FlexTensor| {
        let p = contiguous(p);
        let v = quadratic::value(values(&p), values(&f), values(&a)) as f32;
        flex_tensor(vec![v], [1])
    };
    if let Some(tracked) = on_autodiff(p) {
        let out = sum(tracked.primitive());
        let out = match Quadratic
            .prepare::<NoCheckpointing>([tracked.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                QuadraticState {
                    p: tracked.primitive().clone(),
                    f,
                    a,
                },
                out,
            ),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        return Some(Tensor::from_primitive::<Ad>(out));
    }
    Some(Tensor::from_primitive::<Flex>(sum(&on_flex(p)?)))
}
