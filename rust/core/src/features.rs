//! Spectral features: each particle preprocessed once for every correlation that follows.
//!
//! Pipeline per particle: bin (Fourier cropping) → align (inverse rotation + shift, shift
//! divided by the binning) → multiply by the real-space mask → rFFT → keep the voxels of the
//! band `lowest ≤ |k| ≤ highest` (DC excluded) that the particle sampled (`W_i > 0`, which
//! removes what the real-space mask leaked into its missing region), with its weights `W_i`.
//! A sampling with a data filter (see [`crate::wedge::WeightGrid`]) first filters the
//! particle's own spectrum. The band's Hermitian weights `h` (1 on the planes `kx = 0` and
//! `kx = n / 2`, else 2) make half-spectrum sums equal full-spectrum sums.

use std::sync::Arc;

use ndarray::{
    Array3, ArrayView3, ArrayView4, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, ArrayViewMut4,
    Axis, Zip,
};
use rayon::prelude::*;
use rustfft::num_complex::Complex32;

use crate::error::{ensure, Result};
use crate::fft::{Fft3, Scratch};
use crate::fourier::{for_each_frequency, BinWork, Binning};
use crate::interp::{weighted_affine_transform, Affine, Interpolation};
use crate::interrupt;
use crate::rotation::{apply, Mat3};
use crate::wedge::{ParticleWeight, Sampling};

/// The half-grid voxels of a band, with their frequencies and Hermitian weights.
#[derive(Debug, Clone)]
pub struct Band {
    /// Flat index of each voxel in the `(m, m, m / 2 + 1)` half grid.
    pub flat: Vec<usize>,
    /// Frequency `(kx, ky, kz)` of each voxel, Fourier voxels.
    pub freqs: Vec<[f64; 3]>,
    /// Hermitian weight `h` of each voxel.
    pub herm: Vec<f32>,
}

impl Band {
    /// The voxels with `lowest ≤ |k| ≤ highest` and `k ≠ 0` of a box of size `m`.
    pub fn new(m: usize, lowest: f64, highest: f64) -> Self {
        let nh = m / 2 + 1;
        let mut band = Band {
            flat: vec![],
            freqs: vec![],
            herm: vec![],
        };
        for_each_frequency([m; 3], |[kz, ky, kx], (iz, iy, ix)| {
            let r = (kx * kx + ky * ky + kz * kz).sqrt();
            if r > 0.0 && r >= lowest && r <= highest {
                band.flat.push((iz * m + iy) * nh + ix);
                band.freqs.push([kx, ky, kz]);
                let edge = ix == 0 || (m.is_multiple_of(2) && ix == m / 2);
                band.herm.push(if edge { 1.0 } else { 2.0 });
            }
        });
        band
    }

    /// Number of voxels in the band.
    pub fn len(&self) -> usize {
        self.flat.len()
    }

    /// Whether the band holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.flat.is_empty()
    }
}

/// Where one particle is and how it was sampled: its PyTom rotation matrix, shift
/// `(x, y, z)` in voxels of the unbinned box, and its sampling (shared between particles).
#[derive(Debug, Clone)]
pub struct Geometry {
    pub rotation: Mat3,
    pub shift: [f64; 3],
    pub sampling: Arc<Sampling>,
}

/// Bin → align → mask → rFFT for particles of one box size.
pub struct Preprocess {
    box_in: usize,
    /// FFTs of the unbinned box, for data filters.
    own: Fft3,
    binning: Option<Binning>,
    mask: Array3<f32>,
    fft: Fft3,
    interp: Interpolation,
}

/// Per-thread working memory of a [`Preprocess`].
pub(crate) struct Work {
    own_spectrum: Array3<Complex32>,
    own_filtered: Array3<f32>,
    own_fft: Scratch,
    bin: Option<BinWork>,
    binned: Array3<f32>,
    aligned: Array3<f32>,
    pub(crate) spectrum: Array3<Complex32>,
    fft: Scratch,
}

impl Preprocess {
    /// Particles of `box_in³` binned by `binning` (≥ 1, dividing the box) and masked by
    /// `mask`, which must already have the binned size.
    pub fn new(
        box_in: usize,
        binning: usize,
        mask: Array3<f32>,
        interp: Interpolation,
    ) -> Result<Self> {
        ensure(binning >= 1 && box_in.is_multiple_of(binning), || {
            format!("binning {binning} does not divide the box size {box_in}")
        })?;
        let m = box_in / binning;
        ensure(mask.shape() == [m, m, m], || {
            format!(
                "mask of shape {:?} does not fit the binned box {m}³",
                mask.shape()
            )
        })?;
        let binning = if binning > 1 {
            Some(Binning::new(box_in, binning)?)
        } else {
            None
        };
        Ok(Self {
            box_in,
            own: Fft3::new([box_in; 3])?,
            binning,
            mask,
            fft: Fft3::new([m; 3])?,
            interp,
        })
    }

