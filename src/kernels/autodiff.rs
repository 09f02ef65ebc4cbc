//! The kernels as Burn operations: on a flex tensor they run directly; on an
//! `Autodiff<Flex>` tensor they also record a node whose backward runs the kernels'
//! gradients (the pattern of burn-autodiff's own `conv2d`, with our kernels inside).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::tensor::{Tensor, TensorData};

use std::sync::Arc;

use super::conv::{self, ConvGeometry};
use super::conv_pool;
use super::linear::{self, LinearGeometry};
use super::pool::{self, PoolGeometry};

/// Flex under Burn's autodiff, as `Device::flex().autodiff()` builds it.
type Ad = Autodiff<Flex, NoCheckpointing>;

fn on_autodiff<const D: usize>(tensor: &Tensor<D>) -> Option<FloatTensor<Ad>> {
    tensor.clone().try_into_primitive::<Ad>().ok()
}

fn on_flex<const D: usize>(tensor: &Tensor<D>) -> Option<FlexTensor> {
    tensor.clone().try_into_primitive::<Flex>().ok()
}

fn contiguous(tensor: &FlexTensor) -> FlexTensor {
    if tensor.is_contiguous() {
        tensor.clone()
    } else {
        tensor.to_contiguous()
    }
}

fn values(tensor: &FlexTensor) -> &[f32] {
    tensor
        .as_slice::<f32>()
        .expect("the kernels take contiguous f32 tensors (dtype checked before dispatch)")
}

fn flex_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The convolution through the kernels: `None` when the tensors are not all on flex
/// (or all on autodiff flex), for the caller to run Burn's layer instead.
pub(super) fn conv2d(
    input: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    geometry: ConvGeometry,
) -> Option<Tensor<4>> {
    if let (Some(x), Some(w)) = (on_autodiff(input), on_autodiff(weight)) {
        let b = match bias {
            Some(b) => Some(on_autodiff(b)?),
            None => None,
        };
        return Some(Tensor::from_primitive::<Ad>(tracked_conv2d(
            x, w, b, geometry,
        )));
    }
    let (x, w) = (on_flex(input)?, on_flex(weight)?);
    let b = match bias {
        Some(b) => Some(on_flex(b)?),
        None => None,
    };
    Some(Tensor::from_primitive::<Flex>(conv_output(
        &x,
        &w,
        b.as_ref(),
        &geometry,
    )))
}

fn conv_output(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    g: &ConvGeometry,
) -> FlexTensor {
    let (x, weight) = (contiguous(x), contiguous(weight));
    let bias = bias.map(contiguous);
    let out = conv::forward(values(&x), values(&weight), bias.as_ref().map(values), g);
    let [oh, ow] = g
        .output_size()
        .expect("the geometry was checked before dispatch");
    flex_tensor(out, [g.batch, g.out_channels, oh, ow])
}

/// What the convolution's backward needs.
#[derive(Debug, Clone)]
struct ConvState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: ConvGeometry,
}

#[derive(Debug)]
struct ConvWithBias;

#[derive(Debug)]
struct ConvNoBias;

impl Backward<Flex, 3> for ConvWithBias {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w, b] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_backward(&ops.state, &grad, [x, w, b], grads);
    }
}

impl Backward<Flex, 2> for ConvNoBias {
    type State = ConvState;

    fn backward(self, ops: Ops<ConvState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_backward(&ops.state, &grad, [x, w, None], grads);
    }
}

/// Registers the gradients of the input, weight and bias nodes that want one.
fn conv_backward(
    state: &ConvState,
    grad: &FlexTensor,
    [x_node, weight_node, bias_node]: [Option<NodeId>; 3],
    grads: &mut Gradients,
) {
    let g = &state.geometry;
    let grad = contiguous(grad);
    if let Some(node) = x_node {
        let weight = contiguous(&state.weight);
        let dx = conv::input_grad(values(&weight), values(&grad), g);
        let shape = [g.batch, g.in_channels, g.height, g.width];
        grads.register::<Flex>(node, flex_tensor(dx, shape));
    }
    if weight_node.is_some() || bias_node.is_some() {
        let x = contiguous(&state.x);
        let (dw, db) = conv::weight_grad(values(&x), values(&grad), g);
        if let Some(node) = weight_node {
            let [kh, kw] = g.kernel;
            let shape = [g.out_channels, g.in_channels, kh, kw];
            grads.register::<Flex>(node, flex_tensor(dw, shape));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node, flex_tensor(db, [g.out_channels]));
        }
    }
}

