//! Times the CPU backend's training step on random MNIST-like data, without loading MNIST:
//! `cargo run --release -p mnist-cpu --example step_time -- [steps] [batch] [LIST|NAME ...]`.
//!
//! For each network (a shipped name or a layer list; default: the three shipped ones) it prints
//! the median milliseconds per step (forward, backward, Adam), the implied seconds per
//! 60,000-image epoch and the GFLOP/s of the arithmetic (the layer list's count), then the time of
//! inference over batches of 128 with batch norm folded (`mnist eval` also splits each batch
//! into parts of 32 that run side by side, which this does not), and with `--features profile`
//! the time of each node. Run it on a quiet machine; `RAYON_NUM_THREADS`
//! sets the threads.

use std::time::Instant;

use mnist_cpu::{normalize_table, CpuNetwork, CpuTrainer, Level, Rule, Workspace};
use mnist_data::{Normalization, IMAGE_PIXELS};
use mnist_model::Architecture;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let steps: usize = args
        .next()
        .map_or(Ok(200), |s| s.parse())
        .map_err(|e| format!("steps: {e}"))?;
    let batch: usize = args
        .next()
        .map_or(Ok(32), |s| s.parse())
        .map_err(|e| format!("batch: {e}"))?;
    let mut lists: Vec<String> = args.collect();
    if lists.is_empty() {
        lists = ["tutorial", "fast", "convnet"].map(String::from).to_vec();
    }
    let level = Level::from_env()?;
    println!(
        "{steps} steps of batch {batch}, {} threads, {level}",
        rayon::current_num_threads()
    );
    let n = 4096;
    let split = mnist_data::synthetic::speckled(n, 1);
    let pixels = split.images;
    let labels: Vec<u32> = split.labels.into_iter().map(u32::from).collect();
    for list in &lists {
        let arch = Architecture::built_in(list)
            .map_or_else(|| Architecture::from_text(list).map_err(|e| e.0), Ok)?;
        // Keras' initialization, as `mnist train` draws it.
        let seeded = mnist_model::Network::seeded(arch.clone(), 1, &candle_core::Device::Cpu)
            .map_err(|e| e.to_string())?;
        let mut net = CpuNetwork::new(&arch, level);
        for (name, var) in seeded.named_vars() {
            let values = var.flatten_all().and_then(|t| t.to_vec1::<f32>());
            net.set(&name, &values.map_err(|e| e.to_string())?)?;
        }
        let rule = Rule::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.0,
        };
        let mut trainer = CpuTrainer::new(net, rule, &Normalization::mnist_mean_std());
        let mut times = Vec::with_capacity(steps);
        let mut cpu_start = 0.0;
        for step in 0..steps + 10 {
            if step == 10 {
                cpu_start = cpu_seconds();
            }
            let first = (step * batch) % (n - batch);
            let indices: Vec<u32> = (first as u32..(first + batch) as u32).collect();
            let started = Instant::now();
            trainer.train_batch(&pixels, &labels, &indices, 1e-3)?;
            if step >= 10 {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        let cpu = (cpu_seconds() - cpu_start) / steps as f64;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let flops = arch.training_flops() as f64 * batch as f64;
        println!(
            "{:>10}: {:7.3} ms/step  (CPU {:7.3} ms)  {:6.2} s/epoch  {:6.1} GFLOP/s  ({})",
            arch.name(),
            median * 1e3,
            cpu * 1e3,
            median * 60_000.0 / batch as f64,
            flops / median / 1e9,
            arch.layers_text()
        );
        #[cfg(feature = "profile")]
        print!("{}", mnist_cpu::profile::report());

        // Inference: batch norm folded, batches of 128.
        let infer = trainer.network().folded();
        let mut ws = Workspace::new();
        let table = normalize_table(&Normalization::mnist_mean_std());
        let ib = 128;
        let mut times = Vec::new();
        for round in 0..steps.div_ceil(10) + 2 {
            let first = (round * ib) % (n - ib);
            let started = Instant::now();
            let input = ws.input(infer.plan(), ib);
            for (x, &p) in input.iter_mut().zip(&pixels[first * IMAGE_PIXELS..]) {
                *x = table[p as usize];
            }
            std::hint::black_box(infer.infer(&mut ws, ib));
            if round >= 2 {
                times.push(started.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!(
            "{:>10}  inference: {:6.3} s per 10,000 images (batches of {ib})  {:6.1} GFLOP/s",
            "",
            median * 10_000.0 / ib as f64,
            arch.forward_flops() as f64 * ib as f64 / median / 1e9
        );
        #[cfg(feature = "profile")]
        print!("{}", mnist_cpu::profile::report());
    }
    Ok(())
}

/// CPU time of the whole process (all threads), which a busy machine inflates less than wall
/// time: for comparing changes while something else runs.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