    /// The binned box size `m`.
    pub fn binned_size(&self) -> usize {
        self.fft.shape()[0]
    }

    fn factor(&self) -> f64 {
        (self.box_in / self.binned_size()) as f64
    }

    pub(crate) fn work(&self) -> Work {
        let m = self.binned_size();
        Work {
            own_spectrum: Array3::zeros(self.own.half_shape()),
            own_filtered: Array3::zeros(self.own.shape()),
            own_fft: self.own.scratch(),
            bin: self.binning.as_ref().map(Binning::workspace),
            binned: Array3::zeros((m, m, m)),
            aligned: Array3::zeros((m, m, m)),
            spectrum: Array3::zeros(self.fft.half_shape()),
            fft: self.fft.scratch(),
        }
    }

    pub(crate) fn check(&self, stack: &ArrayView4<f32>, geometry: &[Geometry]) -> Result<()> {
        let n = self.box_in;
        ensure(stack.shape()[1..] == [n, n, n], || {
            format!(
                "particles of shape {:?}, expected {n}³",
                &stack.shape()[1..]
            )
        })?;
        ensure(stack.len_of(Axis(0)) == geometry.len(), || {
            format!(
                "{} particles but {} geometries",
                stack.len_of(Axis(0)),
                geometry.len()
            )
        })?;
        let grids = geometry.iter().filter_map(|g| g.sampling.grid_size());
        for size in grids {
            ensure(size == n, || {
                format!("a weight volume of box {size} for particles of box {n}")
            })?;
        }
        Ok(())
    }

    /// `work.spectrum = rFFT(mask · align(bin(filter(volume))))`, where `filter` is the
    /// sampling's data filter (none for most).
    pub(crate) fn spectrum(
        &self,
        volume: ArrayView3<f32>,
        geo: &Geometry,
        work: &mut Work,
    ) -> Result<()> {
        let volume = match geo.sampling.data_filter() {
            Some(filter) => {
                self.own
                    .forward(volume, work.own_spectrum.view_mut(), &mut work.own_fft)?;
                Zip::from(&mut work.own_spectrum)
                    .and(filter)
                    .for_each(|s, &g| *s *= g);
                self.own.inverse(
                    work.own_spectrum.view_mut(),
                    work.own_filtered.view_mut(),
                    &mut work.own_fft,
                )?;
                work.own_filtered.view()
            }
            None => volume,
        };
        let source = match (&self.binning, &mut work.bin) {
            (Some(b), Some(w)) => {
                b.bin_into(volume, work.binned.view_mut(), w)?;
                work.binned.view()
            }
            _ => volume,
        };
        let c = (self.binned_size() / 2) as f64;
        let shift = geo.shift.map(|s| s / self.factor());
        let rc = apply(&geo.rotation, [c, c, c]);
        let affine = Affine {
            matrix: geo.rotation,
            offset: [0, 1, 2].map(|a| c + shift[a] - rc[a]),
        };
        weighted_affine_transform(
            source,
            &affine,
            self.interp,
            self.mask.view(),
            work.aligned.view_mut(),
        )?;
        self.fft
            .forward(work.aligned.view(), work.spectrum.view_mut(), &mut work.fft)
    }

    /// Band features of a stack: row `i` of `out_f` is `F_i` on the band where `W_i > 0`
    /// (else 0) as `[Re … | Im …]` (length `2·band.len()`), row `i` of `out_w` is `W_i` on
    /// the band. Parallel over particles.
    pub fn band_features(
        &self,
        stack: ArrayView4<f32>,
        geometry: &[Geometry],
        band: &Band,
        mut out_f: ArrayViewMut2<f32>,
        mut out_w: ArrayViewMut2<f32>,
    ) -> Result<()> {
        self.check(&stack, geometry)?;
        let (n, len) = (geometry.len(), band.len());
        ensure(
            out_f.shape() == [n, 2 * len] && out_w.shape() == [n, len],
            || {
                format!(
                    "feature outputs {:?} and {:?} do not fit {n} particles × {len} voxels",
                    out_f.shape(),
                    out_w.shape()
                )
            },
        )?;
        let m = self.binned_size();
        Zip::from(out_f.outer_iter_mut())
            .and(out_w.outer_iter_mut())
            .and(stack.outer_iter())
            .and(geometry)
            .into_par_iter()
            .try_for_each_init(
                || self.work(),
                |work, (f_row, w_row, volume, geo)| {
                    interrupt::check()?;
                    self.spectrum(volume, geo, work)?;
                    let weight = ParticleWeight::new(m, &geo.sampling, &geo.rotation)?;
                    gather_band(
                        work.spectrum.as_slice().expect("contiguous"),
                        band,
                        &weight,
                        f_row,
                        w_row,
                    );
                    Ok(())
                },
            )
    }

