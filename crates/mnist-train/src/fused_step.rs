//! A whole training step on the CPU for the two small architectures, `seed` (the tutorial's) and
//! `fast` (the time-to-99% recipe's, which adds a second conv layer): forward, loss, backward and
//! Adam(W) over buffers allocated once, with no autograd graph.
//!
//! Why: through candle's autograd, a step of this 0.7M-parameter network spent about as much
//! time on bookkeeping as on arithmetic: the gradient store starts every gradient as a zeroed
//! tensor and adds into it (fc1's is 2.8 MB, on fresh pages each step), every op allocates its
//! output, and each of some 30 ops wakes the thread pool. Here a step is four parallel phases, and
//! in the largest one fc1's input gradient, weight gradient and Adam update run block by block
//! over the weight's columns, so each block is read, differentiated and updated while it is in
//! cache and the weight gradient never exists as a whole. For `seed` a block is one conv
//! channel's 169 features: with 128 hidden units, the block of the weight, its two moments and
//! its gradient take 4 x 87 KB, which stays in a core's L2. `fast`'s second conv layer is im2col
//! plus one small GEMM per image, forward and backward, with its ReLU and max-pool fused.
//!
//! The kernels are the ones the generic path uses (the fused first layer and im2col from
//! `mnist_model::ops`, the `gemm` crate, [`AdamScalars`]); tests check fused runs of both
//! architectures against the generic path. On CPUs with AVX-512, fc1 runs in
//! [`crate::fc1_avx512`] and the second conv layer's row-major products in
//! `mnist_model::ops::matmul_rows`, without gemm's packing and with the same bits (tested). During an epoch the weights and moments live here; [`FusedStep::store`] writes
//! them back into the network's variables and the optimizer's state.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use gemm::Parallelism;
use mnist_data::{Normalization, IMAGE_SIDE, NUM_CLASSES};
use mnist_model::ops::{
    col2im_image, conv3x3_relu_max_pool_slices, conv3x3_relu_max_pool_weight_grad_slices,
    im2col_image, matmul, matmul_rows, ConvPoolDims,
};
use mnist_model::{Architecture, FastConfig, Network};
use rayon::prelude::*;

use crate::fused_adam::AdamScalars;
use crate::optim::adam_scalars;
use crate::{Optimizer, OptimizerConfig, OptimizerKind, Result, TrainError};

const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;

/// The parameters, named as in the network; `fast` has the last two as well.
const NAMES: [&str; 8] = [
    "conv1.weight",
    "conv1.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
    "conv2.weight",
    "conv2.bias",
];
const CONV_W: usize = 0;
const CONV_B: usize = 1;
const FC1_W: usize = 2;
const FC1_B: usize = 3;
const FC2_W: usize = 4;
const FC2_B: usize = 5;
const CONV2_W: usize = 6;
const CONV2_B: usize = 7;
/// Images per GEMM of the second conv layer (and per partial sum of its gradients: fixed, so sums
/// are reproducible). One image's GEMM (32 x 121 x 144) spent as long packing as multiplying.
const CONV2_CHUNK: usize = 8;

/// `fast`'s second conv layer: 3x3 over `c_in` maps of `side_in`² (the first layer's pooled
/// output), bias, ReLU and 2x2 max-pool to `c_out` maps of `side_pooled`².
#[derive(Debug, Clone, Copy)]
struct Conv2 {
    c_in: usize,
    side_in: usize,
    c_out: usize,
}

impl Conv2 {
    /// Conv output side (13 → 11).
    fn side(&self) -> usize {
        self.side_in - 2
    }
    /// Pooled side (11 → 5; the odd last row and column are dropped).
    fn side_pooled(&self) -> usize {
        self.side() / 2
    }
    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    fn patch_rows(&self) -> usize {
        self.c_in * 9
    }
    fn input_len(&self) -> usize {
        self.c_in * self.side_in * self.side_in
    }
    fn pooled_len(&self) -> usize {
        self.c_out * self.side_pooled() * self.side_pooled()
    }
}

/// One tensor's values, Adam moments and (for all but fc1's weight) gradient.
struct Slot {
    value: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    grad: Vec<f32>,
}

/// Activations and their gradients for one batch, grown to the largest batch seen.
#[derive(Default)]
struct Scratch {
    input: Vec<f32>,
    /// The first layer's pooled output and winners (for `seed`, fc1's input).
    pooled1: Vec<f32>,
    winners1: Vec<u8>,
    /// `fast` only: the second layer's im2col patches, per chunk of [`CONV2_CHUNK`] images
    /// `[c_in * 9, images * 11 * 11]`, its pooled output (fc1's input) and winners, and the
    /// gradient flowing into the first layer.
    patches: Vec<f32>,
    /// `fast` only: the second layer's conv output and then its gradient, and the gradient of
    /// its patches, laid out per chunk like `patches`.
    conv2: Vec<f32>,
    dpatches: Vec<f32>,
    pooled2: Vec<f32>,
    winners2: Vec<u8>,
    dpooled1: Vec<f32>,
    pre: Vec<f32>,
    hidden: Vec<f32>,
    logits: Vec<f32>,
    dlogits: Vec<f32>,
    dhidden: Vec<f32>,
    /// The gradient of fc1's input.
    dfeatures: Vec<f32>,
    /// Partial products of fc1's forward, one per column block.
    fc1_partials: Vec<f32>,
}

