//! A training step on the CPU: gather and normalize the batch, the forward pass, the loss, the
//! backward pass node by node from the last to the first that learns, and the update of every
//! parameter, over buffers allocated once. Read top to bottom, [`CpuTrainer::train_batch`] is
//! the whole algorithm.

use mnist_data::{IMAGE_PIXELS, NUM_CLASSES};
use rayon::prelude::*;

use crate::layers::dense::Sink;
use crate::layers::{batchnorm, conv, dense, first_conv, pool, relu};
use crate::loss::{softmax_cross_entropy, BatchScore};
use crate::network::{forward, normalize_table, CpuNetwork, Workspace};
use crate::optim::{sgd_update, Rule};
use crate::plan::Op;
use crate::AdamScalars;

/// Elements per parallel task of the optimizer's pass.
const UPDATE_CHUNK: usize = 1 << 14;

/// A network, its optimizer's state and the step's buffers.
pub struct CpuTrainer {
    net: CpuNetwork,
    rule: Rule,
    /// Per tensor: its gradient (empty for running statistics, and for dense weights that Adam
    /// updates inside their backward).
    grads: Vec<Vec<f32>>,
    /// Per tensor: the rule's state slots ([`Rule::slot_names`]), empty for running statistics.
    slots: Vec<Vec<Vec<f32>>>,
    /// Updates taken.
    step: u64,
    normalize: [f32; 256],
    ws: Workspace,
    targets: Vec<usize>,
}

impl CpuTrainer {
    /// Training `net` with `rule`, its state zero, on pixels normalized by `normalization`.
    pub fn new(net: CpuNetwork, rule: Rule, normalization: &mnist_data::Normalization) -> Self {
        let specs = &net.plan().specs;
        let fused = fused_weights(&net, rule);
        let grads = specs
            .iter()
            .zip(&fused)
            .map(|(s, &fused)| match s.trainable && !fused {
                true => vec![0.0; s.len()],
                false => Vec::new(),
            })
            .collect();
        let slots = specs
            .iter()
            .map(|s| match s.trainable {
                true => vec![vec![0.0; s.len()]; rule.slot_names().len()],
                false => Vec::new(),
            })
            .collect();
        Self {
            net,
            rule,
            grads,
            slots,
            step: 0,
            normalize: normalize_table(normalization),
            ws: Workspace::new(),
            targets: Vec::new(),
        }
    }

    pub fn network(&self) -> &CpuNetwork {
        &self.net
    }

    pub fn network_mut(&mut self) -> &mut CpuNetwork {
        &mut self.net
    }

    /// Updates taken so far (the step Adam's bias correction counts).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The gradient of tensor `name` from the last step: `None` for running statistics and for
    /// dense weights that Adam updates inside their backward (with SGD every one is kept). For
    /// tests and diagnostics.
    pub fn gradient(&self, name: &str) -> Option<&[f32]> {
        let i = self.net.plan().specs.iter().position(|s| s.name == name)?;
        Some(&self.grads[i])
            .filter(|g| !g.is_empty())
            .map(Vec::as_slice)
    }

    /// The optimizer's state as named values (`exp_avg.fc1.weight`, …: PyTorch's slot names).
    pub fn optimizer_state(&self) -> Vec<(String, &[f32])> {
        let names = self.rule.slot_names();
        let mut out = Vec::new();
        for (spec, slots) in self.net.plan().specs.iter().zip(&self.slots) {
            for (slot, values) in names.iter().zip(slots) {
                out.push((format!("{slot}.{}", spec.name), values.as_slice()));
            }
        }
        out
    }

    /// Restores [`CpuTrainer::optimizer_state`] (every slot must be given) and the step count.
    pub fn load_optimizer_state(
        &mut self,
        state: &dyn Fn(&str) -> Option<Vec<f32>>,
        step: u64,
    ) -> Result<(), String> {
        let names = self.rule.slot_names();
        for (spec, slots) in self.net.plan().specs.iter().zip(&mut self.slots) {
            for (slot, values) in names.iter().zip(slots.iter_mut()) {
                let key = format!("{slot}.{}", spec.name);
                let saved =
                    state(&key).ok_or_else(|| format!("optimizer state {key:?} is missing"))?;
                if saved.len() != values.len() {
                    return Err(format!(
                        "optimizer state {key:?} holds {} values, expected {}",
                        saved.len(),
                        values.len()
                    ));
                }
                values.copy_from_slice(&saved);
            }
        }
        self.step = step;
        Ok(())
    }

