//! What the fuzz targets share: chromax's readers take paths, so every input is written to a
//! file in a scratch directory that belongs to this process (`chromax-fuzz-<target>-<pid>` in
//! the temporary directory), created on the first run and reused by every later one.
//!
//! Each target's body is a function of [`targets`], so that `tests/fuzz_regressions.rs` (which
//! includes this file) replays the kept crashes and the seeds through the very code libFuzzer
//! runs.
//!
//! A target passes when the reader returns, `Ok` or `Err`; a panic, an abort, a hang or an
//! allocation past libFuzzer's `-rss_limit_mb` is a crash.

use std::path::PathBuf;

/// The scratch directory of `target` in this process (`chromax-fuzz-<target>-<pid>`), created
/// on first use: one per target, so that targets run in one process (the regression test)
/// do not share files.
pub fn scratch_dir(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("creating the fuzz scratch directory");
    dir
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
            batches: 0,
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
        DIRS.get_or_init(|| write_model_dirs(&super::scratch_dir(target)).expect("writing the model directories"))
    }
}

/// The targets' bodies, one function per `fuzz/fuzz_targets/<name>.rs`, and [`ALL`](targets::ALL).
pub mod targets {
    use super::{mtx, scratch_dir, split_two, write_input};
    use chromax::io::ChromSizes;
    use std::io::Write;
    use std::sync::OnceLock;

    /// Every target by name, in `cargo fuzz list` order.
    pub const ALL: [(&str, fn(&[u8])); 16] = [
        ("bam", bam),
        ("barcodes", barcodes),
        ("bed", bed),
        ("bedgraph", bedgraph),
        ("bigwig", bigwig),
        ("cell_matrix", cell_matrix),
        ("chrom_sizes", chrom_sizes),
        ("fasta", fasta),
        ("fragments", fragments),
        ("h5ad", h5ad),
        ("model_config", model_config),
        ("mtx", mtx),
        ("mtx_sidecars", mtx_sidecars),
        ("safetensors", safetensors),
        ("shard", shard),
        ("tenx", tenx),
    ];

    /// BAM records: an input that is not gzip is BGZF-compressed first (so the fuzzer works on
    /// the records, not on deflate), then the header is read and both pileups run over the
    /// target's two-chromosome genome.
    pub fn bam(data: &[u8]) {
        use chromax::coverage::{bam_header_sizes, coverage_from_bam, CoverageOptions, PileupMode};
        static SIZES: OnceLock<ChromSizes> = OnceLock::new();
        let genome = SIZES.get_or_init(|| {
            ChromSizes::from_pairs(super::bam::GENOME.map(|(n, l)| (n.to_string(), l))).expect("sizes")
        });
        let bytes = if data.starts_with(&[0x1f, 0x8b]) {
            data.to_vec()
        } else {
            let mut w = noodles::bgzf::io::Writer::new(Vec::new());
            w.write_all(data).expect("compressing into memory");
            w.finish().expect("compressing into memory")
        };
        let path = write_input("bam", "reads.bam", &bytes);
        let _ = bam_header_sizes(&path);
        for mode in [PileupMode::CutSites, PileupMode::Fragments] {
            let opts = CoverageOptions { mode, extend: 10, min_mapq: 0, ..Default::default() };
            let _ = coverage_from_bam(&path, Some(genome), &opts, &mut |_| {});
        }
    }

    /// A barcode list (`--cells`).
    pub fn barcodes(data: &[u8]) {
        let path = write_input("barcodes", "barcodes.txt", data);
        let _ = chromax::io::barcodes::read_barcodes(&path);
    }

    /// BED / narrowPeak.
    pub fn bed(data: &[u8]) {
        let path = write_input("bed", "peaks.narrowPeak", data);
        let _ = chromax::io::bed::read_intervals(&path);
    }

    /// bedGraph, read without sizes and over a fixed two-chromosome genome.
    pub fn bedgraph(data: &[u8]) {
        use chromax::io::bedgraph::read_bedgraph;
        static SIZES: OnceLock<ChromSizes> = OnceLock::new();
        let genome = SIZES.get_or_init(|| {
            ChromSizes::from_pairs([("chrI".to_string(), 230_218), ("chrII".to_string(), 20_000)]).expect("sizes")
        });
        let path = write_input("bedgraph", "track.bedGraph", data);
        let _ = read_bedgraph(&path, None);
        let _ = read_bedgraph(&path, Some(genome));
    }

    /// bigWig, every chromosome read.
    pub fn bigwig(data: &[u8]) {
        let path = write_input("bigwig", "track.bw", data);
        let _ = chromax::io::bigwig::read_bigwig(&path, None);
    }

