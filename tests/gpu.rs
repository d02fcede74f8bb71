//! Checks that need an NVIDIA GPU, run by hand on one (CI has none, so they are ignored there):
//! `cargo test --release --features cuda --test gpu -- --ignored`.
//!
//! The candle model (mnist-model's `Sequential`, built from the layer list) runs candle's CPU
//! kernels on one side and its CUDA kernels (cuDNN where enabled) on the other; the CPU backend
//! that trains on CPUs is checked against candle's CPU path in mnist-cpu's tests. Here the same
//! seeded network and batch must give the same logits, loss and gradients on both devices, for
//! the shipped networks and a list of one's own.
//!
//! Tolerance: 1e-5 of each tensor's largest value (or 1e-5 where that is below 1). On an H100 the
//! largest differences were 3e-7 for tutorial and 6e-6 for convnet (conv1's weight gradient, whose
//! largest value is 2.4); fast was not measured there. It compiles in CI with `--features cuda`
//! (scripts/cuda-check.sh) but runs only on a GPU machine.

use candle_core::{DType, Device, Tensor};
use mnist_model::{Architecture, Network};

/// A fixed batch: 16 images of smooth stroke-like patterns (values 0-1) and labels 0-9.
fn batch(device: &Device) -> (Tensor, Tensor) {
    let n = 16;
    let pixels: Vec<f32> = (0..n * 28 * 28)
        .map(|i| {
            let (img, y, x) = (i / 784, (i % 784) / 28, i % 28);
            let v = ((x as f32 * 0.37 + y as f32 * 0.23 + img as f32).sin() + 1.0) / 2.0;
            if (x + y + img) % 5 == 0 {
                0.0
            } else {
                v
            }
        })
        .collect();
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    (
        Tensor::from_vec(pixels, (n, 1, 28, 28), device).unwrap(),
        Tensor::from_vec(labels, n, device).unwrap(),
    )
}

/// Logits, loss and every trainable variable's gradient, as host vectors by name.
fn step(arch: &str, device: &Device) -> Vec<(String, Vec<f32>)> {
    let arch = Architecture::from_text(arch).unwrap();
    let net = Network::seeded(arch.clone(), 7, device).unwrap();
    let (xs, ys) = batch(device);
    let logits = net.forward(&xs, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &ys).unwrap();
    let grads = loss.backward().unwrap();
    let host = |t: &Tensor| {
        t.to_dtype(DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let mut out = vec![
        ("logits".to_string(), host(&logits)),
        ("loss".to_string(), host(&loss.reshape(1).unwrap())),
    ];
    for (name, var) in net.trainable_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{arch}: no gradient for {name}"));
        out.push((name, host(g)));
    }
    out
}

#[test]
#[ignore = "needs an NVIDIA GPU: cargo test --release --features cuda --test gpu -- --ignored"]
fn cuda_logits_loss_and_gradients_match_the_cpu() {
    let gpu = Device::new_cuda(0)
        .expect("no CUDA device (build with --features cuda, run on a GPU machine)");
    let lists = mnist_model::BUILT_IN
        .map(|(_, list)| list)
        .into_iter()
        .chain([
            "conv8x4,bn,relu,pool2,conv12x3,relu,conv6x2,pool2,flatten,dense32,bn,relu,dense10",
        ]);
    for arch in lists {
        let (cpu, cuda) = (step(arch, &Device::Cpu), step(arch, &gpu));
        let names =
            |list: &[(String, Vec<f32>)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&cpu),
            names(&cuda),
            "{arch}: the two devices list different tensors"
        );
        for ((name, a), (_, b)) in cpu.iter().zip(&cuda) {
            assert_eq!(a.len(), b.len(), "{arch} {name}: sizes differ");
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1.0);
            // A NaN on either side counts as the largest difference.
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| {
                let d = (x - y).abs();
                if d.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(d)
                }
            });
            println!("{arch} {name}: max |cpu - cuda| {diff:.3e} (scale {scale:.3e})");
            assert!(
                diff <= 1e-5 * scale,
                "{arch} {name}: CPU and CUDA differ by {diff} (largest value {scale})"
            );
        }
    }
}
