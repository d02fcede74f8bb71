//! A network on the CPU: its tensors as host vectors, the buffers a batch needs, and the
//! forward pass as a straight sequence of layer calls.

use mnist_data::{Normalization, IMAGE_PIXELS};
use mnist_model::layers::ParamSpec;
use mnist_model::Architecture;

use crate::layers::{batchnorm, conv, dense, first_conv, pool, relu};
use crate::plan::{Op, Plan};
use crate::Level;

/// A layer list ready to run on the CPU, with its weights.
#[derive(Debug, Clone)]
pub struct CpuNetwork {
    plan: Plan,
    level: Level,
    /// The network's tensors, in the plan's order (PyTorch layouts).
    tensors: Vec<Vec<f32>>,
}

impl CpuNetwork {
    /// `architecture` with every tensor zero; fill them with [`CpuNetwork::set`].
    pub fn new(architecture: &Architecture, level: Level) -> Self {
        let plan = Plan::new(architecture);
        let tensors = plan.specs.iter().map(|s| vec![0.0; s.len()]).collect();
        Self {
            plan,
            level,
            tensors,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// Every tensor with its description, in the plan's order.
    pub fn tensors(&self) -> impl Iterator<Item = (&ParamSpec, &[f32])> {
        self.plan
            .specs
            .iter()
            .zip(self.tensors.iter().map(Vec::as_slice))
    }

    fn index(&self, name: &str) -> Result<usize, String> {
        self.plan
            .specs
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| format!("the network has no tensor {name:?}"))
    }

    /// The values of tensor `name`.
    pub fn get(&self, name: &str) -> Result<&[f32], String> {
        Ok(&self.tensors[self.index(name)?])
    }

    /// Sets tensor `name` to `values` (PyTorch's layout, as many values as its shape holds).
    pub fn set(&mut self, name: &str, values: &[f32]) -> Result<(), String> {
        let i = self.index(name)?;
        let tensor = &mut self.tensors[i];
        if tensor.len() != values.len() {
            return Err(format!(
                "tensor {name:?} holds {} values, not {}",
                tensor.len(),
                values.len()
            ));
        }
        tensor.copy_from_slice(values);
        Ok(())
    }

    /// The plan and the tensors, the latter mutable: what a training step works on.
    pub(crate) fn parts_mut(&mut self) -> (&Plan, &mut [Vec<f32>]) {
        (&self.plan, &mut self.tensors)
    }

    /// The logits `[b, classes]` of the `b` images already normalized into the workspace's
    /// input ([`Workspace::input`]), with batch norm's running averages.
    pub fn infer<'w>(&self, ws: &'w mut Workspace, b: usize) -> &'w [f32] {
        forward(self.level, &self.plan, &self.tensors, ws, b, false);
        ws.logits(&self.plan, b)
    }
}

/// `pixel (0..=255) → normalized f32`, as [`Normalization::apply_pixel`] computes it.
pub fn normalize_table(normalization: &Normalization) -> [f32; 256] {
    std::array::from_fn(|p| normalization.apply_pixel(p as u8))
}

