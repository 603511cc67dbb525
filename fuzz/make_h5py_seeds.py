"""Writes the h5ad and 10x seeds that h5py (libhdf5) writes: anndata's files and a Cell
Ranger-style 10x matrix, 6 chr22 peaks x 8 barcodes as in make_seeds.rs.

libhdf5 writes version 1 object headers, which carry no checksum; hdf5-pure (make_seeds.rs)
writes version 2 ones, whose checksums turn nearly every mutation of a header or an
attribute into a refused file. These seeds let the fuzzer reach what the headers say.

    PYTHONPATH=~/.cache/chromax/py-tools python3 fuzz/make_h5py_seeds.py
"""

import os
import sys

import anndata
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
MAX_SEED = 64 * 1024

# chromax_fuzz::mtx::BARCODES and PEAKS (fuzz/src/lib.rs).
CELLS = ["AAACTGCTCAGGAAGC", "AACAGTCCACCATTCC", "AACATCGCAGAACAGC", "AAATGCCCAATAGTGA",
         "AACCGATAGGTCCTCG", "AAAGGATCAATGATGA", "AACCGATAGCAATGTA", "AAAGGATGTCTGGATT"]
STARTS = [10687269, 10714242, 10732549, 10740612, 10760579, 10768839]
ENDS = [10687509, 10714462, 10732786, 10740826, 10760827, 10769063]
# make_seeds.rs's cell_counts(): peaks x cells.
COUNTS = np.zeros((6, 8), dtype=np.float32)
for peak, cell, n in [(0, 0, 2), (1, 4, 1), (2, 1, 1), (3, 3, 3), (5, 7, 4)]:
    COUNTS[peak, cell] = n


def check(path):
    size = os.path.getsize(path)
    if size > MAX_SEED:
        sys.exit(f"seed {path} is {size} bytes, over {MAX_SEED}")


def main():
    chroms = ["chr22"] * 6
    names = [f"chr22:{s}-{e}" for s, e in zip(STARTS, ENDS)]
    var = pd.DataFrame({"chr": pd.Categorical(chroms), "start": np.array(STARTS, dtype=np.int64),
                        "end": np.array(ENDS, dtype=np.int64)}, index=names)
    obs = pd.DataFrame(index=CELLS)
    os.makedirs(os.path.join(OUT, "h5ad"), exist_ok=True)
    csr = os.path.join(OUT, "h5ad", "anndata_csr.h5ad")
    anndata.AnnData(X=sp.csr_matrix(COUNTS.T), obs=obs, var=var).write_h5ad(csr)
    csc = os.path.join(OUT, "h5ad", "anndata_csc_gzip.h5ad")
    anndata.AnnData(X=sp.csc_matrix(COUNTS.T), obs=obs, var=var).write_h5ad(csc, compression="gzip")

    os.makedirs(os.path.join(OUT, "tenx"), exist_ok=True)
    tenx = os.path.join(OUT, "tenx", "h5py_cellranger.h5")
    x = sp.csc_matrix(COUNTS.astype(np.int32))  # features x barcodes, one column per barcode
    with h5py.File(tenx, "w") as f:
        g = f.create_group("matrix")
        g.create_dataset("barcodes", data=np.array(CELLS, dtype="S"))
        g.create_dataset("data", data=x.data, compression="gzip", chunks=True)
        g.create_dataset("indices", data=x.indices.astype(np.int64), compression="gzip", chunks=True)
        g.create_dataset("indptr", data=x.indptr.astype(np.int64), compression="gzip", chunks=True)
        g.create_dataset("shape", data=np.array(x.shape, dtype=np.int32))
        ft = g.create_group("features")
        ft.create_dataset("id", data=np.array(names, dtype="S"))
        ft.create_dataset("name", data=np.array(names, dtype="S"))
        ft.create_dataset("feature_type", data=np.array(["Peaks"] * 6, dtype="S"))
    for path in [csr, csc, tenx]:
        check(path)


if __name__ == "__main__":
    main()
