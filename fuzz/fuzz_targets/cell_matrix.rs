//! Cell-matrix stores (`.cxmatrix`): `store::matrix::CellMatrix::open`, its arrays, then
//! `store::matrix::read_matrix`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chromax_fuzz::targets::cell_matrix(data));
