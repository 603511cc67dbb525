#!/usr/bin/env bash
# Reads → tracks throughput: chromax against the tools users have today, on the same input,
# in the same run. Needs bedtools, megadepth, samtools and hyperfine (Debian packages:
# apt-get install bedtools megadepth samtools hyperfine).
#
# Input: the real yeast fragments replicated 10× with distinct barcodes (4.15 M fragments,
# 8.3 M reads as a BAM of proper pairs whose Tn5-shifted ends are the fragments' ends).
# Prints hyperfine's tables; a summary with records/s and bases/s is at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
REPEAT=${REPEAT:-10}
OUT=target/bench-tracks
mkdir -p "$OUT"
cargo build --release --quiet --bin chromax
CHROMAX=$PWD/target/release/chromax
SIZES=$PWD/tests/data/yeast/sacCer3.chrom.sizes

if [ ! -s "$OUT/frags.tsv" ]; then
    zcat tests/data/yeast/yeast_500k_SRR1822137.frag.gz |
        awk -v r="$REPEAT" 'BEGIN{OFS="\t"} {for (i = 0; i < r; i++) print $1, $2, $3, $4 "-" i, $5}' >"$OUT/frags.tsv"
    gzip -c "$OUT/frags.tsv" >"$OUT/frags.tsv.gz"
    # Fragments → proper pairs (50 bp reads): forward 5' end at start−4, reverse 5' end at end−1+5.
    awk 'BEGIN{OFS="\t"} NR==FNR {len[$1]=$2; next}
         FNR==1 {print "@HD", "VN:1.6", "SO:unsorted"; for (c in len) print "@SQ", "SN:" c, "LN:" len[c]}
         $2 >= 4 && $3 + 5 <= len[$1] && $3 + 5 >= 50 {
             f = $2 - 3; r = $3 - 44; t = $3 - $2 + 9; q = "*"
             print "p" FNR, 99, $1, f, 60, "50M", "=", r, t, "*", q
             print "p" FNR, 147, $1, r, 60, "50M", "=", f, -t, "*", q
         }' "$SIZES" "$OUT/frags.tsv" |
        samtools sort -@2 -o "$OUT/reads.bam" - 2>/dev/null
    samtools index "$OUT/reads.bam"
fi
FRAGS=$(wc -l <"$OUT/frags.tsv")
READS=$(samtools view -c "$OUT/reads.bam")
GENOME=$(awk '{s += $2} END {print s}' "$SIZES")
echo "input: $FRAGS fragments, $READS reads, genome $GENOME bp; $(nproc) cores"
echo "versions: $(bedtools --version), megadepth $(megadepth --version 2>&1 | head -1 | awk '{print $NF}'), $(hyperfine --version)"

cd "$OUT"
hyperfine -N --warmup 1 --runs 5 --export-json fragments.json \
    -n "chromax fragments→bedGraph (whole fragments)" "$CHROMAX coverage frags.tsv -g $SIZES --mode fragments -o chromax.bedGraph" \
    -n "bedtools genomecov -bg (whole fragments)" "bash -c 'bedtools genomecov -i frags.tsv -g $SIZES -bg > bedtools.bedGraph'" \
    -n "chromax fragments.gz→bigWig (cut sites ±100)" "$CHROMAX coverage frags.tsv.gz -g $SIZES -o chromax.bw"
# The same numbers, base for base (chromax orders chromosomes as the sizes file, bedtools as the input).
if cmp -s <(sort -k1,1 -k2,2n chromax.bedGraph) <(sort -k1,1 -k2,2n bedtools.bedGraph); then
    echo "chromax and bedtools bedGraphs hold identical lines"
else
    echo "WARNING: the bedGraphs differ"
fi

hyperfine -N --warmup 1 --runs 5 --export-json bam.json \
    -n "chromax BAM→bigWig (cut sites ±100)" "$CHROMAX coverage reads.bam -o chromax_bam.bw" \
    -n "megadepth BAM→bigWig (read coverage)" "megadepth reads.bam --threads $(nproc) --bigwig --prefix megadepth" \
    -n "bedtools genomecov -ibam -bg (read coverage)" "bash -c 'bedtools genomecov -ibam reads.bam -bg > bedtools_bam.bedGraph'"

hyperfine -N --warmup 1 --runs 10 --export-json shard.json \
    -n "chromax bigWig→shard, 1 thread" "$CHROMAX --threads 1 store build chromax.bw -o one.cxtrack" \
    -n "chromax bigWig→shard, $(nproc) threads" "$CHROMAX store build chromax.bw -o all.cxtrack"

python3 - "$FRAGS" "$READS" "$GENOME" <<'PY'
import json, sys
frags, reads, genome = (int(x) for x in sys.argv[1:4])
print("\nsummary (mean of the runs)")
for name, unit in (("fragments.json", frags), ("bam.json", reads), ("shard.json", None)):
    for r in json.load(open(name))["results"]:
        t = r["mean"]
        rate = f"{unit / t / 1e6:6.2f} M records/s" if unit else f"{genome / t / 1e6:8.1f} M bases/s"
        print(f"{r['command']:<52} {t:7.3f} s ± {r['stddev']:.3f}  {rate}  {genome / t / 1e6:8.1f} M genome bases/s")
PY