/// Which kernels run fc1 (forward, backward and its Adam update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fc1Kernels {
    /// `gemm` calls per column block, then Adam over each block's gradient rows.
    Gemm,
    /// [`crate::fc1_avx512`]: the same sums without packing, Adam on each small gradient tile.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Fc1Kernels {
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if mnist_model::ops::unpacked::available() {
            return Self::Avx512;
        }
        Self::Gemm
    }
}

/// What one step measured: the summed loss and the number of correct predictions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub loss_sum: f64,
    pub correct: usize,
}

pub struct FusedStep {
    conv: ConvPoolDims,
    conv2: Option<Conv2>,
    hidden: usize,
    /// fc1's inputs: the last pooled map, flattened.
    features: usize,
    /// Columns per block of fc1's forward (and of its backward with [`Fc1Kernels::Gemm`]).
    block: usize,
    fc1_kernels: Fc1Kernels,
    slots: Vec<Slot>,
    config: OptimizerConfig,
    /// Adam steps taken, as the optimizer counts them.
    step: u64,
    /// `pixel (0..=255) → normalized f32`, exactly as `Normalization::apply` computes it.
    normalize: [f32; 256],
    scratch: Scratch,
}

impl FusedStep {
    /// The fused step for `network` and `optimizer`, or `None` where it does not apply: it covers
    /// `seed` and `fast` (any widths) with Adam or AdamW on the CPU.
    pub fn load(
        network: &Network,
        optimizer: &Optimizer,
        normalization: &Normalization,
    ) -> Result<Option<Self>> {
        let (conv1_channels, conv2, hidden) = match network.architecture {
            Architecture::Seed(c) => (c.conv_channels, None, c.hidden),
            Architecture::Fast(c) => {
                let conv2 = Conv2 {
                    c_in: c.conv1_channels,
                    side_in: FastConfig::POOLED1_SIDE,
                    c_out: c.conv2_channels,
                };
                (c.conv1_channels, Some(conv2), c.hidden)
            }
            Architecture::Convnet(_) => return Ok(None),
        };
        let config = *optimizer.config();
        if !matches!(config.kind, OptimizerKind::Adam | OptimizerKind::Adamw) {
            return Ok(None);
        }
        let vars: BTreeMap<String, Var> = network.trainable_vars().into_iter().collect();
        if vars.values().any(|v| !v.device().is_cpu()) {
            return Ok(None);
        }
        let conv = ConvPoolDims {
            c: 1,
            h: IMAGE_SIDE,
            w: IMAGE_SIDE,
            o: conv1_channels,
        };
        let (hp, wp) = conv.pooled();
        let (features, plane) = match conv2 {
            Some(c2) => (c2.pooled_len(), c2.side_pooled() * c2.side_pooled()),
            None => (conv1_channels * hp * wp, hp * wp),
        };
        let mut expected = vec![
            conv1_channels * 9,
            conv1_channels,
            hidden * features,
            hidden,
            NUM_CLASSES * hidden,
            NUM_CLASSES,
        ];
        if let Some(c2) = conv2 {
            expected.extend([c2.c_out * c2.patch_rows(), c2.c_out]);
        }
        let state: BTreeMap<String, Tensor> = optimizer.state().into_iter().collect();
        let host = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let mut slots = Vec::with_capacity(expected.len());
        for (i, (name, len)) in NAMES.iter().zip(expected).enumerate() {
            let missing = || TrainError::Config(format!("the network has no {name}"));
            let value = host(vars.get(*name).ok_or_else(missing)?)?;
            let m = host(state.get(&format!("exp_avg.{name}")).ok_or_else(missing)?)?;
            let v = host(
                state
                    .get(&format!("exp_avg_sq.{name}"))
                    .ok_or_else(missing)?,
            )?;
            if value.len() != len || m.len() != len || v.len() != len {
                return Err(TrainError::Config(format!(
                    "{name} has {} values, the fused step expects {len}",
                    value.len()
                )));
            }
            let grad = if i == FC1_W {
                Vec::new() // computed block by block, never whole
            } else {
                vec![0.0; len]
            };
            slots.push(Slot { value, m, v, grad });
        }
        let (scale, offset) = normalization.affine();
        // candle's affine on f32: `x * (scale as f32) + (offset as f32)`.
        let normalize = std::array::from_fn(|p| p as f32 * scale as f32 + offset as f32);
        Ok(Some(Self {
            conv,
            conv2,
            hidden,
            features,
            // Whole channels, at least ~160 columns, so each block's GEMMs are worth a task.
            block: plane * (160 / plane).max(1),
            fc1_kernels: Fc1Kernels::best(),
            slots,
            config,
            step: optimizer.step_count(),
            normalize,
            scratch: Scratch::default(),
        }))
    }

