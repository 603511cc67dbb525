//! `chromax plot tracks` end to end on the bundled real data: the PNG decodes at the expected
//! size and is not blank, the SVG parses and keeps its text, bad input is named.

mod common;

use common::{fails_cleanly, run_chromax, test_data};
use std::path::{Path, PathBuf};

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-plot-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// The yeast coverage as a bigWig and as a bedGraph, made by `chromax coverage`.
fn yeast_tracks(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let data = test_data().join("yeast");
    let frags = data.join("yeast_500k_SRR1822137.frag.gz");
    let sizes = data.join("sacCer3.chrom.sizes");
    for out in ["cov.bw", "cov.bedGraph"] {
        let o = run_chromax(
            &["coverage", frags.to_str().expect("utf8"), "-g", sizes.to_str().expect("utf8"), "-o", out],
            dir,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    (dir.join("cov.bw"), dir.join("cov.bedGraph"), data.join("hmmratac_yeast500k_accessible_regions.narrowPeak"))
}

/// Width, height and RGB pixels of a PNG.
fn decode_png(path: &Path) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).expect("open")));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn tracks_render_as_png_and_svg_from_real_data() {
    let dir = scratch("render");
    let (bw, bg, peaks) = yeast_tracks(&dir);
    let (bw, bg, peaks) = (bw.to_str().expect("utf8"), bg.to_str().expect("utf8"), peaks.to_str().expect("utf8"));
    let o = run_chromax(
        &[
            "plot",
            "tracks",
            "--region",
            "chrII:100,001-140,000",
            "--track",
            &format!("bigWig={bw}"),
            "--track",
            &format!("bedGraph={bg}"),
            "--peaks",
            &format!("hmmratac={peaks}"),
            "-o",
            "fig.png",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("39 bp per bin (max)"), "{stderr}");
    let (w, h, px) = decode_png(&dir.join("fig.png"));
    // Title 40, two tracks of 150, one peak row of 36 and the axis (50).
    assert_eq!((w, h), (1200, 40 + 2 * 150 + 36 + 50));
    let pixel = |i: usize| (px[3 * i], px[3 * i + 1], px[3 * i + 2]);
    let n = (w * h) as usize;
    let white = (0..n).filter(|&i| pixel(i) == (255, 255, 255)).count();
    // Not blank (a coverage plot is mostly background: here about 95% white).
    assert!(white < n * 99 / 100 && white > n / 2, "{white} of {n} pixels white");
    // The first track's colour (Okabe–Ito blue) and the peaks' (the third colour, bluish
    // green, after two tracks) are both drawn.
    let near = |c: (u8, u8, u8), t: (u8, u8, u8)| {
        (c.0 as i32 - t.0 as i32).abs() + (c.1 as i32 - t.1 as i32).abs() + (c.2 as i32 - t.2 as i32).abs() < 30
    };
    assert!((0..n).filter(|&i| near(pixel(i), (0, 114, 178))).count() > 200);
    assert!((0..n).filter(|&i| near(pixel(i), (0, 158, 115))).count() > 100);

    // The same as SVG: well-formed, sized, its text kept as text, nothing fetched from elsewhere.
    let o = run_chromax(
        &[
            "plot",
            "tracks",
            "--region",
            "chrII",
            "--track",
            &format!("coverage={bw}"),
            "--peaks",
            &format!("hmmratac={peaks}"),
            "--bins",
            "mean",
            "--same-scale",
            "-o",
            "wide.svg",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let svg = std::fs::read_to_string(dir.join("wide.svg")).expect("svg");
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!((root.attribute("width"), root.attribute("height")), (Some("1200"), Some("276")));
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "text")
        .map(|n| {
            n.descendants().filter(|t| t.is_text()).filter_map(|t| t.text()).collect::<String>().trim().to_string()
        })
        .collect();
    for want in ["chrII:1-813,184 (813,184 bp)", "coverage (mean / 775 bp)", "chrII position"] {
        assert!(texts.iter().any(|t| t == want), "no text '{want}' in {texts:?}");
    }
    assert!(texts.iter().any(|t| t.starts_with("hmmratac (")), "{texts:?}");
    // No reference outside the file: the only URL is the SVG namespace.
    assert_eq!(svg.matches("http").count(), svg.matches("http://www.w3.org/2000/svg").count());
    assert!(!svg.contains("<image") && !svg.contains("<script"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_regions_tracks_and_outputs_are_named() {
    let dir = scratch("bad");
    let (bw, _, peaks) = yeast_tracks(&dir);
    let bw = format!("cov={}", bw.display());
    let peaks = format!("p={}", peaks.display());
    // Past the chromosome's end; a chromosome the track lacks; no bases; not a region.
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:800,000-900,000", "--track", &bw, "-o", "f.png"],
        &["goes past the end of chrII (813,184 bp)"],
    );
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chr1:1-1000", "--track", &bw, "-o", "f.png"],
        &["no chromosome 'chr1' in this track", "another assembly"],
    );
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:900,000-900,010", "--track", &bw, "-o", "f.png"],
        &["goes past the end"],
    );
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:50-10", "--track", &bw, "-o", "f.png"],
        &["is not 'chrom' or 'chrom:start-end'"],
    );
    // A peak file given as a track; an unknown figure format; an output that is an input.
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:1-1000", "--track", &peaks, "-o", "f.png"],
        &["not a coverage track", "--peaks"],
    );
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:1-1000", "--track", &bw, "-o", "f.pdf"],
        &[".svg or .png"],
    );
    fails_cleanly(&dir, &["plot", "tracks", "--region", "chrII:1-1000", "--track", &bw, "-o", "cov.bw"], &["cov.bw"]);
    // Two tracks of different assemblies: chrII of another length.
    let other = dir.join("other.bedGraph");
    std::fs::write(&other, "chrII\t0\t100\t5\n").expect("write");
    let sizes = dir.join("other.sizes");
    std::fs::write(&sizes, "chrII\t5000\n").expect("write");
    let shard = run_chromax(
        &["store", "build", other.to_str().expect("utf8"), "-g", sizes.to_str().expect("utf8"), "-o", "other.cxtrack"],
        &dir,
    );
    assert!(shard.status.success(), "{}", String::from_utf8_lossy(&shard.stderr));
    fails_cleanly(
        &dir,
        &["plot", "tracks", "--region", "chrII:1-1000", "--track", &bw, "--track", "o=other.cxtrack", "-o", "f.png"],
        &["chrII is 5,000 bp in other.cxtrack but 813,184 bp in", "different assemblies"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}
