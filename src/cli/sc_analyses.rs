//! `chromax sc tf-activity | ism | variants`: the analyses of a trained single-cell model.

use super::device::select;
use super::progress::thousands;
use super::CliResult;
use chromax::io::barcodes::read_barcodes;
use chromax::io::bed::{read_intervals, Interval};
use chromax::io::guard::Files;
use chromax::io::h5ad::{write_h5ad, AnnData, Column, CscStream};
use chromax::io::text::write_lines;
use chromax::io::vcf::{read_snvs, BASES};
use chromax::on_backend;
use chromax::sc::analyses::{
    background_means, background_sequences, ism_window, tf_activity, variant_effects, variant_windows, Head,
    TfActivityOptions,
};
use chromax::sc::groups::{GroupSource, Groups};
use chromax::sc::model::{load_seq_model, open_sc_model, ScModelConfig, PEAKS_FILE};
use chromax::sc::motifs::read_motifs;
use chromax::store::bases::BaseStore;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, clap::Args)]
pub struct TfActivityArgs {
    /// Model directory from `chromax sc train`.
    #[arg(long)]
    pub model: PathBuf,
    /// Motifs: JASPAR (as bundled, or .jaspar) or MEME minimal format.
    #[arg(long)]
    pub motifs: PathBuf,
    /// Genome FASTA the model was trained on.
    #[arg(long, short = 'g')]
    pub genome: PathBuf,
    /// Peaks the backgrounds are drawn from (default: the model's peaks.bed).
    #[arg(long)]
    pub peaks: Option<PathBuf>,
    /// Output .h5ad (cells × motifs, X = z-scores); a .tsv of the same is written beside it.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Motif instances per motif.
    #[arg(long, default_value_t = 1000)]
    pub instances: usize,
    /// Background sequences (dinucleotide-shuffled peaks).
    #[arg(long, default_value_t = 1000)]
    pub background: usize,
    #[arg(long, default_value_t = 10)]
    pub seed: u64,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// cpu, cuda or cuda:N (default: CUDA when usable).
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

/// Which cells the per-group results are for.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    /// Cell groups: a TSV of barcode<TAB>group, or obs:KEY of the training .h5ad (default:
    /// all cells as one group).
    #[arg(long, conflicts_with = "cells")]
    pub groups: Option<String>,
    /// One result per listed cell (one barcode per line) instead of per group.
    #[arg(long)]
    pub cells: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImputeArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, short = 'g')]
    pub genome: PathBuf,
    /// Peaks to impute (default: the model's peaks.bed); any regions work, the model reads
    /// their sequence.
    #[arg(long)]
    pub peaks: Option<PathBuf>,
    /// Output .h5ad: cells × peaks (X as CSC, written peak by peak), or groups × peaks with
    /// --groups.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Only these cells (one barcode per line), in this order.
    #[arg(long, conflicts_with = "groups")]
    pub cells: Option<PathBuf>,
    /// A groups × peaks pseudobulk (mean over each group's cells) instead: a TSV of
    /// barcode<TAB>group or obs:KEY of the training .h5ad.
    #[arg(long)]
    pub groups: Option<String>,
    /// Keep each cell's intercept (its depth) in the probabilities.
    #[arg(long)]
    pub keep_depth: bool,
    /// Refuse an output larger than this many bytes.
    #[arg(long, default_value_t = 16_000_000_000)]
    pub max_bytes: u64,
    /// Bytes of a chunk's buffers (peaks per chunk follow from it and the cell count).
    #[arg(long, default_value_t = 256 << 20)]
    pub memory: u64,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

impl GroupArgs {
    /// The files these options read, for the output checks.
    fn inputs<'a>(&'a self, files: Files<'a>) -> Files<'a> {
        group_inputs(files, self.groups.as_deref(), self.cells.as_deref())
    }

    fn read(&self, config: &ScModelConfig, cells: &[String]) -> Result<Groups, chromax::Error> {
        read_groups(self.groups.as_deref(), self.cells.as_deref(), config, cells)
    }
}

/// The files `--groups` (unless `obs:KEY`) and `--cells` read, for the output checks.
fn group_inputs<'a>(files: Files<'a>, groups: Option<&'a str>, cells: Option<&'a Path>) -> Files<'a> {
    files.inputs("--groups", groups.filter(|g| !g.starts_with("obs:"))).inputs("--cells", cells)
}

