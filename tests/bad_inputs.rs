//! The bad-input table: one row per case — a command, the inputs made for it in a directory
//! of its own, the expected exit code and fragments of the expected message. Every row also
//! checks that no input changed, and that a refused command left nothing (no output, no
//! temporary file), a succeeding one only its outputs. No row may panic.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SIZES: &str = "c\t60000\nv\t20000\n";

/// What a row puts in its directory.
enum Src {
    Text(&'static str),
    Bytes(Vec<u8>),
    /// A file of the shared fixtures (made once per run, below).
    Fixture(&'static str),
    /// A file of tests/data.
    Data(&'static str),
    Dir,
    /// A symbolic link to another name in the row's directory.
    Link(&'static str),
}

struct Row {
    name: &'static str,
    files: Vec<(&'static str, Src)>,
    args: Vec<String>,
    exit: i32,
    expect: Vec<&'static str>,
    /// Names a succeeding row may add.
    leaves: Vec<&'static str>,
    /// The file-size limit (KiB) the command runs under, standing for a full disk.
    file_size_limit: Option<u64>,
    /// A cache of its own (CHROMAX_TRACK_CACHE inside the row's directory's sibling).
    own_cache: bool,
    /// Commands run first, in the row's directory, without the file-size limit.
    prepare: Vec<Vec<String>>,
    /// CHROMAX_TRACK_CACHE names a file, so the cache cannot be made (a read-only one, for root).
    cache_is_a_file: bool,
    /// The error is the only line on stderr (no stray line from a library before it).
    one_line: bool,
}

fn row(name: &'static str, files: Vec<(&'static str, Src)>, args: &str, expect: Vec<&'static str>) -> Row {
    Row {
        name,
        files,
        args: args.split_whitespace().map(String::from).collect(),
        exit: 1,
        expect,
        leaves: vec![],
        file_size_limit: None,
        own_cache: false,
        prepare: vec![],
        one_line: false,
        cache_is_a_file: false,
    }
}

impl Row {
    fn succeeds(mut self, leaves: Vec<&'static str>) -> Row {
        self.exit = 0;
        self.leaves = leaves;
        self
    }

    /// A refused command that may leave these (what it wrote before the refusal, complete).
    fn leaves(mut self, leaves: Vec<&'static str>) -> Row {
        self.leaves = leaves;
        self
    }

    fn exits(mut self, code: i32) -> Row {
        self.exit = code;
        self
    }

    fn cache_is_a_file(mut self) -> Row {
        self.cache_is_a_file = true;
        self
    }

    fn one_line(mut self) -> Row {
        self.one_line = true;
        self
    }

    fn prepare(mut self, args: &str) -> Row {
        self.prepare.push(args.split_whitespace().map(String::from).collect());
        self
    }

    fn disk_limit(mut self, kib: u64) -> Row {
        self.file_size_limit = Some(kib);
        self
    }

    fn own_cache(mut self) -> Row {
        self.own_cache = true;
        self
    }
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

/// Fragments on both chromosomes of [`SIZES`], two cells.
fn fragments() -> String {
    let mut s = String::new();
    for i in 0..400u64 {
        let (chrom, len) = if i % 4 == 0 { ("v", 20_000u64) } else { ("c", 60_000) };
        let start = (i * 7919) % (len - 400);
        s.push_str(&format!(
            "{chrom}\t{start}\t{}\t{}\t1\n",
            start + 150 + i % 100,
            ["AAAC-1", "CCGT-1"][i as usize % 2]
        ));
    }
    s
}

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_chromax")
}

fn chromax(dir: &Path, args: &[&str]) {
    let out = Command::new(bin()).args(args).current_dir(dir).env("CHROMAX_TRACK_CACHE", dir.join("cache")).output();
    let out = out.expect("run chromax");
    assert!(out.status.success(), "fixture {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn bgzip(text: &str) -> Vec<u8> {
    let mut w = noodles::bgzf::io::Writer::new(Vec::new());
    w.write_all(text.as_bytes()).expect("bgzip");
    w.finish().expect("bgzip")
}

/// A coordinate-sorted BAM of 200 paired-looking reads on one chromosome, "c", no index.
fn write_bam(path: &Path) {
    use noodles::sam::alignment::io::Write as _;
    use noodles::sam::alignment::record::cigar::op::{Kind, Op};
    use noodles::sam::header::record::value::map::header::{sort_order::COORDINATE, tag::SORT_ORDER};
    use noodles::sam::header::record::value::{map::ReferenceSequence, Map};
    let sorted = Map::<noodles::sam::header::record::value::map::Header>::builder()
        .insert(SORT_ORDER, COORDINATE)
        .build()
        .expect("@HD");
    let header = noodles::sam::Header::builder()
        .set_header(sorted)
        .add_reference_sequence(
            "c",
            Map::<ReferenceSequence>::new(std::num::NonZero::new(60_000usize).expect("length")),
        )
        .build();
    let mut writer = noodles::bam::io::writer::Builder.build_from_path(path).expect("bam");
    writer.write_header(&header).expect("header");
    for i in 0..200usize {
        let record = noodles::sam::alignment::RecordBuf::builder()
            .set_name(format!("r{i}"))
            .set_flags(noodles::sam::alignment::record::Flags::empty())
            .set_reference_sequence_id(0)
            .set_alignment_start(noodles::core::Position::try_from(100 + i * 250).expect("pos"))
            .set_mapping_quality(noodles::sam::alignment::record::MappingQuality::new(60).expect("mapq"))
            .set_cigar([Op::new(Kind::Match, 50)].into_iter().collect())
            .build();
        writer.write_alignment_record(&header, &record).expect("record");
    }
    writer.try_finish().expect("finish");
}

/// The BAI of a BAM, written beside it.
fn index_bam(path: &Path) {
    match noodles::bam::fs::index(path).expect("index") {
        noodles::bam::Index::Bai(index) => {
            noodles::bam::bai::fs::write(chromax::io::prefixed(path, ".bai"), &index).expect("bai")
        }
        noodles::bam::Index::Csi(_) => panic!("a BAI was expected"),
    }
}

/// [`fragments`], sorted and bgzipped as `path`, with its tabix index beside it.
fn bgzip_with_tabix(path: &Path) {
    use noodles::core::Position;
    use noodles::csi::binning_index::index::reference_sequence::bin::Chunk;
    let mut lines: Vec<(String, u64, u64, String)> = fragments()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].parse().expect("start"), f[2].parse().expect("end"), f[3].to_string())
        })
        .collect();
    lines.sort();
    let mut writer = noodles::bgzf::io::Writer::new(std::fs::File::create(path).expect("create"));
    let mut indexer = noodles::tabix::index::Indexer::default();
    indexer.set_header(noodles::csi::binning_index::index::header::Builder::bed().build());
    let mut start = writer.virtual_position();
    for (chrom, s, e, bc) in &lines {
        writeln!(writer, "{chrom}\t{s}\t{e}\t{bc}\t1").expect("write");
        let end = writer.virtual_position();
        let (from, to) =
            (Position::try_from(*s as usize + 1).expect("pos"), Position::try_from(*e as usize).expect("pos"));
        indexer.add_record(chrom, from, to, Chunk::new(start, end)).expect("index");
        start = end;
    }
    writer.finish().expect("finish");
    noodles::tabix::fs::write(chromax::io::prefixed(path, ".tbi"), &indexer.build()).expect("tbi");
}

/// A copy of a bgzipped fixture, decompressed, edited and compressed again.
fn patched_bgzf(fixture: &str, edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    use std::io::Read;
    let file = std::fs::File::open(fixtures().join(fixture)).expect("fixture");
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(file).read_to_end(&mut plain).expect("decompress");
    edit(&mut plain);
    let mut w = noodles::bgzf::io::Writer::new(Vec::new());
    w.write_all(&plain).expect("bgzf");
    w.finish().expect("bgzf")
}

/// The shared fixtures: tracks, peaks, a trained denoiser, a single-cell model and matrix.
/// The longest a row's command may run (the slowest takes about 2 s on 2 cores).
const ROW_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chromax-badinputs-fixtures-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("synth")).expect("dir");
        std::fs::write(dir.join("g.sizes"), SIZES).expect("sizes");
        std::fs::write(dir.join("frag.tsv"), fragments()).expect("fragments");
        write_bam(&dir.join("reads.bam"));
        std::fs::copy(dir.join("reads.bam"), dir.join("ix.bam")).expect("copy");
        index_bam(&dir.join("ix.bam"));
        bgzip_with_tabix(&dir.join("ix.tsv.gz"));
        std::fs::write(dir.join("peaks.bed"), "c\t1000\t2000\nc\t30000\t31000\nv\t500\t900\n").expect("peaks");
        chromax(&dir, &["coverage", "frag.tsv", "-g", "g.sizes", "-o", "cov.bw"]);
        chromax(&dir, &["coverage", "frag.tsv", "-g", "g.sizes", "-o", "cov.bedGraph"]);
        chromax(&dir, &["coverage", "frag.tsv", "-g", "g.sizes", "-o", "cov.cxtrack"]);
        chromax(&dir, &["store", "build", "cov.bedGraph", "-g", "g.sizes", "--dtype", "f32", "-o", "cov32.cxtrack"]);
        let small = "--blocks 1 --filters 4 --kernel 5 --dilation 1 --cls-blocks 1 --cls-filters 4 --cls-kernel 5 --cls-dilation 1";
        let train = format!(
            "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --interval 10000 --pad 100 --batch 2 --epochs 1 --device cpu {small} -o model"
        );
        chromax(&dir, &train.split_whitespace().collect::<Vec<_>>());
        // A single-cell model of a tiny architecture on synthetic data.
        chromax::sc::synth::write_synthetic(
            &chromax::sc::synth::SynthSpec { cells: 20, peaks: 30, density: 0.2, seed: 3 },
            &dir.join("synth"),
        )
        .expect("synthetic");
        for (from, to) in [("genome.fa", "genome.fa"), ("matrix.cxmatrix", "matrix.cxmatrix"), ("peaks.bed", "synth.bed")] {
            std::fs::rename(dir.join("synth").join(from), dir.join(to)).expect("move");
        }
        std::fs::write(
            dir.join("tiny.json"),
            r#"{"seq_len": 128, "stem_filters": 4, "stem_kernel": 5, "stem_pool": 2, "tower_filters": [4],
               "tower_kernel": 3, "tower_pool": 2, "final_filters": 2, "bottleneck": 3, "dropout": 0.1,
               "bn_momentum": 0.9, "bn_eps": 0.001}"#,
        )
        .expect("config");
        let sc = "sc train --peaks synth.bed -g genome.fa --matrix matrix.cxmatrix --model-config tiny.json --epochs 1 --batch 8 --device cpu -o scmodel";
        chromax(&dir, &sc.split_whitespace().collect::<Vec<_>>());
        chromax(&dir, &["sc", "matrix", "--fragments", "frag.tsv", "--peaks", "peaks.bed", "-o", "m.h5ad"]);
        dir
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Every file below `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("dir").flatten() {
            let p = entry.path();
            if p.file_name().is_some_and(|n| n == "cache") {
                continue;
            }
            if p.is_dir() {
                out.insert(p.strip_prefix(dir).expect("below").to_path_buf(), b"<dir>".to_vec());
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).expect("below").to_path_buf(), std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn run_row(r: &Row, root: &Path) -> Result<(), String> {
    let dir = root.join(r.name);
    std::fs::create_dir_all(&dir).expect("row dir");
    for (name, src) in &r.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent");
        }
        match src {
            Src::Text(t) => std::fs::write(&path, t).expect("write"),
            Src::Bytes(b) => std::fs::write(&path, b).expect("write"),
            Src::Fixture(f) => {
                let from = fixtures().join(f);
                if from.is_dir() {
                    copy_dir(&from, &path)
                } else {
                    std::fs::copy(from, &path).map(|_| ()).expect("fixture")
                }
            }
            Src::Data(rel) => std::fs::copy(data(rel), &path).map(|_| ()).expect("data"),
            Src::Dir => std::fs::create_dir_all(&path).expect("dir"),
            Src::Link(target) => std::os::unix::fs::symlink(target, &path).expect("symlink"),
        }
    }
    let cache =
        if r.own_cache || r.cache_is_a_file { root.join(format!("{}-cache", r.name)) } else { root.join("cache") };
    if r.cache_is_a_file {
        std::fs::write(&cache, b"not a directory").expect("cache file");
    }
    for args in &r.prepare {
        let out = Command::new(bin()).args(args).current_dir(&dir).env("CHROMAX_TRACK_CACHE", &cache).output();
        let out = out.map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "{}: preparing `{}` failed: {}",
                r.name,
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let before = snapshot(&dir);
    let mut cmd = match r.file_size_limit {
        Some(kib) => {
            let mut c = Command::new("sh");
            // SIGXFSZ ignored, so a write past the limit fails with EFBIG, as on a full disk.
            c.arg("-c").arg(format!("ulimit -f {kib}; trap '' XFSZ; exec \"$0\" \"$@\"")).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    // Run under a time limit, so that a command that hangs fails its row instead of stalling
    // the suite; its output goes to files beside the row's directory (not among its inputs).
    let err_path = root.join(format!("{}.stderr", r.name));
    let mut child = cmd
        .args(&r.args)
        .current_dir(&dir)
        .env("CHROMAX_TRACK_CACHE", &cache)
        .stdout(std::fs::File::create(root.join(format!("{}.stdout", r.name))).map_err(|e| e.to_string())?)
        .stderr(std::fs::File::create(&err_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if started.elapsed() > ROW_TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let mut problems = Vec::new();
    match status {
        None => problems.push(format!("still running after {} s: killed", ROW_TIME_LIMIT.as_secs())),
        Some(status) if status.code() != Some(r.exit) => {
            problems.push(format!("exit {:?}, expected {}", status.code(), r.exit))
        }
        Some(_) => {}
    }
    if stderr.contains("panicked") {
        problems.push("panicked".into());
    }
    if r.one_line && (stderr.lines().count() != 1 || !stderr.starts_with("error: ")) {
        problems.push("stderr is not the one error line".into());
    }
    for piece in &r.expect {
        if !stderr.contains(piece) {
            problems.push(format!("the message lacks '{piece}'"));
        }
    }
    let after = snapshot(&dir);
    for (path, bytes) in &before {
        match after.get(path) {
            Some(b) if b == bytes => {}
            Some(_) => problems.push(format!("the input {} changed", path.display())),
            None => problems.push(format!("the input {} is gone", path.display())),
        }
    }
    for path in after.keys().filter(|p| !before.contains_key(*p)) {
        let name = path.to_string_lossy();
        let allowed = r.leaves.iter().any(|l| name == *l || name.starts_with(&format!("{l}/")));
        if !allowed {
            problems.push(format!("left behind: {name}"));
        }
    }
    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    } else {
        Err(format!(
            "{}: {} — `chromax {}`\n  stderr: {}",
            r.name,
            problems.join("; "),
            r.args.join(" "),
            stderr.trim()
        ))
    }
}

fn f(name: &'static str) -> (&'static str, Src) {
    (name, Src::Fixture(name))
}

fn text(name: &'static str, t: &'static str) -> (&'static str, Src) {
    (name, Src::Text(t))
}

fn bytes(name: &'static str, b: Vec<u8>) -> (&'static str, Src) {
    (name, Src::Bytes(b))
}

/// A copy of a fixture with some bytes changed.
fn patched(fixture: &str, edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(fixtures().join(fixture)).expect("fixture");
    edit(&mut b);
    b
}

/// A safetensors file with the first value of its first F32 tensor made NaN.
fn with_nan(fixture: &str) -> Vec<u8> {
    patched(fixture, |b| {
        let n = u64::from_le_bytes(b[..8].try_into().expect("header length")) as usize;
        let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).expect("header");
        let (_, info) = header
            .as_object()
            .expect("object")
            .iter()
            .find(|(k, v)| *k != "__metadata__" && v["dtype"] == "F32")
            .expect("an F32 tensor");
        let at = 8 + n + info["data_offsets"][0].as_u64().expect("offset") as usize;
        b[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    })
}

/// A copy of an f32 track shard with the value at `chrom`:`pos` (0-based) set.
fn shard_with(fixture: &str, chrom: &str, pos: usize, value: f32) -> Vec<u8> {
    patched(fixture, |b| {
        let n = u64::from_le_bytes(b[16..24].try_into().expect("index length")) as usize;
        let index: serde_json::Value = serde_json::from_slice(&b[24..24 + n]).expect("index");
        let entry = index["chroms"].as_array().expect("chroms").iter().find(|c| c["name"] == chrom).expect("chrom");
        let at = entry["offset"].as_u64().expect("offset") as usize + 4 * pos;
        b[at..at + 4].copy_from_slice(&value.to_le_bytes());
    })
}

/// A safetensors file with every F32 value set to `value`.
fn with_all(fixture: &str, value: f32) -> Vec<u8> {
    patched(fixture, |b| {
        let n = u64::from_le_bytes(b[..8].try_into().expect("header length")) as usize;
        let header: serde_json::Value = serde_json::from_slice(&b[8..8 + n]).expect("header");
        for (_, info) in
            header.as_object().expect("object").iter().filter(|(k, v)| *k != "__metadata__" && v["dtype"] == "F32")
        {
            let (from, to) =
                (info["data_offsets"][0].as_u64().expect("offset"), info["data_offsets"][1].as_u64().expect("offset"));
            for at in (8 + n + from as usize..8 + n + to as usize).step_by(4) {
                b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
    })
}

/// Four bytes into the compressed stream of a bigWig's first data block set to 0xff (the
/// data count follows the header's full-data offset; the block follows the count).
fn damage_first_data_block(b: &mut Vec<u8>) {
    let data = u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")) as usize;
    let at = data + 8 + 4;
    b[at..at + 4].copy_from_slice(&[0xff; 4]);
}

fn table() -> Vec<Row> {
    let yeast_sizes = ("sizes", Src::Data("yeast/sacCer3.chrom.sizes"));
    vec![
        // --- Outputs that are inputs: refused before anything is read -------------------------
        row("peaks_onto_its_track", vec![f("cov.bedGraph")], "peaks cov.bedGraph -o cov.bedGraph", vec!["-o would overwrite the input TRACK"]),
        row("peaks_onto_its_track_by_another_path", vec![f("cov.bedGraph"), ("sub", Src::Dir)], "peaks cov.bedGraph -o ./sub/../cov.bedGraph", vec!["would overwrite the input TRACK"]),
        row("peaks_onto_a_link_to_its_track", vec![f("cov.bedGraph"), ("link.bedGraph", Src::Link("cov.bedGraph"))], "peaks cov.bedGraph -o link.bedGraph", vec!["would overwrite the input TRACK"]),
        row("store_build_onto_its_bed", vec![f("peaks.bed"), f("g.sizes")], "store build peaks.bed -g g.sizes -o peaks.bed", vec!["would overwrite the input INPUT"]),
        row("coverage_onto_its_cells_list", vec![f("frag.tsv"), f("g.sizes"), text("cells.bedGraph", "AAAC-1\n")], "coverage frag.tsv -g g.sizes --cells cells.bedGraph -o cells.bedGraph", vec!["would overwrite the input --cells"]),
        row("denoise_run_prefix_onto_noisy", vec![f("model"), ("s.track.bw", Src::Fixture("cov.bw")), f("g.sizes")], "denoise run --model model --noisy s.track.bw -g g.sizes -o s --device cpu", vec!["would overwrite the input --noisy"]),
        row("denoise_run_into_the_model", vec![f("model"), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o model/out --device cpu", vec!["inside the model directory --model"]),
        row("denoise_eval_json_onto_clean", vec![f("model"), f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise eval --model model --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --json cov.bw --device cpu", vec!["--json would overwrite the input"]),
        row("sc_embed_onto_the_model", vec![f("scmodel")], "sc embed --model scmodel -o scmodel/model.safetensors", vec!["inside the model directory --model"]),
        row("sc_matrix_onto_its_peaks", vec![f("frag.tsv"), ("p.h5ad", Src::Fixture("peaks.bed"))], "sc matrix --fragments frag.tsv --peaks p.h5ad -o p.h5ad", vec!["would overwrite the input --peaks"]),
        row("sc_train_over_its_peaks_bed", vec![f("genome.fa"), f("matrix.cxmatrix"), ("out/peaks.bed", Src::Fixture("synth.bed")), f("tiny.json")], "sc train --peaks out/peaks.bed -g genome.fa --matrix matrix.cxmatrix --model-config tiny.json --device cpu -o out", vec!["would overwrite the input --peaks"]),
        row("denoise_train_over_its_genome", vec![f("cov.bw"), f("peaks.bed"), ("run/config.json", Src::Fixture("g.sizes"))], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g run/config.json --val-chrom v -o run --device cpu", vec!["would overwrite the input --genome"]),
        // --- Full disks (a file-size limit stands for one) ---------------------------------------
        row("store_build_on_a_full_disk", vec![f("cov.bedGraph"), f("g.sizes")], "store build cov.bedGraph -g g.sizes -o out.cxtrack", vec!["out.cxtrack", "cannot reserve"]).disk_limit(64),
        row("coverage_bigwig_on_a_full_disk", vec![("frag.tsv", Src::Data("chr22_scatac/fragments.tsv.gz")), text("g.sizes", "chr22\t50818468\n")], "coverage frag.tsv -g g.sizes -o out.bedGraph", vec!["out.bedGraph", "File too large"]).disk_limit(8),
        row("training_checkpoints_on_a_full_disk", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --interval 10000 --pad 100 --batch 2 --epochs 1 --blocks 1 --filters 4 --kernel 5 --dilation 1 --cls-blocks 1 --cls-filters 4 --cls-kernel 5 --cls-dilation 1 --device cpu -o run", vec!["run/", "File too large"]).disk_limit(4).prepare("store build cov.bw -g g.sizes --dtype f32").prepare("store build peaks.bed -g g.sizes --dtype u8").leaves(vec!["run", "run/config.json"]),
        row("the_cache_on_a_full_disk_names_the_way_out", vec![f("cov.bedGraph"), f("g.sizes")], "store build cov.bedGraph -g g.sizes", vec!["CHROMAX_TRACK_CACHE"]).disk_limit(64).own_cache(),
        row("a_cache_that_cannot_be_made_names_the_way_out", vec![f("cov.bedGraph"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bedGraph --clean cov.bedGraph --peaks peaks.bed -g g.sizes --val-chrom v --device cpu -o run", vec!["cannot be written", "set CHROMAX_TRACK_CACHE to a writable directory"]).cache_is_a_file(),
        // --- Damaged internal files -----------------------------------------------------------
        row("shard_with_an_altered_dtype", vec![bytes("cov.cxtrack", patched("cov.cxtrack", |b| { let at = b.windows(13).position(|w| w == b"\"dtype\":\"u16\"").expect("dtype"); b[at..at + 13].copy_from_slice(b"\"dtype\":\"u8\" "); }))], "store info cov.cxtrack", vec!["cov.cxtrack", "does not match the file's layout"]),
        row("shard_truncated", vec![bytes("cov.cxtrack", patched("cov.cxtrack", |b| b.truncate(b.len() - 100)))], "peaks cov.cxtrack -o p.narrowPeak", vec!["cov.cxtrack", "truncated"]),
        row("checkpoint_with_nan_weights", vec![f("model"), bytes("model/model.safetensors", with_nan("model/model.safetensors")), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --device cpu", vec!["model.safetensors", "holds NaN"]),
        row("a_model_whose_output_overflows", vec![f("model"), bytes("model/model.safetensors", with_all("model/model.safetensors", 1e30)), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --device cpu", vec!["model", "the model produced a non-finite value at c:"]),
        row("a_model_whose_output_overflows_in_eval", vec![f("model"), bytes("model/model.safetensors", with_all("model/model.safetensors", 1e30)), f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise eval --model model --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --device cpu", vec!["the model produced a non-finite value"]),
        row("not_a_checkpoint", vec![f("model"), bytes("model/model.safetensors", b"not a safetensors file".to_vec()), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --device cpu", vec!["model.safetensors", "not a safetensors file"]),
        row("a_config_naming_a_huge_layer", vec![f("model"), bytes("model/config.json", std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/model_config/denoise_cls_filters_huge.json")).expect("regression")), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --device cpu", vec!["config.json", "model setting cls_filters is 8888888888888888: at most 65536 is accepted"]),
        row("config_json_garbage", vec![f("model"), text("model/config.json", "{\"format\": 3"), f("cov.bw")], "denoise run --model model --noisy cov.bw -o out --device cpu", vec!["config.json", "not a valid chromax model config"]),
        row("denoise_model_given_to_sc_embed", vec![f("model")], "sc embed --model model -o e.h5ad", vec!["chromax-denoise-1", "chromax sc"]),
        row("a_bigwig_as_the_model", vec![f("cov.bw")], "denoise run --model cov.bw --noisy cov.bw -o out --device cpu", vec!["cov.bw", "a bigWig file", "config.json"]),
        row("a_missing_model", vec![f("cov.bw")], "denoise run --model nowhere --noisy cov.bw -o out --device cpu", vec!["nowhere", "not a chromax model directory"]),
        // --- Resource abuse ---------------------------------------------------------------------
        row("threads_by_the_hundred_thousand", vec![], "--threads 100000 devices", vec!["--threads 100000", "give 1 to"]),
        row("threads_zero", vec![], "--threads 0 devices", vec!["--threads 0"]),
        row("a_batch_of_a_hundred_million", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --interval 10000 --pad 100 --batch 100000000 --epochs 1 --blocks 1 --filters 4 --kernel 5 --dilation 1 --cls-blocks 1 --cls-filters 4 --cls-kernel 5 --cls-dilation 1 --device cpu -o run", vec!["epoch   1"]).succeeds(vec!["run"]),
        row("an_interval_below_the_receptive_field", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --interval 100 --device cpu -o run", vec!["--interval 100", "receptive field (8401 bases)"]),
        row("an_interval_that_needs_more_memory_than_there_is", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --interval 4000000000 --pad 5000 --batch 64 --device cpu -o run", vec!["--batch", "would fit"]),
        row("denoise_run_batch_zero", vec![f("model"), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --batch 0 --device cpu", vec!["--batch must be at least 1"]),
        row("denoise_eval_batch_zero", vec![f("model"), f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise eval --model model --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --batch 0 --device cpu", vec!["--batch must be at least 1"]),
        row("bench_denoise_batch_zero", vec![], "bench denoise --batch 0 --device cpu", vec!["--batch and --interval must be at least 1"]),
        row("sc_train_batch_zero", vec![f("genome.fa"), f("matrix.cxmatrix"), ("peaks.bed", Src::Fixture("synth.bed")), f("tiny.json")], "sc train --peaks peaks.bed -g genome.fa --matrix matrix.cxmatrix --model-config tiny.json --batch 0 --device cpu -o out", vec!["--batch must be at least 1"]),
        // --- Silent oddities -----------------------------------------------------------------------
        row("a_barcode_listed_twice_for_coverage", vec![f("frag.tsv"), f("g.sizes"), text("cells.txt", "AAAC-1\nCCGT-1\nAAAC-1\n")], "coverage frag.tsv -g g.sizes --cells cells.txt -o out.bw", vec!["cells.txt: line 3", "'AAAC-1' is listed twice"]),
        row("a_barcode_listed_twice_for_sc_matrix", vec![f("frag.tsv"), f("peaks.bed"), text("cells.txt", "AAAC-1\nAAAC-1,T\n")], "sc matrix --fragments frag.tsv --peaks peaks.bed --cells cells.txt -o m.h5ad", vec!["cells.txt: line 2", "listed twice"]),
        row("an_empty_regions_bed", vec![f("model"), f("cov.bw"), f("g.sizes"), text("none.bed", "")], "denoise run --model model --noisy cov.bw -g g.sizes --regions none.bed -o out --device cpu", vec!["none.bed", "no regions"]),
        // --- Messages that say what is wrong ---------------------------------------------------
        row("output_under_a_file", vec![f("cov.bedGraph")], "peaks cov.bedGraph -o cov.bedGraph/p.narrowPeak", vec!["cov.bedGraph is a file, not a directory"]),
        row("output_directory_missing", vec![f("cov.bedGraph")], "peaks cov.bedGraph -o nodir/p.narrowPeak", vec!["nodir", "does not exist"]),
        row("device_gpu_without_one", vec![f("model"), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes -o out --device gpu", vec!["--device gpu", "accepts cpu, cuda, cuda:N"]),
        row("device_spelled_wrong", vec![f("model"), f("cov.bw")], "denoise run --model model --noisy cov.bw -o out --device tpu", vec!["unknown device 'tpu'", "'cpu', 'cuda' or 'cuda:N'"]),
        // --- Readers: truncated, malformed, mismatched ---------------------------------------
        row("a_bam_region_without_its_index", vec![f("reads.bam")], "coverage reads.bam --region c:1-1000 -o out.bw", vec!["reads.bam", "--region needs the BAM's index", "samtools index"]),
        row("a_bam_region_through_its_index", vec![f("ix.bam"), f("ix.bam.bai")], "coverage ix.bam --region c:1-5000 -o out.bw", vec!["used"]).succeeds(vec!["out.bw"]),
        row("a_bai_with_a_bin_past_its_depth", vec![f("ix.bam"), bytes("ix.bam.bai", patched("ix.bam.bai", |b| b[12..16].copy_from_slice(&40_000u32.to_le_bytes())))], "coverage ix.bam --region c:1-5000 -o out.bw", vec!["ix.bam.bai", "damaged index", "bin 40000", "samtools index"]).one_line(),
        row("a_bai_claiming_two_billion_references", vec![f("ix.bam"), bytes("ix.bam.bai", patched("ix.bam.bai", |b| b[4..8].copy_from_slice(&0x7fff_ffffu32.to_le_bytes())))], "coverage ix.bam --region c:1-5000 -o out.bw", vec!["ix.bam.bai", "2147483647 reference sequences", "more than the index holds"]).one_line(),
        row("a_tabix_index_region_reads", vec![f("ix.tsv.gz"), f("ix.tsv.gz.tbi"), f("g.sizes")], "coverage ix.tsv.gz -g g.sizes --region c:1-30000 -o out.bw", vec!["used"]).succeeds(vec!["out.bw"]),
        row("a_tabix_index_with_a_bin_past_its_depth", vec![f("ix.tsv.gz"), bytes("ix.tsv.gz.tbi", patched_bgzf("ix.tsv.gz.tbi", |b| { let names = u32::from_le_bytes(b[32..36].try_into().expect("l_nm")) as usize; let at = 36 + names + 4; b[at..at + 4].copy_from_slice(&50_000u32.to_le_bytes()); })), f("g.sizes")], "coverage ix.tsv.gz -g g.sizes --region c:1-30000 -o out.bw", vec!["ix.tsv.gz.tbi", "damaged index", "bin 50000"]).one_line(),
        row("a_bam_without_a_region_needs_no_index", vec![f("reads.bam")], "coverage reads.bam -o out.bw", vec![]).succeeds(vec!["out.bw"]),
        row("a_bam_of_thirty_bytes", vec![bytes("short.bam", patched("reads.bam", |b| b.truncate(30)))], "coverage short.bam -o out.bw", vec!["short.bam", "truncated", "samtools"]).one_line(),
        row("a_bam_cut_in_half", vec![bytes("half.bam", patched("reads.bam", |b| b.truncate(b.len() / 2)))], "coverage half.bam -o out.bw", vec!["half.bam", "no end-of-file block", "truncated"]).one_line(),
        row("a_bam_cut_between_blocks", vec![bytes("cut.bam", patched("reads.bam", |b| b.truncate(b.len() - 28)))], "coverage cut.bam -o out.bw", vec!["cut.bam", "no end-of-file block"]),
        row("a_text_file_named_bam", vec![text("text.bam", "c\t10\t100\tAAA\t1\n")], "coverage text.bam -o out.bw", vec!["text.bam", "not a BAM file", "1f 8b 08 04"]).one_line(),
        row("bgzip_fragments_cut_between_blocks", vec![bytes("cut.tsv.gz", { let b = bgzip(&fragments()); b[..b.len() - 28].to_vec() }), f("g.sizes")], "coverage cut.tsv.gz -g g.sizes -o out.bw", vec!["cut.tsv.gz", "no end-of-file block", "truncated", "bgzip"]),
        row("a_bigwig_cut_in_half", vec![bytes("half.bw", patched("cov.bw", |b| b.truncate(b.len() / 2)))], "peaks half.bw -o p.narrowPeak", vec!["half.bw", "truncated bigWig"]).one_line(),
        row("a_bigwig_with_damaged_data", vec![bytes("flip.bw", patched("cov.bw", damage_first_data_block))], "peaks flip.bw -o p.narrowPeak", vec!["flip.bw", "damaged bigWig", "data block"]).one_line(),
        row("a_bigwig_damaged_for_training", vec![bytes("flip.bw", patched("cov.bw", damage_first_data_block)), f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy flip.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --device cpu -o run", vec!["flip.bw", "damaged bigWig"]),
        row("peaks_on_coverage_of_3e38", vec![text("huge.bedGraph", "c\t0\t300\t3e38\nc\t300\t400\t1\n")], "peaks huge.bedGraph --lambda 1 -o p.narrowPeak", vec!["1 peaks"]).succeeds(vec!["p.narrowPeak"]),
        row("peaks_whose_mean_is_3e38", vec![text("huge.bedGraph", "c\t0\t300\t3e38\nc\t300\t400\t1\n")], "peaks huge.bedGraph -o p.narrowPeak", vec!["huge.bedGraph", "above 1e6", "--lambda"]),
        row("peaks_lambda_1e300", vec![f("cov.bedGraph")], "peaks cov.bedGraph --lambda 1e300 -o p.narrowPeak", vec!["--lambda 1e300", "at most 1e6"]),
        row("a_shard_holding_infinity_for_training", vec![bytes("inf.cxtrack", shard_with("cov32.cxtrack", "v", 19_999, f32::INFINITY)), f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy inf.cxtrack --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --device cpu -o run", vec!["inf.cxtrack", "value inf at v:20000", "finite and non-negative"]),
        row("a_shard_holding_a_negative_value_for_peaks", vec![bytes("neg.cxtrack", shard_with("cov32.cxtrack", "v", 19_999, -1.0))], "peaks neg.cxtrack -o p.narrowPeak", vec!["neg.cxtrack", "v:", "negative"]),
        row("fragments_past_the_chromosome_end", vec![text("f.tsv", "c\t100\t300\tA\t1\nc\t59900\t60100\tA\t1\nc\t60000\t60200\tA\t1\nc\t90000\t90200\tA\t1\n"), f("g.sizes")], "coverage f.tsv -g g.sizes -o out.bw", vec!["read 4 fragments, used 2", "2 fragments start at or past their chromosome's end", "201 bases of coverage fell off"]).succeeds(vec!["out.bw"]),
        row("fragments_all_past_the_chromosome_end", vec![text("f.tsv", "c\t60000\t60200\tA\t1\nc\t90000\t90200\tA\t1\n"), f("g.sizes")], "coverage f.tsv -g g.sizes -o out.bw", vec!["f.tsv", "every record lies past its chromosome's end", "(2 of 2)"]),
        row("peaks_on_infinite_coverage", vec![text("inf.bedGraph", "c\t0\t100\tinf\n")], "peaks inf.bedGraph -o p.narrowPeak", vec!["inf.bedGraph: line 1", "'inf' is not a finite number"]),
        row("truncated_gzip_fragments", vec![bytes("cut.tsv.gz", { let b = gzip(&fragments()); b[..b.len() / 2].to_vec() }), f("g.sizes")], "coverage cut.tsv.gz -g g.sizes -o out.bw", vec!["cut.tsv.gz", "line", "truncated"]),
        row("fragments_with_three_columns", vec![text("f.tsv", "c\t10\t100\tAAA\t1\nc\t20\t200\tAAA\t1\nc\t30\t300\n"), f("g.sizes")], "coverage f.tsv -g g.sizes -o out.bw", vec!["f.tsv: line 3", "3 column(s)", "chrom start end barcode"]),
        row("fragments_with_a_word_for_a_start", vec![bytes("a.tsv.gz", gzip("c\t10\t100\tAAA\t1\nc\tten\t200\tAAA\t1\n")), f("g.sizes")], "coverage a.tsv.gz -g g.sizes -o out.bedGraph", vec!["a.tsv.gz: line 2", "start 'ten' is not a non-negative integer"]),
        row("fragments_ending_before_they_start", vec![text("b.tsv", "c\t500\t100\tAAA\t1\n"), f("g.sizes")], "coverage b.tsv -g g.sizes -o out.bw", vec!["b.tsv: line 1", "start 500 is not before end 100"]),
        row("sizes_listing_a_chromosome_twice", vec![text("f.tsv", "c\t10\t100\tAAA\t1\n"), text("sizes", "c\t60000\nv\t20000\nc\t60000\n")], "coverage f.tsv -g sizes -o out.bw", vec!["sizes: line 3", "'c' is listed twice"]),
        row("chromosome_names_without_chr", vec![text("f.tsv", "I\t10\t100\tAAA\t1\nII\t20\t200\tAAA\t1\n"), yeast_sizes], "coverage f.tsv -g sizes -o out.bw", vec!["f.tsv", "'I'", "'chrI'", "'chr' prefix"]),
        row("empty_fragments", vec![text("empty.tsv", ""), f("g.sizes")], "coverage empty.tsv -g g.sizes -o out.bw", vec!["empty.tsv", "no fragments"]),
        row("fragments_of_comments_only", vec![bytes("comments.tsv.gz", gzip("# only a header\n")), f("g.sizes")], "coverage comments.tsv.gz -g g.sizes -o out.bw", vec!["comments.tsv.gz", "no fragments"]),
        row("empty_sizes", vec![f("frag.tsv"), text("nosizes", "")], "coverage frag.tsv -g nosizes -o out.bw", vec!["nosizes", "no chromosomes"]),
        row("empty_bedgraph", vec![text("empty.bedGraph", "")], "peaks empty.bedGraph -o p.narrowPeak", vec!["empty.bedGraph", "empty bedGraph"]),
        row("unknown_output_format", vec![f("frag.tsv"), f("g.sizes")], "coverage frag.tsv -g g.sizes -o out.txt", vec!["out.txt", "unknown output format", ".bw"]),
        row("fragments_without_sizes", vec![f("frag.tsv")], "coverage frag.tsv -o out.bw", vec!["--genome SIZES is required"]),
        row("subsampling_above_one", vec![f("frag.tsv"), f("g.sizes")], "coverage frag.tsv -g g.sizes -o out.bw --subsample-reads 1.5", vec!["--subsample-reads 1.5", "(0, 1]"]),
        row("a_region_on_no_chromosome", vec![f("frag.tsv"), f("g.sizes")], "coverage frag.tsv -g g.sizes -o out.bw --region chrX:1-10", vec!["--region chrX", "not in the genome sizes"]),
        row("cells_none_of_which_exist", vec![f("frag.tsv"), f("g.sizes"), text("cells.txt", "TTTT-1\n")], "coverage frag.tsv -g g.sizes -o out.bw --cells cells.txt", vec!["none of the 1 selected barcodes", "TTTT-1"]),
        row("a_text_file_as_a_shard", vec![f("frag.tsv")], "store info frag.tsv", vec!["frag.tsv", "not a chromax track shard"]),
        row("a_fragments_file_as_a_track", vec![f("frag.tsv")], "peaks frag.tsv -o p.narrowPeak", vec!["frag.tsv", "unknown track format"]),
        row("negative_coverage", vec![text("neg.bedGraph", "c\t0\t100\t-3\nv\t0\t100\t1\n"), f("g.sizes"), f("peaks.bed")], "denoise train --noisy neg.bedGraph --clean neg.bedGraph --peaks peaks.bed -g g.sizes --val-chrom v --device cpu -o run", vec!["neg.bedGraph", "non-negative"]),
        row("nan_coverage", vec![text("nan.bedGraph", "c\t0\t100\tnan\nv\t0\t100\t1\n"), f("g.sizes"), f("peaks.bed")], "denoise train --noisy nan.bedGraph --clean nan.bedGraph --peaks peaks.bed -g g.sizes --val-chrom v --device cpu -o run", vec!["nan.bedGraph"]),
        row("peaks_past_the_chromosome_end", vec![f("cov.bw"), f("g.sizes"), text("far.bed", "c\t59000\t61000\n")], "store build far.bed -g g.sizes -o far.cxtrack", vec!["far.bed", "c:59000-61000", "ends past the chromosome's end (60000 bp)"]),
        row("an_unknown_validation_chromosome", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom chrZ --device cpu -o run", vec!["--val-chrom chrZ", "no such chromosome"]),
        row("tracks_of_another_assembly", vec![f("cov.bw"), f("peaks.bed"), text("other.sizes", "c\t61000\nv\t20000\n")], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g other.sizes --val-chrom v --device cpu -o run", vec!["cov.bw", "another assembly"]),
        row("a_region_past_the_chromosome_end", vec![f("model"), f("cov.bw"), f("g.sizes")], "denoise run --model model --noisy cov.bw -g g.sizes --regions c:59000-61000 -o out --device cpu", vec!["c:59000-61000", "past the chromosome's end"]),
        row("a_misspelled_flag", vec![], "denoise train --epoch 3", vec!["unexpected argument '--epoch'", "--epochs"]).exits(2),
        row("resume_of_nothing", vec![f("cov.bw"), f("peaks.bed"), f("g.sizes"), ("empty", Src::Dir)], "denoise train --noisy cov.bw --clean cov.bw --peaks peaks.bed -g g.sizes --val-chrom v --device cpu --resume empty", vec!["empty", "no training run"]),
        row("a_matrix_of_other_peaks", vec![f("genome.fa"), f("m.h5ad"), ("peaks.bed", Src::Fixture("synth.bed")), f("tiny.json")], "sc train --peaks peaks.bed -g genome.fa --matrix m.h5ad --model-config tiny.json --device cpu -o out", vec!["m.h5ad has 3 peaks", "peaks.bed has 30", "the peaks the matrix was counted on"]),
        row("a_truncated_h5ad", vec![f("genome.fa"), bytes("m.h5ad", patched("m.h5ad", |b| b.truncate(b.len() / 2))), ("peaks.bed", Src::Fixture("synth.bed")), f("tiny.json")], "sc train --peaks peaks.bed -g genome.fa --matrix m.h5ad --model-config tiny.json --device cpu -o out", vec!["m.h5ad", "the HDF5 file is truncated"]),
        row("peaks_on_chromosomes_the_fasta_lacks", vec![f("genome.fa"), f("matrix.cxmatrix"), f("peaks.bed"), f("tiny.json")], "sc train --peaks peaks.bed -g genome.fa --matrix matrix.cxmatrix --model-config tiny.json --device cpu -o out", vec!["peaks.bed", "synth"]),
        row("a_matrix_format_it_cannot_read", vec![f("genome.fa"), text("m.csv", "a,b\n"), ("peaks.bed", Src::Fixture("synth.bed")), f("tiny.json")], "sc train --peaks peaks.bed -g genome.fa --matrix m.csv --model-config tiny.json --device cpu -o out", vec!["m.csv", "not a matrix form this reads"]),
        row("an_sc_model_config_that_is_not_one", vec![f("genome.fa"), f("matrix.cxmatrix"), ("peaks.bed", Src::Fixture("synth.bed")), text("bad.json", "{\"seq_len\": 1}")], "sc train --peaks peaks.bed -g genome.fa --matrix matrix.cxmatrix --model-config bad.json --device cpu -o out", vec!["bad.json", "not a SeqNet configuration"]),
        row("embed_to_an_unknown_format", vec![f("scmodel")], "sc embed --model scmodel -o cells.txt", vec!["cells.txt", ".h5ad"]),
    ]
}

#[test]
fn every_bad_input_gets_a_clear_refusal_and_leaves_nothing() {
    let root = std::env::temp_dir().join(format!("chromax-badinputs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("root");
    fixtures();
    let rows = table();
    let mut names = std::collections::HashSet::new();
    for r in &rows {
        assert!(names.insert(r.name), "two rows are named {}", r.name);
    }
    let failures: Vec<String> = rows.iter().filter_map(|r| run_row(r, &root).err()).collect();
    common::say(&format!("bad-input table: {} rows, {} failed", rows.len(), failures.len()));
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    let _ = std::fs::remove_dir_all(&root);
}
