//! Cell-matrix stores (`.cxmatrix`): `store::matrix::CellMatrix::open`, its arrays, then
//! `store::matrix::read_matrix`.
#![no_main]

use chromax::store::matrix::{read_matrix, CellMatrix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = chromax_fuzz::write_input("cell_matrix", "matrix.cxmatrix", data);
    if let Ok(store) = CellMatrix::open(&path) {
        let _ = (store.shape(), store.indptr().len(), store.indices().len(), store.counts().len());
        let _ = (store.barcodes().len(), store.peak_names().len(), store.content_sha256(&path));
    }
    let _ = read_matrix(&path);
});
