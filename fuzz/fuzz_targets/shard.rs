//! Track shards (`.cxtrack`): `store::shard::TrackShard::open`, then every chromosome's
//! values (whole, as a slice reaching past both ends, and as a run-length track); the same
//! file opened as a base-code store (`store::bases::BaseStore::open`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::shard(data));