/// The buffers one batch needs, allocated once and grown to the largest batch seen.
#[derive(Debug, Default)]
pub struct Workspace {
    capacity: usize,
    /// `acts[0]` is the input, `acts[i + 1]` node `i`'s output.
    pub(crate) acts: Vec<Vec<f32>>,
    /// Per node: the pooling winners (pooling nodes), or batch norm's saved statistics.
    pub(crate) winners: Vec<Vec<u8>>,
    pub(crate) saved: Vec<Vec<f32>>,
    /// Gradients flowing backward, in turn: the output's, then the input's.
    pub(crate) grads: [Vec<f32>; 2],
    /// Conv layers' per-chunk weight gradients and dense layers' partial products.
    pub(crate) conv_partials: Vec<f32>,
    pub(crate) dense_partials: Vec<f32>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Grows the buffers for batches of `b` images of `plan`.
    pub(crate) fn ensure(&mut self, plan: &Plan, b: usize) {
        if b <= self.capacity && self.acts.len() == plan.nodes.len() + 1 {
            return;
        }
        let b = b.max(self.capacity);
        let grow = |v: &mut Vec<f32>, len: usize| {
            if v.len() < len {
                v.resize(len, 0.0);
            }
        };
        self.acts.resize_with(plan.nodes.len() + 1, Vec::new);
        self.winners.resize_with(plan.nodes.len(), Vec::new);
        self.saved.resize_with(plan.nodes.len(), Vec::new);
        grow(&mut self.acts[0], b * IMAGE_PIXELS);
        for (i, node) in plan.nodes.iter().enumerate() {
            grow(&mut self.acts[i + 1], b * node.out_len);
            match node.op {
                Op::FirstConvReluPool(_) | Op::Pool { .. } => {
                    if self.winners[i].len() < b * node.out_len {
                        self.winners[i].resize(b * node.out_len, 0);
                    }
                }
                Op::BatchNorm { dims, .. } => grow(&mut self.saved[i], batchnorm::SAVED * dims.c),
                Op::Conv(d) => grow(&mut self.conv_partials, conv::partials_len(&d, b)),
                Op::Dense(d) => grow(&mut self.dense_partials, d.partials_len(b)),
                Op::Relu => {}
            }
        }
        for g in &mut self.grads {
            grow(g, b * plan.widest());
        }
        self.capacity = b;
    }

    /// The input of a batch of `b`, `[b, 1, 28, 28]`, to fill with normalized pixels.
    pub fn input(&mut self, plan: &Plan, b: usize) -> &mut [f32] {
        self.ensure(plan, b);
        &mut self.acts[0][..b * IMAGE_PIXELS]
    }

    /// The last forward pass's logits.
    pub(crate) fn logits(&self, plan: &Plan, b: usize) -> &[f32] {
        let last = plan.nodes.last().map_or(0, |n| n.out_len);
        &self.acts[plan.nodes.len()][..b * last]
    }
}

/// The forward pass over the batch of `b` in `ws.acts[0]`: each node reads its input and writes
/// its output (and what its backward needs). In training, batch norm uses the batch's
/// statistics and saves them; the caller updates the running averages.
pub(crate) fn forward(
    level: Level,
    plan: &Plan,
    tensors: &[Vec<f32>],
    ws: &mut Workspace,
    b: usize,
    train: bool,
) {
    ws.ensure(plan, b);
    let Workspace {
        acts,
        winners,
        saved,
        dense_partials,
        ..
    } = ws;
    for (i, node) in plan.nodes.iter().enumerate() {
        #[cfg(feature = "profile")]
        let _timer = crate::profile::Timer::new(format!("forward {i:2} {}", node.op.name()));
        let (before, after) = acts.split_at_mut(i + 1);
        let x = &before[i][..b * node.in_len];
        let y = &mut after[0][..b * node.out_len];
        let t = |k: usize| tensors[node.params[k]].as_slice();
        let bias = || node.bias.then(|| t(1));
        match node.op {
            Op::FirstConvReluPool(d) => {
                let winners = &mut winners[i][..b * node.out_len];
                first_conv::forward(level, &d, x, t(0), t(1), y, winners)
            }
            Op::Conv(d) => conv::forward(level, &d, x, t(0), bias(), y),
            Op::BatchNorm { dims, relu } if train => {
                batchnorm::forward_train(&dims, relu, (t(0), t(1)), x, y, &mut saved[i])
            }
            Op::BatchNorm { dims, relu } => {
                batchnorm::forward_infer(&dims, relu, (t(0), t(1)), t(2), t(3), x, y)
            }
            Op::Relu => relu::forward(x, y),
            Op::Pool { dims, relu } => {
                pool::forward(&dims, relu, x, y, &mut winners[i][..b * node.out_len])
            }
            Op::Dense(d) => dense::forward(level, &d, x, t(0), bias(), y, dense_partials),
        }
    }
}
