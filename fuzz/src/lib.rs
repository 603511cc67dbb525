//! What the fuzz targets share: chromax's readers take paths, so every input is written to a
//! file in a scratch directory that belongs to this process (`chromax-fuzz-<target>-<pid>` in
//! the temporary directory), created on the first run and reused by every later one.
//!
//! A target passes when the reader returns, `Ok` or `Err`; a panic, an abort, a hang or an
//! allocation past libFuzzer's `-rss_limit_mb` is a crash.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// This process's scratch directory (one target per process, so the first name given wins).
pub fn scratch_dir(target: &str) -> &'static Path {
    SCRATCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chromax-fuzz-{target}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
        dir
    })
}

/// Writes `data` as `name` in the scratch directory and returns its path.
pub fn write_input(target: &str, name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir(target).join(name);
    std::fs::write(&path, data).expect("writing the fuzz input");
    path
}

/// Splits an input into two files' contents: the first two bytes (little-endian) give the
/// length of the first part, the rest is the second. Short inputs give two empty parts.
pub fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    let Some((head, rest)) = data.split_first_chunk::<2>() else {
        return (&[], &[]);
    };
    rest.split_at((u16::from_le_bytes(*head) as usize).min(rest.len()))
}

/// The fixed Matrix Market files beside the fuzzed one, shared by the targets and the seeds.
pub mod mtx {
    /// 8 barcodes of tests/data/chr22_scatac/barcodes_50.txt.
    pub const BARCODES: &str = "AAACTGCTCAGGAAGC\nAACAGTCCACCATTCC\nAACATCGCAGAACAGC\nAAATGCCCAATAGTGA\n\
                                AACCGATAGGTCCTCG\nAAAGGATCAATGATGA\nAACCGATAGCAATGTA\nAAAGGATGTCTGGATT\n";
    /// The first 6 peaks of tests/data/chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak.
    pub const PEAKS: &str = "chr22\t10687269\t10687509\nchr22\t10714242\t10714462\nchr22\t10732549\t10732786\n\
                             chr22\t10740612\t10740826\nchr22\t10760579\t10760827\nchr22\t10768839\t10769063\n";
    /// A 6 peaks × 8 barcodes matrix.
    pub const MATRIX: &str =
        "%%MatrixMarket matrix coordinate integer general\n6 8 5\n1 1 2\n3 2 1\n6 8 4\n2 5 1\n4 4 3\n";
}

/// The BAM target's genome, shared with the seeds.
pub mod bam {
    /// Two yeast chromosomes, cut short: the seeds' reads lie in their first 20 kb.
    pub const GENOME: [(&str, u64); 2] = [("chrI", 20_000), ("chrII", 20_000)];
}

/// Small valid model directories for the config.json target.
pub mod models {
    use chromax::backend::cpu::CpuBackend;
    use chromax::denoise::model::{write_model, ModelConfig};
    use chromax::error::FileError;
    use chromax::io::json::write_json;
    use chromax::io::safetensors::write_tensors;
    use chromax::models::checkpoint::{weight_tensors, CONFIG_FILE, MODEL_FILE};
    use chromax::models::{DenoiseConfig, DenoiseNet, SeqConfig, SeqNet};
    use chromax::sc::model::{ScModelConfig, CELLS_FILE};
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;

    /// The cells of the single-cell model.
    pub const CELLS: [&str; 4] = ["AAACTGCTCAGGAAGC", "AACAGTCCACCATTCC", "AACATCGCAGAACAGC", "AAATGCCCAATAGTGA"];

    /// The demo denoiser (9,801 parameters).
    pub fn denoise_config() -> ModelConfig {
        let training = serde_json::json!({ "epochs": 1, "lr": 0.001 });
        ModelConfig::new(DenoiseConfig::demo(), 1000, 100, Vec::new(), training)
    }

    /// A SeqNet of a few hundred parameters over 26 bp.
    pub fn seq_config() -> ScModelConfig {
        let model = SeqConfig {
            seq_len: 26,
            stem_filters: 3,
            stem_kernel: 5,
            stem_pool: 3,
            tower_filters: vec![4, 3],
            tower_kernel: 3,
            tower_pool: 2,
            final_filters: 2,
            bottleneck: 3,
            dropout: 0.25,
            bn_momentum: 0.9,
            bn_eps: 1e-3,
            cells: CELLS.len(),
        };
        ScModelConfig::new(model, serde_json::json!({ "epochs": 1 }), Default::default())
    }

    /// A denoiser's directory and a single-cell model's, each complete and valid.
    pub struct ModelDirs {
        pub denoise: PathBuf,
        pub sc: PathBuf,
    }

    /// Writes both model directories (config.json, model.safetensors, cells.tsv) under `root`.
    pub fn write_model_dirs(root: &Path) -> Result<ModelDirs, chromax::Error> {
        let cpu = CpuBackend::new();
        let dirs = ModelDirs { denoise: root.join("denoise"), sc: root.join("sc") };
        for dir in [&dirs.denoise, &dirs.sc] {
            let io = |source| FileError::Io { path: dir.clone(), source };
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let denoise = denoise_config();
        write_model(&cpu, &dirs.denoise, &denoise, &DenoiseNet::new(&cpu, denoise.model, 0)?)?;
        let sc = seq_config();
        write_json(&dirs.sc.join(CONFIG_FILE), &sc)?;
        let net = SeqNet::new(&cpu, sc.model.clone(), 0, None)?;
        write_tensors(&dirs.sc.join(MODEL_FILE), &weight_tensors(&cpu, &net)?)?;
        chromax::io::text::write_lines(&dirs.sc.join(CELLS_FILE), CELLS)?;
        Ok(dirs)
    }

    /// This process's two model directories, written on the first call.
    pub fn model_dirs(target: &str) -> &'static ModelDirs {
        static DIRS: OnceLock<ModelDirs> = OnceLock::new();
        DIRS.get_or_init(|| write_model_dirs(super::scratch_dir(target)).expect("writing the model directories"))
    }
}