    /// Writes the weights into `network`'s variables and the moments and step count into
    /// `optimizer`, which then continue exactly where this left off.
    pub fn store(&self, network: &Network, optimizer: &mut Optimizer) -> Result<()> {
        let vars: BTreeMap<String, Var> = network.trainable_vars().into_iter().collect();
        let mut state = BTreeMap::new();
        for (name, slot) in NAMES.iter().zip(&self.slots) {
            let var = &vars[*name]; // `load` found every one
            let tensor = |data: &[f32]| Tensor::from_slice(data, var.dims(), &Device::Cpu);
            var.set(&tensor(&slot.value)?)?;
            state.insert(format!("exp_avg.{name}"), tensor(&slot.m)?);
            state.insert(format!("exp_avg_sq.{name}"), tensor(&slot.v)?);
        }
        optimizer
            .load_state(&state, self.step)
            .map_err(TrainError::Config)
    }

    /// One training step on the images `pixels[i * 784..][..784]` for `i` in `indices`, with
    /// their `labels`, at learning rate `lr`.
    pub fn train(
        &mut self,
        pixels: &[u8],
        labels: &[u32],
        indices: &[u32],
        lr: f64,
    ) -> Result<StepOutcome> {
        let b = indices.len();
        self.grow_scratch(b);
        let mut targets = Vec::with_capacity(b);
        for (dst, &i) in self.scratch.input.chunks_exact_mut(PIXELS).zip(indices) {
            let i = i as usize;
            let (Some(src), Some(&label)) =
                (pixels.get(i * PIXELS..(i + 1) * PIXELS), labels.get(i))
            else {
                return Err(TrainError::Config(format!(
                    "image index {i} is out of range"
                )));
            };
            if label as usize >= NUM_CLASSES {
                return Err(TrainError::Config(format!("label {label} is not a digit")));
            }
            for (d, &p) in dst.iter_mut().zip(src) {
                *d = self.normalize[p as usize];
            }
            targets.push(label as usize);
        }
        self.forward_convs(b);
        let outcome = self.forward_backward_dense(b, &targets);
        self.step += 1;
        let adam = adam_scalars(&self.config, lr, self.step);
        self.update_fc1_and_input_grad(b, adam);
        if self.conv2.is_some() {
            self.backward_conv2(b);
        }
        let s = &self.scratch;
        let first_len = b * self.conv.o * {
            let (hp, wp) = self.conv.pooled();
            hp * wp
        };
        let dpooled1 = match self.conv2 {
            Some(_) => &s.dpooled1[..first_len],
            None => &s.dfeatures[..first_len],
        };
        let [conv_w, conv_b, ..] = &mut self.slots[..] else {
            unreachable!("at least six slots")
        };
        conv3x3_relu_max_pool_weight_grad_slices(
            &self.conv,
            &s.input[..b * PIXELS],
            dpooled1,
            &s.winners1[..first_len],
            &mut conv_w.grad,
            &mut conv_b.grad,
        );
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if i != FC1_W {
                adam.update(&mut slot.value, &slot.grad, &mut slot.m, &mut slot.v);
            }
        }
        Ok(outcome)
    }

    fn grow_scratch(&mut self, b: usize) {
        let (hp, wp) = self.conv.pooled();
        let first_len = self.conv.o * hp * wp;
        let s = &mut self.scratch;
        grow(&mut s.input, b * PIXELS);
        grow(&mut s.pooled1, b * first_len);
        grow_bytes(&mut s.winners1, b * first_len);
        if let Some(c2) = self.conv2 {
            let area = c2.side() * c2.side();
            grow(&mut s.patches, b * c2.patch_rows() * area);
            grow(&mut s.conv2, b * c2.c_out * area);
            grow(&mut s.dpatches, b * c2.patch_rows() * area);
            grow(&mut s.pooled2, b * c2.pooled_len());
            grow_bytes(&mut s.winners2, b * c2.pooled_len());
            grow(&mut s.dpooled1, b * first_len);
        }
        grow(&mut s.dfeatures, b * self.features);
        for buf in [&mut s.pre, &mut s.hidden, &mut s.dhidden] {
            grow(buf, b * self.hidden);
        }
        grow(&mut s.logits, b * NUM_CLASSES);
        grow(&mut s.dlogits, b * NUM_CLASSES);
    }

    /// The conv layers' forward: the fused first layer, and for `fast` the second.
    fn forward_convs(&mut self, b: usize) {
        let (hp, wp) = self.conv.pooled();
        let first_len = b * self.conv.o * hp * wp;
        let s = &mut self.scratch;
        conv3x3_relu_max_pool_slices(
            &self.conv,
            &s.input[..b * PIXELS],
            &self.slots[CONV_W].value,
            &self.slots[CONV_B].value,
            &mut s.pooled1[..first_len],
            &mut s.winners1[..first_len],
        );
        let Some(c2) = self.conv2 else { return };
        let (rows, area) = (c2.patch_rows(), c2.side() * c2.side());
        let (weight, bias) = (&self.slots[CONV2_W].value, &self.slots[CONV2_B].value);
        let shape = (c2.c_in, c2.side_in, c2.side_in);
        s.patches[..b * rows * area]
            .par_chunks_mut(CONV2_CHUNK * rows * area)
            .zip(s.conv2[..b * c2.c_out * area].par_chunks_mut(CONV2_CHUNK * c2.c_out * area))
            .zip(s.pooled2[..b * c2.pooled_len()].par_chunks_mut(CONV2_CHUNK * c2.pooled_len()))
            .zip(s.winners2[..b * c2.pooled_len()].par_chunks_mut(CONV2_CHUNK * c2.pooled_len()))
            .zip(s.pooled1[..first_len].par_chunks(CONV2_CHUNK * c2.input_len()))
            .for_each(|((((patches, conv), pooled), winners), inputs)| {
                let images = inputs.len() / c2.input_len();
                let width = images * area;
                for (k, input) in inputs.chunks_exact(c2.input_len()).enumerate() {
                    im2col_image(input, shape, 3, &mut patches[k * area..], width);
                }
                // conv [c_out, images * area] = weight [c_out, rows] @ patches [rows, images * area].
                // SAFETY: the strides describe the slices' own row-major shapes; `conv` is this
                // task's chunk.
                unsafe {
                    matmul_rows(
                        (c2.c_out, width, rows),
                        (conv.as_mut_ptr(), width),
                        (weight.as_ptr(), rows, 1),
                        (patches.as_ptr(), width),
                    )
                };
                for (k, (pooled, winners)) in pooled
                    .chunks_exact_mut(c2.pooled_len())
                    .zip(winners.chunks_exact_mut(c2.pooled_len()))
                    .enumerate()
                {
                    relu_max_pool(c2, &conv[k * area..], width, bias, pooled, winners);
                }
            });
    }

    /// Forward from fc1's input through fc2, the loss and its gradient, and the backward down to
    /// fc1's output (`dhidden`), with fc2's and fc1's bias gradients.
    fn forward_backward_dense(&mut self, b: usize, targets: &[usize]) -> StepOutcome {
        let (f, h, c) = (self.features, self.hidden, NUM_CLASSES);
        let s = &mut self.scratch;
        let features = match self.conv2 {
            Some(_) => &s.pooled2[..b * f],
            None => &s.pooled1[..b * f],
        };
        let p = &self.slots;
        // pre = features @ fc1ᵀ + bias; hidden = relu(pre).
        match self.fc1_kernels {
            Fc1Kernels::Gemm => fc1_forward(
                (b, h, f),
                self.block,
                features,
                &p[FC1_W].value,
                &mut s.pre[..b * h],
            ),
            #[cfg(target_arch = "x86_64")]
            Fc1Kernels::Avx512 => crate::fc1_avx512::forward(
                (b, h, f),
                self.block,
                features,
                &p[FC1_W].value,
                &mut s.pre[..b * h],
                &mut s.fc1_partials,
            ),
        }
        for (pre, hid) in s.pre[..b * h]
            .chunks_exact_mut(h)
            .zip(s.hidden.chunks_exact_mut(h))
        {
            for ((x, y), &bias) in pre.iter_mut().zip(hid).zip(&p[FC1_B].value) {
                *x += bias;
                *y = x.max(0.0);
            }
        }
        // SAFETY (every `matmul` here): the strides given describe matrices that lie inside the
        // slices passed, and `dst` aliases neither input.
        unsafe {
            matmul(
                (b, c, h),
                (s.logits.as_mut_ptr(), c, 1),
                (s.hidden.as_ptr(), h, 1),
                (p[FC2_W].value.as_ptr(), 1, h),
                Parallelism::None,
            )
        };
        // Softmax cross-entropy, as candle's log_softmax + nll: mean over the batch.
        let mut outcome = StepOutcome {
            loss_sum: 0.0,
            correct: 0,
        };
        for ((logits, dlogits), &target) in s.logits[..b * c]
            .chunks_exact_mut(c)
            .zip(s.dlogits.chunks_exact_mut(c))
            .zip(targets)
        {
            for (l, &bias) in logits.iter_mut().zip(&p[FC2_B].value) {
                *l += bias;
            }
            let (mut best, mut max) = (0, logits[0]);
            for (k, &l) in logits.iter().enumerate() {
                if l > max {
                    (best, max) = (k, l);
                }
            }
            let sum_exp: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
            let log_sum = sum_exp.ln();
            outcome.loss_sum += (log_sum - (logits[target] - max)) as f64;
            outcome.correct += usize::from(best == target);
            for (k, (d, &l)) in dlogits.iter_mut().zip(logits.iter()).enumerate() {
                let softmax = (l - max - log_sum).exp();
                *d = (softmax - f32::from(k == target)) / b as f32;
            }
        }
        // fc2's gradients: dW2 [c, h] = dlogitsᵀ @ hidden, db2 = column sums.
        let p = &mut self.slots;
        unsafe {
            matmul(
                (c, h, b),
                (p[FC2_W].grad.as_mut_ptr(), h, 1),
                (s.dlogits.as_ptr(), 1, c),
                (s.hidden.as_ptr(), h, 1),
                Parallelism::None,
            )
        };
        column_sums(&s.dlogits[..b * c], &mut p[FC2_B].grad);
        // dhidden = (dlogits @ W2) where the ReLU was on (candle's: pre >= 0), db1 = its sums.
        unsafe {
            matmul(
                (b, h, c),
                (s.dhidden.as_mut_ptr(), h, 1),
                (s.dlogits.as_ptr(), c, 1),
                (p[FC2_W].value.as_ptr(), h, 1),
                Parallelism::None,
            )
        };
        for (d, &pre) in s.dhidden[..b * h].iter_mut().zip(&s.pre) {
            if pre < 0.0 {
                *d = 0.0;
            }
        }
        column_sums(&s.dhidden[..b * h], &mut p[FC1_B].grad);
        outcome
    }

    /// For each block of fc1's input columns, in parallel: the input gradient `dfeatures` (with
    /// the weights before this step), the block's weight gradient, and its Adam update.
    fn update_fc1_and_input_grad(&mut self, b: usize, adam: AdamScalars) {
        let (f, h, block) = (self.features, self.hidden, self.block);
        let s = &mut self.scratch;
        let features = match self.conv2 {
            Some(_) => &s.pooled2[..b * f],
            None => &s.pooled1[..b * f],
        };
        let fc1 = &mut self.slots[FC1_W];
        let (dh, dx) = (&s.dhidden[..b * h], &mut s.dfeatures[..b * f]);
        let (w, m, v) = (&mut fc1.value, &mut fc1.m, &mut fc1.v);
        match self.fc1_kernels {
            Fc1Kernels::Gemm => {
                fc1_backward_and_update((b, h, f), block, features, dh, w, m, v, dx, adam)
            }
            #[cfg(target_arch = "x86_64")]
            Fc1Kernels::Avx512 => {
                crate::fc1_avx512::backward_and_update((b, h, f), features, dh, w, m, v, dx, adam)
            }
        }
    }

    /// `fast`'s second conv layer backward: from `dfeatures` (its pooled output's gradient) to
    /// its weight and bias gradients and to `dpooled1`, the first layer's output gradient. Fixed
    /// chunks of images run in parallel; their partial sums are added in chunk order.
    fn backward_conv2(&mut self, b: usize) {
        let Some(c2) = self.conv2 else { return };
        let (rows, area) = (c2.patch_rows(), c2.side() * c2.side());
        let s = &mut self.scratch;
        let weight = &self.slots[CONV2_W].value;
        let shape = (c2.c_in, c2.side_in, c2.side_in);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = s.dpooled1[..b * c2.input_len()]
            .par_chunks_mut(CONV2_CHUNK * c2.input_len())
            .zip(s.conv2[..b * c2.c_out * area].par_chunks_mut(CONV2_CHUNK * c2.c_out * area))
            .zip(s.dpatches[..b * rows * area].par_chunks_mut(CONV2_CHUNK * rows * area))
            .enumerate()
            .map(|(chunk, ((dinputs, dconv), dpatches))| {
                let first = chunk * CONV2_CHUNK;
                let images = dinputs.len() / c2.input_len();
                let width = images * area;
                let mut dw = vec![0f32; c2.c_out * rows];
                let mut db = vec![0f32; c2.c_out];
                for k in 0..images {
                    let at = (first + k) * c2.pooled_len();
                    unpool(
                        c2,
                        &s.dfeatures[at..][..c2.pooled_len()],
                        &s.winners2[at..][..c2.pooled_len()],
                        &mut dconv[k * area..],
                        width,
                        &mut db,
                    );
                }
                let patches = &s.patches[first * rows * area..][..rows * width];
                // SAFETY: the strides describe the slices' own row-major shapes, and the
                // destinations are this task's buffers.
                unsafe {
                    // dW [c_out, rows] = dconv [c_out, width] @ patchesᵀ [width, rows].
                    matmul(
                        (c2.c_out, rows, width),
                        (dw.as_mut_ptr(), rows, 1),
                        (dconv.as_ptr(), width, 1),
                        (patches.as_ptr(), 1, width),
                        Parallelism::None,
                    );
                    // dpatches [rows, width] = weightᵀ [rows, c_out] @ dconv [c_out, width].
                    matmul_rows(
                        (rows, width, c2.c_out),
                        (dpatches.as_mut_ptr(), width),
                        (weight.as_ptr(), 1, rows),
                        (dconv.as_ptr(), width),
                    );
                }
                for (k, dinput) in dinputs.chunks_exact_mut(c2.input_len()).enumerate() {
                    dinput.fill(0.0);
                    col2im_image(&dpatches[k * area..], width, shape, 3, dinput);
                }
                (dw, db)
            })
            .collect();
        let (w_grad, b_grad) = {
            let (head, tail) = self.slots.split_at_mut(CONV2_B);
            (&mut head[CONV2_W].grad, &mut tail[0].grad)
        };
        w_grad.fill(0.0);
        b_grad.fill(0.0);
        for (dw, db) in &partials {
            w_grad.iter_mut().zip(dw).for_each(|(a, p)| *a += p);
            b_grad.iter_mut().zip(db).for_each(|(a, p)| *a += p);
        }
    }
}

