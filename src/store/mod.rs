//! Memory-mapped stores: track shards today (base codes and cell matrices follow the same
//! container ideas). Built once from bigWig, bedGraph or BED/narrowPeak, reused by every
//! later run through a content-keyed cache the user need not manage.

pub mod bases;
pub mod build;
pub mod matrix;
pub mod shard;

pub use build::{build_shard, cached_shard, track_cache_dir, SourceFormat, CACHE_DIR_ENV};
pub use shard::{
    scan_values, Dtype, ShardIndex, ShardSlice, ShardStats, ShardValues, TrackShard, OCCUPANCY_BLOCK, SHARD_EXTENSION,
};
