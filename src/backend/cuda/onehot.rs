//! Launch of `kernels/onehot.cu`.

use super::as_i32;
use super::launch::{grid_stride_blocks, Geometry, KArg, KernelDevice, THREADS};
use crate::backend::{BackendResult, OneHot, OneHotParams};

/// One byte per base crosses to the device; the expansion to 4 floats happens there.
pub(crate) fn one_hot<D: KernelDevice>(d: &D, p: &OneHotParams, b: OneHot<'_, D::Buf>) -> BackendResult<()> {
    b.check(p)?;
    if p.batch * p.len == 0 {
        return Ok(());
    }
    let mut codes = d.scratch_from(b.codes)?;
    let flags: Vec<u8> = b.reverse.iter().map(|&r| u8::from(r)).collect();
    let mut flags = d.scratch_from(&flags)?;
    let mut shift = d.scratch_from(bytemuck::cast_slice(b.shift))?;
    let args = [
        KArg::Ptr(d.scratch_ptr(&mut codes)),
        KArg::Ptr(d.scratch_ptr(&mut flags)),
        KArg::Ptr(d.scratch_ptr(&mut shift)),
        KArg::Ptr(d.ptr_mut(b.out)),
        KArg::I64(p.batch as i64),
        KArg::I32(as_i32("one_hot", "len", p.len)?),
    ];
    let g = Geometry::linear(grid_stride_blocks(d, p.batch * p.len), THREADS);
    // SAFETY: one_hot_f32(const u8*, const u8*, const int*, float*, long long, int) in order;
    // codes holds batch·len bytes, flags batch bytes, shifts batch ints with |shift| < len,
    // out batch·4·len floats (checked above); the copies live until their drop, which the
    // device orders after the launch. Grid-stride over batch·len positions, each writing its
    // 4 channels.
    unsafe { d.launch("onehot", "one_hot_f32", g, &args) }
}
