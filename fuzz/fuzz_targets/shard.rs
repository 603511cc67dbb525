//! Track shards (`.cxtrack`): `store::shard::TrackShard::open`, then every chromosome's
//! values (whole, as a slice reaching past both ends, and as a run-length track); the same
//! file opened as a base-code store (`store::bases::BaseStore::open`).
#![no_main]

use chromax::store::bases::BaseStore;
use chromax::store::shard::{ShardSlice, TrackShard};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("shard", "track.cxtrack", data);
    if let Ok(shard) = TrackShard::open(&path) {
        let sizes = shard.sizes().clone();
        for (id, (name, len)) in sizes.iter().enumerate() {
            let whole = ShardSlice { left_zeros: 0, values: shard.chrom_values(id), right_zeros: 0 };
            let mut out = vec![0f32; whole.len()];
            whole.to_f32(&mut out);
            if let Ok(slice) = shard.slice(name, -3, len as i64 + 3) {
                let mut out = vec![0f32; slice.len()];
                slice.to_f32(&mut out);
            }
        }
        let _ = shard.to_track();
    }
    if let Ok(bases) = BaseStore::open(&path) {
        let mut out = [0u8; 64];
        for id in 0..bases.sizes().len() {
            bases.read(id, -10, &mut out);
        }
    }
});