/// Adds `bias` to one image's conv output (channel `ch`'s plane of side² at `conv[ch * stride..]`),
/// then 2x2 max-pool and ReLU into `pooled [c_out, side_pooled²]`, recording each window's winner
/// (0..4, row-major) or [`INACTIVE`] where the ReLU was off. Pooling first is the same function:
/// ReLU commutes with max and the bias is constant over a window.
fn relu_max_pool(
    c2: Conv2,
    conv: &[f32],
    stride: usize,
    bias: &[f32],
    pooled: &mut [f32],
    winners: &mut [u8],
) {
    let (side, ps) = (c2.side(), c2.side_pooled());
    for ch in 0..c2.c_out {
        let plane = &conv[ch * stride..][..side * side];
        for py in 0..ps {
            for px in 0..ps {
                let at = (2 * py) * side + 2 * px;
                let window = [
                    plane[at],
                    plane[at + 1],
                    plane[at + side],
                    plane[at + side + 1],
                ];
                let (mut best, mut max) = (0, window[0]);
                for (k, &v) in window.iter().enumerate().skip(1) {
                    if v > max {
                        (best, max) = (k, v);
                    }
                }
                let v = max + bias[ch];
                let out = ch * ps * ps + py * ps + px;
                (pooled[out], winners[out]) = if v > 0.0 {
                    (v, best as u8)
                } else {
                    (0.0, INACTIVE)
                };
            }
        }
    }
}

