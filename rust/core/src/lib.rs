//! tomoclass-core: the hot path of tomoclass, in plain Rust over `ndarray` views.
//!
//! Volumes are `[z, y, x]` arrays of `f32`; coordinates and shifts are `(x, y, z)`;
//! the rotation centre is voxel `n / 2` on each axis; Fourier data live on the rFFT
//! half grid `(n, n, n / 2 + 1)`. No Python here: `cargo test` runs without it.

pub mod average;
pub mod ccc;
pub mod csv;
pub mod error;
pub mod features;
pub mod fft;
pub mod fourier;
pub mod interp;
pub mod interrupt;
pub mod mco;
pub mod rotation;
pub mod wedge;
