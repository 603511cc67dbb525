//! Packed activations, the specification: (batch, len, 16) channels-last, each value rounded
//! to bfloat16 (nearest, ties to even) and held as the element type, channels past the live
//! ones zero. CUDA twin: `conv1d_mma_pack` / `conv1d_mma_unpack` of kernels/conv1d_mma.cu,
//! which hold the same values as bf16 bits, two a word.

use super::gemm::{bf16_bits, bf16_value};
use crate::backend::{BackendResult, Pack, PackParams, Unpack, PACKED_CHANNELS};

/// `v` rounded to bfloat16, in the element type.
fn bf16<T: Copy + From<f32> + Into<f64>>(v: T) -> T {
    T::from(bf16_value(bf16_bits(v.into() as f32)))
}

pub fn pack<T: Copy + From<f32> + Into<f64>>(p: &PackParams, b: Pack<'_, Vec<T>>) -> BackendResult<()> {
    b.check(p, p.batch * p.len * PACKED_CHANNELS)?;
    let zero = T::from(0.0);
    for (pos, row) in b.packed.chunks_exact_mut(PACKED_CHANNELS).enumerate() {
        let (batch, l) = (pos / p.len, pos % p.len);
        for (c, v) in row.iter_mut().enumerate() {
            *v = if c < p.channels { bf16(b.x[(batch * p.channels + c) * p.len + l]) } else { zero };
        }
    }
    Ok(())
}

pub fn unpack<T: Copy>(p: &PackParams, b: Unpack<'_, Vec<T>>) -> BackendResult<()> {
    b.check(p, p.batch * p.len * PACKED_CHANNELS)?;
    for (i, v) in b.x.iter_mut().enumerate() {
        let (l, c, batch) = (i % p.len, (i / p.len) % p.channels, i / (p.len * p.channels));
        *v = b.packed[(batch * p.len + l) * PACKED_CHANNELS + c];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_rounds_to_bf16_pads_with_zeros_and_unpacks_to_the_rounded_values() {
        let p = PackParams { batch: 2, channels: 3, len: 4 };
        let x: Vec<f32> = (0..p.values()).map(|i| 1.0 + i as f32 / 1024.0).collect();
        let mut packed = vec![f32::NAN; 2 * 4 * PACKED_CHANNELS];
        pack(&p, Pack { x: &x, packed: &mut packed }).unwrap();
        // Batch 1, position 2, channel 1: x[(1·3 + 1)·4 + 2] = x[18], row 1·4 + 2.
        assert_eq!(packed[6 * PACKED_CHANNELS + 1], half::bf16::from_f32(x[18]).to_f32());
        assert_ne!(packed[6 * PACKED_CHANNELS + 1], x[18], "1 + 18/1024 needs more than bf16's 8 bits");
        assert!(packed.chunks(PACKED_CHANNELS).all(|row| row[3..].iter().all(|&v| v == 0.0)));
        let mut back = vec![f32::NAN; p.values()];
        unpack(&p, Unpack { packed: &packed, x: &mut back }).unwrap();
        let rounded: Vec<f32> = x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect();
        assert_eq!(back, rounded);
    }

    #[test]
    fn packing_refuses_more_than_16_channels_and_wrong_lengths() {
        let p = PackParams { batch: 1, channels: 17, len: 2 };
        let (x, mut packed) = (vec![0f32; 34], vec![0f32; 32]);
        let err = pack(&p, Pack { x: &x, packed: &mut packed }).unwrap_err().to_string();
        assert!(err.contains("1 to 16 channels"), "{err}");
        let p = PackParams { batch: 1, channels: 2, len: 2 };
        let err = pack(&p, Pack { x: &x, packed: &mut packed }).unwrap_err().to_string();
        assert_eq!(err, "pack: buffer 'x' holds 34 values, expected 4");
    }
}