/// The backward of [`relu_max_pool`] for one image: each active window's gradient goes to its
/// winner in channel `ch`'s plane at `dconv[ch * stride..]` (zero elsewhere) and into the bias
/// gradient `db`.
fn unpool(
    c2: Conv2,
    dpooled: &[f32],
    winners: &[u8],
    dconv: &mut [f32],
    stride: usize,
    db: &mut [f32],
) {
    let (side, ps) = (c2.side(), c2.side_pooled());
    for ch in 0..c2.c_out {
        dconv[ch * stride..][..side * side].fill(0.0);
        for py in 0..ps {
            for px in 0..ps {
                let at = ch * ps * ps + py * ps + px;
                let code = winners[at];
                if code == INACTIVE {
                    continue;
                }
                let (dy, dx) = (code as usize >> 1, code as usize & 1);
                dconv[ch * stride + (2 * py + dy) * side + 2 * px + dx] = dpooled[at];
                db[ch] += dpooled[at];
            }
        }
    }
}

/// Winner code of a window whose ReLU was off (no gradient flows through it).
const INACTIVE: u8 = 4;

/// `pre [b, h] = features [b, f] @ weight [h, f]ᵀ`, split over blocks of the `f` input columns
/// (the same blocks as the backward), whose partial products are added in block order, so the
/// sum does not depend on the thread count. gemm's own split of this shape (32 x 128 outputs, a
/// 5,408-long sum) ran slower on 2 threads than on one.
fn fc1_forward(
    (b, h, f): (usize, usize, usize),
    block: usize,
    features: &[f32],
    weight: &[f32],
    pre: &mut [f32],
) {
    assert!(features.len() == b * f && weight.len() == h * f && pre.len() == b * h);
    let partials: Vec<Vec<f32>> = (0..f.div_ceil(block))
        .into_par_iter()
        .map(|index| {
            let first = index * block;
            let width = block.min(f - first);
            let mut partial = vec![0f32; b * h];
            // SAFETY: columns `first..first + width` of row-major `[b, f]` and `[h, f]` matrices
            // lie inside `features` and `weight` (asserted sizes); `partial` is `[b, h]`.
            unsafe {
                matmul(
                    (b, h, width),
                    (partial.as_mut_ptr(), h, 1),
                    (features.as_ptr().add(first), f, 1),
                    (weight.as_ptr().add(first), 1, f),
                    Parallelism::None,
                )
            };
            partial
        })
        .collect();
    pre.copy_from_slice(&partials[0]);
    for partial in &partials[1..] {
        pre.iter_mut().zip(partial).for_each(|(a, p)| *a += p);
    }
}

