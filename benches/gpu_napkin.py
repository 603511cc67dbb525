#!/usr/bin/env python3
"""Napkin math for the conv kernels on an H200, per layer of both models: which tile the host
picks (as direct_plan does), how much of it is used, resident blocks, waves, and the share of the f32 FMA roof the
kernel can reach = (FFMA share of the hot loop's issue, or its shared-memory limit if lower)
x tile use x channel-tile use x wave efficiency. Inputs are this repository's launch rules
(src/backend/cuda/conv1d.rs) and the SASS mix and registers that benches/sass_mix.sh and
tests/nvrtc_compile.rs print. A model, not a measurement: the first GPU run replaces it.

    python3 benches/gpu_napkin.py
"""
import math

SMS, SMEM_SM, REGS_SM = 132, 233472, 65536  # H200 (CC 9.0): 228 KiB shared, 64 Ki registers
PEAK = SMS * 128 * 2 * 1.98e9               # f32 FMA, 1.98 GHz (seen under load)
SMEM_BLOCK = 48 * 1024                      # chromax's per-block dynamic shared memory cap

# (name, batch, c_in, c_out, len, kernel, dilation)
LAYERS = [
    ("DenoiseNet conv (bench shape)", 8, 15, 15, 60000, 51, 8),
    ("SeqNet stem", 128, 4, 288, 1344, 17, 1),
    ("SeqNet tower 1", 128, 288, 288, 448, 5, 1),
    ("SeqNet tower 2", 128, 288, 323, 224, 5, 1),
    ("SeqNet tower 3", 128, 323, 363, 112, 5, 1),
    ("SeqNet tower 4", 128, 363, 407, 56, 5, 1),
    ("SeqNet tower 5", 128, 407, 456, 28, 5, 1),
    ("SeqNet tower 6", 128, 456, 512, 14, 5, 1),
]

# Kernel versions: threads, registers, channel tile, the hot loop's ceiling per positions per
# thread (from the SASS mix), and whether channel passes are balanced.
BEFORE = dict(threads=128, regs=72, co_tile=8, loop={4: 0.65}, balanced=False)
AFTER = dict(threads=128, regs=95, co_tile=16, loop={1: 0.66, 2: 0.74, 4: 0.80}, balanced=True)


def plan_pos(v, pos, b, ci, co, n, k, d):
    tile = v["threads"] * pos
    per_ch = tile + (k - 1) * d + v["co_tile"] * k
    fits = (SMEM_BLOCK // 4) // per_ch
    ci_tile = math.ceil(ci / math.ceil(ci / fits)) if v["balanced"] else min(fits, ci)
    smem = 4 * ci_tile * per_ch
    regs = math.ceil(v["regs"] / 8) * 8
    by_regs = REGS_SM // (regs * v["threads"])
    by_smem = SMEM_SM // (smem + 1024)
    per_sm = min(by_regs, by_smem, 2048 // v["threads"], 32)
    blocks = math.ceil(n / tile) * math.ceil(co / v["co_tile"]) * b
    slots = per_sm * SMS
    waves = math.ceil(blocks / slots)
    use_tile = n / (math.ceil(n / tile) * tile)
    use_co = co / (math.ceil(co / v["co_tile"]) * v["co_tile"])
    wave_eff = blocks / (waves * slots)
    share = v["loop"][pos] * use_tile * use_co * wave_eff
    return pos, use_tile, use_co, per_sm, blocks, waves, wave_eff, share


def plan(v, b, ci, co, n, k, d):
    """The host's choice (src/backend/cuda/conv1d.rs direct_plan): the positions per thread
    with the best loop share x tile use x wave efficiency (ties to the larger)."""
    options = [plan_pos(v, pos, b, ci, co, n, k, d) for pos in sorted(v["loop"])]
    return max(options, key=lambda o: (o[-1] / o[2], o[0]))


def main():
    print(f"H200 f32 FMA roof: {PEAK / 1e12:.1f} TFLOP/s")
    print("| layer | GFLOP (fwd) | before: tile use, blocks/SM, waves, roof share | after: pos, tile use, ch use, blocks/SM, waves, roof share | ceiling after |")
    print("|---|---:|---|---|---:|")
    tot_b = tot_a = tot_f = 0.0
    for name, b, ci, co, n, k, d in LAYERS:
        flop = 2.0 * b * ci * co * k * n
        pb = plan(BEFORE, b, ci, co, n, k, d)
        pa = plan(AFTER, b, ci, co, n, k, d)
        if name.startswith("SeqNet"):
            tot_f += flop
            tot_b += flop / (pb[-1] * PEAK)
            tot_a += flop / (pa[-1] * PEAK)
        print(f"| {name} | {flop / 1e9:.1f} | {pb[1]:.0%}, {pb[3]}, {pb[5]} ({pb[6]:.0%}), **{pb[-1]:.0%}** "
              f"| {pa[0]}, {pa[1]:.0%}, {pa[2]:.0%}, {pa[3]}, {pa[5]} ({pa[6]:.0%}), **{pa[-1]:.0%}** "
              f"| {pa[-1] * PEAK / 1e12:.1f} TFLOP/s |")
    print(f"SeqNet forward convs, batch 128: {tot_f / 1e9:.0f} GFLOP; at the ceilings {tot_b * 1e3:.2f} ms before, "
          f"{tot_a * 1e3:.2f} ms after ({tot_b / tot_a:.2f}x)")


if __name__ == "__main__":
    main()