#[derive(Debug, clap::Args)]
pub struct IsmArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, short = 'g')]
    pub genome: PathBuf,
    /// Regions (BED): each is scored on the model's window around its centre.
    #[arg(long)]
    pub regions: PathBuf,
    /// Output .h5: delta[region, position, base, group] and the reference bases.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[command(flatten)]
    pub groups: GroupArgs,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

#[derive(Debug, clap::Args)]
pub struct VariantsArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, short = 'g')]
    pub genome: PathBuf,
    /// SNVs: VCF, plain or gzip/bgzip.
    #[arg(long)]
    pub vcf: PathBuf,
    /// Output .tsv or .h5ad (variants × groups).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[command(flatten)]
    pub groups: GroupArgs,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long)]
    pub device: Option<String>,
    /// f32 or bf16 products in the convolutions (sums f32). Default: bf16 on a GPU of compute
    /// capability 8.0 or later (DenoiseNet's few-channel convolutions on the tensor cores), f32
    /// elsewhere; on the CPU bf16 needs AVX512-BF16.
    #[arg(long)]
    pub precision: Option<chromax::backend::Precision>,
}

/// `3,725 s` as `1 h 2 min`.
fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{} h {:.0} min", (s / 3600.0) as u64, (s % 3600.0) / 60.0)
    }
}

/// The path with another extension.
fn sibling(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

fn training_matrix(config: &ScModelConfig) -> Option<PathBuf> {
    config.training.get("matrix").and_then(|m| m.as_str()).map(PathBuf::from)
}

/// The groups of `--groups` (a table or `obs:KEY`), else one per cell of `--cells`, else all
/// the model's cells as one.
fn read_groups(
    groups: Option<&str>,
    list: Option<&Path>,
    config: &ScModelConfig,
    cells: &[String],
) -> Result<Groups, chromax::Error> {
    Ok(match (groups, list) {
        (Some(g), _) => Groups::read(&GroupSource::parse(g), cells, training_matrix(config).as_deref())?,
        (None, Some(list)) => Groups::per_cell(&read_barcodes(list)?, cells, list)?,
        (None, None) => Groups::all(cells.len()),
    })
}

pub fn tf_activity_cmd(a: &TfActivityArgs) -> CliResult {
    let peaks_path = a.peaks.clone().unwrap_or_else(|| a.model.join(PEAKS_FILE));
    let tsv = sibling(&a.output, "tsv");
    Files::new()
        .model_dir("--model", &a.model)
        .input("--motifs", &a.motifs)
        .input("--genome", &a.genome)
        .input("--peaks", &peaks_path)
        .output("-o", &a.output)
        .output("-o (its .tsv)", &tsv)
        .check()?;
    if !a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5ad")) {
        return Err(format!("-o {}: use a .h5ad name (a .tsv is written beside it)", a.output.display()).into());
    }
    let motifs = read_motifs(&a.motifs)?;
    let peaks = read_intervals(&peaks_path)?;
    let genome = BaseStore::cached(&a.genome)?;
    let (config, cells) = open_sc_model(&a.model)?;
    let opts = TfActivityOptions { instances: a.instances, background: a.background, seed: a.seed, batch: a.batch };
    let seq_len = config.model.seq_len;
    let origin = peaks_path.display().to_string();
    let background = background_sequences(&genome, &peaks, a.background, seq_len, a.seed, &origin)?;
    let compute = select(a.device.as_deref(), a.precision)?;
    let result = on_backend!(compute, b => {
        let (net, _, _) = load_seq_model(b, &a.model)?;
        let started = Instant::now();
        let means = background_means(b, &net, &background, a.batch)?;
        let rate = a.background as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let total = motifs.len() * a.instances;
        eprintln!(
            "{} motifs × {} instances = {} sequences for {} cells: about {} at the {:.0} sequences/s the {} backgrounds ran at",
            thousands(motifs.len() as u64),
            thousands(a.instances as u64),
            thousands(total as u64),
            thousands(cells.len() as u64),
            duration(total as f64 / rate),
            rate,
            thousands(a.background as u64)
        );
        let bar = indicatif::ProgressBar::new(motifs.len() as u64);
        let r = tf_activity(b, &net, &background, &means, &motifs, &opts, &mut |k| bar.set_position(k as u64));
        bar.finish_and_clear();
        r
    })?;
    let var_names: Vec<String> = motifs.iter().map(|m| m.id.clone()).collect();
    write_h5ad(
        &a.output,
        &AnnData {
            x_dense: Some(result.scores.clone()),
            obs_names: cells.clone(),
            var_names: var_names.clone(),
            var: vec![("name".into(), Column::Str(motifs.iter().map(|m| m.name.clone()).collect()))],
            obsm: vec![("raw_difference".into(), result.raw.clone(), result.motifs)],
            ..AnnData::default()
        },
    )?;
    let m = result.motifs;
    let header = std::iter::once(format!("barcode\t{}", var_names.join("\t")));
    let rows = cells.iter().enumerate().map(|(c, bc)| {
        let v: Vec<String> = result.scores[c * m..(c + 1) * m].iter().map(|x| format!("{x:.5}")).collect();
        format!("{bc}\t{}", v.join("\t"))
    });
    write_lines(&tsv, header.chain(rows))?;
    eprintln!(
        "TF activity of {} motifs in {} cells (z-scores across cells) written to {} and {}",
        thousands(m as u64),
        thousands(cells.len() as u64),
        a.output.display(),
        tsv.display()
    );
    Ok(())
}