/// fc1's backward and Adam update through `gemm`, for each block of `block` input columns in
/// parallel: the input gradient `dx [b, f] = dh [b, h] @ w [h, f]` (with the weights before this
/// step), the block's weight gradient `dhᵀ @ x`, and its Adam update.
#[allow(clippy::too_many_arguments)]
fn fc1_backward_and_update(
    (b, h, f): (usize, usize, usize),
    block: usize,
    features: &[f32],
    dhidden: &[f32],
    w: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    dfeatures: &mut [f32],
    adam: AdamScalars,
) {
    assert!(features.len() == b * f && dhidden.len() == b * h && dfeatures.len() == b * f);
    assert!(w.len() == h * f && m.len() == h * f && v.len() == h * f);
    let weights = SharedMut(w.as_mut_ptr());
    let moments = (SharedMut(m.as_mut_ptr()), SharedMut(v.as_mut_ptr()));
    let dfeatures = SharedMut(dfeatures.as_mut_ptr());
    (0..f.div_ceil(block)).into_par_iter().for_each_init(
        || vec![0f32; h * block],
        |grad, index| {
            let first = index * block;
            let width = block.min(f - first);
            // SAFETY: each task owns columns `first..first + width` of the row-major `[h, f]`
            // weight and moments and of the `[b, f]` input gradient (asserted sizes), so no two
            // tasks touch the same element; the buffers outlive the parallel loop, and `grad` is
            // this task's own. Strides as in `forward_backward_dense`.
            unsafe {
                let w = weights.ptr().add(first);
                matmul(
                    (b, width, h),
                    (dfeatures.ptr().add(first), f, 1),
                    (dhidden.as_ptr(), h, 1),
                    (w, f, 1),
                    Parallelism::None,
                );
                matmul(
                    (h, width, b),
                    (grad.as_mut_ptr(), width, 1),
                    (dhidden.as_ptr(), 1, h),
                    (features.as_ptr().add(first), f, 1),
                    Parallelism::None,
                );
                for row in 0..h {
                    let at = row * f + first;
                    let span =
                        |p: SharedMut| std::slice::from_raw_parts_mut(p.ptr().add(at), width);
                    adam.update(
                        span(weights),
                        &grad[row * width..][..width],
                        span(moments.0),
                        span(moments.1),
                    );
                }
            }
        },
    );
}

