//! Track shards: building from bigWig, bedGraph and narrowPeak, zero-copy slices with zeros
//! past the ends, dtype conversion counts, and the content-keyed cache.

mod common;

use chromax::coverage::{coverage_from_fragments, CoverageOptions};
use chromax::io::bedgraph::{read_bedgraph, write_bedgraph};
use chromax::io::bigwig::write_bigwig;
use chromax::io::ChromSizes;
use chromax::store::build::{build_shard, mask_from_intervals};
use chromax::store::shard::write_shard;
use chromax::store::{cached_shard, scan_values, Dtype, ShardValues, TrackShard, CACHE_DIR_ENV};
use chromax::track::{Run, Track};
use std::path::{Path, PathBuf};

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chromax-store-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn yeast_track() -> (Track, ChromSizes) {
    let sizes = ChromSizes::read(data("yeast/sacCer3.chrom.sizes")).expect("sizes");
    let (track, _) = coverage_from_fragments(
        data("yeast/yeast_500k_SRR1822137.frag.gz"),
        &sizes,
        &CoverageOptions::default(),
        &mut |_| {},
    )
    .expect("coverage");
    (track, sizes)
}

#[test]
fn a_bigwig_becomes_a_shard_with_the_same_values_and_zeros_past_the_ends() {
    let (track, sizes) = yeast_track();
    let dir = tempdir("bw");
    let bw = dir.join("yeast.bw");
    write_bigwig(&bw, &track, 2).expect("bigwig");
    let shard_path = dir.join("yeast.cxtrack");
    let stats = build_shard(&bw, &shard_path, None, None).expect("build");
    assert_eq!((stats.saturated, stats.rounded), (0, 0));
    let shard = TrackShard::open(&shard_path).expect("open");
    assert_eq!(shard.dtype(), Dtype::F32);
    assert_eq!(shard.sizes(), &sizes);
    let source = shard.index().source.as_ref().expect("source recorded");
    assert_eq!(source.sha256.as_ref().map(String::len), Some(64));

    // Every chromosome, every base.
    for (id, (name, len)) in sizes.iter().enumerate() {
        let mut want = vec![0f32; len as usize];
        track.fill(id, 0, &mut want);
        let slice = shard.slice(name, 0, len as i64).expect("slice");
        assert!(matches!(slice.values, ShardValues::F32(v) if v.len() == len as usize));
        let mut got = vec![f32::NAN; len as usize];
        slice.to_f32(&mut got);
        assert!(got == want, "{name} differs");
    }
    // Past both ends: zeros, and the in-range part still borrowed.
    let len = sizes.length(0) as i64;
    let s = shard.slice("chrI", -10, 20).expect("slice");
    assert_eq!((s.left_zeros, s.values.len(), s.right_zeros), (10, 20, 0));
    let s = shard.slice("chrI", len - 5, len + 7).expect("slice");
    assert_eq!((s.left_zeros, s.values.len(), s.right_zeros), (0, 5, 7));
    let s = shard.slice("chrI", len + 100, len + 150).expect("slice");
    assert_eq!((s.left_zeros, s.values.len(), s.right_zeros), (0, 0, 50));
    let s = shard.slice("chrI", -50, -20).expect("slice");
    assert_eq!((s.left_zeros, s.values.len(), s.right_zeros), (30, 0, 0));
    let mut out = vec![f32::NAN; 12];
    shard.slice("chrI", len - 5, len + 7).expect("slice").to_f32(&mut out);
    let mut want = vec![0f32; 12];
    track.fill(0, (len - 5) as u64, &mut want);
    assert_eq!(out, want);
    assert!(shard.slice("chr1", 0, 10).expect_err("no such chromosome").to_string().contains("chrI"));

    // And back: the shard as a track is the track.
    assert!(shard.to_track() == track);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dtypes_count_what_they_cannot_hold() {
    let sizes = ChromSizes::from_pairs([("c".to_string(), 100u64), ("d".to_string(), 10)]).expect("sizes");
    let mut track = Track::empty(sizes);
    track.set_runs(
        0,
        vec![
            Run { start: 0, end: 10, value: 70_000.0 },
            Run { start: 10, end: 14, value: 2.5 },
            Run { start: 20, end: 30, value: 7.0 },
        ],
    );
    track.set_runs(1, vec![Run { start: 0, end: 10, value: -1.0 }]);
    let dir = tempdir("dtypes");
    let p = dir.join("t.cxtrack");
    let stats = write_shard(&p, &track, Dtype::U16, None).expect("u16");
    assert_eq!((stats.saturated, stats.rounded), (20, 4));
    let shard = TrackShard::open(&p).expect("open");
    assert_eq!(shard.index().saturated, 20);
    let mut v = vec![0f32; 30];
    shard.slice("c", 0, 30).expect("slice").to_f32(&mut v);
    assert_eq!(v[0], 65_535.0);
    assert_eq!(v[10], 3.0); // 2.5 rounds half away from zero
    assert_eq!(v[25], 7.0);
    assert_eq!(v[15], 0.0);

    let stats = write_shard(&p, &track, Dtype::F16, None).expect("f16");
    assert_eq!((stats.saturated, stats.rounded), (10, 0)); // 70,000 > f16 max
    let stats = write_shard(&p, &track, Dtype::U8, None).expect("u8");
    assert_eq!(stats.saturated, 0);
    let shard = TrackShard::open(&p).expect("open");
    let mut v = vec![0f32; 30];
    shard.slice("c", 0, 30).expect("slice").to_f32(&mut v);
    assert_eq!(v.iter().sum::<f32>(), 24.0); // 0/1 mask of 24 bases
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_narrowpeak_becomes_a_mask_and_a_bedgraph_round_trips() {
    let (track, sizes) = yeast_track();
    let peaks = data("yeast/hmmratac_yeast500k_accessible_regions.narrowPeak");
    let mask = mask_from_intervals(&peaks, &sizes).expect("mask");
    // The union of the intervals, counted independently.
    let intervals = chromax::io::bed::read_intervals(&peaks).expect("intervals");
    let mut covered = std::collections::HashSet::new();
    for iv in &intervals {
        for p in iv.start..iv.end {
            covered.insert((iv.chrom.clone(), p));
        }
    }
    assert_eq!(mask.sum() as usize, covered.len());
    let dir = tempdir("mask");
    let shard_path = dir.join("mask.cxtrack");
    build_shard(&peaks, &shard_path, None, Some(&sizes)).expect("mask shard");
    assert_eq!(TrackShard::open(&shard_path).expect("open").dtype(), Dtype::U8);
    assert!(build_shard(&peaks, &shard_path, None, None).expect_err("needs sizes").to_string().contains("--genome"));

    let bg = dir.join("yeast.bedGraph");
    write_bedgraph(&bg, &track).expect("bedGraph");
    assert!(read_bedgraph(&bg, Some(&sizes)).expect("read") == track);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cache_converts_the_same_content_once() {
    let (track, _) = yeast_track();
    let dir = tempdir("cache");
    let cache = dir.join("cache");
    // The only test of this binary that reads the variable.
    std::env::set_var(CACHE_DIR_ENV, &cache);
    let bw = dir.join("a.bw");
    write_bigwig(&bw, &track, 2).expect("bigwig");
    let copy = dir.join("same-content-other-name.bw");
    std::fs::copy(&bw, &copy).expect("copy");

    let first = cached_shard(&bw, None, None).expect("convert");
    let path = first.path().to_path_buf();
    let modified = std::fs::metadata(&path).expect("cached file").modified().expect("mtime");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let second = cached_shard(&copy, None, None).expect("cached");
    assert_eq!(second.path(), path);
    assert_eq!(std::fs::metadata(&path).expect("cached").modified().expect("mtime"), modified, "not rewritten");
    let entries: Vec<_> = std::fs::read_dir(&cache).expect("cache dir").collect();
    assert_eq!(entries.len(), 1, "one shard for one content");
    // Another dtype is another entry.
    let f16 = cached_shard(&bw, Some(Dtype::F16), None).expect("f16");
    assert_ne!(f16.path(), path);

    // An entry whose header is not what its name promises (here: the f16 shard of the same
    // input put in the f32 entry's place) is rebuilt, not reused.
    let values = |shard: &TrackShard| {
        let (name, len) = (shard.sizes().name(0).to_string(), shard.sizes().length(0) as i64);
        let slice = shard.slice(&name, 0, len).expect("slice");
        let mut out = vec![0f32; slice.len()];
        slice.to_f32(&mut out);
        out
    };
    let (f16_path, want) = (f16.path().to_path_buf(), values(&first));
    drop((first, second, f16));
    std::fs::copy(&f16_path, &path).expect("swap");
    let rebuilt = cached_shard(&bw, None, None).expect("rebuilt");
    assert_eq!(rebuilt.dtype(), Dtype::F32);
    assert_eq!(values(&rebuilt), want, "the values of the input, at full precision");
    // A shard from another input under this entry's name is rebuilt too.
    let other = dir.join("other.bw");
    let mut changed = track.clone();
    let doubled: Vec<_> = changed.runs(0).iter().map(|r| chromax::track::Run { value: r.value * 2.0, ..*r }).collect();
    changed.set_runs(0, doubled);
    write_bigwig(&other, &changed, 2).expect("bigwig");
    let other_shard = cached_shard(&other, None, None).expect("other");
    std::fs::copy(other_shard.path(), &path).expect("swap");
    drop((rebuilt, other_shard));
    assert_eq!(values(&cached_shard(&bw, None, None).expect("rebuilt")), want);

    // The cache's shards carry the writer's record of their values, which stands for a scan;
    // an entry written before shards had one is rebuilt once (not read through every time).
    let cached = cached_shard(&bw, None, None).expect("cached");
    for id in 0..cached.sizes().len() {
        let (bits, first_invalid) = scan_values(cached.chrom_values(id));
        assert_eq!(cached.occupancy(id), Some(bits.as_slice()), "{}", cached.sizes().name(id));
        assert_eq!(cached.recorded_first_invalid(id), Some(first_invalid));
        assert_eq!(first_invalid, None);
    }
    drop(cached);
    rewrite_index(&path, |chrom| {
        chrom.remove("occupied");
        chrom.remove("first_invalid");
    });
    let mut old = TrackShard::open(&path).expect("a shard without the record still opens");
    assert!(!old.adopt_recorded_scan().expect("nothing to adopt"));
    assert_eq!(old.occupancy(0), None);
    drop(old);
    let renewed = cached_shard(&bw, None, None).expect("rebuilt");
    assert_eq!(renewed.recorded_first_invalid(0), Some(None));
    assert_eq!(values(&renewed), want);
    drop(renewed);

    // Temporary files of writers that died go at the next use of the cache; a live one's stay.
    let dead = cache.join(".x.cxtrack.tmp-4194305-0");
    let live = cache.join(format!(".y.cxtrack.tmp-{}-0", std::process::id()));
    std::fs::write(&dead, b"left by a killed run").expect("write");
    std::fs::write(&live, b"being written").expect("write");
    cached_shard(&bw, None, None).expect("cached");
    assert!(!dead.exists() && live.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rewrites a shard's JSON index in place (padded with spaces to its reserved length), each
/// chromosome's entry through `edit`.
fn rewrite_index(path: &Path, edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut b = std::fs::read(path).expect("read shard");
    let n = u64::from_le_bytes(b[16..24].try_into().expect("index length")) as usize;
    let mut index: serde_json::Value = serde_json::from_slice(&b[24..24 + n]).expect("index");
    for chrom in index["chroms"].as_array_mut().expect("chroms") {
        edit(chrom.as_object_mut().expect("entry"));
    }
    let mut json = serde_json::to_vec(&index).expect("json");
    assert!(json.len() <= n, "the edited index must fit its space");
    json.resize(n, b' ');
    b[24..24 + n].copy_from_slice(&json);
    std::fs::write(path, b).expect("write shard");
}

#[test]
fn a_shard_records_its_non_zero_blocks_and_first_invalid_value() {
    let dir = tempdir("record");
    let sizes = ChromSizes::from_pairs([("a".to_string(), 100_000u64), ("b".to_string(), 9000), ("c".to_string(), 1)])
        .expect("sizes");
    let run = |start: u32, end: u32, value: f32| Run { start, end, value };
    let mut track = Track::empty(sizes.clone());
    track.set_runs(
        0,
        vec![run(10, 20, 2.0), run(5000, 5001, -0.0), run(70_000, 70_002, f32::NAN), run(90_000, 90_001, -1.0)],
    );
    track.set_runs(1, vec![run(8191, 8192, 1e6)]);
    let f32_path = dir.join("f32.cxtrack");
    let f16_path = dir.join("f16.cxtrack");
    write_shard(&f32_path, &track, Dtype::F32, None).expect("f32 shard");
    write_shard(&f16_path, &track, Dtype::F16, None).expect("f16 shard");
    for (path, b_invalid) in [(&f32_path, None), (&f16_path, Some(8191))] {
        let mut shard = TrackShard::open(path).expect("open");
        // Opened, a shard's record is not taken until asked for (a handed-in file is read).
        assert_eq!(shard.recorded_first_invalid(0), None);
        assert!(shard.adopt_recorded_scan().expect("adopt"));
        for id in 0..sizes.len() {
            let (bits, first_invalid) = scan_values(shard.chrom_values(id));
            assert_eq!(shard.occupancy(id), Some(bits.as_slice()));
            assert_eq!(shard.recorded_first_invalid(id), Some(first_invalid));
        }
        // −0 is accepted; NaN is the first invalid value of a (f16: 1e6 is infinite there).
        assert_eq!(shard.recorded_first_invalid(0), Some(Some(70_000)));
        assert_eq!(shard.recorded_first_invalid(1), Some(b_invalid));
        assert_eq!(shard.recorded_first_invalid(2), Some(None));
        // Blocks 0 (10..20), 1 (−0 at 5000 is a zero value: not occupied), 17, 21 of a.
        assert_eq!(shard.occupancy(0), Some(&[1 | 1 << 17 | 1 << 21][..]));
        assert_eq!(shard.occupancy(1), Some(&[1 << 1][..]));
        assert_eq!(shard.occupancy(2), Some(&[0][..]));
    }
    // A damaged record is refused by name, not trusted.
    rewrite_index(&f32_path, |chrom| {
        if chrom["name"] == "b" {
            chrom.insert("occupied".into(), "zz".repeat(8).into());
        }
    });
    let err = TrackShard::open(&f32_path).expect("opens").adopt_recorded_scan().expect_err("damaged");
    assert!(err.to_string().contains("chromosome 'b'") && err.to_string().contains("damaged"), "{err}");
    rewrite_index(&f32_path, |chrom| {
        if chrom["name"] == "c" {
            chrom.insert("first_invalid".into(), 1.into());
        }
    });
    assert!(TrackShard::open(&f32_path).expect("opens").adopt_recorded_scan().is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_all_zero_track_writes_and_reads_back() {
    // A bigWig without a single value: its chromosomes listed, no data; it reads back as zeros.
    let sizes = ChromSizes::from_pairs([("a".to_string(), 1000u64), ("b".to_string(), 500)]).expect("sizes");
    let dir = tempdir("zero");
    let track = Track::empty(sizes.clone());
    write_bigwig(dir.join("zero.bw"), &track, 2).expect("write");
    let back = chromax::io::bigwig::read_bigwig(dir.join("zero.bw"), Some(&sizes)).expect("read");
    assert_eq!(back, track);
    let stream = chromax::io::bigwig::BigWigStream::create(dir.join("stream.bw"), &sizes).expect("stream");
    stream.chrom("a").expect("chrom");
    stream.chrom("b").expect("chrom");
    stream.finish().expect("finish");
    assert_eq!(chromax::io::bigwig::read_bigwig(dir.join("stream.bw"), Some(&sizes)).expect("read"), track);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A streaming bigWig dropped without `finish` (an error on the way) leaves nothing behind
/// and makes no thread panic: the writer thread stops at the closed channel and the temporary
/// file (and the zoom levels' scratch file) is removed.
#[test]
fn an_abandoned_bigwig_stream_leaves_nothing_and_panics_nowhere() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let panics = Arc::new(AtomicUsize::new(0));
    let previous = std::panic::take_hook();
    let seen = panics.clone();
    std::panic::set_hook(Box::new(move |info| {
        seen.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let sizes = ChromSizes::from_pairs([("a".to_string(), 2_000_000u64), ("b".to_string(), 500)]).expect("sizes");
    for (case, runs) in [("with values", 150_000u32), ("empty", 0)] {
        let dir = tempdir(&format!("abandon-{}", runs));
        {
            let stream = chromax::io::bigwig::BigWigStream::create(dir.join("out.bw"), &sizes).expect("stream");
            // Runs sent in pieces, so that the writer is mid-way when the stream is dropped.
            stream.chrom("a").expect("chrom");
            for piece in 0..runs / 1000 {
                let runs: Vec<Run> = (piece * 1000..(piece + 1) * 1000)
                    .map(|i| Run { start: 10 * i, end: 10 * i + 5, value: i as f32 })
                    .collect();
                stream.runs(runs).expect("runs");
            }
        }
        let left: Vec<_> =
            std::fs::read_dir(&dir).expect("dir").filter_map(Result::ok).map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{case}: left behind {left:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a thread panicked while the stream was abandoned");
}
