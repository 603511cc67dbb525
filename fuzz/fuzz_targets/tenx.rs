//! 10x Genomics HDF5 matrices: `io::tenx::is_10x_h5` and `read_10x_h5`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::tenx(data));
