//! Model directories' `config.json`: the input is written as config.json into a denoiser's
//! and a single-cell model's directory, each holding a small valid model.safetensors (and
//! cells.tsv), then `denoise::model::load_model` and `sc::model::load_seq_model` run on the CPU
//! backend (both open the directory with `models::checkpoint::open_model_dir` first);
//! `models::SeqConfig::read_json` (`--model-config`) reads the same bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::model_config(data));
