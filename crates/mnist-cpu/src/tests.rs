//! The backend against candle's autograd (mnist-model's candle network of the same list): the
//! loss, the logits, every parameter gradient and batch norm's running averages, for lists that
//! put every kernel and fused pair at ordinary and odd shapes, at every SIMD level this machine
//! runs; and a step's results against itself on another number of threads.
//!
//! Gradients come out of a step with SGD at learning rate 0 (which keeps every gradient and
//! moves no weight); whole Adam steps against candle plus the optimizer are mnist-train's test.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use mnist_data::Normalization;
use mnist_model::{Architecture, Network};

use crate::testing::assert_close;
use crate::{CpuNetwork, CpuTrainer, Level, Rule, Workspace};

/// Lists that between them run every kernel: the shipped networks, and lists no code
/// special-cases with odd sizes (25 → pool 12, an even kernel, a plain pool and a plain ReLU, a
/// ReLU fused into an im2col and a Winograd conv, a dense layer first, batch norm after dense).
const LISTS: [&str; 6] = [
    "conv32x3,relu,pool2,flatten,dense128,relu,dense10",
    "conv16x3,relu,pool2,conv32x3,relu,pool2,flatten,dense128,relu,dense10",
    "conv32x3,bn,relu,conv32x3,bn,relu,pool2,conv64x3,bn,relu,conv64x3,bn,relu,pool2,flatten,dense256,bn,relu,dense10",
    "conv6x4,relu,pool2,conv5x3,bn,relu,pool2,conv7x2,flatten,dense13,relu,dense10",
    "conv3x5,pool2,relu,conv4x3,relu,conv8x3,relu,flatten,dense10",
    "flatten,dense32,bn,relu,dense10",
];

/// MNIST-like pixels (mostly paper, some ink) and labels, from a fixed seed.
fn batch(n: usize, seed: u64) -> (Vec<u8>, Vec<u32>) {
    let split = mnist_data::synthetic::speckled(n, seed);
    (
        split.images,
        split.labels.into_iter().map(u32::from).collect(),
    )
}

/// The backend's copy of a candle network's tensors.
fn cpu_copy(network: &Network, level: Level) -> CpuNetwork {
    let mut cpu = CpuNetwork::new(&network.architecture, level);
    for (name, var) in network.named_vars() {
        let values = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        cpu.set(&name, &values).unwrap();
    }
    cpu
}

struct Reference {
    loss: f32,
    grads: BTreeMap<String, Vec<f32>>,
    network: Network,
}

