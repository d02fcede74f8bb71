//! Batched evaluation: accuracy, per-class accuracy and a confusion matrix. Never the whole test
//! set in one forward pass (the tutorial CNN's first activation for 10,000 images is 0.87 GB).

use mnist_cpu::loss::softmax_cross_entropy;
use mnist_data::batch::{batch_ranges, DeviceSplit};
use mnist_data::{Normalization, IMAGE_PIXELS, NUM_CLASSES};
use mnist_model::Network;
use serde::Serialize;

use crate::{Classifier, Result};

/// Results over a labelled split.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub n: usize,
    /// Fraction correct, 0-1.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
    /// Accuracy of each true digit, 0-1 (NaN-free: a digit absent from the split scores 0).
    pub per_class: [f64; NUM_CLASSES],
    /// `confusion[true][predicted]` counts.
    pub confusion: [[u64; NUM_CLASSES]; NUM_CLASSES],
}

impl EvalReport {
    /// Builds the report from labels and predictions; `loss_sum` is the summed cross-entropy.
    pub fn from_predictions(labels: &[u32], predictions: &[u32], loss_sum: f64) -> Self {
        let mut confusion = [[0u64; NUM_CLASSES]; NUM_CLASSES];
        for (&t, &p) in labels.iter().zip(predictions) {
            confusion[t as usize % NUM_CLASSES][p as usize % NUM_CLASSES] += 1;
        }
        let n = labels.len();
        let correct: u64 = (0..NUM_CLASSES).map(|c| confusion[c][c]).sum();
        let mut per_class = [0.0; NUM_CLASSES];
        for (c, acc) in per_class.iter_mut().enumerate() {
            let total: u64 = confusion[c].iter().sum();
            *acc = if total == 0 {
                0.0
            } else {
                confusion[c][c] as f64 / total as f64
            };
        }
        Self {
            n,
            accuracy: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
            per_class,
            confusion,
        }
    }
}

/// Evaluates `network` (in inference mode) on every image of `split`, `batch_size` at a time:
/// through the CPU backend on the CPU, through candle elsewhere. Results do not depend on the
/// batch size.
pub fn evaluate(
    network: &Network,
    split: &DeviceSplit,
    norm: &Normalization,
    batch_size: usize,
) -> Result<EvalReport> {
    let classifier = Classifier::new(network, *norm)?;
    let labels = split.labels().to_vec1::<u32>()?;
    let targets: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
    let mut predictions = Vec::with_capacity(labels.len());
    let mut loss_sum = 0f64;
    with_pixels(split, |pixels| -> Result<()> {
        for (start, len) in batch_ranges(split.len(), batch_size) {
            let logits =
                classifier.logits(&pixels[start * IMAGE_PIXELS..][..len * IMAGE_PIXELS])?;
            let score = softmax_cross_entropy(NUM_CLASSES, &logits, &targets[start..][..len], None);
            loss_sum += score.loss_sum;
            predictions.extend(logits.chunks_exact(NUM_CLASSES).map(first_max));
        }
        Ok(())
    })??;
    Ok(EvalReport::from_predictions(
        &labels,
        &predictions,
        loss_sum,
    ))
}

/// The predicted class: the first largest logit (candle's and PyTorch's argmax).
fn first_max(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (k, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = k;
        }
    }
    best as u32
}

/// Runs `f` on the split's pixels: in place on the CPU, downloaded once from other devices.
fn with_pixels<R>(split: &DeviceSplit, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    let mut f = Some(f);
    if let Some(r) = split.with_host_data(|pixels, _| (f.take().expect("called once"))(pixels)) {
        return Ok(r);
    }
    let pixels = split.images().flatten_all()?.to_vec1::<u8>()?;
    Ok((f.take().expect("not called yet"))(&pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_by_hand() {
        let labels = [0, 0, 1, 2, 2, 2];
        let preds = [0, 1, 1, 2, 2, 0];
        let r = EvalReport::from_predictions(&labels, &preds, 3.0);
        assert_eq!(r.n, 6);
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert!((r.loss - 0.5).abs() < 1e-12);
        assert_eq!(r.per_class[0], 0.5);
        assert_eq!(r.per_class[1], 1.0);
        assert!((r.per_class[2] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.per_class[5], 0.0);
        assert_eq!(r.confusion[0][1], 1);
        assert_eq!(r.confusion[2][0], 1);
        assert_eq!(r.confusion.iter().flatten().sum::<u64>(), 6);
    }
}
