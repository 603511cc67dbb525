#!/usr/bin/env python3
"""The instruction mix of chromax's kernels in sm_90 machine code (SASS), no GPU needed.

    bash benches/sass_mix.sh            # compiles every kernel to CUBIN through NVRTC, then this

For each entry: its instructions, and for each of its FMA loops (innermost loops, i.e. ones
holding no other backward branch, with at least 16 FFMA) the FFMA, shared loads (LDS*, with
their width), global loads and all instructions per trip, and FFMA per shared-load
instruction: the figure that caps an f32 kernel fed from shared memory (the SM issues one
shared-memory instruction per cycle per partition against four FFMA; below ~4 FFMA per LDS
the FMA units wait on shared memory). Static counts: what one trip of the loop executes.
"""
import re
import subprocess
import sys

LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


def functions(sass):
    name, body = None, []
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            if name:
                yield name, body
            name, body = m.group(1), []
            continue
        m = LINE.search(line)
        if m and name:
            body.append((int(m.group(1), 16), m.group(3), m.group(4)))
    if name:
        yield name, body


def mix(instrs):
    ffma = sum(1 for _, op, _ in instrs if op.startswith("FFMA"))
    lds = [op for _, op, _ in instrs if op.startswith("LDS")]
    ldg = sum(1 for _, op, _ in instrs if op.startswith("LDG"))
    return ffma, lds, ldg, len(instrs)


def inner_loops(body):
    """The innermost loops (no other backward branch inside), as instruction lists."""
    loops = []
    for addr, op, args in body:
        if op.startswith("BRA"):
            m = re.search(r"0x([0-9a-f]+)", args)
            if m and int(m.group(1), 16) < addr:
                loops.append((int(m.group(1), 16), addr))
    inner = [(a, b) for a, b in loops if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in loops)]
    return [[x for x in body if a <= x[0] <= b] for a, b in sorted(inner)]


def main():
    for path in sys.argv[2:]:
        sass = subprocess.run([sys.argv[1], "-sass", path], capture_output=True, text=True, check=True).stdout
        for name, body in sorted(functions(sass)):
            # The FMA loops: every innermost loop with at least 16 FFMA (a kernel templated on
            # a tile size has one per instance).
            loops = [l for l in inner_loops(body) if mix(l)[0] >= 16]
            if not loops:
                ffma, lds, ldg, n = mix(body)
                print(f"{name:<34} {len(body):>5} instr; no FFMA loop (whole entry: {ffma} FFMA, {len(lds)} LDS, {ldg} LDG)")
                continue
            for i, loop in enumerate(loops):
                ffma, lds, ldg, n = mix(loop)
                widths = {}
                for op in lds:
                    widths[op] = widths.get(op, 0) + 1
                w = ", ".join(f"{k} {v}" for k, v in sorted(widths.items()))
                ratio = f"{ffma / len(lds):.1f}" if lds else "no"
                head = f"{name:<34} {len(body):>5} instr;" if i == 0 else " " * 47
                print(
                    f"{head} loop {n:>4} instr: {ffma:>4} FFMA, {len(lds):>3} LDS ({w or '-'}),"
                    f" {ldg:>2} LDG: {ratio} FFMA per LDS, FFMA {100 * ffma / n:.0f}% of issue"
                )


if __name__ == "__main__":
    main()
