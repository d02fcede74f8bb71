//! Seeded initialization. Candle's CPU initializers draw from an unseeded thread RNG (and
//! `Device::Cpu.set_seed` is an error), so reproducible runs fill every variable from our own
//! ChaCha stream instead: Keras' defaults, as the tutorial uses them (Glorot-uniform kernels,
//! zero biases, batch norm at identity).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use mnist_data::rng::{seeded_rng, RngPurpose};
use rand::Rng;

use crate::Result;

/// Glorot/Xavier uniform bound for a weight of this PyTorch-layout shape: conv (out, in, kh, kw)
/// or linear (out, in).
pub fn glorot_bound(dims: &[usize]) -> f64 {
    let receptive: usize = dims.iter().skip(2).product();
    let fan_out = dims[0] * receptive;
    let fan_in = dims.get(1).copied().unwrap_or(1) * receptive;
    (6.0 / (fan_in + fan_out) as f64).sqrt()
}

/// Overwrites every variable of `varmap` with seeded values, in name order so the result does not
/// depend on hash-map iteration. Which init applies is read off the PyTorch-style name.
pub(crate) fn init_seeded(varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = seeded_rng(seed, RngPurpose::Init, 0);
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("var map poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("running_var") {
            vec![1.0; count]
        } else if name.ends_with("running_mean") || name.ends_with(".bias") {
            vec![0.0; count]
        } else if dims.len() == 1 {
            vec![1.0; count] // batch-norm scale
        } else {
            let bound = glorot_bound(&dims) as f32;
            (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        };
        let tensor = Tensor::from_vec(values, dims, &Device::Cpu)?
            .to_dtype(DType::F32)?
            .to_device(var.device())?;
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
