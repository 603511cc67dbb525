//! Writes the fuzz targets' seed inputs, `fuzz/seeds/<target>/`, from tests/data with
//! chromax's own writers (hdf5-pure and noodles for the 10x and BAM files, as the tests do).
//! Every seed is small (≤ 64 KiB): a few hundred lines of a text file, a few chromosomes or
//! cells of a binary one.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```

use chromax::coverage::{coverage_from_fragments, CoverageOptions, PileupMode};
use chromax::io::bed::Interval;
use chromax::io::h5ad::{transpose, CsrF32};
use chromax::io::safetensors::{write_tensors, write_tensors_with_metadata};
use chromax::io::ChromSizes;
use chromax::models::checkpoint::weight_tensors;
use chromax::models::{DenoiseNet, SeqNet};
use chromax::store::matrix::{write_matrix, CsrCounts};
use chromax::store::shard::{write_shard, Dtype};
use chromax::track::Track;
use chromax_fuzz::{bam as bam_fixture, models, mtx};
use hdf5_pure::{AttrValue, FileBuilder, GroupBuilder};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The largest seed committed.
const MAX_SEED: usize = 64 * 1024;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data").join(rel)
}

/// Writes one seed, refusing any over [`MAX_SEED`].
fn seed(target: &str, name: &str, bytes: &[u8]) -> Result {
    if bytes.len() > MAX_SEED {
        return Err(format!("seed {target}/{name} is {} bytes, over {MAX_SEED}", bytes.len()).into());
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

/// A seed written by one of chromax's writers into a scratch file first.
fn seed_from_file(target: &str, name: &str, write: impl FnOnce(&Path) -> Result) -> Result {
    let path = scratch().join(name);
    write(&path)?;
    seed(target, name, &std::fs::read(&path)?)
}

fn scratch() -> PathBuf {
    // A fixed name: the base-code store records its FASTA's path, and the seeds should not change.
    let dir = std::env::temp_dir().join("chromax-make-seeds");
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// The first `n` lines of a text file (plain or gzip), each with its newline, that `keep`
/// accepts.
fn head(rel: &str, n: usize, keep: impl Fn(&str) -> bool) -> Result<String> {
    let file = std::fs::File::open(data(rel))?;
    let reader: Box<dyn Read> =
        if rel.ends_with(".gz") { Box::new(flate2::read::MultiGzDecoder::new(file)) } else { Box::new(file) };
    let mut out = String::new();
    for line in BufReader::new(reader).lines() {
        let line = line?;
        if keep(&line) {
            out.push_str(&line);
            out.push('\n');
            if out.lines().count() == n {
                break;
            }
        }
    }
    Ok(out)
}

/// The header and first `bases` bases of chrIV (one line in tests/data), 60 to a line.
fn chr_iv_head(bases: usize) -> Result<String> {
    let file = std::fs::read_to_string(data("yeast/sacCer3.chrIV.fa"))?;
    let (header, seq) = file.split_once('\n').ok_or("no FASTA header")?;
    let seq: Vec<u8> = seq.bytes().filter(|b| !b.is_ascii_whitespace()).take(bases).collect();
    let lines: Vec<&str> = seq.chunks(60).map(|c| std::str::from_utf8(c).unwrap_or("N")).collect();
    Ok(format!("{header}\n{}\n", lines.join("\n")))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    w.write_all(bytes)?;
    Ok(w.finish()?)
}

fn text_seeds() -> Result {
    // Fragments: single-cell (chr22) and bulk (yeast), plain and gzip, with comments.
    let chr22 = head("chr22_scatac/fragments.tsv.gz", 300, |_| true)?;
    seed("fragments", "chr22_300.tsv", chr22.as_bytes())?;
    let yeast = head("yeast/yeast_500k_SRR1822137.frag.gz", 300, |_| true)?;
    seed("fragments", "yeast_300.tsv", yeast.as_bytes())?;
    let first80: String = chr22.lines().take(80).map(|l| format!("{l}\n")).collect();
    let commented = format!("# id=fragments\n# reference_path=/refs/hg38\n{first80}");
    seed("fragments", "commented.tsv", commented.as_bytes())?;
    seed(
        "fragments",
        "yeast_100.tsv.gz",
        &gzip(head("yeast/yeast_500k_SRR1822137.frag.gz", 100, |_| true)?.as_bytes())?,
    )?;

    // BED / narrowPeak.
    let np = head("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak", 200, |_| true)?;
    seed("bed", "chr22_200.narrowPeak", np.as_bytes())?;
    let hmm = head("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak", 150, |_| true)?;
    seed("bed", "yeast_hmmratac_150.narrowPeak", hmm.as_bytes())?;
    let bed3: String =
        np.lines().take(50).map(|l| l.split('\t').take(3).collect::<Vec<_>>().join("\t") + "\n").collect();
    seed("bed", "browser_track_bed3.bed", format!("browser position chr22:1-1000\ntrack name=x\n{bed3}").as_bytes())?;
    seed("bed", "chr22_50.bed.gz", &gzip(bed3.as_bytes())?)?;

    // chrom.sizes.
    seed("chrom_sizes", "sacCer3.chrom.sizes", &std::fs::read(data("yeast/sacCer3.chrom.sizes"))?)?;
    seed("chrom_sizes", "spaces_and_comment.sizes", b"# genome\nchr22 50818468\nchrUn_KI270302v1\t2274\r\n")?;

    // Barcode lists.
    let barcodes = std::fs::read_to_string(data("chr22_scatac/barcodes_50.txt"))?;
    seed("barcodes", "barcodes_50.txt", barcodes.as_bytes())?;
    let csv: String = barcodes.lines().take(10).enumerate().map(|(i, b)| format!("{b},type{}\n", i % 3)).collect();
    seed("barcodes", "with_cell_types.csv", format!("  {csv}").as_bytes())?;

    // FASTA: the start of chrIV, and two short sequences with soft-masking and IUPAC codes.
    let fa = chr_iv_head(6000)?;
    seed("fasta", "chrIV_head.fa", fa.as_bytes())?;
    let two =
        format!(">chrA description\n{}acgtNNRYKM\n>chrB\n{}\n", &fa.lines().nth(1).unwrap_or("ACGT"), "TTGCA-.*u");
    seed("fasta", "two_sequences.fa", two.as_bytes())?;
    seed("fasta", "chrIV_head.fa.gz", &gzip(&fa.as_bytes()[..fa.len().min(3000)])?)?;

    // Matrix Market, 6 peaks × 8 barcodes as the target's fixed files expect (and transposed).
    seed("mtx", "integer.mtx", mtx::MATRIX.as_bytes())?;
    seed(
        "mtx",
        "real_with_comments.mtx",
        b"%%MatrixMarket matrix coordinate real general\n%metadata_json: {\"software_version\": \"cellranger-atac-2.1.0\"}\n6 8 4\n1 1 0.5\n2 3 2.5\r\n\n% c\n6 8 1e1\n5 2 0\n",
    )?;
    seed("mtx", "pattern.mtx", b"%%MatrixMarket matrix coordinate pattern general\n6 8 3\n1 8\n6 1\n3 3\n")?;
    seed("mtx", "transposed.mtx", b"%%MatrixMarket matrix coordinate integer general\n8 6 3\n8 6 1\n1 1 4\n2 3 7\n")?;
    seed("mtx", "integer.mtx.gz", &gzip(mtx::MATRIX.as_bytes())?)?;
    let pair = |a: &[u8], b: &[u8]| -> Vec<u8> {
        let mut v = (a.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        v
    };
    seed("mtx_sidecars", "chr22.bin", &pair(mtx::BARCODES.as_bytes(), mtx::PEAKS.as_bytes()))?;
    let peaks6 = head("chr22_scatac/macs3_callpeak_frag_peaks.narrowPeak", 6, |_| true)?;
    let tsv: String = mtx::BARCODES.lines().map(|b| format!("{b}-1\tcell\n")).collect();
    seed("mtx_sidecars", "narrowpeak_and_columns.bin", &pair(tsv.as_bytes(), peaks6.as_bytes()))?;
    seed("mtx_sidecars", "gzip_peaks.bin", &pair(mtx::BARCODES.as_bytes(), &gzip(mtx::PEAKS.as_bytes())?))?;
    Ok(())
}

/// Yeast coverage of the first fragments of chrI and chrII, over those two chromosomes cut
/// to `len` bases.
fn yeast_track(len: u64, mode: PileupMode) -> Result<Track> {
    let sizes = ChromSizes::from_pairs([("chrI".to_string(), len), ("chrII".to_string(), len)])?;
    let frags = head("yeast/yeast_500k_SRR1822137.frag.gz", 400, |l| {
        let f: Vec<&str> = l.split('\t').collect();
        (f[0] == "chrI" || f[0] == "chrII") && f[2].parse::<u64>().is_ok_and(|e| e <= len)
    })?;
    let path = scratch().join("yeast.tsv");
    std::fs::write(&path, frags)?;
    let opts = CoverageOptions { mode, extend: 20, ..Default::default() };
    Ok(coverage_from_fragments(&path, &sizes, &opts, &mut |_| {})?.0)
}

fn track_seeds() -> Result {
    let track = yeast_track(6000, PileupMode::Fragments)?;
    seed_from_file("bedgraph", "yeast_fragments.bedGraph", |p| Ok(chromax::io::bedgraph::write_bedgraph(p, &track)?))?;
    seed(
        "bedgraph",
        "header_and_spaces.bedGraph",
        b"track type=bedGraph\nchrI 0 10 1.5\nchrI 10 20 0\nchrI 25 30 -2e-1\nchrII 0 5 3\n",
    )?;
    let cuts = yeast_track(3000, PileupMode::CutSites)?;
    seed_from_file("bigwig", "yeast_cut_sites.bw", |p| Ok(chromax::io::bigwig::write_bigwig(p, &cuts, 1)?))?;
    let small = yeast_track(600, PileupMode::Fragments)?;
    seed_from_file("bigwig", "yeast_600bp.bw", |p| Ok(chromax::io::bigwig::write_bigwig(p, &small, 1)?))?;

    // Shards: the same coverage as f32, u16 and a 0/1 mask; a base-code store from FASTA.
    let shard = yeast_track(1500, PileupMode::Fragments)?;
    for dtype in [Dtype::F32, Dtype::U16, Dtype::U8] {
        let name = format!("yeast_1500bp_{}.cxtrack", dtype.name());
        seed_from_file("shard", &name, |p| Ok(write_shard(p, &shard, dtype, None).map(drop)?))?;
    }
    let fa = chr_iv_head(1200)?;
    let fa_path = scratch().join("chrIV.fa");
    std::fs::write(&fa_path, format!("{fa}>chrM\nACGTNacgtn\n"))?;
    seed_from_file("shard", "chrIV_bases.cxtrack", |p| {
        Ok(chromax::store::bases::build_base_store(&fa_path, p).map(drop)?)
    })?;
    Ok(())
}

/// 6 chr22 peaks × 8 barcodes, with a few counts.
fn cell_counts() -> CsrCounts {
    let peaks = mtx::PEAKS
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Interval { chrom: f[0].into(), start: f[1].parse().expect("start"), end: f[2].parse().expect("end") }
        })
        .collect();
    CsrCounts {
        peaks,
        cells: mtx::BARCODES.lines().map(String::from).collect(),
        indptr: vec![0, 1, 2, 3, 4, 4, 5],
        indices: vec![0, 4, 1, 3, 7],
        counts: vec![2, 1, 1, 3, 4],
    }
}

/// A fixed-width string attribute: a variable-length one costs a 4 KiB global heap.
fn text(s: &str) -> AttrValue {
    AttrValue::String(s.to_owned())
}

/// How an AnnData seed spells its obs/var indexes and its peaks.
#[derive(Clone, Copy)]
struct H5adForm {
    /// Variable-length strings for the indexes (as anndata writes them) instead of fixed ones.
    vlen_index: bool,
    /// `chr`/`start`/`end` var columns (categorical chr) instead of peak names.
    var_columns: bool,
    /// X as CSC (of cells × peaks, i.e. the CSR of peaks × cells) instead of CSR.
    csc: bool,
    /// X dense instead of sparse.
    dense: bool,
    /// An `obsm/X_embed` array.
    obsm: bool,
}

/// An obs or var dataframe holding only its index.
fn frame(b: &mut FileBuilder, name: &str, index: &[&str], vlen: bool) -> Result<GroupBuilder> {
    let mut g = b.create_group(name);
    g.set_attr("encoding-type", text("dataframe"));
    g.set_attr("_index", text("_index"));
    let ds = g.create_dataset("_index");
    if vlen {
        ds.with_vlen_strings(index);
    } else {
        ds.with_ascii_strings(index)?;
    }
    Ok(g)
}

/// The 6 × 8 counts as an AnnData file (cells × peaks) of the given form.
fn write_anndata(path: &Path, m: &CsrCounts, form: H5adForm) -> Result {
    let peaks_by_cells = CsrF32 {
        rows: m.peaks.len(),
        cols: m.cells.len(),
        indptr: m.indptr.iter().map(|&v| v as i64).collect(),
        indices: m.indices.iter().map(|&v| v as i64).collect(),
        // Fractions, as a normalised matrix holds: read as max(1, round(v)).
        data: m.counts.iter().map(|&v| v as f32 + 0.25).collect(),
    };
    let x = if form.csc { peaks_by_cells } else { transpose(&peaks_by_cells) };
    let shape = [m.cells.len() as u64, m.peaks.len() as u64];
    let mut b = FileBuilder::new();
    b.set_attr("encoding-type", text("anndata"));
    b.set_attr("encoding-version", text("0.1.0"));
    if form.dense {
        let sparse = transpose(&x);
        let mut dense = vec![0f32; m.cells.len() * m.peaks.len()];
        for r in 0..sparse.rows {
            for k in sparse.indptr[r] as usize..sparse.indptr[r + 1] as usize {
                dense[sparse.indices[k] as usize * m.peaks.len() + r] = sparse.data[k];
            }
        }
        b.create_dataset("X").with_f32_data(&dense).with_shape(&shape);
    } else {
        let mut g = b.create_group("X");
        g.set_attr("encoding-type", text(if form.csc { "csc_matrix" } else { "csr_matrix" }));
        g.set_attr("encoding-version", text("0.1.0"));
        g.set_attr("shape", AttrValue::I64Array(shape.map(|v| v as i64).to_vec()));
        let data: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
        g.create_dataset("data").with_f64_data(&data);
        let indices: Vec<i32> = x.indices.iter().map(|&v| v as i32).collect();
        g.create_dataset("indices").with_i32_data(&indices);
        g.create_dataset("indptr").with_i64_data(&x.indptr);
        b.add_group(g.finish());
    }
    let cells: Vec<&str> = m.cells.iter().map(String::as_str).collect();
    let obs = frame(&mut b, "obs", &cells, form.vlen_index)?;
    b.add_group(obs.finish());
    let names: Vec<String> = if form.var_columns {
        (0..m.peaks.len()).map(|i| format!("peak{i}")).collect()
    } else {
        m.peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect()
    };
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut var = frame(&mut b, "var", &names, form.vlen_index)?;
    if form.var_columns {
        let mut chr = var.create_group("chr");
        chr.set_attr("encoding-type", text("categorical"));
        chr.set_attr("encoding-version", text("0.2.0"));
        chr.create_dataset("categories").with_ascii_strings(&["chr21", "chr22"])?;
        chr.create_dataset("codes").with_i8_data(&[1; 6]);
        var.add_group(chr.finish());
        let starts: Vec<i64> = m.peaks.iter().map(|p| p.start as i64).collect();
        let ends: Vec<i32> = m.peaks.iter().map(|p| p.end as i32).collect();
        var.create_dataset("start").with_i64_data(&starts);
        var.create_dataset("end").with_i32_data(&ends);
    }
    b.add_group(var.finish());
    if form.obsm {
        let mut g = b.create_group("obsm");
        let values: Vec<f32> = (0..2 * m.cells.len()).map(|i| i as f32 * 0.5).collect();
        g.create_dataset("X_embed").with_f32_data(&values).with_shape(&[m.cells.len() as u64, 2]);
        b.add_group(g.finish());
    }
    b.write(path)?;
    Ok(())
}

fn matrix_seeds() -> Result {
    let m = cell_counts();
    seed_from_file("cell_matrix", "chr22_6x8.cxmatrix", |p| Ok(write_matrix(p, &m)?))?;

    // AnnData (chromax's own writer gives 170 KB for this, a 4 KiB heap per string, so the
    // seeds are written with hdf5-pure directly, in the forms the reader accepts).
    let base = H5adForm { vlen_index: false, var_columns: true, csc: false, dense: false, obsm: true };
    let forms = [
        ("csr_columns_obsm.h5ad", base),
        ("csr_vlen_peak_names.h5ad", H5adForm { vlen_index: true, var_columns: false, obsm: false, ..base }),
        ("csc_columns.h5ad", H5adForm { csc: true, obsm: false, ..base }),
        ("dense_peak_names.h5ad", H5adForm { dense: true, var_columns: false, obsm: false, ..base }),
    ];
    for (name, form) in forms {
        seed_from_file("h5ad", name, |p| write_anndata(p, &m, form))?;
    }

    // 10x: peaks only, and multiome (gene rows between the peaks).
    for genes in [false, true] {
        let name = if genes { "multiome_feature_bc_matrix.h5" } else { "filtered_peak_bc_matrix.h5" };
        seed_from_file("tenx", name, |p| write_10x(p, &m, genes))?;
    }
    Ok(())
}

/// A 10x feature-barcode matrix as Cell Ranger writes it (CSC by barcode, fixed-length
/// strings), as tests/matrix_inputs.rs does.
fn write_10x(path: &Path, m: &CsrCounts, genes: bool) -> Result {
    let mut features: Vec<(String, &str, Option<usize>)> = Vec::new();
    for (i, p) in m.peaks.iter().enumerate() {
        features.push((format!("{}:{}-{}", p.chrom, p.start, p.end), "Peaks", Some(i)));
        if genes && i % 3 == 0 {
            features.push((format!("ENSG0000000{i}"), "Gene Expression", None));
        }
    }
    let mut dense = vec![vec![0u32; m.cells.len()]; m.peaks.len()];
    for (r, row) in dense.iter_mut().enumerate() {
        for (c, n) in m.row(r) {
            row[c as usize] = n;
        }
    }
    let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
    for c in 0..m.cells.len() {
        for (row, (_, _, p)) in features.iter().enumerate() {
            let n = p.map_or(7, |p| dense[p][c]);
            if n > 0 {
                indices.push(row as i64);
                data.push(n as i32);
            }
        }
        indptr.push(indices.len() as i64);
    }
    let mut b = FileBuilder::new();
    let mut g = b.create_group("matrix");
    let bcs: Vec<&str> = m.cells.iter().map(String::as_str).collect();
    g.create_dataset("barcodes").with_ascii_strings(&bcs)?;
    g.create_dataset("data").with_i32_data(&data);
    g.create_dataset("indices").with_i64_data(&indices);
    g.create_dataset("indptr").with_i64_data(&indptr);
    g.create_dataset("shape").with_i32_data(&[features.len() as i32, m.cells.len() as i32]);
    let mut f = g.create_group("features");
    let ids: Vec<&str> = features.iter().map(|f| f.0.as_str()).collect();
    let types: Vec<&str> = features.iter().map(|f| f.1).collect();
    f.create_dataset("id").with_ascii_strings(&ids)?;
    f.create_dataset("feature_type").with_ascii_strings(&types)?;
    g.add_group(f.finish());
    b.add_group(g.finish());
    b.write(path)?;
    Ok(())
}

fn model_seeds() -> Result {
    let dirs = models::write_model_dirs(&scratch().join("models"))?;
    for (name, dir) in [("denoise", &dirs.denoise), ("sc", &dirs.sc)] {
        seed("model_config", &format!("{name}_config.json"), &std::fs::read(dir.join("config.json"))?)?;
    }
    let cpu = chromax::backend::cpu::CpuBackend::new();
    let denoise = DenoiseNet::new(&cpu, models::denoise_config().model, 0)?;
    seed_from_file("safetensors", "denoise_demo.safetensors", |p| {
        Ok(write_tensors(p, &weight_tensors(&cpu, &denoise)?)?)
    })?;
    let sc = SeqNet::new(&cpu, models::seq_config().model, 0, None)?;
    seed_from_file("safetensors", "seqnet_tiny_with_metadata.safetensors", |p| {
        let meta = [("format".to_string(), "chromax-seq-1".to_string())].into();
        Ok(write_tensors_with_metadata(p, &weight_tensors(&cpu, &sc)?, Some(meta))?)
    })?;
    Ok(())
}

/// Read pairs from yeast fragments in the BAM target's genome: each fragment a proper pair
/// whose Tn5-shifted 5′ ends are its cut sites, as tests/coverage_bam.rs writes them; plus a
/// duplicate, a low-MAPQ pair and an unmapped read.
fn bam_seeds() -> Result {
    use noodles::core::Position;
    use noodles::sam;
    use noodles::sam::alignment::io::Write as _;
    use noodles::sam::alignment::record::cigar::op::{Kind, Op};
    use noodles::sam::alignment::record::{Flags, MappingQuality};
    use noodles::sam::alignment::RecordBuf;
    use noodles::sam::header::record::value::map::ReferenceSequence;
    use noodles::sam::header::record::value::Map;
    use std::num::NonZero;

    const READ_LEN: usize = 36;
    let genome = bam_fixture::GENOME;
    let mut header = sam::Header::builder();
    for (name, len) in genome {
        header = header
            .add_reference_sequence(name, Map::<ReferenceSequence>::new(NonZero::new(len as usize).ok_or("length")?));
    }
    let header = header.build();
    let record =
        |chrom: usize, pos1: usize, name: &str, flags: u16, mapq: u8, mate: usize, tlen: i32| -> Result<RecordBuf> {
            Ok(RecordBuf::builder()
                .set_name(name)
                .set_flags(Flags::from_bits_retain(flags))
                .set_reference_sequence_id(chrom)
                .set_alignment_start(Position::try_from(pos1)?)
                .set_cigar([Op::new(Kind::Match, READ_LEN)].into_iter().collect())
                .set_mapping_quality(MappingQuality::new(mapq).ok_or("mapq")?)
                .set_mate_reference_sequence_id(chrom)
                .set_mate_alignment_start(Position::try_from(mate)?)
                .set_template_length(tlen)
                .build())
        };
    let mut reads = Vec::new();
    for chrom in 0..genome.len() {
        let (name, len) = genome[chrom];
        let frags = head("yeast/yeast_500k_SRR1822137.frag.gz", 60, |l| {
            let f: Vec<&str> = l.split('\t').collect();
            f[0] == name && f[2].parse::<u64>().is_ok_and(|e| e + 5 <= len) && f[1].parse::<u64>().is_ok_and(|s| s >= 4)
        })?;
        for (i, line) in frags.lines().enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            let (s, e): (usize, usize) = (f[1].parse()?, f[2].parse()?);
            if e + 5 < READ_LEN {
                continue;
            }
            let (fwd, rev) = (s - 4 + 1, e + 5 - READ_LEN + 1);
            let tlen = (e + 4 - (s - 4) + 1) as i32;
            let (flag_extra, mapq) = match i {
                7 => (0x400, 60),
                9 => (0, 5),
                _ => (0, 60),
            };
            let qname = format!("{name}_{i}");
            reads.push(record(chrom, fwd, &qname, 99 | flag_extra, mapq, rev, tlen)?);
            reads.push(record(chrom, rev, &qname, 147 | flag_extra, mapq, fwd, -tlen)?);
        }
    }
    reads.sort_by_key(|r| (r.reference_sequence_id(), r.alignment_start()));
    reads.push(RecordBuf::builder().set_name("unmapped").set_flags(Flags::UNMAPPED).build());

    let path = scratch().join("reads.bam");
    let mut writer = noodles::bam::io::writer::Builder.build_from_path(&path)?;
    writer.write_header(&header)?;
    for r in &reads {
        writer.write_alignment_record(&header, r)?;
    }
    writer.try_finish()?;
    drop(writer);
    let compressed = std::fs::read(&path)?;
    let mut plain = Vec::new();
    noodles::bgzf::io::Reader::new(compressed.as_slice()).read_to_end(&mut plain)?;
    // The target compresses an input without the gzip magic itself.
    seed("bam", "yeast_pairs.bam.raw", &plain)?;
    seed("bam", "yeast_pairs.bam", &compressed)?;
    Ok(())
}

/// Reads every seed back with its target's reader: a seed the reader refuses explores
/// nothing past its first fault. (The Matrix Market and model seeds need their targets'
/// fixed companions and are left to the smoke runs; the BAM's raw seed is compressed there.)
fn check_seeds() -> Result {
    use chromax::io;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let readers: [(&str, fn(&Path) -> std::result::Result<(), chromax::error::FileError>); 12] = [
        ("fragments", |p| {
            let mut r = io::fragments::FragmentReader::open(p)?;
            while r.next()?.is_some() {}
            Ok(())
        }),
        ("bed", |p| io::bed::read_intervals(p).map(drop)),
        ("bedgraph", |p| io::bedgraph::read_bedgraph(p, None).map(drop)),
        ("chrom_sizes", |p| ChromSizes::read(p).map(drop)),
        ("barcodes", |p| io::barcodes::read_barcodes(p).map(drop)),
        ("fasta", |p| chromax::store::bases::read_fasta(p).map(drop)),
        ("h5ad", |p| {
            io::h5ad::read_h5ad_counts(p)?;
            // read_h5ad_x takes sparse X only.
            match p.to_string_lossy().contains("dense") {
                true => Ok(()),
                false => io::h5ad::read_h5ad_x(p).map(drop),
            }
        }),
        ("tenx", |p| io::tenx::read_10x_h5(p).map(drop)),
        ("bigwig", |p| io::bigwig::read_bigwig(p, None).map(drop)),
        ("safetensors", |p| io::safetensors::read_tensors(p).map(drop)),
        ("shard", |p| chromax::store::shard::TrackShard::open(p).map(drop)),
        ("cell_matrix", |p| chromax::store::matrix::read_matrix(p).map(drop)),
    ];
    for (target, read) in readers {
        for entry in std::fs::read_dir(root.join(target))? {
            let path = entry?.path();
            read(&path).map_err(|e| format!("seed {} is refused: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn main() -> Result {
    text_seeds()?;
    track_seeds()?;
    matrix_seeds()?;
    model_seeds()?;
    bam_seeds()?;
    check_seeds()?;
    let _ = std::fs::remove_dir_all(scratch());
    Ok(())
}