    /// One update on the images `pixels[i * 784..][..784]` for `i` in `indices`, with their
    /// `labels`, at learning rate `lr`. Returns the batch's summed loss and hits.
    pub fn train_batch(
        &mut self,
        pixels: &[u8],
        labels: &[u32],
        indices: &[u32],
        lr: f64,
    ) -> Result<BatchScore, String> {
        let b = indices.len();
        if b == 0 {
            return Err("an empty batch".into());
        }
        let level = self.net.level();
        let Self {
            net,
            rule,
            grads,
            slots,
            step,
            normalize,
            ws,
            targets,
        } = self;

        // The batch, normalized: [b, 1, 28, 28].
        targets.clear();
        let input = ws.input(net.plan(), b);
        for (dst, &i) in input.chunks_exact_mut(IMAGE_PIXELS).zip(indices.iter()) {
            let i = i as usize;
            let (Some(src), Some(&label)) = (
                pixels.get(i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS),
                labels.get(i),
            ) else {
                return Err(format!("image index {i} is out of range"));
            };
            if label as usize >= NUM_CLASSES {
                return Err(format!("label {label} is not a digit"));
            }
            for (d, &p) in dst.iter_mut().zip(src) {
                *d = normalize[p as usize];
            }
            targets.push(label as usize);
        }

        let (plan, tensors) = net.parts_mut();
        forward(level, plan, tensors, None, ws, b, true);
        for (i, node) in plan.nodes.iter().enumerate() {
            if let Op::BatchNorm { dims, .. } = node.op {
                let (mean, var) = two_mut(tensors, node.params[2], node.params[3]);
                batchnorm::update_running(&dims, &ws.saved[i], b, mean, var);
            }
        }

        // The loss, and its gradient [b, 10] into the first gradient buffer.
        let score = {
            let Workspace { acts, grads: g, .. } = &mut *ws;
            let logits = &acts[plan.nodes.len()][..b * NUM_CLASSES];
            softmax_cross_entropy(
                NUM_CLASSES,
                logits,
                targets,
                Some(&mut g[0][..b * NUM_CLASSES]),
            )
        };

        *step += 1;
        let adam = match *rule {
            Rule::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => Some(AdamScalars::for_step(
                beta1,
                beta2,
                eps,
                weight_decay,
                lr,
                *step,
            )),
            Rule::Sgd { .. } => None,
        };

        // The backward, from the last node to the first that learns.
        let first = plan.first_learning_node();
        let Workspace {
            acts,
            winners,
            saved,
            grads: gbufs,
            conv_partials,
            ..
        } = &mut *ws;
        let [mut dy_buf, mut dx_buf] = std::mem::take(gbufs);
        for i in (first..plan.nodes.len()).rev() {
            let node = &plan.nodes[i];
            #[cfg(feature = "profile")]
            let _timer = crate::profile::Timer::new(format!("backward {i:2} {}", node.op.name()));
            let x = &acts[i][..b * node.in_len];
            if let Op::Conv { relu: true, .. } = node.op {
                // The fused ReLU's backward: its output is positive exactly where its input was.
                relu::mask(
                    &acts[i + 1][..b * node.out_len],
                    &mut dy_buf[..b * node.out_len],
                );
            }
            let dy = &dy_buf[..b * node.out_len];
            let dx = (i > first).then(|| &mut dx_buf[..b * node.in_len]);
            match node.op {
                Op::FirstConvReluPool(d) => {
                    let (dw, db) = two_mut(grads, node.params[0], node.params[1]);
                    let win = &winners[i][..b * node.out_len];
                    first_conv::weight_grad(level, &d, x, dy, win, dw, db);
                }
                Op::Conv { dims: d, .. } => {
                    let (dw, db) = match node.bias {
                        true => {
                            let (dw, db) = two_mut(grads, node.params[0], node.params[1]);
                            (dw, Some(db))
                        }
                        false => (grads[node.params[0]].as_mut_slice(), None),
                    };
                    let w = &tensors[node.params[0]];
                    conv::backward(level, &d, x, dy, w, dw, db, dx, conv_partials);
                }
                Op::BatchNorm { dims, relu } => {
                    let (dgamma, dbeta) = two_mut(grads, node.params[0], node.params[1]);
                    let (gamma, y) = (&tensors[node.params[0]], &acts[i + 1][..b * node.out_len]);
                    batchnorm::backward(
                        level, &dims, relu, gamma, &saved[i], x, y, dy, dgamma, dbeta, dx,
                    );
                }
                Op::Relu => {
                    if let Some(dx) = dx {
                        relu::backward(x, dy, dx);
                    }
                }
                Op::Pool { dims, .. } => {
                    if let Some(dx) = dx {
                        pool::backward(&dims, dy, &winners[i][..b * node.out_len], dx);
                    }
                }
                Op::Dense(d) => {
                    let wi = node.params[0];
                    let (dw, db) = match node.bias {
                        true => {
                            let (dw, db) = two_mut(grads, wi, node.params[1]);
                            (dw, Some(db))
                        }
                        false => (grads[wi].as_mut_slice(), None),
                    };
                    let sink = match adam {
                        Some(scalars) => {
                            let [m, v] = &mut slots[wi][..] else {
                                unreachable!("Adam keeps two slots")
                            };
                            Sink::Adam { m, v, scalars }
                        }
                        None => Sink::Grad(dw),
                    };
                    dense::backward(level, &d, x, dy, &mut tensors[wi], db, dx, sink);
                }
            }
            if i > first {
                std::mem::swap(&mut dy_buf, &mut dx_buf);
            }
        }
        *gbufs = [dy_buf, dx_buf];

        // Every parameter not updated in its backward.
        #[cfg(feature = "profile")]
        let _timer = crate::profile::Timer::new("update".into());
        for (k, g) in grads.iter().enumerate() {
            if g.is_empty() {
                continue;
            }
            let p = &mut tensors[k];
            match (*rule, adam) {
                (Rule::Adam { .. }, Some(scalars)) => {
                    let [m, v] = &mut slots[k][..] else {
                        unreachable!("Adam keeps two slots")
                    };
                    p.par_chunks_mut(UPDATE_CHUNK)
                        .zip(g.par_chunks(UPDATE_CHUNK))
                        .zip(
                            m.par_chunks_mut(UPDATE_CHUNK)
                                .zip(v.par_chunks_mut(UPDATE_CHUNK)),
                        )
                        .for_each(|((p, g), (m, v))| scalars.update(level, p, g, m, v));
                }
                (Rule::Sgd { momentum }, _) => {
                    let buf = slots[k]
                        .first_mut()
                        .map_or(&mut [][..], |b| b.as_mut_slice());
                    sgd_update(p, g, buf, lr as f32, momentum as f32);
                }
                (Rule::Adam { .. }, None) => unreachable!("Adam has scalars"),
            }
        }
        Ok(score)
    }
}

/// Which tensors are dense weights that Adam updates inside their backward (all of them, with
/// Adam: their gradient is used while in cache and never stored).
fn fused_weights(net: &CpuNetwork, rule: Rule) -> Vec<bool> {
    let mut fused = vec![false; net.plan().specs.len()];
    if matches!(rule, Rule::Adam { .. }) {
        for node in &net.plan().nodes {
            if let Op::Dense(_) = node.op {
                fused[node.params[0]] = true;
            }
        }
    }
    fused
}

/// Two distinct elements of `v`, both mutable.
fn two_mut(v: &mut [Vec<f32>], i: usize, j: usize) -> (&mut [f32], &mut [f32]) {
    assert_ne!(i, j);
    if i < j {
        let (a, b) = v.split_at_mut(j);
        (&mut a[i], &mut b[0])
    } else {
        let (a, b) = v.split_at_mut(i);
        (&mut b[0], &mut a[j])
    }
}
