//! Optimizers with state we own, over candle tensors (the path on GPUs, and the reference the CPU
//! backend is tested against). candle-nn's AdamW keeps its moments private and defaults to
//! weight decay 0.01; here every moment is a named tensor that goes into the checkpoint, so
//! `--resume` continues bit for bit. The update rules' arithmetic is `mnist_cpu::optim`'s.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use mnist_cpu::{AdamScalars, Rule};

use crate::{Result, TrainError};

/// Which update rule. Adam follows Keras (the tutorial's optimizer: epsilon 1e-7 added to
/// `sqrt(v)` after bias correction of the step size); AdamW is PyTorch's decoupled weight decay on
/// top of it; SGD is PyTorch's, with optional momentum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adamw,
    Sgd,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW only).
    pub weight_decay: f64,
    /// Momentum (SGD only); 0 is plain gradient descent.
    pub momentum: f64,
}

impl OptimizerConfig {
    /// Keras' defaults for Adam, PyTorch's for AdamW's weight decay.
    pub fn new(kind: OptimizerKind, lr: f64) -> Self {
        Self {
            kind,
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.01,
            momentum: 0.0,
        }
    }

    /// The rule as the CPU backend applies it (weight decay only for AdamW).
    pub fn rule(&self) -> Rule {
        match self.kind {
            OptimizerKind::Adam | OptimizerKind::Adamw => Rule::Adam {
                beta1: self.beta1,
                beta2: self.beta2,
                eps: self.eps,
                weight_decay: match self.kind {
                    OptimizerKind::Adamw => self.weight_decay,
                    _ => 0.0,
                },
            },
            OptimizerKind::Sgd => Rule::Sgd {
                momentum: self.momentum,
            },
        }
    }

    fn slot_names(&self) -> &'static [&'static str] {
        self.rule().slot_names()
    }
}

