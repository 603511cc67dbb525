//! Tracks as the models read them: memory-mapped shards over a genome's chromosomes,
//! converted once through the content-keyed cache and checked against the genome.

use crate::error::FileError;
use crate::io::ChromSizes;
use crate::store::{cached_shard, Dtype, ShardValues, TrackShard, OCCUPANCY_BLOCK};
use crate::Error;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// Opens (converting once, through the cache) a coverage track and checks it against the
/// genome: same chromosomes and lengths, no negative or non-finite values.
pub fn open_coverage(path: &Path, sizes: &ChromSizes, what: &str) -> Result<Arc<TrackShard>, Error> {
    let shard = cached_shard(path, Some(Dtype::F32), Some(sizes))?;
    if shard.sizes() != sizes {
        return Err(FileError::Mismatch(format!(
            "{}: its chromosomes differ from the genome sizes ({what})",
            path.display()
        ))
        .into());
    }
    for id in 0..sizes.len() {
        if let ShardValues::F32(v) = shard.chrom_values(id) {
            // Block by block without branches (vectorised), then the first bad value's place.
            // A value is accepted when its bits are +0 … +max finite, or −0.
            // On every thread (a chromosome is up to 1 GB of values), and in the same pass,
            // which blocks hold a non-zero value: skipping reads that instead of the values.
            let flags: Vec<(bool, bool)> = v
                .par_chunks(OCCUPANCY_BLOCK)
                .map(|b| {
                    let (bad, nonzero) = b.iter().fold((0u32, 0u32), |(bad, nonzero), x| {
                        let bits = x.to_bits();
                        (
                            bad | u32::from(bits & 0x7FFF_FFFF >= 0x7F80_0000) | u32::from(bits > 0x8000_0000),
                            nonzero | (bits << 1),
                        )
                    });
                    (bad != 0, nonzero != 0)
                })
                .collect();
            let bad_block = flags.iter().position(|f| f.0);
            let mut bits = vec![0u64; flags.len().div_ceil(64)];
            for (k, _) in flags.iter().enumerate().filter(|f| f.1 .1) {
                bits[k / 64] |= 1 << (k % 64);
            }
            shard.set_occupancy(id, bits);
            if let Some(pos) = bad_block.and_then(|k| {
                v[k * OCCUPANCY_BLOCK..]
                    .iter()
                    .position(|&x| !(x.is_finite() && x >= 0.0))
                    .map(|i| k * OCCUPANCY_BLOCK + i)
            }) {
                return Err(FileError::content(
                    path,
                    format!(
                        "{what}: value {} at {}:{} — coverage must be finite and non-negative",
                        v[pos],
                        sizes.name(id),
                        pos + 1
                    ),
                )
                .into());
            }
        }
    }
    Ok(Arc::new(shard))
}

/// Opens a peak file as a 0/1 mask over the genome.
pub fn open_peaks(path: &Path, sizes: &ChromSizes) -> Result<Arc<TrackShard>, Error> {
    Ok(Arc::new(cached_shard(path, Some(Dtype::U8), Some(sizes))?))
}
