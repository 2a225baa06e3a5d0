//! The `drgw` binary: argument parsing only; everything lives in the library.
fn main() {}
