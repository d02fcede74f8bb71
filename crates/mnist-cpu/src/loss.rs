//! Softmax cross-entropy over logits `[b, classes]`, as candle's `log_softmax` + `nll`: the mean
//! over the batch, and its gradient `(softmax - onehot) / b`.

/// What one batch measured: the summed loss (not the mean) and the correct predictions.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BatchScore {
    pub loss_sum: f64,
    pub correct: usize,
}

/// The loss and hits of `logits` against `targets`, and `dlogits` (same shape as `logits`) when
/// given. The prediction is the first largest logit.
pub fn softmax_cross_entropy(
    classes: usize,
    logits: &[f32],
    targets: &[usize],
    mut dlogits: Option<&mut [f32]>,
) -> BatchScore {
    let b = targets.len();
    assert_eq!(
        logits.len(),
        b * classes,
        "loss: logits for {b} images expected"
    );
    let mut score = BatchScore::default();
    for (i, (row, &target)) in logits.chunks_exact(classes).zip(targets).enumerate() {
        let (mut best, mut max) = (0, row[0]);
        for (k, &l) in row.iter().enumerate() {
            if l > max {
                (best, max) = (k, l);
            }
        }
        let log_sum = row.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
        score.loss_sum += (log_sum - (row[target] - max)) as f64;
        score.correct += usize::from(best == target);
        if let Some(d) = dlogits.as_deref_mut() {
            for (k, (d, &l)) in d[i * classes..][..classes].iter_mut().zip(row).enumerate() {
                *d = ((l - max - log_sum).exp() - f32::from(k == target)) / b as f32;
            }
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_hits_and_gradient_by_hand() {
        // Row 0: logits (0, ln 3): softmax (1/4, 3/4), target 1 → loss ln(4/3), a hit.
        // Row 1: equal logits, target 0 → loss ln 2, a hit (the first maximum).
        let logits = [0.0, 3f32.ln(), 1.0, 1.0];
        let mut d = [0f32; 4];
        let s = softmax_cross_entropy(2, &logits, &[1, 0], Some(&mut d));
        assert!((s.loss_sum - ((4.0f64 / 3.0).ln() + 2f64.ln())).abs() < 1e-6);
        assert_eq!(s.correct, 2);
        let expected = [0.25 / 2.0, (0.75 - 1.0) / 2.0, (0.5 - 1.0) / 2.0, 0.5 / 2.0];
        for (a, e) in d.iter().zip(expected) {
            assert!((a - e).abs() < 1e-6, "{d:?}");
        }
    }
}