/// Candle's training-mode forward, loss and backward on the batch (updating its running
/// averages, as a training step does).
fn candle_step(
    list: &str,
    seed: u64,
    pixels: &[u8],
    labels: &[u32],
    norm: &Normalization,
) -> Reference {
    let arch = Architecture::from_text(list).unwrap();
    let network = Network::seeded(arch, seed, &Device::Cpu).unwrap();
    let b = labels.len();
    let xs = Tensor::from_slice(pixels, (b, 1, 28, 28), &Device::Cpu).unwrap();
    let xs = norm.apply(&xs).unwrap();
    let targets = Tensor::from_slice(labels, b, &Device::Cpu).unwrap();
    let logits = network.forward(&xs, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
    let store = loss.backward().unwrap();
    let grads = network
        .trainable_vars()
        .into_iter()
        .map(|(name, var)| {
            let g = store
                .get(var.as_tensor())
                .expect("a gradient for every parameter");
            (name, g.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        })
        .collect();
    Reference {
        loss: loss.to_scalar::<f32>().unwrap(),
        grads,
        network,
    }
}

fn host(network: &Network, name: &str) -> Vec<f32> {
    let (_, var) = network
        .named_vars()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap();
    var.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Loss, every gradient, the running averages after the step, and the inference logits
/// afterwards, against candle: within 1e-5 of the largest value compared (f32 sums in other
/// orders; the largest difference measured was 1.3e-6 of it).
#[test]
fn every_list_matches_candle_autograd_at_every_level() {
    // Under x/255 blank paper is exactly 0, so conv outputs there are exact zeros and exact ties:
    // the ReLU's and the pooling's rules at those points are tested too.
    for (list, norm) in LISTS.iter().flat_map(|l| {
        [
            (*l, Normalization::mnist_mean_std()),
            (*l, Normalization::Unit),
        ]
    }) {
        for b in [16, 7] {
            let (pixels, labels) = batch(b, b as u64);
            let reference = candle_step(list, 5, &pixels, &labels, &norm);
            let norm = &norm;
            for level in Level::available() {
                let what = |w: &str| format!("{list} b={b} {level}: {w}");
                let fresh =
                    Network::seeded(Architecture::from_text(list).unwrap(), 5, &Device::Cpu)
                        .unwrap();
                let cpu = cpu_copy(&fresh, level);
                let mut trainer = CpuTrainer::new(cpu, Rule::Sgd { momentum: 0.0 }, norm);
                let indices: Vec<u32> = (0..b as u32).collect();
                let score = trainer
                    .train_batch(&pixels, &labels, &indices, 0.0)
                    .unwrap();
                let loss = (score.loss_sum / b as f64) as f32;
                assert_close(&[loss], &[reference.loss], 1e-6, &what("loss"));
                for (name, expected) in &reference.grads {
                    let got = trainer.gradient(name).expect("SGD keeps every gradient");
                    assert_close(got, expected, 1e-5, &what(&format!("gradient of {name}")));
                }
                for (spec, values) in trainer.network().tensors() {
                    let expected = host(&reference.network, &spec.name);
                    assert_close(values, &expected, 1e-5, &what(&spec.name));
                }
                // Inference (running averages) from the state after the step.
                let net = trainer.network();
                let mut ws = Workspace::new();
                let input = ws.input(net.plan(), b);
                for (x, &p) in input.iter_mut().zip(&pixels) {
                    *x = norm.apply_pixel(p);
                }
                let logits = net.infer(&mut ws, b).to_vec();
                let xs = Tensor::from_slice(&pixels[..], (b, 1, 28, 28), &Device::Cpu).unwrap();
                let expected = reference
                    .network
                    .forward(&norm.apply(&xs).unwrap(), false)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                assert_close(&logits, &expected, 1e-5, &what("inference logits"));
                // The same with batch norm folded into the layers before it, as the classifier
                // runs it.
                let folded = net.folded();
                assert!(
                    folded
                        .plan()
                        .nodes
                        .iter()
                        .all(|n| !matches!(n.op, crate::plan::Op::BatchNorm { .. })),
                    "{}",
                    what("a batch norm was left unfolded")
                );
                let mut ws = Workspace::new();
                let input = ws.input(folded.plan(), b);
                for (x, &p) in input.iter_mut().zip(&pixels) {
                    *x = norm.apply_pixel(p);
                }
                let logits = folded.infer(&mut ws, b).to_vec();
                assert_close(&logits, &expected, 1e-5, &what("folded inference logits"));
            }
        }
    }
}

/// Inference keeps the conv kernels it prepares only while the weights stay as they are: after
/// a tensor is set, or a training step, the next inference uses the new weights.
#[test]
fn inference_follows_weights_changed_after_it() {
    let norm = Normalization::Unit;
    let (pixels, labels) = batch(8, 5);
    let list = LISTS[2];
    let arch = Architecture::from_text(list).unwrap();
    let logits = |net: &CpuNetwork| {
        let mut ws = Workspace::new();
        let input = ws.input(net.plan(), labels.len());
        for (x, &p) in input.iter_mut().zip(&pixels) {
            *x = norm.apply_pixel(p);
        }
        net.infer(&mut ws, labels.len()).to_vec()
    };
    let first = cpu_copy(
        &Network::seeded(arch.clone(), 1, &Device::Cpu).unwrap(),
        Level::Portable,
    );
    let second = cpu_copy(
        &Network::seeded(arch, 2, &Device::Cpu).unwrap(),
        Level::Portable,
    );
    let mut net = first.clone();
    assert_eq!(logits(&net), logits(&first));
    for (spec, values) in second.tensors() {
        net.set(&spec.name, values).unwrap();
    }
    assert_eq!(logits(&net), logits(&second), "inference after set");
    let mut trainer = CpuTrainer::new(net, Rule::Sgd { momentum: 0.0 }, &norm);
    let _ = logits(trainer.network());
    let indices: Vec<u32> = (0..labels.len() as u32).collect();
    trainer
        .train_batch(&pixels, &labels, &indices, 0.1)
        .unwrap();
    let stepped = trainer.network();
    let mut fresh = CpuNetwork::new(&Architecture::from_text(list).unwrap(), Level::Portable);
    for (spec, values) in stepped.tensors() {
        fresh.set(&spec.name, values).unwrap();
    }
    assert_ne!(
        logits(stepped),
        logits(&second),
        "the step moved the weights"
    );
    assert_eq!(
        logits(stepped),
        logits(&fresh),
        "inference after a training step"
    );
}

/// Three Adam steps give the same bits on one thread and on three, for every list.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let norm = Normalization::Unit;
    let (pixels, labels) = batch(40, 3);
    let run = |list: &str, threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let arch = Architecture::from_text(list).unwrap();
            let network = Network::seeded(arch, 1, &Device::Cpu).unwrap();
            let rule = Rule::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-7,
                weight_decay: 0.0,
            };
            let mut trainer = CpuTrainer::new(cpu_copy(&network, Level::detected()), rule, &norm);
            for (k, batch) in [
                (0..32u32).collect::<Vec<_>>(),
                (8..40).collect(),
                (3..12).collect(),
            ]
            .iter()
            .enumerate()
            {
                trainer
                    .train_batch(&pixels, &labels, batch, 1e-3 * (k + 1) as f64)
                    .unwrap();
            }
            trainer
                .network()
                .tensors()
                .flat_map(|(_, v)| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                .chain(
                    trainer
                        .optimizer_state()
                        .into_iter()
                        .flat_map(|(_, v)| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>()),
                )
                .collect::<Vec<u32>>()
        })
    };
    for list in LISTS {
        assert_eq!(run(list, 1), run(list, 3), "{list}");
    }
}

