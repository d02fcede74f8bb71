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
    beta: f32,
    /// `1 - beta`, rounded from f64: `1 - 0.999f32` in f32 is off by 1.3e-5 relative.
    rest: f32,
    square: bool,
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
        let (beta, rest, square) = (self.beta, self.rest, self.square);
        moment
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(m, g)| {
                pulp::Arch::new().dispatch(|| {
                    for (m, &g) in m.iter_mut().zip(g) {
                        let g = if square { g * g } else { g };
                        *m = beta * *m + rest * g;
                    }
                })
            });
        Ok(())
    }
}

/// `p = p * decay - alpha * m / (sqrt(v) + eps)`, in place (Keras' Adam; `decay` < 1 is AdamW).
struct ParamUpdate {
    alpha: f32,
    eps: f32,
    decay: f32,
}

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
        let Self { alpha, eps, decay } = *self;
        param
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                pulp::Arch::new().dispatch(|| {
                    for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                        *p = *p * decay - alpha * m / (v.sqrt() + eps);
                    }
                })
            });
        Ok(())
    }
}

/// One Adam(W) step for one CPU variable, updating `param`, `m` and `v` in place. `grad` must be
/// contiguous and the three others fresh, unshared tensors (never views of a checkpoint's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    beta1: f64,
    beta2: f64,
    alpha: f64,
    eps: f64,
    decay: f64,
) -> Result<()> {
    let grad = grad.contiguous()?;
    m.inplace_op2(
        &grad,
        &MomentUpdate {
            beta: beta1 as f32,
            rest: (1.0 - beta1) as f32,
            square: false,
        },
    )?;
    v.inplace_op2(
        &grad,
        &MomentUpdate {
            beta: beta2 as f32,
            rest: (1.0 - beta2) as f32,
            square: true,
        },
    )?;
    param.inplace_op3(
        m,
        v,
        &ParamUpdate {
            alpha: alpha as f32,
            eps: eps as f32,
            decay: decay as f32,
        },
    )
}
