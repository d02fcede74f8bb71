//! The update rules over host slices: Adam (Keras' form, the tutorial's optimizer), AdamW
//! (PyTorch's decoupled weight decay on top of it) and SGD with optional momentum.
//!
//! Adam's bias correction is folded into one step size, `alpha = lr * sqrt(1 - beta2^t) /
//! (1 - beta1^t)`, and epsilon is added to `sqrt(v)` afterwards, as Keras does. Candle's path
//! (mnist-train's optimizer over tensors) computes the same scalars through
//! [`AdamScalars::for_step`], so both give the same update to rounding.
use crate::Level;

/// An update rule and its constants.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Adam; with a `weight_decay` above zero, AdamW.
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
    },
    /// `buf = momentum * buf + g; p -= lr * buf` (plain gradient descent when momentum is 0).
    Sgd { momentum: f64 },
}

impl Rule {
    /// The per-parameter state slots the rule keeps, by their PyTorch names.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match *self {
            Rule::Adam { .. } => &["exp_avg", "exp_avg_sq"],
            Rule::Sgd { momentum } if momentum > 0.0 => &["momentum_buffer"],
            Rule::Sgd { .. } => &[],
        }
    }
}

/// One Adam(W) step's scalars in f32, and the update of one element: the optimizer pass and the
/// dense layers' fused backward-and-update both go through [`AdamScalars::update`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamScalars {
    pub beta1: f32,
    /// `1 - beta1`, rounded from f64: `1 - 0.999f32` in f32 is off by 1.3e-5 relative.
    pub rest1: f32,
    pub beta2: f32,
    pub rest2: f32,
    /// Step size after Keras' bias correction.
    pub alpha: f32,
    pub eps: f32,
    /// `1 - lr * weight_decay` for AdamW, 1 for Adam.
    pub decay: f32,
}

impl AdamScalars {
    /// The scalars of step `step` (1-based) at learning rate `lr`, with Keras' bias correction
    /// `alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)`; AdamW's decay is `1 - lr * wd`.
    pub fn for_step(
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        lr: f64,
        step: u64,
    ) -> Self {
        let t = step.min(i32::MAX as u64) as i32;
        let alpha = lr * (1.0 - beta2.powi(t)).sqrt() / (1.0 - beta1.powi(t));
        Self::new(beta1, beta2, alpha, eps, 1.0 - lr * weight_decay)
    }

    pub fn new(beta1: f64, beta2: f64, alpha: f64, eps: f64, decay: f64) -> Self {
        Self {
            beta1: beta1 as f32,
            rest1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            rest2: (1.0 - beta2) as f32,
            alpha: alpha as f32,
            eps: eps as f32,
            decay: decay as f32,
        }
    }

    #[inline(always)]
    fn first_moment(&self, m: f32, g: f32) -> f32 {
        flush_subnormal(self.beta1 * m + self.rest1 * g)
    }

    #[inline(always)]
    fn second_moment(&self, v: f32, g: f32) -> f32 {
        flush_subnormal(self.beta2 * v + self.rest2 * (g * g))
    }

    #[inline(always)]
    fn param(&self, p: f32, m: f32, v: f32) -> f32 {
        p * self.decay - self.alpha * m / (v.sqrt() + self.eps)
    }

    /// Updates `p`, `m` and `v` in place from `g`, in one pass: 16 lanes wide at AVX-512, 8 at
    /// AVX2 (the default x86-64 target compiles this loop 4 wide, and it was 15% of a step). Every
    /// level gives the same bits: only mul, add, div and sqrt, never a fused multiply-add.
    #[inline]
    pub fn update(&self, level: Level, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        match level {
            // SAFETY: the caller's level is available on this CPU.
            Level::Avx512 => return unsafe { self.update_avx512(p, g, m, v) },
            Level::Avx2 => return unsafe { self.update_avx2(p, g, m, v) },
            Level::Portable => {}
        }
        let _ = level;
        self.update_portable(p, g, m, v)
    }

