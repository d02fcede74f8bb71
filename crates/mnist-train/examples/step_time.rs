//! Times training steps of each architecture on random data, without loading MNIST:
//! `cargo run --release -p mnist-train --example step_time -- [steps] [batch]`.
//! Prints the median milliseconds per step (forward, backward, optimizer) and the implied
//! seconds per 60,000-image epoch.

use std::time::Instant;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{DType, Device, Tensor};
use mnist_model::{Architecture, Network};
use mnist_train::{Optimizer, OptimizerConfig, OptimizerKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);
    let device = Device::Cpu;
    for name in Architecture::NAMES {
        let arch: Architecture = name.parse()?;
        let net = Network::seeded(arch, 0, &device)?;
        let mut opt = Optimizer::new(
            OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
            net.trainable_vars(),
        )?;
        let xs = Tensor::randn(0f32, 1., (batch, 1, 28, 28), &device)?;
        let ys = Tensor::arange(0u32, batch as u32, &device)?
            .affine(1.0, 0.0)?
            .to_dtype(DType::U32)?;
        let ys = (ys.to_dtype(DType::F32)? / 10.0)?
            .floor()?
            .to_dtype(DType::U32)?; // any labels < 10
        let ys = ys.clamp(0u32, 9u32)?;
        // [forward, backward, optimizer, total] milliseconds per step.
        let mut times: Vec<[f64; 4]> = Vec::new();
        for _ in 0..steps + 2 {
            let t0 = Instant::now();
            let loss = candle_nn::loss::cross_entropy(&net.forward(&xs, true)?, &ys)?;
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let t2 = Instant::now();
            opt.step(&grads)?;
            let t3 = Instant::now();
            let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
            times.push([ms(t0, t1), ms(t1, t2), ms(t2, t3), ms(t0, t3)]);
        }
        times.drain(..2); // warm-up
        let median = |i: usize| {
            let mut v: Vec<f64> = times.iter().map(|t| t[i]).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!(
            "{name:8} batch {batch:4}: {:8.2} ms/step (forward {:.2}, backward {:.2}, optimizer {:.2}), {:6.1} s/epoch, {} threads",
            median(3),
            median(0),
            median(1),
            median(2),
            median(3) * (60_000f64 / batch as f64).ceil() / 1e3,
            candle_core::utils::get_num_threads()
        );
    }
    Ok(())
}
