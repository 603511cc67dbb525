#!/usr/bin/env bash
# chromax and PyTorch side by side on the CPU: the same models (benches/compare_pytorch.py
# writes PyTorch's from ../shared/ARCHITECTURE.md), the same shapes, the same number of
# threads, on this machine, one after the other. Prints each figure and the ratio.
#
#   benches/compare_pytorch.sh            # 2 threads
#   THREADS=4 benches/compare_pytorch.sh
#
# Needs PyTorch (`python3 -m pip install torch`; the CPU build is enough). Never part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-2}"

if ! python3 -c "import torch" 2>/dev/null; then
    echo "PyTorch is not installed: python3 -m pip install torch (the CPU build is enough), then run this again" >&2
    exit 2
fi
cargo build --release --quiet
BIN=target/release/chromax
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS"

echo "PyTorch ($THREADS threads)…" >&2
torch_json=$(python3 benches/compare_pytorch.py --threads "$THREADS" 2>/dev/null | tail -1)
echo "chromax DenoiseNet…" >&2
denoise_json=$("$BIN" --threads "$THREADS" bench denoise --device cpu --no-e2e --json 2>/dev/null | tail -1)
echo "chromax SeqNet…" >&2
sc_json=$("$BIN" --threads "$THREADS" bench sc --device cpu --infer 10 --json 2>/dev/null | tail -1)
# Where the CPU has AVX512-BF16: SeqNet again with its convolutions' products in bf16 (--precision bf16).
sc_bf16_json=null
if grep -qw avx512_bf16 /proc/cpuinfo; then
    echo "chromax SeqNet, bf16 products…" >&2
    sc_bf16_json=$("$BIN" --threads "$THREADS" bench sc --device cpu --precision bf16 --infer 10 --json 2>/dev/null | tail -1)
fi

python3 - "$torch_json" "$denoise_json" "$sc_json" "$THREADS" "$sc_bf16_json" <<'EOF'
import json, platform, subprocess, sys, datetime
torch, denoise, sc = (json.loads(a) for a in sys.argv[1:4])
threads = sys.argv[4]
sc_bf16 = json.loads(sys.argv[5])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"{datetime.date.today()}, commit {commit}, {cpu}, {threads} threads, PyTorch {torch['torch']}")
d, s = torch["denoise"], torch["sc"]
roof = denoise.get("roof_gflops") or sc.get("roof_gflops")
fb = denoise["infer_flop_per_base"]  # forward FLOP per output base, padding included
rows = [
    ("DenoiseNet inference", "bases/s", d["infer_bases_per_s"], denoise["infer_bases_per_s"], 1.5, fb),
    ("DenoiseNet training step", "bases/s", d["train_bases_per_s"], denoise["train_bases_per_s"], 3.0, 3 * fb),
    ("SeqNet training", "sequences/s", s["train_seqs_per_s"], sc["train_seqs_per_s"], 1.5, sc["train_flop_per_seq"]),
    ("SeqNet inference", "sequences/s", s["infer_seqs_per_s"], sc["infer_seqs_per_s"], 1.5, sc["infer_flop_per_seq"]),
]
if sc_bf16:
    rows += [
        ("SeqNet training, bf16 products", "sequences/s", s["train_seqs_per_s"], sc_bf16["train_seqs_per_s"], 1.5, sc["train_flop_per_seq"]),
        ("SeqNet inference, bf16 products", "sequences/s", s["infer_seqs_per_s"], sc_bf16["infer_seqs_per_s"], 1.5, sc["infer_flop_per_seq"]),
    ]
print(f"CPU FMA roof, measured by chromax on {threads} threads: {roof:.0f} GFLOP/s")
print("| work | unit | PyTorch | chromax | ratio | target | PyTorch GFLOP/s (of roof) | chromax GFLOP/s (of roof) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for name, unit, t, c, target, flop in rows:
    gt, gc = t * flop / 1e9, c * flop / 1e9
    print(f"| {name} | {unit} | {t:.4g} | {c:.4g} | {c / t:.2f}× | ≥ {target}× | {gt:.0f} ({100 * gt / roof:.0f}%) | {gc:.0f} ({100 * gc / roof:.0f}%) |")
if sc_bf16:
    print("bf16 rows: chromax with --precision bf16 (products of SeqNet's convolutions in bfloat16, sums in f32; the roof is f32's); PyTorch in f32")
print(f"shapes: DenoiseNet batch {d['batch']} × ({d['interval']} + 2×{d['pad']}) bases; "
      f"SeqNet batch {s['batch']}, {s['cells']} cells")
EOF
