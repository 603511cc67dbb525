//! safetensors checkpoints: `io::safetensors::read_tensors` and `read_tensor_metadata`.
#![no_main]

use chromax::io::safetensors::{read_tensor_metadata, read_tensors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("safetensors", "model.safetensors", data);
    let _ = read_tensor_metadata(&path);
    let _ = read_tensors(&path);
});
