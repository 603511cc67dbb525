//! safetensors checkpoints: `io::safetensors::read_tensors` and `read_tensor_metadata`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::safetensors(data));
