//! A network built from its layer list with candle-nn's layers, and the variables behind it.
//!
//! This is the model every device runs through candle (CUDA with cuDNN where enabled, Metal),
//! and the reference the CPU backend (`mnist-cpu`) is tested against. Each layer is built from a
//! [`VarBuilder`] under its PyTorch name, so the variables' names are the checkpoint's.

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::{BatchNorm, BatchNormConfig, Conv2d, Linear, VarBuilder, VarMap};

use crate::layers::{Layer, Placed};
use crate::{init, Architecture, Result};

/// Batch norm's variance epsilon and running-average momentum: PyTorch's defaults, so exported
/// running statistics mean the same thing on both sides.
pub const BATCH_NORM_EPS: f64 = 1e-5;
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// One built layer.
#[derive(Debug, Clone)]
enum Built {
    Conv(Conv2d),
    BatchNorm(BatchNorm),
    Relu,
    MaxPool2,
    Flatten,
    Dense(Linear),
}

/// The candle model of a layer list: its layers applied in order.
#[derive(Debug, Clone)]
pub struct Sequential {
    layers: Vec<Built>,
}

impl Sequential {
    pub fn new(placed: &[Placed], vb: VarBuilder) -> candle_core::Result<Self> {
        let layers = placed
            .iter()
            .map(|p| build(p, vb.clone()))
            .collect::<candle_core::Result<_>>()?;
        Ok(Self { layers })
    }
}

fn build(p: &Placed, vb: VarBuilder) -> candle_core::Result<Built> {
    let vb = match &p.name {
        Some(name) => vb.pp(name),
        None => vb,
    };
    Ok(match p.layer {
        Layer::Conv { out, kernel } => {
            let c = p.input.channels();
            let config = Default::default();
            Built::Conv(if p.bias {
                candle_nn::conv2d(c, out, kernel, config, vb)?
            } else {
                candle_nn::conv2d_no_bias(c, out, kernel, config, vb)?
            })
        }
        Layer::Dense { out } => {
            let n = p.input.len();
            Built::Dense(if p.bias {
                candle_nn::linear(n, out, vb)?
            } else {
                candle_nn::linear_no_bias(n, out, vb)?
            })
        }
        Layer::BatchNorm => {
            let config = BatchNormConfig {
                eps: BATCH_NORM_EPS,
                remove_mean: true,
                affine: true,
                momentum: BATCH_NORM_MOMENTUM,
            };
            Built::BatchNorm(candle_nn::batch_norm(p.input.channels(), config, vb)?)
        }
        Layer::Relu => Built::Relu,
        Layer::MaxPool2 => Built::MaxPool2,
        Layer::Flatten => Built::Flatten,
    })
}

impl ModuleT for Sequential {
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = xs.clone();
        for layer in &self.layers {
            x = match layer {
                Built::Conv(conv) => conv.forward(&x)?,
                Built::BatchNorm(bn) => bn.forward_t(&x, train)?,
                Built::Relu => relu(&x)?,
                Built::MaxPool2 => max_pool2(&x)?,
                Built::Flatten => x.flatten_from(1)?,
                Built::Dense(dense) => dense.forward(&x)?,
            };
        }
        Ok(x)
    }
}

/// ReLU with PyTorch's (and TensorFlow's) gradient: none where the input is exactly 0. Candle's
/// `relu` passes it there, which matters more than it sounds: under x/255 normalization a
/// zero-initialized conv layer sees exact zeros over all of the blank paper.
pub fn relu(xs: &Tensor) -> candle_core::Result<Tensor> {
    xs * xs.gt(0.0)?.to_dtype(xs.dtype())?
}

/// 2x2 max-pool with stride 2, an odd last row or column dropped, PyTorch's in value and
/// gradient: each window's gradient goes to its first maximum only. Built from argmax and a
/// one-hot mask because candle's own paths differ on ties, which blank paper makes common (a
/// window of equal values): `max`'s backward gives every tied position the whole gradient, and
/// candle 0.11's `max_pool2d` splits it and misroutes it for odd sizes.
pub fn max_pool2(xs: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (ho, wo) = (h / 2, w / 2);
    let windows = xs
        .narrow(2, 0, 2 * ho)?
        .narrow(3, 0, 2 * wo)?
        .reshape((b, c, ho, 2, wo, 2))?
        .permute((0, 1, 2, 4, 3, 5))?
        .reshape((b, c, ho, wo, 4))?;
    let first = windows.argmax_keepdim(4)?;
    let positions = Tensor::arange(0u32, 4, xs.device())?.reshape((1, 1, 1, 1, 4))?;
    let mask = first.broadcast_eq(&positions)?.to_dtype(xs.dtype())?;
    (windows * mask)?.sum(4)
}

