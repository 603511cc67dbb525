//! Tracks as the models read them: memory-mapped shards over a genome's chromosomes,
//! converted once through the content-keyed cache and checked against the genome.

use crate::error::FileError;
use crate::io::ChromSizes;
use crate::store::{cached_shard, scan_values, Dtype, TrackShard};
use crate::Error;
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
        // The cache's shards carry the record their writer made of which blocks hold a
        // non-zero value and of the first invalid value; any other shard is read through
        // here (on every thread: a chromosome is up to 1 GB of values).
        let first_invalid = if let Some(recorded) = shard.recorded_first_invalid(id) {
            recorded
        } else {
            let (bits, first_invalid) = scan_values(shard.chrom_values(id));
            shard.set_occupancy(id, bits);
            first_invalid
        };
        if let Some(pos) = first_invalid {
            let mut value = [0.0f32];
            if let Ok(one) = shard.slice(sizes.name(id), pos as i64, pos as i64 + 1) {
                one.to_f32(&mut value);
            }
            return Err(FileError::content(
                path,
                format!(
                    "{what}: value {} at {}:{} — coverage must be finite and non-negative",
                    value[0],
                    sizes.name(id),
                    pos + 1
                ),
            )
            .into());
        }
    }
    Ok(Arc::new(shard))
}

/// Opens a peak file as a 0/1 mask over the genome.
pub fn open_peaks(path: &Path, sizes: &ChromSizes) -> Result<Arc<TrackShard>, Error> {
    Ok(Arc::new(cached_shard(path, Some(Dtype::U8), Some(sizes))?))
}
