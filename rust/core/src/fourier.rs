//! The rFFT half grid: frequencies, band masks and Fourier binning.
//!
//! Frequencies are in Fourier voxels, signed as `numpy.fft.fftfreq(n) · n`; the half grid of
//! an `(nz, ny, nx)` volume is `(nz, ny, nx / 2 + 1)` and holds `kx ≥ 0`.

use ndarray::{Array3, ArrayView3, ArrayView4, ArrayViewMut3, ArrayViewMut4, Zip};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use crate::error::{ensure, ensure_stack, Result};
use crate::fft::{Fft3, Scratch};

/// Signed frequency of index `i` on an axis of length `n` (numpy's `fftfreq(n)[i] · n`).
#[inline]
pub fn frequency(i: usize, n: usize) -> f64 {
    if 2 * i < n {
        i as f64
    } else {
        i as f64 - n as f64
    }
}

/// Calls `f([kz, ky, kx], (iz, iy, ix))` for every voxel of the half grid of `shape`.
pub fn for_each_frequency(shape: [usize; 3], mut f: impl FnMut([f64; 3], (usize, usize, usize))) {
    let nh = shape[2] / 2 + 1;
    for iz in 0..shape[0] {
        let kz = frequency(iz, shape[0]);
        for iy in 0..shape[1] {
            let ky = frequency(iy, shape[1]);
            for ix in 0..nh {
                f([kz, ky, ix as f64], (iz, iy, ix));
            }
        }
    }
}

/// 1 where `lowest ≤ |k| ≤ highest` and `k ≠ 0`, else 0, on the half grid of `shape`.
pub fn band_mask(shape: [usize; 3], lowest: f64, highest: f64) -> Array3<f32> {
    let mut mask = Array3::zeros([shape[0], shape[1], shape[2] / 2 + 1]);
    for_each_frequency(shape, |k, idx| {
        let r = (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
        if r > 0.0 && r >= lowest && r <= highest {
            mask[idx] = 1.0;
        }
    });
    mask
}

/// Per-thread working memory of a [`Binning`] (from [`Binning::workspace`]).
pub struct BinWork {
    big: Scratch,
    small: Scratch,
    big_spec: Array3<Complex32>,
    small_spec: Array3<Complex32>,
}

/// Fourier cropping of a cubic volume of size `n` to `n / factor`, keeping values (not sums):
/// the frequencies `|k| < m / 2` on each axis of the new size `m` are kept; the Nyquist
/// planes of an even `m` are set to zero, since they cannot be kept Hermitian.
pub struct Binning {
    factor: usize,
    big: Fft3,
    small: Fft3,
}

impl Binning {
    /// Binning of `(n, n, n)` volumes by `factor`, which must divide `n`.
    pub fn new(n: usize, factor: usize) -> Result<Self> {
        ensure(factor >= 1 && n.is_multiple_of(factor), || {
            format!("binning {factor} does not divide the box size {n}")
        })?;
        let m = n / factor;
        Ok(Self {
            factor,
            big: Fft3::new([n; 3])?,
            small: Fft3::new([m; 3])?,
        })
    }

    /// The binned box size.
    pub fn binned_size(&self) -> usize {
        self.small.shape()[0]
    }

    /// Bin `volume` (`n³`) into `out` (`(n / factor)³`) using the thread's workspace `w`.
    pub fn bin_into(
        &self,
        volume: ArrayView3<f32>,
        out: ArrayViewMut3<f32>,
        w: &mut BinWork,
    ) -> Result<()> {
        self.big
            .forward(volume, w.big_spec.view_mut(), &mut w.big)?;
        let (big_spec, small_spec) = (&w.big_spec, &mut w.small_spec);
        let n = self.big.shape()[0];
        let m = self.binned_size();
        let scale = (1.0 / (self.factor * self.factor * self.factor) as f64) as f32;
        let keep = |k: f64| 2.0 * k.abs() < m as f64;
        for_each_frequency([m; 3], |k, (iz, iy, ix)| {
            small_spec[(iz, iy, ix)] = if keep(k[0]) && keep(k[1]) && keep(k[2]) {
                let src_z = if k[0] < 0.0 {
                    n - (-k[0]) as usize
                } else {
                    k[0] as usize
                };
                let src_y = if k[1] < 0.0 {
                    n - (-k[1]) as usize
                } else {
                    k[1] as usize
                };
                big_spec[(src_z, src_y, ix)] * scale
            } else {
                Complex32::default()
            };
        });
        self.small
            .inverse(w.small_spec.view_mut(), out, &mut w.small)
    }

    /// Working memory for one thread.
    pub fn workspace(&self) -> BinWork {
        BinWork {
            big: self.big.scratch(),
            small: self.small.scratch(),
            big_spec: Array3::zeros(self.big.half_shape()),
            small_spec: Array3::zeros(self.small.half_shape()),
        }
    }

    /// The binned volume.
    pub fn apply(&self, volume: ArrayView3<f32>) -> Result<Array3<f32>> {
        let mut out = Array3::zeros(self.small.shape());
        self.bin_into(volume, out.view_mut(), &mut self.workspace())?;
        Ok(out)
    }

    /// `out[i]` = `stack[i]` binned, for a stack `(N, n, n, n)`, in parallel over volumes.
    pub fn apply_stack(&self, stack: ArrayView4<f32>, mut out: ArrayViewMut4<f32>) -> Result<()> {
        let (big, small) = (self.big.shape(), self.small.shape());
        ensure_stack("binning", stack.shape(), out.shape(), big, small)?;
        Zip::from(out.outer_iter_mut())
            .and(stack.outer_iter())
            .into_par_iter()
            .try_for_each_init(|| self.workspace(), |w, (o, v)| self.bin_into(v, o, w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn frequencies_follow_numpy() {
        let got: Vec<f64> = (0..5).map(|i| frequency(i, 5)).collect();
        assert_eq!(got, [0.0, 1.0, 2.0, -2.0, -1.0]);
        let got: Vec<f64> = (0..4).map(|i| frequency(i, 4)).collect();
        assert_eq!(got, [0.0, 1.0, -2.0, -1.0]);
    }

    #[test]
    fn band_excludes_dc_and_counts_a_shell() {
        let m = band_mask([16; 3], 0.0, 1.0);
        assert_eq!(m[[0, 0, 0]], 0.0);
        // |k| = 1: ±z, ±y and +x on the half grid.
        assert_eq!(m.sum(), 5.0);
    }

    #[test]
    fn binning_keeps_a_band_limited_wave() {
        let n = 16;
        let wave = |x: f64, y: f64, z: f64, size: f64| {
            (2.0 * PI * (2.0 * x + 1.0 * y - 3.0 * z) / size).cos() + 0.5
        };
        let v = Array3::from_shape_fn((n, n, n), |(z, y, x)| {
            wave(x as f64, y as f64, z as f64, n as f64) as f32
        });
        let b = Binning::new(n, 2).unwrap().apply(v.view()).unwrap();
        for ((z, y, x), &got) in b.indexed_iter() {
            let want = wave(x as f64, y as f64, z as f64, 8.0);
            assert!(
                (got as f64 - want).abs() < 1e-5,
                "{x} {y} {z}: {got} {want}"
            );
        }
    }

    #[test]
    fn binning_must_divide_the_box() {
        assert!(Binning::new(10, 3).is_err());
    }
}