/// A raw pointer handed to parallel tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used where each task writes a disjoint range (see the call site).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Grows `buf` to at least `len` elements (never shrinks: batches only vary at an epoch's end).
fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

fn grow_bytes(buf: &mut Vec<u8>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0);
    }
}

/// `sums[j] = Σ_i rows[i][j]` over row-major rows of `sums.len()` columns.
fn column_sums(rows: &[f32], sums: &mut [f32]) {
    sums.fill(0.0);
    for row in rows.chunks_exact(sums.len()) {
        for (s, &x) in sums.iter_mut().zip(row) {
            *s += x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mnist_data::batch::DeviceSplit;

    /// Pseudo-random pixels with MNIST's look: mostly paper, some ink.
    fn pixels(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n * PIXELS)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let r = (x >> 56) as u8;
                if r < 180 {
                    0
                } else {
                    r
                }
            })
            .collect()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    fn host(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// Several fused steps against the generic path (candle autograd over the custom ops, then
    /// the optimizer), for both architectures: the same losses, hits, weights and moments, to
    /// rounding.
    #[test]
    fn fused_steps_match_autograd_and_the_optimizer() {
        let device = Device::Cpu;
        let norm = Normalization::mnist_mean_std();
        let cases = [
            ("seed", OptimizerKind::Adam),
            ("seed", OptimizerKind::Adamw),
            ("fast", OptimizerKind::Adam),
            ("fast", OptimizerKind::Adamw),
        ];
        for (arch, kind) in cases {
            let n = 96;
            let images = pixels(n, 7);
            let labels: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
            let labels32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            let split = DeviceSplit::new(images.clone(), &labels, &device).unwrap();
            let config = OptimizerConfig::new(kind, 2e-3);
            let reference = Network::seeded(arch.parse().unwrap(), 3, &device).unwrap();
            let mut ref_opt = Optimizer::new(config, reference.trainable_vars()).unwrap();
            let fused_net = Network::seeded(arch.parse().unwrap(), 3, &device).unwrap();
            let mut fused_opt = Optimizer::new(config, fused_net.trainable_vars()).unwrap();
            let mut fused = FusedStep::load(&fused_net, &fused_opt, &norm)
                .unwrap()
                .unwrap();
            // Batches of 32, 32 and a short 17, in a shuffled order.
            let order: Vec<u32> = (0..n as u32).map(|i| (i * 37 + 5) % n as u32).collect();
            for (step, range) in [0..32, 32..64, 64..81].into_iter().enumerate() {
                let indices = &order[range];
                let batch = split
                    .gather(&Tensor::new(indices, &device).unwrap(), &norm)
                    .unwrap();
                let logits = reference.forward(&batch.images, true).unwrap();
                let loss = candle_nn::loss::cross_entropy(&logits, &batch.labels).unwrap();
                ref_opt.step(&loss.backward().unwrap()).unwrap();
                let hits: Vec<u32> = logits.argmax(1).unwrap().to_vec1().unwrap();
                let correct = hits
                    .iter()
                    .zip(indices)
                    .filter(|(h, &i)| **h == labels32[i as usize])
                    .count();
                let lr = ref_opt.lr();
                let outcome = fused.train(&images, &labels32, indices, lr).unwrap();
                let ref_loss = loss.to_scalar::<f32>().unwrap() as f64 * indices.len() as f64;
                assert!(
                    (outcome.loss_sum - ref_loss).abs() < 1e-5 * ref_loss.abs().max(1.0),
                    "{arch} {kind:?} step {step}: loss {} vs {ref_loss}",
                    outcome.loss_sum
                );
                assert_eq!(outcome.correct, correct, "{arch} {kind:?} step {step}");
                let vars: BTreeMap<_, _> = reference.trainable_vars().into_iter().collect();
                let state: BTreeMap<_, _> = ref_opt.state().into_iter().collect();
                for (name, slot) in NAMES.iter().zip(&fused.slots) {
                    let expected = host(vars[*name].as_tensor());
                    let moved = max_abs_diff(
                        &expected,
                        &host(
                            fused_net
                                .trainable_vars()
                                .iter()
                                .find(|(n, _)| n == name)
                                .unwrap()
                                .1
                                .as_tensor(),
                        ),
                    );
                    // Adam moves each weight by about lr per step; rounding differences in
                    // the gradients must change that by far less.
                    let diff = max_abs_diff(&slot.value, &expected);
                    assert!(
                        diff < 1e-5,
                        "{arch} {kind:?} step {step}: {name} differs by {diff} (moved {moved})"
                    );
                    for (moment, ours, floor) in [
                        ("exp_avg", &slot.m, 1e-6f32),
                        ("exp_avg_sq", &slot.v, 1e-12),
                    ] {
                        let theirs = host(&state[&format!("{moment}.{name}")]);
                        let scale = theirs.iter().fold(floor, |a, x| a.max(x.abs()));
                        let diff = max_abs_diff(ours, &theirs) / scale;
                        assert!(
                            diff < 1e-4,
                            "{arch} {kind:?} step {step}: {moment}.{name} off by {diff} relative"
                        );
                    }
                }
            }
            // Written back, the network and optimizer hold the fused state.
            fused.store(&fused_net, &mut fused_opt).unwrap();
            assert_eq!(fused_opt.step_count(), ref_opt.step_count());
            let ours: BTreeMap<_, _> = fused_net.trainable_vars().into_iter().collect();
            for (name, var) in reference.trainable_vars() {
                let diff = max_abs_diff(&host(ours[&name].as_tensor()), &host(var.as_tensor()));
                assert!(diff < 1e-5, "{name}: {diff}");
            }
        }
    }

    /// The AVX-512 fc1 kernels against the `gemm` ones, through whole steps: the same bits for
    /// the outcome, every weight and every moment. Shapes cover the shipped networks and odd
    /// ones whose hidden width, feature count and batch leave partial tiles and masked lanes.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_fc1_gives_the_bits_of_the_gemm_path() {
        use mnist_model::SeedConfig;
        if !mnist_model::ops::unpacked::available() {
            eprintln!("skipped: this CPU has no AVX-512F");
            return;
        }
        let device = Device::Cpu;
        let norm = Normalization::mnist_mean_std();
        let odd_seed = Architecture::Seed(SeedConfig {
            conv_channels: 3,
            hidden: 21,
        });
        let odd_fast = Architecture::Fast(FastConfig {
            conv1_channels: 4,
            conv2_channels: 7,
            hidden: 13,
        });
        // (architecture, optimizer, whether the paths agree to the bit at batches >= 16)
        let cases = [
            ("seed".parse().unwrap(), OptimizerKind::Adam, true),
            ("fast".parse().unwrap(), OptimizerKind::Adamw, true),
            (odd_seed, OptimizerKind::Adamw, true),
            (odd_fast, OptimizerKind::Adam, false),
        ];
        let n = 96;
        let images = pixels(n, 11);
        let labels: Vec<u32> = (0..n as u32).map(|i| i * 3 % 10).collect();
        for (arch, kind, bits) in cases {
            let config = OptimizerConfig::new(kind, 2e-3);
            let mut steps = [Fc1Kernels::Gemm, Fc1Kernels::Avx512].map(|kernels| {
                let net = Network::seeded(arch, 5, &device).unwrap();
                let opt = Optimizer::new(config, net.trainable_vars()).unwrap();
                let mut step = FusedStep::load(&net, &opt, &norm).unwrap().unwrap();
                step.fc1_kernels = kernels;
                step
            });
            let order: Vec<u32> = (0..n as u32).map(|i| (i * 41 + 3) % n as u32).collect();
            for range in [0..32, 32..64, 64..81, 0..96, 81..84] {
                let [gemm, avx512] = &mut steps;
                let indices = &order[range.clone()];
                let expected = gemm.train(&images, &labels, indices, 1e-3).unwrap();
                let got = avx512.train(&images, &labels, indices, 1e-3).unwrap();
                // For a batch of 3, or a hidden layer of 13, gemm switches to kernels for tiny
                // matrices that sum in another order: there the paths agree to rounding only
                // (so the batch of 3 comes last: later steps could not match to the bit).
                let exact = bits && indices.len() >= 16;
                if exact {
                    assert_eq!(got, expected, "{arch:?} batch {range:?}");
                } else {
                    let diff = (got.loss_sum - expected.loss_sum).abs();
                    assert!(diff < 1e-5, "{arch:?} batch {range:?}: loss off by {diff}");
                }
                for (name, (a, b)) in NAMES.iter().zip(gemm.slots.iter().zip(&avx512.slots)) {
                    for (what, x, y) in [
                        ("value", &a.value, &b.value),
                        ("m", &a.m, &b.m),
                        ("v", &a.v, &b.v),
                    ] {
                        if exact {
                            let same = x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
                            assert!(same, "{arch:?} batch {range:?}: {name} {what} differs");
                        } else {
                            let scale = x.iter().fold(1e-12f32, |s, p| s.max(p.abs()));
                            let diff = max_abs_diff(x, y) / scale;
                            assert!(
                                diff < 1e-4,
                                "{arch:?} batch {range:?}: {name} {what} off by {diff}"
                            );
                        }
                    }
                }
            }
        }
    }
}
