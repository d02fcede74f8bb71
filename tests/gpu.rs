//! Checks that need an NVIDIA GPU, run by hand on one (CI has none, so they are ignored there):
//! `cargo test --release --features cuda --test gpu -- --ignored`.
//!
//! The candle model (mnist-model's `Sequential`, built from the layer list) runs candle's CPU
//! kernels on one side and its CUDA kernels (cuDNN where enabled) on the other; the CPU backend
//! that trains on CPUs is checked against candle's CPU path in mnist-cpu's tests. Here the same
//! seeded network and batch must give the same logits, loss and gradients on both devices, for
//! the shipped networks and a list of one's own.

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
        let names = |v: &[(String, Vec<f32>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&cpu),
            names(&cuda),
            "{arch}: the two devices list other tensors"
        );
        for ((name, a), (_, b)) in cpu.iter().zip(&cuda) {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            println!("{arch} {name}: max |cpu - cuda| {diff:.3e} (scale {scale:.3e})");
            assert!(
                diff <= 2e-3 * scale,
                "{arch} {name}: CPU and CUDA differ by {diff} (largest value {scale})"
            );
        }
    }
}