pub struct Optimizer {
    config: OptimizerConfig,
    /// The learning rate in force (the config's, times the schedule).
    lr: f64,
    vars: Vec<(String, Var)>,
    /// `slots[i][k]`: state `config.slot_names()[k]` of `vars[i]`.
    slots: Vec<Vec<Tensor>>,
    step: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, vars: Vec<(String, Var)>) -> Result<Self> {
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(TrainError::Config(format!(
                "--lr must be a positive number, got {}",
                config.lr
            )));
        }
        let slots = vars
            .iter()
            .map(|(_, v)| config.slot_names().iter().map(|_| v.zeros_like()).collect())
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            config,
            lr: config.lr,
            vars,
            slots,
            step: 0,
        })
    }

    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// One update of every variable that received a gradient.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let adam = self.adam_scalars();
        for ((_, var), slots) in self.vars.iter().zip(self.slots.iter_mut()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            match c.kind {
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let (alpha, decay) = (adam.alpha as f64, adam.decay as f64);
                    let m = ((&slots[0] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
                    let v = ((&slots[1] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                    let update = (m.clone() / (v.sqrt()? + c.eps)?)?;
                    let p = match c.kind {
                        OptimizerKind::Adamw => (var.as_tensor() * decay)?,
                        _ => var.as_tensor().clone(),
                    };
                    var.set(&(p - (update * alpha)?)?)?;
                    slots[0] = m;
                    slots[1] = v;
                }
                OptimizerKind::Sgd if c.momentum > 0.0 => {
                    let buf = ((&slots[0] * c.momentum)? + g)?;
                    var.set(&(var.as_tensor() - (&buf * self.lr)?)?)?;
                    slots[0] = buf;
                }
                OptimizerKind::Sgd => var.set(&(var.as_tensor() - (g * self.lr)?)?)?,
            }
        }
        Ok(())
    }

    /// Adam(W)'s scalars for the step being taken (`self.step`, 1-based).
    fn adam_scalars(&self) -> AdamScalars {
        let c = &self.config;
        let decay = match c.kind {
            OptimizerKind::Adamw => c.weight_decay,
            _ => 0.0,
        };
        AdamScalars::for_step(c.beta1, c.beta2, c.eps, decay, self.lr, self.step)
    }

    /// The state as named tensors (`exp_avg.fc1.weight`, …), for a checkpoint. They share storage
    /// with the live state, which the next step updates in place: write them out before it.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let names = self.config.slot_names();
        let mut out = Vec::new();
        for ((var_name, _), slots) in self.vars.iter().zip(&self.slots) {
            for (slot, tensor) in names.iter().zip(slots) {
                out.push((format!("{slot}.{var_name}"), tensor.clone()));
            }
        }
        out
    }

    /// Restores what [`Optimizer::state`] produced, checking every name and shape.
    pub fn load_state(
        &mut self,
        state: &BTreeMap<String, Tensor>,
        step: u64,
    ) -> std::result::Result<(), String> {
        let names = self.config.slot_names();
        for ((var_name, var), slots) in self.vars.iter().zip(self.slots.iter_mut()) {
            for (slot, tensor) in names.iter().zip(slots.iter_mut()) {
                let key = format!("{slot}.{var_name}");
                let saved = state
                    .get(&key)
                    .ok_or_else(|| format!("optimizer state {key:?} is missing"))?;
                if saved.dims() != var.dims() {
                    return Err(format!(
                        "optimizer state {key:?} has shape {:?}, expected {:?}",
                        saved.dims(),
                        var.dims()
                    ));
                }
                // A copy, never a view of the checkpoint's tensors.
                *tensor = saved
                    .to_dtype(candle_core::DType::F32)
                    .and_then(|t| t.to_device(var.device()))
                    .and_then(|t| t.copy())
                    .map_err(|e| format!("optimizer state {key:?}: {e}"))?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Minimizes (w - 3)^2 and returns w after `steps`.
    fn run(config: OptimizerConfig, steps: usize) -> f32 {
        let w = Var::new(&[0f32], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(config, vec![("w".into(), w.clone())]).unwrap();
        for _ in 0..steps {
            let loss = (w.as_tensor() - 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
        }
        w.as_tensor().to_vec1::<f32>().unwrap()[0]
    }

    #[test]
    fn first_adam_step_moves_by_lr_in_the_gradients_direction() {
        // Bias-corrected first step: update = lr * g / (|g| + eps') = lr * sign(g) (almost).
        let w = run(OptimizerConfig::new(OptimizerKind::Adam, 0.1), 1);
        assert!((w - 0.1).abs() < 1e-5, "{w}");
    }

    #[test]
    fn sgd_step_is_lr_times_gradient() {
        // d/dw (w-3)^2 at 0 = -6, so w = 0 + 0.01 * 6.
        let w = run(OptimizerConfig::new(OptimizerKind::Sgd, 0.01), 1);
        assert!((w - 0.06).abs() < 1e-6, "{w}");
    }

    #[test]
    fn sgd_with_momentum_accumulates_velocity() {
        let mut c = OptimizerConfig::new(OptimizerKind::Sgd, 0.01);
        c.momentum = 0.9;
        // step 1: buf = -6, w = 0.06; step 2: g = 2*(0.06-3) = -5.88, buf = -5.4 - 5.88 = -11.28.
        let w = run(c, 2);
        assert!((w - (0.06 + 0.1128)).abs() < 1e-5, "{w}");
    }

    #[test]
    fn every_optimizer_converges_on_a_quadratic() {
        for kind in [
            OptimizerKind::Adam,
            OptimizerKind::Adamw,
            OptimizerKind::Sgd,
        ] {
            let mut c = OptimizerConfig::new(kind, 0.1);
            c.weight_decay = 0.0;
            let w = run(c, 300);
            assert!((w - 3.0).abs() < 1e-2, "{kind:?} ended at {w}");
        }
    }

    #[test]
    fn adamw_is_adam_plus_decoupled_decay() {
        let one_step = |kind| {
            let w = Var::new(&[1f32], &Device::Cpu).unwrap();
            let mut opt = Optimizer::new(
                OptimizerConfig::new(kind, 0.1),
                vec![("w".into(), w.clone())],
            )
            .unwrap();
            let loss = w.as_tensor().sum_all().unwrap();
            opt.step(&loss.backward().unwrap()).unwrap();
            w.as_tensor().to_vec1::<f32>().unwrap()[0]
        };
        // PyTorch AdamW: p *= 1 - lr * weight_decay before the Adam update (1.0 * 0.1 * 0.01).
        let diff = one_step(OptimizerKind::Adam) - one_step(OptimizerKind::Adamw);
        assert!((diff - 0.001).abs() < 1e-6, "{diff}");
    }

    #[test]
    fn state_round_trips_and_checks_shapes() {
        let w = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let mut opt = Optimizer::new(
            OptimizerConfig::new(OptimizerKind::Adam, 0.1),
            vec![("w".into(), w.clone())],
        )
        .unwrap();
        let loss = w.as_tensor().sqr().unwrap().sum_all().unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let state: BTreeMap<String, Tensor> = opt.state().into_iter().collect();
        assert_eq!(
            state.keys().collect::<Vec<_>>(),
            ["exp_avg.w", "exp_avg_sq.w"]
        );
        let mut fresh = Optimizer::new(*opt.config(), vec![("w".into(), w.clone())]).unwrap();
        fresh.load_state(&state, opt.step_count()).unwrap();
        assert_eq!(fresh.step_count(), 1);
        for ((_, a), (_, b)) in fresh.state().iter().zip(opt.state().iter()) {
            assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        }
        let mut wrong = state.clone();
        wrong.insert(
            "exp_avg.w".into(),
            Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        assert!(fresh.load_state(&wrong, 1).unwrap_err().contains("shape"));
        wrong.remove("exp_avg.w");
        assert!(fresh.load_state(&wrong, 1).unwrap_err().contains("missing"));
    }

    #[test]
    fn non_positive_learning_rate_is_refused() {
        let w = Var::new(&[1f32], &Device::Cpu).unwrap();
        assert!(Optimizer::new(
            OptimizerConfig::new(OptimizerKind::Adam, 0.0),
            vec![("w".into(), w)]
        )
        .is_err());
    }
}