    /// [`Self::update_portable`] compiled for AVX-512; the same bits, as for AVX2 below.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn update_avx512(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.update_portable(p, g, m, v)
    }

    /// [`Self::update_portable`] compiled for AVX2. Only mul, add, div and sqrt, never fused
    /// multiply-add, so it gives the same bits as the portable loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn update_avx2(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        self.update_portable(p, g, m, v)
    }

    #[inline(always)]
    fn update_portable(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let mi = self.first_moment(m[i], g[i]);
            let vi = self.second_moment(v[i], g[i]);
            m[i] = mi;
            v[i] = vi;
            p[i] = self.param(p[i], mi, vi);
        }
    }
}

/// Zero for a subnormal `x` (below 1.2e-38), `x` otherwise. A weight whose gradient stays zero
/// (a dead unit) has its first moment shrink by 0.9 per step, into subnormals after about 800
/// steps; x86 computes on subnormals in microcode, tens of times slower, and that slowed a whole
/// training step by 75% from the second epoch on. The flushed values are far below anything that
/// can move a weight (the update divides by `sqrt(v) + 1e-7`).
#[inline(always)]
fn flush_subnormal(x: f32) -> f32 {
    // A select on the bit pattern, which vectorizes (a branch would not).
    let keep = x.abs() >= f32::MIN_POSITIVE;
    f32::from_bits(x.to_bits() & (keep as u32).wrapping_neg())
}

/// One SGD step in place: `buf = momentum * buf + g; p -= lr * buf`, or `p -= lr * g` without
/// momentum (`buf` empty), as PyTorch's SGD.
pub fn sgd_update(p: &mut [f32], g: &[f32], buf: &mut [f32], lr: f32, momentum: f32) {
    if buf.is_empty() {
        for (p, &g) in p.iter_mut().zip(g) {
            *p -= lr * g;
        }
        return;
    }
    for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
        *b = momentum * *b + g;
        *p -= lr * *b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimizes (w - 3)^2 from 0: the first Adam step moves by lr in the gradient's direction
    /// (bias-corrected), and every level gives the same bits over a few hundred elements.
    #[test]
    fn adam_steps_match_the_formula_at_every_level() {
        let s = AdamScalars::for_step(0.9, 0.999, 1e-7, 0.0, 0.1, 1);
        let (mut p, mut m, mut v) = ([0f32], [0f32], [0f32]);
        s.update(Level::Portable, &mut p, &[-6.0], &mut m, &mut v);
        assert!((p[0] - 0.1).abs() < 1e-5, "{}", p[0]);
        let n = 301;
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 1e-3)
            .collect();
        let start: Vec<f32> = (0..n).map(|i| (i as f32).sin()).collect();
        let mut results = Vec::new();
        for level in Level::available() {
            let (mut p, mut m, mut v) = (start.clone(), vec![0.01f32; n], vec![0.02f32; n]);
            let s = AdamScalars::for_step(0.9, 0.999, 1e-7, 0.01, 1e-3, 7);
            s.update(level, &mut p, &g, &mut m, &mut v);
            results.push((level, p, m, v));
        }
        let (_, p0, m0, v0) = &results[0];
        for (level, p, m, v) in &results[1..] {
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(p), bits(p0), "{level}");
            assert_eq!(bits(m), bits(m0), "{level}");
            assert_eq!(bits(v), bits(v0), "{level}");
        }
        // AdamW shrinks the weight before the step: p * (1 - lr * wd).
        let s = AdamScalars::for_step(0.9, 0.999, 1e-7, 0.5, 0.1, 1);
        let (mut p, mut m, mut v) = ([2f32], [0f32], [0f32]);
        s.update(Level::Portable, &mut p, &[0.0], &mut m, &mut v);
        assert!((p[0] - 2.0 * 0.95).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn sgd_with_and_without_momentum() {
        let mut p = [1f32, 2.0];
        sgd_update(&mut p, &[1.0, -1.0], &mut [], 0.5, 0.9);
        assert_eq!(p, [0.5, 2.5]);
        let (mut p, mut buf) = ([0f32], [1f32]);
        sgd_update(&mut p, &[2.0], &mut buf, 0.1, 0.5);
        assert_eq!(buf, [2.5]);
        assert!((p[0] + 0.25).abs() < 1e-7);
    }

    #[test]
    fn subnormal_moments_are_flushed_to_zero() {
        assert_eq!(flush_subnormal(1e-39), 0.0);
        assert_eq!(flush_subnormal(-1e-39), 0.0);
        assert_eq!(flush_subnormal(1e-30), 1e-30);
    }
}
