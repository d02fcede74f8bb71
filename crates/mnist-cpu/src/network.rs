//! A network on the CPU: its tensors as host vectors, the buffers a batch needs, and the
//! forward pass as a straight sequence of layer calls.

use std::sync::OnceLock;

use mnist_data::{Normalization, IMAGE_PIXELS};
use mnist_model::layers::{Layer, ParamSpec};
use mnist_model::{Architecture, BATCH_NORM_EPS};

use crate::layers::{batchnorm, conv, dense, first_conv, grow, pool, relu};
use crate::plan::{Op, Plan};
use crate::Level;

/// A layer list ready to run on the CPU, with its weights.
#[derive(Debug, Clone)]
pub struct CpuNetwork {
    architecture: Architecture,
    plan: Plan,
    level: Level,
    /// The network's tensors, in the plan's order (PyTorch layouts).
    tensors: Vec<Vec<f32>>,
    /// Per node, conv kernels in the form the conv multiplies them ([`conv::prepared_kernels`]),
    /// made at the first inference and dropped whenever a tensor may change.
    prepared: OnceLock<Vec<Option<Vec<f32>>>>,
}

impl CpuNetwork {
    /// `architecture` with every tensor zero; fill them with [`CpuNetwork::set`].
    pub fn new(architecture: &Architecture, level: Level) -> Self {
        let plan = Plan::new(architecture);
        let tensors = plan.specs.iter().map(|s| vec![0.0; s.len()]).collect();
        Self {
            architecture: architecture.clone(),
            plan,
            level,
            tensors,
            prepared: OnceLock::new(),
        }
    }

    /// For inference only: the same network with every batch norm that directly follows a conv
    /// or dense layer folded into that layer. With running statistics the normalization is a
    /// per-channel affine map, `(z - mean) * s + beta` with `s = gamma / sqrt(var + eps)`, so the
    /// layer's weights times `s` and a bias of `beta - mean * s` give the same outputs (to
    /// rounding) without a pass over the activations. Other batch norms stay as they are.
    pub fn folded(&self) -> CpuNetwork {
        let placed = self.architecture.placed();
        let folds_into_previous = |i: usize| {
            placed[i].layer == Layer::BatchNorm
                && i > 0
                && matches!(
                    placed[i - 1].layer,
                    Layer::Conv { .. } | Layer::Dense { .. }
                )
        };
        let kept: Vec<usize> = (0..placed.len())
            .filter(|&i| !folds_into_previous(i))
            .collect();
        if kept.len() == placed.len() {
            return self.clone();
        }
        let layers: Vec<Layer> = kept.iter().map(|&i| placed[i].layer).collect();
        let architecture = Architecture::from_layers(&layers)
            .expect("a batch norm keeps its input's shape, so the list without it is valid");
        let mut out = CpuNetwork::new(&architecture, self.level);
        for (new, &i) in architecture.placed().iter().zip(&kept) {
            let (Some(new_name), Some(old_name)) = (&new.name, &placed[i].name) else {
                continue;
            };
            let old = |suffix: &str| {
                self.get(&format!("{old_name}.{suffix}"))
                    .expect("the plan lists every tensor of its layers")
            };
            let mut set = |suffix: &str, values: &[f32]| {
                out.set(&format!("{new_name}.{suffix}"), values)
                    .expect("the folded list has the same layers")
            };
            if placed.get(i + 1).is_some() && folds_into_previous(i + 1) {
                let bn = placed[i + 1]
                    .name
                    .as_deref()
                    .expect("batch norm has tensors");
                let bn = |suffix: &str| self.get(&format!("{bn}.{suffix}")).unwrap();
                let (gamma, beta) = (bn("weight"), bn("bias"));
                let (mean, var) = (bn("running_mean"), bn("running_var"));
                let weight = old("weight");
                let per_channel = weight.len() / gamma.len();
                let mut folded_weight = Vec::with_capacity(weight.len());
                let mut bias = Vec::with_capacity(gamma.len());
                for ch in 0..gamma.len() {
                    // As batchnorm::forward_infer computes its scale and shift.
                    let invstd = 1.0 / (var[ch] as f64 + BATCH_NORM_EPS).sqrt();
                    let scale = gamma[ch] as f64 * invstd;
                    let rows = &weight[ch * per_channel..(ch + 1) * per_channel];
                    folded_weight.extend(rows.iter().map(|&w| (w as f64 * scale) as f32));
                    bias.push((beta[ch] as f64 - mean[ch] as f64 * scale) as f32);
                }
                set("weight", &folded_weight);
                set("bias", &bias);
            } else {
                for spec in new.params() {
                    let suffix = &spec.name[new_name.len() + 1..];
                    set(suffix, old(suffix));
                }
            }
        }
        out
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
        self.prepared = OnceLock::new();
        Ok(())
    }

