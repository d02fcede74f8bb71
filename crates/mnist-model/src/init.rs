//! Seeded initialization. Candle's CPU initializers draw from an unseeded thread RNG (and
//! `Device::Cpu.set_seed` is an error), so reproducible runs fill every variable from our own
//! ChaCha stream instead: Keras' defaults, as the tutorial uses them (Glorot-uniform kernels,
//! zero biases, batch norm at identity).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use mnist_data::rng::{seeded_rng, RngPurpose};
use rand::Rng;

use crate::layers::Init;
use crate::{Network, Result};

/// Glorot/Xavier uniform bound for a weight of this PyTorch-layout shape: conv (out, in, kh, kw)
/// or linear (out, in).
pub fn glorot_bound(dims: &[usize]) -> f64 {
    let receptive: usize = dims.iter().skip(2).product();
    let fan_out = dims[0] * receptive;
    let fan_in = dims.get(1).copied().unwrap_or(1) * receptive;
    (6.0 / (fan_in + fan_out) as f64).sqrt()
}

/// Overwrites every variable of `network` with seeded values as its layer list says (Glorot
/// for weights, zeros for biases and running means, ones for batch-norm scales and running
/// variances), in name order so the stream does not depend on hash-map iteration.
pub(crate) fn init_seeded(network: &Network, seed: u64) -> Result<()> {
    let mut rng = seeded_rng(seed, RngPurpose::Init, 0);
    let mut specs = network.architecture.params();
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    let vars: BTreeMap<String, Var> = network.named_vars().into_iter().collect();
    for spec in specs {
        let var = vars
            .get(&spec.name)
            .ok_or_else(|| candle_core::Error::Msg(format!("no variable {}", spec.name)))?;
        let count = spec.len();
        let values: Vec<f32> = match spec.init {
            Init::Zeros => vec![0.0; count],
            Init::Ones => vec![1.0; count],
            Init::GlorotUniform => {
                let bound = glorot_bound(&spec.dims) as f32;
                (0..count)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect()
            }
        };
        let tensor = Tensor::from_vec(values, spec.dims, &Device::Cpu)?.to_device(var.device())?;
        var.set(&tensor)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_bound_matches_keras_formula() {
        // Keras: limit = sqrt(6 / (fan_in + fan_out)); conv fan = channels * kh * kw.
        assert!((glorot_bound(&[32, 1, 3, 3]) - (6.0f64 / (9.0 + 288.0)).sqrt()).abs() < 1e-12);
        assert!((glorot_bound(&[128, 5408]) - (6.0f64 / (5408.0 + 128.0)).sqrt()).abs() < 1e-12);
    }
}