    /// Full half-grid spectra `rFFT(mask · align(bin(volume)))` of a stack into `out`
    /// `(N, m, m, m / 2 + 1)`; parallel over particles.
    pub fn spectra(
        &self,
        stack: ArrayView4<f32>,
        geometry: &[Geometry],
        mut out: ArrayViewMut4<Complex32>,
    ) -> Result<()> {
        self.check(&stack, geometry)?;
        let [a, b, c] = self.fft.half_shape();
        ensure(out.shape() == [geometry.len(), a, b, c], || {
            format!(
                "spectra output {:?} does not fit {} particles",
                out.shape(),
                geometry.len()
            )
        })?;
        Zip::from(out.outer_iter_mut())
            .and(stack.outer_iter())
            .and(geometry)
            .into_par_iter()
            .try_for_each_init(
                || self.work(),
                |work, (mut o, volume, geo): (ArrayViewMut3<Complex32>, _, _)| {
                    interrupt::check()?;
                    self.spectrum(volume, geo, work)?;
                    o.assign(&work.spectrum);
                    Ok(())
                },
            )
    }
}

fn gather_band(
    spectrum: &[Complex32],
    band: &Band,
    weight: &ParticleWeight,
    mut f_row: ArrayViewMut1<f32>,
    mut w_row: ArrayViewMut1<f32>,
) {
    let len = band.len();
    for (j, (&flat, &k)) in band.flat.iter().zip(&band.freqs).enumerate() {
        let w = weight.weight(k);
        let v = spectrum[flat] * support(w);
        f_row[j] = v.re;
        f_row[len + j] = v.im;
        w_row[j] = w;
    }
}

/// 1 where a particle sampled (`w > 0`), else 0.
#[inline]
pub(crate) fn support(w: f32) -> f32 {
    if w > 0.0 {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::IDENTITY;
    use ndarray::{Array2, Array4};

    fn all_sampled() -> Arc<Sampling> {
        Arc::new(Sampling::Wedges(vec![]))
    }

    #[test]
    fn band_counts_a_full_sphere_with_hermitian_weights() {
        let band = Band::new(16, 0.0, 5.0);
        let full: f32 = band.herm.iter().sum();
        // Lattice points with 0 < |k| ≤ 5 in full 3-D space.
        let mut count = 0;
        for x in -8i32..8 {
            for y in -8i32..8 {
                for z in -8i32..8 {
                    let r2 = x * x + y * y + z * z;
                    if r2 > 0 && r2 <= 25 {
                        count += 1;
                    }
                }
            }
        }
        assert_eq!(full as i32, count);
    }

    #[test]
    fn features_of_an_unrotated_particle_are_its_spectrum_on_the_band() {
        let n = 8;
        let vol = Array4::from_shape_fn((1, n, n, n), |(_, z, y, x)| {
            ((z * 5 + y * 3 + x) as f32 * 0.3).sin()
        });
        let mask = Array3::ones((n, n, n));
        let pre = Preprocess::new(n, 1, mask, Interpolation::Cubic).unwrap();
        let geo = [Geometry {
            rotation: IDENTITY,
            shift: [0.0; 3],
            sampling: all_sampled(),
        }];
        let band = Band::new(n, 1.0, 3.0);
        let mut f = Array2::zeros((1, 2 * band.len()));
        let mut w = Array2::zeros((1, band.len()));
        pre.band_features(vol.view(), &geo, &band, f.view_mut(), w.view_mut())
            .unwrap();
        let spec = crate::fft::rfftn(vol.index_axis(Axis(0), 0)).unwrap();
        let flat = spec.as_slice().unwrap();
        for (j, &idx) in band.flat.iter().enumerate() {
            assert!((f[[0, j]] - flat[idx].re).abs() < 1e-4);
            assert!((f[[0, band.len() + j]] - flat[idx].im).abs() < 1e-4);
            assert_eq!(w[[0, j]], 1.0);
        }
    }

    #[test]
    fn mask_must_have_the_binned_size() {
        let mask = Array3::ones((8, 8, 8));
        assert!(Preprocess::new(16, 2, mask.clone(), Interpolation::Linear).is_ok());
        assert!(Preprocess::new(16, 1, mask, Interpolation::Linear).is_err());
    }
}