fn tracked_conv2d(
    x: FloatTensor<Ad>,
    weight: FloatTensor<Ad>,
    bias: Option<FloatTensor<Ad>>,
    geometry: ConvGeometry,
) -> FloatTensor<Ad> {
    let output = || {
        conv_output(
            x.primitive(),
            weight.primitive(),
            bias.as_ref().map(|b| b.primitive()),
            &geometry,
        )
    };
    let state = || ConvState {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        geometry,
    };
    match &bias {
        Some(b) => match ConvWithBias
            .prepare::<NoCheckpointing>([x.node(), weight.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), output()),
            OpsKind::UnTracked(prep) => prep.finish(output()),
        },
        None => match ConvNoBias
            .prepare::<NoCheckpointing>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), output()),
            OpsKind::UnTracked(prep) => prep.finish(output()),
        },
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

/// Convolution then max pooling through the fused kernel: `None` when the tensors are
/// not all on flex (or all on autodiff flex).
pub(super) fn conv2d_max_pool2d(
    input: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    geometry: ConvGeometry,
    kernel: [usize; 2],
) -> Option<Tensor<4>> {
    if let (Some(x), Some(w)) = (on_autodiff(input), on_autodiff(weight)) {
        let b = match bias {
            Some(b) => Some(on_autodiff(b)?),
            None => None,
        };
        return Some(Tensor::from_primitive::<Ad>(tracked_conv_pool(
            x, w, b, geometry, kernel,
        )));
    }
    let (x, w) = (on_flex(input)?, on_flex(weight)?);
    let b = match bias {
        Some(b) => Some(on_flex(b)?),
        None => None,
    };
    let (pooled, _) = conv_pool_output(&x, &w, b.as_ref(), &geometry, kernel);
    Some(Tensor::from_primitive::<Flex>(pooled))
}

fn conv_pool_output(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    g: &ConvGeometry,
    kernel: [usize; 2],
) -> (FlexTensor, Vec<u8>) {
    let (x, weight) = (contiguous(x), contiguous(weight));
    let bias = bias.map(contiguous);
    let (out, argmax) = conv_pool::forward(
        values(&x),
        values(&weight),
        bias.as_ref().map(values),
        g,
        kernel,
    );
    let [oh, ow] = g
        .output_size()
        .expect("the geometry was checked before dispatch");
    let shape = [g.batch, g.out_channels, oh / kernel[0], ow / kernel[1]];
    (flex_tensor(out, shape), argmax)
}

/// What the fused backward needs: the input, the weight, and each window's argmax.
#[derive(Debug, Clone)]
struct ConvPoolState {
    x: FlexTensor,
    weight: FlexTensor,
    argmax: Arc<Vec<u8>>,
    geometry: ConvGeometry,
    kernel: [usize; 2],
}

#[derive(Debug)]
struct ConvPoolWithBias;

#[derive(Debug)]
struct ConvPoolNoBias;

impl Backward<Flex, 3> for ConvPoolWithBias {
    type State = ConvPoolState;

    fn backward(self, ops: Ops<ConvPoolState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w, b] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_pool_backward(&ops.state, &grad, [x, w, b], grads);
    }
}

impl Backward<Flex, 2> for ConvPoolNoBias {
    type State = ConvPoolState;

    fn backward(self, ops: Ops<ConvPoolState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        conv_pool_backward(&ops.state, &grad, [x, w, None], grads);
    }
}

fn conv_pool_backward(
    state: &ConvPoolState,
    grad: &FlexTensor,
    [x_node, weight_node, bias_node]: [Option<NodeId>; 3],
    grads: &mut Gradients,
) {
    let g = &state.geometry;
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
        &state.argmax,
        g,
        state.kernel,
        [x_node.is_some(), want_weight],
    );
    if let (Some(node), Some(dx)) = (x_node, result.input) {
        let shape = [g.batch, g.in_channels, g.height, g.width];
        grads.register::<Flex>(node, flex_tensor(dx, shape));
    }
    if let Some((dw, db)) = result.weight_bias {
        if let Some(node) = weight_node {
            let [kh, kw] = g.kernel;
            let shape = [g.out_channels, g.in_channels, kh, kw];
            grads.register::<Flex>(node, flex_tensor(dw, shape));
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node, flex_tensor(db, [g.out_channels]));
        }
    }
}

