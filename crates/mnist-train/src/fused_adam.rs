//! Adam's update on the CPU as in-place passes over the parameter and its moments.
//!
//! Why: as tensor ops, one Adam step is about ten elementwise ops per parameter, each allocating
//! and writing a new tensor (fc1 alone is 2.8 MB per op), and then a copy into the variable. Here
//! each moment is updated in place in one pass, and the parameter in a third. Off the CPU the
//! optimizer keeps candle's tensor ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};
use mnist_model::ops::contiguous_f32;
use rayon::prelude::*;

/// Elements per parallel chunk: big enough that scheduling is noise, small enough to split fc1.
const CHUNK: usize = 1 << 14;

/// One Adam(W) step's scalars in f32, and the update of one element. Both the in-place tensor
/// passes below and the fused tutorial step ([`crate::fused_step`]) update through these
/// functions, so the two give the same bits for the same gradient.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamScalars {
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

    /// Updates `p`, `m` and `v` in place from `g`, in one pass: 16 lanes wide where the CPU has
    /// AVX-512, 8 where it has AVX2 (the default x86-64 target compiles this loop 4 wide, and it
    /// was 15% of a step).
    #[inline]
    pub fn update(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F (checked just above).
                return unsafe { self.update_avx512(p, g, m, v) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { self.update_avx2(p, g, m, v) };
            }
        }
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

    /// One moment (`second`: the squared-gradient one) of [`Self::update`] alone, for the
    /// three-pass update over tensors.
    fn update_moment(&self, m: &mut [f32], g: &[f32], second: bool) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.update_moment_avx2(m, g, second) };
        }
        self.update_moment_portable(m, g, second)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn update_moment_avx2(&self, m: &mut [f32], g: &[f32], second: bool) {
        self.update_moment_portable(m, g, second)
    }

    #[inline(always)]
    fn update_moment_portable(&self, m: &mut [f32], g: &[f32], second: bool) {
        for (m, &g) in m.iter_mut().zip(g) {
            *m = if second {
                self.second_moment(*m, g)
            } else {
                self.first_moment(*m, g)
            };
        }
    }

    /// The parameter part of [`Self::update`] alone, from moments already updated.
    fn update_param(&self, p: &mut [f32], m: &[f32], v: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { self.update_param_avx2(p, m, v) };
        }
        self.update_param_portable(p, m, v)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn update_param_avx2(&self, p: &mut [f32], m: &[f32], v: &[f32]) {
        self.update_param_portable(p, m, v)
    }

    #[inline(always)]
    fn update_param_portable(&self, p: &mut [f32], m: &[f32], v: &[f32]) {
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p = self.param(*p, m, v);
        }
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

fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("{op}: destination must be contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[start..end]),
        other => candle_core::bail!("{op}: only f32 is supported, got {:?}", other.dtype()),
    }
}

/// `moment = beta * moment + (1 - beta) * g` (or `g²` for the second moment), in place.
struct MomentUpdate {
    scalars: AdamScalars,
    second: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let moment = slice_mut(s1, l1, self.name())?;
        let grad = contiguous_f32(s2, l2, self.name())?;
        if moment.len() != grad.len() {
            candle_core::bail!(
                "adam-moment: {} moments for {} gradients",
                moment.len(),
                grad.len()
            )
        }
        let (s, second) = (self.scalars, self.second);
        moment
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(m, g)| s.update_moment(m, g, second));
        Ok(())
    }
}

/// `p = p * decay - alpha * m / (sqrt(v) + eps)`, in place (Keras' Adam; `decay` < 1 is AdamW).
struct ParamUpdate(AdamScalars);

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let param = slice_mut(s1, l1, self.name())?;
        let (m, v) = (
            contiguous_f32(s2, l2, self.name())?,
            contiguous_f32(s3, l3, self.name())?,
        );
        if param.len() != m.len() || param.len() != v.len() {
            candle_core::bail!("adam-param: parameter and moments differ in size")
        }
        let s = self.0;
        param
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| s.update_param(p, m, v));
        Ok(())
    }
}

/// One Adam(W) step for one CPU variable, updating `param`, `m` and `v` in place. `grad` must be
/// contiguous and the three others fresh, unshared tensors (never views of a checkpoint's).
pub(crate) fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    scalars: AdamScalars,
) -> Result<()> {
    let grad = grad.contiguous()?;
    let moment = |second| MomentUpdate { scalars, second };
    m.inplace_op2(&grad, &moment(false))?;
    v.inplace_op2(&grad, &moment(true))?;
    param.inplace_op3(m, v, &ParamUpdate(scalars))
}