    /// A cell-matrix store: opened, every array and name touched, hashed, read whole.
    pub fn cell_matrix(data: &[u8]) {
        use chromax::store::matrix::{read_matrix, CellMatrix};
        let path = write_input("cell_matrix", "matrix.cxmatrix", data);
        if let Ok(store) = CellMatrix::open(&path) {
            let _ =
                (store.shape(), store.indptr().len(), store.indices().len(), store.counts().map_or(0, <[u32]>::len));
            let _ = (store.barcodes().len(), store.peak_names().len(), store.content_sha256(&path));
        }
        let _ = read_matrix(&path);
    }

    /// chrom.sizes.
    pub fn chrom_sizes(data: &[u8]) {
        let path = write_input("chrom_sizes", "genome.chrom.sizes", data);
        let _ = ChromSizes::read(&path);
    }

    /// FASTA.
    pub fn fasta(data: &[u8]) {
        let path = write_input("fasta", "genome.fa", data);
        let _ = chromax::store::bases::read_fasta(&path);
    }

    /// A fragments file (plain or gzip), every record.
    pub fn fragments(data: &[u8]) {
        let path = write_input("fragments", "fragments.tsv", data);
        let Ok(mut reader) = chromax::io::fragments::FragmentReader::open(&path) else { return };
        while let Ok(Some(_)) = reader.next() {}
    }

    /// h5ad: counts, X and an obsm embedding.
    pub fn h5ad(data: &[u8]) {
        use chromax::io::h5ad::{read_h5ad_counts, read_h5ad_obsm, read_h5ad_x};
        let path = write_input("h5ad", "matrix.h5ad", data);
        let _ = read_h5ad_counts(&path);
        let _ = read_h5ad_x(&path);
        let _ = read_h5ad_obsm(&path, "X_embed");
    }

    /// config.json of a denoiser's and a single-cell model's directory (each with valid
    /// weights), loaded; and the same bytes as `--model-config`.
    pub fn model_config(data: &[u8]) {
        use chromax::backend::cpu::CpuBackend;
        use chromax::models::checkpoint::CONFIG_FILE;
        let dirs = super::models::model_dirs("model_config");
        for dir in [&dirs.denoise, &dirs.sc] {
            std::fs::write(dir.join(CONFIG_FILE), data).expect("writing the fuzz input");
        }
        let cpu = CpuBackend::new();
        let _ = chromax::denoise::model::load_model(&cpu, &dirs.denoise);
        let _ = chromax::sc::model::load_seq_model(&cpu, &dirs.sc);
        let _ = chromax::models::SeqConfig::read_json(&dirs.denoise.join(CONFIG_FILE));
    }

    /// A Matrix Market matrix beside fixed barcodes.tsv and peaks.bed.
    pub fn mtx(data: &[u8]) {
        // The fixed files once per process (each target has its own directory).
        static SIDECARS: std::sync::Once = std::sync::Once::new();
        SIDECARS.call_once(|| {
            write_input("mtx", "barcodes.tsv", mtx::BARCODES.as_bytes());
            write_input("mtx", "peaks.bed", mtx::PEAKS.as_bytes());
        });
        write_input("mtx", "matrix.mtx", data);
        let _ = chromax::io::mtx::read_mtx_dir(&scratch_dir("mtx"));
    }

    /// barcodes.tsv and peaks.bed (split by [`split_two`]) beside a fixed matrix.mtx.
    pub fn mtx_sidecars(data: &[u8]) {
        static MATRIX: std::sync::Once = std::sync::Once::new();
        MATRIX.call_once(|| {
            write_input("mtx_sidecars", "matrix.mtx", mtx::MATRIX.as_bytes());
        });
        let (barcodes, peaks) = split_two(data);
        write_input("mtx_sidecars", "barcodes.tsv", barcodes);
        write_input("mtx_sidecars", "peaks.bed", peaks);
        let _ = chromax::io::mtx::read_mtx_dir(&scratch_dir("mtx_sidecars"));
    }

    /// A safetensors checkpoint: its metadata, then every tensor.
    pub fn safetensors(data: &[u8]) {
        use chromax::io::safetensors::{read_tensor_metadata, read_tensors};
        let path = write_input("safetensors", "model.safetensors", data);
        let _ = read_tensor_metadata(&path);
        let _ = read_tensors(&path);
    }

    /// A track shard (every chromosome converted, slices past both ends) or a base store.
    pub fn shard(data: &[u8]) {
        use chromax::store::bases::BaseStore;
        use chromax::store::shard::{ShardSlice, TrackShard};
        let path = write_input("shard", "track.cxtrack", data);
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
    }

    /// A 10x feature-barcode matrix (.h5).
    pub fn tenx(data: &[u8]) {
        use chromax::io::tenx::{is_10x_h5, read_10x_h5};
        let path = write_input("tenx", "filtered_peak_bc_matrix.h5", data);
        let _ = is_10x_h5(&path);
        let _ = read_10x_h5(&path);
    }
}
