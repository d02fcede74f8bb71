//! Times training steps on random data, without loading MNIST:
//! `cargo run --release -p mnist-train --example step_time -- [steps] [batch] [row]`.
//!
//! Rows: each architecture as the project builds it, plus `seed/candle`, the same tutorial
//! network written with candle's built-in `conv2d` and `max_pool2d` (the reference the custom
//! CPU ops replace). Prints median milliseconds per step (forward, backward, Adam) and the
//! implied seconds per 60,000-image epoch. Run it on a quiet machine.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mnist_model::{Architecture, Network};
use mnist_train::{Optimizer, OptimizerConfig, OptimizerKind};

// The same allocator as the `mnist` binary, so the numbers match what it does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Forward = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor>>;
type NamedVars = Vec<(String, candle_core::Var)>;

/// The tutorial network from candle's built-in layers.
fn candle_builtin_seed(device: &Device) -> candle_core::Result<(Forward, NamedVars)> {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let conv1 = candle_nn::conv2d(1, 32, 3, Default::default(), vb.pp("conv1"))?;
    let fc1 = candle_nn::linear(5408, 128, vb.pp("fc1"))?;
    let fc2 = candle_nn::linear(128, 10, vb.pp("fc2"))?;
    let forward: Forward = Box::new(move |xs| {
        xs.apply(&conv1)?
            .relu()?
            .max_pool2d(2)?
            .flatten_from(1)?
            .apply(&fc1)?
            .relu()?
            .apply(&fc2)
    });
    let vars = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    Ok((forward, vars))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Threads as the `mnist` binary sets them up (crates/cli/runtime.rs): candle's own pool off,
    // the work on a rayon worker.
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    rayon::scope(|_| run().map_err(|e| e.to_string())).map_err(Into::into)
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let batch: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);
    // Optional: time only the rows with this name (for profiling one of them).
    let only: Option<String> = args.next();
    let device = Device::Cpu;
    let xs = Tensor::randn(0f32, 1., (batch, 1, 28, 28), &device)?;
    let ys = Tensor::new(
        (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
        &device,
    )?;

    let mut rows: Vec<(String, Forward, NamedVars)> = Vec::new();
    for name in Architecture::NAMES {
        let net = Network::seeded(name.parse()?, 0, &device)?;
        let vars = net.trainable_vars();
        rows.push((
            name.to_string(),
            Box::new(move |x| net.forward(x, true)),
            vars,
        ));
    }
    let (forward, vars) = candle_builtin_seed(&device)?;
    rows.push(("seed/candle".into(), forward, vars));

    for (name, forward, vars) in rows {
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam, 1e-3), vars)?;
        // [forward, backward, optimizer, total] milliseconds per step.
        let mut times: Vec<[f64; 4]> = Vec::new();
        for _ in 0..steps + 2 {
            let t0 = Instant::now();
            let loss = candle_nn::loss::cross_entropy(&forward(&xs)?, &ys)?;
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
            "{name:12} batch {batch:4}: {:8.2} ms/step (forward {:.2}, backward {:.2}, optimizer {:.2}), {:6.1} s/epoch, {} threads",
            median(3),
            median(0),
            median(1),
            median(2),
            median(3) * (60_000f64 / batch as f64).ceil() / 1e3,
            candle_core::utils::get_num_threads()
        );
    }
    for arch in ["seed", "fast"] {
        let name = format!("{arch}/fused");
        if only.as_deref().is_none_or(|o| o == name) {
            time_fused_step(arch, &name, steps, batch)?;
        }
    }
    Ok(())
}

/// The `seed/fused` and `fast/fused` rows: the whole step as `mnist_train::FusedStep` (what
/// `mnist train` runs on the CPU for these architectures), on random pixels.
fn time_fused_step(
    arch: &str,
    name: &str,
    steps: usize,
    batch: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let net = Network::seeded(arch.parse()?, 0, &device)?;
    let opt = Optimizer::new(
        OptimizerConfig::new(OptimizerKind::Adam, 1e-3),
        net.trainable_vars(),
    )?;
    let norm = mnist_data::Normalization::Unit;
    let mut step = mnist_train::FusedStep::load(&net, &opt, &norm)?.ok_or("not fusable")?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let pixels: Vec<u8> = (0..batch * 784)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 56) as u8
        })
        .collect();
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 10).collect();
    let indices: Vec<u32> = (0..batch as u32).collect();
    let mut times = Vec::new();
    for _ in 0..steps + 2 {
        let t0 = Instant::now();
        step.train(&pixels, &labels, &indices, 1e-3)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    times.drain(..2);
    // An epoch adds up the mean, which on a shared VM sits well above the median (a long tail).
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    times.sort_by(|a, b| a.total_cmp(b));
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!(
        "{name:12} batch {batch:4}: {median:8.2} ms/step (forward, backward and Adam fused; mean {mean:.2}, p90 {p90:.2}), {:6.1} s/epoch, {} threads",
        median * (60_000f64 / batch as f64).ceil() / 1e3,
        rayon::current_num_threads()
    );
    Ok(())
}