/// `1234567` as `1.2 MB`.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / 1e6),
        n => format!("{:.1} kB", n as f64 / 1e3),
    }
}

pub fn impute_cmd(a: &ImputeArgs) -> CliResult {
    let peaks_path = a.peaks.clone().unwrap_or_else(|| a.model.join(PEAKS_FILE));
    let files = Files::new().model_dir("--model", &a.model).input("--genome", &a.genome).input("--peaks", &peaks_path);
    group_inputs(files, a.groups.as_deref(), a.cells.as_deref()).output("-o", &a.output).check()?;
    if !a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5ad")) {
        return Err(format!("-o {}: use a .h5ad name", a.output.display()).into());
    }
    let peaks = read_intervals(&peaks_path)?;
    let (config, cells) = open_sc_model(&a.model)?;
    // With --groups a pseudobulk of the groups; else the cells of --cells (or all), each its own column.
    let selected = read_groups(a.groups.as_deref(), a.cells.as_deref(), &config, &cells)?;
    let (groups, chosen): (Option<Groups>, Vec<u32>) = match a.groups {
        Some(_) => (Some(selected), Vec::new()),
        None => (None, selected.members.into_iter().flatten().collect()),
    };
    let (n_peaks, dim, len) = (peaks.len() as u64, config.model.bottleneck, config.model.seq_len);
    let dense = chosen.len() as u64 * n_peaks * 8 + (n_peaks + 1) * 8;
    let size = match &groups {
        Some(g) => g.names.len() as u64 * n_peaks * 4,
        None => dense,
    };
    let what = match &groups {
        Some(g) => format!("{} groups × {} peaks", g.names.len(), thousands(n_peaks)),
        None => format!(
            "{} cells × {} peaks (CSC: a value and a cell index per entry)",
            thousands(chosen.len() as u64),
            thousands(n_peaks)
        ),
    };
    if size > a.max_bytes {
        return Err(format!(
            "-o {}: {what} would take {}, over --max-bytes {}: write a pseudobulk with --groups FILE|obs:KEY, \
             impute a subset with --cells FILE or --peaks FILE, or raise --max-bytes",
            a.output.display(),
            bytes(size),
            bytes(a.max_bytes)
        )
        .into());
    }
    let cells_in_chunk = groups.as_ref().map_or(chosen.len(), |g| g.members.iter().map(Vec::len).sum());
    let chunk = chromax::sc::impute::chunk_for(a.memory, len, dim, cells_in_chunk);
    eprintln!(
        "output: {what}, {}; {} peaks per chunk, {} of buffers at most",
        bytes(size),
        thousands(chunk as u64),
        bytes(chromax::sc::impute::chunk_bytes(chunk.min(peaks.len().max(1)), len, dim, cells_in_chunk))
    );
    let genome = BaseStore::cached(&a.genome)?;
    let windows = genome.peak_windows(&peaks, len, &peaks_path.display().to_string())?;
    let names: Vec<String> = peaks.iter().map(|p| format!("{}:{}-{}", p.chrom, p.start, p.end)).collect();
    let var = vec![
        ("chr".to_string(), Column::Str(peaks.iter().map(|p| p.chrom.clone()).collect())),
        ("start".to_string(), Column::I64(peaks.iter().map(|p| p.start as i64).collect())),
        ("end".to_string(), Column::I64(peaks.iter().map(|p| p.end as i64).collect())),
    ];
    let started = Instant::now();
    let compute = select(a.device.as_deref(), a.precision)?;
    on_backend!(compute, b => {
        let (net, _, _) = load_seq_model(b, &a.model)?;
        let head = Head::of(b, &net)?;
        match &groups {
            Some(g) => {
                let (x, _) = chromax::sc::impute::impute_groups(b, &net, &head, &windows, g, a.keep_depth, chunk, a.batch)?;
                write_h5ad(&a.output, &AnnData { x_dense: Some(x), obs_names: g.names.clone(), var_names: names.clone(), var: var.clone(), ..AnnData::default() })?;
            }
            None => {
                let obs_names: Vec<String> = chosen.iter().map(|&c| cells[c as usize].clone()).collect();
                let mut w = CscStream::create(&a.output, &obs_names, &[], &names, &var)?;
                let bar = indicatif::ProgressBar::new(peaks.len() as u64);
                chromax::sc::impute::impute_streamed(b, &net, &head, &windows, &chosen, a.keep_depth, chunk, a.batch, &mut |probs| {
                    w.push_columns(probs)?;
                    bar.inc((probs.len() / chosen.len()) as u64);
                    Ok(())
                })?;
                bar.finish_and_clear();
                w.finish()?;
            }
        }
        Ok::<(), chromax::Error>(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "denoised accessibility of {what} written to {} in {secs:.1} s ({:.3e} peak × cell values/s)",
        a.output.display(),
        (n_peaks * cells_in_chunk as u64) as f64 / secs.max(1e-9)
    );
    Ok(())
}

pub fn ism_cmd(a: &IsmArgs) -> CliResult {
    let files = Files::new().model_dir("--model", &a.model).input("--genome", &a.genome).input("--regions", &a.regions);
    a.groups.inputs(files).output("-o", &a.output).check()?;
    if !a.output.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5")) {
        return Err(format!("-o {}: use a .h5 name", a.output.display()).into());
    }
    let regions = read_intervals(&a.regions)?;
    let genome = BaseStore::cached(&a.genome)?;
    let (config, cells) = open_sc_model(&a.model)?;
    let groups = a.groups.read(&config, &cells)?;
    let len = config.model.seq_len;
    let windows = genome.peak_windows(&regions, len, &a.regions.display().to_string())?;
    let compute = select(a.device.as_deref(), a.precision)?;
    let g = groups.names.len();
    let delta = on_backend!(compute, b => {
        let (net, _, _) = load_seq_model(b, &a.model)?;
        let head = Head::of(b, &net)?;
        let group_w = groups.mean_rows(&head.w, head.dim);
        eprintln!(
            "{} regions × {} substitutions = {} sequences, {} groups",
            thousands(regions.len() as u64),
            thousands(3 * len as u64),
            thousands((regions.len() * 3 * len) as u64),
            g
        );
        let bar = indicatif::ProgressBar::new(regions.len() as u64);
        let mut delta = Vec::with_capacity(regions.len() * len * 4 * g);
        for w in windows.chunks(len) {
            delta.extend(ism_window(b, &net, w, &group_w, a.batch)?);
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, chromax::Error>(delta)
    })?;
    write_ism_h5(&a.output, &a.model, &regions, len, &windows, &groups.names, &delta)?;
    eprintln!(
        "ISM of {} regions ({} bp windows, {} groups) written to {}",
        thousands(regions.len() as u64),
        len,
        g,
        a.output.display()
    );
    Ok(())
}

/// The ISM array and what it is indexed by; the layout in the file's `layout` attribute, the
/// model directory (absolute) in `model`, by which `chromax report` finds it.
fn write_ism_h5(
    path: &Path,
    model: &Path,
    regions: &[Interval],
    len: usize,
    windows: &[u8],
    groups: &[String],
    delta: &[f32],
) -> CliResult {
    use chromax::io::hdf5::write_arrays;
    let names: Vec<String> = regions
        .iter()
        .map(|r| {
            let c = (r.start + r.end) / 2;
            format!("{}:{}-{}", r.chrom, c as i64 - (len / 2) as i64, c as i64 - (len / 2) as i64 + len as i64)
        })
        .collect();
    let model = model.canonicalize().unwrap_or_else(|_| model.to_path_buf()).display().to_string();
    let layout =
        "delta[region, position, base, group]: the mean logit change of the group's cells when position p of the \
         region's window is base b (A C G T), 0 at the reference base; reference[region, position]: the window's base \
         codes (0..4 = A C G T N); regions: each window as chrom:start-end (0-based, end exclusive); groups: names";
    write_arrays(
        path,
        &[("model", &model), ("layout", layout)],
        &[("delta", delta, &[regions.len() as u64, len as u64, 4, groups.len() as u64])],
        &[("reference", windows, &[regions.len() as u64, len as u64])],
        &[("regions", &names), ("groups", groups)],
    )?;
    Ok(())
}

pub fn variants_cmd(a: &VariantsArgs) -> CliResult {
    let files = Files::new().model_dir("--model", &a.model).input("--genome", &a.genome).input("--vcf", &a.vcf);
    a.groups.inputs(files).output("-o", &a.output).check()?;
    let ext = a.output.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if ext != "tsv" && ext != "h5ad" {
        return Err(format!("-o {}: use a .tsv or .h5ad name", a.output.display()).into());
    }
    let snvs = read_snvs(&a.vcf)?;
    if snvs.is_empty() {
        return Err(format!("{}: no variants", a.vcf.display()).into());
    }
    let genome = BaseStore::cached(&a.genome)?;
    let (config, cells) = open_sc_model(&a.model)?;
    let groups = a.groups.read(&config, &cells)?;
    let windows = variant_windows(&genome, &snvs, config.model.seq_len, &a.vcf)?;
    let compute = select(a.device.as_deref(), a.precision)?;
    let fx = on_backend!(compute, b => {
        let (net, _, _) = load_seq_model(b, &a.model)?;
        let head = Head::of(b, &net)?;
        variant_effects(b, &net, &windows, &head, &groups, a.batch)
    })?;
    let g = fx.groups;
    if ext == "tsv" {
        let mut header = vec!["chrom".to_string(), "pos".into(), "id".into(), "ref".into(), "alt".into()];
        header.extend(groups.names.iter().map(|n| format!("logit_diff:{n}")));
        header.extend(groups.names.iter().map(|n| format!("prob_diff:{n}")));
        let rows = snvs.iter().enumerate().map(|(v, s)| {
            let mut f = vec![
                s.chrom.clone(),
                s.pos.to_string(),
                s.id.clone(),
                BASES[s.reference as usize].to_string(),
                BASES[s.alt as usize].to_string(),
            ];
            f.extend(fx.logit[v * g..(v + 1) * g].iter().map(|x| format!("{x:.6}")));
            f.extend(fx.prob[v * g..(v + 1) * g].iter().map(|x| format!("{x:.6}")));
            f.join("\t")
        });
        write_lines(&a.output, std::iter::once(header.join("\t")).chain(rows))?;
    } else {
        write_h5ad(
            &a.output,
            &AnnData {
                x_dense: Some(fx.logit.clone()),
                obs_names: snvs.iter().map(|s| s.name()).collect(),
                obs: vec![
                    ("chrom".into(), Column::Str(snvs.iter().map(|s| s.chrom.clone()).collect())),
                    ("pos".into(), Column::I64(snvs.iter().map(|s| s.pos as i64).collect())),
                    ("ref".into(), Column::Str(snvs.iter().map(|s| BASES[s.reference as usize].to_string()).collect())),
                    ("alt".into(), Column::Str(snvs.iter().map(|s| BASES[s.alt as usize].to_string()).collect())),
                ],
                var_names: groups.names.clone(),
                obsm: vec![("prob_diff".into(), fx.prob.clone(), g)],
                ..AnnData::default()
            },
        )?;
    }
    eprintln!(
        "effects of {} SNVs on {} groups (logit and denoised-probability differences, alt − ref) written to {}",
        thousands(snvs.len() as u64),
        g,
        a.output.display()
    );
    Ok(())
}