/// A model plus the variables behind it. The `VarMap` is the single owner of the weights: the
/// optimizer updates its variables in place and checkpoints are written from it.
pub struct Network {
    pub architecture: Architecture,
    pub varmap: VarMap,
    pub model: Sequential,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("architecture", &self.architecture)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Builds `architecture` on `device` with weights drawn from `seed` (identical on every run
    /// and every device, since the values are drawn on the host).
    pub fn seeded(architecture: Architecture, seed: u64, device: &Device) -> Result<Self> {
        let network = Self::uninitialized(architecture, device)?;
        init::init_seeded(&network, seed)?;
        Ok(network)
    }

    /// Builds the variables with candle's (unseeded) initializers: only for loading.
    pub(crate) fn uninitialized(architecture: Architecture, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let model = Sequential::new(
            architecture.placed(),
            VarBuilder::from_varmap(&varmap, DType::F32, device),
        )?;
        Ok(Self {
            architecture,
            varmap,
            model,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.named_vars()
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu)
    }

    /// A copy of the model over detached weights, for inference. Results computed from
    /// variables carry the whole forward graph (every activation) until they are dropped; a
    /// frozen model's intermediates are freed as soon as the next layer has used them, which is
    /// what keeps batched evaluation small.
    pub fn frozen(&self) -> Result<Sequential> {
        let tensors = self
            .named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        Ok(Sequential::new(
            self.architecture.placed(),
            VarBuilder::from_tensors(tensors, DType::F32, &self.device()),
        )?)
    }

    /// Variables sorted by name: the order that optimizers, checkpoints and tests rely on.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let vars = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut named: Vec<(String, Var)> = vars
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named
    }

    /// The variables gradient descent updates: all but batch-norm running statistics.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let trainable: Vec<String> = self
            .architecture
            .params()
            .into_iter()
            .filter(|p| p.trainable)
            .map(|p| p.name)
            .collect();
        self.named_vars()
            .into_iter()
            .filter(|(name, _)| trainable.contains(name))
            .collect()
    }

    /// Trainable parameters, counted as Keras' `model.summary()` counts them.
    pub fn parameter_count(&self) -> usize {
        self.architecture.parameter_count()
    }

    pub fn forward(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.model.forward_t(xs, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_network_has_its_params_as_variables_and_gives_logits() {
        for (name, _) in crate::architecture::BUILT_IN {
            let arch: Architecture = name.parse().unwrap();
            let net = Network::seeded(arch.clone(), 0, &Device::Cpu).unwrap();
            let vars: Vec<(String, Vec<usize>)> = net
                .named_vars()
                .into_iter()
                .map(|(n, v)| (n, v.dims().to_vec()))
                .collect();
            let mut specs: Vec<(String, Vec<usize>)> = arch
                .params()
                .into_iter()
                .map(|p| (p.name, p.dims))
                .collect();
            specs.sort();
            assert_eq!(vars, specs, "{name}");
            let xs = Tensor::randn(0f32, 1., (3, 1, 28, 28), &Device::Cpu).unwrap();
            for train in [false, true] {
                assert_eq!(net.forward(&xs, train).unwrap().dims(), &[3, 10], "{name}");
            }
        }
    }

    #[test]
    fn same_seed_same_weights_different_seed_different_weights() {
        let flat = |seed| {
            let net = Network::seeded(Architecture::tutorial(), seed, &Device::Cpu).unwrap();
            net.named_vars()
                .into_iter()
                .map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(flat(1), flat(1));
        assert_ne!(flat(1), flat(2));
    }

    /// ReLU's gradient is zero at exactly zero, as in PyTorch.
    #[test]
    fn relu_passes_no_gradient_at_zero() {
        let x = Var::new(&[-1f32, 0.0, 2.0], &Device::Cpu).unwrap();
        let y = relu(x.as_tensor()).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [0.0, 0.0, 2.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, [0.0, 0.0, 1.0]);
    }

    /// Ties go to the first maximum, in value and gradient, as in PyTorch.
    #[test]
    fn max_pool2_routes_a_tied_window_to_its_first_maximum() {
        let x = Var::new(&[[[[1f32, 3.0], [3.0, 0.0]]]], &Device::Cpu).unwrap();
        let y = max_pool2(x.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [3.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(x.as_tensor()).unwrap().flatten_all().unwrap();
        assert_eq!(g.to_vec1::<f32>().unwrap(), [0.0, 1.0, 0.0, 0.0]);
    }

    /// The pooling's gradient goes to each window's maximum at full size, also for odd sides
    /// (the last row and column get none), checked against finite differences.
    #[test]
    fn max_pool2_gradients_pass_a_numerical_check() {
        let x = Var::from_tensor(&crate::gradcheck::seeded_randn(&[2, 3, 5, 7], 1)).unwrap();
        crate::gradcheck::assert_gradients_match(&x, max_pool2);
        let y = max_pool2(x.as_tensor()).unwrap();
        assert_eq!(y.dims(), &[2, 3, 2, 3]);
    }
}
