//! The track commands end to end on the real yeast data: coverage → bigWig / shard,
//! peaks, store build and info.

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn chromax(args: &[&str], dir: &Path) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chromax")).args(args).current_dir(dir).output().expect("run chromax");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "chromax {args:?} failed:\n{stderr}");
    (stdout, stderr)
}

#[test]
fn coverage_peaks_and_store_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("chromax-cli-tracks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let frags = data("yeast/yeast_500k_SRR1822137.frag.gz");
    let sizes = data("yeast/sacCer3.chrom.sizes");
    let (frags, sizes) = (frags.to_str().expect("utf-8 path"), sizes.to_str().expect("utf-8 path"));

    let (_, err) = chromax(&["coverage", frags, "-g", sizes, "-o", "clean.bw"], &dir);
    assert!(err.contains("read 414,968 fragments, used 414,968"), "{err}");
    assert!(err.contains("total coverage 166,690,020"), "{err}");
    let (_, err) = chromax(
        &["coverage", frags, "-g", sizes, "-o", "noisy.cxtrack", "--subsample-reads", "0.1", "--seed", "7"],
        &dir,
    );
    assert!(err.contains("dropped by subsampling"), "{err}");

    let (_, err) = chromax(&["peaks", "clean.bw", "-o", "clean.narrowPeak"], &dir);
    assert!(err.contains("peaks covering"), "{err}");
    let peaks = std::fs::read_to_string(dir.join("clean.narrowPeak")).expect("peaks");
    let first: Vec<&str> = peaks.lines().next().expect("a peak").split('\t').collect();
    assert_eq!(first.len(), 10);
    assert_eq!((first[3], first[5], first[8]), ("peak_1", ".", "-1.00000"));
    let (start, end, summit): (u64, u64, u64) =
        (first[1].parse().expect("start"), first[2].parse().expect("end"), first[9].parse().expect("peak"));
    assert!(summit < end - start);

    let (stdout, _) = chromax(&["store", "build", "clean.bw", "-o", "clean.cxtrack"], &dir);
    assert!(stdout.trim().ends_with("clean.cxtrack"));
    let (info, _) = chromax(&["store", "info", "clean.cxtrack"], &dir);
    assert!(
        info.contains("dtype     f32") && info.contains("17 chromosomes, 12,157,105 bp") && info.contains("chrXVI"),
        "{info}"
    );
    let (info, _) = chromax(&["store", "info", "noisy.cxtrack"], &dir);
    assert!(info.contains("dtype     u16"), "{info}");

    // The same peaks from the shard as from the bigWig.
    chromax(&["peaks", "clean.cxtrack", "-o", "from_shard.narrowPeak"], &dir);
    assert_eq!(std::fs::read_to_string(dir.join("from_shard.narrowPeak")).expect("peaks"), peaks);
    let _ = std::fs::remove_dir_all(&dir);
}
