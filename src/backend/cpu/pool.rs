//! Max pooling with Keras "same" padding: the twin of `kernels/pool.cu`.
//!
//! Output j of a row covers input positions `j·pool − pad_left .. + pool` inside `0..len`;
//! its value is their maximum and the backward pass gives dy[j] to the first position holding
//! it (windows do not overlap, so every input gets at most one).

use super::{HostSlice, Real};
use crate::backend::{BackendResult, MaxPoolBwd, MaxPoolFwd, MaxPoolParams};
use rayon::prelude::*;

/// Input elements per rayon task, at least.
const ROW_WORK: usize = 1 << 14;

/// The input range of output `j` and the position of its first maximum.
fn window_argmax<T: Real>(row: &[T], p: &MaxPoolParams, j: usize) -> usize {
    let start = (j * p.pool).saturating_sub(p.pad_left());
    let end = (j * p.pool + p.pool - p.pad_left()).min(p.len);
    let mut best = start;
    for i in start + 1..end {
        if row[i] > row[best] {
            best = i;
        }
    }
    best
}

pub fn maxpool_fwd<T: Real, S: HostSlice<T> + ?Sized>(p: &MaxPoolParams, b: MaxPoolFwd<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    let (x, y) = (b.x.as_ref(), b.y.as_mut());
    // Rows are short (SeqNet's end at 7 positions): rayon takes them in runs, not one by one.
    let rows_per_task = (ROW_WORK / p.len.max(1)).max(1);
    let pad = p.pad_left();
    y.par_chunks_mut(p.out_len()).zip(x.par_chunks(p.len)).with_min_len(rows_per_task).for_each(|(y_row, x_row)| {
        if pad == 0 {
            // Whole windows from the row's start: the first maximum of each chunk (SeqNet's
            // pools of 2 and 3 as fixed-size windows, which the compiler unrolls).
            match p.pool {
                2 => pool_fixed::<T, 2>(x_row, y_row),
                3 => pool_fixed::<T, 3>(x_row, y_row),
                _ => {
                    for (out, w) in y_row.iter_mut().zip(x_row.chunks(p.pool)) {
                        *out = first_max(w);
                    }
                }
            }
        } else {
            for (j, out) in y_row.iter_mut().enumerate() {
                *out = x_row[window_argmax(x_row, p, j)];
            }
        }
    });
    Ok(())
}

/// Where the first maximum of a window is (a NaN wins only in first place, as in the kernel).
fn first_argmax<T: Real>(w: &[T]) -> usize {
    (1..w.len()).fold(0, |b, i| if w[i] > w[b] { i } else { b })
}

/// `dx` of one row for whole windows of N from its start: `dy[j]` at the first maximum of
/// `x[j·N .. j·N + N]`, zero at the others (the last window may be short).
fn unpool_fixed<T: Real, const N: usize>(x_row: &[T], dy_row: &[T], dx_row: &mut [T]) {
    let (windows, tail) = x_row.as_chunks::<N>();
    let (outs, out_tail) = dx_row.as_chunks_mut::<N>();
    for ((d, w), &g) in outs.iter_mut().zip(windows).zip(dy_row) {
        let best = first_argmax(w);
        for (i, v) in d.iter_mut().enumerate() {
            *v = if i == best { g } else { T::zero() };
        }
    }
    if !tail.is_empty() {
        out_tail.fill(T::zero());
        if let Some(&g) = dy_row.get(windows.len()) {
            out_tail[first_argmax(tail)] = g;
        }
    }
}

/// The first maximum of a window (a NaN wins only in first place, as in the kernel).
fn first_max<T: Real>(w: &[T]) -> T {
    w[1..].iter().fold(w[0], |m, &v| if v > m { v } else { m })
}

/// `y[j]` = the first maximum of `x[j·N .. j·N + N]` (the last window may be short).
fn pool_fixed<T: Real, const N: usize>(x_row: &[T], y_row: &mut [T]) {
    let (windows, tail) = x_row.as_chunks::<N>();
    for (out, w) in y_row.iter_mut().zip(windows) {
        *out = first_max(w);
    }
    if !tail.is_empty() {
        if let Some(out) = y_row.get_mut(windows.len()) {
            *out = first_max(tail);
        }
    }
}

pub fn maxpool_bwd<T: Real, S: HostSlice<T> + ?Sized>(p: &MaxPoolParams, b: MaxPoolBwd<'_, S>) -> BackendResult<()> {
    b.check(p)?;
    let (x, dy, dx) = (b.x.as_ref(), b.dy.as_ref(), b.dx.as_mut());
    let rows_per_task = (ROW_WORK / p.len.max(1)).max(1);
    dx.par_chunks_mut(p.len)
        .zip(x.par_chunks(p.len).zip(dy.par_chunks(p.out_len())))
        .with_min_len(rows_per_task)
        .for_each(|(dx_row, (x_row, dy_row))| {
            if p.pad_left() == 0 {
                // Whole windows from the row's start: dy to the first maximum of each chunk,
                // zero elsewhere (SeqNet's pools of 2 and 3 as fixed-size windows, written
                // whole without branches).
                match p.pool {
                    2 => unpool_fixed::<T, 2>(x_row, dy_row, dx_row),
                    3 => unpool_fixed::<T, 3>(x_row, dy_row, dx_row),
                    _ => {
                        dx_row.fill(T::zero());
                        for ((dx, w), &g) in dx_row.chunks_mut(p.pool).zip(x_row.chunks(p.pool)).zip(dy_row) {
                            dx[first_argmax(w)] = g;
                        }
                    }
                }
            } else {
                dx_row.fill(T::zero());
                for (j, &g) in dy_row.iter().enumerate() {
                    dx_row[window_argmax(x_row, p, j)] = g;
                }
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_windows_route_dy_as_the_general_loop_does() {
        // Ties (first maximum wins), a NaN, and rows ending in a short window.
        let mut state = 5u64;
        for (n, len) in [(2usize, 9usize), (2, 10), (3, 10), (3, 11), (3, 12)] {
            let x: Vec<f32> = (0..len)
                .map(|_| {
                    state = crate::rng::mix(state);
                    if state % 17 == 0 {
                        f32::NAN
                    } else {
                        (state % 4) as f32
                    }
                })
                .collect();
            let outs = len.div_ceil(n);
            let dy: Vec<f32> = (0..outs).map(|j| j as f32 + 1.0).collect();
            let mut want = vec![0.0f32; len];
            for ((d, w), &g) in want.chunks_mut(n).zip(x.chunks(n)).zip(&dy) {
                d[first_argmax(w)] = g;
            }
            let mut got = vec![f32::NAN; len];
            match n {
                2 => unpool_fixed::<f32, 2>(&x, &dy, &mut got),
                _ => unpool_fixed::<f32, 3>(&x, &dy, &mut got),
            }
            assert_eq!(got, want, "pool {n}, row {x:?}");
        }
    }
}