/// A batch with an index or label out of range is refused with a message, not a panic.
#[test]
fn bad_batches_are_errors() {
    let arch = Architecture::tutorial();
    let mut trainer = CpuTrainer::new(
        CpuNetwork::new(&arch, Level::Portable),
        Rule::Sgd { momentum: 0.0 },
        &Normalization::Unit,
    );
    let (pixels, mut labels) = batch(4, 1);
    let err = trainer
        .train_batch(&pixels, &labels, &[0, 9], 0.1)
        .unwrap_err();
    assert!(err.contains("index 9"), "{err}");
    labels[2] = 10;
    let err = trainer
        .train_batch(&pixels, &labels, &[2], 0.1)
        .unwrap_err();
    assert!(err.contains("label 10"), "{err}");
}

/// On an x86-64 Linux machine whose CPU lists AVX-512F (or AVX2 and FMA), detection finds it, so
/// the tests above really ran the wider kernels instead of quietly testing only the portable ones.
#[test]
fn every_level_the_cpu_has_runs_here() {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let flags: Vec<&str> = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default();
        let expected = if flags.contains(&"avx512f") {
            Level::Avx512
        } else if flags.contains(&"avx2") && flags.contains(&"fma") {
            Level::Avx2
        } else {
            Level::Portable
        };
        assert_eq!(Level::detected(), expected);
    }
    assert!(Level::available().contains(&Level::Portable));
}
