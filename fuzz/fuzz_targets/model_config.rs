//! Model directories' `config.json`: the input is written as config.json into a denoiser's
//! and a single-cell model's directory, each holding a small valid model.safetensors (and
//! cells.tsv), then `denoise::model::load_model` and `sc::model::load_seq_model` run on the CPU
//! backend (both open the directory with `models::checkpoint::open_model_dir` first);
//! `models::SeqConfig::read_json` (`--model-config`) reads the same bytes.
#![no_main]

use chromax::backend::cpu::CpuBackend;
use chromax::denoise::model::load_model;
use chromax::models::checkpoint::CONFIG_FILE;
use chromax::models::SeqConfig;
use chromax::sc::model::load_seq_model;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dirs = chromax_fuzz::models::model_dirs("model_config");
    for dir in [&dirs.denoise, &dirs.sc] {
        std::fs::write(dir.join(CONFIG_FILE), data).expect("writing the fuzz input");
    }
    let cpu = CpuBackend::new();
    let _ = load_model(&cpu, &dirs.denoise);
    let _ = load_seq_model(&cpu, &dirs.sc);
    let _ = SeqConfig::read_json(&dirs.denoise.join(CONFIG_FILE));
});