    /// The plan and the tensors, the latter mutable: what a training step works on.
    pub(crate) fn parts_mut(&mut self) -> (&Plan, &mut [Vec<f32>]) {
        self.prepared = OnceLock::new();
        (&self.plan, &mut self.tensors)
    }

    /// The logits `[b, classes]` of the `b` images already normalized into the workspace's
    /// input ([`Workspace::input`]), with batch norm's running averages.
    pub fn infer<'w>(&self, ws: &'w mut Workspace, b: usize) -> &'w [f32] {
        let prepared = self.prepared.get_or_init(|| {
            let plan = &self.plan;
            plan.nodes
                .iter()
                .map(|node| match node.op {
                    Op::Conv { dims, .. } => {
                        conv::prepared_kernels(&dims, &self.tensors[node.params[0]])
                    }
                    _ => None,
                })
                .collect()
        });
        forward(
            self.level,
            &self.plan,
            &self.tensors,
            Some(prepared),
            ws,
            b,
            false,
        );
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
    /// The batch the forward's buffers hold, and the batch the backward's hold (0 until a
    /// training step: inference never allocates them).
    capacity: usize,
    train_capacity: usize,
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

    /// Grows the buffers for batches of `b` images of `plan`: the forward's, and the backward's
    /// too when `train`.
    pub(crate) fn ensure(&mut self, plan: &Plan, b: usize, train: bool) {
        if b > self.capacity || self.acts.len() != plan.nodes.len() + 1 {
            let b = b.max(self.capacity);
            self.acts.resize_with(plan.nodes.len() + 1, Vec::new);
            self.winners.resize_with(plan.nodes.len(), Vec::new);
            grow(&mut self.acts[0], b * IMAGE_PIXELS);
            for (i, node) in plan.nodes.iter().enumerate() {
                grow(&mut self.acts[i + 1], b * node.out_len);
                match node.op {
                    Op::FirstConvReluPool(_) | Op::Pool { .. }
                        if self.winners[i].len() < b * node.out_len =>
                    {
                        self.winners[i].resize(b * node.out_len, 0)
                    }
                    Op::Dense(d) => grow(&mut self.dense_partials, d.partials_len(b)),
                    _ => {}
                }
            }
            self.capacity = b;
        }
        if train && (b > self.train_capacity || self.saved.len() != plan.nodes.len()) {
            let b = b.max(self.train_capacity);
            self.saved.resize_with(plan.nodes.len(), Vec::new);
            for (i, node) in plan.nodes.iter().enumerate() {
                match node.op {
                    Op::BatchNorm { dims, .. } => {
                        grow(&mut self.saved[i], batchnorm::SAVED * dims.c)
                    }
                    Op::Conv { dims, .. } => {
                        grow(&mut self.conv_partials, conv::partials_len(&dims, b))
                    }
                    _ => {}
                }
            }
            for g in &mut self.grads {
                grow(g, b * plan.widest());
            }
            self.train_capacity = b;
        }
    }

    /// The input of a batch of `b`, `[b, 1, 28, 28]`, to fill with normalized pixels.
    pub fn input(&mut self, plan: &Plan, b: usize) -> &mut [f32] {
        self.ensure(plan, b, false);
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
/// statistics and saves them; the caller updates the running averages. `prepared` holds each
/// node's [`conv::prepared_kernels`] when the tensors stay as they are between calls.
pub(crate) fn forward(
    level: Level,
    plan: &Plan,
    tensors: &[Vec<f32>],
    prepared: Option<&[Option<Vec<f32>>]>,
    ws: &mut Workspace,
    b: usize,
    train: bool,
) {
    ws.ensure(plan, b, train);
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
            Op::Conv { dims, relu } => {
                let kept = prepared.and_then(|p| p[i].as_deref());
                conv::forward(level, &dims, relu, x, t(0), kept, bias(), y)
            }
            Op::BatchNorm { dims, relu } if train => {
                batchnorm::forward_train(level, &dims, relu, (t(0), t(1)), x, y, &mut saved[i])
            }
            Op::BatchNorm { dims, relu } => {
                batchnorm::forward_infer(level, &dims, relu, (t(0), t(1)), t(2), t(3), x, y)
            }
            Op::Relu => relu::forward(x, y),
            Op::Pool { dims, relu } => pool::forward(
                level,
                &dims,
                relu,
                x,
                y,
                &mut winners[i][..b * node.out_len],
            ),
            Op::Dense(d) => dense::forward(level, &d, x, t(0), bias(), y, dense_partials),
        }
    }
}