fn tracked_conv_pool(
    x: FloatTensor<Ad>,
    weight: FloatTensor<Ad>,
    bias: Option<FloatTensor<Ad>>,
    geometry: ConvGeometry,
    kernel: [usize; 2],
) -> FloatTensor<Ad> {
    let (out, argmax) = conv_pool_output(
        x.primitive(),
        weight.primitive(),
        bias.as_ref().map(|b| b.primitive()),
        &geometry,
        kernel,
    );
    let state = || ConvPoolState {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        argmax: Arc::new(argmax),
        geometry,
        kernel,
    };
    match &bias {
        Some(b) => match ConvPoolWithBias
            .prepare::<NoCheckpointing>([x.node(), weight.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
        None => match ConvPoolNoBias
            .prepare::<NoCheckpointing>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        },
    }
}

/// The fully connected layer through the kernel: `None` when the tensors are not all on
/// flex (or all on autodiff flex).
pub(super) fn linear(
    input: &Tensor<2>,
    weight: &Tensor<2>,
    bias: Option<&Tensor<1>>,
    geometry: LinearGeometry,
) -> Option<Tensor<2>> {
    if let (Some(x), Some(w)) = (on_autodiff(input), on_autodiff(weight)) {
        let b = match bias {
            Some(b) => Some(on_autodiff(b)?),
            None => None,
        };
        return Some(Tensor::from_primitive::<Ad>(tracked_linear(
            x, w, b, geometry,
        )));
    }
    let (x, w) = (on_flex(input)?, on_flex(weight)?);
    let b = match bias {
        Some(b) => Some(on_flex(b)?),
        None => None,
    };
    Some(Tensor::from_primitive::<Flex>(linear_output(
        &x,
        &w,
        b.as_ref(),
        &geometry,
    )))
}

fn linear_output(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    g: &LinearGeometry,
) -> FlexTensor {
    let (x, weight) = (contiguous(x), contiguous(weight));
    let bias = bias.map(contiguous);
    let y = linear::forward(values(&x), values(&weight), bias.as_ref().map(values), g);
    flex_tensor(y, [g.batch, g.outputs])
}

/// What the layer's backward needs.
#[derive(Debug, Clone)]
struct LinearState {
    x: FlexTensor,
    weight: FlexTensor,
    geometry: LinearGeometry,
}

#[derive(Debug)]
struct LinearWithBias;

#[derive(Debug)]
struct LinearNoBias;

impl Backward<Flex, 3> for LinearWithBias {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w, b] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        linear_backward(&ops.state, &grad, [x, w, b], grads);
    }
}

impl Backward<Flex, 2> for LinearNoBias {
    type State = LinearState;

    fn backward(self, ops: Ops<LinearState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x, w] = ops.parents.map(|node| node.map(|node| node.id));
        let grad = grads.consume::<Flex>(&ops.node);
        linear_backward(&ops.state, &grad, [x, w, None], grads);
    }
}

fn linear_backward(
    state: &LinearState,
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

fn tracked_linear(
    x: FloatTensor<Ad>,
    weight: FloatTensor<Ad>,
    bias: Option<FloatTensor<Ad>>,
    geometry: LinearGeometry,
) -> FloatTensor<Ad> {
    let output = || {
        linear_output(
            x.primitive(),
            weight.primitive(),
            bias.as_ref().map(|b| b.primitive()),
            &geometry,
        )
    };
    let state = || LinearState {
        x: x.primitive().clone(),
        weight: weight.primitive().clone(),
        geometry,
    };
    match &bias {
        Some(b) => match LinearWithBias
            .prepare::<NoCheckpointing>([x.node(), weight.node(), b.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), output()),
            OpsKind::UnTracked(prep) => prep.finish(output()),
        },
        None => match LinearNoBias
            .prepare::<NoCheckpointing>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(state(), output()),
            OpsKind::UnTracked(prep) => prep.finish(output()),
        },
    }
}
