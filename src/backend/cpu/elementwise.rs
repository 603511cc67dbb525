//! The element-wise ops, forward and backward: the twins of `kernels/elementwise.cu`. Each
//! op's value at one element is [`ElementwiseOp::apply`]; [`elementwise_spec`] maps it over
//! the buffers. On f32 where the CPU has AVX-512, the ops built on σ (sigmoid, GELU forward
//! and backward: SeqNet's every block) take [`vector`]'s path instead: 16 lanes at a time
//! with a polynomial e^x (within 2 ulp of libm's; tested against the scalar op), where the
//! scalar path spent a libm call per element.

use super::{HostSlice, Real};
use crate::backend::{BackendResult, Elementwise, ElementwiseOp};
use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 1 << 14;

/// `out[i] = op(a[i], b[i])` (b absent for unary ops), on the vector path where one suits.
pub fn elementwise<T: Real, S: HostSlice<T> + ?Sized>(
    op: ElementwiseOp,
    bufs: Elementwise<'_, S>,
) -> BackendResult<()> {
    bufs.check(op)?;
    if vector::suits(op) {
        let b = bufs.b.map(|b| T::f32s(b.as_ref()));
        if let (Some(a), Some(out), None | Some(Some(_))) =
            (T::f32s(bufs.a.as_ref()), T::f32s_mut(bufs.out.as_mut()), b)
        {
            vector::elementwise(op, a, b.flatten(), out);
            return Ok(());
        }
    }
    elementwise_spec(op, bufs)
}

/// [`elementwise`] by the scalar op alone: the specification.
pub fn elementwise_spec<T: Real, S: HostSlice<T> + ?Sized>(
    op: ElementwiseOp,
    bufs: Elementwise<'_, S>,
) -> BackendResult<()> {
    bufs.check(op)?;
    let Elementwise { a, b, out } = bufs;
    let (a, out) = (a.as_ref(), out.as_mut());
    match b {
        None => out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).for_each(|(out, a)| {
            out.iter_mut().zip(a).for_each(|(o, &a)| *o = op.apply(a, T::zero()));
        }),
        Some(b) => out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.as_ref().par_chunks(CHUNK))).for_each(
            |(out, (a, b))| {
                for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                    *o = op.apply(a, b);
                }
            },
        ),
    }
    Ok(())
}

/// σ(x), written so that neither branch overflows.
pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// σ-based ops 16 lanes at a time (AVX-512F).
pub(crate) mod vector {
    use super::CHUNK;
    use crate::backend::cpu::direct::{isa, Isa};
    use crate::backend::{ElementwiseOp, GELU_SLOPE};
    use rayon::prelude::*;

    /// Whether `op` has a vector path on this CPU.
    pub fn suits(op: ElementwiseOp) -> bool {
        matches!(op, ElementwiseOp::SigmoidFwd | ElementwiseOp::GeluFwd | ElementwiseOp::GeluBwd)
            && isa() == Isa::Avx512
    }

    /// `out[i] = op(a[i], b[i])` for an op that [`suits`]; lengths checked by the caller.
    pub fn elementwise(op: ElementwiseOp, a: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
        assert!(suits(op) && a.len() == out.len() && b.is_none_or(|b| b.len() == a.len()));
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
            let a = &a[i * CHUNK..i * CHUNK + out.len()];
            let b = b.map(|b| &b[i * CHUNK..i * CHUNK + out.len()]);
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present (`suits`); the slices have equal lengths.
            unsafe {
                run(op, a, b, out)
            }
        });
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn run(op: ElementwiseOp, a: &[f32], b: Option<&[f32]>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let k = _mm512_set1_ps(GELU_SLOPE as f32);
        let one = _mm512_set1_ps(1.0);
        for i in (0..out.len()).step_by(16) {
            let lanes = (out.len() - i).min(16);
            let m: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
            let x = _mm512_maskz_loadu_ps(m, a.as_ptr().add(i));
            let y = match op {
                ElementwiseOp::SigmoidFwd => sigmoid(x),
                ElementwiseOp::GeluFwd => _mm512_mul_ps(x, sigmoid(_mm512_mul_ps(k, x))),
                _ => {
                    // dy · (s + k·x·s·(1 − s)), s = σ(k·x)
                    let dy = _mm512_maskz_loadu_ps(m, b.map_or(a, |b| b).as_ptr().add(i));
                    let s = sigmoid(_mm512_mul_ps(k, x));
                    let kxs = _mm512_mul_ps(_mm512_mul_ps(k, x), s);
                    _mm512_mul_ps(dy, _mm512_fmadd_ps(kxs, _mm512_sub_ps(one, s), s))
                }
            };
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), m, y);
        }
    }

    /// σ(x) = 1 / (1 + e^−x): 0 where e^−x overflows, NaN for NaN.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn sigmoid(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        let one = _mm512_set1_ps(1.0);
        _mm512_div_ps(one, _mm512_add_ps(one, exp(_mm512_sub_ps(_mm512_setzero_ps(), x))))
    }

    /// e^x = 2^n · e^r with n = round(x / ln 2), r = x − n·ln 2 (ln 2 in two parts, so r is
    /// exact to f32), |r| ≤ ln 2 / 2, e^r by its Taylor series to r⁷ (truncation < 2^−27).
    /// x is first clamped to [−104, 89], past which e^x is 0 or +∞ in f32 anyway (NaN kept).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn exp(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
        use std::arch::x86_64::*;
        // min/max return their second operand when either is NaN: x goes second.
        let x = _mm512_max_ps(_mm512_set1_ps(-104.0), _mm512_min_ps(_mm512_set1_ps(89.0), x));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm512_mul_ps(
            x,
            _mm512_set1_ps(std::f32::consts::LOG2_E),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_145_75), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428_606_8e-6), r);
        let mut p = _mm512_set1_ps(1.0 / 5040.0);
        for c in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }
}
