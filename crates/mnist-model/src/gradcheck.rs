//! Test helpers: finite-difference gradient checks (the reference that does not trust candle)
//! and tensor comparison.

use candle_core::{Device, Tensor, Var};
use mnist_data::rng::{seeded_rng, RngPurpose};
use rand::Rng;

/// Standard-normal values from a seeded stream (Box-Muller), so a failing test can be rerun.
pub fn seeded_randn(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = seeded_rng(seed, RngPurpose::Init, 7);
    let n: usize = dims.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

/// Checks d/dx sum(f(x) * r) from autograd against central differences for every element of
/// `x`, with a fixed random weighting `r` so each output position matters differently.
pub fn assert_gradients_match(x: &Var, f: impl Fn(&Tensor) -> candle_core::Result<Tensor>) {
    let y = f(x.as_tensor()).unwrap();
    let r = seeded_randn(y.dims(), 99);
    let objective = |t: &Tensor| -> f64 {
        (f(t).unwrap() * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(candle_core::DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
    let analytic = grads
        .get(x.as_tensor())
        .expect("no gradient")
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let base = x
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let eps = 1e-2f32;
    for i in 0..base.len() {
        let shifted = |delta: f32| {
            let mut v = base.clone();
            v[i] += delta;
            Tensor::from_vec(v, x.dims(), x.device()).unwrap()
        };
        let numeric = (objective(&shifted(eps)) - objective(&shifted(-eps))) / (2.0 * eps as f64);
        let a = analytic[i] as f64;
        assert!(
            (a - numeric).abs() <= 2e-2 * (1.0 + numeric.abs()),
            "element {i}: autograd {a}, finite difference {numeric}"
        );
    }
}
