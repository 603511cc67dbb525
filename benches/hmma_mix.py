#!/usr/bin/env python3
"""Instructions per HMMA in the tensor-core kernels' hot loops (sm_90 SASS), no GPU needed.

    CHROMAX_SASS_DIR=DIR cargo test --test nvrtc_compile every_kernel_goes_through_ptxas
    python3 benches/hmma_mix.py NVDISASM DIR/conv1d_mma.cubin DIR/conv1d_igemm.cubin

(with NVRTC on the library path, as .ci/run sets it; NVDISASM: .ci/run's nvdisasm). For each
entry, the innermost loops that hold HMMA: their instructions, HMMA, LDSM, LDGSTS and barriers
per trip. An SM sub-partition issues one instruction per clock and, at the 790 TFLOP/s bf16
roof, finishes an m16n8k16 HMMA (4,096 FLOP) about every 5.4 clocks: a loop with more than
~5.4 instructions per HMMA is issue-bound below the roof by that ratio.
"""
import re
import re
import subprocess
import sys

INSTR = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def functions(sass):
    """(entry, [(address, opcode, operands)], {label: address}) per entry of nvdisasm -c."""
    name, ins, labels, pending = None, [], {}, []
    for line in sass.splitlines():
        text = line.strip()
        m = re.match(r"\.text\.(\w+):", text)
        if m:
            if name:
                yield name, ins, labels
            name, ins, labels, pending = m.group(1), [], {}, []
            continue
        m = re.match(r"(\.L_x_\d+):", text)
        if m:
            pending.append(m.group(1))
            continue
        m = INSTR.search(line)
        if m and name:
            address = int(m.group(1), 16)
            for label in pending:
                labels[label] = address
            pending = []
            ins.append((address, m.group(3), m.group(4)))
    if name:
        yield name, ins, labels


def hot_loops(ins, labels):
    """The innermost loops (backward branches) that hold HMMA, as (start, end) addresses."""
    loops = []
    for address, op, operands in ins:
        m = re.search(r"(\.L_x_\d+)", operands) if op.startswith("BRA") else None
        if m and labels.get(m.group(1), address + 1) <= address:
            loops.append((labels[m.group(1)], address))
    with_hmma = [(s, e) for s, e in loops if any(op.startswith("HMMA") for a, op, _ in ins if s <= a <= e)]
    return [(s, e) for s, e in with_hmma if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in with_hmma)]


def main():
    nvdisasm, cubins = sys.argv[1], sys.argv[2:]
    for cubin in cubins:
        sass = subprocess.run([nvdisasm, "-c", cubin], capture_output=True, text=True, check=True).stdout
        for name, ins, labels in functions(sass):
            for s, e in hot_loops(ins, labels):
                body = [op for a, op, _ in ins if s <= a <= e]
                count = lambda prefix: sum(op.startswith(prefix) for op in body)
                hmma = count("HMMA")
                print(
                    f"{name}: {len(body)} instructions a trip, {hmma} HMMA ({len(body) / hmma:.1f} per HMMA), "
                    f"{count('LDSM')} LDSM, {count('LDGSTS')} LDGSTS, {count('BAR')} BAR"
                )


if __name__ == "__main__":
    main()
